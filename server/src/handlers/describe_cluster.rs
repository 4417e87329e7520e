//! DescribeCluster (key 60): the cluster id, the brokers of the metadata image and the
//! controller, answered on a broker listener.
//!
//! Brokers: the registered, unfenced brokers of the image with the endpoint this broker serves
//! clients on (`PLAINTEXT`, else the first) and their rack; with `include_fenced_brokers` (v2)
//! the fenced ones too, marked `is_fenced`.
//!
//! Controller id, a decision: Kafka's KRaft brokers report a random alive broker here (admin
//! requests sent to it are forwarded to the active controller), and its controllers report the
//! raft leader. Gregor reports the metadata quorum's leader when it knows one, which is where a
//! change is decided, and, as Kafka does, -1 when that id is not among the listed brokers (a
//! client could not reach it through this list).
//!
//! Authorized operations, when asked for: Gregor has no authorizer, so every operation Kafka
//! defines on the cluster resource is allowed, as on a Kafka broker without one.
//!
//! Endpoint types (v1): this is a broker listener, so a request for the controllers' endpoints
//! (type 2) gets MISMATCHED_ENDPOINT_TYPE and an unknown type UNSUPPORTED_ENDPOINT_TYPE, as on a
//! Kafka broker listener.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::sb;
use crate::broker::Broker;

/// DescribeCluster's endpoint types.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;
/// Kafka's codes for a request for the wrong or an unknown endpoint type.
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// Kafka's operations on the cluster resource (AclOperation codes CREATE 5, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12), one bit each.
const CLUSTER_OPERATIONS: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    match req.endpoint_type {
        ENDPOINT_TYPE_BROKERS => {}
        ENDPOINT_TYPE_CONTROLLERS => {
            resp.error_code = MISMATCHED_ENDPOINT_TYPE;
            resp.error_message = Some(sb("The request was sent to a broker endpoint, but asked for the controllers' endpoints."));
            return resp;
        }
        other => {
            resp.error_code = UNSUPPORTED_ENDPOINT_TYPE;
            resp.error_message = Some(sb(format!("Unsupported endpoint type {other}")));
            return resp;
        }
    }
    resp.endpoint_type = ENDPOINT_TYPE_BROKERS;
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    resp.cluster_id = sb(broker.cluster_id.clone());
    let image = broker.image();
    let listed: std::collections::BTreeSet<i32> =
        image.brokers.values().filter(|b| req.include_fenced_brokers || !b.fenced).map(|b| b.id).collect();
    resp.brokers = super::node_endpoints(broker, &listed)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = sb(host);
            b.port = port;
            b.rack = rack.map(sb);
            b.is_fenced = image.brokers.get(&id).is_some_and(|r| r.fenced);
            b
        })
        .collect();
    let leader = broker.controller.quorum.status().leader_id;
    let listed_leader = resp.brokers.iter().any(|b| b.broker_id.0 == leader);
    resp.controller_id = BrokerId(if listed_leader { leader } else { -1 });
    resp
}
