//! The controller listener (`controller.listener.names`): what voters and brokers send a
//! controller — the quorum's Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch of
//! `__cluster_metadata` and FetchSnapshot; the brokers' BrokerRegistration, BrokerHeartbeat and
//! AlterPartition (v2+, by topic id);
//! the admin requests brokers forward, DescribeQuorum, and ApiVersions to negotiate them.
//!
//! Client APIs are not served here, as in Kafka: a client that connects to a controller
//! listener learns from ApiVersions that only these APIs exist. Quorum requests are converted
//! from Kafka's wire form ([`gregor_net::raft_wire`]) and handed to the quorum driver, whose
//! answer is converted back; a request that does not name the metadata partition is refused
//! with INVALID_REQUEST, never dropped silently.

use std::sync::Arc;

use gregor_core::metadata::Endpoint;
use gregor_core::raft::messages::Message;
use gregor_net::codec::DecodedRequest;
use gregor_net::raft_wire as wire;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::controller::brokers::Registration;
use crate::controller::partitions::IsrChange;
use crate::errors;
use crate::handlers::Reply;

/// (API key, min version, max version) served on the controller listener.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Fetch, wire::FETCH_VERSION_MIN, wire::FETCH_VERSION),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Vote, wire::VOTE_VERSION, wire::VOTE_VERSION),
    (ApiKey::BeginQuorumEpoch, wire::BEGIN_QUORUM_EPOCH_VERSION, wire::BEGIN_QUORUM_EPOCH_VERSION),
    (ApiKey::EndQuorumEpoch, wire::END_QUORUM_EPOCH_VERSION, wire::END_QUORUM_EPOCH_VERSION),
    (ApiKey::FetchSnapshot, wire::FETCH_SNAPSHOT_VERSION, wire::FETCH_SNAPSHOT_VERSION),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::AlterPartition, 2, 3),
];

/// Admin APIs brokers forward to the active controller, served by the broker's own handlers at
/// the broker listener's versions.
/// DescribeQuorum is served here too, as Kafka's controllers serve it to
/// `kafka-metadata-quorum.sh --bootstrap-controller` and to brokers that forward it.
const FORWARDED: &[ApiKey] = &[ApiKey::CreateTopics, ApiKey::DeleteTopics, ApiKey::CreatePartitions, ApiKey::AlterConfigs, ApiKey::DescribeQuorum, ApiKey::ElectLeaders, ApiKey::AlterPartitionReassignments];

fn all_supported() -> impl Iterator<Item = (ApiKey, i16, i16)> {
    SUPPORTED.iter().copied().chain(crate::handlers::SUPPORTED.iter().copied().filter(|(k, _, _)| FORWARDED.contains(k)))
}

pub fn supported(key: ApiKey, version: i16) -> bool {
    all_supported().any(|(k, lo, hi)| k == key && (lo..=hi).contains(&version))
}

fn api_versions() -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = all_supported()
        .map(|(k, lo, hi)| {
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = lo;
            v.max_version = hi;
            v
        })
        .collect();
    resp
}

/// ApiVersions at an unsupported version: the error and our ranges (KIP-511), at v0.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    let mut resp = api_versions();
    resp.error_code = errors::UNSUPPORTED_VERSION;
    resp
}

pub async fn dispatch(broker: &Arc<Broker>, req: DecodedRequest, peer: &str) -> Option<Reply> {
    let version = req.header.request_api_version;
    if FORWARDED.contains(&req.api_key) {
        return crate::handlers::dispatch(broker, req, peer).await;
    }
    let quorum = &broker.controller.quorum;
    let body = match req.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions()),
        RequestKind::Vote(r) => {
            let answer = match wire::vote_request_from(&r) {
                Ok((peer, m)) => quorum.deliver(peer, Message::VoteRequest(m)).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Message::VoteResponse(v)) => ResponseKind::Vote(wire::vote_response(&v)),
                other => ResponseKind::Vote(refused(other, |code| {
                    let mut r = kafka_protocol::messages::VoteResponse::default();
                    r.error_code = code;
                    r
                })),
            }
        }
        RequestKind::BeginQuorumEpoch(r) => {
            let answer = match wire::begin_request_from(&r) {
                Ok((peer, m)) => quorum.deliver(peer, Message::BeginQuorumEpochRequest(m)).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Message::BeginQuorumEpochResponse(v)) => ResponseKind::BeginQuorumEpoch(wire::begin_response(&v)),
                other => ResponseKind::BeginQuorumEpoch(refused(other, |code| {
                    let mut r = kafka_protocol::messages::BeginQuorumEpochResponse::default();
                    r.error_code = code;
                    r
                })),
            }
        }
        RequestKind::EndQuorumEpoch(r) => {
            let answer = match wire::end_request_from(&r, version) {
                Ok((peer, m)) => quorum.deliver(peer, Message::EndQuorumEpochRequest(m)).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Message::EndQuorumEpochResponse(v)) => ResponseKind::EndQuorumEpoch(wire::end_response(&v)),
                other => ResponseKind::EndQuorumEpoch(refused(other, |code| {
                    let mut r = kafka_protocol::messages::EndQuorumEpochResponse::default();
                    r.error_code = code;
                    r
                })),
            }
        }
        RequestKind::Fetch(r) => {
            let answer = match wire::is_metadata_fetch(&r) {
                true => match wire::fetch_request_from(&r, version) {
                    Ok((peer, m)) => quorum.deliver(peer, Message::FetchRequest(m)).await,
                    Err(e) => Err(e),
                },
                false => Err("only __cluster_metadata is fetched from a controller".to_string()),
            };
            match answer {
                Ok(Message::FetchResponse(v)) => ResponseKind::Fetch(wire::fetch_response(&v)),
                other => ResponseKind::Fetch(refused(other, |code| {
                    let mut r = kafka_protocol::messages::FetchResponse::default();
                    r.error_code = code;
                    r
                })),
            }
        }
        RequestKind::FetchSnapshot(r) => {
            let answer = match wire::fetch_snapshot_request_from(&r) {
                Ok((peer, m)) => quorum.deliver(peer, Message::FetchSnapshotRequest(m)).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Message::FetchSnapshotResponse(v)) => ResponseKind::FetchSnapshot(wire::fetch_snapshot_response(&v)),
                other => ResponseKind::FetchSnapshot(refused(other, |code| {
                    let mut r = kafka_protocol::messages::FetchSnapshotResponse::default();
                    r.error_code = code;
                    r
                })),
            }
        }
        RequestKind::BrokerRegistration(r) => {
            let reg = Registration {
                broker_id: r.broker_id.0,
                cluster_id: r.cluster_id.to_string(),
                incarnation_id: r.incarnation_id.as_u128(),
                endpoints: r
                    .listeners
                    .iter()
                    .map(|l| Endpoint { name: l.name.to_string(), host: l.host.to_string(), port: l.port, security_protocol: l.security_protocol })
                    .collect(),
                rack: r.rack.as_ref().map(|x| x.to_string()),
                previous_broker_epoch: r.previous_broker_epoch,
            };
            let mut resp = kafka_protocol::messages::BrokerRegistrationResponse::default();
            match broker.controller.register_broker(broker, reg).await {
                Ok(epoch) => resp.broker_epoch = epoch,
                Err(code) => {
                    resp.error_code = code;
                    resp.broker_epoch = -1;
                }
            }
            ResponseKind::BrokerRegistration(resp)
        }
        RequestKind::BrokerHeartbeat(r) => {
            let mut resp = kafka_protocol::messages::BrokerHeartbeatResponse::default();
            match broker.controller.heartbeat(broker, r.broker_id.0, r.broker_epoch, r.current_metadata_offset, r.want_shut_down).await {
                Ok(a) => {
                    resp.is_caught_up = a.is_caught_up;
                    resp.is_fenced = a.is_fenced;
                    resp.should_shut_down = a.should_shut_down;
                }
                Err(code) => {
                    resp.error_code = code;
                    resp.is_fenced = true;
                }
            }
            ResponseKind::BrokerHeartbeat(resp)
        }
        RequestKind::AllocateProducerIds(r) => {
            let mut resp = kafka_protocol::messages::AllocateProducerIdsResponse::default();
            let registered = broker.image().brokers.get(&r.broker_id.0).is_some_and(|b| b.epoch == r.broker_epoch);
            if !registered {
                resp.error_code = errors::STALE_BROKER_EPOCH;
            } else {
                match broker.controller.allocate_producer_ids(broker).await {
                    Ok(block) => {
                        resp.producer_id_start = kafka_protocol::messages::ProducerId(block.start);
                        resp.producer_id_len = (block.end - block.start) as i32;
                    }
                    Err(e) => resp.error_code = e.code,
                }
            }
            ResponseKind::AllocateProducerIds(resp)
        }
        RequestKind::AlterPartition(r) => ResponseKind::AlterPartition(alter_partition(broker, r, version).await),
        _ => return None,
    };
    Some(Reply::Now(body))
}

async fn alter_partition(broker: &Arc<Broker>, r: kafka_protocol::messages::AlterPartitionRequest, version: i16) -> kafka_protocol::messages::AlterPartitionResponse {
    use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
    use kafka_protocol::messages::BrokerId;
    let mut changes = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let new_isr = if version >= 3 { p.new_isr_with_epochs.iter().map(|b| (b.broker_id.0, b.broker_epoch)).collect() } else { p.new_isr.iter().map(|b| (b.0, -1)).collect() };
            changes.push(IsrChange { topic_id: t.topic_id.as_u128(), partition: p.partition_index, leader_epoch: p.leader_epoch, partition_epoch: p.partition_epoch, new_isr });
        }
    }
    let mut resp = kafka_protocol::messages::AlterPartitionResponse::default();
    match broker.controller.alter_partition(broker, r.broker_id.0, r.broker_epoch, changes.clone()).await {
        Err(code) => resp.error_code = code,
        Ok(results) => {
            for (c, result) in changes.iter().zip(results) {
                let id = uuid::Uuid::from_u128(c.topic_id);
                let mut pd = PartitionData::default();
                pd.partition_index = c.partition;
                match result {
                    Ok(reg) => {
                        pd.leader_id = BrokerId(reg.leader);
                        pd.leader_epoch = reg.leader_epoch;
                        pd.isr = reg.isr.iter().map(|b| BrokerId(*b)).collect();
                        pd.partition_epoch = reg.partition_epoch;
                    }
                    Err(code) => {
                        pd.error_code = code;
                        pd.leader_id = BrokerId(-1);
                        pd.leader_epoch = -1;
                        pd.partition_epoch = -1;
                    }
                }
                match resp.topics.iter_mut().find(|t| t.topic_id == id) {
                    Some(t) => t.partitions.push(pd),
                    None => {
                        let mut t = TopicData::default();
                        t.topic_id = id;
                        t.partitions.push(pd);
                        resp.topics.push(t);
                    }
                }
            }
        }
    }
    resp
}

/// The error answer for a request the quorum did not answer in kind: INVALID_REQUEST for a
/// malformed one or one the quorum could not answer (stopped, or no answer in time; the sender
/// retries either way).
fn refused<T>(answer: Result<Message, String>, make: impl FnOnce(i16) -> T) -> T {
    match answer {
        Err(e) => {
            tracing::warn!(error = %e, "refused a quorum request");
            make(errors::INVALID_REQUEST)
        }
        Ok(m) => {
            tracing::warn!(answer = m.name(), "the quorum answered a request with the wrong message");
            make(errors::UNKNOWN_SERVER_ERROR)
        }
    }
}
