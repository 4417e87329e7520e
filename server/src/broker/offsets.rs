//! Committed consumer offsets and group metadata, stored in the internal `__consumer_offsets`
//! topic and cached in memory.
//!
//! Layout follows Kafka: the group's records live in partition
//! `abs(java_hash(group)) % offsets.topic.num.partitions`; keys and offset values use Kafka's
//! binary schemas (OffsetCommitKey v1, OffsetCommitValue v3, GroupMetadataKey v2), so the data
//! reads like Kafka's; a null value is a tombstone. Group metadata values are Gregor's own
//! encoding of the coordinator's snapshot.
//!
//! Guarantees: an offset commit is acknowledged, and becomes visible to OffsetFetch, only after
//! its records are durable under the partition's policy; at startup the cache is rebuilt from the
//! topic, the latest record per key winning, so committed offsets survive crashes. The topic is
//! created with `cleanup.policy=compact` (as Kafka's): the cleaner keeps the latest record of
//! every key, and a tombstone (a deleted group's or an expired offset's) until
//! `delete.retention.ms` after cleaning reached it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use gregor_core::batch::BatchHeader;
use gregor_core::be_reader::BeReader;
use kafka_protocol::records::RecordBatchDecoder;

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Largest metadata string accepted with a commit (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// One committed offset.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to place groups.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition that holds `group`'s records.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "offsets topic must have partitions");
    (java_string_hash(group) & 0x7fff_ffff) % partitions
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let len = b.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&b[..len]);
}

/// A key of the offsets topic.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

impl RecordKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            RecordKey::Offset { group, topic, partition } => {
                out.extend_from_slice(&1i16.to_be_bytes());
                put_str(&mut out, group);
                put_str(&mut out, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            RecordKey::Group { group } => {
                out.extend_from_slice(&2i16.to_be_bytes());
                put_str(&mut out, group);
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<RecordKey> {
        let mut r = BeReader::new(b);
        match r.i16()? {
            0 | 1 => Some(RecordKey::Offset { group: read_string(&mut r)?, topic: read_string(&mut r)?, partition: r.i32()? }),
            2 => Some(RecordKey::Group { group: read_string(&mut r)? }),
            _ => None,
        }
    }
}

/// OffsetCommitValue v3.
pub fn encode_offset_value(v: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&3i16.to_be_bytes());
    out.extend_from_slice(&v.offset.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    put_str(&mut out, &v.metadata);
    out.extend_from_slice(&v.commit_timestamp_ms.to_be_bytes());
    out
}

/// Decodes OffsetCommitValue v1 or v3 (the versions without an expire timestamp are v1's
/// prefix plus Kafka's later fields; v1 carries an expire timestamp we ignore).
pub fn decode_offset_value(b: &[u8]) -> Option<CommittedOffset> {
    let mut r = BeReader::new(b);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = read_string(&mut r)?;
    let commit_timestamp_ms = r.i64()?;
    Some(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms })
}

/// A Kafka `string` (i16 length, -1 = null → empty).
fn read_string(r: &mut BeReader<'_>) -> Option<String> {
    let len = r.i16()?;
    if len < 0 {
        return Some(String::new());
    }
    r.take(len as usize).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The in-memory view of the offsets topic.
#[derive(Default)]
pub struct OffsetCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// (group, topic, partition) → committed offset.
    offsets: BTreeMap<(String, String, i32), CommittedOffset>,
    /// group → latest group metadata value.
    groups: BTreeMap<String, Bytes>,
}

impl OffsetCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().expect("offset cache lock")
    }

    /// Applies one record of the offsets topic (`value` None = tombstone).
    pub fn apply(&self, key: &RecordKey, value: Option<&[u8]>) {
        let mut c = self.lock();
        match key {
            RecordKey::Offset { group, topic, partition } => {
                let k = (group.clone(), topic.clone(), *partition);
                match value.and_then(decode_offset_value) {
                    Some(v) => {
                        c.offsets.insert(k, v);
                    }
                    None => {
                        c.offsets.remove(&k);
                    }
                }
            }
            RecordKey::Group { group } => match value {
                Some(v) => {
                    c.groups.insert(group.clone(), Bytes::copy_from_slice(v));
                }
                None => {
                    c.groups.remove(group);
                }
            },
        }
    }

    /// Replays stored batches (as read from one partition of the offsets topic).
    pub fn replay(&self, mut data: Bytes) -> usize {
        let mut applied = 0;
        while data.len() >= gregor_core::batch::HEADER_LEN {
            let Ok(h) = BatchHeader::parse(&data) else { break };
            if h.total_len() > data.len() {
                break;
            }
            let mut batch = data.split_to(h.total_len());
            let Ok(set) = RecordBatchDecoder::decode(&mut batch) else { continue };
            for r in set.records {
                if let Some(key) = r.key.as_deref().and_then(RecordKey::decode) {
                    self.apply(&key, r.value.as_deref());
                    applied += 1;
                }
            }
        }
        applied
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.lock().offsets.get(&(group.to_string(), topic.to_string(), partition)).cloned()
    }

    /// Every committed offset of a group: (topic, partition) → offset.
    pub fn group_offsets(&self, group: &str) -> BTreeMap<(String, i32), CommittedOffset> {
        let c = self.lock();
        c.offsets
            .range((group.to_string(), String::new(), i32::MIN)..)
            .take_while(|((g, _, _), _)| g == group)
            .map(|((_, t, p), v)| ((t.clone(), *p), v.clone()))
            .collect()
    }

    /// Groups that have offsets or metadata.
    pub fn groups(&self) -> Vec<String> {
        let c = self.lock();
        let mut out: Vec<String> = c.offsets.keys().map(|(g, _, _)| g.clone()).collect();
        out.extend(c.groups.keys().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// Forgets a group's offsets and metadata (its coordinator moved elsewhere).
    pub fn remove_group(&self, group: &str) {
        let mut c = self.lock();
        c.offsets.retain(|(g, _, _), _| g != group);
        c.groups.remove(group);
    }

    /// Stored group metadata values, for loading the coordinator.
    pub fn group_metadata(&self) -> BTreeMap<String, Bytes> {
        self.lock().groups.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // "hello".hashCode() == 99162322, "".hashCode() == 0, "polygenelubricants" overflows to i32::MIN.
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert!((0..50).contains(&partition_for("my-group", 50)));
    }

    #[test]
    fn records_round_trip_and_replay() {
        let k = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 };
        assert_eq!(RecordKey::decode(&k.encode()), Some(k.clone()));
        let g = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(&g.encode()), Some(g.clone()));
        let v = CommittedOffset { offset: 42, leader_epoch: 0, metadata: "m".into(), commit_timestamp_ms: 7 };
        assert_eq!(decode_offset_value(&encode_offset_value(&v)), Some(v.clone()));
        assert_eq!(RecordKey::decode(&[1, 2, 3]), None);
        assert_eq!(decode_offset_value(&[0, 3, 0]), None);

        let v2 = CommittedOffset { offset: 50, ..v.clone() };
        let (k1, v1b, v2b) = (k.encode(), encode_offset_value(&v), encode_offset_value(&v2));
        let mut data = gregor_core::batch::build_simple(0, 1, &[(Some(&k1), Some(&v1b)), (Some(&k1), Some(&v2b))]);
        data.extend(gregor_core::batch::build_simple(2, 1, &[(Some(&g.encode()), Some(b"meta"))]));
        let cache = OffsetCache::default();
        assert_eq!(cache.replay(Bytes::from(data)), 3);
        assert_eq!(cache.get("g", "t", 3), Some(v2));
        assert_eq!(cache.groups(), vec!["g".to_string()]);
        // A tombstone removes it.
        let tomb = gregor_core::batch::build_simple(3, 1, &[(Some(&k1), None)]);
        cache.replay(Bytes::from(tomb));
        assert_eq!(cache.get("g", "t", 3), None);
    }
}
