//! Produce (key 0): validate each partition's record batches, append them, and acknowledge per
//! `acks` once they are durable under the partition's policy.
//!
//! * Batches are stored as sent; only the base offset and leader epoch are written by the broker
//!   (and the timestamp for LogAppendTime topics). The client's CRC32C is checked first:
//!   a mismatch is CORRUPT_MESSAGE and nothing of that partition is written.
//! * A batch above `max.message.bytes` is MESSAGE_TOO_LARGE.
//! * acks=0 gets no response at all (Kafka's contract); acks=1 and acks=-1 are answered after the
//!   fsync under the default policy (on one node they are the same thing).

use std::sync::Arc;

use gregor_core::batch::{split_validated, BatchError};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::{sb, Reply};
use crate::broker::{Broker, Partition};
use crate::errors;

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

pub fn handle(broker: &Arc<Broker>, req: ProduceRequest, _version: i16) -> Reply {
    let acks = req.acks;
    let now_ms = broker.clock.wall_ms();
    let mut resp = ProduceResponse::default();
    // (topic index, partition index in response, partition, offset that must be durable)
    let mut waits: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let topic = broker.topic(&name);
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        tr.topic_id = td.topic_id;
        for pd in td.partition_data {
            let index = pd.index;
            if !matches!(acks, -1 | 0 | 1) {
                tr.partition_responses.push(partition_error(index, errors::INVALID_REQUIRED_ACKS, None));
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| usize::try_from(index).ok().and_then(|i| t.partitions.get(i).cloned())) else {
                tr.partition_responses.push(partition_error(index, errors::UNKNOWN_TOPIC_OR_PARTITION, None));
                continue;
            };
            let Some(records) = pd.records else {
                tr.partition_responses.push(partition_error(index, errors::CORRUPT_MESSAGE, Some("no records".into())));
                continue;
            };
            let mut buf = records.to_vec();
            let batches = match split_validated(&buf) {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => {
                    tr.partition_responses.push(partition_error(index, errors::CORRUPT_MESSAGE, Some("empty record set".into())));
                    continue;
                }
                Err(e @ BatchError::BadMagic(_)) => {
                    tr.partition_responses.push(partition_error(index, errors::UNSUPPORTED_FOR_MESSAGE_FORMAT, Some(e.to_string())));
                    continue;
                }
                Err(e) => {
                    tracing::debug!(topic = %name, partition = index, error = %e, "rejected produce batch");
                    tr.partition_responses.push(partition_error(index, errors::CORRUPT_MESSAGE, Some(e.to_string())));
                    continue;
                }
            };
            let record_count: i64 = batches.iter().map(|(h, _)| h.record_count as i64).sum();
            match partition.append(&mut buf, record_count, now_ms) {
                Ok(info) => {
                    let mut r = PartitionProduceResponse::default();
                    r.index = index;
                    r.error_code = errors::NONE;
                    r.base_offset = info.base_offset;
                    r.log_append_time_ms = info.log_append_time_ms;
                    r.log_start_offset = info.log_start_offset;
                    if acks != 0 {
                        waits.push((resp.responses.len(), tr.partition_responses.len(), partition, info.last_offset + 1));
                    }
                    tr.partition_responses.push(r);
                }
                Err(e) => {
                    tr.partition_responses.push(partition_error(index, e.code(), Some(e.to_string())));
                }
            }
        }
        resp.responses.push(tr);
    }
    if acks == 0 {
        return Reply::None;
    }
    if waits.is_empty() {
        return Reply::Now(ResponseKind::Produce(resp));
    }
    Reply::Later(Box::pin(async move {
        for (t, p, partition, offset) in waits {
            if let Err(e) = partition.wait_durable(offset).await {
                let index = resp.responses[t].partition_responses[p].index;
                resp.responses[t].partition_responses[p] = partition_error(index, e.code(), Some(e.to_string()));
            }
        }
        ResponseKind::Produce(resp)
    }))
}
