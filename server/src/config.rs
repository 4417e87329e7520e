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
//!
//! # Roles, listeners and the controller quorum (KRaft)
//!
//! Kafka's names and, where Kafka validates, Kafka's rules (each refusal names the key):
//! * `process.roles`: `broker`, `controller` or both. Default both.
//! * `controller.quorum.voters`: the static voter set, `id@host:port,…`, kept in the order given.
//!   A duplicate id is refused (Kafka keeps the last silently; two addresses for one voter is
//!   always a mistake). `controller.quorum.bootstrap.servers` (KIP-853 dynamic quorums) is not
//!   supported yet and refused, rather than ignored into a quorum of one.
//! * `listeners`: `NAME://host:port,…` (an empty host binds every interface). Names map to
//!   protocols through `listener.security.protocol.map` (Kafka's default map, plus `NAME:PLAINTEXT`
//!   for every name in `controller.listener.names`, as Kafka does in KRaft mode). Only PLAINTEXT is
//!   implemented: a listener whose protocol is SSL or SASL_* refuses startup. Names and ports must
//!   be distinct (port 0, "any free port", may repeat).
//! * The broker serves one client listener: `inter.broker.listener.name` (default `PLAINTEXT` if
//!   such a listener exists, else the first non-controller listener). A second non-controller
//!   listener is refused rather than left unserved.
//! * `advertised.listeners`: per listener name, the address given to clients; names must be in
//!   `listeners`, and may not be a controller listener (clients never talk to controllers; Kafka
//!   3.1 to 3.8 refused the same on brokers, and 3.9 allows it only for KIP-853 dynamic quorums,
//!   whose controllers advertise themselves). A listener without an advertised entry advertises itself,
//!   with a wildcard host (`0.0.0.0` or empty) advertised as `127.0.0.1` (Kafka refuses an
//!   advertised 0.0.0.0; Gregor's first-run default binds loopback, and stays usable with
//!   `listeners=PLAINTEXT://0.0.0.0:9092`). An explicit advertised `0.0.0.0` is refused, as Kafka.
//!
//! ## The embedded single-node default
//!
//! With no configuration at all (roles `broker,controller`, `node.id=1`, one PLAINTEXT listener on
//! 127.0.0.1:9092, no `controller.quorum.voters`), the node is a quorum of one voter: itself. A
//! single voter never sends or receives a quorum message (it is its own majority), so it needs no
//! controller listener, and its data directory is formatted on first start (see
//! `meta_properties::ensure_formatted`). Any `node.id` may be used in this mode. Kafka has no such
//! mode (it requires voters or bootstrap servers); everything else follows Kafka:
//! * broker-only: voters must be set, must not include `node.id`, `controller.listener.names`
//!   must be set and none of its names may appear in `listeners`;
//! * controller-only: voters must be set and include `node.id`; every listener must be a
//!   controller listener and at least one must exist;
//! * both roles with voters: voters include `node.id` and a controller listener exists;
//! * both roles without voters (embedded): no listener may be a controller listener (a controller
//!   listener with nobody to talk to means the voters were forgotten).
//! See [`BrokerConfig::quorum`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gregor_storage::{LogConfig, TimestampType};

/// Keys Gregor accepts but does not act on (they configure things Gregor does differently, such as
/// thread pools, or features that do not exist yet). Accepted silently so Kafka configs load.
const ACCEPTED_IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "delete.topic.enable",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.buffer.load.factor",
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

/// `process.roles`: which roles this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Votes in the metadata quorum (and may lead it).
    pub controller: bool,
}

impl Roles {
    /// `broker,controller`: the combined mode (and the default).
    pub const COMBINED: Roles = Roles { broker: true, controller: true };

    /// Kafka's spelling: `broker`, `controller` or `broker,controller`.
    pub fn as_kafka_str(&self) -> &'static str {
        match (self.broker, self.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            (false, true) => "controller",
            (false, false) => "",
        }
    }
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// The voter's `node.id`.
    pub id: i32,
    /// Host of its controller listener, as configured (IPv6 without brackets).
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

impl Voter {
    /// `host:port` to connect to (IPv6 bracketed).
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper-cased as Kafka normalises it (`PLAINTEXT`, `CONTROLLER`, ...).
    pub name: String,
    /// Host as configured (IPv6 without brackets); an empty host in `listeners` is `0.0.0.0`.
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// `host:port` (IPv6 bracketed), to bind or to advertise.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// `NAME://host:port`.
    pub fn to_kafka_string(&self) -> String {
        format!("{}://{}", self.name, self.addr())
    }
}

/// Kafka's security protocols, as named in `listener.security.protocol.map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Kafka's name.
    pub fn name(&self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// How this node's metadata quorum is made up (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumMode<'a> {
    /// No `controller.quorum.voters`, roles `broker,controller`: a one-voter quorum of this node,
    /// which never sends quorum messages and so needs no controller listener. Its data directory
    /// is formatted on first start.
    Embedded,
    /// The static voters of `controller.quorum.voters`, in configured order. This node is one of
    /// them exactly when its roles include `controller`. Data directories must be formatted with
    /// `gregor storage format` before the first start.
    Voters(&'a [Voter]),
}

/// The log cleaner (compaction of `cleanup.policy=compact` topics), with Kafka's names and
/// defaults. All of them may also be changed at runtime as cluster-wide dynamic settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`: partitions cleaned at once (0: none).
    pub threads: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaners' read and write rate, all together.
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`: the offset maps' memory, split among the threads.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.backoff.ms`: how long a cleaner sleeps when no log needs cleaning.
    pub backoff_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig { enable: true, threads: 1, io_max_bytes_per_second: f64::MAX, dedupe_buffer_size: 128 * 1024 * 1024, backoff_ms: 15_000 }
    }
}

/// The smallest offset map a cleaner thread may have (`log.cleaner.dedupe.buffer.size` divided by
/// `log.cleaner.threads`): below this a pass holds too few keys to make progress.
pub const DEDUPE_BUFFER_PER_THREAD_MIN: u64 = 1024 * 1024;

/// Broker settings that are topic defaults, and the topic key each one supplies.
pub const TOPIC_DEFAULT_SYNONYMS: &[(&str, &str)] = &[
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
];

/// How this broker replicates partitions, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: an ISR follower not caught up for this long leaves the ISR.
    pub lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch may wait at the leader.
    pub fetch_wait_max_ms: u64,
    /// `replica.fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: bytes per partition in one follower fetch.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes in one follower fetch answer.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: wait after a failed follower fetch.
    pub fetch_backoff_ms: u64,
    /// `num.replica.fetchers`: fetcher tasks per source broker.
    pub num_fetchers: usize,
    /// `min.insync.replicas`: the default for topics that do not set it.
    pub min_insync_replicas: i32,
    /// `offsets.topic.replication.factor` (capped at the live brokers when the topic is made).
    pub offsets_topic_replication_factor: i16,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_interval_ms: u64,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership back to
    /// preferred replicas by itself.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms: how often it looks.
    pub leader_imbalance_check_interval_ms: u64,
    /// `unclean.leader.election.enable`: the default for topics that do not set it.
    pub unclean_leader_election: bool,
    /// `unclean.leader.election.interval.ms`: how often the active controller elects leaders,
    /// uncleanly if it must, for leaderless partitions of topics that allow it (default 5 min).
    pub unclean_leader_election_interval_ms: u64,
    /// `leader.replication.throttled.rate` (bytes/s): what this broker, leading, sends to
    /// throttled out-of-sync followers (see `broker::throttle`).
    pub leader_throttled_rate: u64,
    /// `follower.replication.throttled.rate` (bytes/s): what this broker, following, fetches
    /// for its throttled out-of-sync replicas.
    pub follower_throttled_rate: u64,
    /// `replication.quota.window.num`: samples the throttle rate is measured over.
    pub quota_window_num: u32,
    /// `replication.quota.window.size.seconds`, in ms: the length of one sample.
    pub quota_window_ms: u64,
}

/// Kafka's default throttle rate (`Long.MAX_VALUE`): unthrottled.
pub const THROTTLE_RATE_UNLIMITED: u64 = i64::MAX as u64;

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_backoff_ms: 1_000,
            num_fetchers: 1,
            min_insync_replicas: 1,
            offsets_topic_replication_factor: 3,
            hw_checkpoint_interval_ms: 5_000,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            unclean_leader_election: false,
            unclean_leader_election_interval_ms: 300_000,
            leader_throttled_rate: THROTTLE_RATE_UNLIMITED,
            follower_throttled_rate: THROTTLE_RATE_UNLIMITED,
            quota_window_num: 11,
            quota_window_ms: 1_000,
        }
    }
}

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or its older name `broker.id`; both set must agree).
    pub node_id: i32,
    /// `host:port` to bind for clients: the broker listener of `listeners` (the one named by
    /// `inter.broker.listener.name`); on a controller-only node, its controller listener.
    pub listen_addr: String,
    /// `host:port` given to clients in metadata, from `advertised.listeners` (else the listener).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// `log.dirs` (or `log.dir`): the first entry. Partitions live here (only the first log
    /// directory holds data today; every one is formatted and checked).
    pub log_dir: PathBuf,
    /// Every entry of `log.dirs`, in order; `log_dirs[0] == log_dir`.
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`: where the `__cluster_metadata` log lives (default: the first log dir).
    pub metadata_log_dir: PathBuf,
    /// `process.roles` (default `broker,controller`).
    pub roles: Roles,
    /// `controller.quorum.voters`, in configured order, ids distinct. Empty: the embedded
    /// single-node quorum (see [`BrokerConfig::quorum`]).
    pub voters: Vec<Voter>,
    /// `controller.listener.names` (default `CONTROLLER`), upper-cased. Brokers use the first to
    /// reach the voters.
    pub controller_listener_names: Vec<String>,
    /// Every entry of `listeners`, in order (default `PLAINTEXT://127.0.0.1:9092`).
    pub listeners: Vec<Listener>,
    /// The effective `advertised.listeners` of the broker listener(s): the configured entry for a
    /// name, else the listener itself (wildcard hosts advertised as 127.0.0.1). Never a
    /// controller listener.
    pub advertised_listeners: Vec<Listener>,
    /// `listener.security.protocol.map`, by upper-cased listener name (Kafka's default map plus
    /// `NAME:PLAINTEXT` for each controller listener name unless set explicitly).
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `inter.broker.listener.name`: the broker listener other brokers (and clients) use.
    pub inter_broker_listener_name: String,
    /// `host:port` to bind for quorum traffic: the first listener named in
    /// `controller.listener.names`, if `listeners` has one (always when roles include controller
    /// and voters are configured; never in embedded mode or on a broker-only node).
    pub controller_listen_addr: Option<String>,
    /// `metrics.listener`: `host:port` of the Prometheus endpoint (`http://host:port/metrics`
    /// in the setting); unset or empty: no endpoint.
    pub metrics_listen_addr: Option<String>,
    /// `broker.rack` (unset or empty: none).
    pub rack: Option<String>,
    /// `controller.quorum.election.timeout.ms`: how long without a leader before a voter starts
    /// an election (default 1000).
    pub quorum_election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: how long a follower goes without a successful fetch
    /// from the leader before it becomes a candidate (default 2000).
    pub quorum_fetch_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms`: upper bound of the randomised wait before a
    /// new election (default 1000).
    pub quorum_election_backoff_max_ms: u64,
    /// `controller.quorum.request.timeout.ms`: how long a quorum request may wait for its answer
    /// (default 2000).
    pub quorum_request_timeout_ms: u64,
    /// `controller.quorum.retry.backoff.ms`: wait before retrying a failed quorum request
    /// (default 20).
    pub quorum_retry_backoff_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the active controller
    /// (default 2000).
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this long is fenced
    /// (default 9000).
    pub broker_session_timeout_ms: u64,
    /// `initial.broker.registration.timeout.ms`: how long a starting broker waits to register with
    /// the controller before it gives up (default 60000).
    pub initial_broker_registration_timeout_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes appended to the metadata log
    /// after the latest snapshot that trigger a new one (default 20971520).
    pub metadata_snapshot_max_new_record_bytes: u64,
    /// `metadata.max.idle.interval.ms`: how often the active controller appends a no-op record
    /// when idle, so followers see the high watermark move (default 500; 0 disables).
    pub metadata_max_idle_interval_ms: u64,
    /// `metadata.log.segment.bytes`: segment size of the metadata log (default 1 GiB, at least
    /// `metadata.log.segment.min.bytes`).
    pub metadata_log_segment_bytes: u64,
    /// `metadata.log.segment.min.bytes` (Kafka's internal, for tests: default 8 MiB).
    pub metadata_log_segment_min_bytes: u64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    /// `max.request.partition.size.limit`: most partitions one DescribeTopicPartitions answer
    /// describes (default 2000, as Kafka's).
    pub max_request_partition_size_limit: i32,
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
    /// Replication settings (`replica.*`, `min.insync.replicas`, …).
    pub replication: ReplicationConfig,
    /// Defaults for every topic's log (`log.*` and `message.max.bytes`).
    pub log_defaults: LogConfig,
    /// The log cleaner (`log.cleaner.*`).
    pub cleaner: CleanerConfig,
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
            log_dirs: vec![PathBuf::from("gregor-data")],
            metadata_log_dir: PathBuf::from("gregor-data"),
            roles: Roles::COMBINED,
            voters: Vec::new(),
            controller_listener_names: vec!["CONTROLLER".into()],
            listeners: vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }],
            advertised_listeners: vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }],
            listener_security_protocol_map: default_protocol_map(&["CONTROLLER".to_string()]),
            inter_broker_listener_name: "PLAINTEXT".into(),
            controller_listen_addr: None,
            metrics_listen_addr: None,
            rack: None,
            quorum_election_timeout_ms: 1000,
            quorum_fetch_timeout_ms: 2000,
            quorum_election_backoff_max_ms: 1000,
            quorum_request_timeout_ms: 2000,
            quorum_retry_backoff_ms: 20,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            initial_broker_registration_timeout_ms: 60_000,
            metadata_snapshot_max_new_record_bytes: 20 * 1024 * 1024,
            metadata_max_idle_interval_ms: 500,
            metadata_log_segment_bytes: 1 << 30,
            metadata_log_segment_min_bytes: 8 * 1024 * 1024,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            max_request_partition_size_limit: 2000,
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
            replication: ReplicationConfig::default(),
            log_defaults,
            cleaner: CleanerConfig::default(),
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

/// A non-negative count of milliseconds (or bytes) of at least `min`.
fn parse_ms(key: &str, value: &str, min: u64) -> Result<u64, ConfigError> {
    let n: i64 = parse_num(key, value)?;
    u64::try_from(n).ok().filter(|n| *n >= min).ok_or_else(|| invalid(key, value, format!("must be at least {min}")))
}

/// An int of at least `min`.
fn parse_positive(key: &str, value: &str, min: i32) -> Result<i32, ConfigError> {
    let n: i32 = parse_num(key, value.trim())?;
    if n < min {
        return Err(invalid(key, value, format!("must be at least {min}")));
    }
    Ok(n)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// `host:port`, with an IPv6 host bracketed.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) into the host without brackets and the port.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    Some((host.to_string(), port))
}

/// Whether two configured paths name the same directory lexically (`.` components and trailing
/// slashes aside; symbolic links are not resolved).
fn same_dir(a: &Path, b: &Path) -> bool {
    let norm = |p: &Path| p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect::<PathBuf>();
    norm(a) == norm(b)
}

/// Splits a comma-separated list, trimming entries and dropping empty ones.
fn csv(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty()).collect()
}

/// Parses `NAME://host:port[,…]` (`listeners`, `advertised.listeners`). Names are upper-cased
/// (Kafka normalises listener names); an empty host is kept empty for the caller to interpret.
fn parse_listener_list(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for entry in csv(value) {
        let bad = || invalid(key, value, format!("{entry:?} is not NAME://host:port"));
        let (name, rest) = entry.split_once("://").ok_or_else(bad)?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(bad());
        }
        let (host, port) = split_host_port(rest.trim()).ok_or_else(bad)?;
        out.push(Listener { name, host, port });
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`: `id@host:port[,…]`, ids distinct.
fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut out: Vec<Voter> = Vec::new();
    for entry in csv(value) {
        let form = "each entry should be in the form `{id}@{host}:{port}`";
        let (id, addr) = entry.split_once('@').ok_or_else(|| invalid(key, value, format!("{entry:?}: {form}")))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| invalid(key, value, format!("failed to parse voter ID as an integer from {:?}", id.trim())))?;
        if id < 0 {
            return Err(invalid(key, value, format!("voter ID {id} is negative")));
        }
        let (host, port) = split_host_port(addr.trim())
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| invalid(key, value, format!("failed to parse host and port from entry {entry:?}: {form}")))?;
        if host == "0.0.0.0" {
            return Err(invalid(key, value, format!("host 0.0.0.0 of voter {id} is not routable")));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter ID {id} appears more than once")));
        }
        out.push(Voter { id, host, port });
    }
    Ok(out)
}

/// Kafka's default `listener.security.protocol.map` (each protocol mapped to itself) plus, as
/// Kafka does in KRaft mode when the map is not set, `NAME:PLAINTEXT` for each controller listener.
fn default_protocol_map(controller_names: &[String]) -> BTreeMap<String, SecurityProtocol> {
    let mut map: BTreeMap<String, SecurityProtocol> = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ]
    .into_iter()
    .map(|p| (p.name().to_string(), p))
    .collect();
    for name in controller_names {
        map.entry(name.clone()).or_insert(SecurityProtocol::Plaintext);
    }
    map
}

/// Parses an explicit `listener.security.protocol.map`: `NAME:PROTOCOL[,…]`.
fn parse_protocol_map(key: &str, value: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut map = BTreeMap::new();
    for entry in csv(value) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| invalid(key, value, format!("{entry:?} is not NAME:PROTOCOL")))?;
        let p = SecurityProtocol::parse(proto)
            .ok_or_else(|| invalid(key, value, format!("invalid security protocol `{}`", proto.trim())))?;
        map.insert(name.trim().to_ascii_uppercase(), p);
    }
    Ok(map)
}

/// The raw cluster-related settings, resolved together once every setting is known (their
/// validity depends on each other, and a later `--override` may change any of them).
#[derive(Default)]
struct ClusterRaw {
    node_id: Option<String>,
    broker_id: Option<String>,
    log_dirs: Option<String>,
    log_dir: Option<String>,
    metadata_log_dir: Option<String>,
    roles: Option<String>,
    voters: Option<String>,
    controller_listener_names: Option<String>,
    protocol_map: Option<String>,
    listeners: Option<String>,
    advertised_listeners: Option<String>,
    inter_broker_listener_name: Option<String>,
}

/// Parses `metrics.listener`: `http://host:port` with no path or the path `/metrics`, or a bare
/// `host:port`; empty means none.
fn parse_metrics_listener(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.contains("://") && !v.starts_with("http://") {
        return Err(invalid(key, value, "only http:// is served (e.g. http://127.0.0.1:9644/metrics)"));
    }
    let rest = v.strip_prefix("http://").unwrap_or(v);
    let (hostport, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/" || path == crate::metrics::http::PATH) {
        return Err(invalid(key, value, format!("the endpoint's path is {} (got {path:?})", crate::metrics::http::PATH)));
    }
    let (host, port) = hostport.rsplit_once(':').ok_or_else(|| invalid(key, value, "expected http://host:port/metrics"))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, value, format!("{port:?} is not a port number")))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(Some(format!("{host}:{port}")))
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
        let mut raw = ClusterRaw::default();
        let mut retention_ms: Option<i64> = None;
        let mut retention_minutes: Option<i64> = None;
        let mut retention_hours: Option<i64> = None;
        let mut roll_ms: Option<i64> = None;
        let mut roll_hours: Option<i64> = None;
        for (key, value) in settings {
            let (k, v) = (key.as_str(), value.as_str());
            c.explicit.insert(key.clone(), value.clone());
            match k {
                "node.id" => raw.node_id = Some(v.to_string()),
                "broker.id" => raw.broker_id = Some(v.to_string()),
                "listeners" => raw.listeners = Some(v.to_string()),
                "advertised.listeners" => raw.advertised_listeners = Some(v.to_string()),
                "log.dirs" => raw.log_dirs = Some(v.to_string()),
                "log.dir" => raw.log_dir = Some(v.to_string()),
                "metadata.log.dir" => raw.metadata_log_dir = Some(v.to_string()),
                "process.roles" => raw.roles = Some(v.to_string()),
                "controller.quorum.voters" => raw.voters = Some(v.to_string()),
                "controller.listener.names" => raw.controller_listener_names = Some(v.to_string()),
                "listener.security.protocol.map" => raw.protocol_map = Some(v.to_string()),
                "inter.broker.listener.name" => raw.inter_broker_listener_name = Some(v.to_string()),
                "controller.quorum.bootstrap.servers" => {
                    if !v.trim().is_empty() {
                        return Err(invalid(
                            k,
                            v,
                            "dynamic quorums (KIP-853) are not supported yet: list the static voters in controller.quorum.voters",
                        ));
                    }
                }
                "broker.rack" => c.rack = Some(v.trim().to_string()).filter(|r| !r.is_empty()),
                "metrics.listener" => c.metrics_listen_addr = parse_metrics_listener(k, v)?,
                "controller.quorum.election.timeout.ms" => c.quorum_election_timeout_ms = parse_ms(k, v, 1)?,
                "controller.quorum.fetch.timeout.ms" => c.quorum_fetch_timeout_ms = parse_ms(k, v, 1)?,
                "controller.quorum.election.backoff.max.ms" => c.quorum_election_backoff_max_ms = parse_ms(k, v, 1)?,
                "controller.quorum.request.timeout.ms" => c.quorum_request_timeout_ms = parse_ms(k, v, 1)?,
                "controller.quorum.retry.backoff.ms" => c.quorum_retry_backoff_ms = parse_ms(k, v, 0)?,
                "broker.heartbeat.interval.ms" => c.broker_heartbeat_interval_ms = parse_ms(k, v, 1)?,
                "broker.session.timeout.ms" => c.broker_session_timeout_ms = parse_ms(k, v, 1)?,
                "initial.broker.registration.timeout.ms" => c.initial_broker_registration_timeout_ms = parse_ms(k, v, 1)?,
                "metadata.max.idle.interval.ms" => c.metadata_max_idle_interval_ms = parse_ms(k, v, 0)?,
                "metadata.log.max.record.bytes.between.snapshots" => c.metadata_snapshot_max_new_record_bytes = parse_ms(k, v, 1)?,
                "metadata.log.segment.bytes" => c.metadata_log_segment_bytes = parse_ms(k, v, 12)?,
                "metadata.log.segment.min.bytes" => c.metadata_log_segment_min_bytes = parse_ms(k, v, 12)?,
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
                "max.request.partition.size.limit" => c.max_request_partition_size_limit = parse_positive(k, v, 1)?,
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
                "replica.lag.time.max.ms" => c.replication.lag_time_max_ms = parse_ms(k, v, 1)?,
                "replica.fetch.wait.max.ms" => c.replication.fetch_wait_max_ms = parse_ms(k, v, 0)?,
                "replica.fetch.min.bytes" => c.replication.fetch_min_bytes = parse_positive(k, v, 1)?,
                "replica.fetch.max.bytes" => c.replication.fetch_max_bytes = parse_positive(k, v, 1024)?,
                "replica.fetch.response.max.bytes" => c.replication.fetch_response_max_bytes = parse_positive(k, v, 1024)?,
                "replica.fetch.backoff.ms" => c.replication.fetch_backoff_ms = parse_ms(k, v, 0)?,
                "num.replica.fetchers" => c.replication.num_fetchers = parse_positive(k, v, 1)?.min(64) as usize,
                "min.insync.replicas" => c.replication.min_insync_replicas = parse_positive(k, v, 1)?,
                "offsets.topic.replication.factor" => {
                    c.replication.offsets_topic_replication_factor = parse_positive(k, v, 1)?.min(i32::from(i16::MAX)) as i16;
                }
                "replica.high.watermark.checkpoint.interval.ms" => c.replication.hw_checkpoint_interval_ms = parse_ms(k, v, 1)?,
                "auto.leader.rebalance.enable" => c.replication.auto_leader_rebalance = parse_bool(k, v)?,
                "unclean.leader.election.enable" => c.replication.unclean_leader_election = parse_bool(k, v)?,
                "unclean.leader.election.interval.ms" => c.replication.unclean_leader_election_interval_ms = parse_ms(k, v, 1)?,
                "leader.replication.throttled.rate" => c.replication.leader_throttled_rate = parse_ms(k, v.trim(), 0)?,
                "follower.replication.throttled.rate" => c.replication.follower_throttled_rate = parse_ms(k, v.trim(), 0)?,
                "replication.quota.window.num" => c.replication.quota_window_num = parse_positive(k, v, 1)?.min(1_000) as u32,
                "replication.quota.window.size.seconds" => c.replication.quota_window_ms = (parse_positive(k, v, 1)? as u64) * 1000,
                "leader.imbalance.check.interval.seconds" => c.replication.leader_imbalance_check_interval_ms = parse_ms(k, v, 1)?.saturating_mul(1000),
                // Validated and, as in KRaft, not used: every imbalanced partition is rebalanced.
                "leader.imbalance.per.broker.percentage" => {
                    let n = parse_positive(k, v, 0)?;
                    if n > 100 {
                        return Err(invalid(k, v, "must be between 0 and 100"));
                    }
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
                _ if TOPIC_DEFAULT_SYNONYMS.iter().any(|(b, _)| *b == k) => {
                    // Validated as the topic setting it supplies (one source for the ranges).
                    let topic_key = TOPIC_DEFAULT_SYNONYMS.iter().find(|(b, _)| *b == k).expect("matched").1;
                    let one = BTreeMap::from([(topic_key.to_string(), v.to_string())]);
                    c.log_defaults = LogConfig::with_overrides(&c.log_defaults, &one).map_err(|e| match e {
                        gregor_storage::ConfigError::Invalid { reason, .. } => invalid(k, v, reason),
                        other => invalid(k, v, other.to_string()),
                    })?;
                }
                "log.cleaner.enable" => c.cleaner.enable = parse_bool(k, v)?,
                "log.cleaner.threads" => c.cleaner.threads = parse_positive(k, v, 0)? as usize,
                "log.cleaner.io.max.bytes.per.second" => {
                    c.cleaner.io_max_bytes_per_second = gregor_storage::config::parse_double(k, v, 1.0, f64::MAX).map_err(|e| invalid(k, v, e.to_string()))?;
                }
                "log.cleaner.dedupe.buffer.size" => c.cleaner.dedupe_buffer_size = parse_ms(k, v, DEDUPE_BUFFER_PER_THREAD_MIN)?,
                "log.cleaner.backoff.ms" => c.cleaner.backoff_ms = parse_ms(k, v, 0)?,
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
        if c.cleaner.threads > 0 && c.cleaner.dedupe_buffer_size / (c.cleaner.threads as u64) < DEDUPE_BUFFER_PER_THREAD_MIN {
            return Err(invalid(
                "log.cleaner.dedupe.buffer.size",
                &c.cleaner.dedupe_buffer_size.to_string(),
                format!("must be at least {DEDUPE_BUFFER_PER_THREAD_MIN} per cleaner thread (log.cleaner.threads={})", c.cleaner.threads),
            ));
        }
        if c.metadata_log_segment_bytes < c.metadata_log_segment_min_bytes {
            return Err(invalid(
                "metadata.log.segment.bytes",
                &c.metadata_log_segment_bytes.to_string(),
                format!("cannot be below metadata.log.segment.min.bytes ({})", c.metadata_log_segment_min_bytes),
            ));
        }
        c.resolve_cluster(raw)?;
        Ok(c)
    }

    /// How the metadata quorum is made up: [`QuorumMode::Embedded`] exactly when no voters are
    /// configured (validation allows that only with roles `broker,controller` and no controller
    /// listener).
    pub fn quorum(&self) -> QuorumMode<'_> {
        if self.voters.is_empty() {
            QuorumMode::Embedded
        } else {
            QuorumMode::Voters(&self.voters)
        }
    }

    /// Every directory that holds a `meta.properties`: each log dir, then the metadata log dir
    /// if it is not one of them. Order as configured, no repeats (`./a` and `a` are one).
    pub fn storage_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.log_dirs.iter().chain(std::iter::once(&self.metadata_log_dir)) {
            if !out.iter().any(|o| same_dir(o, d)) {
                out.push(d.clone());
            }
        }
        out
    }

    /// `listeners` as Kafka writes it.
    fn listeners_string(&self) -> String {
        self.listeners.iter().map(Listener::to_kafka_string).collect::<Vec<_>>().join(",")
    }

    /// A listener's name must map to a protocol, and the protocol must be PLAINTEXT.
    fn check_protocol(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        let value = match key {
            "listeners" => self.listeners_string(),
            _ => self.controller_listener_names.join(","),
        };
        match self.listener_security_protocol_map.get(name) {
            None => Err(invalid(
                key,
                &value,
                format!(
                    "no security protocol defined for listener {name} in listener.security.protocol.map{}",
                    if self.explicit.contains_key("listener.security.protocol.map") { " (an explicit map must name every listener)" } else { "" }
                ),
            )),
            Some(SecurityProtocol::Plaintext) => Ok(()),
            Some(p) => Err(invalid(
                key,
                &value,
                format!("listener {name} uses security protocol {} (listener.security.protocol.map); only PLAINTEXT is supported", p.name()),
            )),
        }
    }

    /// Kafka's rules tying `process.roles`, `node.id`, `controller.quorum.voters` and the
    /// controller listener together (module docs).
    fn check_roles(&self) -> Result<(), ConfigError> {
        const VOTERS: &str = "controller.quorum.voters";
        const NAMES: &str = "controller.listener.names";
        let voters_str = self.voters.iter().map(|v| format!("{}@{}", v.id, v.addr())).collect::<Vec<_>>().join(",");
        let voter_ids = self.voters.iter().map(|v| v.id.to_string()).collect::<Vec<_>>().join(",");
        let is_voter = self.voters.iter().any(|v| v.id == self.node_id);
        let controller_listeners: Vec<&Listener> = self.listeners.iter().filter(|l| self.is_controller_listener(&l.name)).collect();
        let roles = self.roles.as_kafka_str();
        if self.voters.is_empty() {
            if self.roles != Roles::COMBINED {
                return Err(invalid(
                    VOTERS,
                    "",
                    format!("must list the controllers when process.roles={roles} (only broker,controller without voters is a single-node quorum)"),
                ));
            }
            if let Some(l) = controller_listeners.first() {
                return Err(invalid(
                    VOTERS,
                    "",
                    format!(
                        "must list the controllers when listeners has the controller listener {} (without voters this node is a single-node quorum, which needs no controller listener)",
                        l.to_kafka_string()
                    ),
                ));
            }
            return Ok(());
        }
        if self.roles.controller && !is_voter {
            return Err(invalid(
                VOTERS,
                &voters_str,
                format!("if process.roles contains the 'controller' role, the node id {} must be included in the set of voters {{{voter_ids}}}", self.node_id),
            ));
        }
        if !self.roles.controller && is_voter {
            return Err(invalid(
                VOTERS,
                &voters_str,
                format!("if process.roles contains just the 'broker' role, the node id {} must not be included in the set of voters {{{voter_ids}}}", self.node_id),
            ));
        }
        let names = self.controller_listener_names.join(",");
        if self.roles.controller {
            if controller_listeners.is_empty() {
                return Err(invalid(
                    NAMES,
                    &names,
                    format!("must contain at least one value appearing in the 'listeners' configuration ({}) when running the KRaft controller role", self.listeners_string()),
                ));
            }
            if let Some(n) = self.controller_listener_names.iter().find(|n| !self.listeners.iter().any(|l| &&l.name == n)) {
                return Err(invalid(
                    NAMES,
                    &names,
                    format!("must only contain values appearing in the 'listeners' configuration when running the KRaft controller role ({n} does not)"),
                ));
            }
            if !self.roles.broker && controller_listeners.len() != self.listeners.len() {
                return Err(invalid(
                    "listeners",
                    &self.listeners_string(),
                    "must only contain KRaft controller listeners from controller.listener.names when process.roles=controller",
                ));
            }
        } else {
            if self.controller_listener_names.is_empty() {
                return Err(invalid(NAMES, "", "must contain at least one value when running KRaft with just the broker role"));
            }
            if let Some(l) = controller_listeners.first() {
                return Err(invalid(
                    NAMES,
                    &names,
                    format!(
                        "must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role ({} does)",
                        l.to_kafka_string()
                    ),
                ));
            }
            // The broker reaches the voters through the first controller listener name.
            self.check_protocol(NAMES, &self.controller_listener_names[0])?;
        }
        Ok(())
    }

    /// Whether `name` is one of `controller.listener.names`.
    pub fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// Resolves and cross-checks node id, directories, roles, voters and listeners (the rules
    /// are listed in the module docs).
    fn resolve_cluster(&mut self, raw: ClusterRaw) -> Result<(), ConfigError> {
        // node.id / broker.id: one id; Kafka requires both, when both are set, to agree.
        let node_id: Option<i32> = raw.node_id.as_deref().map(|v| parse_num("node.id", v)).transpose()?;
        let broker_id: Option<i32> = raw.broker_id.as_deref().map(|v| parse_num("broker.id", v)).transpose()?;
        if let (Some(n), Some(b)) = (node_id, broker_id) {
            if n != b {
                return Err(invalid("node.id", &n.to_string(), format!("must be set to the same value as broker.id ({b})")));
            }
        }
        if let Some(id) = node_id.or(broker_id) {
            self.node_id = id;
        }
        if self.node_id < 0 {
            let key = if node_id.is_some() { "node.id" } else { "broker.id" };
            return Err(invalid(key, &self.node_id.to_string(), "must be at least 0"));
        }

        // log.dirs over log.dir (Kafka's precedence, whatever the order given).
        if let Some((key, value)) = raw.log_dirs.as_deref().map(|v| ("log.dirs", v)).or(raw.log_dir.as_deref().map(|v| ("log.dir", v))) {
            let dirs: Vec<PathBuf> = csv(value).into_iter().map(PathBuf::from).collect();
            if dirs.is_empty() {
                return Err(invalid(key, value, "empty path"));
            }
            for (i, d) in dirs.iter().enumerate() {
                if dirs[..i].iter().any(|o| same_dir(o, d)) {
                    return Err(invalid(key, value, format!("{} is listed twice", d.display())));
                }
            }
            self.log_dir = dirs[0].clone();
            self.log_dirs = dirs;
        }
        self.metadata_log_dir = match raw.metadata_log_dir.as_deref().map(str::trim) {
            Some("") => return Err(invalid("metadata.log.dir", "", "empty path")),
            // Spelled as the log dir it names, if it is one (so the two compare equal).
            Some(d) => self.log_dirs.iter().find(|l| same_dir(l, Path::new(d))).cloned().unwrap_or_else(|| PathBuf::from(d)),
            None => self.log_dir.clone(),
        };

        if let Some(v) = raw.roles.as_deref() {
            let key = "process.roles";
            let mut roles = Roles { broker: false, controller: false };
            for role in csv(v) {
                let seen = match role {
                    "broker" => std::mem::replace(&mut roles.broker, true),
                    "controller" => std::mem::replace(&mut roles.controller, true),
                    _ => return Err(invalid(key, v, format!("unknown process role {role:?} (expected broker and/or controller)"))),
                };
                if seen {
                    return Err(invalid(key, v, format!("duplicate role name {role:?}")));
                }
            }
            if !roles.broker && !roles.controller {
                return Err(invalid(key, v, "must be broker, controller or broker,controller"));
            }
            self.roles = roles;
        }

        if let Some(v) = raw.controller_listener_names.as_deref() {
            let names: Vec<String> = csv(v).into_iter().map(str::to_ascii_uppercase).collect();
            if names.iter().collect::<BTreeSet<_>>().len() != names.len() {
                return Err(invalid("controller.listener.names", v, "a name appears more than once"));
            }
            self.controller_listener_names = names;
        }
        self.listener_security_protocol_map = match raw.protocol_map.as_deref() {
            Some(v) => parse_protocol_map("listener.security.protocol.map", v)?,
            None => default_protocol_map(&self.controller_listener_names),
        };

        // listeners: names known to the protocol map, PLAINTEXT only, names and ports distinct.
        if let Some(v) = raw.listeners.as_deref() {
            let key = "listeners";
            let mut listeners = parse_listener_list(key, v)?;
            if listeners.is_empty() {
                return Err(invalid(key, v, "at least one listener is required"));
            }
            for l in listeners.iter_mut().filter(|l| l.host.is_empty()) {
                l.host = "0.0.0.0".into();
            }
            for i in 0..listeners.len() {
                let l = &listeners[i];
                if listeners[..i].iter().any(|o| o.name == l.name) {
                    return Err(invalid(key, v, format!("each listener must have a different name ({} appears twice)", l.name)));
                }
                if l.port != 0 && listeners[..i].iter().any(|o| o.port == l.port) {
                    return Err(invalid(key, v, format!("each listener must have a different port ({} appears twice)", l.port)));
                }
            }
            self.listeners = listeners;
        }
        for l in &self.listeners {
            self.check_protocol("listeners", &l.name)?;
        }

        if let Some(v) = raw.voters.as_deref() {
            self.voters = parse_voters("controller.quorum.voters", v)?;
        }
        self.check_roles()?;

        // The broker listener (one, served by the broker) and the controller listener.
        let broker_listeners: Vec<&Listener> = self.listeners.iter().filter(|l| !self.is_controller_listener(&l.name)).collect();
        if self.roles.broker {
            let names = broker_listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",");
            match broker_listeners.len() {
                0 => {
                    return Err(invalid(
                        "listeners",
                        &self.listeners_string(),
                        "there must be at least one broker listener; perhaps all listeners appear in controller.listener.names?",
                    ))
                }
                1 => {}
                _ => {
                    return Err(invalid(
                        "listeners",
                        &self.listeners_string(),
                        format!("only one broker listener is supported, found {names}"),
                    ))
                }
            }
            let broker_listener = broker_listeners[0].clone();
            self.inter_broker_listener_name = match raw.inter_broker_listener_name.as_deref() {
                Some(v) => {
                    let key = "inter.broker.listener.name";
                    let name = v.trim().to_ascii_uppercase();
                    if !self.listener_security_protocol_map.contains_key(&name) {
                        return Err(invalid(key, v, "not found in listener.security.protocol.map"));
                    }
                    if name != broker_listener.name {
                        return Err(invalid(
                            key,
                            v,
                            format!("must be a listener name defined in advertised.listeners; the valid options based on currently configured listeners are {names}"),
                        ));
                    }
                    name
                }
                None => broker_listener.name.clone(),
            };
            self.listen_addr = broker_listener.addr();
        } else {
            if let Some(v) = raw.inter_broker_listener_name.as_deref() {
                self.inter_broker_listener_name = v.trim().to_ascii_uppercase();
            }
            // A controller-only node serves its (Kafka-protocol) controller listener.
            if let Some(l) = self.listeners.first() {
                self.listen_addr = l.addr();
            }
        }
        self.controller_listen_addr = self
            .controller_listener_names
            .iter()
            .find_map(|n| self.listeners.iter().find(|l| &l.name == n))
            .map(Listener::addr);

        // advertised.listeners: a subset of the broker listeners, routable hosts.
        let explicit = match raw.advertised_listeners.as_deref() {
            Some(v) => {
                let key = "advertised.listeners";
                let adv = parse_listener_list(key, v)?;
                let valid = self.listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",");
                for (i, a) in adv.iter().enumerate() {
                    if self.is_controller_listener(&a.name) {
                        return Err(invalid(
                            key,
                            v,
                            format!("must not contain the controller listener {} (from controller.listener.names): clients never send requests to controllers", a.name),
                        ));
                    }
                    if !self.listeners.iter().any(|l| l.name == a.name) {
                        return Err(invalid(
                            key,
                            v,
                            format!("listener names must be equal to or a subset of the ones defined in listeners; {} is not one of {valid}", a.name),
                        ));
                    }
                    if adv[..i].iter().any(|o| o.name == a.name) {
                        return Err(invalid(key, v, format!("each listener must have a different name ({} appears twice)", a.name)));
                    }
                    if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                        return Err(invalid(key, v, "cannot use the nonroutable meta-address 0.0.0.0 (or an empty host); use a routable IP address"));
                    }
                }
                adv
            }
            None => Vec::new(),
        };
        let advertise = |l: &Listener| -> Listener {
            explicit.iter().find(|a| a.name == l.name).cloned().unwrap_or_else(|| {
                let wildcard = l.host == "0.0.0.0" || l.host == "::";
                Listener { name: l.name.clone(), host: if wildcard { "127.0.0.1".into() } else { l.host.clone() }, port: l.port }
            })
        };
        self.advertised_listeners = broker_listeners.iter().map(|l| advertise(l)).collect();
        let served = if self.roles.broker { self.advertised_listeners.first().cloned() } else { self.listeners.first().map(advertise) };
        if let Some(a) = served {
            self.advertised_host = a.host;
            self.advertised_port = i32::from(a.port);
        }
        Ok(())
    }

    /// The broker's settings as DescribeConfigs reports them: `(key, value, explicitly set)`.
    pub fn describe(&self) -> Vec<(String, String, bool)> {
        let d = &self.log_defaults;
        let entries: Vec<(&str, String)> = vec![
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            ("listeners", self.listeners_string()),
            ("advertised.listeners", self.advertised_listeners.iter().map(Listener::to_kafka_string).collect::<Vec<_>>().join(",")),
            ("log.dirs", self.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",")),
            ("metadata.log.dir", self.metadata_log_dir.display().to_string()),
            ("process.roles", self.roles.as_kafka_str().to_string()),
            ("controller.quorum.voters", self.voters.iter().map(|v| format!("{}@{}", v.id, v.addr())).collect::<Vec<_>>().join(",")),
            ("controller.listener.names", self.controller_listener_names.join(",")),
            (
                "listener.security.protocol.map",
                self.listener_security_protocol_map.iter().map(|(n, p)| format!("{n}:{}", p.name())).collect::<Vec<_>>().join(","),
            ),
            ("inter.broker.listener.name", self.inter_broker_listener_name.clone()),
            ("broker.rack", self.rack.clone().unwrap_or_default()),
            ("metrics.listener", self.metrics_listen_addr.as_ref().map(|a| format!("http://{a}{}", crate::metrics::http::PATH)).unwrap_or_default()),
            ("controller.quorum.election.timeout.ms", self.quorum_election_timeout_ms.to_string()),
            ("controller.quorum.fetch.timeout.ms", self.quorum_fetch_timeout_ms.to_string()),
            ("controller.quorum.election.backoff.max.ms", self.quorum_election_backoff_max_ms.to_string()),
            ("controller.quorum.request.timeout.ms", self.quorum_request_timeout_ms.to_string()),
            ("controller.quorum.retry.backoff.ms", self.quorum_retry_backoff_ms.to_string()),
            ("broker.heartbeat.interval.ms", self.broker_heartbeat_interval_ms.to_string()),
            ("broker.session.timeout.ms", self.broker_session_timeout_ms.to_string()),
            ("initial.broker.registration.timeout.ms", self.initial_broker_registration_timeout_ms.to_string()),
            ("metadata.log.max.record.bytes.between.snapshots", self.metadata_snapshot_max_new_record_bytes.to_string()),
            ("metadata.max.idle.interval.ms", self.metadata_max_idle_interval_ms.to_string()),
            ("metadata.log.segment.bytes", self.metadata_log_segment_bytes.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            ("default.replication.factor", self.default_replication_factor.to_string()),
            ("auto.create.topics.enable", self.auto_create_topics_enable.to_string()),
            ("max.request.partition.size.limit", self.max_request_partition_size_limit.to_string()),
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
            ("log.cleanup.policy", d.cleanup_policy.as_str().into()),
            ("log.cleaner.min.cleanable.ratio", gregor_storage::config::java_double(d.min_cleanable_dirty_ratio)),
            ("log.cleaner.min.compaction.lag.ms", d.min_compaction_lag_ms.to_string()),
            ("log.cleaner.max.compaction.lag.ms", d.max_compaction_lag_ms.to_string()),
            ("log.cleaner.delete.retention.ms", d.delete_retention_ms.to_string()),
            ("log.cleaner.enable", self.cleaner.enable.to_string()),
            ("log.cleaner.threads", self.cleaner.threads.to_string()),
            ("log.cleaner.io.max.bytes.per.second", gregor_storage::config::java_double(self.cleaner.io_max_bytes_per_second)),
            ("log.cleaner.dedupe.buffer.size", self.cleaner.dedupe_buffer_size.to_string()),
            ("log.cleaner.backoff.ms", self.cleaner.backoff_ms.to_string()),
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("offsets.topic.replication.factor", self.replication.offsets_topic_replication_factor.to_string()),
            ("min.insync.replicas", self.replication.min_insync_replicas.to_string()),
            ("replica.lag.time.max.ms", self.replication.lag_time_max_ms.to_string()),
            ("replica.fetch.wait.max.ms", self.replication.fetch_wait_max_ms.to_string()),
            ("replica.fetch.min.bytes", self.replication.fetch_min_bytes.to_string()),
            ("replica.fetch.max.bytes", self.replication.fetch_max_bytes.to_string()),
            ("replica.fetch.response.max.bytes", self.replication.fetch_response_max_bytes.to_string()),
            ("replica.fetch.backoff.ms", self.replication.fetch_backoff_ms.to_string()),
            ("num.replica.fetchers", self.replication.num_fetchers.to_string()),
            ("replica.high.watermark.checkpoint.interval.ms", self.replication.hw_checkpoint_interval_ms.to_string()),
            ("auto.leader.rebalance.enable", self.replication.auto_leader_rebalance.to_string()),
            ("unclean.leader.election.enable", self.replication.unclean_leader_election.to_string()),
            ("unclean.leader.election.interval.ms", self.replication.unclean_leader_election_interval_ms.to_string()),
            ("leader.imbalance.check.interval.seconds", (self.replication.leader_imbalance_check_interval_ms / 1000).to_string()),
            ("leader.replication.throttled.rate", self.replication.leader_throttled_rate.to_string()),
            ("follower.replication.throttled.rate", self.replication.follower_throttled_rate.to_string()),
            ("replication.quota.window.num", self.replication.quota_window_num.to_string()),
            ("replication.quota.window.size.seconds", (self.replication.quota_window_ms / 1000).to_string()),
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
    fn the_metrics_listener_is_an_http_address() {
        let addr = |v: &str| BrokerConfig::from_settings(&s(&[("metrics.listener", v)])).map(|c| c.metrics_listen_addr);
        assert_eq!(addr("http://127.0.0.1:9644/metrics").unwrap().as_deref(), Some("127.0.0.1:9644"));
        assert_eq!(addr("http://127.0.0.1:9644").unwrap().as_deref(), Some("127.0.0.1:9644"));
        assert_eq!(addr("127.0.0.1:0").unwrap().as_deref(), Some("127.0.0.1:0"));
        assert_eq!(addr("").unwrap(), None);
        assert_eq!(BrokerConfig::default().metrics_listen_addr, None, "off unless set");
        for bad in ["https://127.0.0.1:9644/metrics", "http://127.0.0.1:9644/other", "http://127.0.0.1", "127.0.0.1:http"] {
            let e = addr(bad).unwrap_err().to_string();
            assert!(e.contains("metrics.listener"), "{bad}: {e}");
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        for (k, v) in [("num.partitions", "0"), ("listeners", "nonsense"), ("auto.create.topics.enable", "yes"), ("log.segment.bytes", "abc")] {
            let e = BrokerConfig::from_settings(&s(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    fn node(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = s(&[
            ("node.id", "1"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"),
        ]);
        all.extend(s(extra));
        all
    }

    /// The refusal names `key` and says `why`.
    fn refused(settings: &[(String, String)], key: &str, why: &str) {
        let e = BrokerConfig::from_settings(settings).expect_err(&format!("accepted {settings:?}")).to_string();
        assert!(e.contains(&format!("configuration {key}:")), "{e} (expected key {key})");
        assert!(e.contains(why), "{e} (expected {why:?})");
    }

    #[test]
    fn embedded_default() {
        let c = BrokerConfig::from_settings(&[]).unwrap();
        assert_eq!(c.roles, Roles::COMBINED);
        assert_eq!(c.quorum(), QuorumMode::Embedded);
        assert_eq!(c.controller_listen_addr, None);
        assert_eq!(c.listeners, vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }]);
        assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
        assert_eq!(c.listener_security_protocol_map.get("CONTROLLER"), Some(&SecurityProtocol::Plaintext));
        assert_eq!(c.listener_security_protocol_map.get("SSL"), Some(&SecurityProtocol::Ssl));
        assert_eq!(c.metadata_log_dir, c.log_dir);
        assert_eq!(c.storage_dirs(), vec![PathBuf::from("gregor-data")]);
        assert_eq!(
            (c.quorum_election_timeout_ms, c.quorum_fetch_timeout_ms, c.quorum_election_backoff_max_ms, c.quorum_request_timeout_ms, c.quorum_retry_backoff_ms),
            (1000, 2000, 1000, 2000, 20)
        );
        assert_eq!((c.broker_heartbeat_interval_ms, c.broker_session_timeout_ms, c.initial_broker_registration_timeout_ms), (2000, 9000, 60_000));
        assert_eq!((c.metadata_snapshot_max_new_record_bytes, c.metadata_max_idle_interval_ms), (20_971_520, 500));
        // Any node id is a quorum of one; a wildcard listener advertises loopback.
        let c = BrokerConfig::from_settings(&s(&[("node.id", "0"), ("listeners", "PLAINTEXT://:9092")])).unwrap();
        assert_eq!((c.node_id, c.quorum()), (0, QuorumMode::Embedded));
        assert_eq!((c.listen_addr.as_str(), c.advertised_host.as_str()), ("0.0.0.0:9092", "127.0.0.1"));
    }

    #[test]
    fn combined_node_of_three() {
        let c = BrokerConfig::from_settings(&node(&[
            ("advertised.listeners", "PLAINTEXT://localhost:9092"),
            ("broker.rack", "r1"),
            ("log.dirs", "/d/a, /d/b"),
            ("metadata.log.dir", "/d/meta"),
            ("controller.quorum.fetch.timeout.ms", "500"),
        ]))
        .unwrap();
        let ids: Vec<i32> = c.voters.iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(c.voters[1], Voter { id: 2, host: "127.0.0.1".into(), port: 9193 });
        assert_eq!(c.quorum(), QuorumMode::Voters(&c.voters));
        assert_eq!(c.listen_addr, "127.0.0.1:9092");
        assert_eq!(c.controller_listen_addr.as_deref(), Some("127.0.0.1:9093"));
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("localhost", 9092));
        assert_eq!(c.advertised_listeners.len(), 1);
        assert_eq!(c.rack.as_deref(), Some("r1"));
        assert_eq!(c.quorum_fetch_timeout_ms, 500);
        assert_eq!(c.log_dirs, vec![PathBuf::from("/d/a"), PathBuf::from("/d/b")]);
        assert_eq!(c.storage_dirs(), vec![PathBuf::from("/d/a"), PathBuf::from("/d/b"), PathBuf::from("/d/meta")]);
        let described: BTreeMap<String, String> = c.describe().into_iter().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(described["listeners"], "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093");
        assert_eq!(described["process.roles"], "broker,controller");
        assert_eq!(described["controller.quorum.voters"], "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293");
    }

    #[test]
    fn broker_only_and_controller_only() {
        let b = BrokerConfig::from_settings(&s(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9392"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ]))
        .unwrap();
        assert_eq!(b.roles, Roles { broker: true, controller: false });
        assert_eq!((b.listen_addr.as_str(), b.controller_listen_addr.clone()), ("127.0.0.1:9392", None));
        let c = BrokerConfig::from_settings(&s(&[
            ("process.roles", "controller"),
            ("node.id", "1"),
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ]))
        .unwrap();
        assert_eq!(c.roles, Roles { broker: false, controller: true });
        assert_eq!(c.controller_listen_addr.as_deref(), Some("127.0.0.1:9093"));
        assert!(c.advertised_listeners.is_empty());
        // IPv6 voters and listeners.
        let v6 = BrokerConfig::from_settings(&s(&[
            ("listeners", "PLAINTEXT://[::1]:9092,CONTROLLER://[::1]:9093"),
            ("controller.quorum.voters", "1@[::1]:9093"),
        ]))
        .unwrap();
        assert_eq!((v6.voters[0].addr(), v6.listen_addr.as_str()), ("[::1]:9093".to_string(), "[::1]:9092"));
    }

    #[test]
    fn cluster_misconfigurations_are_refused_naming_the_key() {
        let voters = "controller.quorum.voters";
        let names = "controller.listener.names";
        // Voters.
        refused(&node(&[("controller.quorum.voters", "1@127.0.0.1:9093,1@127.0.0.1:9193")]), voters, "voter ID 1 appears more than once");
        refused(&node(&[("controller.quorum.voters", "x@127.0.0.1:9093")]), voters, "voter ID as an integer");
        refused(&node(&[("controller.quorum.voters", "1@127.0.0.1")]), voters, "{id}@{host}:{port}");
        refused(&node(&[("controller.quorum.voters", "127.0.0.1:9093")]), voters, "{id}@{host}:{port}");
        refused(&node(&[("controller.quorum.voters", "2@127.0.0.1:9193")]), voters, "the node id 1 must be included in the set of voters");
        refused(&node(&[("process.roles", "broker"), ("listeners", "PLAINTEXT://127.0.0.1:9092")]), voters, "node id 1 must not be included");
        refused(&s(&[("process.roles", "broker")]), voters, "must list the controllers when process.roles=broker");
        refused(&s(&[("process.roles", "controller"), ("listeners", "CONTROLLER://127.0.0.1:9093")]), voters, "process.roles=controller");
        refused(&s(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")]), voters, "controller listener CONTROLLER://");
        refused(&s(&[("controller.quorum.bootstrap.servers", "127.0.0.1:9093")]), "controller.quorum.bootstrap.servers", "not supported");
        // Roles.
        refused(&s(&[("process.roles", "broker,broker")]), "process.roles", "duplicate role");
        refused(&s(&[("process.roles", "zookeeper")]), "process.roles", "unknown process role");
        refused(&s(&[("process.roles", "")]), "process.roles", "must be broker, controller");
        // Controller listener.
        refused(&node(&[("listeners", "PLAINTEXT://127.0.0.1:9092")]), names, "must contain at least one value appearing in the 'listeners'");
        refused(&node(&[("controller.listener.names", "CONTROLLER,OTHER")]), names, "must only contain values appearing");
        refused(
            &node(&[("process.roles", "broker"), ("node.id", "4")]),
            names,
            "must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role",
        );
        refused(
            &node(&[("process.roles", "broker"), ("node.id", "4"), ("listeners", "PLAINTEXT://127.0.0.1:9392"), ("controller.listener.names", "")]),
            names,
            "must contain at least one value when running KRaft with just the broker role",
        );
        refused(
            &node(&[("process.roles", "controller")]),
            "listeners",
            "must only contain KRaft controller listeners from controller.listener.names when process.roles=controller",
        );
        // Listeners.
        refused(&node(&[("listeners", "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093")]), "listeners", "different name");
        refused(&node(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9092")]), "listeners", "different port");
        refused(&node(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,EXTERNAL://127.0.0.1:9094")]), "listeners", "no security protocol defined for listener EXTERNAL");
        refused(&node(&[("listeners", "SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")]), "listeners", "uses security protocol SSL");
        refused(
            &node(&[("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT")]),
            "listeners",
            "listener CONTROLLER uses security protocol SASL_PLAINTEXT",
        );
        refused(&node(&[("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT")]), "listeners", "an explicit map must name every listener");
        refused(&node(&[("listener.security.protocol.map", "PLAINTEXT:TLS")]), "listener.security.protocol.map", "invalid security protocol `TLS`");
        refused(
            &node(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,INTERNAL://127.0.0.1:9094"), ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT")]),
            "listeners",
            "only one broker listener is supported",
        );
        refused(&s(&[("listeners", "127.0.0.1:9092")]), "listeners", "is not NAME://host:port");
        // Advertised listeners and the inter-broker listener.
        refused(&node(&[("advertised.listeners", "PLAINTEXT://h:9092,CONTROLLER://h:9093")]), "advertised.listeners", "must not contain the controller listener CONTROLLER");
        refused(&node(&[("advertised.listeners", "EXTERNAL://h:9092")]), "advertised.listeners", "subset of the ones defined in listeners");
        refused(&node(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]), "advertised.listeners", "nonroutable meta-address 0.0.0.0");
        refused(&node(&[("inter.broker.listener.name", "CONTROLLER")]), "inter.broker.listener.name", "must be a listener name defined in advertised.listeners");
        refused(&node(&[("inter.broker.listener.name", "NOPE")]), "inter.broker.listener.name", "not found in listener.security.protocol.map");
        // Ids, directories, numbers.
        refused(&s(&[("node.id", "1"), ("broker.id", "2")]), "node.id", "same value as broker.id");
        refused(&s(&[("node.id", "-1")]), "node.id", "at least 0");
        refused(&s(&[("log.dirs", "/a,/a")]), "log.dirs", "listed twice");
        refused(&s(&[("log.dirs", "./a,a/")]), "log.dirs", "listed twice");
        let c = BrokerConfig::from_settings(&s(&[("log.dirs", "./a"), ("metadata.log.dir", "a")])).unwrap();
        assert_eq!(c.storage_dirs(), vec![PathBuf::from("./a")]);
        assert_eq!(c.metadata_log_dir, PathBuf::from("./a"));
        refused(&s(&[("metadata.log.dir", " ")]), "metadata.log.dir", "empty path");
        refused(&s(&[("controller.quorum.election.timeout.ms", "0")]), "controller.quorum.election.timeout.ms", "at least 1");
        refused(&s(&[("broker.session.timeout.ms", "-5")]), "broker.session.timeout.ms", "at least 1");
        refused(&s(&[("metadata.log.segment.bytes", "1048576")]), "metadata.log.segment.bytes", "metadata.log.segment.min.bytes");
        refused(&s(&[("auto.leader.rebalance.enable", "yes")]), "auto.leader.rebalance.enable", "true or false");
        refused(&s(&[("leader.imbalance.check.interval.seconds", "0")]), "leader.imbalance.check.interval.seconds", "at least 1");
        refused(&s(&[("leader.imbalance.per.broker.percentage", "101")]), "leader.imbalance.per.broker.percentage", "between 0 and 100");
        let c = BrokerConfig::from_settings(&s(&[("auto.leader.rebalance.enable", "false"), ("leader.imbalance.check.interval.seconds", "7"), ("leader.imbalance.per.broker.percentage", "20")])).unwrap();
        assert_eq!((c.replication.auto_leader_rebalance, c.replication.leader_imbalance_check_interval_ms), (false, 7_000));
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    }

    #[test]
    fn later_settings_win_and_log_dirs_beats_log_dir() {
        // An override of `listeners` after a file's replaces the whole list.
        let c = BrokerConfig::from_settings(&node(&[("listeners", "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2")])).unwrap();
        assert_eq!((c.listen_addr.as_str(), c.controller_listen_addr.as_deref()), ("127.0.0.1:1", Some("127.0.0.1:2")));
        let c = BrokerConfig::from_settings(&s(&[("log.dirs", "/a"), ("log.dir", "/b")])).unwrap();
        assert_eq!(c.log_dir, PathBuf::from("/a"));
        // Port 0 ("any free port") may repeat.
        BrokerConfig::from_settings(&node(&[("listeners", "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0")])).unwrap();
    }

    #[test]
    fn properties_syntax() {
        let p = parse_properties("# c\nnode.id=1\nlisteners : PLAINTEXT://:9092\n\n", "f").unwrap();
        assert_eq!(p, s(&[("node.id", "1"), ("listeners", "PLAINTEXT://:9092")]));
        assert!(parse_properties("novalue\n", "f").is_err());
    }
}
