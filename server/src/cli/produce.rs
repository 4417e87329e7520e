//! `gregor produce`: one event per stdin line, like `kafka-console-producer.sh`.
//!
//! `--property parse.key=true` with `key.separator` (default tab) splits each line into key and
//! value; `--header k=v` adds headers to every event. Keyed events go to Kafka's default
//! partition for their key (murmur2), so they land where Java clients would put them.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{connect, error_name, metadata};

/// Events per produce request.
const BATCH_RECORDS_MAX: usize = 1000;
/// How long to wait for more input before sending what has been read.
const LINGER_MS: u64 = 5;

pub struct ProduceOptions {
    pub bootstrap: String,
    pub topic: String,
    pub partition: Option<i32>,
    pub properties: BTreeMap<String, String>,
    pub headers: Vec<(String, String)>,
    pub acks: i16,
    pub compression: Compression,
}

/// Kafka's murmur2 (the Java client's default partitioner hash).
pub fn murmur2(data: &[u8]) -> i32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let len = data.len();
    let mut h: u32 = seed ^ (len as u32);
    let chunks = len / 4;
    for i in 0..chunks {
        let mut k = u32::from_le_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[chunks * 4..];
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

fn partition_for(key: Option<&[u8]>, partitions: i32, round_robin: &mut i32) -> i32 {
    match key {
        Some(k) => (murmur2(k) & 0x7fff_ffff) % partitions,
        None => {
            *round_robin = (*round_robin + 1) % partitions;
            *round_robin
        }
    }
}

pub async fn run(opts: ProduceOptions) -> anyhow::Result<()> {
    let mut client = connect(&opts.bootstrap).await?;
    let md = metadata(&mut client, Some(std::slice::from_ref(&opts.topic)), true).await?;
    let t = md.topics.first().ok_or_else(|| anyhow::anyhow!("no metadata for topic {}", opts.topic))?;
    if t.error_code != 0 {
        anyhow::bail!("topic {}: {} ({})", opts.topic, error_name(t.error_code), t.error_code);
    }
    let partitions = t.partitions.len() as i32;
    if let Some(p) = opts.partition {
        if p < 0 || p >= partitions {
            anyhow::bail!("partition {p} does not exist (topic {} has {partitions})", opts.topic);
        }
    }
    let parse_key = opts.properties.get("parse.key").is_some_and(|v| v == "true");
    let separator = opts.properties.get("key.separator").cloned().unwrap_or_else(|| "\t".to_string());
    let headers: indexmap::IndexMap<StrBytes, Option<Bytes>> = opts
        .headers
        .iter()
        .map(|(k, v)| (StrBytes::from_string(k.clone()), Some(Bytes::from(v.clone()))))
        .collect();

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut round_robin = -1;
    let mut failures = 0u64;
    let mut eof = false;
    while !eof {
        let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        let mut count = 0;
        while count < BATCH_RECORDS_MAX {
            let next = if count == 0 {
                lines.next_line().await?
            } else {
                match tokio::time::timeout(Duration::from_millis(LINGER_MS), lines.next_line()).await {
                    Ok(line) => line?,
                    Err(_) => break,
                }
            };
            let Some(line) = next else {
                eof = true;
                break;
            };
            let (key, value) = if parse_key {
                match line.split_once(separator.as_str()) {
                    Some((k, v)) => (Some(Bytes::from(k.to_string())), Bytes::from(v.to_string())),
                    None => anyhow::bail!("No key separator found on line: {line}"),
                }
            } else {
                (None, Bytes::from(line))
            };
            let p = opts.partition.unwrap_or_else(|| partition_for(key.as_deref(), partitions, &mut round_robin));
            let now = now_ms();
            pending.entry(p).or_default().push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: now,
                key,
                value: Some(value),
                headers: headers.clone(),
            });
            count += 1;
        }
        if pending.is_empty() {
            continue;
        }
        failures += send(&mut client, &opts, pending).await?;
    }
    if failures > 0 {
        anyhow::bail!("{failures} event(s) were not acknowledged");
    }
    Ok(())
}

fn now_ms() -> i64 {
    // The CLI runs outside the simulator; its clock is the real one.
    gregor_core::clock::Clock::wall_ms(&gregor_core::clock::SystemClock::new())
}

async fn send(client: &mut gregor_net::client::Client, opts: &ProduceOptions, pending: BTreeMap<i32, Vec<Record>>) -> anyhow::Result<u64> {
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(opts.topic.clone()));
    let mut counts = BTreeMap::new();
    for (p, mut records) in pending {
        let batch = gregor_net::batch_encode::encode_one_batch(&mut records, opts.compression).map_err(anyhow::Error::msg)?;
        let mut pd = PartitionProduceData::default();
        pd.index = p;
        pd.records = Some(batch);
        td.partition_data.push(pd);
        counts.insert(p, records.len() as u64);
    }
    let mut req = ProduceRequest::default();
    req.acks = opts.acks;
    req.timeout_ms = 30_000;
    req.topic_data = vec![td];
    if opts.acks == 0 {
        // No response comes back for acks=0; send and move on.
        let version = client.version_for::<ProduceRequest>().ok_or_else(|| anyhow::anyhow!("broker does not support Produce"))?;
        return client.send_no_response(&req, version).await.map(|_| 0).map_err(Into::into);
    }
    let resp = client.send(&req).await?;
    let mut failed = 0;
    for t in resp.responses {
        for p in t.partition_responses {
            if p.error_code != 0 {
                let n = counts.get(&p.index).copied().unwrap_or(0);
                eprintln!(
                    "Error when sending {n} event(s) to {}-{}: {} ({}){}",
                    opts.topic,
                    p.index,
                    error_name(p.error_code),
                    p.error_code,
                    p.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                );
                failed += n;
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::murmur2;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
