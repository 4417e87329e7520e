//! Client workloads that run on client nodes and talk to brokers over the Kafka wire protocol
//! with the project's own client (`gregor_net::client`), recording everything in the history.
//!
//! Clients behave like real ones under faults: every request has a timeout, a connection that
//! errs or times out is dropped and re-established, producers retry (idempotent producers retry
//! the same batch with the same sequence numbers, so retries must not duplicate), and consumers
//! resume from their position.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_net::client::Client;
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest,
    ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::history::{value_prefix, Ack, FinalRead, Gap, History, Observation, Produced, RecordId, Served, TOMBSTONE_ID_HEADER};
use crate::knobs::CompactionKnobs;
use crate::trace::Trace;

/// Timeout of one request (clients give up, drop the connection and retry).
pub const REQUEST_TIMEOUT_MS: u64 = 3_000;
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Retries of a non-idempotent producer before it gives a batch up.
pub const PLAIN_RETRIES_MAX: u32 = 3;
/// Fetch version the readers use (by topic name; versions 13+ need the topic id).
pub(crate) const FETCH_VERSION: i16 = 12;

/// What every client task shares.
#[derive(Clone)]
pub struct Ctx {
    pub history: History,
    pub trace: Trace,
    pub stop: Arc<AtomicBool>,
    pub broker: String,
    pub topic: String,
    pub partitions: i32,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Connects with a bounded wait; `None` (after tracing why) on failure.
pub async fn connect(ctx: &Ctx, name: &str) -> Option<Client> {
    match tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), Client::connect(&ctx.broker, name)).await {
        Ok(Ok(mut c)) => {
            c.set_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
            Some(c)
        }
        Ok(Err(e)) => {
            ctx.trace.event(name, format!("connect failed: {e}"));
            None
        }
        Err(_) => {
            ctx.trace.event(name, "connect timed out");
            None
        }
    }
}

pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Creates `topic` (retrying until it exists). Returns false if `ctx.stop` ends the attempts.
pub async fn create_topic(ctx: &Ctx, who: &str, topic: &str, partitions: i32, configs: &[(String, String)]) -> bool {
    while !ctx.stopped() {
        let Some(mut c) = connect(ctx, who).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut t = CreatableTopic::default();
        t.name = name(topic);
        t.num_partitions = partitions;
        t.replication_factor = 1;
        t.configs = configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = StrBytes::from_string(k.clone());
                c.value = Some(StrBytes::from_string(v.clone()));
                c
            })
            .collect();
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 10_000;
        match c.send(&req).await {
            Ok(resp) => {
                let code = resp.topics.first().map_or(-1, |t| t.error_code);
                ctx.trace.event(who, format!("create topic {topic}: error {code}"));
                if code == 0 || code == 36 {
                    return true;
                }
            }
            Err(e) => ctx.trace.event(who, format!("create topic {topic}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// Shape of one producer.
#[derive(Clone, Debug)]
pub struct ProducerSpec {
    pub index: u32,
    pub acks: i16,
    pub idempotent: bool,
    pub compression: Compression,
    pub records_per_batch_max: u32,
    pub value_bytes_max: usize,
    pub gap_ms: u64,
    pub drop_connection: f64,
    pub compaction: Option<CompactionKnobs>,
}

pub fn compression(id: i8) -> Compression {
    match id {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

pub(crate) struct Pending {
    pub(crate) partition: i32,
    pub(crate) records: Vec<Produced>,
    pub(crate) base_sequence: i32,
    pub(crate) attempts: u32,
}

/// A new record of the workload. Its value starts with its id ([`value_prefix`]) and is padded
/// up to `value_bytes_max`; 70% of records have one of ten keys, and with `headers` 30% have two
/// headers. On a compacted topic every record has one of the knobs' keys, and some are
/// tombstones, which carry their id in a header instead.
pub(crate) fn new_record(
    rng: &mut SmallRng,
    id: RecordId,
    topic: &str,
    partition: i32,
    value_bytes_max: usize,
    headers: bool,
    compaction: Option<&CompactionKnobs>,
    created_at: Duration,
) -> Produced {
    let mut value = value_prefix(id).into_bytes();
    let pad = rng.random_range(0..=value_bytes_max);
    value.extend(std::iter::repeat_n(b'a' + (id.1 % 26) as u8, pad));
    let (key, tombstone) = match compaction {
        Some(c) => (Some(Bytes::from(format!("k{}", rng.random_range(0..c.keys)))), rng.random_bool(c.tombstone_chance)),
        None => (rng.random_bool(0.7).then(|| Bytes::from(format!("k{}", rng.random_range(0..10)))), false),
    };
    let mut headers = if headers && rng.random_bool(0.3) {
        vec![("h1".to_string(), Bytes::from(format!("{}", id.1))), ("h2".to_string(), Bytes::from_static(b""))]
    } else {
        Vec::new()
    };
    if tombstone {
        headers.push((TOMBSTONE_ID_HEADER.to_string(), Bytes::from(value_prefix(id))));
    }
    Produced { id, topic: topic.to_string(), partition, key, value: Bytes::from(value), headers, tombstone, created_at }
}

/// Produces until stopped. Every attempted record goes into the history before it is sent.
pub async fn producer(ctx: Ctx, spec: ProducerSpec, seed: u64) {
    let who = format!("producer-{}", spec.index);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut client: Option<Client> = None;
    let mut pid: Option<(i64, i16)> = None;
    let mut next_seq: BTreeMap<i32, i32> = BTreeMap::new();
    let mut next_n: u64 = 0;
    let mut pending: Option<Pending> = None;
    let idempotent = spec.idempotent && spec.acks == -1;
    while !ctx.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..=spec.gap_ms.max(1)))).await;
        if client.is_none() {
            client = connect(&ctx, &who).await;
            if client.is_none() {
                continue;
            }
        }
        let c = client.as_mut().expect("connected above");
        if idempotent && pid.is_none() {
            let mut req = InitProducerIdRequest::default();
            req.transactional_id = None;
            req.transaction_timeout_ms = 60_000;
            req.producer_id = ProducerId(-1);
            req.producer_epoch = -1;
            match c.send(&req).await {
                Ok(r) if r.error_code == 0 => {
                    pid = Some((r.producer_id.0, r.producer_epoch));
                    next_seq.clear();
                    ctx.trace.event(&who, format!("producer id {} epoch {}", r.producer_id.0, r.producer_epoch));
                }
                Ok(r) => {
                    ctx.trace.event(&who, format!("InitProducerId error {}", r.error_code));
                    continue;
                }
                Err(e) => {
                    ctx.trace.event(&who, format!("InitProducerId: {e}"));
                    client = None;
                    continue;
                }
            }
        }
        let mut batch = match pending.take() {
            Some(p) => p,
            None => {
                let partition = rng.random_range(0..ctx.partitions);
                let n = rng.random_range(1..=spec.records_per_batch_max);
                let mut records = Vec::new();
                for _ in 0..n {
                    let id: RecordId = (spec.index, next_n);
                    next_n += 1;
                    let r = new_record(&mut rng, id, &ctx.topic, partition, spec.value_bytes_max, true, spec.compaction.as_ref(), ctx.trace.elapsed());
                    ctx.history.lock().produced.insert(id, r.clone());
                    records.push(r);
                }
                let base_sequence = if idempotent { take_sequences(&mut next_seq, partition, n) } else { -1 };
                Pending { partition, records, base_sequence, attempts: 0 }
            }
        };
        batch.attempts += 1;
        let (producer_id, epoch) = if idempotent { pid.expect("initialised above") } else { (-1, -1) };
        let req = match produce_request(&ctx.topic, &batch, spec.acks, producer_id, epoch, spec.compression) {
            Ok(r) => r,
            Err(e) => {
                ctx.trace.event(&who, format!("cannot encode batch: {e}"));
                continue;
            }
        };
        let first = batch.records[0].id.1;
        let last = batch.records[batch.records.len() - 1].id.1;
        ctx.history.lock().operations += 1;
        let retry_allowed = idempotent || batch.attempts <= PLAIN_RETRIES_MAX;
        if spec.acks == 0 || rng.random_bool(spec.drop_connection) {
            let version = c.version_for::<ProduceRequest>().unwrap_or(9);
            let sent = c.send_no_response(&req, version).await;
            if spec.acks == 0 {
                ctx.trace.event(&who, format!("produce p{} #{first}..{last} acks=0 sent={}", batch.partition, sent.is_ok()));
                if sent.is_err() {
                    client = None;
                }
            } else {
                ctx.trace.event(&who, format!("produce p{} #{first}..{last} sent, connection dropped", batch.partition));
                client = None;
                if retry_allowed {
                    pending = Some(batch);
                }
            }
            continue;
        }
        let sent_at = ctx.trace.elapsed();
        match c.send(&req).await {
            Ok(resp) => {
                let pr = resp.responses.first().and_then(|t| t.partition_responses.first());
                let (code, base) = pr.map_or((-1, -1), |p| (p.error_code, p.base_offset));
                ctx.trace.event(&who, format!("produce p{} #{first}..{last} attempt {} -> error {code} offset {base}", batch.partition, batch.attempts));
                if code == 0 {
                    let at = ctx.trace.elapsed();
                    let mut h = ctx.history.lock();
                    for (i, r) in batch.records.iter().enumerate() {
                        h.acks.push(Ack { id: r.id, partition: batch.partition, offset: base + i as i64, sent_at, at, idempotent });
                    }
                } else if idempotent && matches!(code, 45 | 47 | 59 | 90) {
                    // The producer's sequence state is gone or fenced: start a new producer id,
                    // as the Java client does; this batch's fate is unknown.
                    pid = None;
                } else if retry_allowed {
                    pending = Some(batch);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Err(e) => {
                ctx.trace.event(&who, format!("produce p{} #{first}..{last} attempt {}: {e}", batch.partition, batch.attempts));
                client = None;
                if retry_allowed {
                    pending = Some(batch);
                }
            }
        }
    }
}

/// The base sequence of an idempotent producer's next batch of `n` records to `partition`, and
/// the partition's next sequence moved past it.
pub(crate) fn take_sequences(next_seq: &mut BTreeMap<i32, i32>, partition: i32, n: u32) -> i32 {
    let s = next_seq.entry(partition).or_insert(0);
    let base = *s;
    *s = s.wrapping_add(n as i32);
    base
}

pub(crate) fn produce_request(topic: &str, batch: &Pending, acks: i16, producer_id: i64, epoch: i16, compression: Compression) -> anyhow::Result<ProduceRequest> {
    let mut records: Vec<Record> = batch
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 { batch.base_sequence.wrapping_add(i as i32) } else { -1 },
            // The simulated wall clock, as a real client stamps records (min.compaction.lag.ms
            // and time retention compare record timestamps with the broker's clock).
            timestamp: gregor_core::clock::Clock::wall_ms(&gregor_core::clock::SystemClock::new()),
            key: r.key.clone(),
            value: (!r.tombstone).then(|| r.value.clone()),
            headers: r.headers.iter().map(|(k, v)| (StrBytes::from_string(k.clone()), Some(v.clone()))).collect::<IndexMap<_, _>>(),
        })
        .collect();
    let encoded = gregor_net::batch_encode::encode_one_batch(&mut records, compression).map_err(anyhow::Error::msg)?;
    let mut pd = PartitionProduceData::default();
    pd.index = batch.partition;
    pd.records = Some(encoded);
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = REQUEST_TIMEOUT_MS as i32;
    req.topic_data = vec![td];
    Ok(req)
}

/// Decodes the batches of a fetch response, verifying each CRC. Trailing partial batches are
/// ignored (a fetch may cut the last one).
pub fn decode_batches(mut data: Bytes) -> Result<Vec<(i64, Served)>, String> {
    let mut out = Vec::new();
    while data.len() >= gregor_core::batch::HEADER_LEN {
        let h = gregor_core::batch::BatchHeader::parse(&data).map_err(|e| format!("bad batch header served: {e}"))?;
        if h.total_len() > data.len() {
            break;
        }
        let mut one = data.split_to(h.total_len());
        gregor_core::batch::validate(&one).map_err(|e| format!("corrupt batch served at offset {}: {e}", h.base_offset))?;
        if h.is_control() {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut one).map_err(|e| format!("undecodable batch at offset {}: {e}", h.base_offset))?;
        for r in set.records {
            let headers = r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            out.push((r.offset, Served { key: r.key, value: r.value, headers }));
        }
    }
    Ok(out)
}

/// The offset after the last whole batch of a fetch answer (`None` if it holds none). A reader
/// goes on from there even when the batch holds no record for it: the cleaner keeps a batch
/// whose records it removed as an empty batch, and a control batch has no data records; Kafka's
/// consumers move past both the same way.
pub fn batches_end(data: &Bytes) -> Option<i64> {
    let mut pos = 0usize;
    let mut end = None;
    while let Some(rest) = data.get(pos..).filter(|r| r.len() >= gregor_core::batch::HEADER_LEN) {
        let h = gregor_core::batch::BatchHeader::parse(rest).ok()?;
        if h.total_len() > rest.len() {
            break;
        }
        end = Some(h.next_offset());
        pos += h.total_len();
    }
    end
}

/// Records in the history, and returns false, if the records of one fetch answer (in the order
/// served) are not in strictly increasing offsets, as Kafka serves them.
/// One fetch answer for one partition, as a reader was served it.
pub struct FetchAnswer<'a> {
    pub reader: &'a str,
    pub partition: i32,
    /// When the fetch was sent, and when its answer came.
    pub sent_at: Duration,
    pub at: Duration,
    pub log_start: i64,
    pub high_watermark: i64,
}

impl FetchAnswer<'_> {
    /// Records `records` read from position `pos`: their served order, a gap if the first new
    /// one is past `pos`, and each record past `pos` once. Returns the next position and
    /// whether anything new was read.
    pub fn record(&self, h: &mut crate::history::HistoryData, pos: i64, records: Vec<(i64, Served)>) -> (i64, bool) {
        note_served_order(h, self.reader, self.partition, &records);
        let (mut next, mut new) = (pos, false);
        for (offset, record) in records {
            if offset < next {
                continue;
            }
            if offset > next {
                h.gaps.push(Gap { reader: self.reader.to_string(), partition: self.partition, expected: next, got: offset, log_start: self.log_start });
            }
            new = true;
            h.observations.push(Observation {
                reader: self.reader.to_string(),
                partition: self.partition,
                offset,
                record,
                sent_at: self.sent_at,
                at: self.at,
                high_watermark: self.high_watermark,
            });
            next = offset + 1;
        }
        (next, new)
    }
}

pub fn note_served_order(h: &mut crate::history::HistoryData, reader: &str, partition: i32, records: &[(i64, Served)]) -> bool {
    match records.windows(2).find(|w| w[1].0 <= w[0].0) {
        None => true,
        Some(w) => {
            h.out_of_order_served.push(format!("{reader} p{partition}: one fetch answer served offset {} after {}", w[1].0, w[0].0));
            false
        }
    }
}

pub fn fetch_request(topic: &str, positions: &BTreeMap<i32, i64>) -> FetchRequest {
    let mut ft = FetchTopic::default();
    ft.topic = name(topic);
    ft.partitions = positions
        .iter()
        .map(|(&p, &o)| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.fetch_offset = o;
            fp.current_leader_epoch = -1;
            fp.log_start_offset = -1;
            fp.partition_max_bytes = 64 << 10;
            fp
        })
        .collect();
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 200;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![ft];
    req
}

/// Tails every partition from offset 0 until stopped, recording what it is served.
pub async fn consumer(ctx: Ctx, index: u32) {
    let who = format!("consumer-{index}");
    let mut positions: BTreeMap<i32, i64> = (0..ctx.partitions).map(|p| (p, 0)).collect();
    let mut client: Option<Client> = None;
    let mut broken: BTreeMap<i32, String> = BTreeMap::new();
    while !ctx.stopped() {
        if client.is_none() {
            client = connect(&ctx, &who).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let c = client.as_mut().expect("connected above");
        let live: BTreeMap<i32, i64> = positions.iter().filter(|(p, _)| !broken.contains_key(p)).map(|(&p, &o)| (p, o)).collect();
        let req = fetch_request(&ctx.topic, &live);
        let sent_at = ctx.trace.elapsed();
        let resp = match c.send_at(&req, FETCH_VERSION).await {
            Ok(r) => r,
            Err(e) => {
                ctx.trace.event(&who, format!("fetch: {e}"));
                client = None;
                continue;
            }
        };
        ctx.history.lock().operations += 1;
        let mut idle = true;
        for t in resp.responses {
            for pd in t.partitions {
                let p = pd.partition_index;
                let pos = positions.get(&p).copied().unwrap_or(0);
                if pd.error_code == OFFSET_OUT_OF_RANGE {
                    let start = pd.log_start_offset.max(0);
                    ctx.trace.event(&who, format!("p{p} offset {pos} out of range (log start {start}, hw {}): reset", pd.high_watermark));
                    let to = if pos < start { start } else { 0 };
                    ctx.history.lock().resets.push((who.clone(), p, to));
                    positions.insert(p, to);
                    continue;
                }
                if pd.error_code != 0 {
                    continue;
                }
                let Some(data) = pd.records else { continue };
                let end = batches_end(&data).unwrap_or(pos);
                match decode_batches(data) {
                    Ok(records) => {
                        let at = ctx.trace.elapsed();
                        let served = FetchAnswer { reader: &who, partition: p, sent_at, at, log_start: pd.log_start_offset, high_watermark: pd.high_watermark };
                        let (next, new) = served.record(&mut ctx.history.lock(), pos, records);
                        idle &= !new;
                        positions.insert(p, next.max(end));
                    }
                    Err(e) => {
                        ctx.trace.event(&who, format!("p{p}: {e}"));
                        ctx.history.lock().corrupt_served.push(format!("{who} p{p} at {pos}: {e}"));
                        broken.insert(p, e);
                    }
                }
            }
        }
        if idle {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Where a partition's segments start (read from the broker's disk by the harness, to aim
/// DeleteRecords at segment boundaries, where off-by-one errors live).
pub type SegmentBases = Arc<dyn Fn(i32) -> Vec<i64> + Send + Sync>;

/// Occasionally deletes records below the high watermark and creates, fills and deletes
/// scratch topics, until stopped. Half of the DeleteRecords calls aim at a segment boundary
/// (one before, at or one after a segment's base offset). After every acknowledged DeleteRecords
/// it reads at the requested offset and records a failure unless the read starts exactly there
/// (see the `delete-records` checker).
pub async fn admin(ctx: Ctx, seed: u64, segment_bases: Option<SegmentBases>) {
    let who = "admin";
    let mut rng = SmallRng::seed_from_u64(seed);
    // Its own stream, so aiming left the rest of the admin's choices as they were.
    let mut aim_rng = SmallRng::seed_from_u64(seed ^ 0x6169_6d00);
    let mut round = 0u32;
    while !ctx.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..=6_000))).await;
        let Some(mut c) = connect(&ctx, who).await else { continue };
        round += 1;
        if rng.random_bool(0.5) {
            let p = rng.random_range(0..ctx.partitions);
            let hw = match list_offset(&mut c, &ctx.topic, p, -1).await {
                Ok(o) => o,
                Err(e) => {
                    ctx.trace.event(who, format!("list offsets p{p}: {e}"));
                    continue;
                }
            };
            let mut to = rng.random_range(0..=hw.max(0)) / 2;
            if let Some(bases) = segment_bases.as_ref().filter(|_| aim_rng.random_bool(0.5)) {
                let bases: Vec<i64> = bases(p).into_iter().filter(|&b| b > 0 && b < hw).collect();
                if !bases.is_empty() {
                    let b = bases[aim_rng.random_range(0..bases.len())];
                    to = (b + aim_rng.random_range(-1..=1)).clamp(0, hw.max(0));
                }
            }
            let mut dp = DeleteRecordsPartition::default();
            dp.partition_index = p;
            dp.offset = to;
            let mut dt = DeleteRecordsTopic::default();
            dt.name = name(&ctx.topic);
            dt.partitions = vec![dp];
            let mut req = DeleteRecordsRequest::default();
            req.topics = vec![dt];
            req.timeout_ms = 5_000;
            ctx.history.lock().operations += 1;
            match c.send(&req).await {
                Ok(r) => {
                    let pr = r.topics.first().and_then(|t| t.partitions.first());
                    let (code, low) = pr.map_or((-1, -1), |p| (p.error_code, p.low_watermark));
                    ctx.trace.event(who, format!("delete records p{p} before {to}: error {code} low watermark {low}"));
                    if code == 0 {
                        {
                            let mut h = ctx.history.lock();
                            let e = h.deleted_before.entry(p).or_insert(0);
                            *e = (*e).max(to);
                        }
                        check_read_after_delete(&ctx, &mut c, p, to).await;
                    }
                }
                Err(e) => ctx.trace.event(who, format!("delete records: {e}")),
            }
        } else {
            let scratch = format!("scratch-{round}");
            if !create_topic(&ctx, who, &scratch, 1, &[]).await {
                return;
            }
            let mut req = DeleteTopicsRequest::default();
            let mut st = DeleteTopicState::default();
            st.name = Some(name(&scratch));
            req.topics = vec![st];
            req.topic_names = vec![name(&scratch)];
            req.timeout_ms = 5_000;
            ctx.history.lock().operations += 1;
            let Some(mut c) = connect(&ctx, who).await else { continue };
            let version = c.version_for::<DeleteTopicsRequest>().unwrap_or(1);
            let mut req6 = req.clone();
            if version >= 6 {
                req6.topic_names.clear();
            } else {
                req6.topics.clear();
            }
            match c.send_at(&req6, version).await {
                Ok(r) => ctx.trace.event(who, format!("delete topic {scratch}: error {}", r.responses.first().map_or(-1, |t| t.error_code))),
                Err(e) => ctx.trace.event(who, format!("delete topic {scratch}: {e}")),
            }
        }
    }
}

/// After DeleteRecords(`to`) on partition `p`: a fetch at `to` must serve `to` first, unless the
/// answer shows that the log start moved past it meanwhile or nothing at `to` is visible. Errors
/// (faults) leave nothing to check.
async fn check_read_after_delete(ctx: &Ctx, c: &mut Client, p: i32, to: i64) {
    let req = fetch_request(&ctx.topic, &BTreeMap::from([(p, to)]));
    let Ok(resp) = c.send_at(&req, FETCH_VERSION).await else { return };
    let Some(pd) = resp.responses.first().and_then(|t| t.partitions.first()) else { return };
    if pd.error_code != 0 || pd.log_start_offset > to || pd.high_watermark <= to {
        return;
    }
    let Some(Ok(records)) = pd.records.clone().map(decode_batches) else { return };
    let Some(first) = records.iter().map(|(o, _)| *o).find(|&o| o >= to) else { return };
    if first != to {
        let what = format!(
            "p{p}: DeleteRecords before {to} acknowledged, then a read at {to} started at {first} (log start {}, high watermark {})",
            pd.log_start_offset, pd.high_watermark
        );
        ctx.trace.event("admin", format!("VIOLATION {what}"));
        ctx.history.lock().delete_records_failures.push(what);
    }
}

/// ListOffsets of one partition at `timestamp` (-1 latest = high watermark, -2 earliest).
pub async fn list_offset(c: &mut Client, topic: &str, partition: i32, timestamp: i64) -> anyhow::Result<i64> {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = timestamp;
    p.current_leader_epoch = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    let resp = c.send(&req).await?;
    let pr = resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| anyhow::anyhow!("empty ListOffsets response"))?;
    if pr.error_code != 0 {
        anyhow::bail!("error {}", pr.error_code);
    }
    Ok(pr.offset)
}

/// How often one partition's final read may restart at a log start that retention moved.
const FINAL_READ_RESETS_MAX: u32 = 8;
/// Kafka's error code for a fetch offset outside the log.
pub(crate) const OFFSET_OUT_OF_RANGE: i16 = 1;

/// The liveness phase: within `bound`, produce one acknowledged probe record to every
/// partition, then read every partition from its log start to its high watermark.
pub async fn final_read(ctx: Ctx, probe_producer: u32, bound: Duration) -> FinalRead {
    let all: Vec<i32> = (0..ctx.partitions).collect();
    final_read_of(ctx, probe_producer, bound, &all).await
}

/// [`final_read`] of the given partitions only (all at `ctx.broker`, which must lead them).
pub async fn final_read_of(ctx: Ctx, probe_producer: u32, bound: Duration, partitions: &[i32]) -> FinalRead {
    let who = "checker";
    let start = ctx.trace.elapsed();
    let deadline = start + bound;
    let mut out = FinalRead::default();
    let mut probed: BTreeMap<i32, bool> = BTreeMap::new();
    let mut n = 0u64;
    let mut done: BTreeMap<i32, bool> = BTreeMap::new();
    while ctx.trace.elapsed() < deadline && done.len() < partitions.len() {
        let Some(mut c) = connect(&ctx, who).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        'partitions: for &p in partitions {
            if done.contains_key(&p) {
                continue;
            }
            if !probed.contains_key(&p) {
                let id: RecordId = (probe_producer, n);
                n += 1;
                // Keyed, so that a compacted topic takes it too.
                let key = Some(Bytes::from_static(b"probe"));
                let r = Produced { id, topic: ctx.topic.clone(), partition: p, key, value: Bytes::from(value_prefix(id)), headers: Vec::new(), tombstone: false, created_at: ctx.trace.elapsed() };
                ctx.history.lock().produced.insert(id, r.clone());
                let batch = Pending { partition: p, records: vec![r], base_sequence: -1, attempts: 1 };
                let Ok(req) = produce_request(&ctx.topic, &batch, -1, -1, -1, Compression::None) else { break };
                let sent_at = ctx.trace.elapsed();
                match c.send(&req).await {
                    Ok(resp) => {
                        let pr = resp.responses.first().and_then(|t| t.partition_responses.first());
                        let (code, base) = pr.map_or((-1, -1), |p| (p.error_code, p.base_offset));
                        ctx.trace.event(who, format!("probe p{p} -> error {code} offset {base}"));
                        if code != 0 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue 'partitions;
                        }
                        let at = ctx.trace.elapsed();
                        ctx.history.lock().acks.push(Ack { id, partition: p, offset: base, sent_at, at, idempotent: false });
                        probed.insert(p, true);
                    }
                    Err(e) => {
                        ctx.trace.event(who, format!("probe p{p}: {e}"));
                        break 'partitions;
                    }
                }
            }
            let (mut log_start, hw) = match (list_offset(&mut c, &ctx.topic, p, -2).await, list_offset(&mut c, &ctx.topic, p, -1).await) {
                (Ok(s), Ok(h)) => (s, h),
                (a, b) => {
                    // Display, not Debug: an anyhow error's Debug form carries a backtrace when
                    // RUST_BACKTRACE is set, and the trace (its hash) must not depend on the caller.
                    ctx.trace.event(who, format!("list offsets p{p}: {:?} {:?}", a.err().map(|e| e.to_string()), b.err().map(|e| e.to_string())));
                    break 'partitions;
                }
            };
            let mut records = Vec::new();
            let mut pos = log_start;
            let mut resets = 0;
            while pos < hw {
                let req = fetch_request(&ctx.topic, &BTreeMap::from([(p, pos)]));
                let resp = match c.send_at(&req, FETCH_VERSION).await {
                    Ok(r) => r,
                    Err(e) => {
                        ctx.trace.event(who, format!("fetch p{p} at {pos}: {e}"));
                        break 'partitions;
                    }
                };
                let Some(pd) = resp.responses.first().and_then(|t| t.partitions.first()) else { break 'partitions };
                if pd.error_code != 0 {
                    ctx.trace.event(who, format!("fetch p{p} at {pos}: error {}", pd.error_code));
                    if pd.error_code == OFFSET_OUT_OF_RANGE && resets < FINAL_READ_RESETS_MAX {
                        // Retention may have moved the log start while this read ran: go on from
                        // where the log now starts, as a consumer with auto.offset.reset=earliest
                        // does. Only a start that really moved past `pos` explains the error.
                        match list_offset(&mut c, &ctx.topic, p, -2).await {
                            Ok(s) if s > pos => {
                                ctx.trace.event(who, format!("p{p}: log start moved to {s} during the read"));
                                records.retain(|(o, _)| *o >= s);
                                (log_start, pos) = (s, s);
                                resets += 1;
                                continue;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                ctx.trace.event(who, format!("list offsets p{p}: {e}"));
                                break 'partitions;
                            }
                        }
                    }
                    out.stuck.insert(p, (pos, format!("fetch error {}", pd.error_code)));
                    break;
                }
                let end = pd.records.as_ref().and_then(batches_end).unwrap_or(pos).min(hw);
                let got = match pd.records.clone().map(decode_batches).unwrap_or(Ok(Vec::new())) {
                    Ok(g) => g,
                    Err(e) => {
                        ctx.history.lock().corrupt_served.push(format!("{who} p{p} at {pos}: {e}"));
                        out.stuck.insert(p, (pos, e));
                        break;
                    }
                };
                note_served_order(&mut ctx.history.lock(), who, p, &got);
                let before = pos;
                for (offset, r) in got {
                    if offset >= pos && offset < hw {
                        records.push((offset, r));
                        pos = offset + 1;
                    }
                }
                pos = pos.max(end);
                if pos == before {
                    out.stuck.insert(p, (pos, "fetch returned nothing below the high watermark".into()));
                    break;
                }
            }
            ctx.trace.event(who, format!("read p{p}: log start {log_start} hw {hw}, {} records", records.len()));
            out.log_start.insert(p, log_start);
            out.high_watermark.insert(p, hw);
            out.records.insert(p, records);
            done.insert(p, true);
        }
    }
    if done.len() == partitions.len() {
        out.served_after = Some(ctx.trace.elapsed().saturating_sub(start));
    }
    out
}
