//! A restarted replica's high watermark does not go back below what its broker had durably
//! checkpointed: when a broker starts, every replica of the scenario's topic opens with a high
//! watermark at least the one its last durable `replication-offset-checkpoint` held (or its log
//! end, when a crash cut the log below that). The high watermark "never moves back on any
//! replica": a restarted leader must not show consumers less than they have read, nor hold back
//! what was committed until its followers fetch again (see `ack_replicas`).

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("hw-restored", "replicas restarted with a high watermark below their checkpoint");
    for r in &c.hw_forgotten {
        f.add(format!(
            "p{} opened by node {} at {:?} with high watermark {}: its checkpoint held {}, its log ends at {}",
            r.partition, r.node_id, r.at, r.high_watermark, r.checkpointed, r.log_end
        ));
    }
    f.into_violation()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, HwForgotten};
    use crate::knobs::Durability;

    #[test]
    fn a_replica_opened_below_its_checkpoint_is_caught() {
        let ctx = CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) };
        let r = HwForgotten { at: Duration::from_millis(9), node_id: 2, partition: 1, checkpointed: 40, high_watermark: 0, log_end: 52 };
        let h = HistoryData { cluster: Some(ClusterData { hw_restores_checked: 3, hw_forgotten: vec![r], ..ClusterData::default() }), ..HistoryData::default() };
        let v = check(&h, &ctx).expect("caught");
        assert!(v.message.contains("p1 opened by node 2") && v.message.contains("checkpoint held 40"), "{v}");
        assert_eq!(check(&HistoryData { cluster: Some(ClusterData::default()), ..HistoryData::default() }, &ctx), None);
    }
}
