//! The leader epoch cache of one partition replica (KIP-101/279/320), sans-IO: for every leader
//! epoch that wrote data to the log, the offset of its first batch. Followers use it (through the
//! leader's OffsetsForLeaderEpoch answer, or a Fetch response's diverging epoch) to find where
//! their log stops agreeing with the leader's, and truncate there before fetching.
//!
//! # Guarantees
//! * Entries are strictly increasing in both epoch and start offset, with epoch >= 0 and start
//!   offset >= 0. Every mutation keeps this (checked by assertions that stay on in release
//!   builds); no input, from the network or from disk, can break it or cause a panic.
//! * The rules are Kafka's (`LeaderEpochFileCache`), with one documented difference in
//!   [`LeaderEpochCache::assign`]: an epoch at or below the latest one is ignored.
//! * [`LeaderEpochCache::decode`] accepts exactly what [`LeaderEpochCache::encode`] writes (Kafka's
//!   `leader-epoch-checkpoint` text format) and never panics on arbitrary bytes. That format has
//!   no checksum, so the caller decides when to trust a decoded checkpoint (the partition log
//!   trusts it only after a clean shutdown, and only if it fits the log's offset range).
//!
//! No I/O, clock or randomness here: the partition log owns one cache per partition, feeds it
//! from the batches it appends or finds on disk, and persists its encoding.

/// Kafka's `UNDEFINED_EPOCH` (OffsetsForLeaderEpochResponse): no epoch known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// The version line of the checkpoint format (Kafka's `LeaderEpochCheckpointFile` version 0).
pub const CHECKPOINT_VERSION: u32 = 0;
/// Most entries a checkpoint may hold; bounds the work of decoding corrupt input. One entry per
/// leader epoch that wrote data, so real partitions stay many orders of magnitude below it.
pub const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

/// One cache entry: `epoch` wrote the log from `start_offset` up to the next entry's start offset
/// (or the log end, for the latest one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

impl EpochEntry {
    pub const fn new(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry { epoch, start_offset }
    }
}

/// The cache: entries ordered by epoch and by start offset (both strictly increasing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn new() -> LeaderEpochCache {
        LeaderEpochCache::default()
    }

    /// A cache holding `entries`, or `None` if they are not strictly increasing in both epoch and
    /// start offset or hold a negative value.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<LeaderEpochCache> {
        let ok = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        ok.then_some(LeaderEpochCache { entries })
    }

    /// Records that `epoch` starts at `start_offset` (called with every appended batch's partition
    /// leader epoch and base offset). Returns whether the cache changed.
    ///
    /// * A negative epoch or start offset is ignored (Kafka throws; here the value comes from a
    ///   batch header, and the leader epoch field lies outside the batch CRC, so it is input).
    /// * An epoch at or below the latest epoch is ignored. For an equal epoch this is Kafka's rule
    ///   (the epoch is already known), also when `start_offset` is below the entry's start: that
    ///   cannot happen in a consistent log (an entry's start is the first offset written in its
    ///   epoch), so it is not a reason to panic either. For a lower epoch Kafka would drop every
    ///   entry at or above it; here a batch with an older epoch than the log's latest is treated as
    ///   not starting an epoch (the follower path refuses such batches before they reach the log).
    /// * A higher epoch first removes the entries whose start offset is at or above
    ///   `start_offset` (Kafka's `maybeTruncateNonMonotonicEntries`), so both orders stay strict.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.entries.last().is_some_and(|last| epoch <= last.epoch) {
            return false;
        }
        while self.entries.last().is_some_and(|last| last.start_offset >= start_offset) {
            self.entries.pop();
        }
        self.entries.push(EpochEntry::new(epoch, start_offset));
        self.assert_tail();
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested_epoch` and the offset where
    /// it ends, as the leader answers OffsetsForLeaderEpoch. The rules, in Kafka's order:
    /// 1. `requested_epoch` is [`UNDEFINED_EPOCH`] → `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    /// 2. `requested_epoch` is the latest epoch → `(latest, log_end_offset)`: the latest epoch is
    ///    still being written.
    /// 3. No entry has an epoch above `requested_epoch` (the cache is empty, or the request is
    ///    above the latest epoch) → `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    /// 4. No entry has an epoch at or below `requested_epoch` (it is older than the first cached
    ///    epoch, whose data is gone from the log) → `(requested_epoch, start offset of the first
    ///    entry)`: Kafka answers with the requested epoch itself and the first known start offset,
    ///    so the follower truncates to at most where the leader's log begins.
    /// 5. Otherwise → `(the largest epoch <= requested, start offset of the first entry with a
    ///    larger epoch)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if requested_epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        // First entry with an epoch above the requested one.
        let higher = self.entries.partition_point(|e| e.epoch <= requested_epoch);
        let Some(next) = self.entries.get(higher) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match higher.checked_sub(1).and_then(|i| self.entries.get(i)) {
            None => (requested_epoch, next.start_offset),
            Some(floor) => (floor.epoch, next.start_offset),
        }
    }

    /// Removes every entry starting at or after `end_offset` (the log was truncated there).
    /// A negative offset changes nothing (Kafka). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self.entries.partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: removes every entry starting at or below it except
    /// the last such one, the epoch that wrote `start_offset`, which now starts there (Kafka's
    /// `truncateFromStart`; an entry starting exactly at `start_offset` is kept as it is). Returns
    /// whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let at_or_below = self.entries.partition_point(|e| e.start_offset <= start_offset);
        let Some(covering) = at_or_below.checked_sub(1) else {
            return false;
        };
        let changed = covering > 0 || self.entries[covering].start_offset != start_offset;
        self.entries.drain(..covering);
        self.entries[0].start_offset = start_offset;
        if let [first, second, ..] = self.entries[..] {
            assert!(first.start_offset < second.start_offset, "epoch cache: truncate_from_start broke the order");
        }
        changed
    }

    /// The latest epoch that wrote data, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The latest entry, if any.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The earliest entry, if any.
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// Where `epoch` starts, if it is cached.
    pub fn epoch_start_offset(&self, epoch: i32) -> Option<i64> {
        let i = self.entries.binary_search_by_key(&epoch, |e| e.epoch).ok()?;
        Some(self.entries[i].start_offset)
    }

    /// The epoch that wrote `offset` (Kafka's `epochForOffset`): that of the last entry starting
    /// at or below it; `None` if `offset` lies below the first entry.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset).checked_sub(1)?;
        Some(self.entries[i].epoch)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The checkpoint file contents, Kafka's `leader-epoch-checkpoint` text format: a line with
    /// the version (`0`), a line with the number of entries, then one `epoch startOffset` line
    /// per entry, oldest first; every line ends with `\n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        s.into_bytes()
    }

    /// Decodes a checkpoint written by [`Self::encode`]; `None` for anything else: another
    /// version, a count that disagrees with the lines, a line that is not two non-negative
    /// decimal numbers (without leading zeros) separated by one space, a missing final newline (so no strict prefix of a
    /// valid file is accepted), trailing bytes, more than [`CHECKPOINT_ENTRIES_MAX`] entries, or
    /// entries that are not strictly increasing in both epoch and start offset. Never panics.
    pub fn decode(bytes: &[u8]) -> Option<LeaderEpochCache> {
        let body = bytes.strip_suffix(b"\n")?;
        let mut lines = body.split(|&b| b == b'\n');
        if parse_decimal(lines.next()?)? != CHECKPOINT_VERSION as u64 {
            return None;
        }
        let count = usize::try_from(parse_decimal(lines.next()?)?).ok()?;
        if count > CHECKPOINT_ENTRIES_MAX {
            return None;
        }
        let mut entries = Vec::new();
        for line in lines {
            if entries.len() == count {
                return None;
            }
            let space = line.iter().position(|&b| b == b' ')?;
            let epoch = i32::try_from(parse_decimal(&line[..space])?).ok()?;
            let start_offset = i64::try_from(parse_decimal(&line[space + 1..])?).ok()?;
            entries.push(EpochEntry::new(epoch, start_offset));
        }
        if entries.len() != count {
            return None;
        }
        LeaderEpochCache::from_entries(entries)
    }

    /// The invariant at the end, after an append to it.
    fn assert_tail(&self) {
        if let [.., a, b] = self.entries[..] {
            assert!(a.epoch < b.epoch && a.start_offset < b.start_offset, "epoch cache out of order: {a:?} then {b:?}");
        }
    }
}

/// A canonical non-negative decimal (ASCII digits, no sign, no spaces, no leading zero) that
/// fits a `u64`.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.iter().map(|&(e, o)| EpochEntry::new(e, o)).collect()).expect("valid entries")
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn assign_adds_higher_epochs_only() {
        let mut c = LeaderEpochCache::new();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch again");
        assert!(c.assign(4, 10));
        assert!(!c.assign(3, 20), "lower epoch ignored");
        assert!(!c.assign(4, 7), "same epoch at a smaller offset ignored");
        assert!(!c.assign(-1, 30), "undefined epoch ignored");
        assert!(!c.assign(9, -1), "negative offset ignored");
        assert_eq!(pairs(&c), vec![(2, 0), (4, 10)]);
        assert_eq!(c.latest_epoch(), Some(4));
    }

    #[test]
    fn assign_of_a_higher_epoch_removes_entries_at_or_after_its_start() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(c.assign(5, 10));
        assert_eq!(pairs(&c), vec![(1, 0), (5, 10)]);
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(c.assign(5, 15));
        assert_eq!(pairs(&c), vec![(1, 0), (2, 10), (5, 15)]);
        let mut c = cache(&[(1, 5)]);
        assert!(c.assign(2, 0));
        assert_eq!(pairs(&c), vec![(2, 0)]);
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let empty = LeaderEpochCache::new();
        assert_eq!(empty.end_offset_for(UNDEFINED_EPOCH, 100), (-1, -1));
        assert_eq!(empty.end_offset_for(0, 100), (-1, -1));
        assert_eq!(empty.end_offset_for(7, 100), (-1, -1));

        let c = cache(&[(2, 10), (4, 20), (7, 35)]);
        // Rule 1: undefined.
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 50), (-1, -1));
        // Rule 2: the latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(7, 50), (7, 50));
        // Rule 3: above the latest epoch.
        assert_eq!(c.end_offset_for(8, 50), (-1, -1));
        // Rule 4: below the first epoch: the requested epoch and the first start offset.
        assert_eq!(c.end_offset_for(0, 50), (0, 10));
        assert_eq!(c.end_offset_for(1, 50), (1, 10));
        assert_eq!(c.end_offset_for(-5, 50), (-5, 10));
        // Rule 5: the largest epoch at or below, ending where the next one starts.
        assert_eq!(c.end_offset_for(2, 50), (2, 20));
        assert_eq!(c.end_offset_for(3, 50), (2, 20));
        assert_eq!(c.end_offset_for(4, 50), (4, 35));
        assert_eq!(c.end_offset_for(6, 50), (4, 35));
    }

    #[test]
    fn truncate_from_end() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(!c.truncate_from_end(-1), "negative offsets change nothing");
        assert!(c.truncate_from_end(20), "an entry starting at the cut goes");
        assert_eq!(pairs(&c), vec![(1, 0), (2, 10)]);
        assert!(c.truncate_from_end(5));
        assert_eq!(pairs(&c), vec![(1, 0)]);
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
        assert!(!c.truncate_from_end(0));
    }

    #[test]
    fn truncate_from_start() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_start(0), "an entry starting exactly there stays as it is");
        assert!(c.truncate_from_start(5));
        assert_eq!(pairs(&c), vec![(1, 5), (2, 10), (3, 20)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(pairs(&c), vec![(2, 10), (3, 20)]);
        assert!(c.truncate_from_start(25));
        assert_eq!(pairs(&c), vec![(3, 25)]);
        // Past every entry: the latest epoch now starts at the (empty) log's start.
        assert!(c.truncate_from_start(40));
        assert_eq!(pairs(&c), vec![(3, 40)]);
        let mut c = cache(&[(4, 10)]);
        assert!(!c.truncate_from_start(3), "below the first entry nothing changes");
        assert_eq!(pairs(&c), vec![(4, 10)]);
        let mut e = LeaderEpochCache::new();
        assert!(!e.truncate_from_start(3));
    }

    #[test]
    fn lookups_and_clear() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.epoch_start_offset(3), Some(10));
        assert_eq!(c.epoch_start_offset(2), None);
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(1000), Some(3));
        assert_eq!(cache(&[(1, 5)]).epoch_for_offset(4), None);
        assert_eq!(c.earliest_entry(), Some(EpochEntry::new(1, 0)));
        assert_eq!(c.latest_entry(), Some(EpochEntry::new(3, 10)));
        assert_eq!(c.len(), 2);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.latest_epoch(), None);
    }

    #[test]
    fn from_entries_rejects_unordered_input() {
        let e = |v: &[(i32, i64)]| LeaderEpochCache::from_entries(v.iter().map(|&(a, b)| EpochEntry::new(a, b)).collect());
        assert!(e(&[]).is_some());
        assert!(e(&[(1, 0), (1, 5)]).is_none());
        assert!(e(&[(1, 5), (2, 5)]).is_none());
        assert!(e(&[(2, 0), (1, 5)]).is_none());
        assert!(e(&[(-1, 0)]).is_none());
        assert!(e(&[(0, -3)]).is_none());
    }

    #[test]
    fn checkpoint_format_is_kafkas() {
        let c = cache(&[(0, 0), (3, 120), (7, 9_000_000_000)]);
        assert_eq!(c.encode(), b"0\n3\n0 0\n3 120\n7 9000000000\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c));
        let empty = LeaderEpochCache::new();
        assert_eq!(empty.encode(), b"0\n0\n");
        assert_eq!(LeaderEpochCache::decode(b"0\n0\n"), Some(empty));
    }

    #[test]
    fn checkpoint_rejects_malformed_files() {
        for bad in [
            &b""[..],
            b"\n",
            b"0",
            b"0\n",
            b"1\n0\n",
            b"0\n1\n",
            b"0\n0\n\n",
            b"0\n1\n1 5",
            b"0\n1\n1 5\n\n",
            b"0\n2\n1 5\n",
            b"0\n1\n1 5\n2 6\n",
            b"0\n1\n1  5\n",
            b"0\n1\n 1 5\n",
            b"0\n1\n1 5 \n",
            b"0\n1\n-1 5\n",
            b"0\n1\n1 -5\n",
            b"0\n1\n+1 5\n",
            b"0\n1\n1\t5\n",
            b"0\n1\n15\n",
            b"0\n1\n2147483648 5\n",
            b"0\n1\n1 9223372036854775808\n",
            b"0\n2\n1 5\n1 6\n",
            b"0\n2\n1 5\n2 5\n",
            b"0\n2\n2 5\n1 6\n",
            b"0\r\n1\r\n1 5\r\n",
            b"0\n99999999999999999999999\n",
            b"00\n0\n",
            b"0\n01\n1 5\n",
            b"0\n1\n01 5\n",
            b"0\n1048577\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "accepted {:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn no_strict_prefix_or_extension_of_a_checkpoint_decodes() {
        let c = cache(&[(0, 0), (12, 345), (13, 346), (2_000_000, 9_999_999_999)]);
        let bytes = c.encode();
        for n in 0..bytes.len() {
            assert_eq!(LeaderEpochCache::decode(&bytes[..n]), None, "prefix of {n} bytes accepted");
        }
        for extra in [&b"\n"[..], b"0", b"x", b" ", b"14 400\n"] {
            assert_eq!(LeaderEpochCache::decode(&[&bytes[..], extra].concat()), None);
        }
    }

    fn arb_cache() -> impl Strategy<Value = LeaderEpochCache> {
        proptest::collection::vec((1i32..1000, 1i64..1_000_000), 0..20).prop_map(|steps| {
            let (mut epoch, mut offset) = (0i32, 0i64);
            let mut entries = Vec::new();
            for (de, doff) in steps {
                entries.push(EpochEntry::new(epoch, offset));
                epoch += de;
                offset += doff;
            }
            LeaderEpochCache::from_entries(entries).expect("increasing by construction")
        })
    }

    /// The cache invariant: strictly increasing in both epoch and start offset, non-negative.
    fn check_order(c: &LeaderEpochCache) {
        assert!(LeaderEpochCache::from_entries(c.entries().to_vec()).is_some(), "order broken: {c:?}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32, i64),
        TruncateFromEnd(i64),
        TruncateFromStart(i64),
        Clear,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (-2i32..40, -2i64..400).prop_map(|(e, o)| Op::Assign(e, o)),
            2 => (-2i64..400).prop_map(Op::TruncateFromEnd),
            2 => (-2i64..400).prop_map(Op::TruncateFromStart),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(c) = LeaderEpochCache::decode(&bytes) {
                check_order(&c);
                prop_assert_eq!(c.encode(), bytes);
            }
        }

        #[test]
        fn decode_never_panics_on_near_valid_text(
            c in arb_cache(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&b"0123456789 \n-x"[..])), 1..4),
        ) {
            let mut bytes = c.encode();
            for (i, b) in edits {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            if let Some(d) = LeaderEpochCache::decode(&bytes) {
                check_order(&d);
                prop_assert_eq!(d.encode(), bytes, "decode accepts only canonical encodings");
            }
        }

        #[test]
        fn encode_decode_round_trip(c in arb_cache()) {
            prop_assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c));
        }

        #[test]
        fn operations_keep_the_order(ops in proptest::collection::vec(arb_op(), 0..60)) {
            let mut c = LeaderEpochCache::new();
            for op in ops {
                match op {
                    Op::Assign(e, o) => { c.assign(e, o); }
                    Op::TruncateFromEnd(o) => {
                        c.truncate_from_end(o);
                        if o >= 0 { prop_assert!(c.entries().iter().all(|x| x.start_offset < o)); }
                    }
                    Op::TruncateFromStart(o) => {
                        let had_covering = c.entries().iter().any(|x| x.start_offset <= o);
                        c.truncate_from_start(o);
                        prop_assert!(c.entries().iter().all(|x| x.start_offset >= o));
                        prop_assert_eq!(had_covering, c.earliest_entry().is_some_and(|x| x.start_offset == o));
                    }
                    Op::Clear => c.clear(),
                }
                check_order(&c);
            }
        }
    }
}
