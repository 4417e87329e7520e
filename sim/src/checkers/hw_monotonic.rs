//! The quorum's high watermark never moves back: within one process incarnation of a node, the
//! high watermark its DescribeQuorum answers report never decreases. (A restarted node learns it
//! again from the leader; a newly elected leader may report less than its predecessor until it
//! commits in its own epoch, so answers are compared per node and incarnation only — what a
//! committed entry must never do across nodes is the `committed-prefix` property.)

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("hw-monotonic", "quorum high watermarks that went back");
    let mut last: BTreeMap<(usize, u64), (i64, i32, std::time::Duration)> = BTreeMap::new();
    for p in c.quorum_polls.iter().filter(|p| p.high_watermark >= 0) {
        let key = (p.node, p.incarnation);
        if let Some(&(hw, epoch, at)) = last.get(&key) {
            if p.high_watermark < hw {
                f.add(format!(
                    "node {} (start #{}): high watermark {hw} (epoch {epoch}) at {at:?}, then {} (epoch {}) at {:?}",
                    p.node + 1, p.incarnation, p.high_watermark, p.leader_epoch, p.at
                ));
            }
        }
        last.insert(key, (p.high_watermark, p.leader_epoch, p.at));
    }
    f.into_violation()
}

/// No injectable bug makes a node's high watermark go back (the raft node asserts it does not),
/// so these tests prove on recorded polls that the checker bites, and what it excuses.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, QuorumPoll};
    use crate::knobs::Durability;

    fn poll(node: usize, incarnation: u64, ms: u64, hw: i64) -> QuorumPoll {
        QuorumPoll { node, incarnation, at: Duration::from_millis(ms), error_code: 6, leader_id: 1, leader_epoch: 1, high_watermark: hw }
    }

    fn run(polls: Vec<QuorumPoll>) -> Option<Violation> {
        let h = HistoryData { cluster: Some(ClusterData { quorum_polls: polls, ..ClusterData::default() }), ..HistoryData::default() };
        check(&h, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) })
    }

    #[test]
    fn a_high_watermark_that_goes_back_is_caught() {
        let v = run(vec![poll(0, 0, 1, 5), poll(1, 0, 2, 3), poll(0, 0, 3, 4)]).expect("caught");
        assert!(v.message.contains("node 1 (start #0): high watermark 5"), "{v}");
    }

    #[test]
    fn a_restart_or_another_node_may_report_less() {
        assert_eq!(run(vec![poll(0, 0, 1, 5), poll(1, 0, 2, 3), poll(0, 1, 3, 0), poll(0, 1, 4, 5)]), None);
    }
}
