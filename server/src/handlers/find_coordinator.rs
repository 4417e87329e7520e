//! FindCoordinator (key 10): this broker coordinates every group (it leads every partition of
//! `__consumer_offsets`, which is created on the first request, as in Kafka). Transaction
//! coordinators do not exist yet: key type 1 gets COORDINATOR_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::sb;
use crate::broker::Broker;
use crate::errors;

async fn lookup(broker: &Arc<Broker>, key: &str, key_type: i8) -> Result<(), (i16, String)> {
    match key_type {
        0 => {
            if key.is_empty() {
                return Err((errors::INVALID_REQUEST, "group id is empty".into()));
            }
            broker.offsets_partition(key).await.map(|_| ()).map_err(|c| (c, "the offsets topic is not available".into()))
        }
        _ => Err((errors::COORDINATOR_NOT_AVAILABLE, "transactions are not supported yet".into())),
    }
}

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    let node = BrokerId(broker.config.node_id);
    let host = sb(broker.config.advertised_host.clone());
    let port = broker.config.advertised_port;
    if version < 4 {
        match lookup(broker, req.key.as_str(), req.key_type).await {
            Ok(()) => {
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
            Ok(()) => {
                c.node_id = node;
                c.host = host.clone();
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
