//! The embedded consumer protocol of classic groups (protocol type `consumer`): the topics a
//! member's subscription names. The coordinator otherwise treats member metadata as opaque bytes;
//! Kafka reads the subscriptions only to tell which topics a group is subscribed to
//! (OffsetDelete), and so does Gregor.
//!
//! Layout (ConsumerProtocolSubscription, every version, never flexible): `i16 version`,
//! `i32 topic count`, that many `i16`-length strings, then fields this module does not need
//! (user data, owned partitions, generation, rack). Decoding never panics: damaged or truncated
//! metadata is `None`.

use crate::be_reader::BeReader;

/// The protocol type of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The topics a ConsumerProtocol subscription names, in order, or `None` if it does not decode.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = BeReader::new(metadata);
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let count = r.i32()?;
    // Each name takes at least its 2-byte length, so a count beyond that is damaged input, refused
    // before anything is allocated for it.
    if count < 0 || count as usize > r.remaining() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = r.i16()?;
        if len < 0 {
            return None;
        }
        let name = std::str::from_utf8(r.take(len as usize)?).ok()?;
        topics.push(name.to_string());
    }
    Some(topics)
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
