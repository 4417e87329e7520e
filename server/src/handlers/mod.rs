//! One module per Kafka API. `dispatch` routes a decoded request to its handler.
//!
//! Handlers run in request order on a connection. A handler returns a [`Reply`]: either the
//! response now, or a future for the part that waits (a produce waiting for its fsync, a fetch
//! long-polling), which the connection's writer awaits in order. Every state change a request
//! makes happens before its handler returns, so pipelined requests see each other's effects in
//! the order they were sent.

mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_quorum;
mod describe_topic_partitions;
mod init_producer_id;
mod describe_configs;
mod elect_leaders;
mod alter_configs;
mod fetch;
mod find_coordinator;
mod group_admin;
mod group_membership;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod offset_for_leader_epoch;
pub mod produce;
mod reassignments;
pub mod records;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gregor_net::codec::DecodedRequest;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub use api_versions::{supported, unsupported_version_response, SUPPORTED};

/// A response that is ready, will be ready later, or must not be sent (acks=0 produce).
pub enum Reply {
    Now(ResponseKind),
    Later(Pin<Box<dyn Future<Output = ResponseKind> + Send>>),
    None,
}

/// Routes one request from the client at `peer` (`host:port`). Returns `None` for an API this
/// broker does not implement (the caller closes the connection, as Kafka does for requests it
/// cannot parse).
pub async fn dispatch(broker: &Arc<Broker>, req: DecodedRequest, peer: &str) -> Option<Reply> {
    let version = req.header.request_api_version;
    let client_id = req.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let reply = match req.body {
        RequestKind::ApiVersions(r) => Reply::Now(ResponseKind::ApiVersions(api_versions::handle(r, version))),
        RequestKind::Metadata(r) => Reply::Now(ResponseKind::Metadata(metadata::handle(broker, r, version).await)),
        RequestKind::Produce(r) => produce::handle(broker, r, version),
        RequestKind::Fetch(r) => fetch::handle(broker, r, version),
        RequestKind::ListOffsets(r) => Reply::Now(ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))),
        RequestKind::CreateTopics(r) => Reply::Now(ResponseKind::CreateTopics(create_topics::handle(broker, r, version).await)),
        RequestKind::DeleteTopics(r) => Reply::Now(ResponseKind::DeleteTopics(delete_topics::handle(broker, r, version).await)),
        RequestKind::CreatePartitions(r) => Reply::Now(ResponseKind::CreatePartitions(create_partitions::handle(broker, r).await)),
        RequestKind::DescribeConfigs(r) => Reply::Now(ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version))),
        RequestKind::AlterConfigs(r) => Reply::Now(ResponseKind::AlterConfigs(alter_configs::handle_alter(broker, r).await)),
        RequestKind::IncrementalAlterConfigs(r) => {
            Reply::Now(ResponseKind::IncrementalAlterConfigs(alter_configs::handle_incremental(broker, r).await))
        }
        RequestKind::DescribeCluster(r) => Reply::Now(ResponseKind::DescribeCluster(describe_cluster::handle(broker, r))),
        RequestKind::DescribeTopicPartitions(r) => Reply::Now(ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(broker, r))),
        RequestKind::DescribeQuorum(r) => Reply::Now(ResponseKind::DescribeQuorum(describe_quorum::handle(broker, r, version, &client_id).await)),
        RequestKind::InitProducerId(r) => Reply::Now(ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version).await)),
        RequestKind::ElectLeaders(r) => Reply::Now(ResponseKind::ElectLeaders(elect_leaders::handle(broker, r, version).await)),
        RequestKind::AlterPartitionReassignments(r) => {
            Reply::Now(ResponseKind::AlterPartitionReassignments(reassignments::alter(broker, r, version).await))
        }
        RequestKind::ListPartitionReassignments(r) => Reply::Now(ResponseKind::ListPartitionReassignments(reassignments::list(broker, r))),
        RequestKind::DeleteRecords(r) => Reply::Now(ResponseKind::DeleteRecords(delete_records::handle(broker, r))),
        RequestKind::OffsetForLeaderEpoch(r) => {
            Reply::Now(ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r)))
        }
        RequestKind::FindCoordinator(r) => Reply::Now(ResponseKind::FindCoordinator(find_coordinator::handle(broker, r, version).await)),
        RequestKind::OffsetCommit(r) => {
            let broker = broker.clone();
            Reply::Later(Box::pin(async move { ResponseKind::OffsetCommit(offset_commit::handle(&broker, r).await) }))
        }
        RequestKind::OffsetFetch(r) => Reply::Now(ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, version))),
        RequestKind::JoinGroup(r) => {
            // Kafka reports the client's address as "/ip".
            let host = format!("/{}", peer.rsplit_once(':').map_or(peer, |(h, _)| h));
            group_membership::join(broker, r, version, client_id, host)
        }
        RequestKind::SyncGroup(r) => group_membership::sync(broker, r, version),
        RequestKind::Heartbeat(r) => Reply::Now(ResponseKind::Heartbeat(group_membership::heartbeat(broker, r))),
        RequestKind::LeaveGroup(r) => Reply::Now(ResponseKind::LeaveGroup(group_membership::leave(broker, r, version))),
        RequestKind::ListGroups(r) => Reply::Now(ResponseKind::ListGroups(group_admin::list(broker, r))),
        RequestKind::DescribeGroups(r) => Reply::Now(ResponseKind::DescribeGroups(group_admin::describe(broker, r))),
        RequestKind::DeleteGroups(r) => Reply::Now(ResponseKind::DeleteGroups(group_admin::delete(broker, r).await)),
        RequestKind::OffsetDelete(r) => Reply::Now(ResponseKind::OffsetDelete(group_admin::offset_delete(broker, r).await)),
        _ => return None,
    };
    Some(reply)
}

/// A `StrBytes` from an owned string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Builds a list of `$ty` (any of the protocol's broker/endpoint structs with `node_id`, `host`,
/// `port` and `rack`) for the brokers `$ids`, from [`node_endpoints`].
macro_rules! endpoint_list {
    ($broker:expr, $ids:expr, $ty:ty) => {
        $crate::handlers::node_endpoints($broker, $ids)
            .into_iter()
            .map(|(id, host, port, rack)| {
                let mut e = <$ty>::default();
                e.node_id = kafka_protocol::messages::BrokerId(id);
                e.host = $crate::handlers::sb(host);
                e.port = port;
                e.rack = rack.map($crate::handlers::sb);
                e
            })
            .collect()
    };
}
pub(crate) use endpoint_list;

/// The client endpoint (host, port, rack) of each of `ids` that the image knows, for KIP-951
/// leader hints and the brokers lists: the listener this broker serves clients on
/// (`PLAINTEXT`), the first endpoint otherwise.
pub(crate) fn node_endpoints(broker: &Broker, ids: &std::collections::BTreeSet<i32>) -> Vec<(i32, String, i32, Option<String>)> {
    let image = broker.image();
    ids.iter()
        .filter_map(|id| {
            let b = image.brokers.get(id)?;
            let e = b.endpoints.iter().find(|e| e.name == "PLAINTEXT").or_else(|| b.endpoints.first())?;
            Some((*id, e.host.clone(), i32::from(e.port), b.rack.clone()))
        })
        .collect()
}
