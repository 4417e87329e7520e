//! Offsets are dense: the final read of every partition is served every offset from its log
//! start to its high watermark, and a tailing consumer is never served offset `n + k` right after
//! `n` (k > 1) unless the log start had moved past the skipped offsets (retention, DeleteRecords).
//! Nothing else may open a hole: no transactions are in play, and a compacted topic (whose
//! cleaner removes records, leaving holes) is not checked here but by
//! [`super::compacted_latest`].

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    if h.compaction.is_some() {
        return None;
    }
    let mut f = Findings::new("dense-offsets", "holes in the offsets served");
    for (p, records) in &h.final_read.records {
        let start = h.final_read.log_start.get(p).copied().unwrap_or(0);
        let mut expected = start;
        for (offset, _) in records {
            if *offset != expected && !h.flipped(*p, expected) {
                f.add(format!("final read of p{p}: offset {offset} served after {} (log start {start})", expected - 1));
            }
            expected = offset + 1;
        }
        let hw = h.final_read.high_watermark.get(p).copied().unwrap_or(0);
        if !h.final_read.stuck.contains_key(p) && expected < hw {
            f.add(format!("final read of p{p}: served up to {} but the high watermark is {hw}", expected - 1));
        }
    }
    for g in &h.gaps {
        if g.log_start >= g.got || h.flipped(g.partition, g.expected) {
            continue;
        }
        f.add(format!("{} on p{}: offset {} served after {} (log start {})", g.reader, g.partition, g.got, g.expected - 1, g.log_start));
    }
    f.into_violation()
}
