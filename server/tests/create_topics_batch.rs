//! CreateTopics and Metadata auto-creation create a request's topics as one batch: each topic
//! gets its own answer in request order, errors stay per topic, and what was answered as
//! created survives a crash.

use std::sync::Arc;

use gregor_core::clock::ManualClock;
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::errors;
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod support;
use support::call;


fn creatable(name: &str, partitions: i32) -> create_topics_request::CreatableTopic {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(name.to_string()));
    t.num_partitions = partitions;
    t.replication_factor = -1;
    t
}

#[test]
fn one_request_many_topics_in_order_and_durable() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = MemDisk::new(5, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 1).await.unwrap();
        broker.create_topic("exists", 1, 1, Default::default(), false).await.unwrap();

        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = 10_000;
        req.topics = vec![
            creatable("a", 3),
            creatable("bad$name", 1),
            creatable("twice", 1),
            creatable("exists", 1),
            creatable("zero", 0),
            creatable("twice", 1),
            creatable("b", 2),
        ];
        let resp = match call(&broker, ApiKey::CreateTopics, 7, RequestKind::CreateTopics(req)).await {
            ResponseKind::CreateTopics(r) => r,
            other => panic!("{other:?}"),
        };
        let got: Vec<(String, i16, i32)> =
            resp.topics.iter().map(|t| (t.name.0.to_string(), t.error_code, t.num_partitions)).collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), errors::NONE, 3),
                ("bad$name".to_string(), errors::INVALID_TOPIC_EXCEPTION, -1),
                ("twice".to_string(), errors::INVALID_REQUEST, -1),
                ("exists".to_string(), errors::TOPIC_ALREADY_EXISTS, -1),
                ("zero".to_string(), errors::INVALID_PARTITIONS, -1),
                ("b".to_string(), errors::NONE, 2),
            ]
        );
        let ids: Vec<_> = resp.topics.iter().filter(|t| t.error_code == 0).map(|t| t.topic_id).collect();
        assert!(ids.iter().all(|id| !id.is_nil()) && ids[0] != ids[1]);

        // Metadata names three missing topics and one existing: the three are created together
        // and every answer comes back in request order.
        let mut md = MetadataRequest::default();
        md.allow_auto_topic_creation = true;
        md.topics = Some(
            ["m1", "a", "m2", "m3"]
                .iter()
                .map(|n| {
                    let mut t = metadata_request::MetadataRequestTopic::default();
                    t.name = Some(TopicName(StrBytes::from_string(n.to_string())));
                    t
                })
                .collect(),
        );
        let resp = match call(&broker, ApiKey::Metadata, 12, RequestKind::Metadata(md)).await {
            ResponseKind::Metadata(r) => r,
            other => panic!("{other:?}"),
        };
        let got: Vec<(String, i16, usize)> = resp
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code, t.partitions.len()))
            .collect();
        assert_eq!(
            got,
            vec![("m1".into(), 0, 1), ("a".into(), 0, 3), ("m2".into(), 0, 1), ("m3".into(), 0, 1)]
        );

        // Power loss: everything answered as created is still there, with the same ids.
        drop(broker);
        disk.crash();
        let broker = Broker::open(config, Arc::new(disk.clone()), clock, 2).await.unwrap();
        for (name, partitions) in [("a", 3), ("b", 2), ("m1", 1), ("m2", 1), ("m3", 1), ("exists", 1)] {
            let t = broker.topic(name).unwrap_or_else(|| panic!("{name} lost in the crash"));
            assert_eq!(t.partitions.len(), partitions, "{name}");
        }
        assert_eq!(broker.topic("a").unwrap().id, ids[0]);
        assert!(broker.topic("zero").is_none() && broker.topic("twice").is_none());
    });
}
