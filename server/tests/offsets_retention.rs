//! Committed offsets survive a crash (replayed from `__consumer_offsets`) and expire after
//! `offsets.retention.minutes` once their group has no members.

use std::sync::Arc;

use gregor_core::clock::{Clock, ManualClock};
use gregor_server::broker::offsets::CommittedOffset;
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_storage::{FaultConfig, MemDisk};

#[test]
fn offsets_survive_crash_and_expire() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = MemDisk::new(5, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[
            ("log.dirs".into(), "/data".into()),
            ("offsets.topic.num.partitions".into(), "4".into()),
            ("offsets.retention.minutes".into(), "60".into()),
        ])
        .unwrap();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 1).await.unwrap();
        broker.create_topic("t", 2, 1, Default::default(), false).await.unwrap();
        let c = |offset| CommittedOffset { offset, leader_epoch: -1, metadata: "m".into(), commit_timestamp_ms: clock.wall_ms() };
        broker.commit_offsets("old", vec![("t".into(), 0, c(3))]).await.unwrap();
        broker.commit_offsets("old", vec![("t".into(), 0, c(7)), ("t".into(), 1, c(9))]).await.unwrap();

        // A crash after the acknowledged commits: they are replayed at startup.
        drop(broker);
        disk.crash();
        let broker = Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone(), 2).await.unwrap();
        assert_eq!(broker.offsets.get("old", "t", 0).map(|o| o.offset), Some(7));
        assert_eq!(broker.offsets.get("old", "t", 1).map(|o| o.offset), Some(9));

        // 59 minutes later nothing expires; a fresh commit of another group is kept at 61.
        clock.advance_ms(59 * 60_000);
        assert_eq!(broker.expire_offsets().await, 0);
        let fresh = CommittedOffset { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: clock.wall_ms() };
        broker.commit_offsets("new", vec![("t".into(), 0, fresh)]).await.unwrap();
        clock.advance_ms(2 * 60_000);
        assert_eq!(broker.expire_offsets().await, 2);
        assert_eq!(broker.offsets.get("old", "t", 0), None);
        assert_eq!(broker.offsets.get("new", "t", 0).map(|o| o.offset), Some(1));

        // The expiry itself is durable.
        drop(broker);
        disk.crash();
        let broker = Broker::open(config, Arc::new(disk.clone()), clock.clone(), 3).await.unwrap();
        assert_eq!(broker.offsets.get("old", "t", 1), None);
        assert_eq!(broker.offsets.get("new", "t", 0).map(|o| o.offset), Some(1));
    });
}
