//! The table against the codec, and the check against hostile lengths.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use kafka_protocol::messages::ResponseKind;

use super::sample::{sample, sample_body, Prefix, Shape};
use super::{check, check_body, check_response, requests, responses, Message};

const SAMPLES_PER_VERSION: usize = 40;

fn versions(msg: &Message) -> impl Iterator<Item = i16> {
    msg.versions.0..=msg.versions.1
}

/// Decodes a sample with the crate and encodes it again.
fn crate_round_trip(msg: &Message, version: i16, frame: &[u8]) -> Result<Vec<u8>, String> {
    let api_key = ApiKey::try_from(msg.api_key).map_err(|_| "unknown key".to_string())?;
    let header_version = api_key.request_header_version(version);
    let mut buf = Bytes::copy_from_slice(frame);
    let header = RequestHeader::decode(&mut buf, header_version).map_err(|e| format!("header: {e}"))?;
    let body = RequestKind::decode(api_key, &mut buf, version).map_err(|e| format!("body: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes left after decoding", buf.len()));
    }
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).map_err(|e| format!("encode header: {e}"))?;
    body.encode(&mut out, version).map_err(|e| format!("encode body: {e}"))?;
    Ok(out.to_vec())
}

/// The table describes exactly what the codec reads: every sample made from it passes the
/// check, decodes with `kafka-protocol` to its last byte, and encodes back to the same bytes. A
/// field missing from the table, misplaced, or with the wrong versions or type fails here.
#[test]
fn every_sample_round_trips_through_the_codec() {
    let mut rng = SmallRng::seed_from_u64(7);
    for msg in requests::ALL {
        for version in versions(msg) {
            for i in 0..SAMPLES_PER_VERSION {
                let s = sample(msg, version, Shape { full: i % 2 == 0 }, &mut rng);
                check(&s.frame).unwrap_or_else(|r| panic!("{} v{version}: own sample refused: {r}", msg.name));
                let used = check_body(msg, version, &s.frame[s.header_len..]).unwrap();
                assert_eq!(used, s.frame.len() - s.header_len, "{} v{version}: body not walked to its end", msg.name);
                let again = crate_round_trip(msg, version, &s.frame)
                    .unwrap_or_else(|e| panic!("{} v{version}: codec disagrees with the table: {e}\n{:?}", msg.name, s.frame));
                assert_eq!(again, s.frame, "{} v{version}: re-encoded differently", msg.name);
            }
        }
    }
}

/// Overwrites the prefix at `at` with `value` in the same encoding (a varint may grow).
fn with_prefix(frame: &[u8], at: &super::sample::PrefixAt, value: u32) -> Vec<u8> {
    let mut out = frame[..at.offset].to_vec();
    match at.kind {
        Prefix::Int16 => out.extend_from_slice(&(value.min(i16::MAX as u32) as i16).to_be_bytes()),
        Prefix::Int32 => out.extend_from_slice(&value.to_be_bytes()),
        Prefix::UnsignedVarint => {
            let mut v = value;
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
    }
    out.extend_from_slice(&frame[at.offset + at.len..]);
    out
}

/// For every length and count position of every served request at every version: set it to
/// the largest value its encoding holds (i32::MAX, i16::MAX, the compact-varint maximum) and to
/// one more than the frame's own size; the check refuses every one.
#[test]
fn every_length_and_count_claiming_too_much_is_refused() {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut positions = 0;
    for msg in requests::ALL {
        for version in versions(msg) {
            let s = sample(msg, version, Shape { full: true }, &mut rng);
            for at in &s.prefixes {
                let max = match at.kind {
                    Prefix::Int16 => i16::MAX as u32,
                    Prefix::Int32 => i32::MAX as u32,
                    Prefix::UnsignedVarint => u32::MAX,
                };
                for value in [max, s.frame.len() as u32 + 1] {
                    let bad = with_prefix(&s.frame, at, value);
                    let refused = check(&bad);
                    assert!(
                        refused.is_err(),
                        "{} v{version}: {} prefix of {} at byte {} set to {value} was accepted",
                        msg.name,
                        match at.kind {
                            Prefix::Int16 => "i16",
                            Prefix::Int32 => "i32",
                            Prefix::UnsignedVarint => "uvarint",
                        },
                        at.field,
                        at.offset
                    );
                    positions += 1;
                }
            }
        }
    }
    assert!(positions > 1000, "only {positions} positions tried");
}

/// A refusal names the API and the field.
#[test]
fn refusals_name_the_api_and_field() {
    // Metadata v1 claiming 2^31-1 topics: the 25-byte frame that used to abort the broker.
    let mut frame = Vec::new();
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(&1i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&5i16.to_be_bytes());
    frame.extend_from_slice(b"kcat!");
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    let r = check(&frame).unwrap_err();
    assert_eq!((r.api, r.version, r.field.as_str()), ("Metadata", 1, "topics"));
    assert!(r.to_string().contains("2147483647 elements"), "{r}");

    // Produce v9: a partition's records claim more bytes than the frame has.
    let msg = super::request_schema(0).unwrap();
    let s = sample(msg, 9, Shape { full: true }, &mut SmallRng::seed_from_u64(1));
    let at = s.prefixes.iter().find(|p| p.field == "records").unwrap();
    let r = check(&with_prefix(&s.frame, at, 1 << 30)).unwrap_err();
    assert_eq!(r.api, "Produce");
    assert!(r.field.starts_with("topic_data[0].partition_data[0].records"), "{r}");
}

/// Tagged fields: an unknown tag is skipped by its size, a count or size that cannot fit is
/// refused, and a known tag whose value does not fill its size is refused.
#[test]
fn tagged_fields_are_bounded() {
    let msg = super::request_schema(3).unwrap(); // Metadata, flexible from v9
    let s = sample(msg, 12, Shape { full: false }, &mut SmallRng::seed_from_u64(3));
    // The body ends with its tagged-field count (0, since Metadata has no tagged fields).
    assert_eq!(*s.frame.last().unwrap(), 0);
    let mut unknown = s.frame.clone();
    *unknown.last_mut().unwrap() = 1;
    unknown.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    assert!(check(&unknown).is_ok());
    assert!(crate_round_trip(msg, 12, &unknown).is_ok());
    let mut too_big = s.frame.clone();
    *too_big.last_mut().unwrap() = 1;
    too_big.extend_from_slice(&[9, 3, 0xaa, 0xbb]);
    assert!(check(&too_big).is_err());
    let mut too_many = s.frame.clone();
    too_many.pop();
    too_many.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(check(&too_many).is_err());

    // Fetch v15+: tag 1 is replica_state (i32 + i64 + its own tagged count: 13 bytes).
    let fetch = super::request_schema(1).unwrap();
    let plain = (0..)
        .map(|seed| sample(fetch, 15, Shape { full: false }, &mut SmallRng::seed_from_u64(seed)))
        .find(|s| {
            let top = s.prefixes.iter().rev().find(|p| p.field == "(message)");
            top.is_some_and(|p| p.offset == s.frame.len() - 1) && s.frame.ends_with(&[0])
        })
        .unwrap();
    let with_replica_state = |size: u8| {
        let mut f = plain.frame.clone();
        *f.last_mut().unwrap() = 1;
        f.extend_from_slice(&[1, size]);
        f.extend_from_slice(&[0x11; 12]);
        f.push(0);
        f
    };
    check(&with_replica_state(13)).unwrap();
    assert!(crate_round_trip(fetch, 15, &with_replica_state(13)).is_ok());
    assert!(check(&with_replica_state(12)).is_err());
    assert!(check(&with_replica_state(14)).is_err());
}

/// Responses: the same agreement between table and codec, body by body.
#[test]
fn every_response_sample_round_trips_through_the_codec() {
    let mut rng = SmallRng::seed_from_u64(17);
    for msg in responses::ALL {
        let api_key = ApiKey::try_from(msg.api_key).unwrap();
        for version in versions(msg) {
            for i in 0..SAMPLES_PER_VERSION {
                let s = sample_body(msg, version, Shape { full: i % 2 == 0 }, &mut rng);
                assert_eq!(check_body(msg, version, &s.frame), Ok(s.frame.len()), "{} v{version}", msg.name);
                let mut buf = Bytes::copy_from_slice(&s.frame);
                let body = ResponseKind::decode(api_key, &mut buf, version)
                    .unwrap_or_else(|e| panic!("{} v{version} response: codec disagrees with the table: {e}", msg.name));
                assert!(buf.is_empty(), "{} v{version} response: {} bytes left", msg.name, buf.len());
                let mut out = BytesMut::new();
                body.encode(&mut out, version).unwrap();
                assert_eq!(out.to_vec(), s.frame, "{} v{version} response re-encoded differently", msg.name);
                // And every prefix at its maximum is refused.
                for at in s.prefixes.iter().take(64) {
                    let bad = with_prefix(&s.frame, at, i32::MAX as u32);
                    assert!(check_response(msg.api_key, version, &bad).is_err(), "{} v{version} response {}", msg.name, at.field);
                }
            }
        }
    }
}

#[test]
fn every_error_code_of_a_response_is_found_in_wire_order() {
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    use kafka_protocol::messages::{ProduceResponse, TopicName};
    let partition = |index: i32, error_code: i16| PartitionProduceResponse::default().with_index(index).with_error_code(error_code);
    let body = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default().with_name(TopicName("a".into())).with_partition_responses(vec![partition(0, 0), partition(1, 6)]),
        TopicProduceResponse::default().with_name(TopicName("b".into())).with_partition_responses(vec![partition(0, 19)]),
    ]));
    for version in [3i16, 9, 12] {
        let frame = crate::codec::encode_response(ApiKey::Produce, version, 7, &body).unwrap();
        let mut seen = Vec::new();
        let walked = super::response_error_codes(ApiKey::Produce as i16, version, crate::codec::encoded_response_body(ApiKey::Produce, version, &frame), &mut |c| seen.push(c));
        assert_eq!(walked, Ok(()), "v{version}");
        assert_eq!(seen, vec![0, 6, 19], "v{version}");
    }
    // Every sample body of every response walks to its end.
    let mut rng = SmallRng::seed_from_u64(23);
    for msg in responses::ALL {
        for version in versions(msg) {
            let s = sample_body(msg, version, Shape { full: true }, &mut rng);
            assert_eq!(super::response_error_codes(msg.api_key, version, &s.frame, &mut |_| {}), Ok(()), "{} v{version}", msg.name);
        }
    }
    // A truncated body stops the walk with a refusal.
    let frame = crate::codec::encode_response(ApiKey::Produce, 9, 7, &body).unwrap();
    let cut = crate::codec::encoded_response_body(ApiKey::Produce, 9, &frame);
    assert!(super::response_error_codes(ApiKey::Produce as i16, 9, &cut[..cut.len() - 3], &mut |_| {}).is_err());
}
