//! Per-partition order: every fetch answer serves a partition's records in strictly increasing
//! offsets (a reader that skips what it has already seen would otherwise hide a batch served out
//! of order or twice); a producer that waits for each acknowledgement before sending the next
//! batch sees its records acknowledged at increasing offsets; and the first copies of an
//! idempotent producer's records appear in the log in the order it produced them (a plain
//! producer's retries may legitimately land late, as in Kafka). Under the page-cache policy a
//! power loss may reuse offsets, so pairs straddling one are not compared; nor are offsets a bit
//! flip destroyed.

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::{served_id, HistoryData};

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("order", "records out of order");
    for what in &h.out_of_order_served {
        f.add(what.clone());
    }
    // Acknowledgements, in the order they were received, per (producer, partition).
    let mut last: BTreeMap<(u32, i32), (u64, i64, std::time::Duration)> = BTreeMap::new();
    for a in &h.acks {
        if h.flipped(a.partition, a.offset) {
            continue;
        }
        let key = (a.id.0, a.partition);
        if let Some(&(n, offset, at)) = last.get(&key) {
            if a.id.1 > n && a.offset <= offset && !ctx.power_loss_between(h, at, a.at) {
                f.add(format!("p{} producer {}: record #{} acked at offset {offset}, later record #{} at offset {}", a.partition, a.id.0, n, a.id.1, a.offset));
            }
        }
        last.insert(key, (a.id.1, a.offset, a.sent_at));
    }
    let idempotent: std::collections::BTreeSet<u32> = h.acks.iter().filter(|a| a.idempotent).map(|a| a.id.0).collect();
    for (p, records) in &h.final_read.records {
        let mut seen: BTreeMap<u32, (u64, i64)> = BTreeMap::new();
        for (offset, r) in records {
            let Some(id) = served_id(r) else { continue };
            if !idempotent.contains(&id.0) || h.flipped(*p, *offset) {
                continue;
            }
            if let Some(&(n, prev)) = seen.get(&id.0) {
                if id.1 < n {
                    f.add(format!("p{p} producer {}: record #{} at offset {offset} after record #{n} at offset {prev}", id.0, id.1));
                    continue;
                }
            }
            seen.insert(id.0, (id.1, *offset));
        }
    }
    f.into_violation()
}
