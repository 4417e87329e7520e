//! The `gregor` command-line tools. Each is an ordinary Kafka client speaking the wire protocol
//! through `gregor_net::client`; none of them reads the data directory.

pub mod cluster;
pub mod consume;
pub mod group_member;
pub mod groups;
pub mod leader_election;
pub mod produce;
pub mod reassign;
pub mod storage;
pub mod topics;

use gregor_net::client::Client;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Kafka's name of an error code the tools print.
/// How long the tools retry a ListOffsets a new leader answers OFFSET_NOT_AVAILABLE (its high
/// watermark still lags, KIP-207), as Kafka's admin client retries that retriable error.
const OFFSET_NOT_AVAILABLE_RETRY_MS: u64 = 5_000;
/// The pause between two such attempts.
const OFFSET_NOT_AVAILABLE_BACKOFF_MS: u64 = 100;

/// Sends `req`, again while some partition's answer is OFFSET_NOT_AVAILABLE (for up to
/// [`OFFSET_NOT_AVAILABLE_RETRY_MS`]); the last answer is returned as it is.
pub(crate) async fn list_offsets(client: &mut Client, req: &kafka_protocol::messages::ListOffsetsRequest) -> anyhow::Result<kafka_protocol::messages::ListOffsetsResponse> {
    let mut attempts = OFFSET_NOT_AVAILABLE_RETRY_MS / OFFSET_NOT_AVAILABLE_BACKOFF_MS;
    loop {
        let resp = client.send(req).await?;
        let lagging = resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code == gregor_core::errors::OFFSET_NOT_AVAILABLE);
        if !lagging || attempts == 0 {
            return Ok(resp);
        }
        attempts -= 1;
        tokio::time::sleep(std::time::Duration::from_millis(OFFSET_NOT_AVAILABLE_BACKOFF_MS)).await;
    }
}

pub fn error_name(code: i16) -> &'static str {
    gregor_core::errors::name(code)
}

/// Connects to a bootstrap broker: `bootstrap` is one `host:port` or a comma-separated list of
/// them, as Kafka's tools take, tried in order until one answers; the error names them all.
pub async fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    let mut last = None;
    for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match Client::connect(addr, "gregor-cli").await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(anyhow::anyhow!("{e} (is a broker running at {bootstrap}?)")),
        None => Err(anyhow::anyhow!("--bootstrap-server names no broker")),
    }
}

/// A connection to the coordinator of `group`, found with FindCoordinator at `bootstrap`.
pub async fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<Client> {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let mut boot = connect(bootstrap).await?;
    let mut fc = FindCoordinatorRequest::default();
    // v4 moved the key into a list; only the fields of the version in use may be set.
    if boot.version_for::<FindCoordinatorRequest>().unwrap_or(0) >= 4 {
        fc.coordinator_keys = vec![kafka_protocol::protocol::StrBytes::from_string(group.to_string())];
    } else {
        fc.key = kafka_protocol::protocol::StrBytes::from_string(group.to_string());
    }
    let resp = boot.send(&fc).await?;
    let addr = match resp.coordinators.first() {
        Some(c) if c.error_code == 0 => format!("{}:{}", c.host.as_str(), c.port),
        Some(c) => anyhow::bail!("FindCoordinator: {} ({})", error_name(c.error_code), c.error_code),
        None if resp.error_code == 0 => format!("{}:{}", resp.host.as_str(), resp.port),
        None => anyhow::bail!("FindCoordinator: {} ({})", error_name(resp.error_code), resp.error_code),
    };
    connect(&addr).await
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
/// IncrementalAlterConfigs on one resource: SET each of `set`, DELETE each of `delete`. The
/// error names Kafka's code and message.
pub async fn alter_config_ops(client: &mut Client, resource_type: i8, name: &str, set: &[(String, String)], delete: &[String]) -> anyhow::Result<()> {
    use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut res = AlterConfigsResource::default();
    res.resource_type = resource_type;
    res.resource_name = StrBytes::from_string(name.to_string());
    let mut ops: std::collections::BTreeMap<String, AlterableConfig> = std::collections::BTreeMap::new();
    for (k, v) in set {
        let mut c = AlterableConfig::default();
        c.name = StrBytes::from_string(k.clone());
        c.config_operation = 0;
        c.value = Some(StrBytes::from_string(v.clone()));
        ops.insert(k.clone(), c);
    }
    for k in delete {
        let mut c = AlterableConfig::default();
        c.name = StrBytes::from_string(k.clone());
        c.config_operation = 1;
        c.value = None;
        ops.insert(k.clone(), c);
    }
    res.configs = ops.into_values().collect();
    let mut req = kafka_protocol::messages::IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    let resp = client.send(&req).await?;
    for r in resp.responses {
        if r.error_code != 0 {
            anyhow::bail!("{} ({}){}", error_name(r.error_code), r.error_code, r.error_message.map(|m| format!(": {m}")).unwrap_or_default());
        }
    }
    Ok(())
}

pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}
