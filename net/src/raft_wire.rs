//! The KRaft quorum's messages ([`gregor_core::raft::messages`]) on Kafka's wire: conversions
//! to and from `kafka-protocol`'s Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch and
//! FetchSnapshot, and the record-batch form of log entries.
//!
//! Decisions:
//! * Versions: Gregor's voters speak Vote v2 (KIP-996 pre-vote), BeginQuorumEpoch v1,
//!   EndQuorumEpoch v1, Fetch v16 and FetchSnapshot v1 — Kafka 4's. Directory ids and endpoints
//!   (KIP-853) are sent empty.
//! * The metadata partition is `__cluster_metadata`-0 with Kafka's fixed topic id (…0001).
//! * An entry travels, and is stored, as one v2 record batch holding one record (base offset =
//!   the entry's offset, partition leader epoch = its epoch). A data entry's record has no key;
//!   a LeaderChange entry's key is Kafka's control key for LeaderChange (version 0, type 2) and
//!   its value the leader, voters and granting voters in Gregor's encoding.
//! * Decoding never panics: a message without the metadata partition, or a batch that does not
//!   parse, is an error the caller answers or drops.

use bytes::Bytes;
use gregor_core::batch::BatchHeader;
use gregor_core::metadata::codec::{Reader, Writer};
use gregor_core::raft::messages as m;
use gregor_core::raft::{Entry, EntryKind, OffsetAndEpoch};
use kafka_protocol::messages::{self as k, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

pub const VOTE_VERSION: i16 = 2;
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = 1;
pub const END_QUORUM_EPOCH_VERSION: i16 = 1;
/// Fetch of `__cluster_metadata`: sent at the highest of these the peer takes (v18 carries the
/// fetcher's high watermark, KIP-1166); v16 is what Gregor spoke before.
pub const FETCH_VERSION_MIN: i16 = 16;
pub const FETCH_VERSION: i16 = 18;
pub const FETCH_SNAPSHOT_VERSION: i16 = 1;

/// Kafka's fixed topic id of `__cluster_metadata` (`AAAAAAAAAAAAAAAAAAAAAQ`).
pub const METADATA_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(1);

/// The record key of a LeaderChange entry.
const LEADER_CHANGE_KEY: &[u8] = &[0, 0, 0, 2];

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(m::METADATA_TOPIC))
}

fn opt(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(sb)
}

fn unopt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn only<'a, T>(items: &'a [T], what: &str) -> Result<&'a T, String> {
    match items {
        [one] => Ok(one),
        _ => Err(format!("{what}: expected exactly one entry for the metadata partition, got {}", items.len())),
    }
}

// ----- entries ------------------------------------------------------------------------------

/// One entry as a record batch.
pub fn entry_to_batch(entry: &Entry) -> Vec<u8> {
    let (key, value): (Option<&[u8]>, Vec<u8>) = match &entry.kind {
        EntryKind::Data => (None, entry.payload.to_vec()),
        EntryKind::LeaderChange { leader_id, voters, granting_voters } => {
            let mut w = Writer::default();
            w.i32(*leader_id);
            w.i32s(voters);
            w.i32s(granting_voters);
            (Some(LEADER_CHANGE_KEY), w.buf)
        }
    };
    let mut b = gregor_core::batch::build_simple(entry.offset, 0, &[(key, Some(value.as_slice()))]);
    gregor_core::batch::set_offset_and_epoch(&mut b, entry.offset, entry.epoch);
    b
}

/// Entries as concatenated record batches.
pub fn entries_to_batches(entries: &[Entry]) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&entry_to_batch(e));
    }
    Bytes::from(out)
}

/// The entries of the whole batches in `data` (a trailing partial batch is ignored, as Kafka
/// ignores one in a Fetch response). Any malformed batch is an error naming its offset.
pub fn batches_to_entries(mut data: Bytes) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    while let Ok(h) = BatchHeader::parse(&data) {
        if h.total_len() > data.len() {
            break;
        }
        gregor_core::batch::validate(&data[..h.total_len()]).map_err(|e| format!("entry at offset {}: {e}", h.base_offset))?;
        let mut one = data.split_to(h.total_len());
        let bad = |why: &str| format!("entry at offset {}: {why}", h.base_offset);
        let set = RecordBatchDecoder::decode(&mut one).map_err(|e| bad(&e.to_string()))?;
        let [record] = set.records.as_slice() else {
            return Err(bad(&format!("{} records in one entry", set.records.len())));
        };
        let value = record.value.clone().ok_or_else(|| bad("no value"))?;
        let kind = match record.key.as_deref() {
            None => EntryKind::Data,
            Some(LEADER_CHANGE_KEY) => {
                let mut r = Reader::new(&value);
                let kind = EntryKind::LeaderChange {
                    leader_id: r.i32().ok_or_else(|| bad("malformed LeaderChange"))?,
                    voters: r.i32s().ok_or_else(|| bad("malformed LeaderChange"))?,
                    granting_voters: r.i32s().ok_or_else(|| bad("malformed LeaderChange"))?,
                };
                if r.remaining() != 0 {
                    return Err(bad("malformed LeaderChange"));
                }
                kind
            }
            Some(_) => return Err(bad("unknown entry key")),
        };
        let payload = if kind == EntryKind::Data { value } else { Bytes::new() };
        out.push(Entry { offset: h.base_offset, epoch: h.partition_leader_epoch, kind, payload });
    }
    Ok(out)
}

// ----- Vote ---------------------------------------------------------------------------------

pub fn vote_request(r: &m::VoteRequest) -> k::VoteRequest {
    let mut p = k::vote_request::PartitionData::default();
    p.partition_index = r.partition_index;
    p.replica_epoch = r.replica_epoch;
    p.replica_id = BrokerId(r.replica_id);
    p.last_offset_epoch = r.last_offset_epoch;
    p.last_offset = r.last_offset;
    p.pre_vote = r.pre_vote;
    let mut t = k::vote_request::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut req = k::VoteRequest::default();
    req.cluster_id = opt(&r.cluster_id);
    req.voter_id = BrokerId(r.voter_id);
    req.topics = vec![t];
    req
}

/// The sender and the request.
pub fn vote_request_from(req: &k::VoteRequest) -> Result<(i32, m::VoteRequest), String> {
    let t = only(&req.topics, "Vote")?;
    let p = only(&t.partitions, "Vote")?;
    Ok((
        p.replica_id.0,
        m::VoteRequest {
            cluster_id: unopt(&req.cluster_id),
            voter_id: req.voter_id.0,
            partition_index: p.partition_index,
            replica_epoch: p.replica_epoch,
            replica_id: p.replica_id.0,
            last_offset_epoch: p.last_offset_epoch,
            last_offset: p.last_offset,
            pre_vote: p.pre_vote,
        },
    ))
}

pub fn vote_response(r: &m::VoteResponse) -> k::VoteResponse {
    let mut p = k::vote_response::PartitionData::default();
    p.partition_index = r.partition_index;
    p.error_code = r.partition_error_code;
    p.leader_id = BrokerId(r.leader_id);
    p.leader_epoch = r.leader_epoch;
    p.vote_granted = r.vote_granted;
    let mut t = k::vote_response::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut resp = k::VoteResponse::default();
    resp.error_code = r.error_code;
    resp.topics = vec![t];
    resp
}

pub fn vote_response_from(resp: &k::VoteResponse) -> Result<m::VoteResponse, String> {
    let (partition_index, partition_error_code, leader_id, leader_epoch, vote_granted) = match resp.topics.as_slice() {
        [] => (0, resp.error_code, -1, -1, false),
        _ => {
            let p = only(&only(&resp.topics, "Vote")?.partitions, "Vote")?;
            (p.partition_index, p.error_code, p.leader_id.0, p.leader_epoch, p.vote_granted)
        }
    };
    Ok(m::VoteResponse { error_code: resp.error_code, partition_index, partition_error_code, leader_id, leader_epoch, vote_granted })
}

// ----- BeginQuorumEpoch ---------------------------------------------------------------------

pub fn begin_request(r: &m::BeginQuorumEpochRequest) -> k::BeginQuorumEpochRequest {
    let mut p = k::begin_quorum_epoch_request::PartitionData::default();
    p.partition_index = r.partition_index;
    p.leader_id = BrokerId(r.leader_id);
    p.leader_epoch = r.leader_epoch;
    let mut t = k::begin_quorum_epoch_request::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut req = k::BeginQuorumEpochRequest::default();
    req.cluster_id = opt(&r.cluster_id);
    req.voter_id = BrokerId(r.voter_id);
    req.topics = vec![t];
    req
}

pub fn begin_request_from(req: &k::BeginQuorumEpochRequest) -> Result<(i32, m::BeginQuorumEpochRequest), String> {
    let p = only(&only(&req.topics, "BeginQuorumEpoch")?.partitions, "BeginQuorumEpoch")?;
    Ok((
        p.leader_id.0,
        m::BeginQuorumEpochRequest {
            cluster_id: unopt(&req.cluster_id),
            voter_id: req.voter_id.0,
            partition_index: p.partition_index,
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
        },
    ))
}

pub fn begin_response(r: &m::BeginQuorumEpochResponse) -> k::BeginQuorumEpochResponse {
    let mut p = k::begin_quorum_epoch_response::PartitionData::default();
    p.partition_index = r.partition_index;
    p.error_code = r.partition_error_code;
    p.leader_id = BrokerId(r.leader_id);
    p.leader_epoch = r.leader_epoch;
    let mut t = k::begin_quorum_epoch_response::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut resp = k::BeginQuorumEpochResponse::default();
    resp.error_code = r.error_code;
    resp.topics = vec![t];
    resp
}

pub fn begin_response_from(resp: &k::BeginQuorumEpochResponse) -> Result<m::BeginQuorumEpochResponse, String> {
    let (partition_index, partition_error_code, leader_id, leader_epoch) = match resp.topics.as_slice() {
        [] => (0, resp.error_code, -1, -1),
        _ => {
            let p = only(&only(&resp.topics, "BeginQuorumEpoch")?.partitions, "BeginQuorumEpoch")?;
            (p.partition_index, p.error_code, p.leader_id.0, p.leader_epoch)
        }
    };
    Ok(m::BeginQuorumEpochResponse { error_code: resp.error_code, partition_index, partition_error_code, leader_id, leader_epoch })
}

// ----- EndQuorumEpoch -----------------------------------------------------------------------

pub fn end_request(r: &m::EndQuorumEpochRequest) -> k::EndQuorumEpochRequest {
    let mut p = k::end_quorum_epoch_request::PartitionData::default();
    p.partition_index = r.partition_index;
    p.leader_id = BrokerId(r.leader_id);
    p.leader_epoch = r.leader_epoch;
    p.preferred_candidates = r
        .preferred_successors
        .iter()
        .map(|id| {
            let mut c = k::end_quorum_epoch_request::ReplicaInfo::default();
            c.candidate_id = BrokerId(*id);
            c
        })
        .collect();
    let mut t = k::end_quorum_epoch_request::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut req = k::EndQuorumEpochRequest::default();
    req.cluster_id = opt(&r.cluster_id);
    req.topics = vec![t];
    req
}

pub fn end_request_from(req: &k::EndQuorumEpochRequest, version: i16) -> Result<(i32, m::EndQuorumEpochRequest), String> {
    let p = only(&only(&req.topics, "EndQuorumEpoch")?.partitions, "EndQuorumEpoch")?;
    let preferred_successors =
        if version == 0 { p.preferred_successors.clone() } else { p.preferred_candidates.iter().map(|c| c.candidate_id.0).collect() };
    Ok((
        p.leader_id.0,
        m::EndQuorumEpochRequest {
            cluster_id: unopt(&req.cluster_id),
            partition_index: p.partition_index,
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            preferred_successors,
        },
    ))
}

pub fn end_response(r: &m::EndQuorumEpochResponse) -> k::EndQuorumEpochResponse {
    let mut p = k::end_quorum_epoch_response::PartitionData::default();
    p.partition_index = r.partition_index;
    p.error_code = r.partition_error_code;
    p.leader_id = BrokerId(r.leader_id);
    p.leader_epoch = r.leader_epoch;
    let mut t = k::end_quorum_epoch_response::TopicData::default();
    t.topic_name = topic();
    t.partitions = vec![p];
    let mut resp = k::EndQuorumEpochResponse::default();
    resp.error_code = r.error_code;
    resp.topics = vec![t];
    resp
}

pub fn end_response_from(resp: &k::EndQuorumEpochResponse) -> Result<m::EndQuorumEpochResponse, String> {
    let (partition_index, partition_error_code, leader_id, leader_epoch) = match resp.topics.as_slice() {
        [] => (0, resp.error_code, -1, -1),
        _ => {
            let p = only(&only(&resp.topics, "EndQuorumEpoch")?.partitions, "EndQuorumEpoch")?;
            (p.partition_index, p.error_code, p.leader_id.0, p.leader_epoch)
        }
    };
    Ok(m::EndQuorumEpochResponse { error_code: resp.error_code, partition_index, partition_error_code, leader_id, leader_epoch })
}

// ----- Fetch --------------------------------------------------------------------------------

pub fn fetch_request(r: &m::FetchRequest) -> k::FetchRequest {
    let mut p = k::fetch_request::FetchPartition::default();
    p.partition = r.partition;
    p.current_leader_epoch = r.current_leader_epoch;
    p.fetch_offset = r.fetch_offset;
    p.last_fetched_epoch = r.last_fetched_epoch;
    p.log_start_offset = r.log_start_offset;
    p.partition_max_bytes = i32::MAX;
    // Kafka's "not supported" value where the fetcher does not say.
    p.high_watermark = r.high_watermark.unwrap_or(i64::MAX);
    let mut t = k::fetch_request::FetchTopic::default();
    t.topic_id = METADATA_TOPIC_ID;
    t.partitions = vec![p];
    let mut req = k::FetchRequest::default();
    req.cluster_id = opt(&r.cluster_id);
    req.replica_state.replica_id = BrokerId(r.replica_id);
    req.replica_state.replica_epoch = -1;
    req.max_wait_ms = r.max_wait_ms;
    req.min_bytes = 0;
    req.max_bytes = i32::MAX;
    req.topics = vec![t];
    req
}

/// Whether a Fetch is for the metadata partition (and so for the quorum, not the broker).
pub fn is_metadata_fetch(req: &k::FetchRequest) -> bool {
    req.topics.iter().any(|t| t.topic_id == METADATA_TOPIC_ID || t.topic.0.as_str() == m::METADATA_TOPIC)
}

pub fn fetch_request_from(req: &k::FetchRequest, version: i16) -> Result<(i32, m::FetchRequest), String> {
    let t = only(&req.topics, "Fetch")?;
    let p = only(&t.partitions, "Fetch")?;
    let replica_id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    Ok((
        replica_id,
        m::FetchRequest {
            cluster_id: unopt(&req.cluster_id),
            replica_id,
            max_wait_ms: req.max_wait_ms,
            partition: p.partition,
            current_leader_epoch: p.current_leader_epoch,
            fetch_offset: p.fetch_offset,
            last_fetched_epoch: p.last_fetched_epoch,
            log_start_offset: p.log_start_offset,
            // -1 is "unknown" and i64::MAX "not supported" (KIP-1166); neither is a position.
            high_watermark: (version >= 18 && (0..i64::MAX).contains(&p.high_watermark)).then_some(p.high_watermark),
        },
    ))
}

pub fn fetch_response(r: &m::FetchResponse) -> k::FetchResponse {
    let mut p = k::fetch_response::PartitionData::default();
    p.partition_index = r.partition_index;
    p.error_code = r.partition_error_code;
    p.high_watermark = r.high_watermark;
    p.last_stable_offset = r.high_watermark;
    p.log_start_offset = r.log_start_offset;
    p.diverging_epoch.epoch = r.diverging_epoch.map_or(-1, |d| d.epoch);
    p.diverging_epoch.end_offset = r.diverging_epoch.map_or(-1, |d| d.offset);
    p.current_leader.leader_id = BrokerId(r.current_leader.leader_id);
    p.current_leader.leader_epoch = r.current_leader.leader_epoch;
    p.snapshot_id.end_offset = r.snapshot_id.map_or(-1, |s| s.offset);
    p.snapshot_id.epoch = r.snapshot_id.map_or(-1, |s| s.epoch);
    p.records = Some(entries_to_batches(&r.records));
    let mut t = k::fetch_response::FetchableTopicResponse::default();
    t.topic_id = METADATA_TOPIC_ID;
    t.partitions = vec![p];
    let mut resp = k::FetchResponse::default();
    resp.error_code = r.error_code;
    resp.responses = vec![t];
    resp
}

pub fn fetch_response_from(resp: &k::FetchResponse) -> Result<m::FetchResponse, String> {
    if resp.responses.is_empty() {
        return Ok(m::FetchResponse {
            error_code: resp.error_code,
            partition_index: 0,
            partition_error_code: resp.error_code,
            high_watermark: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            current_leader: m::LeaderIdAndEpoch { leader_id: -1, leader_epoch: -1 },
            snapshot_id: None,
            records: Vec::new(),
        });
    }
    let p = only(&only(&resp.responses, "Fetch")?.partitions, "Fetch")?;
    let records = match &p.records {
        Some(data) => batches_to_entries(data.clone())?,
        None => Vec::new(),
    };
    let d = &p.diverging_epoch;
    let s = &p.snapshot_id;
    Ok(m::FetchResponse {
        error_code: resp.error_code,
        partition_index: p.partition_index,
        partition_error_code: p.error_code,
        high_watermark: p.high_watermark,
        log_start_offset: p.log_start_offset,
        diverging_epoch: (d.epoch >= 0 && d.end_offset >= 0).then(|| OffsetAndEpoch::new(d.end_offset, d.epoch)),
        current_leader: m::LeaderIdAndEpoch { leader_id: p.current_leader.leader_id.0, leader_epoch: p.current_leader.leader_epoch },
        snapshot_id: (s.epoch >= 0 && s.end_offset >= 0).then(|| OffsetAndEpoch::new(s.end_offset, s.epoch)),
        records,
    })
}

// ----- FetchSnapshot ------------------------------------------------------------------------

pub fn fetch_snapshot_request(r: &m::FetchSnapshotRequest) -> k::FetchSnapshotRequest {
    let mut p = k::fetch_snapshot_request::PartitionSnapshot::default();
    p.partition = r.partition;
    p.current_leader_epoch = r.current_leader_epoch;
    p.snapshot_id.end_offset = r.snapshot_id.offset;
    p.snapshot_id.epoch = r.snapshot_id.epoch;
    p.position = r.position;
    let mut t = k::fetch_snapshot_request::TopicSnapshot::default();
    t.name = topic();
    t.partitions = vec![p];
    let mut req = k::FetchSnapshotRequest::default();
    req.cluster_id = opt(&r.cluster_id);
    req.replica_id = BrokerId(r.replica_id);
    req.max_bytes = r.max_bytes;
    req.topics = vec![t];
    req
}

pub fn fetch_snapshot_request_from(req: &k::FetchSnapshotRequest) -> Result<(i32, m::FetchSnapshotRequest), String> {
    let p = only(&only(&req.topics, "FetchSnapshot")?.partitions, "FetchSnapshot")?;
    Ok((
        req.replica_id.0,
        m::FetchSnapshotRequest {
            cluster_id: unopt(&req.cluster_id),
            replica_id: req.replica_id.0,
            max_bytes: req.max_bytes,
            partition: p.partition,
            current_leader_epoch: p.current_leader_epoch,
            snapshot_id: OffsetAndEpoch::new(p.snapshot_id.end_offset, p.snapshot_id.epoch),
            position: p.position,
        },
    ))
}

pub fn fetch_snapshot_response(r: &m::FetchSnapshotResponse) -> k::FetchSnapshotResponse {
    let mut p = k::fetch_snapshot_response::PartitionSnapshot::default();
    p.index = r.partition_index;
    p.error_code = r.partition_error_code;
    p.snapshot_id.end_offset = r.snapshot_id.offset;
    p.snapshot_id.epoch = r.snapshot_id.epoch;
    p.current_leader.leader_id = BrokerId(r.current_leader.leader_id);
    p.current_leader.leader_epoch = r.current_leader.leader_epoch;
    p.size = r.size;
    p.position = r.position;
    p.unaligned_records = r.unaligned_records.clone();
    let mut t = k::fetch_snapshot_response::TopicSnapshot::default();
    t.name = topic();
    t.partitions = vec![p];
    let mut resp = k::FetchSnapshotResponse::default();
    resp.error_code = r.error_code;
    resp.topics = vec![t];
    resp
}

pub fn fetch_snapshot_response_from(resp: &k::FetchSnapshotResponse) -> Result<m::FetchSnapshotResponse, String> {
    let p = only(&only(&resp.topics, "FetchSnapshot")?.partitions, "FetchSnapshot")?;
    Ok(m::FetchSnapshotResponse {
        error_code: resp.error_code,
        partition_index: p.index,
        partition_error_code: p.error_code,
        snapshot_id: OffsetAndEpoch::new(p.snapshot_id.end_offset, p.snapshot_id.epoch),
        current_leader: m::LeaderIdAndEpoch { leader_id: p.current_leader.leader_id.0, leader_epoch: p.current_leader.leader_epoch },
        size: p.size,
        position: p.position,
        unaligned_records: p.unaligned_records.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn wire<T: Encodable + Decodable>(v: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        v.encode(&mut buf, version).unwrap();
        T::decode(&mut buf.freeze(), version).unwrap()
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry { offset: 5, epoch: 2, kind: EntryKind::LeaderChange { leader_id: 1, voters: vec![1, 2, 3], granting_voters: vec![1, 3] }, payload: Bytes::new() },
            Entry { offset: 6, epoch: 2, kind: EntryKind::Data, payload: Bytes::from_static(b"records") },
        ]
    }

    #[test]
    fn every_message_survives_the_wire() {
        let v = m::VoteRequest { cluster_id: Some("c".into()), voter_id: 2, partition_index: 0, replica_epoch: 4, replica_id: 1, last_offset_epoch: 3, last_offset: 9, pre_vote: true };
        assert_eq!(vote_request_from(&wire(&vote_request(&v), VOTE_VERSION)).unwrap(), (1, v));
        let vr = m::VoteResponse { error_code: 0, partition_index: 0, partition_error_code: 74, leader_id: 3, leader_epoch: 5, vote_granted: true };
        assert_eq!(vote_response_from(&wire(&vote_response(&vr), VOTE_VERSION)).unwrap(), vr);
        let b = m::BeginQuorumEpochRequest { cluster_id: None, voter_id: 2, partition_index: 0, leader_id: 1, leader_epoch: 7 };
        assert_eq!(begin_request_from(&wire(&begin_request(&b), BEGIN_QUORUM_EPOCH_VERSION)).unwrap(), (1, b));
        let br = m::BeginQuorumEpochResponse { error_code: 0, partition_index: 0, partition_error_code: 0, leader_id: 1, leader_epoch: 7 };
        assert_eq!(begin_response_from(&wire(&begin_response(&br), BEGIN_QUORUM_EPOCH_VERSION)).unwrap(), br);
        let e = m::EndQuorumEpochRequest { cluster_id: Some("c".into()), partition_index: 0, leader_id: 1, leader_epoch: 7, preferred_successors: vec![3, 2] };
        assert_eq!(end_request_from(&wire(&end_request(&e), END_QUORUM_EPOCH_VERSION), END_QUORUM_EPOCH_VERSION).unwrap(), (1, e));
        let er = m::EndQuorumEpochResponse { error_code: 0, partition_index: 0, partition_error_code: 6, leader_id: -1, leader_epoch: 8 };
        assert_eq!(end_response_from(&wire(&end_response(&er), END_QUORUM_EPOCH_VERSION)).unwrap(), er);
        let f = m::FetchRequest { cluster_id: Some("c".into()), replica_id: 4, max_wait_ms: 500, partition: 0, current_leader_epoch: 7, fetch_offset: 12, last_fetched_epoch: 6, log_start_offset: 0, high_watermark: Some(9) };
        let fk = wire(&fetch_request(&f), FETCH_VERSION);
        assert!(is_metadata_fetch(&fk));
        assert_eq!(fetch_request_from(&fk, FETCH_VERSION).unwrap(), (4, f.clone()));
        // An older peer's v16 has no high watermark; -1 ("unknown") is none either.
        let old = wire(&fetch_request(&f), FETCH_VERSION_MIN);
        assert_eq!(fetch_request_from(&old, FETCH_VERSION_MIN).unwrap().1.high_watermark, None);
        let unknown = m::FetchRequest { high_watermark: Some(-1), ..f.clone() };
        assert_eq!(fetch_request_from(&wire(&fetch_request(&unknown), FETCH_VERSION), FETCH_VERSION).unwrap().1.high_watermark, None);
        for (diverging, snapshot) in [(None, None), (Some(OffsetAndEpoch::new(10, 4)), None), (None, Some(OffsetAndEpoch::new(100, 3)))] {
            let fr = m::FetchResponse {
                error_code: 0,
                partition_index: 0,
                partition_error_code: 0,
                high_watermark: 6,
                log_start_offset: 0,
                diverging_epoch: diverging,
                current_leader: m::LeaderIdAndEpoch { leader_id: 1, leader_epoch: 2 },
                snapshot_id: snapshot,
                records: entries(),
            };
            assert_eq!(fetch_response_from(&wire(&fetch_response(&fr), FETCH_VERSION)).unwrap(), fr);
        }
        let s = m::FetchSnapshotRequest { cluster_id: None, replica_id: 3, max_bytes: 1000, partition: 0, current_leader_epoch: 2, snapshot_id: OffsetAndEpoch::new(50, 2), position: 10 };
        assert_eq!(fetch_snapshot_request_from(&wire(&fetch_snapshot_request(&s), FETCH_SNAPSHOT_VERSION)).unwrap(), (3, s));
        let sr = m::FetchSnapshotResponse {
            error_code: 0,
            partition_index: 0,
            partition_error_code: 0,
            snapshot_id: OffsetAndEpoch::new(50, 2),
            current_leader: m::LeaderIdAndEpoch { leader_id: 1, leader_epoch: 2 },
            size: 100,
            position: 10,
            unaligned_records: Bytes::from_static(b"chunk"),
        };
        assert_eq!(fetch_snapshot_response_from(&wire(&fetch_snapshot_response(&sr), FETCH_SNAPSHOT_VERSION)).unwrap(), sr);
    }

    #[test]
    fn damaged_entries_are_errors() {
        let data = entries_to_batches(&entries());
        assert_eq!(batches_to_entries(data.clone()).unwrap(), entries());
        // A cut-off last batch is ignored, as in a Fetch response.
        assert_eq!(batches_to_entries(data.slice(..data.len() - 3)).unwrap(), entries()[..1].to_vec());
        for i in 0..data.len() {
            let mut d = data.to_vec();
            d[i] ^= 0x10;
            // Never a panic; a flip inside a batch's CRC range is caught.
            if let Ok(got) = batches_to_entries(Bytes::from(d)) {
                assert_ne!(got, entries(), "flip at byte {i} unnoticed");
            }
        }
        let two = gregor_core::batch::build_simple(0, 0, &[(None, Some(&b"a"[..])), (None, Some(&b"b"[..]))]);
        assert!(batches_to_entries(Bytes::from(two)).is_err());
    }
}
