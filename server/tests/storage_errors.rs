//! A failed fsync takes only its partition offline: the producer waiting on it gets
//! KAFKA_STORAGE_ERROR, later requests to it too, and the broker keeps serving other partitions.
//! A restart (recovery) brings the partition back with every acknowledged batch.

use std::sync::Arc;

use gregor_core::clock::ManualClock;
use gregor_server::broker::{Broker, PartitionError};
use gregor_server::config::BrokerConfig;
use gregor_storage::{FaultConfig, MemDisk};

fn batch(ts: i64) -> Vec<u8> {
    gregor_core::batch::build_simple(0, ts, &[(Some(b"k"), Some(b"v"))])
}

async fn produce(broker: &Broker, topic: &str, ts: i64) -> Result<i64, PartitionError> {
    let p = broker.partition(topic, 0).expect("partition exists");
    let mut b = batch(ts);
    let info = p.append(&mut b, 1, ts)?;
    p.wait_durable(info.last_offset + 1).await?;
    Ok(info.base_offset)
}

#[test]
fn failed_fsync_isolates_the_partition() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = MemDisk::new(3, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into())]).unwrap();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 1).await.unwrap();
        broker.create_topic("a", 1, 1, Default::default(), false).await.unwrap();
        broker.create_topic("b", 1, 1, Default::default(), false).await.unwrap();
        assert_eq!(produce(&broker, "a", 1).await.unwrap(), 0);

        disk.set_faults(FaultConfig { sync_error: 1.0, ..FaultConfig::default() });
        let err = produce(&broker, "a", 2).await.unwrap_err();
        assert_eq!(err.code(), gregor_server::errors::KAFKA_STORAGE_ERROR, "{err}");
        disk.set_faults(FaultConfig::default());

        // The failed partition stays offline (no fsync retry), the other one serves.
        let again = produce(&broker, "a", 3).await.unwrap_err();
        assert_eq!(again.code(), gregor_server::errors::KAFKA_STORAGE_ERROR);
        assert_eq!(produce(&broker, "b", 4).await.unwrap(), 0);
        assert_eq!(produce(&broker, "b", 5).await.unwrap(), 1);

        // Crash and restart: the acknowledged batch of "a" is there; the unacknowledged one may not be.
        drop(broker);
        disk.crash();
        let broker = Broker::open(config, Arc::new(disk.clone()), clock, 1).await.unwrap();
        let a = broker.partition("a", 0).unwrap();
        let (read, offsets) = a.read(0, 1 << 20).unwrap();
        assert!(offsets.high_watermark >= 1);
        let first = gregor_core::batch::validate(&read.data[..batch(1).len()]).unwrap();
        assert_eq!((first.base_offset, first.base_timestamp), (0, 1));
        let b = broker.partition("b", 0).unwrap();
        assert_eq!(b.offsets().unwrap().high_watermark, 2);
    });
}
