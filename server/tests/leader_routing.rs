//! Requests for a partition are served only by its leader, as the metadata image says, with
//! Kafka's routing errors: NOT_LEADER_OR_FOLLOWER carrying the KIP-951 current-leader hint (and
//! the leader's endpoint) in Produce v10+ and Fetch v12+ and not before; FENCED_LEADER_EPOCH for a
//! client epoch older than the partition's, UNKNOWN_LEADER_EPOCH for a newer one; and a
//! partition whose leader moves back here is served again at its new epoch.

use std::sync::Arc;

use bytes::Bytes;
use gregor_core::clock::ManualClock;
use gregor_core::metadata::{Endpoint, LeaderChange, MetadataDelta, MetadataRecord};
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::errors;
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod support;
use support::call;

const OTHER: i32 = 7;

/// Applies `records` as if the quorum had committed them.
fn commit(broker: &Arc<Broker>, records: &[MetadataRecord]) {
    let mut image = (*broker.image()).clone();
    let mut delta = MetadataDelta::default();
    let offset = image.offset + 1;
    for r in records {
        image.apply(offset, r, &mut delta).unwrap();
    }
    broker.publish(image, &delta);
}

async fn produce(broker: &Arc<Broker>, version: i16) -> (produce_response::PartitionProduceResponse, Vec<produce_response::NodeEndpoint>) {
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from(gregor_core::batch::build_simple(0, 1_700_000_000_000, &[(None, Some(&b"v"[..]))])));
    let mut td = produce_request::TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("t"));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    r.topic_data = vec![td];
    match call(broker, ApiKey::Produce, version, RequestKind::Produce(r)).await {
        ResponseKind::Produce(mut p) => (p.responses.remove(0).partition_responses.remove(0), p.node_endpoints),
        other => panic!("{other:?}"),
    }
}

async fn fetch(broker: &Arc<Broker>, version: i16, current_leader_epoch: i32) -> fetch_response::PartitionData {
    let mut fp = fetch_request::FetchPartition::default();
    fp.partition = 0;
    fp.current_leader_epoch = current_leader_epoch;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_static_str("t"));
    ft.topic_id = broker.topic("t").unwrap().id;
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(-1);
    r.replica_state.replica_id = BrokerId(-1);
    r.max_bytes = 1 << 20;
    r.topics = vec![ft];
    match call(broker, ApiKey::Fetch, version, RequestKind::Fetch(r)).await {
        ResponseKind::Fetch(mut f) => f.responses.remove(0).partitions.remove(0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_leader_serves_and_clients_are_told_where_it_is() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = MemDisk::new(9, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap();
        let broker = Broker::open(config, Arc::new(disk), clock, 1).await.unwrap();
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();
        let me = broker.config.node_id;
        let topic_id = broker.image().topic("t").unwrap().id;
        assert_eq!(produce(&broker, 10).await.0.error_code, errors::NONE);
        assert_eq!(fetch(&broker, 12, 0).await.error_code, errors::NONE);
        assert_eq!(fetch(&broker, 12, 1).await.error_code, errors::UNKNOWN_LEADER_EPOCH);

        // Another broker becomes the partition's leader (epoch 1).
        commit(
            &broker,
            &[
                MetadataRecord::RegisterBroker {
                    broker_id: OTHER,
                    incarnation_id: 1,
                    broker_epoch: 100,
                    endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host: "10.0.0.7".into(), port: 9097, security_protocol: 0 }],
                    rack: None,
                    fenced: false,
                },
                MetadataRecord::PartitionChange { topic_id, partition_id: 0, leader: LeaderChange::Set(OTHER), isr: Some(vec![me, OTHER]), replicas: Some(vec![me, OTHER]), adding: None, removing: None, elr: None, last_known_elr: None },
            ],
        );
        let (p, endpoints) = produce(&broker, 10).await;
        assert_eq!(p.error_code, errors::NOT_LEADER_OR_FOLLOWER);
        assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (OTHER, 1));
        assert_eq!(endpoints.len(), 1);
        assert_eq!((endpoints[0].node_id.0, endpoints[0].host.as_str(), endpoints[0].port), (OTHER, "10.0.0.7", 9097));
        // Before KIP-951's versions there is no hint.
        let (p, endpoints) = produce(&broker, 9).await;
        assert_eq!(p.error_code, errors::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(p.current_leader.leader_id.0, -1);
        assert!(endpoints.is_empty());
        let f = fetch(&broker, 12, -1).await;
        assert_eq!(f.error_code, errors::NOT_LEADER_OR_FOLLOWER);
        assert_eq!((f.current_leader.leader_id.0, f.current_leader.leader_epoch), (OTHER, 1));
        assert_eq!(fetch(&broker, 11, -1).await.current_leader.leader_id.0, -1);

        // Leadership comes back (epoch 2), the other broker out of the ISR (it never fetches
        // here, so acks=all could not complete with it in): served again, the old epoch fenced.
        commit(&broker, &[MetadataRecord::PartitionChange { topic_id, partition_id: 0, leader: LeaderChange::Set(me), isr: Some(vec![me]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }]);
        let (p, _) = produce(&broker, 10).await;
        assert_eq!(p.error_code, errors::NONE);
        assert_eq!(p.base_offset, 1, "the partition kept its data while another broker led it");
        assert_eq!(fetch(&broker, 12, 2).await.error_code, errors::NONE);
        assert_eq!(fetch(&broker, 12, 1).await.error_code, errors::FENCED_LEADER_EPOCH);
        assert_eq!(fetch(&broker, 12, 3).await.error_code, errors::UNKNOWN_LEADER_EPOCH);
        // Batches appended in the new epoch carry it.
        let (read, _) = broker.partition("t", 0).unwrap().read(1, 1 << 20).unwrap();
        assert_eq!(gregor_core::batch::BatchHeader::parse(&read.data).unwrap().partition_leader_epoch, 2);

        // OffsetForLeaderEpoch answers from the leader epoch cache: epoch 0 wrote offset 0,
        // epoch 1 wrote nothing here, epoch 2 began at 1 and is current (ends at the log end).
        for (asked, expected) in [(0, (0, 1)), (1, (0, 1)), (2, (2, 2)), (5, (-1, -1))] {
            assert_eq!(end_offset_for(&broker, asked).await, (errors::NONE, expected), "epoch {asked}");
        }
    });
}

/// OffsetForLeaderEpoch v4 for `t-0` at `epoch`: (error, (leader epoch, end offset)).
async fn end_offset_for(broker: &Arc<Broker>, epoch: i32) -> (i16, (i32, i64)) {
    let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
    p.partition = 0;
    p.current_leader_epoch = -1;
    p.leader_epoch = epoch;
    let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut r = OffsetForLeaderEpochRequest::default();
    r.replica_id = BrokerId(-1);
    r.topics = vec![t];
    match call(broker, ApiKey::OffsetForLeaderEpoch, 4, RequestKind::OffsetForLeaderEpoch(r)).await {
        ResponseKind::OffsetForLeaderEpoch(mut resp) => {
            let e = resp.topics.remove(0).partitions.remove(0);
            (e.error_code, (e.leader_epoch, e.end_offset))
        }
        other => panic!("{other:?}"),
    }
}
