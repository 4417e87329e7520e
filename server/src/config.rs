//! Broker configuration with Kafka's property names.
//!
//! Sources, later ones winning: built-in defaults, an optional `.properties` file, then
//! `--override key=value` arguments. Unknown keys are reported as warnings (Kafka does the same);
//! a known key with an invalid value refuses startup with a message naming the key and value.
//!
//! Decisions where Gregor differs from Kafka's defaults, and why:
//! * `log.dirs` defaults to `./gregor-data` (a local directory, so a first run needs no setup).
//! * `log.flush.interval.messages` defaults to `1`: every acknowledged batch is fsynced before the
//!   acknowledgement (group commit makes this cheap). Setting it higher (Kafka's default is
//!   `9223372036854775807`) selects Kafka's page-cache durability: acks without fsync.
//! * `queued.max.request.bytes` defaults to 256 MiB (Kafka's default `-1` is unbounded): bytes of
//!   requests being read or awaiting their response are bounded out of the box. As in Kafka, a
//!   value `<= 0` means unbounded and a positive value below `socket.request.max.bytes` is refused.
//! * `max.connections.per.ip.overrides` keys must be IP addresses: host names are not resolved
//!   (a broker that resolves names at start-up depends on DNS to boot); a name refuses startup.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gregor_storage::{LogConfig, TimestampType};

/// Keys Gregor accepts but does not act on (they configure things Gregor does differently, such as
/// thread pools, or features that do not exist yet). Accepted silently so Kafka configs load.
const ACCEPTED_IGNORED: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "min.insync.replicas",
    "delete.topic.enable",
];

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Invalid value {value:?} for configuration {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("cannot read config file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("malformed line {line} in {path}: {text:?} (expected key=value)")]
    Syntax { path: String, line: usize, text: String },
}

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// `host:port` to bind, from `listeners`.
    pub listen_addr: String,
    /// `host:port` given to clients in metadata, from `advertised.listeners` (else the listener).
    pub advertised_host: String,
    pub advertised_port: i32,
    pub log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// `queued.max.request.bytes`: budget for request bytes held across connections (`None`:
    /// unbounded).
    pub queued_max_request_bytes: Option<usize>,
    /// `connections.max.idle.ms` (negative: never close idle connections).
    pub connections_max_idle_ms: i64,
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`, by canonical IP address.
    pub max_connections_per_ip_overrides: BTreeMap<core::net::IpAddr, usize>,
    pub log_retention_check_interval_ms: u64,
    /// Partitions of `__consumer_offsets` (fixed once the topic exists).
    pub offsets_topic_num_partitions: i32,
    /// How long committed offsets of an empty group are kept (`offsets.retention.minutes`).
    pub offsets_retention_ms: i64,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    /// Defaults for every topic's log (`log.*` and `message.max.bytes`).
    pub log_defaults: LogConfig,
    /// Every key that was set explicitly, as given (for DescribeConfigs' STATIC_BROKER_CONFIG).
    pub explicit: BTreeMap<String, String>,
    /// Keys that were not recognised.
    pub unknown_keys: Vec<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let mut log_defaults = LogConfig::default();
        log_defaults.flush_messages = 1;
        BrokerConfig {
            node_id: 1,
            listen_addr: "127.0.0.1:9092".into(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            log_dir: PathBuf::from("gregor-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            socket_request_max_bytes: 104_857_600,
            max_connections: 4096,
            queued_max_request_bytes: Some(256 << 20),
            connections_max_idle_ms: 600_000,
            max_connections_per_ip: i32::MAX as usize,
            max_connections_per_ip_overrides: BTreeMap::new(),
            log_retention_check_interval_ms: 300_000,
            offsets_topic_num_partitions: 50,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            log_defaults,
            explicit: BTreeMap::new(),
            unknown_keys: Vec::new(),
        }
    }
}

/// Parses a `.properties` text into key/value pairs (`#`/`!` comments, `key=value` or `key: value`).
pub fn parse_properties(text: &str, path: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).ok_or_else(|| ConfigError::Syntax {
            path: path.to_string(),
            line: i + 1,
            text: raw.to_string(),
        })?;
        out.push((line[..split].trim().to_string(), line[split + 1..].trim().to_string()));
    }
    Ok(out)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), reason: reason.into() }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse::<T>().map_err(|_| invalid(key, value, "not a valid number"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Splits `PLAINTEXT://host:port[,…]` into `(host, port)` of the first listener.
fn parse_listener(key: &str, value: &str) -> Result<(String, i32), ConfigError> {
    let first = value.split(',').next().unwrap_or("").trim();
    let rest = match first.split_once("://") {
        Some((_, rest)) => rest,
        None => first,
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| invalid(key, value, "expected NAME://host:port"))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, value, "invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port as i32))
}

/// Parses `max.connections.per.ip.overrides`: `ip:count[,ip:count…]` (IPv6 addresses may be
/// bracketed; the count follows the last colon).
fn parse_ip_overrides(key: &str, value: &str) -> Result<BTreeMap<core::net::IpAddr, usize>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry.rsplit_once(':').ok_or_else(|| invalid(key, value, format!("{entry:?} is not host:count")))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: core::net::IpAddr = host
            .parse()
            .map_err(|_| invalid(key, value, format!("{host:?} is not an IP address (host names are not resolved)")))?;
        let count: i32 = count.trim().parse().map_err(|_| invalid(key, value, format!("{count:?} is not a valid count")))?;
        if count < 0 {
            return Err(invalid(key, value, "counts must be at least 0"));
        }
        out.insert(ip.to_canonical(), count as usize);
    }
    Ok(out)
}

impl BrokerConfig {
    /// Builds a config from key/value settings applied in order over the defaults.
    pub fn from_settings(settings: &[(String, String)]) -> Result<BrokerConfig, ConfigError> {
        let mut c = BrokerConfig::default();
        let mut advertised: Option<(String, i32)> = None;
        let mut retention_ms: Option<i64> = None;
        let mut retention_minutes: Option<i64> = None;
        let mut retention_hours: Option<i64> = None;
        let mut roll_ms: Option<i64> = None;
        let mut roll_hours: Option<i64> = None;
        for (key, value) in settings {
            let (k, v) = (key.as_str(), value.as_str());
            c.explicit.insert(key.clone(), value.clone());
            match k {
                "node.id" | "broker.id" => c.node_id = parse_num(k, v)?,
                "listeners" => {
                    let (host, port) = parse_listener(k, v)?;
                    c.listen_addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
                    if advertised.is_none() {
                        c.advertised_host = if host == "0.0.0.0" { "127.0.0.1".into() } else { host };
                        c.advertised_port = port;
                    }
                }
                "advertised.listeners" => {
                    let (host, port) = parse_listener(k, v)?;
                    c.advertised_host = host.clone();
                    c.advertised_port = port;
                    advertised = Some((host, port));
                }
                "log.dirs" | "log.dir" => {
                    let first = v.split(',').next().unwrap_or("").trim();
                    if first.is_empty() {
                        return Err(invalid(k, v, "empty path"));
                    }
                    c.log_dir = PathBuf::from(first);
                }
                "num.partitions" => {
                    c.num_partitions = parse_num(k, v)?;
                    if c.num_partitions < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                }
                "default.replication.factor" => {
                    c.default_replication_factor = parse_num(k, v)?;
                    if c.default_replication_factor < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                }
                "auto.create.topics.enable" => c.auto_create_topics_enable = parse_bool(k, v)?,
                "socket.request.max.bytes" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                    c.socket_request_max_bytes = n as usize;
                }
                "max.connections" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                    c.max_connections = n as usize;
                }
                "queued.max.request.bytes" => {
                    let n: i64 = parse_num(k, v)?;
                    c.queued_max_request_bytes = usize::try_from(n).ok().filter(|n| *n > 0);
                }
                "connections.max.idle.ms" => c.connections_max_idle_ms = parse_num(k, v)?,
                "max.connections.per.ip" => {
                    let n: i32 = parse_num(k, v)?;
                    if n < 0 {
                        return Err(invalid(k, v, "must be at least 0"));
                    }
                    c.max_connections_per_ip = n as usize;
                }
                "max.connections.per.ip.overrides" => c.max_connections_per_ip_overrides = parse_ip_overrides(k, v)?,
                "log.retention.check.interval.ms" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                    c.log_retention_check_interval_ms = n as u64;
                }
                "offsets.topic.num.partitions" => {
                    c.offsets_topic_num_partitions = parse_num(k, v)?;
                    if !(1..=1000).contains(&c.offsets_topic_num_partitions) {
                        return Err(invalid(k, v, "must be between 1 and 1000"));
                    }
                }
                "offsets.retention.minutes" => {
                    let m: i64 = parse_num(k, v)?;
                    if m < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                    c.offsets_retention_ms = m.saturating_mul(60_000);
                }
                "group.initial.rebalance.delay.ms" => {
                    c.group_initial_rebalance_delay_ms = parse_num(k, v)?;
                    if c.group_initial_rebalance_delay_ms < 0 {
                        return Err(invalid(k, v, "must be non-negative"));
                    }
                }
                "group.min.session.timeout.ms" => c.group_min_session_timeout_ms = parse_num(k, v)?,
                "group.max.session.timeout.ms" => c.group_max_session_timeout_ms = parse_num(k, v)?,
                "group.max.size" => {
                    c.group_max_size = parse_num(k, v)?;
                    if c.group_max_size < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                }
                "log.retention.ms" => retention_ms = Some(parse_num(k, v)?),
                "log.retention.minutes" => retention_minutes = Some(parse_num(k, v)?),
                "log.retention.hours" => retention_hours = Some(parse_num(k, v)?),
                "log.roll.ms" => roll_ms = Some(parse_num(k, v)?),
                "log.roll.hours" => roll_hours = Some(parse_num(k, v)?),
                "log.retention.bytes" => c.log_defaults.retention_bytes = parse_num(k, v)?,
                "log.segment.bytes" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 14 {
                        return Err(invalid(k, v, "must be at least 14"));
                    }
                    c.log_defaults.segment_bytes = n as u64;
                }
                "message.max.bytes" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 0 {
                        return Err(invalid(k, v, "must be non-negative"));
                    }
                    c.log_defaults.max_message_bytes = n as usize;
                }
                "log.index.interval.bytes" => c.log_defaults.index_interval_bytes = parse_num(k, v)?,
                "log.flush.interval.messages" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 1 {
                        return Err(invalid(k, v, "must be at least 1"));
                    }
                    c.log_defaults.flush_messages = n;
                }
                "log.flush.interval.ms" => {
                    let n: i64 = parse_num(k, v)?;
                    if n < 0 {
                        return Err(invalid(k, v, "must be non-negative"));
                    }
                    c.log_defaults.flush_ms = n;
                }
                "log.message.timestamp.type" => {
                    c.log_defaults.timestamp_type = match v {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(invalid(k, v, "expected CreateTime or LogAppendTime")),
                    }
                }
                "log.cleanup.policy" => {
                    if v != "delete" {
                        return Err(invalid(k, v, "only \"delete\" is supported (compaction is not implemented yet)"));
                    }
                }
                _ if ACCEPTED_IGNORED.contains(&k) => {}
                _ => {
                    c.explicit.remove(key);
                    c.unknown_keys.push(key.clone());
                }
            }
        }
        // Kafka's precedence: ms over minutes over hours.
        if let Some(ms) = retention_ms.or(retention_minutes.map(|m| m * 60_000)).or(retention_hours.map(|h| h * 3_600_000)) {
            c.log_defaults.retention_ms = if ms < 0 { -1 } else { ms };
        }
        if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms {
            return Err(invalid(
                "group.min.session.timeout.ms",
                &c.group_min_session_timeout_ms.to_string(),
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        if let Some(q) = c.queued_max_request_bytes {
            if q < c.socket_request_max_bytes {
                return Err(invalid(
                    "queued.max.request.bytes",
                    &q.to_string(),
                    format!("must be at least socket.request.max.bytes ({}), or -1 for unbounded", c.socket_request_max_bytes),
                ));
            }
        }
        if c.max_connections_per_ip == 0 && c.max_connections_per_ip_overrides.is_empty() {
            return Err(invalid("max.connections.per.ip", "0", "can be 0 only if max.connections.per.ip.overrides is set"));
        }
        if let Some(ms) = roll_ms.or(roll_hours.map(|h| h * 3_600_000)) {
            if ms < 1 {
                return Err(invalid("log.roll.ms", &ms.to_string(), "must be at least 1"));
            }
            c.log_defaults.segment_ms = ms;
        }
        Ok(c)
    }

    /// The broker's settings as DescribeConfigs reports them: `(key, value, explicitly set)`.
    pub fn describe(&self) -> Vec<(String, String, bool)> {
        let d = &self.log_defaults;
        let entries: Vec<(&str, String)> = vec![
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            ("listeners", format!("PLAINTEXT://{}", self.listen_addr)),
            ("advertised.listeners", format!("PLAINTEXT://{}:{}", self.advertised_host, self.advertised_port)),
            ("log.dirs", self.log_dir.display().to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            ("default.replication.factor", self.default_replication_factor.to_string()),
            ("auto.create.topics.enable", self.auto_create_topics_enable.to_string()),
            ("socket.request.max.bytes", self.socket_request_max_bytes.to_string()),
            ("max.connections", self.max_connections.to_string()),
            ("queued.max.request.bytes", self.queued_max_request_bytes.map_or(-1, |n| n as i64).to_string()),
            ("connections.max.idle.ms", self.connections_max_idle_ms.to_string()),
            ("max.connections.per.ip", self.max_connections_per_ip.to_string()),
            (
                "max.connections.per.ip.overrides",
                self.max_connections_per_ip_overrides.iter().map(|(ip, n)| format!("{ip}:{n}")).collect::<Vec<_>>().join(","),
            ),
            ("log.retention.check.interval.ms", self.log_retention_check_interval_ms.to_string()),
            ("log.retention.ms", d.retention_ms.to_string()),
            ("log.retention.bytes", d.retention_bytes.to_string()),
            ("log.segment.bytes", d.segment_bytes.to_string()),
            ("log.roll.ms", d.segment_ms.to_string()),
            ("message.max.bytes", d.max_message_bytes.to_string()),
            ("log.flush.interval.messages", d.flush_messages.to_string()),
            ("log.flush.interval.ms", d.flush_ms.to_string()),
            ("log.message.timestamp.type", d.get("message.timestamp.type").unwrap_or_default()),
            ("log.cleanup.policy", "delete".into()),
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("offsets.retention.minutes", (self.offsets_retention_ms / 60_000).to_string()),
            ("group.initial.rebalance.delay.ms", self.group_initial_rebalance_delay_ms.to_string()),
            ("group.min.session.timeout.ms", self.group_min_session_timeout_ms.to_string()),
            ("group.max.session.timeout.ms", self.group_max_session_timeout_ms.to_string()),
            ("group.max.size", self.group_max_size.to_string()),
        ];
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v, self.explicit.contains_key(k)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = BrokerConfig::from_settings(&[]).unwrap();
        assert_eq!(c.listen_addr, "127.0.0.1:9092");
        assert_eq!(c.log_defaults.flush_messages, 1);
        let c = BrokerConfig::from_settings(&s(&[
            ("listeners", "PLAINTEXT://127.0.0.1:19092"),
            ("log.retention.hours", "1"),
            ("log.dirs", "/tmp/x,/tmp/y"),
            ("bogus.key", "1"),
        ]))
        .unwrap();
        assert_eq!(c.listen_addr, "127.0.0.1:19092");
        assert_eq!(c.advertised_port, 19092);
        assert_eq!(c.log_defaults.retention_ms, 3_600_000);
        assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.unknown_keys, vec!["bogus.key".to_string()]);
    }

    #[test]
    fn invalid_values_are_refused() {
        for (k, v) in [("num.partitions", "0"), ("listeners", "nonsense"), ("auto.create.topics.enable", "yes"), ("log.segment.bytes", "abc")] {
            let e = BrokerConfig::from_settings(&s(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn properties_syntax() {
        let p = parse_properties("# c\nnode.id=1\nlisteners : PLAINTEXT://:9092\n\n", "f").unwrap();
        assert_eq!(p, s(&[("node.id", "1"), ("listeners", "PLAINTEXT://:9092")]));
        assert!(parse_properties("novalue\n", "f").is_err());
    }
}
