//! Log compaction (`cleanup.policy=compact`): what the cleaner keeps of each batch.
//!
//! The cleaner reads the dirty section of a partition (the records written since the last
//! cleaning, up to the first offset it may not clean) into an [`OffsetMap`] of key → latest
//! offset, then rewrites the segments from the log start through that section, keeping a record
//! exactly when
//! * it lies at or past the map's end (the map did not reach it: nothing is known to supersede
//!   it), or
//! * it has a key, no later record of the same key is in the map, and it is not a tombstone
//!   whose delete horizon has passed.
//!
//! Records without a key are removed (a compacted topic refuses them at produce; Kafka's cleaner
//! drops any it finds). A tombstone (a null value) that is kept gets a delete horizon, `now +
//! delete.retention.ms`, stamped into its batch the first time it is cleaned (KIP-534, see
//! [`gregor_core::batch_filter`]); a later cleaning past that horizon removes it. So a consumer
//! that reads from the start within `delete.retention.ms` of a tombstone's first cleaning sees
//! it.
//!
//! A batch left with no records is removed, unless it must stay: the last batch of an
//! idempotent producer (its sequence numbers must survive a rebuild of the producer state from
//! the log, as Kafka keeps it) or the last batch of a cleaned segment (so segments stay
//! contiguous: the next segment starts where the last batch ends). Such a batch stays as an
//! empty batch, its header alone. Control batches (transaction markers) are kept as they are.
//!
//! Guarantees: every kept record keeps its offset, timestamp, key, value and headers; batches
//! keep their offsets, producer fields and leader epoch (see [`gregor_core::batch_filter`]); a
//! batch nothing changed in is returned as [`Cleaned::Unchanged`], so its bytes are copied, not
//! re-encoded; nothing here panics on any batch bytes: an undecodable batch is an error.

pub mod offset_map;

use gregor_core::batch::{BatchHeader, ATTR_DELETE_HORIZON};
use gregor_core::batch_filter;
use gregor_core::records::{decode_records, RecordsError};

pub use offset_map::OffsetMap;

/// What the cleaner knows when it cleans one batch.
pub struct Rules<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not put in the map: they are kept.
    pub map_end: i64,
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// Most bytes a batch's records may decompress to.
    pub decompressed_bytes_max: u64,
}

/// One batch after cleaning.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Keep the batch's bytes as they are.
    Unchanged,
    /// Nothing of it stays.
    Removed,
    /// These bytes replace it.
    Rewritten(Vec<u8>),
}

/// What cleaning removed, for the cleaner's statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub records: u64,
    /// Of those, tombstones past their delete horizon.
    pub tombstones: u64,
    /// Of those, records without a key.
    pub keyless: u64,
}

impl Removed {
    pub fn add(&mut self, o: Removed) {
        self.records += o.records;
        self.tombstones += o.tombstones;
        self.keyless += o.keyless;
    }
}

/// Puts every keyed record of `batch` below `end` in `map`. `Ok(None)` when all fit; `Ok(Some(o))`
/// when the map filled at the record at offset `o` (the map then covers exactly the offsets
/// below `o`). Control batches hold no keyed data and are skipped.
pub fn add_to_map(batch: &[u8], h: &BatchHeader, map: &mut OffsetMap, end: i64, decompressed_bytes_max: u64) -> Result<Option<i64>, RecordsError> {
    if h.is_control() || h.record_count == 0 {
        return Ok(None);
    }
    let decoded = decode_records(batch, h, decompressed_bytes_max)?;
    for r in decoded.records.iter().filter(|r| r.offset < end) {
        if let Some(key) = decoded.key(r) {
            if !map.put(key, r.offset) {
                return Ok(Some(r.offset));
            }
        }
    }
    Ok(None)
}

/// Cleans one batch under `rules`; `must_stay` keeps it (empty if need be) even when no record
/// does (see the module doc).
pub fn clean_batch(batch: &[u8], h: &BatchHeader, rules: &Rules, must_stay: bool) -> Result<(Cleaned, Removed), RecordsError> {
    if h.is_control() || h.base_offset >= rules.map_end || h.record_count == 0 {
        let outcome = if h.record_count == 0 && !must_stay && !h.is_control() { Cleaned::Removed } else { Cleaned::Unchanged };
        return Ok((outcome, Removed::default()));
    }
    let decoded = decode_records(batch, h, rules.decompressed_bytes_max)?;
    let horizon_passed = h.attributes & ATTR_DELETE_HORIZON != 0 && rules.now_ms >= h.base_timestamp;
    let mut removed = Removed::default();
    let mut tombstone_kept = false;
    let keep: Vec<bool> = decoded
        .records
        .iter()
        .map(|r| {
            if r.offset >= rules.map_end {
                // Not cleaned yet: its horizon starts when a cleaning covers it.
                return true;
            }
            let Some(key) = decoded.key(r) else {
                removed.keyless += 1;
                return false;
            };
            if rules.map.get(key).is_some_and(|latest| latest > r.offset) {
                return false;
            }
            if r.value_is_null {
                if horizon_passed {
                    removed.tombstones += 1;
                    return false;
                }
                tombstone_kept = true;
            }
            true
        })
        .collect();
    let kept = keep.iter().filter(|k| **k).count();
    removed.records = (decoded.records.len() - kept) as u64;
    let needs_horizon = tombstone_kept && h.attributes & ATTR_DELETE_HORIZON == 0;
    if kept == decoded.records.len() && !needs_horizon {
        return Ok((Cleaned::Unchanged, removed));
    }
    if kept == 0 && !must_stay {
        return Ok((Cleaned::Removed, removed));
    }
    let horizon = needs_horizon.then(|| rules.now_ms.saturating_add(rules.delete_retention_ms));
    let out = batch_filter::filter(batch, h, &decoded, &keep, horizon).map_err(|e| RecordsError::Invalid(format!("cannot re-encode the batch at {}: {e}", h.base_offset)))?;
    Ok((Cleaned::Rewritten(out), removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::batch::{build_simple, validate};

    fn batch(base: i64, records: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        let r: Vec<(Option<&[u8]>, Option<&[u8]>)> = records.iter().map(|(k, v)| (k.map(str::as_bytes), v.map(str::as_bytes))).collect();
        build_simple(base, 1_000, &r)
    }

    fn kept(out: &[u8]) -> Vec<(i64, Option<String>, bool)> {
        let h = validate(out).unwrap();
        let d = decode_records(out, &h, 1 << 20).unwrap();
        d.records.iter().map(|r| (r.offset, d.key(r).map(|k| String::from_utf8(k.to_vec()).unwrap()), r.value_is_null)).collect()
    }

    #[test]
    fn older_values_keyless_records_and_expired_tombstones_go() {
        let b = batch(10, &[(Some("a"), Some("1")), (Some("b"), Some("1")), (None, Some("x")), (Some("a"), Some("2")), (Some("c"), None)]);
        let h = validate(&b).unwrap();
        let mut map = OffsetMap::new(1 << 20);
        assert_eq!(add_to_map(&b, &h, &mut map, i64::MAX, 1 << 20).unwrap(), None);
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (Some(13), Some(11), Some(14)));
        let rules = Rules { map: &map, map_end: 15, now_ms: 5_000, delete_retention_ms: 1_000, decompressed_bytes_max: 1 << 20 };
        let (out, removed) = clean_batch(&b, &h, &rules, false).unwrap();
        let Cleaned::Rewritten(out) = out else { panic!("{out:?}") };
        assert_eq!(kept(&out), vec![(11, Some("b".into()), false), (13, Some("a".into()), false), (14, Some("c".into()), true)]);
        assert_eq!(removed, Removed { records: 2, tombstones: 0, keyless: 1 });
        // The kept tombstone got its horizon; before it nothing more goes, after it the tombstone does.
        let oh = validate(&out).unwrap();
        assert_eq!((oh.attributes & ATTR_DELETE_HORIZON != 0, oh.base_timestamp), (true, 6_000));
        let before = Rules { now_ms: 5_999, ..rules };
        assert_eq!(clean_batch(&out, &oh, &before, false).unwrap().0, Cleaned::Unchanged);
        let after = Rules { now_ms: 6_000, ..rules };
        let (out2, removed) = clean_batch(&out, &oh, &after, false).unwrap();
        let Cleaned::Rewritten(out2) = out2 else { panic!() };
        assert_eq!(kept(&out2), vec![(11, Some("b".into()), false), (13, Some("a".into()), false)]);
        assert_eq!(removed.tombstones, 1);
    }

    #[test]
    fn records_past_the_map_stay_and_an_emptied_batch_goes_unless_it_must_stay() {
        let b = batch(0, &[(Some("a"), Some("1")), (Some("a"), Some("2"))]);
        let h = validate(&b).unwrap();
        let later = batch(2, &[(Some("a"), Some("3"))]);
        let mut map = OffsetMap::new(1 << 20);
        add_to_map(&later, &validate(&later).unwrap(), &mut map, i64::MAX, 1 << 20).unwrap();
        let rules = Rules { map: &map, map_end: 3, now_ms: 0, delete_retention_ms: 0, decompressed_bytes_max: 1 << 20 };
        assert_eq!(clean_batch(&b, &h, &rules, false).unwrap().0, Cleaned::Removed);
        let (stay, _) = clean_batch(&b, &h, &rules, true).unwrap();
        let Cleaned::Rewritten(stay) = stay else { panic!() };
        let sh = validate(&stay).unwrap();
        assert_eq!((sh.record_count, sh.base_offset, sh.last_offset()), (0, 0, 1));
        // The same batch when the map ends before it: kept whole.
        let short = Rules { map_end: 0, ..rules };
        assert_eq!(clean_batch(&b, &h, &short, false).unwrap().0, Cleaned::Unchanged);
        // The latest record of a key stays.
        assert_eq!(clean_batch(&later, &validate(&later).unwrap(), &rules, false).unwrap().0, Cleaned::Unchanged);
    }

    #[test]
    fn a_full_map_says_where_it_stopped() {
        let b = batch(100, &[(Some("a"), Some("1")), (Some("b"), Some("1")), (Some("a"), Some("2")), (Some("c"), Some("1"))]);
        let h = validate(&b).unwrap();
        let mut map = OffsetMap::new(2 * (offset_map::ENTRY_OVERHEAD_BYTES + 1));
        assert_eq!(add_to_map(&b, &h, &mut map, i64::MAX, 1 << 20).unwrap(), Some(103));
        assert_eq!(map.get(b"a"), Some(102));
        // Only below `end`.
        let mut map = OffsetMap::new(1 << 20);
        add_to_map(&b, &h, &mut map, 102, 1 << 20).unwrap();
        assert_eq!((map.get(b"a"), map.get(b"c")), (Some(100), None));
    }
}
