//! Idempotence: a record sent by an idempotent producer is written once, however often the
//! producer retried it (after timeouts, broken connections or broker restarts). Checked on the
//! final read, and on what consumers were served unless a page-cache power loss intervened.

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::{served_id, HistoryData, RecordId};
use crate::knobs::Durability;

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("no-duplicates", "records of idempotent producers written twice");
    let idempotent: std::collections::BTreeSet<u32> = h.acks.iter().filter(|a| a.idempotent).map(|a| a.id.0).collect();
    let mut at: BTreeMap<RecordId, (i32, i64)> = BTreeMap::new();
    let use_consumers = ctx.durability == Durability::Fsync || h.power_losses.is_empty();
    let final_reads = h.final_read.records.iter().flat_map(|(p, rs)| rs.iter().map(move |(o, r)| (*p, *o, r)));
    let consumers = h.observations.iter().filter(|_| use_consumers).map(|o| (o.partition, o.offset, &o.record));
    for (p, offset, r) in final_reads.chain(consumers) {
        let Some(id) = served_id(r) else { continue };
        if !idempotent.contains(&id.0) || h.flipped(p, offset) {
            continue;
        }
        match at.get(&id) {
            None => {
                at.insert(id, (p, offset));
            }
            Some(&(p0, o0)) if (p0, o0) != (p, offset) => {
                f.add(format!("record {id:?} at p{p0} offset {o0} and at p{p} offset {offset}"));
            }
            Some(_) => {}
        }
    }
    f.into_violation()
}
