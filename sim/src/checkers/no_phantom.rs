//! No phantom or corrupt data: every record any reader is served was produced, to that
//! partition, with exactly that key, value and headers; and no batch that fails its CRC or does
//! not decode ever reaches a client (bit flips must be caught by the broker, not served).

use super::{CheckContext, Findings, Violation};
use crate::checkers::one_record_per_offset::short;
use crate::history::{served_id, HistoryData, Served};

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("no-phantom", "records served that were never produced (or corrupt data served)");
    for c in &h.corrupt_served {
        f.add(c.clone());
    }
    let final_reads = h.final_read.records.iter().flat_map(|(p, rs)| rs.iter().map(move |(o, r)| (*p, *o, r, "checker")));
    let seen = h.observations.iter().map(|o| (o.partition, o.offset, &o.record, o.reader.as_str())).chain(final_reads);
    for (p, offset, record, reader) in seen {
        if let Some(why) = phantom(h, p, record) {
            f.add(format!("p{p} offset {offset} served to {reader}: {} ({why})", short(record)));
        }
    }
    f.into_violation()
}

fn phantom(h: &HistoryData, partition: i32, record: &Served) -> Option<&'static str> {
    let Some(id) = served_id(record) else { return Some("names no producer (in its value, or a tombstone's id header)") };
    let Some(produced) = h.produced.get(&id) else { return Some("never produced") };
    if produced.partition != partition {
        return Some("produced to another partition");
    }
    if !produced.matches(record) {
        return Some("key, value or headers differ from what was produced");
    }
    None
}
