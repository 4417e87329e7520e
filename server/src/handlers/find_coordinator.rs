//! FindCoordinator (key 10): the coordinator of a group is the leader of its `__consumer_offsets`
//! partition (`abs(javaHash(group)) % offsets.topic.num.partitions`), which may be another broker;
//! the topic is created on the first request, as in Kafka. Transaction
//! coordinators do not exist yet: key type 1 gets COORDINATOR_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::sb;
use crate::broker::Broker;
use crate::errors;

/// The coordinator's (node id, host, port).
async fn lookup(broker: &Arc<Broker>, key: &str, key_type: i8) -> Result<(BrokerId, StrBytes, i32), (i16, String)> {
    match key_type {
        0 => {
            if key.is_empty() {
                return Err((errors::INVALID_REQUEST, "group id is empty".into()));
            }
            let node = broker.group_coordinator(key).await.map_err(|c| (c, "the group's offsets partition has no leader".into()))?;
            let ids = std::iter::once(node).collect();
            match super::node_endpoints(broker, &ids).pop() {
                Some((id, host, port, _)) => Ok((BrokerId(id), sb(host), port)),
                None => Err((errors::COORDINATOR_NOT_AVAILABLE, format!("coordinator {node} is not a registered broker"))),
            }
        }
        _ => Err((errors::COORDINATOR_NOT_AVAILABLE, "transactions are not supported yet".into())),
    }
}

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if version < 4 {
        match lookup(broker, req.key.as_str(), req.key_type).await {
            Ok((node, host, port)) => {
                resp.node_id = node;
                resp.host = host;
                resp.port = port;
            }
            Err((code, msg)) => {
                resp.error_code = code;
                if version >= 1 {
                    resp.error_message = Some(sb(msg));
                }
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
        }
        return resp;
    }
    for key in req.coordinator_keys {
        let mut c = Coordinator::default();
        c.key = StrBytes::from_string(key.to_string());
        match lookup(broker, key.as_str(), req.key_type).await {
            Ok((node, host, port)) => {
                c.node_id = node;
                c.host = host;
                c.port = port;
            }
            Err((code, msg)) => {
                c.error_code = code;
                c.error_message = Some(sb(msg));
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
        }
        resp.coordinators.push(c);
    }
    resp
}
