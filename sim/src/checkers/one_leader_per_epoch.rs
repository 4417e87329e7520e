//! Election safety: no quorum epoch has two leaders. Every DescribeQuorum answer polled from
//! every node during the run names the leader that node knows for its epoch; two answers that
//! name different leaders for one epoch mean two nodes were elected in it (or a node followed a
//! leader nobody elected).

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("one-leader-per-epoch", "quorum epochs with two leaders");
    // Epoch -> leader -> (first node that named it, when).
    let mut leaders: BTreeMap<i32, BTreeMap<i32, (usize, std::time::Duration)>> = BTreeMap::new();
    for p in c.quorum_polls.iter().filter(|p| p.leader_id >= 0) {
        leaders.entry(p.leader_epoch).or_default().entry(p.leader_id).or_insert((p.node, p.at));
    }
    for (epoch, named) in leaders.iter().filter(|(_, l)| l.len() > 1) {
        let who: Vec<String> = named.iter().map(|(l, (n, at))| format!("leader {l} (named by node {} at {at:?})", n + 1)).collect();
        f.add(format!("epoch {epoch}: {}", who.join(", ")));
    }
    f.into_violation()
}
