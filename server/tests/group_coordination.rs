//! A broker coordinates the groups of the `__consumer_offsets` partitions it leads: when the
//! metadata image moves a partition's leadership away, its groups are unloaded (NOT_COORDINATOR,
//! their cached offsets forgotten); when leadership comes back they are loaded again from the
//! partition's log, so what a group sees is what is in the log.

use std::sync::Arc;

use gregor_core::clock::ManualClock;
use gregor_core::metadata::{LeaderChange, MetadataDelta, MetadataRecord, NO_LEADER};
use gregor_server::broker::offsets::{partition_for, CommittedOffset, OFFSETS_TOPIC};
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::errors;
use gregor_storage::{FaultConfig, MemDisk};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Publishes the current image with the group's offsets partition led by `leader`.
fn move_leadership(broker: &Arc<Broker>, group: &str, leader: i32) {
    let mut image = (*broker.image()).clone();
    let t = image.topic(OFFSETS_TOPIC).unwrap().clone();
    let p = partition_for(group, t.partitions.len() as i32);
    let mut delta = MetadataDelta::default();
    let record = MetadataRecord::PartitionChange { topic_id: t.id, partition_id: p, leader: LeaderChange::Set(leader), isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None };
    image.apply(image.offset + 1, &record, &mut delta).unwrap();
    broker.publish(image, &delta);
}

fn committed(offset: i64) -> CommittedOffset {
    CommittedOffset { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1 }
}

#[test]
fn groups_are_unloaded_with_leadership_and_reloaded_from_the_log() {
    rt().block_on(async {
        let disk = MemDisk::new(9, FaultConfig::default());
        let config = BrokerConfig::from_settings(&[("log.dirs".into(), "/data".into()), ("offsets.topic.num.partitions".into(), "4".into())]).unwrap();
        let broker = Broker::open(config, Arc::new(disk), Arc::new(ManualClock::new(1_700_000_000_000)), 1).await.unwrap();
        let me = broker.config.node_id;
        // Before the offsets topic exists no broker coordinates the group: FindCoordinator
        // creates the topic first.
        assert_eq!(broker.coordination("g"), Err(errors::NOT_COORDINATOR));
        assert_eq!(broker.group_coordinator("g").await, Ok(me));
        assert_eq!(broker.coordination("g"), Ok(()));
        broker.commit_offsets("g", vec![("t".into(), 0, committed(5))]).await.unwrap();
        broker.commit_offsets("other", vec![("t".into(), 0, committed(9))]).await.unwrap();
        assert_eq!(broker.coordination("g"), Ok(()));
        assert_eq!(broker.offsets.get("g", "t", 0).map(|c| c.offset), Some(5));

        // Leadership moves away: the group is no longer ours and its offsets are forgotten.
        move_leadership(&broker, "g", NO_LEADER);
        assert_eq!(broker.coordination("g"), Err(errors::NOT_COORDINATOR));
        assert_eq!(broker.offsets.get("g", "t", 0), None);
        assert!(broker.commit_offsets("g", vec![("t".into(), 0, committed(6))]).await.is_err(), "a commit taken without leading the partition");
        let same_partition = partition_for("other", 4) == partition_for("g", 4);
        assert_eq!(broker.coordination("other").is_ok(), !same_partition, "only the moved partition's groups are unloaded");

        // Leadership comes back: loaded again, from the log.
        move_leadership(&broker, "g", me);
        assert_eq!(broker.coordination("g"), Ok(()));
        assert_eq!(broker.offsets.get("g", "t", 0).map(|c| c.offset), Some(5));
        assert_eq!(broker.offsets.get("other", "t", 0).map(|c| c.offset), Some(9));
        broker.commit_offsets("g", vec![("t".into(), 0, committed(7))]).await.unwrap();
        assert_eq!(broker.offsets.get("g", "t", 0).map(|c| c.offset), Some(7));
    });
}
