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
