//! Topic configuration: which keys a topic accepts, how a topic's overrides and the dynamic
//! broker defaults combine into the effective [`LogConfig`] of its partitions.

use std::collections::BTreeMap;

use gregor_storage::{ConfigError as LogConfigError, LogConfig};

use super::AdminError;
use crate::config::BrokerConfig;
use crate::errors;

/// Broker settings that AlterConfigs may change at runtime: topic defaults, and the
/// replication throttle rates.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    super::throttle::LEADER_THROTTLED_RATE,
    super::throttle::FOLLOWER_THROTTLED_RATE,
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "message.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "log.cleanup.policy",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.threads",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.backoff.ms",
];

pub fn config_error(e: LogConfigError) -> AdminError {
    AdminError::new(errors::INVALID_CONFIG, e.to_string())
}

/// Kafka topic configs that are not log settings: some the controller and the replicas act on
/// (`min.insync.replicas`, `unclean.leader.election.enable`, the replication throttles), the
/// others are accepted, stored and reported but not acted on yet (tiered storage, broker-side
/// recompression). Accepting them lets existing topic definitions and tools work; everything
/// else unknown is INVALID_CONFIG.
pub const ACCEPTED_TOPIC_KEYS: &[&str] = &[
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "compression.type",
    "preallocate",
    "message.downconversion.enable",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "segment.index.bytes",
    "segment.jitter.ms",
    "local.retention.ms",
    "local.retention.bytes",
    "remote.storage.enable",
];

/// The effective log config for a topic's overrides (keys in [`ACCEPTED_TOPIC_KEYS`] are kept
/// in the topic's config map but do not reach the log).
pub fn log_config_for(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> Result<LogConfig, LogConfigError> {
    let log_keys: BTreeMap<String, String> =
        configs.iter().filter(|(k, _)| !ACCEPTED_TOPIC_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    LogConfig::with_overrides(defaults, &log_keys)
}

/// Longest config key or value accepted, in bytes (metadata records store strings with a u16
/// length; this leaves room and bounds what one AlterConfigs can make every node store).
pub const CONFIG_STRING_BYTES_MAX: usize = 32 * 1024;

/// Refuses keys and values too long to store, and values of the accepted keys that Kafka would
/// refuse.
pub fn check_config_values(configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
    if let Some(v) = configs.get("unclean.leader.election.enable") {
        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
            return Err(AdminError::new(errors::INVALID_CONFIG, format!("Invalid value {v} for configuration unclean.leader.election.enable: Expected value to be either true or false")));
        }
    }
    for key in [super::throttle::LEADER_THROTTLED_REPLICAS, super::throttle::FOLLOWER_THROTTLED_REPLICAS] {
        if let Some(v) = configs.get(key) {
            super::throttle::parse_throttled_replicas(key, v).map_err(|e| AdminError::new(errors::INVALID_CONFIG, e))?;
        }
    }
    for (k, v) in configs {
        if k.len() > CONFIG_STRING_BYTES_MAX || v.len() > CONFIG_STRING_BYTES_MAX {
            return Err(AdminError::new(
                errors::INVALID_CONFIG,
                format!("Invalid value for configuration {:.64}: keys and values are limited to {CONFIG_STRING_BYTES_MAX} bytes", k),
            ));
        }
    }
    Ok(())
}

/// The broker's config with its dynamic overrides applied (validated as static settings are).
pub fn effective_config(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<BrokerConfig, crate::config::ConfigError> {
    if overrides.is_empty() {
        return Ok(config.clone());
    }
    let mut settings: Vec<(String, String)> = config.explicit.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    settings.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    BrokerConfig::from_settings(&settings)
}

/// The topic defaults given the static config and dynamic broker overrides.
pub fn effective_log_defaults(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig, crate::config::ConfigError> {
    Ok(effective_config(config, overrides)?.log_defaults)
}
