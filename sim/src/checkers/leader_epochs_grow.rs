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

/// The server asserts that a hosted partition's leader epoch never goes back, so no injectable
/// bug reaches this checker; these tests prove on recorded answers that it bites.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, MetadataPoll, MetadataView, PartitionView, TopicView};
    use crate::knobs::Durability;

    fn poll(node: usize, incarnation: u64, ms: u64, epoch: i32) -> MetadataPoll {
        let p = PartitionView { error_code: 0, leader: 1, leader_epoch: epoch, replicas: vec![1], isr: vec![1] };
        let t = TopicView { error_code: 0, partitions: BTreeMap::from([(0, p)]) };
        let view = MetadataView { brokers: BTreeMap::new(), controller_id: 1, topics: BTreeMap::from([("t".to_string(), t)]) };
        MetadataPoll { node, incarnation, at: Duration::from_millis(ms), view }
    }

    fn run(polls: Vec<MetadataPoll>) -> Option<Violation> {
        let h = HistoryData { cluster: Some(ClusterData { metadata_polls: polls, ..ClusterData::default() }), ..HistoryData::default() };
        check(&h, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) })
    }

    #[test]
    fn a_leader_epoch_that_goes_back_is_caught() {
        let v = run(vec![poll(0, 0, 1, 3), poll(0, 0, 2, 2)]).expect("caught");
        assert!(v.message.contains("node 1 t-0: leader 1 epoch 3"), "{v}");
    }

    #[test]
    fn a_restarted_broker_or_another_broker_may_show_less() {
        assert_eq!(run(vec![poll(0, 0, 1, 3), poll(1, 0, 2, 2), poll(0, 1, 3, 1), poll(0, 1, 4, 3)]), None);
    }
}
