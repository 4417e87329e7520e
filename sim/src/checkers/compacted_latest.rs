//! Compaction keeps the latest: on a compacted topic, a record that was acknowledged at offset
//! `o`, or served to a reader at `o`, is in the final read at `o` — unless the cleaner was
//! allowed to remove it:
//! * a later record of the same key is in the final read (the cleaner keeps only the latest);
//! * or a tombstone of that key may have expired: Kafka drops a tombstone, and with it every
//!   older record of its key, only `delete.retention.ms` after the cleaner first reached it,
//!   which is after the tombstone was produced. So a tombstone produced at `t` can be gone only
//!   if `t + delete.retention.ms` is before the end of the final read (its offset, if it was
//!   acknowledged, must also be at or above `o`);
//! * or the usual excuses: below the final log start, or under the page-cache policy a power
//!   loss after the record was sent or served; and a bit flip at rest anywhere in the
//!   partition (a single broker has no other copy, and a record below the flip may have been
//!   removed for a newer one the flip destroyed).
//!
//! Because a reader that once saw the latest value of a key must later see it (or a newer one),
//! this is also "reads never go back in time per key": an older value can never become the
//! latest again. Records the final read serves are checked by `no-phantom` and `order`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::{CheckContext, Findings, Violation};
use crate::history::{served_id, HistoryData, RecordId};

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let c = h.compaction.as_ref()?;
    let mut f = Findings::new("compacted-latest", "records the cleaner was not allowed to remove are gone");
    let end = h.healed_at.unwrap_or_default() + ctx.liveness_bound;
    let retention = Duration::from_millis(u64::try_from(c.delete_retention_ms).unwrap_or(0));
    let fr = &h.final_read;
    // Per partition and key: the final read's offsets of that key.
    let mut final_keys: BTreeMap<(i32, Option<Bytes>), Vec<i64>> = BTreeMap::new();
    for (p, records) in &fr.records {
        for (o, r) in records {
            final_keys.entry((*p, r.key.clone())).or_default().push(*o);
        }
    }
    // Tombstones that may have expired, per partition and key: the highest offset of one (an
    // expired tombstone takes every older record of its key with it); `i64::MAX` when one was
    // never acknowledged (its offset is unknown).
    let mut expirable: BTreeMap<(i32, Option<Bytes>), i64> = BTreeMap::new();
    let acked_at: BTreeMap<RecordId, i64> = h.acks.iter().map(|a| (a.id, a.offset)).collect();
    for r in h.produced.values().filter(|r| r.tombstone && r.created_at + retention <= end) {
        let offset = acked_at.get(&r.id).copied().unwrap_or(i64::MAX);
        let e = expirable.entry((r.partition, r.key.clone())).or_insert(offset);
        *e = (*e).max(offset);
    }
    let allowed_gone = |p: i32, key: &Option<Bytes>, o: i64| {
        final_keys.get(&(p, key.clone())).is_some_and(|os| os.last().is_some_and(|&last| last > o))
            || expirable.get(&(p, key.clone())).is_some_and(|&highest| highest >= o)
    };
    let present = |p: i32, o: i64, id: RecordId| -> Option<bool> {
        let records = fr.records.get(&p)?;
        Some(records.binary_search_by_key(&o, |(x, _)| *x).ok().is_some_and(|i| served_id(&records[i].1) == Some(id)))
    };
    let mut check_one = |what: &str, p: i32, o: i64, id: RecordId, key: &Option<Bytes>, since: Duration| {
        let Some(&start) = fr.log_start.get(&p) else { return }; // not read: liveness reports it
        if o < start || h.bit_flips.contains_key(&p) || ctx.power_loss_between(h, since, end) {
            return;
        }
        match present(p, o, id) {
            Some(true) | None => {}
            Some(false) if allowed_gone(p, key, o) => {}
            Some(false) => {
                let why = fr.stuck.get(&p).map(|(at, w)| format!(" (read stopped at {at}: {w})")).unwrap_or_default();
                let later: Vec<i64> = final_keys.get(&(p, key.clone())).cloned().unwrap_or_default();
                let tombstones: Vec<String> = h
                    .produced
                    .values()
                    .filter(|r| r.tombstone && r.partition == p && r.key == *key)
                    .map(|r| format!("{:?} made at {:?} acked at {:?}", r.id, r.created_at, acked_at.get(&r.id)))
                    .collect();
                f.add(format!(
                    "p{p} offset {o}: {what} record {id:?} of key {:?} is gone; the final read's records of that key are at {later:?}, its tombstones {tombstones:?}{why}",
                    key.as_deref().map(String::from_utf8_lossy)
                ));
            }
        }
    };
    for a in &h.acks {
        let Some(r) = h.produced.get(&a.id) else { continue };
        check_one("acknowledged", a.partition, a.offset, a.id, &r.key, a.sent_at);
    }
    for obs in &h.observations {
        let Some(id) = served_id(&obs.record) else { continue }; // no-phantom reports it
        check_one(&format!("served-to-{}", obs.reader), obs.partition, obs.offset, id, &obs.record.key, obs.sent_at);
    }
    f.into_violation()
}
