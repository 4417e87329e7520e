//! The embedded consumer protocol of classic groups (protocol type `consumer`): the bytes that
//! consumers put in JoinGroup metadata (their subscription) and SyncGroup assignments, and
//! Kafka's range assignor. The coordinator treats those bytes as opaque; Kafka's broker reads the
//! subscriptions only to tell which topics a group is subscribed to (OffsetDelete), and so does
//! Gregor's. The group tools and the simulator's members use the rest.
//!
//! Layouts (never flexible; every version starts with the same fields, later versions append):
//! - subscription: `i16 version`, `i32 count` of `i16`-length topic names, then user data
//!   (`i32`-length bytes, -1 for null) and fields this module does not need (owned partitions,
//!   generation, rack);
//! - assignment: `i16 version`, `i32 count` of (`i16`-length topic name, `i32 count` of `i32`
//!   partitions), then user data.
//!
//! Encoding writes version 0. Decoding never panics and allocates only for what the input holds:
//! damaged or truncated bytes decode to `None`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::be_reader::BeReader;

/// The protocol type of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";

/// Writes an `i16`-length string. Valid topic names have at most 249 bytes; a longer one (never
/// a topic that exists) is cut at `i16::MAX` bytes so the encoding stays well formed.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn read_str(r: &mut BeReader<'_>) -> Option<String> {
    let len = usize::try_from(r.i16()?).ok()?;
    Some(std::str::from_utf8(r.take(len)?).ok()?.to_string())
}

/// Reads an array count, refusing one that cannot fit in what remains (each element takes at
/// least `element_bytes_min`), so damaged input never makes us allocate.
fn read_count(r: &mut BeReader<'_>, element_bytes_min: usize) -> Option<usize> {
    let n = usize::try_from(r.i32()?).ok()?;
    (n <= r.remaining() / element_bytes_min).then_some(n)
}

/// A version 0 subscription to `topics`, without user data.
pub fn encode_subscription<S: AsRef<str>>(topics: &[S]) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        put_str(&mut out, t.as_ref());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

/// The topics a subscription names, in order, or `None` if it does not decode.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = BeReader::new(metadata);
    if r.i16()? < 0 {
        return None;
    }
    let count = read_count(&mut r, 2)?;
    (0..count).map(|_| read_str(&mut r)).collect()
}

/// A version 0 assignment of partitions per topic, without user data.
pub fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (topic, parts) in partitions {
        put_str(&mut out, topic);
        out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

/// The partitions per topic an assignment names, or `None` if it does not decode. An empty
/// assignment (a member given nothing, which Kafka sends as zero bytes) is an empty map.
pub fn decode_assignment(assignment: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    if assignment.is_empty() {
        return Some(BTreeMap::new());
    }
    let mut r = BeReader::new(assignment);
    if r.i16()? < 0 {
        return None;
    }
    let topics = read_count(&mut r, 6)?;
    let mut out = BTreeMap::new();
    for _ in 0..topics {
        let topic = read_str(&mut r)?;
        let count = read_count(&mut r, 4)?;
        let parts = (0..count).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
        out.entry(topic).or_insert_with(Vec::new).extend(parts);
    }
    Some(out)
}

/// Kafka's range assignor for one topic: members sorted by id get contiguous runs of the sorted
/// partitions, and the first `partitions % members` members one extra.
pub fn range_assign(partitions: &[i32], members: &[String]) -> BTreeMap<String, Vec<i32>> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let mut parts = partitions.to_vec();
    parts.sort_unstable();
    let mut out = BTreeMap::new();
    if sorted.is_empty() {
        return out;
    }
    let (per, extra) = (parts.len() / sorted.len(), parts.len() % sorted.len());
    let mut start = 0;
    for (i, m) in sorted.into_iter().enumerate() {
        let n = per + usize::from(i < extra);
        out.insert(m.clone(), parts[start..start + n].to_vec());
        start += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(version: i16, topics: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            out.extend_from_slice(&(t.len() as i16).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn decodes_topics_of_every_version() {
        // v0 with null user data; v3 with user data, owned partitions, generation and rack.
        assert_eq!(subscription_topics(&encode(0, &["a", "bb"], &(-1i32).to_be_bytes())), Some(vec!["a".into(), "bb".into()]));
        let tail = [&3i32.to_be_bytes()[..], b"xyz", &0i32.to_be_bytes(), &7i32.to_be_bytes(), &(-1i16).to_be_bytes()].concat();
        assert_eq!(subscription_topics(&encode(3, &["orders"], &tail)), Some(vec!["orders".into()]));
        assert_eq!(subscription_topics(&encode(1, &[], &[])), Some(vec![]));
    }

    #[test]
    fn subscription_round_trip() {
        assert_eq!(subscription_topics(&encode_subscription(&["t1", "t2"])), Some(vec!["t1".into(), "t2".into()]));
    }

    #[test]
    fn assignment_round_trip_and_damage() {
        let plan: BTreeMap<String, Vec<i32>> = [("a".to_string(), vec![2, 5]), ("b".to_string(), vec![])].into();
        let bytes = encode_assignment(&plan);
        assert_eq!(decode_assignment(&bytes), Some(plan));
        assert_eq!(decode_assignment(&[]), Some(BTreeMap::new()));
        for cut in 1..bytes.len() - 4 {
            assert_eq!(decode_assignment(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&1i32.to_be_bytes());
        huge.extend_from_slice(&1i16.to_be_bytes());
        huge.push(b'a');
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_assignment(&huge), None);
    }

    #[test]
    fn range_assignor_matches_kafka() {
        let members: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let plan = range_assign(&[4, 0, 3, 1, 2], &members);
        assert_eq!(plan["a"], vec![0, 1]);
        assert_eq!(plan["b"], vec![2, 3]);
        assert_eq!(plan["c"], vec![4]);
        assert!(range_assign(&[0], &[]).is_empty());
        assert_eq!(range_assign(&[0], &members)["c"], Vec::<i32>::new());
    }

    #[test]
    fn damaged_metadata_is_none() {
        let good = encode(0, &["orders", "payments"], &[]);
        for cut in 0..good.len() {
            assert_eq!(subscription_topics(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(subscription_topics(&encode(-1, &["a"], &[])), None);
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(subscription_topics(&huge), None);
        let mut neg = encode(0, &["a"], &[]);
        neg[6..8].copy_from_slice(&(-2i16).to_be_bytes());
        assert_eq!(subscription_topics(&neg), None);
        let mut bad_utf8 = encode(0, &["ab"], &[]);
        bad_utf8[8] = 0xff;
        assert_eq!(subscription_topics(&bad_utf8), None);
    }
}
