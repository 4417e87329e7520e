//! acks=all means `min.insync.replicas`: whenever a partition leader acknowledged an acks=all
//! write on the scenario's topic, at least `min.insync.replicas` nodes held the acknowledged
//! batch durably at that moment, as their disks told (see `ack_replicas`). Unlike `lost-ack`,
//! this does not need the faults to then take down the replicas that had the write: a write
//! acknowledged from too few replicas fails the seed the moment it is acknowledged.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("acked-min-isr", "acks=all writes acknowledged while fewer than min.insync.replicas replicas held them durably");
    for s in &c.short_acks {
        f.add(format!(
            "p{} below offset {} acknowledged by node {} at {:?}: durable on nodes {:?}, min.insync.replicas {}",
            s.partition, s.end_offset, s.node_id, s.at, s.holders, s.min_insync
        ));
    }
    f.into_violation()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, ShortAck};
    use crate::knobs::Durability;

    fn run(short_acks: Vec<ShortAck>) -> Option<Violation> {
        let h = HistoryData { cluster: Some(ClusterData { acks_checked: 10, short_acks, ..ClusterData::default() }), ..HistoryData::default() };
        check(&h, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) })
    }

    #[test]
    fn an_ack_from_too_few_replicas_is_caught() {
        let s = ShortAck { at: Duration::from_millis(5), node_id: 2, partition: 1, end_offset: 7, holders: vec![2], min_insync: 2 };
        let v = run(vec![s]).expect("caught");
        assert!(v.message.contains("p1 below offset 7 acknowledged by node 2"), "{v}");
        assert!(v.message.contains("durable on nodes [2], min.insync.replicas 2"), "{v}");
    }

    #[test]
    fn acks_held_by_enough_replicas_pass() {
        assert_eq!(run(Vec::new()), None);
    }
}
