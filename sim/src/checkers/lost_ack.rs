//! Durability: no acknowledged write is lost. Every record the broker acknowledged at offset `o`
//! is at offset `o` in the final read, unless something the contract allows removed it:
//! retention or DeleteRecords (`o` below the final log start), a bit flip at rest in that
//! partition at or below `o` (one broker has no other copy; the flip must then be caught, which
//! the phantom checker verifies), or, under the page-cache durability policy only, a power loss
//! after the request was sent (the broker may have answered just before losing power).
//! On a compacted topic the cleaner removes records too: [`super::compacted_latest`] checks it.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    if h.compaction.is_some() {
        return None;
    }
    let mut f = Findings::new("lost-ack", "acknowledged records lost");
    let fr = &h.final_read;
    let end = h.healed_at.unwrap_or_default() + ctx.liveness_bound;
    for a in &h.acks {
        let p = a.partition;
        let (Some(&start), Some(&hw), Some(records)) = (fr.log_start.get(&p), fr.high_watermark.get(&p), fr.records.get(&p)) else {
            continue; // not read at all: the liveness checker reports it
        };
        if a.offset < start || h.flipped(p, a.offset) || ctx.power_loss_between(h, a.sent_at, end) {
            continue;
        }
        let Some(produced) = h.produced.get(&a.id) else {
            f.add(format!("p{p} offset {}: acknowledged record {:?} missing from the history", a.offset, a.id));
            continue;
        };
        if a.offset >= hw {
            f.add(format!("p{p} offset {}: record {:?} acked at {:?}, but the final high watermark is {hw}", a.offset, a.id, a.at));
            continue;
        }
        match records.binary_search_by_key(&a.offset, |(o, _)| *o) {
            Ok(i) if produced.matches(&records[i].1) => {}
            Ok(i) => f.add(format!(
                "p{p} offset {}: record {:?} acked at {:?}, but the offset now holds {:?}",
                a.offset,
                a.id,
                a.at,
                records[i].1.value.as_ref().map(|v| String::from_utf8_lossy(&v[..v.len().min(24)]).into_owned())
            )),
            Err(_) => {
                let why = fr.stuck.get(&p).map(|(o, w)| format!(" (read stopped at {o}: {w})")).unwrap_or_default();
                f.add(format!("p{p} offset {}: record {:?} acked at {:?} was not served by the final read{why}", a.offset, a.id, a.at));
            }
        }
    }
    f.into_violation()
}
