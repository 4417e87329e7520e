//! Idempotent producers through the broker: InitProducerId hands out fresh ids (never reused
//! across restarts), a batch produced twice is stored once and both produces get the same base
//! offset, and sequence/epoch violations get Kafka's error codes.

use std::sync::Arc;

use bytes::Bytes;
use gregor_core::clock::ManualClock;
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::errors;
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod support;
use support::call;

fn idem_batch(pid: i64, epoch: i16, seq: i32, value: &[u8]) -> Vec<u8> {
    let mut b = gregor_core::batch::build_simple(0, 1_700_000_000_000, &[(None, Some(value))]);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}


async fn init_producer_id(broker: &Arc<Broker>, transactional_id: Option<&str>) -> InitProducerIdResponse {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string())));
    r.transaction_timeout_ms = 60_000;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    match call(broker, ApiKey::InitProducerId, 4, RequestKind::InitProducerId(r)).await {
        ResponseKind::InitProducerId(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Produces `batch` to t-0; returns (error code, base offset).
async fn produce(broker: &Arc<Broker>, batch: Vec<u8>) -> (i16, i64) {
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from(batch));
    let mut td = produce_request::TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("t"));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    r.topic_data = vec![td];
    match call(broker, ApiKey::Produce, 9, RequestKind::Produce(r)).await {
        ResponseKind::Produce(p) => {
            let pr = &p.responses[0].partition_responses[0];
            (pr.error_code, pr.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

fn batches_in_log(broker: &Broker) -> usize {
    let p = broker.partition("t", 0).unwrap();
    let (r, _) = p.read(0, usize::MAX).unwrap();
    let mut pos = 0;
    let mut n = 0;
    while pos < r.data.len() {
        pos += gregor_core::batch::BatchHeader::parse(&r.data[pos..]).unwrap().total_len();
        n += 1;
    }
    n
}

#[test]
fn duplicate_produce_is_stored_once_and_ids_survive_restarts() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = MemDisk::new(11, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 1).await.unwrap();
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();

        let a = init_producer_id(&broker, None).await;
        let b = init_producer_id(&broker, None).await;
        assert_eq!((a.error_code, a.producer_epoch, b.error_code, b.producer_epoch), (0, 0, 0, 0));
        assert!(a.producer_id.0 >= 0 && b.producer_id.0 != a.producer_id.0);
        let pid = a.producer_id.0;

        // Transactions are refused with a fatal error.
        let t = init_producer_id(&broker, Some("txn")).await;
        assert_eq!((t.error_code, t.producer_id.0), (errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1));

        assert_eq!(produce(&broker, idem_batch(-1, -1, -1, b"plain")).await, (0, 0));
        assert_eq!(produce(&broker, idem_batch(pid, 0, 0, b"a")).await, (0, 1));
        assert_eq!(produce(&broker, idem_batch(pid, 0, 0, b"a")).await, (0, 1));
        assert_eq!(produce(&broker, idem_batch(pid, 0, 1, b"b")).await, (0, 2));
        assert_eq!(produce(&broker, idem_batch(pid, 0, 0, b"a")).await, (0, 1));
        assert_eq!(batches_in_log(&broker), 3);
        assert_eq!(produce(&broker, idem_batch(pid, 0, 5, b"gap")).await.0, errors::OUT_OF_ORDER_SEQUENCE_NUMBER);
        assert_eq!(produce(&broker, idem_batch(pid, 1, 0, b"new epoch")).await, (0, 3));
        assert_eq!(produce(&broker, idem_batch(pid, 0, 2, b"fenced")).await.0, errors::INVALID_PRODUCER_EPOCH);
        assert_eq!(batches_in_log(&broker), 4);

        // Crash (no clean close): ids are not reused and dedup state is rebuilt from the log.
        drop(broker);
        disk.crash();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 2).await.unwrap();
        let c = init_producer_id(&broker, None).await;
        assert_eq!(c.error_code, 0);
        assert!(c.producer_id.0 > b.producer_id.0, "{} reused after restart", c.producer_id.0);
        assert_eq!(produce(&broker, idem_batch(pid, 1, 0, b"new epoch")).await, (0, 3));
        assert_eq!(produce(&broker, idem_batch(pid, 1, 1, b"next")).await, (0, 4));
        assert_eq!(batches_in_log(&broker), 5);
    });
}
