//! Fetch (key 1): read whole batches as stored, long-polling until `min_bytes` or `max_wait_ms`.
//!
//! * Limits: `partition_max_bytes` per partition and `max_bytes` for the response, except that
//!   the first batch found is returned whole even when larger (KIP-74), so a big record never
//!   blocks a consumer.
//! * Long poll: when less than `min_bytes` is available, the fetch waits on the broker's
//!   high-watermark signal (never a busy loop) until enough arrives or `max_wait_ms` passes.
//! * Fetch sessions (KIP-227) are declined cleanly: full fetches get session id 0, which tells
//!   the client to keep sending full requests; an incremental fetch for an unknown session gets
//!   FETCH_SESSION_ID_NOT_FOUND.
//! * v13+ names topics by id; an unknown id is UNKNOWN_TOPIC_ID.
//! * A fetch with a replica id (`replica_id` before v15, `replica_state` from v15) is a
//!   follower's: it is served by [`crate::broker::Partition::read_for_follower`] — the
//!   diverging-epoch check, the follower's new position (which may move the high watermark),
//!   records up to the log end rather than the high watermark — and it long-polls on the
//!   leader's log growing rather than on its high watermark.
//! * Replication throttles (`broker::throttle`): for a partition throttled on this leader, a
//!   follower outside the ISR gets no records while the leader quota is used up; what is sent
//!   for throttled partitions counts against it.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ResponseKind};

use super::Reply;
use crate::broker::{Broker, PartitionError};
use crate::errors;

/// Upper bound on a fetch's wait, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

pub fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> Reply {
    // Sessions: session_id 0 with epoch -1 (no session) or 0 (create one) is a full fetch.
    if req.session_id != 0 || !(req.session_epoch == -1 || req.session_epoch == 0) {
        let mut resp = FetchResponse::default();
        resp.error_code = if req.session_id != 0 { errors::FETCH_SESSION_ID_NOT_FOUND } else { errors::INVALID_FETCH_SESSION_EPOCH };
        resp.session_id = 0;
        return Reply::Now(ResponseKind::Fetch(resp));
    }
    let broker = broker.clone();
    let start = broker.clock.monotonic_ms();
    let max_wait_ms = (req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Everything runs in the deferred part: a fetch changes no state, and waiting here keeps the
    // connection's reader free to read the next request.
    let replica = replica_id(&req, version);
    Reply::Later(Box::pin(async move {
        loop {
            let signal = if replica >= 0 { &broker.signals.appended } else { &broker.signals.hw_changed };
            let notified = signal.notified();
            let read = read_once(&broker, &req, version, replica);
            let elapsed = broker.clock.monotonic_ms().saturating_sub(start);
            if read.bytes >= min_bytes || read.has_error || elapsed >= max_wait_ms || broker.is_closing() {
                return answer(&broker, replica, read);
            }
            let remaining = Duration::from_millis(max_wait_ms - elapsed);
            let timed_out = {
                let _waiting = broker.metrics.fetch_purgatory.enter();
                tokio::time::timeout(remaining, notified).await.is_err()
            };
            if timed_out {
                return answer(&broker, replica, read_once(&broker, &req, version, replica));
            }
        }
    }))
}

/// The answer of `read`, counted in the byte and failure metrics.
fn answer(broker: &Broker, replica: i32, read: Read) -> ResponseKind {
    let m = &broker.metrics;
    let bytes = if replica >= 0 { &m.replication_bytes_out } else { &m.bytes_out };
    bytes.add(read.bytes as u64);
    if read.has_error {
        m.failed_fetch.inc();
    }
    ResponseKind::Fetch(read.answered(broker))
}

/// The fetching replica's broker id, or -1 for a consumer.
fn replica_id(req: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

/// The broker epoch a replica's fetch carries (KIP-903, `replica_state` from v15; -1 before).
fn replica_epoch(req: &FetchRequest, version: i16) -> i64 {
    if version >= 15 {
        req.replica_state.replica_epoch
    } else {
        -1
    }
}

fn partition_result(index: i32, code: i16) -> PartitionData {
    let mut pd = PartitionData::default();
    pd.partition_index = index;
    pd.error_code = code;
    pd.high_watermark = -1;
    pd.last_stable_offset = -1;
    pd.log_start_offset = -1;
    pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
    pd.records = Some(bytes::Bytes::new());
    pd
}

/// One pass over the requested partitions.
struct Read {
    resp: FetchResponse,
    /// Bytes of records in it.
    bytes: usize,
    /// Whether any partition has an error.
    has_error: bool,
    /// Bytes of records of leader-throttled partitions (a follower's fetch).
    throttled_bytes: usize,
}

impl Read {
    /// The response to send; what it carries of throttled partitions counts against the
    /// leader's replication quota (only what is sent: a long poll reads more than once).
    fn answered(self, broker: &Broker) -> FetchResponse {
        broker.throttles.record_leader(broker.clock.monotonic_ms(), self.throttled_bytes as u64);
        self.resp
    }
}

fn read_once(broker: &Broker, req: &FetchRequest, version: i16, replica: i32) -> Read {
    let mut throttled_bytes = 0usize;
    let mut resp = FetchResponse::default();
    resp.error_code = errors::NONE;
    resp.session_id = 0;
    let mut budget = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut has_error = false;
    // Leaders named in KIP-951 hints; their endpoints go in the response (v16+).
    let mut hinted = std::collections::BTreeSet::new();
    for ft in &req.topics {
        let name = if version >= 13 { broker.topic_by_id(&ft.topic_id).map(|t| t.name) } else { Some(ft.topic.0.to_string()) };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        tr.topic_id = ft.topic_id;
        for fp in &ft.partitions {
            let unknown = if version >= 13 { errors::UNKNOWN_TOPIC_ID } else { errors::UNKNOWN_TOPIC_OR_PARTITION };
            let Some(name) = name.as_deref() else {
                has_error = true;
                tr.partitions.push(partition_result(fp.partition, unknown));
                continue;
            };
            let partition = match broker.leader_partition(name, fp.partition, fp.current_leader_epoch) {
                Ok(p) => p,
                Err(not_served) => {
                    has_error = true;
                    let code = if not_served.code == errors::UNKNOWN_TOPIC_OR_PARTITION { unknown } else { not_served.code };
                    let mut pd = partition_result(fp.partition, code);
                    // KIP-951: tell the client who leads now.
                    if let (Some((id, epoch)), true) = (not_served.leader, version >= 12) {
                        pd.current_leader.leader_id = BrokerId(id);
                        pd.current_leader.leader_epoch = epoch;
                        hinted.insert(id);
                    }
                    tr.partitions.push(pd);
                    continue;
                }
            };
            // The first partition with data may exceed the budget by one batch (KIP-74).
            let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
            let max_bytes = if total == 0 { limit.max(1) } else { limit };
            let mut pd = partition_result(fp.partition, errors::NONE);
            if replica >= 0 {
                let now = broker.clock.monotonic_ms();
                let marked = broker.throttles.leader_marked(name, fp.partition);
                let throttled = marked && broker.throttles.leader_exceeded(now);
                match partition.read_for_follower(replica, replica_epoch(&req, version), fp.current_leader_epoch, fp.fetch_offset, fp.last_fetched_epoch, max_bytes, throttled, now) {
                    Ok(r) => {
                        if marked {
                            throttled_bytes += r.data.len();
                        }
                        pd.high_watermark = r.high_watermark;
                        pd.last_stable_offset = r.high_watermark;
                        pd.log_start_offset = r.log_start;
                        if let Some((epoch, end)) = r.diverging {
                            pd.diverging_epoch.epoch = epoch;
                            pd.diverging_epoch.end_offset = end;
                            has_error = true;
                        }
                        total += r.data.len();
                        budget = budget.saturating_sub(r.data.len());
                        pd.records = Some(r.data);
                    }
                    Err(e) => {
                        has_error = true;
                        pd.error_code = e.code();
                        if let PartitionError::OutOfRange { start, .. } = e {
                            pd.log_start_offset = start;
                        }
                    }
                }
                tr.partitions.push(pd);
                continue;
            }
            let result = if max_bytes == 0 {
                partition.offsets().map(|o| (bytes::Bytes::new(), o))
            } else {
                partition.read(fp.fetch_offset, max_bytes).map(|(r, o)| (r.data, o))
            };
            match result {
                Ok((data, offsets)) => {
                    pd.high_watermark = offsets.high_watermark;
                    pd.last_stable_offset = offsets.high_watermark;
                    pd.log_start_offset = offsets.log_start;
                    total += data.len();
                    budget = budget.saturating_sub(data.len());
                    if req.isolation_level == 1 {
                        pd.aborted_transactions = Some(Vec::new());
                    }
                    pd.records = Some(data);
                }
                Err(e) => {
                    has_error = true;
                    pd.error_code = e.code();
                    if let PartitionError::OutOfRange { start, .. } = e {
                        pd.log_start_offset = start;
                        if let Ok(o) = partition.offsets() {
                            pd.high_watermark = o.high_watermark;
                            pd.last_stable_offset = o.high_watermark;
                        }
                    }
                }
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    if version >= 16 {
        resp.node_endpoints = super::endpoint_list!(broker, &hinted, NodeEndpoint);
    }
    Read { resp, bytes: total, has_error, throttled_bytes }
}
