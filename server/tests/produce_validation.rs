//! Produce refuses what Kafka refuses, and stores nothing of a refused partition: records that
//! do not frame inside a batch with a correct CRC (INVALID_RECORD), compressed data that does not
//! decompress (CORRUPT_MESSAGE), client writes to internal topics (INVALID_TOPIC_EXCEPTION, while
//! the broker's own group commits keep working), LogAppendTime claimed by a producer on a
//! LogAppendTime topic (INVALID_TIMESTAMP with record_errors), zstd before Produce v7
//! (UNSUPPORTED_COMPRESSION_TYPE) and old message formats (INVALID_RECORD).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use gregor_core::batch::{self, HEADER_LEN, LOG_OVERHEAD};
use gregor_core::clock::ManualClock;
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::errors;
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod support;
use support::call;


async fn produce_v(broker: &Arc<Broker>, version: i16, topic: &str, partition: i32, records: Vec<u8>) -> produce_response::PartitionProduceResponse {
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(Bytes::from(records));
    let mut td = produce_request::TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    r.topic_data = vec![td];
    match call(broker, ApiKey::Produce, version, RequestKind::Produce(r)).await {
        ResponseKind::Produce(mut p) => p.responses.remove(0).partition_responses.remove(0),
        other => panic!("{other:?}"),
    }
}

async fn produce(broker: &Arc<Broker>, topic: &str, records: Vec<u8>) -> produce_response::PartitionProduceResponse {
    produce_v(broker, 9, topic, 0, records).await
}

fn log_end(broker: &Broker, topic: &str, partition: i32) -> i64 {
    broker.partition(topic, partition).unwrap().offsets().unwrap().log_end
}

/// A batch header claiming `count` records around `payload`, compressed with `codec`, with a
/// correct CRC: only a record-level check can refuse it.
fn batch_around(codec: i16, count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = batch::build_simple(0, 1_700_000_000_000, &[(None, Some(b"x"))]);
    b.truncate(HEADER_LEN);
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut b);
    b
}

fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn open_broker(seed: u64) -> impl std::future::Future<Output = Arc<Broker>> {
    async move {
        let disk = MemDisk::new(seed, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap();
        Broker::open(config, Arc::new(disk), clock, seed).await.unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn records_that_do_not_frame_are_refused_and_not_stored() {
    rt().block_on(async {
        let broker = open_broker(21).await;
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();

        // Garbage records inside a batch with a correct CRC.
        let r = produce(&broker, "t", batch_around(0, 3, b"\x05garbage that is not three records")).await;
        assert_eq!(r.error_code, errors::INVALID_RECORD, "{r:?}");
        assert!(r.error_message.is_some());
        // A header claiming more records than the data holds.
        let mut short = batch::build_simple(0, 1, &[(None, Some(b"a")), (None, Some(b"b"))]);
        short[23..27].copy_from_slice(&2i32.to_be_bytes());
        short[57..61].copy_from_slice(&3i32.to_be_bytes());
        fix_crc(&mut short);
        assert_eq!(produce(&broker, "t", short).await.error_code, errors::INVALID_RECORD);
        // Garbage gzip (and every other codec).
        for codec in 1..=4 {
            let r = produce(&broker, "t", batch_around(codec, 1, b"\x1f\x8b\x08 not really gzip data")).await;
            assert_eq!(r.error_code, errors::CORRUPT_MESSAGE, "codec {codec}: {r:?}");
        }
        assert_eq!(log_end(&broker, "t", 0), 0, "a refused batch was stored");

        // A valid batch still goes in, at offset 0.
        let ok = produce(&broker, "t", batch::build_simple(0, 1_700_000_000_000, &[(Some(b"k"), Some(b"v"))])).await;
        assert_eq!((ok.error_code, ok.base_offset), (0, 0));
        assert_eq!(log_end(&broker, "t", 0), 1);
    });
}

#[test]
fn request_level_refusals_follow_kafka() {
    rt().block_on(async {
        let broker = open_broker(22).await;
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();

        // zstd needs Produce v7.
        let mut z = batch::build_simple(0, 1, &[(None, Some(b"a"))]);
        z[22] |= 4;
        fix_crc(&mut z);
        assert_eq!(produce_v(&broker, 6, "t", 0, z).await.error_code, errors::UNSUPPORTED_COMPRESSION_TYPE);
        // Magic 1 and an empty record set are INVALID_RECORD.
        let mut old = batch::build_simple(0, 1, &[(None, Some(b"a"))]);
        old[16] = 1;
        assert_eq!(produce(&broker, "t", old).await.error_code, errors::INVALID_RECORD);
        assert_eq!(produce(&broker, "t", Vec::new()).await.error_code, errors::INVALID_RECORD);
        // Control batches and idempotent batches without a sequence.
        let mut control = batch::build_simple(0, 1, &[(None, Some(b"a"))]);
        control[22] |= 0x20;
        fix_crc(&mut control);
        assert_eq!(produce(&broker, "t", control).await.error_code, errors::INVALID_RECORD);
        let mut no_seq = batch::build_simple(0, 1, &[(None, Some(b"a"))]);
        no_seq[43..51].copy_from_slice(&7i64.to_be_bytes());
        fix_crc(&mut no_seq);
        assert_eq!(produce(&broker, "t", no_seq).await.error_code, errors::INVALID_RECORD);
        // Two batches for one partition: one batch per partition, as Kafka.
        let mut two = batch::build_simple(0, 1, &[(None, Some(b"a"))]);
        two.extend_from_slice(&batch::build_simple(0, 1, &[(None, Some(b"b"))]));
        let r = produce(&broker, "t", two).await;
        assert_eq!(r.error_code, errors::INVALID_RECORD);
        assert!(r.error_message.unwrap().contains("exactly one record batch"));
        assert_eq!(log_end(&broker, "t", 0), 0);
        // One batch of two records is fine.
        let one = batch::build_simple(0, 1, &[(None, Some(b"a")), (None, Some(b"b"))]);
        assert_eq!(produce(&broker, "t", one).await.error_code, errors::NONE);
        assert_eq!(log_end(&broker, "t", 0), 2);
    });
}

#[test]
fn timestamps_follow_kafka() {
    rt().block_on(async {
        let broker = open_broker(23).await;
        let lat: BTreeMap<String, String> = [("message.timestamp.type".to_string(), "LogAppendTime".to_string())].into();
        broker.create_topic("lat", 1, 1, lat, false).await.unwrap();
        broker.create_topic("ct", 1, 1, Default::default(), false).await.unwrap();

        // A producer may not claim LogAppendTime on a LogAppendTime topic: every record is listed.
        let mut b = batch::build_simple(0, 1, &[(None, Some(b"a")), (None, Some(b"b"))]);
        batch::set_log_append_time(&mut b, 5);
        let r = produce(&broker, "lat", b).await;
        assert_eq!(r.error_code, errors::INVALID_TIMESTAMP);
        assert_eq!(r.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(log_end(&broker, "lat", 0), 0);

        // On CreateTime, a header max timestamp that disagrees with the records is corrected.
        let mut b = batch::build_simple(0, 1_000, &[(None, Some(b"a"))]);
        b[35..43].copy_from_slice(&99_999i64.to_be_bytes());
        fix_crc(&mut b);
        assert_eq!(produce(&broker, "ct", b).await.error_code, 0);
        let (read, _) = broker.partition("ct", 0).unwrap().read(0, 1 << 20).unwrap();
        let h = batch::validate(&read.data).unwrap();
        assert_eq!(h.max_timestamp, 1_000);
    });
}

#[test]
fn clients_cannot_write_internal_topics_but_group_commits_work() {
    rt().block_on(async {
        let broker = open_broker(24).await;
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();

        let commit = |offset: i64| {
            let broker = broker.clone();
            async move {
                let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
                p.partition_index = 0;
                p.committed_offset = offset;
                let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
                t.name = TopicName(StrBytes::from_static_str("t"));
                t.partitions = vec![p];
                let mut r = OffsetCommitRequest::default();
                r.group_id = GroupId(StrBytes::from_static_str("g"));
                r.generation_id_or_member_epoch = -1;
                r.topics = vec![t];
                match call(&broker, ApiKey::OffsetCommit, 8, RequestKind::OffsetCommit(r)).await {
                    ResponseKind::OffsetCommit(c) => c.topics[0].partitions[0].error_code,
                    other => panic!("{other:?}"),
                }
            }
        };
        // A commit before FindCoordinator is sent to ask (which creates the offsets topic).
        assert_eq!(commit(5).await, errors::NOT_COORDINATOR);
        assert!(broker.topic("__consumer_offsets").is_none());
        assert_eq!(broker.group_coordinator("g").await, Ok(broker.config.node_id));
        assert!(broker.topic("__consumer_offsets").is_some(), "FindCoordinator creates the offsets topic");
        assert_eq!(commit(5).await, 0);

        let garbage = batch::build_simple(0, 1, &[(Some(b"not a group key"), Some(b"not an offset"))]);
        let partitions = broker.topic("__consumer_offsets").unwrap().partitions.len() as i32;
        let ends: Vec<i64> = (0..partitions).map(|p| log_end(&broker, "__consumer_offsets", p)).collect();
        for p in 0..partitions {
            let r = produce_v(&broker, 9, "__consumer_offsets", p, garbage.clone()).await;
            assert_eq!(r.error_code, errors::INVALID_TOPIC_EXCEPTION, "partition {p}");
        }
        let after: Vec<i64> = (0..partitions).map(|p| log_end(&broker, "__consumer_offsets", p)).collect();
        assert_eq!(ends, after, "a client write reached __consumer_offsets");

        // The broker's own writes still go through.
        assert_eq!(commit(9).await, 0);
        let mut ft = offset_fetch_request::OffsetFetchRequestTopic::default();
        ft.name = TopicName(StrBytes::from_static_str("t"));
        ft.partition_indexes = vec![0];
        let mut f = OffsetFetchRequest::default();
        f.group_id = GroupId(StrBytes::from_static_str("g"));
        f.topics = Some(vec![ft]);
        match call(&broker, ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(f)).await {
            ResponseKind::OffsetFetch(r) => assert_eq!(r.topics[0].partitions[0].committed_offset, 9),
            other => panic!("{other:?}"),
        }
    });
}
