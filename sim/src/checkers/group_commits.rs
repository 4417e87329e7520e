//! Consumer groups: committed offsets never move backwards (there is no explicit reset in the
//! workload). A commit sent after another was acknowledged never stores a lower offset, and the
//! offsets read back after the heal (across broker crashes and restarts) are at least the last
//! acknowledged commit of each partition: commits are acknowledged only once durable. The one
//! legitimate way back is an unanswered older commit landing late (see
//! `HistoryData::commit_attempts`).

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    if !h.group {
        return None;
    }
    let mut f = Findings::new("group-commits", "committed offsets that moved backwards");
    let mut by_partition: BTreeMap<i32, Vec<&crate::history::Commit>> = BTreeMap::new();
    for c in &h.commits {
        by_partition.entry(c.partition).or_default().push(c);
    }
    for (p, commits) in &by_partition {
        for later in commits {
            let zombie = h.commit_attempts.iter().any(|&(zp, zo, sent, answered)| !answered && zp == *p && zo <= later.offset && sent < later.sent_at);
            if zombie {
                continue;
            }
            if let Some(earlier) = commits.iter().filter(|e| e.at < later.sent_at && e.offset > later.offset).max_by_key(|e| e.offset) {
                f.add(format!(
                    "p{p}: {} committed {} (generation {}) after {} committed {} (generation {}) was acknowledged",
                    later.member, later.offset, later.generation, earlier.member, earlier.offset, earlier.generation
                ));
            }
        }
        let acked_max = commits.iter().map(|c| c.offset).max().unwrap_or(-1);
        match h.final_commits.as_ref().map(|m| m.get(p).copied().unwrap_or(-1)) {
            Some(last) if last < acked_max && !h.zombie_commit(*p, last, h.final_read_at()) => f.add(format!("p{p}: committed offset {last} after the heal, but {acked_max} was acknowledged")),
            None => f.add("the committed offsets could not be read after the heal".to_string()),
            _ => {}
        }
    }
    f.into_violation()
}
