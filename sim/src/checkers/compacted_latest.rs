//! Compaction keeps the latest: on a compacted topic, a record that was acknowledged at offset
//! `o`, or served to a reader at `o`, is in the final read at `o` — unless the cleaner was
//! allowed to remove it:
//! * a later record of the same key is there (the cleaner keeps only the latest);
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
//! In the cluster scenarios the same holds for every replica's copy on disk after the replicas
//! caught up (below the high watermark and the replica's own end): each replica cleans its own
//! copy, and any of them may lead next.
//!
//! Because a reader that once saw the latest value of a key must later see it (or a newer one),
//! this is also "reads never go back in time per key": an older value can never become the
//! latest again. Records the final read serves are checked by `no-phantom` and `order`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::{CheckContext, Findings, Violation};
use crate::history::{served_id, HistoryData, RecordId, Served};

/// One copy of a partition that must keep the latest: its records in offset order, and the
/// offsets it covers.
struct Copy<'a> {
    name: String,
    records: &'a [(i64, Served)],
    start: i64,
    end: i64,
    /// Key -> its offsets in this copy.
    keys: BTreeMap<Option<Bytes>, Vec<i64>>,
}

impl<'a> Copy<'a> {
    fn new(name: String, records: &'a [(i64, Served)], start: i64, end: i64) -> Copy<'a> {
        let mut keys: BTreeMap<Option<Bytes>, Vec<i64>> = BTreeMap::new();
        for (o, r) in records.iter().filter(|(o, _)| *o < end) {
            keys.entry(r.key.clone()).or_default().push(*o);
        }
        Copy { name, records, start, end, keys }
    }

    fn holds(&self, o: i64, id: RecordId) -> bool {
        self.records.binary_search_by_key(&o, |(x, _)| *x).ok().is_some_and(|i| served_id(&self.records[i].1) == Some(id))
    }

    fn newer_of_key(&self, key: &Option<Bytes>, o: i64) -> bool {
        self.keys.get(key).and_then(|os| os.last()).is_some_and(|&last| last > o)
    }
}

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let c = h.compaction.as_ref()?;
    let mut f = Findings::new("compacted-latest", "records the cleaner was not allowed to remove are gone");
    let end = h.healed_at.unwrap_or_default() + ctx.liveness_bound;
    let retention = Duration::from_millis(u64::try_from(c.delete_retention_ms).unwrap_or(0));
    let fr = &h.final_read;
    // The copies to check, per partition: the final read, and every replica's disk.
    let mut copies: BTreeMap<i32, Vec<Copy>> = BTreeMap::new();
    for (p, records) in &fr.records {
        let (Some(&start), Some(&hw)) = (fr.log_start.get(p), fr.high_watermark.get(p)) else { continue };
        copies.entry(*p).or_default().push(Copy::new("the final read".into(), records, start, hw));
    }
    if let Some(cluster) = &h.cluster {
        for (p, replicas) in &cluster.final_replica_records {
            let (Some(&start), Some(&hw)) = (fr.log_start.get(p), fr.high_watermark.get(p)) else { continue };
            for (id, records) in replicas {
                let replica_end = records.last().map_or(start, |(o, _)| o + 1).min(hw);
                copies.entry(*p).or_default().push(Copy::new(format!("replica {id}"), records, start, replica_end));
            }
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
    let expired = |p: i32, key: &Option<Bytes>, o: i64| expirable.get(&(p, key.clone())).is_some_and(|&highest| highest >= o);
    let mut check_one = |what: &str, p: i32, o: i64, id: RecordId, key: &Option<Bytes>, since: Duration| {
        if h.bit_flips.contains_key(&p) || ctx.power_loss_between(h, since, end) {
            return;
        }
        for copy in copies.get(&p).into_iter().flatten() {
            if o < copy.start || o >= copy.end || copy.holds(o, id) || copy.newer_of_key(key, o) || expired(p, key, o) {
                continue;
            }
            let why = fr.stuck.get(&p).map(|(at, w)| format!(" (the final read stopped at {at}: {w})")).unwrap_or_default();
            let tombstones: Vec<String> = h
                .produced
                .values()
                .filter(|r| r.tombstone && r.partition == p && r.key == *key)
                .map(|r| format!("{:?} made at {:?} acked at {:?}", r.id, r.created_at, acked_at.get(&r.id)))
                .collect();
            f.add(format!(
                "p{p} offset {o}: {what} record {id:?} of key {:?} is gone from {}; its records there are at {:?}, its tombstones {tombstones:?}{why}",
                key.as_deref().map(String::from_utf8_lossy),
                copy.name,
                copy.keys.get(key).cloned().unwrap_or_default(),
            ));
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
