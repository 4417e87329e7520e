//! CreatePartitions (key 37): grow a topic. Explicit assignments must name only this broker.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::sb;
use crate::broker::Broker;
use crate::errors;

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let node = broker.config.node_id;
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| a.iter().any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != node));
        let result = if bad_assignment {
            Err(crate::broker::AdminError::new(errors::INVALID_REPLICA_ASSIGNMENT, format!("Assignments may only name broker {node}.")))
        } else {
            broker.create_partitions(&t.name.0, t.count, req.validate_only).await
        };
        match result {
            Ok(()) => r.error_code = errors::NONE,
            Err(e) => {
                r.error_code = e.code;
                r.error_message = Some(sb(e.message));
            }
        }
        resp.results.push(r);
    }
    resp
}
