//! Helpers shared by the broker tests that drive handlers directly, without a socket.

use std::sync::Arc;

use gregor_net::codec::DecodedRequest;
use gregor_server::broker::Broker;
use gregor_server::handlers::{dispatch, Reply};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

/// Runs one request through the broker's dispatcher as a client with id `a-client` would send
/// it, and waits for its answer (deferred answers included).
pub async fn call(broker: &Arc<Broker>, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("a-client"));
    let req = DecodedRequest { header, api_key: key, body };
    match dispatch(broker, req, "127.0.0.1:5555").await.expect("dispatched") {
        Reply::Now(b) => b,
        Reply::Later(f) => f.await,
        Reply::None => panic!("no reply"),
    }
}
