//! An offset never maps to two different records: every reader, at any time, is served the
//! same record at a given (partition, offset). Under the page-cache policy a power loss may
//! legitimately drop records that were already served, so offsets served before a power loss may
//! be reused after it; offsets a bit flip destroyed (see `HistoryData::flipped`) are not compared.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CheckContext, Findings, Violation};
use crate::history::{HistoryData, Served};

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("one-record-per-offset", "offsets served with two different records");
    let mut first: BTreeMap<(i32, i64), (&Served, &str, Duration)> = BTreeMap::new();
    let end = h.healed_at.unwrap_or_default() + ctx.liveness_bound;
    let final_reads = h.final_read.records.iter().flat_map(|(p, rs)| rs.iter().map(move |(o, r)| (*p, *o, r, "checker", end, end)));
    let seen = h.observations.iter().map(|o| (o.partition, o.offset, &o.record, o.reader.as_str(), o.sent_at, o.at)).chain(final_reads);
    for (p, offset, record, reader, sent_at, at) in seen {
        if h.flipped(p, offset) {
            continue;
        }
        match first.get(&(p, offset)) {
            None => {
                first.insert((p, offset), (record, reader, sent_at));
            }
            Some((prev, prev_reader, prev_at)) => {
                if *prev != record && !ctx.power_loss_between(h, *prev_at, at) {
                    // (prev_at is when the first fetch was sent: it may have been served just
                    // before a power loss and received after it.)
                    f.add(format!(
                        "p{p} offset {offset}: {prev_reader} at {prev_at:?} got {}, {reader} at {at:?} got {}",
                        short(prev),
                        short(record)
                    ));
                }
            }
        }
    }
    f.into_violation()
}

pub(crate) fn short(r: &Served) -> String {
    match &r.value {
        Some(v) => format!("{:?}", String::from_utf8_lossy(&v[..v.len().min(24)])),
        None => "null".to_string(),
    }
}
