//! InitProducerId (key 22), versions 0-5: gives an idempotent producer its producer id and epoch.
//!
//! * `transactional_id` null (idempotence without transactions): a new producer id with epoch 0,
//!   always. This follows Kafka's `TransactionCoordinator.handleInitProducerId`, which for a null
//!   transactional id "blindly accepts the request" and returns a fresh id from the producer id
//!   manager, ignoring any `producer_id`/`producer_epoch` the request carries (KIP-360 epoch bumps
//!   only apply to transactional ids). Ids are never reused, across restarts included
//!   ([`Broker::allocate_producer_id`]).
//! * `transactional_id` set: transactions are not implemented, so the answer is
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53). Clients treat that as fatal and report it at once
//!   (the Java client's `TransactionManager` and librdkafka both do), where a retriable error such
//!   as COORDINATOR_NOT_AVAILABLE would make `init_transactions` hang until its timeout.
//! * A failure to persist a new id block is KAFKA_STORAGE_ERROR; nothing is handed out.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::errors;

pub async fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest, _version: i16) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(tid) = &req.transactional_id {
        tracing::info!(transactional_id = %tid.0, "refusing InitProducerId for a transactional producer: transactions are not supported");
        resp.error_code = errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return resp;
    }
    match broker.allocate_producer_id().await {
        Ok(id) => {
            resp.error_code = errors::NONE;
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e.message, "cannot allocate a producer id");
            resp.error_code = e.code;
        }
    }
    resp
}
