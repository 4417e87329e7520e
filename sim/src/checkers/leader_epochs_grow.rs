//! Partition leader epochs never go back: within one process incarnation of a broker, the
//! leader epoch its Metadata answers report for a partition never decreases (a broker's image
//! only ever applies committed records, in log order). A restarted broker rebuilds its image from
//! the log, so its answers are compared only with its own since that start.

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("leader-epochs-grow", "partition leader epochs that went back");
    // (node, incarnation, topic, partition) -> (epoch, leader, when)
    let mut last: BTreeMap<(usize, u64, &str, i32), (i32, i32, std::time::Duration)> = BTreeMap::new();
    for poll in &c.metadata_polls {
        for (topic, t) in &poll.view.topics {
            for (&p, pv) in &t.partitions {
                if pv.error_code != 0 && pv.leader_epoch < 0 {
                    continue;
                }
                let key = (poll.node, poll.incarnation, topic.as_str(), p);
                if let Some(&(epoch, leader, at)) = last.get(&key) {
                    if pv.leader_epoch < epoch {
                        f.add(format!(
                            "node {} {topic}-{p}: leader {leader} epoch {epoch} at {at:?}, then leader {} epoch {} at {:?}",
                            poll.node + 1, pv.leader, pv.leader_epoch, poll.at
                        ));
                    }
                }
                last.insert(key, (pv.leader_epoch, pv.leader, poll.at));
            }
        }
    }
    f.into_violation()
}
