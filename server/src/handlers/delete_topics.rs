//! DeleteTopics (key 20): by name (v0-5) or by name or id (v6).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::errors;

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => broker.topic_by_id(&id).map(|t| t.name.clone()),
        };
        match resolved {
            None => {
                r.error_code = errors::UNKNOWN_TOPIC_ID;
                r.error_message = Some(sb("This server does not host this topic ID."));
            }
            Some(n) => {
                r.name = Some(TopicName(sb(n.clone())));
                match broker.delete_topic(&n).await {
                    Ok(deleted_id) => {
                        r.error_code = errors::NONE;
                        r.topic_id = deleted_id;
                    }
                    Err(e) => {
                        r.error_code = e.code;
                        r.error_message = Some(sb(e.message));
                    }
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
