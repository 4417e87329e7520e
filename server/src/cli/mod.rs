//! The `gregor` command-line tools. Each is an ordinary Kafka client speaking the wire protocol
//! through `gregor_net::client`; none of them reads the data directory.

pub mod cluster;
pub mod consume;
pub mod group_member;
pub mod groups;
pub mod produce;
pub mod storage;
pub mod topics;

use gregor_net::client::Client;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Kafka's error names for the codes the tools may print.
pub fn error_name(code: i16) -> &'static str {
    match code {
        0 => "NONE",
        -1 => "UNKNOWN_SERVER_ERROR",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        17 => "INVALID_TOPIC_EXCEPTION",
        21 => "INVALID_REQUIRED_ACKS",
        35 => "UNSUPPORTED_VERSION",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        39 => "INVALID_REPLICA_ASSIGNMENT",
        40 => "INVALID_CONFIG",
        42 => "INVALID_REQUEST",
        56 => "KAFKA_STORAGE_ERROR",
        68 => "NON_EMPTY_GROUP",
        69 => "GROUP_ID_NOT_FOUND",
        100 => "UNKNOWN_TOPIC_ID",
        8 => "BROKER_NOT_AVAILABLE",
        41 => "NOT_CONTROLLER",
        114 => "MISMATCHED_ENDPOINT_TYPE",
        115 => "UNSUPPORTED_ENDPOINT_TYPE",
        _ => "ERROR",
    }
}

/// Connects to the bootstrap broker with a helpful error.
pub async fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    Client::connect(bootstrap, "gregor-cli")
        .await
        .map_err(|e| anyhow::anyhow!("{e} (is a broker running at {bootstrap}?)"))
}

/// Fetches metadata for `topics` (None = all).
pub async fn metadata(client: &mut Client, topics: Option<&[String]>, auto_create: bool) -> anyhow::Result<MetadataResponse> {
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = auto_create;
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                let mut rt = MetadataRequestTopic::default();
                rt.name = Some(TopicName(StrBytes::from_string(t.clone())));
                rt
            })
            .collect()
    });
    Ok(client.send(&req).await?)
}

/// Splits `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}
