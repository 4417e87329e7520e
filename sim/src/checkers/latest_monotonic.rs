//! A partition's "latest" offset never goes back: once a ListOffsets "latest" answer (the high
//! watermark) was received, every answer to a request sent after that, from a leader of the same
//! or a later leader epoch, is at least as high — across leader changes too. A new leader's own
//! high watermark can lag behind its predecessor's until its followers fetch again; KIP-207
//! makes it answer OFFSET_NOT_AVAILABLE meanwhile. Answers from a deposed leader that has not
//! heard of its successor (a lower epoch) are what a client's leader epoch fences, so they are
//! compared only with answers of their own epoch or earlier.

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::{HistoryData, LatestPoll};

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("latest-monotonic", "ListOffsets latest answers below an earlier one");
    let mut by_partition: BTreeMap<i32, Vec<&LatestPoll>> = BTreeMap::new();
    for p in &c.latest_polls {
        by_partition.entry(p.partition).or_default().push(p);
    }
    for (partition, polls) in by_partition {
        let mut received: Vec<&LatestPoll> = polls.clone();
        received.sort_by_key(|p| p.at);
        let mut sent: Vec<&LatestPoll> = polls;
        sent.sort_by_key(|p| p.sent_at);
        // Sweep the answers in the order their requests were sent, keeping, per leader epoch, the
        // highest answer received before that send.
        let mut highest: BTreeMap<i32, &LatestPoll> = BTreeMap::new();
        let mut next = 0;
        for b in sent {
            while next < received.len() && received[next].at < b.sent_at {
                let a = received[next];
                let best = highest.entry(a.leader_epoch).or_insert(a);
                if a.offset > best.offset {
                    *best = a;
                }
                next += 1;
            }
            if let Some((_, a)) = highest.range(..=b.leader_epoch).filter(|(_, a)| a.offset > b.offset).max_by_key(|(_, a)| a.offset) {
                f.add(format!(
                    "p{partition}: node {} answered {} (epoch {}) at {:?}, then node {} answered {} (epoch {}) to a request sent at {:?}",
                    a.node + 1, a.offset, a.leader_epoch, a.at, b.node + 1, b.offset, b.leader_epoch, b.sent_at
                ));
            }
        }
    }
    f.into_violation()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::ClusterData;
    use crate::knobs::Durability;

    fn poll(node: usize, sent_ms: u64, at_ms: u64, offset: i64, leader_epoch: i32) -> LatestPoll {
        LatestPoll { node, partition: 0, sent_at: Duration::from_millis(sent_ms), at: Duration::from_millis(at_ms), offset, leader_epoch }
    }

    fn run(polls: Vec<LatestPoll>) -> Option<Violation> {
        let h = HistoryData { cluster: Some(ClusterData { latest_polls: polls, ..ClusterData::default() }), ..HistoryData::default() };
        check(&h, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) })
    }

    #[test]
    fn a_new_leader_answering_less_than_its_predecessor_is_caught() {
        let v = run(vec![poll(0, 0, 1, 10, 1), poll(1, 5, 6, 7, 2)]).expect("caught");
        assert!(v.message.contains("node 1 answered 10 (epoch 1)"), "{v}");
        assert!(v.message.contains("node 2 answered 7 (epoch 2)"), "{v}");
    }

    #[test]
    fn overlapping_requests_and_deposed_leaders_may_answer_less() {
        // Sent before the higher answer arrived; a deposed leader (epoch 1) after epoch 2's answer.
        assert_eq!(run(vec![poll(0, 0, 10, 10, 2), poll(1, 5, 20, 7, 2), poll(2, 30, 31, 8, 1), poll(0, 40, 41, 12, 2)]), None);
    }
}
