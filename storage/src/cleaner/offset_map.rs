//! The cleaner's offset map: for each key of the dirty section, the offset of its latest
//! record, in bounded memory (Kafka's `SkimpyOffsetMap`, sized by
//! `log.cleaner.dedupe.buffer.size`).
//!
//! Guarantees: keys are compared whole (never by a hash alone), so two keys never share an
//! entry; [`OffsetMap::put`] refuses a new key once the accounted memory would pass the budget
//! and the caller stops building there (a record at or beyond the map's end is then simply kept);
//! lookups and iteration are deterministic (a `BTreeMap`, no random hashing state).

use std::collections::BTreeMap;

/// Bytes accounted per entry beyond its key: the offset, the map node's share and the key's
/// allocation header. An estimate that errs high, so the budget bounds real memory.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

pub struct OffsetMap {
    latest: BTreeMap<Box<[u8]>, i64>,
    budget_bytes: usize,
    used_bytes: usize,
}

impl OffsetMap {
    /// An empty map that may account at most `budget_bytes`.
    pub fn new(budget_bytes: usize) -> OffsetMap {
        OffsetMap { latest: BTreeMap::new(), budget_bytes, used_bytes: 0 }
    }

    /// Records `offset` as the latest of `key`; offsets must be put in increasing order. False
    /// (and nothing recorded) when `key` is new and does not fit in the budget.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(o) = self.latest.get_mut(key) {
            debug_assert!(*o < offset, "offsets are put in increasing order");
            *o = offset;
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD_BYTES;
        if self.used_bytes + cost > self.budget_bytes {
            return false;
        }
        self.used_bytes += cost;
        self.latest.insert(key.into(), offset);
        true
    }

    /// The latest offset of `key`, if the map has it.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Memory accounted so far.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// How full the map is (0.0 to 1.0), Kafka's `max-buffer-utilization-percent` / 100.
    pub fn utilization(&self) -> f64 {
        if self.budget_bytes == 0 {
            return 1.0;
        }
        self.used_bytes as f64 / self.budget_bytes as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_offset_wins_and_new_keys_stop_at_the_budget() {
        let mut m = OffsetMap::new(3 * (ENTRY_OVERHEAD_BYTES + 2));
        assert!(m.put(b"k1", 0) && m.put(b"k2", 1) && m.put(b"k1", 2));
        assert_eq!((m.get(b"k1"), m.get(b"k2"), m.get(b"k3")), (Some(2), Some(1), None));
        assert!(m.put(b"k3", 3));
        assert!(!m.put(b"k4", 4), "a fourth key does not fit");
        assert!(m.put(b"k2", 5), "a known key is updated even when full");
        assert_eq!((m.len(), m.get(b"k4"), m.get(b"k2")), (3, None, Some(5)));
        assert!((m.utilization() - 1.0).abs() < 1e-9);
        // Keys are whole: a prefix is another key.
        let mut m = OffsetMap::new(1 << 20);
        m.put(b"abc", 1);
        m.put(b"ab", 2);
        assert_eq!((m.get(b"abc"), m.get(b"ab")), (Some(1), Some(2)));
    }
}
