//! The committed prefix of the metadata log never changes, and every node agrees on it.
//!
//! During the run, whenever a node reported a high watermark `hw` (DescribeQuorum), the
//! observer read that node's `__cluster_metadata-0` segments from its disk and recorded the
//! entry (epoch, digest) at every offset below `hw`: such an entry is committed. This checker
//! reports:
//! * an offset where a later read below a reported high watermark found another entry than
//!   the first (a committed entry rewritten);
//! * after the heal and convergence, a node whose log differs from the leader's below the
//!   leader's high watermark, or lacks an entry there;
//! * a committed entry that the leader's final log no longer holds (vanished or rewritten), or
//!   that lies at or above the final high watermark (the high watermark went back).
//!
//! Entries below a node's newest snapshot may be gone from its log: the snapshot holds them
//! (whose contents the metadata-converges checker compares, image against image).

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("committed-prefix", "committed metadata entries rewritten, lost or disagreed on");
    for (offset, first, later) in &c.committed_conflicts {
        f.add(format!(
            "offset {offset}: committed as epoch {} #{:016x} (node {} below hw {} at {:?}), later epoch {} #{:016x} (node {} below hw {} at {:?})",
            first.digest.0, first.digest.1, first.node + 1, first.high_watermark, first.at,
            later.digest.0, later.digest.1, later.node + 1, later.high_watermark, later.at
        ));
    }
    let Some((leader, epoch, hw)) = c.final_leader else {
        return f.into_violation(); // not converged: the liveness checker reports it
    };
    let Some(Ok(leader_log)) = c.final_logs.iter().find(|(i, _)| *i == leader).map(|(_, l)| l) else {
        f.add(format!("the final leader's (node {}) metadata log could not be read", leader + 1));
        return f.into_violation();
    };
    for (node, log) in &c.final_logs {
        if *node == leader {
            continue;
        }
        let log = match log {
            Ok(l) => l,
            Err(e) => {
                f.add(format!("node {}: metadata log unreadable after the heal: {e}", node + 1));
                continue;
            }
        };
        for (offset, want) in leader_log.entries.range(..hw) {
            match log.entries.get(offset) {
                Some(got) if got == want => {}
                Some(got) => f.add(format!(
                    "node {} offset {offset}: epoch {} #{:016x}, but the leader (node {}, epoch {epoch}, hw {hw}) has epoch {} #{:016x}",
                    node + 1, got.0, got.1, leader + 1, want.0, want.1
                )),
                None if *offset < log.snapshot_end => {}
                None => f.add(format!("node {} lacks offset {offset}, below the leader's (node {}) high watermark {hw}", node + 1, leader + 1)),
            }
        }
    }
    for (offset, seen) in &c.committed {
        if *offset >= hw {
            f.add(format!(
                "offset {offset} was below node {}'s high watermark {} at {:?}, but the final high watermark is {hw}",
                seen.node + 1, seen.high_watermark, seen.at
            ));
            continue;
        }
        match leader_log.entries.get(offset) {
            Some(d) if *d == seen.digest => {}
            Some(d) => f.add(format!(
                "offset {offset}: committed as epoch {} #{:016x} (node {} at {:?}), the final leader's log has epoch {} #{:016x}",
                seen.digest.0, seen.digest.1, seen.node + 1, seen.at, d.0, d.1
            )),
            None if *offset < leader_log.snapshot_end => {}
            None => f.add(format!("offset {offset}: committed (node {} at {:?}) but gone from the final leader's log", seen.node + 1, seen.at)),
        }
    }
    f.into_violation()
}
