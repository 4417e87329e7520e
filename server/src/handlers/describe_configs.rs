//! DescribeConfigs (key 32): topic configs (with their source: topic override, static broker
//! setting, or default) and broker configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use gregor_storage::LogConfig;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::sb;
use crate::broker::Broker;
use crate::errors;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// Where a dynamic broker setting in force on this broker comes from: its own resource
/// (DYNAMIC_BROKER_CONFIG) or the cluster-wide one (DYNAMIC_DEFAULT_BROKER_CONFIG).
fn dynamic_source(broker: &Broker, key: &str) -> Option<i8> {
    let image = broker.image();
    if image.resource_configs(RESOURCE_BROKER, &broker.config.node_id.to_string()).contains_key(key) {
        Some(SOURCE_DYNAMIC_BROKER)
    } else if image.cluster_broker_configs().contains_key(key) {
        Some(SOURCE_DYNAMIC_DEFAULT_BROKER)
    } else {
        None
    }
}

/// The broker setting that supplies a topic config's default (Kafka's synonym).
fn broker_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "retention.ms" => "log.retention.ms",
        "retention.bytes" => "log.retention.bytes",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "index.interval.bytes" => "log.index.interval.bytes",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        _ => return crate::config::TOPIC_DEFAULT_SYNONYMS.iter().find(|(_, t)| *t == topic_key).map(|(b, _)| *b),
    })
}

/// The type Kafka's ConfigDef gives `key` (Kafka 4.0: `listeners`, `advertised.listeners` and
/// `log.dirs` are STRING, parsed by the broker; `process.roles` and `controller.quorum.voters`
/// are LIST).
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" | "log.cleanup.policy" | "process.roles" | "controller.quorum.voters" | "controller.quorum.bootstrap.servers" => TYPE_LIST,
        "message.timestamp.type"
        | "log.message.timestamp.type"
        | "listeners"
        | "advertised.listeners"
        | "listener.security.protocol.map"
        | "controller.listener.names"
        | "inter.broker.listener.name"
        | "log.dirs"
        | "log.dir"
        | "metadata.log.dir"
        | "broker.rack"
        | "max.connections.per.ip.overrides" => TYPE_STRING,
        "max.message.bytes"
        | "index.interval.bytes"
        | "segment.bytes"
        | "node.id"
        | "broker.id"
        | "controller.quorum.election.timeout.ms"
        | "controller.quorum.fetch.timeout.ms"
        | "controller.quorum.election.backoff.max.ms"
        | "controller.quorum.request.timeout.ms"
        | "controller.quorum.retry.backoff.ms"
        | "broker.heartbeat.interval.ms"
        | "broker.session.timeout.ms"
        | "initial.broker.registration.timeout.ms"
        | "metadata.max.idle.interval.ms"
        | "metadata.log.segment.bytes"
        | "num.partitions"
        | "default.replication.factor"
        | "socket.request.max.bytes"
        | "max.connections"
        | "max.connections.per.ip"
        | "log.segment.bytes"
        | "message.max.bytes"
        | "offsets.topic.num.partitions"
        | "offsets.retention.minutes"
        | "group.initial.rebalance.delay.ms"
        | "group.min.session.timeout.ms"
        | "group.max.session.timeout.ms"
        | "group.max.size"
        | "log.cleaner.threads" => TYPE_INT,
        "min.cleanable.dirty.ratio" | "log.cleaner.min.cleanable.ratio" | "log.cleaner.io.max.bytes.per.second" => TYPE_DOUBLE,
        k if k.ends_with(".enable") => TYPE_BOOLEAN,
        _ => TYPE_LONG,
    }
}

/// Every topic config with its effective value and source, optionally filtered to `keys`.
pub fn topic_config_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    log_config: &LogConfig,
    keys: Option<&[StrBytes]>,
) -> Vec<DescribeConfigsResourceResult> {
    LogConfig::KEYS
        .iter()
        .filter(|k| keys.is_none_or(|ks| ks.iter().any(|x| x.as_str() == **k)))
        .map(|&key| {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = sb(key);
            e.value = log_config.get(key).map(sb);
            e.read_only = false;
            e.is_sensitive = false;
            e.config_type = config_type(key);
            let synonym = broker_synonym(key);
            e.config_source = if overrides.contains_key(key) {
                SOURCE_DYNAMIC_TOPIC
            } else if let Some(source) = synonym.and_then(|s| dynamic_source(broker, s)) {
                source
            } else if synonym.is_some_and(|s| broker.config.explicit.contains_key(s)) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            if let Some(v) = overrides.get(key) {
                let mut s = DescribeConfigsSynonym::default();
                s.name = sb(key);
                s.value = Some(sb(v.clone()));
                s.source = SOURCE_DYNAMIC_TOPIC;
                e.synonyms.push(s);
            }
            e
        })
        .chain(
            overrides
                .iter()
                .filter(|(k, _)| crate::broker::ACCEPTED_TOPIC_KEYS.contains(&k.as_str()))
                .filter(|(k, _)| keys.is_none_or(|ks| ks.iter().any(|x| x.as_str() == k.as_str())))
                .map(|(k, v)| {
                    let mut e = DescribeConfigsResourceResult::default();
                    e.name = sb(k.clone());
                    e.value = Some(sb(v.clone()));
                    e.config_source = SOURCE_DYNAMIC_TOPIC;
                    e.config_type = TYPE_STRING;
                    e
                }),
        )
        .chain(
            // A topic's min.insync.replicas applies whether or not it overrides it.
            (!overrides.contains_key(MIN_INSYNC_REPLICAS) && keys.is_none_or(|ks| ks.iter().any(|x| x.as_str() == MIN_INSYNC_REPLICAS))).then(|| {
                let mut e = DescribeConfigsResourceResult::default();
                e.name = sb(MIN_INSYNC_REPLICAS);
                e.value = Some(sb(broker.config.replication.min_insync_replicas.to_string()));
                e.config_source = if broker.config.explicit.contains_key(MIN_INSYNC_REPLICAS) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
                e.config_type = TYPE_INT;
                e
            }),
        )
        .collect()
}

const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

fn broker_entries(broker: &Broker, keys: Option<&[StrBytes]>) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = broker.broker_config_overrides();
    let defaults = broker.log_defaults();
    broker
        .config
        .describe()
        .into_iter()
        .filter(|(k, _, _)| keys.is_none_or(|ks| ks.iter().any(|x| x.as_str() == k)))
        .map(|(k, v, explicit)| {
            let mut e = DescribeConfigsResourceResult::default();
            // Dynamic values win; topic defaults reflect them.
            let value = match dynamic.get(&k) {
                Some(d) => d.clone(),
                None => match k.as_str() {
                    "log.retention.ms" => defaults.retention_ms.to_string(),
                    "log.retention.bytes" => defaults.retention_bytes.to_string(),
                    "log.segment.bytes" => defaults.segment_bytes.to_string(),
                    "log.roll.ms" => defaults.segment_ms.to_string(),
                    "message.max.bytes" => defaults.max_message_bytes.to_string(),
                    _ => match crate::config::TOPIC_DEFAULT_SYNONYMS.iter().find(|(b, _)| *b == k) {
                        Some((_, topic_key)) => defaults.get(topic_key).unwrap_or(v),
                        None => v,
                    },
                },
            };
            e.name = sb(k.clone());
            e.value = Some(sb(value));
            e.read_only = !crate::broker::DYNAMIC_BROKER_KEYS.contains(&k.as_str());
            e.config_source = if let Some(source) = dynamic_source(broker, &k) {
                source
            } else if explicit {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            e.config_type = config_type(&k);
            e
        })
        .collect()
}

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest, _version: i16) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for r in req.resources {
        let mut res = DescribeConfigsResult::default();
        res.resource_type = r.resource_type;
        res.resource_name = r.resource_name.clone();
        let keys = r.configuration_keys.as_deref();
        match r.resource_type {
            RESOURCE_TOPIC => match broker.topic(r.resource_name.as_str()) {
                Some(t) => res.configs = topic_config_entries(broker, &t.configs, &broker.effective_log_config(&t.configs), keys),
                None => {
                    res.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                    res.error_message = Some(sb(format!("Topic '{}' does not exist.", r.resource_name.as_str())));
                }
            },
            RESOURCE_BROKER => {
                let name = r.resource_name.as_str();
                if name.is_empty() || name == broker.config.node_id.to_string() {
                    res.configs = broker_entries(broker, keys);
                } else {
                    res.error_code = errors::INVALID_REQUEST;
                    res.error_message = Some(sb(format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.config.node_id)));
                }
            }
            other => {
                res.error_code = errors::INVALID_REQUEST;
                res.error_message = Some(sb(format!("Unsupported resource type {other}")));
            }
        }
        resp.results.push(res);
    }
    resp
}
