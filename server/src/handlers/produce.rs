//! Produce (key 0): validate each partition's record batches as Kafka does, append them, and
//! acknowledge per `acks` once they are durable under the partition's policy.
//!
//! Checks, in Kafka's order (`KafkaApis`, `ReplicaManager`, `UnifiedLog`, `LogValidator`); the
//! first one that fails answers for the partition and nothing of that partition is written:
//! * no complete batch, or a batch of magic 0 or 1: INVALID_RECORD; a header that does not parse:
//!   CORRUPT_MESSAGE; zstd before Produce v7: UNSUPPORTED_COMPRESSION_TYPE;
//! * a client write to an internal topic (`__consumer_offsets`, `__transaction_state`,
//!   `__share_group_state`): INVALID_TOPIC_EXCEPTION. The broker writes group commits through its
//!   own path, never through this handler. Kafka lets a client whose id is `__admin_client`
//!   through; Gregor does not, because the coordinator replays that topic and a foreign record in
//!   it is never the operator's intent;
//! * a batch above the topic's `max.message.bytes`: MESSAGE_TOO_LARGE;
//! * a CRC32C mismatch or an unknown codec: CORRUPT_MESSAGE;
//! * an offset range that does not match the record count, a control batch, or a producer id
//!   with a negative base sequence: INVALID_RECORD;
//! * the records themselves ([`gregor_core::records`]): framing and offset deltas INVALID_RECORD,
//!   compressed data that does not decompress CORRUPT_MESSAGE, decompressed data beyond
//!   [`DECOMPRESSED_BYTES_PER_MESSAGE_BYTE`] times `max.message.bytes` (at least
//!   [`DECOMPRESSED_BYTES_FLOOR`]) INVALID_RECORD. The scan is read-only: nothing is re-encoded;
//! * a record without a key on a topic whose `cleanup.policy` includes `compact`: INVALID_RECORD
//!   with one `record_errors` entry per keyless record, each saying "Compacted topic cannot accept
//!   message without key in topic partition T-P.", as Kafka's LogValidator;
//! * a batch claiming `LogAppendTime` on a `LogAppendTime` topic: INVALID_TIMESTAMP with one
//!   `record_errors` entry per record (at most [`RECORD_ERRORS_MAX`]), as Kafka.
//!
//! The error message goes in `error_message` (Produce v8+; older versions have no field for it).
//! Kafka leaves it empty for most of these refusals; a message costs nothing and tells the
//! operator which check failed.
//!
//! Batches are stored as sent; the broker writes only the base offset and leader epoch, the
//! append time on LogAppendTime topics, and on CreateTime topics the max timestamp when the
//! header disagrees with the records (Kafka's `setMaxTimestamp`).
//!
//! More than one batch for a partition in one request is INVALID_RECORD, as Kafka: a producer
//! sends one batch per partition (Gregor's own tools and the simulator's client encode theirs
//! with `gregor_net::batch_encode`).
//!
//! acks=0 gets no response at all (Kafka's contract); acks=1 is answered once the leader has the
//! records durably (after its fsync under the default policy); acks=-1 once the high watermark
//! covers them — every ISR member has them durably — and the ISR still has
//! `min.insync.replicas` members (else NOT_ENOUGH_REPLICAS_AFTER_APPEND). With fewer ISR
//! members than that before the append, acks=-1 is refused with NOT_ENOUGH_REPLICAS and nothing
//! is written. An acknowledgement not reached within the request's `timeout_ms` is
//! REQUEST_TIMED_OUT (the records may still become committed; an idempotent retry settles it).

use std::sync::Arc;

use gregor_core::batch::{self, BatchError, BatchHeader, ATTR_LOG_APPEND_TIME};
use gregor_core::bugs::{self, Bug};
use gregor_core::compression::CODEC_ZSTD;
use gregor_core::probe;
use gregor_core::records::{validate_records, RecordsError};
use gregor_storage::TimestampType;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, ResponseKind};

use super::{sb, Reply};
use crate::broker::{Broker, Partition};
use crate::errors;

/// Kafka's internal topics (`Topic.INTERNAL_TOPICS`): only the broker writes them.
pub const INTERNAL_TOPICS: [&str; 3] = ["__consumer_offsets", "__transaction_state", "__share_group_state"];

/// Decompressed record data allowed per byte of `max.message.bytes`. The Java producer caps a
/// batch's *uncompressed* size at `max.request.size` (1 MiB by default), so legitimate batches
/// stay far below this; the bound only keeps a compression bomb from costing unbounded CPU
/// (memory is bounded regardless: the scan streams).
pub const DECOMPRESSED_BYTES_PER_MESSAGE_BYTE: u64 = 64;
/// The least decompressed data allowed per batch, whatever `max.message.bytes` is.
pub const DECOMPRESSED_BYTES_FLOOR: u64 = 64 << 20;
/// Most `record_errors` entries in one partition's answer (Kafka lists every record).
pub const RECORD_ERRORS_MAX: usize = 1000;

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.error_code = code;
    r.base_offset = -1;
    r.log_append_time_ms = -1;
    r.log_start_offset = -1;
    r.error_message = message.map(sb);
    r
}

/// A refusal: error code, message, and record errors.
struct Refusal(i16, String, Vec<BatchIndexAndErrorMessage>);

fn refuse(code: i16, message: impl Into<String>) -> Refusal {
    Refusal(code, message.into(), Vec::new())
}

/// The batches of one partition's record set, checked at the level of the request (Kafka's
/// `ProduceRequest.validateRecords`).
fn split_records(buf: &[u8], version: i16) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, Refusal> {
    let batches = match batch::split(buf) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) | Err(BatchError::Truncated { .. }) => {
            return Err(refuse(
                errors::INVALID_RECORD,
                format!("Produce requests with version {version} must have at least one complete record batch per partition"),
            ))
        }
        Err(BatchError::BadMagic(m)) if (0..2).contains(&m) => {
            return Err(refuse(
                errors::INVALID_RECORD,
                format!("Produce requests with version {version} are only allowed to contain record batches with magic version 2"),
            ))
        }
        Err(e) => return Err(refuse(errors::CORRUPT_MESSAGE, e.to_string())),
    };
    if version < 7 && batches.iter().any(|(h, _)| h.compression() == CODEC_ZSTD) {
        return Err(refuse(
            errors::UNSUPPORTED_COMPRESSION_TYPE,
            format!("Produce requests with version {version} are not allowed to use ZStandard compression"),
        ));
    }
    if batches.len() > 1 {
        return Err(refuse(
            errors::INVALID_RECORD,
            format!("Produce requests with version {version} are only allowed to contain exactly one record batch per partition"),
        ));
    }
    Ok(batches)
}

/// What the log validator needs from the topic's configuration.
struct Limits {
    max_message_bytes: usize,
    log_append_time: bool,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    compacted: bool,
    /// `topic-partition`, for messages.
    partition_name: String,
}

/// Validates one batch in place (`b` is the batch's bytes) and applies the CreateTime max
/// timestamp rule. Returns its record count.
fn validate_batch(b: &mut [u8], limits: &Limits) -> Result<i64, Refusal> {
    if b.len() > limits.max_message_bytes {
        return Err(refuse(
            errors::MESSAGE_TOO_LARGE,
            format!("the record batch is {} bytes, larger than max.message.bytes ({})", b.len(), limits.max_message_bytes),
        ));
    }
    let h = batch::validate_produced(b).map_err(|e| match e {
        BatchError::BadCount { .. } => refuse(errors::INVALID_RECORD, e.to_string()),
        e => refuse(errors::CORRUPT_MESSAGE, e.to_string()),
    })?;
    if h.is_control() {
        return Err(refuse(errors::INVALID_RECORD, "Clients are not allowed to write control records"));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(refuse(errors::INVALID_RECORD, format!("Invalid sequence number {} in record batch with producerId {}", h.base_sequence, h.producer_id)));
    }
    let decompressed_max = (limits.max_message_bytes as u64).saturating_mul(DECOMPRESSED_BYTES_PER_MESSAGE_BYTE).max(DECOMPRESSED_BYTES_FLOOR);
    let summary = validate_records(b, &h, decompressed_max).map_err(|e| match e {
        RecordsError::Corrupt(m) => refuse(errors::CORRUPT_MESSAGE, m),
        e @ (RecordsError::Invalid(_) | RecordsError::TooLarge { .. }) => refuse(errors::INVALID_RECORD, e.to_string()),
    })?;
    if limits.compacted && summary.keyless > 0 {
        // Kafka's LogValidator: one record error per keyless record, INVALID_RECORD for the batch.
        let message = format!("Compacted topic cannot accept message without key in topic partition {}.", limits.partition_name);
        let record_errors: Vec<BatchIndexAndErrorMessage> = summary
            .keyless_indexes
            .iter()
            .take(RECORD_ERRORS_MAX)
            .map(|&i| {
                let mut e = BatchIndexAndErrorMessage::default();
                e.batch_index = i as i32;
                e.batch_index_error_message = Some(sb(message.clone()));
                e
            })
            .collect();
        let shown: Vec<String> = record_errors.iter().take(3).map(|e| format!("RecordError(batchIndex={}, message='{message}')", e.batch_index)).collect();
        let summary_message = format!(
            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
            summary.keyless,
            shown.join(", ")
        );
        return Err(Refusal(errors::INVALID_RECORD, summary_message, record_errors));
    }
    if limits.log_append_time {
        if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
            let n = (h.record_count as usize).min(RECORD_ERRORS_MAX);
            let record_errors = (0..n)
                .map(|i| {
                    let mut e = BatchIndexAndErrorMessage::default();
                    e.batch_index = i as i32;
                    e.batch_index_error_message =
                        Some(sb("Invalid timestamp type in message. Producer should not set timestamp type to LogAppendTime.".to_string()));
                    e
                })
                .collect();
            return Err(Refusal(errors::INVALID_TIMESTAMP, "One or more records have been rejected due to invalid timestamp".into(), record_errors));
        }
    } else {
        batch::set_create_time_max_timestamp(b, summary.max_timestamp);
    }
    Ok(h.record_count as i64)
}

pub fn handle(broker: &Arc<Broker>, req: ProduceRequest, version: i16) -> Reply {
    let acks = req.acks;
    let now_ms = broker.clock.wall_ms();
    let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut resp = ProduceResponse::default();
    // (topic index, partition index in response, partition, offset that must be acknowledged,
    // leader epoch of the append, min.insync.replicas)
    let mut waits: Vec<(usize, usize, Arc<Partition>, i64, i32, usize)> = Vec::new();
    // Leaders named in KIP-951 hints; their endpoints go in the response.
    let mut hinted = std::collections::BTreeSet::new();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let internal = INTERNAL_TOPICS.contains(&name.as_str());
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        tr.topic_id = td.topic_id;
        for pd in td.partition_data {
            let index = pd.index;
            if !matches!(acks, -1 | 0 | 1) {
                tr.partition_responses.push(partition_error(index, errors::INVALID_REQUIRED_ACKS, None));
                continue;
            }
            let partition = match broker.leader_partition(&name, index, -1) {
                Ok(p) => p,
                Err(not_served) => {
                    let mut r = partition_error(index, not_served.code, None);
                    // KIP-951: tell the client who leads now, so it need not refresh metadata.
                    if let (Some((id, epoch)), true) = (not_served.leader, version >= 10) {
                        r.current_leader.leader_id = BrokerId(id);
                        r.current_leader.leader_epoch = epoch;
                        hinted.insert(id);
                    }
                    tr.partition_responses.push(r);
                    continue;
                }
            };
            let min_insync = broker.min_insync_replicas(&name);
            if acks == -1 && !internal && !bugs::active(Bug::AckBelowMinIsr) {
                let isr = partition.isr_len();
                if isr < min_insync {
                    let message = format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_insync} for partition {name}-{index}");
                    tr.partition_responses.push(partition_error(index, errors::NOT_ENOUGH_REPLICAS, Some(message)));
                    continue;
                }
            }
            let leader_epoch = partition.leader_epoch();
            let mut buf = pd.records.map(|r| r.to_vec()).unwrap_or_default();
            match produce_partition(&partition, &mut buf, version, internal, now_ms) {
                Ok(info) => {
                    broker.metrics.bytes_in.add(buf.len() as u64);
                    broker.metrics.messages_in.add(u64::try_from(info.last_offset - info.base_offset + 1).unwrap_or(0));
                    let mut r = PartitionProduceResponse::default();
                    r.index = index;
                    r.error_code = errors::NONE;
                    r.base_offset = info.base_offset;
                    r.log_append_time_ms = info.log_append_time_ms;
                    r.log_start_offset = info.log_start_offset;
                    if acks != 0 {
                        waits.push((resp.responses.len(), tr.partition_responses.len(), partition, info.last_offset + 1, leader_epoch, min_insync));
                    }
                    tr.partition_responses.push(r);
                }
                Err(Refusal(code, message, record_errors)) => {
                    tracing::debug!(topic = %name, partition = index, code, error = %message, "refused produce");
                    let mut r = partition_error(index, code, Some(message));
                    r.record_errors = record_errors;
                    tr.partition_responses.push(r);
                }
            }
        }
        resp.responses.push(tr);
    }
    resp.node_endpoints = super::endpoint_list!(broker, &hinted, NodeEndpoint);
    let refused = resp.responses.iter().flat_map(|t| &t.partition_responses).filter(|r| r.error_code != errors::NONE).count();
    broker.metrics.failed_produce.add(refused as u64);
    if acks == 0 {
        return Reply::None;
    }
    if waits.is_empty() {
        return Reply::Now(ResponseKind::Produce(resp));
    }
    let clock = broker.clock.clone();
    let node_id = broker.config.node_id;
    let metrics = broker.metrics.clone();
    // In the produce purgatory until answered (or dropped with its connection).
    let waiting = metrics.produce_purgatory.enter();
    Reply::Later(Box::pin(async move {
        let _waiting = waiting;
        let deadline = clock.monotonic_ms() + timeout.as_millis() as u64;
        for (t, p, partition, offset, leader_epoch, min_insync) in waits {
            // Only acks=-1 waits on other brokers, within the request's timeout; acks=1 waits
            // for this broker's own disk.
            let result = if acks == -1 {
                let left = std::time::Duration::from_millis(deadline.saturating_sub(clock.monotonic_ms()));
                // The injected bug forgets min.insync.replicas here as well as before the append.
                let min_insync = if bugs::active(Bug::AckBelowMinIsr) { 1 } else { min_insync };
                match tokio::time::timeout(left, partition.wait_replicated(offset, leader_epoch, min_insync)).await {
                    Ok(Ok(())) => {
                        probe::observe(probe::Observed::Acknowledged(probe::AckedWrite { node_id, topic: &partition.topic, partition: partition.index, end_offset: offset }));
                        Ok(())
                    }
                    Ok(Err(e)) => Err((e.code(), e.to_string())),
                    Err(_) => Err((errors::REQUEST_TIMED_OUT, format!("not acknowledged within the request's timeout of {} ms", timeout.as_millis()))),
                }
            } else {
                partition.wait_durable(offset).await.map_err(|e| (e.code(), e.to_string()))
            };
            if let Err((code, message)) = result {
                metrics.failed_produce.inc();
                let index = resp.responses[t].partition_responses[p].index;
                resp.responses[t].partition_responses[p] = partition_error(index, code, Some(message));
            }
        }
        ResponseKind::Produce(resp)
    }))
}

/// Validates and appends one partition's record set.
fn produce_partition(partition: &Partition, buf: &mut [u8], version: i16, internal: bool, now_ms: i64) -> Result<gregor_storage::AppendInfo, Refusal> {
    let batches = split_records(buf, version)?;
    if internal {
        return Err(refuse(errors::INVALID_TOPIC_EXCEPTION, format!("Cannot append to internal topic {}", partition.topic)));
    }
    let limits = partition
        .with_log_mut(|log, _| {
            let c = log.config();
            Ok(Limits {
                max_message_bytes: c.max_message_bytes,
                log_append_time: c.timestamp_type == TimestampType::LogAppendTime,
                compacted: c.cleanup_policy.compact,
                partition_name: format!("{}-{}", partition.topic, partition.index),
            })
        })
        .map_err(|e| refuse(e.code(), e.to_string()))?;
    let mut record_count = 0i64;
    for (_, range) in batches {
        record_count += validate_batch(&mut buf[range], &limits)?;
    }
    partition.append(buf, record_count, now_ms).map_err(|e| refuse(e.code(), e.to_string()))
}
