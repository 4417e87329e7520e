//! Mutated valid requests of every served API and version, decoded the way the broker decodes
//! them, under a memory limit: an allocation the frame's own bytes do not justify exceeds the
//! limit and aborts this test binary, so a missing bounds check cannot pass by luck.

use std::alloc::System;

use bytes::Bytes;
use cap::Cap;
use gregor_net::codec::decode_request;
use gregor_net::schema::requests::ALL;
use gregor_net::schema::sample::{sample, Prefix, Shape};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Memory the decoding of one small frame may take, beyond what the test harness already holds.
const HEADROOM_BYTES: usize = 256 << 20;

fn limit_memory() {
    let limit = ALLOCATOR.allocated() + HEADROOM_BYTES;
    if ALLOCATOR.limit() > limit {
        ALLOCATOR.set_limit(limit).expect("set the allocation limit");
    }
}

/// Encodings of the largest value a prefix can claim.
fn claim_max(kind: Prefix) -> Vec<u8> {
    match kind {
        Prefix::Int16 => i16::MAX.to_be_bytes().to_vec(),
        Prefix::Int32 => i32::MAX.to_be_bytes().to_vec(),
        Prefix::UnsignedVarint => vec![0xff, 0xff, 0xff, 0xff, 0x0f],
    }
}

/// One mutation of a valid frame.
fn mutate(frame: &mut Vec<u8>, prefixes: &[gregor_net::schema::sample::PrefixAt], rng: &mut SmallRng) {
    match rng.random_range(0..5) {
        // A length or count claiming the maximum.
        0 if !prefixes.is_empty() => {
            let at = &prefixes[rng.random_range(0..prefixes.len())];
            if at.offset + at.len <= frame.len() {
                frame.splice(at.offset..at.offset + at.len, claim_max(at.kind));
            }
        }
        // A length or count claiming a random large value (2^24 and up).
        1 if !prefixes.is_empty() => {
            let at = &prefixes[rng.random_range(0..prefixes.len())];
            if at.offset + at.len <= frame.len() {
                let v: u32 = rng.random_range(1 << 24..=i32::MAX as u32);
                let bytes = match at.kind {
                    Prefix::Int16 => (v as i16).to_be_bytes().to_vec(),
                    Prefix::Int32 => v.to_be_bytes().to_vec(),
                    Prefix::UnsignedVarint => {
                        let (mut x, mut out) = (v, Vec::new());
                        while x >= 0x80 {
                            out.push((x as u8) | 0x80);
                            x >>= 7;
                        }
                        out.push(x as u8);
                        out
                    }
                };
                frame.splice(at.offset..at.offset + at.len, bytes);
            }
        }
        // A random byte anywhere after the API key and version.
        2 if frame.len() > 4 => {
            let i = rng.random_range(4..frame.len());
            frame[i] = rng.random();
        }
        // Cut short.
        3 if frame.len() > 4 => {
            let n = rng.random_range(4..frame.len());
            frame.truncate(n);
        }
        // Random bytes inserted.
        _ => {
            let i = rng.random_range(4.min(frame.len())..=frame.len());
            let n = rng.random_range(1..8);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            frame.splice(i..i, junk);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_frames_never_allocate_past_the_limit(
        msg_index in 0..ALL.len(),
        version_pick in any::<u16>(),
        seed in any::<u64>(),
        mutations in 1usize..6,
    ) {
        limit_memory();
        let msg = ALL[msg_index];
        let span = (msg.versions.1 - msg.versions.0 + 1) as u16;
        let version = msg.versions.0 + (version_pick % span) as i16;
        let mut rng = SmallRng::seed_from_u64(seed);
        let s = sample(msg, version, Shape { full: rng.random_bool(0.5) }, &mut rng);
        let mut frame = s.frame.clone();
        for _ in 0..mutations {
            mutate(&mut frame, &s.prefixes, &mut rng);
        }
        // Accepted or refused, but never an abort or a panic.
        let _ = decode_request(Bytes::from(frame), |_, _| true);
    }
}

/// Every prefix of every API and version set to its maximum, one at a time, decoded under the
/// memory limit.
#[test]
fn every_prefix_at_its_maximum_is_decoded_within_the_limit() {
    limit_memory();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut tried = 0;
    for msg in ALL {
        for version in msg.versions.0..=msg.versions.1 {
            let s = sample(msg, version, Shape { full: true }, &mut rng);
            for at in &s.prefixes {
                let mut frame = s.frame.clone();
                frame.splice(at.offset..at.offset + at.len, claim_max(at.kind));
                let decoded = decode_request(Bytes::from(frame), |_, _| true);
                assert!(decoded.is_err(), "{} v{version}: {} at its maximum was decoded", msg.name, at.field);
                tried += 1;
            }
        }
    }
    assert!(tried > 500, "only {tried} prefixes");
}
