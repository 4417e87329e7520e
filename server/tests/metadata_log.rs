//! The broker's metadata lives in the `__cluster_metadata` log: every change is a committed
//! record, a restart (clean or power loss) rebuilds the same image, a damaged log tail is cut by
//! CRC, a record this version cannot read refuses start-up, and a data directory written before
//! the log existed is converted once without losing topics, configs or producer ids.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gregor_core::clock::ManualClock;
use gregor_core::disk::Disk;
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_storage::{FaultConfig, LogConfig, MemDisk, PartitionLog};

fn config() -> BrokerConfig {
    BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn open(disk: &MemDisk, seed: u64) -> Arc<Broker> {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    Broker::open(config(), Arc::new(disk.clone()), clock, seed).await.unwrap()
}

async fn populate(broker: &Broker) {
    let mut c = BTreeMap::new();
    c.insert("retention.ms".to_string(), "60000".to_string());
    broker.create_topic("a", 3, 1, c, false).await.unwrap();
    broker.create_topic("b", 1, 1, Default::default(), false).await.unwrap();
    broker.create_topic("gone", 2, 1, Default::default(), false).await.unwrap();
    broker.delete_topic("gone").await.unwrap();
    broker.create_partitions("b", 4, None, false).await.unwrap();
    let mut c = BTreeMap::new();
    c.insert("segment.bytes".to_string(), "1048576".to_string());
    broker.set_topic_configs("b", c, false).await.unwrap();
    let mut d = BTreeMap::new();
    d.insert("log.retention.ms".to_string(), "7200000".to_string());
    broker.set_broker_configs("", d, false).await.unwrap();
    assert_eq!(broker.allocate_producer_id().await.unwrap(), 0);
}

#[test]
fn restarts_rebuild_the_same_image() {
    rt().block_on(async {
        let disk = MemDisk::new(3, FaultConfig::default());
        let broker = open(&disk, 1).await;
        populate(&broker).await;
        let before = broker.image();
        before.check_invariants();
        assert_eq!(before.topic("b").unwrap().partitions.len(), 4);
        assert!(before.topic("gone").is_none());
        assert_eq!(broker.replicas.len(), 3 + 4, "only the live topics' partitions are hosted");

        // Clean restart.
        broker.close();
        drop(broker);
        let broker = open(&disk, 2).await;
        assert_eq!(*broker.image(), *before);
        // A new block after a restart: ids are never handed out twice.
        assert_eq!(broker.allocate_producer_id().await.unwrap(), 1000);
        let before = broker.image();

        // Power loss: everything acknowledged was committed before the answer.
        drop(broker);
        disk.crash();
        let broker = open(&disk, 3).await;
        assert_eq!(*broker.image(), *before);
        assert_eq!(broker.topic("a").unwrap().configs["retention.ms"], "60000");
        assert_eq!(broker.log_defaults().retention_ms, 7_200_000);
    });
}

fn segment_of(disk: &MemDisk) -> std::path::PathBuf {
    let dir = Path::new("/data/__cluster_metadata-0");
    let name = disk.list_dir(dir).unwrap().into_iter().find(|n| n.ends_with(".log")).expect("a segment");
    dir.join(name)
}

#[test]
fn a_torn_tail_is_cut_and_an_unreadable_record_refuses_start() {
    rt().block_on(async {
        let disk = MemDisk::new(4, FaultConfig::default());
        let broker = open(&disk, 1).await;
        broker.create_topic("kept", 1, 1, Default::default(), false).await.unwrap();
        broker.create_topic("torn", 1, 1, Default::default(), false).await.unwrap();
        broker.close();
        drop(broker);

        // Cut the last batch (the "torn" topic) in half.
        let seg = segment_of(&disk);
        let bytes = gregor_core::disk::read_all(&disk, &seg).unwrap();
        let last_batch_start = {
            let mut at = 0;
            let mut rest: &[u8] = &bytes;
            let mut last = 0;
            while let Ok(h) = gregor_core::batch::BatchHeader::parse(rest) {
                last = at;
                at += h.total_len();
                rest = &bytes[at..];
            }
            last
        };
        let cut = last_batch_start + 20;
        let f = disk.open(&seg, true).unwrap();
        f.truncate(cut as u64).unwrap();
        f.sync().unwrap();
        drop(f);
        disk.remove_file(&Path::new("/data/__cluster_metadata-0").join(".clean-shutdown")).ok();
        let broker = open(&disk, 2).await;
        assert!(broker.topic("kept").is_some());
        assert!(broker.topic("torn").is_none(), "a torn record is never applied");
        // Its partition directory is gone too, and the name can be created again.
        broker.create_topic("torn", 1, 1, Default::default(), false).await.unwrap();
        broker.close();
        drop(broker);

        // An entry with a valid CRC holding a record this version does not know.
        let dir = Path::new("/data/__cluster_metadata-0").to_path_buf();
        let (mut log, _) = PartitionLog::open(Arc::new(disk.clone()), dir, LogConfig::default(), 0).unwrap();
        let entry = [0u8, 0, 0, 1, 0, 0, 0, 2, 200, 0];
        let mut b = gregor_core::batch::build_simple(0, 0, &[(None, Some(&entry[..]))]);
        log.append(&mut b, 100, 0).unwrap();
        log.close().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let err = Broker::open(config(), Arc::new(disk.clone()), clock, 3).await.err().expect("start refused");
        let msg = err.to_string();
        assert!(msg.contains("metadata log entry at offset") && msg.contains("unknown metadata record type 200"), "{msg}");
    });
}

#[test]
fn a_legacy_metadata_file_is_converted_once() {
    rt().block_on(async {
        let disk = MemDisk::new(5, FaultConfig::default());
        disk.create_dir_all(Path::new("/data")).unwrap();
        let body = "topic\tt\t000000000000000000000000000000aa\t2\nconfig\tt\tretention.ms\t1000\nbroker-config\tlog.retention.ms\t5000\nproducer-id-block\t3000\n";
        let text = format!("{body}crc\t{}\n", crc32c::crc32c(body.as_bytes()));
        gregor_core::disk::write_atomic(&disk, Path::new("/data/__gregor_metadata"), text.as_bytes()).unwrap();
        // Data of the old topic, which must be kept.
        let (mut log, _) = PartitionLog::open(Arc::new(disk.clone()), "/data/t-1".into(), LogConfig::default(), 0).unwrap();
        let mut b = gregor_core::batch::build_simple(0, 0, &[(None, Some(&b"old"[..]))]);
        log.append(&mut b, 0, 0).unwrap();
        log.close().unwrap();

        let broker = open(&disk, 1).await;
        let t = broker.topic("t").expect("converted topic");
        assert_eq!(t.id.as_u128(), 0xaa);
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(broker.broker_config_overrides()["log.retention.ms"], "5000");
        assert_eq!(broker.partition("t", 1).unwrap().offsets().unwrap().log_end, 1, "data kept");
        assert_eq!(broker.allocate_producer_id().await.unwrap(), 3000);
        assert!(!disk.exists(Path::new("/data/__gregor_metadata")), "converted file removed");
        let image = broker.image();
        broker.close();
        drop(broker);
        let broker = open(&disk, 2).await;
        assert_eq!(broker.image().topics, image.topics, "converted only once");
        assert_eq!(broker.image().next_producer_id, 4000);
    });
}

#[test]
fn a_damaged_quorum_state_refuses_start() {
    rt().block_on(async {
        let disk = MemDisk::new(6, FaultConfig::default());
        let broker = open(&disk, 1).await;
        broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();
        broker.close();
        drop(broker);
        let path = Path::new("/data/__cluster_metadata-0/quorum-state");
        let mut bytes = gregor_core::disk::read_all(&disk, path).expect("the vote of the embedded quorum is on disk").to_vec();
        assert!(String::from_utf8_lossy(&bytes).contains("leader_epoch="));
        bytes[0] ^= 0x20;
        gregor_core::disk::write_atomic(&disk, path, &bytes).unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let err = Broker::open(config(), Arc::new(disk.clone()), clock, 2).await.err().expect("start refused");
        assert!(err.to_string().contains("quorum state file /data/__cluster_metadata-0/quorum-state is damaged"), "{err}");
    });
}

fn checkpoints(disk: &MemDisk) -> Vec<String> {
    let mut names: Vec<String> = disk.list_dir(Path::new("/data/__cluster_metadata-0")).unwrap().into_iter().filter(|n| n.contains(".checkpoint")).collect();
    names.sort();
    names
}

#[test]
fn snapshots_replace_the_log_prefix_and_restarts_rebuild_the_same_image() {
    rt().block_on(async {
        let disk = MemDisk::new(7, FaultConfig::default());
        let settings = [("log.dirs".to_string(), "/data".to_string()), ("metadata.log.max.record.bytes.between.snapshots".to_string(), "1".to_string())];
        let config = BrokerConfig::from_settings(&settings).unwrap();
        let open = |seed: u64| {
            let config = config.clone();
            let disk = disk.clone();
            async move { Broker::open(config, Arc::new(disk), Arc::new(ManualClock::new(1_700_000_000_000)), seed).await }
        };
        let broker = open(1).await.unwrap();
        populate(&broker).await;
        let before = broker.image();
        // One snapshot only (each new one deletes the older), ending at the last applied entry.
        let names = checkpoints(&disk);
        assert_eq!(names.len(), 1, "{names:?}");
        let end: i64 = names[0].split('-').next().unwrap().parse().unwrap();
        assert_eq!(end, before.offset + 1, "{names:?}");
        broker.close();
        drop(broker);

        // The log before the snapshot is gone, and a clean restart rebuilds the image from the
        // snapshot alone.
        let dir = Path::new("/data/__cluster_metadata-0").to_path_buf();
        let (log, _) = PartitionLog::open(Arc::new(disk.clone()), dir.clone(), LogConfig::default(), 0).unwrap();
        assert_eq!(log.log_start_offset(), end);
        drop(log);
        let broker = open(2).await.unwrap();
        assert_eq!(*broker.image(), *before);
        assert!(broker.topic("gone").is_none(), "a deleted topic is not brought back by the snapshot");
        assert_eq!(broker.allocate_producer_id().await.unwrap(), 1000, "producer ids are never handed out twice");
        let before = broker.image();

        // Power loss right after more snapshots.
        drop(broker);
        disk.crash();
        let broker = open(3).await.unwrap();
        assert_eq!(*broker.image(), *before);
        broker.close();
        drop(broker);

        // A damaged snapshot refuses start, naming it.
        let names = checkpoints(&disk);
        let path = dir.join(&names[0]);
        let f = disk.open(&path, false).unwrap();
        f.write_all_at(&[0xee], 30).unwrap();
        f.sync().unwrap();
        drop(f);
        let err = open(4).await.err().expect("start refused").to_string();
        assert!(err.contains(&names[0]) && err.contains("damaged"), "{err}");
    });
}

#[test]
fn a_topic_deleted_and_created_again_in_one_image_change_is_hosted_anew() {
    use gregor_core::metadata::{MetadataDelta, MetadataRecord};
    rt().block_on(async {
        let disk = MemDisk::new(8, FaultConfig::default());
        let broker = open(&disk, 1).await;
        broker.create_topic("x", 1, 1, Default::default(), false).await.unwrap();
        let p = broker.partition("x", 0).unwrap();
        let mut b = gregor_core::batch::build_simple(0, 0, &[(None, Some(&b"old"[..]))]);
        p.append(&mut b, 1, 0).unwrap();
        assert_eq!(p.offsets().unwrap().log_end, 1);
        // As a node that was behind receives it: the removal and the new topic in one delta.
        let mut image = (*broker.image()).clone();
        let old_id = image.topic("x").unwrap().id;
        let me = broker.config.node_id;
        let mut delta = MetadataDelta::default();
        let records = [
            MetadataRecord::RemoveTopic { topic_id: old_id },
            MetadataRecord::Topic { name: "x".into(), topic_id: old_id + 1 },
            MetadataRecord::Partition { topic_id: old_id + 1, partition_id: 0, replicas: vec![me], isr: vec![me], leader: me, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        ];
        for r in &records {
            image.apply(image.offset + 1, r, &mut delta).unwrap();
        }
        broker.publish(image, &delta);
        let p = broker.partition("x", 0).expect("the new topic's partition is hosted");
        assert_eq!(p.offsets().unwrap().log_end, 0, "the new topic starts empty, without the old one's data");
        assert_eq!(broker.topic("x").unwrap().id.as_u128(), old_id + 1);
    });
}
