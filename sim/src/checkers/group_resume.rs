//! Consumer groups: a member that takes over a partition resumes at the group's last committed
//! offset, and no record below the final committed offset was skipped by the group.
//!
//! The committed offset a member reads must be at least every commit acknowledged before it
//! asked (else a commit was lost; the one exception is an older commit whose answer never came,
//! which may land late, see `HistoryData::commit_attempts`) and must be one that some member sent (else records would be
//! skipped). And every offset below the final committed offset of a partition was served to
//! some member of the group: a commit only ever covers what was consumed.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    if !h.group {
        return None;
    }
    let mut f = Findings::new("group-resume", "members resuming away from the last committed offset, or skipped records");
    for r in &h.resumes {
        let acked: Vec<i64> = h.commits.iter().filter(|c| c.partition == r.partition && c.at < r.sent_at).map(|c| c.offset).collect();
        let acked_max = acked.iter().copied().max().unwrap_or(-1);
        if r.committed < acked_max && !h.zombie_commit(r.partition, r.committed, r.at) {
            f.add(format!(
                "p{}: {} (generation {}) resumed at committed offset {} but {acked_max} had been committed",
                r.partition, r.member, r.generation, r.committed
            ));
        } else if r.committed >= 0 && !h.commit_attempts.iter().any(|&(p, o, sent_at, _)| p == r.partition && o == r.committed && sent_at <= r.at) {
            f.add(format!("p{}: {} (generation {}) resumed at {}, an offset nobody committed", r.partition, r.member, r.generation, r.committed));
        }
    }
    if let Some(finals) = &h.final_commits {
        for (&p, &last) in finals {
            let consumed = h.group_consumed.get(&p);
            let missing: Vec<i64> = (0..last.max(0)).filter(|o| !consumed.is_some_and(|s| s.contains(o))).take(5).collect();
            if !missing.is_empty() {
                f.add(format!("p{p}: committed up to {last}, but offsets {missing:?} were never served to the group"));
            }
        }
    }
    f.into_violation()
}
