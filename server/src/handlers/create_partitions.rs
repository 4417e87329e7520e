//! CreatePartitions (key 37): grow a topic, its new partitions placed by the controller or on
//! the replica lists the request names (one per new partition, checked as CreateTopics' are).

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
        let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect());
        let result = broker.create_partitions(&t.name.0, t.count, assignments.as_deref(), req.validate_only).await;
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
