//! The `gregor` binary: `gregor server` runs a node (broker and/or controller); `storage` formats
//! and inspects data directories; `topics`, `groups`, `produce` and `consume` are Kafka clients
//! for the quickstart, and `cluster` describes the brokers and the metadata quorum. This file
//! owns the real runtime, the real disk, clock and signals, and is therefore one of the I/O
//! adapters.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gregor_server::cli;
use gregor_server::config::{parse_properties, BrokerConfig, QuorumMode};
use gregor_server::listener::Shutdown;
use kafka_protocol::records::Compression;

#[derive(Parser)]
#[command(name = "gregor", version, about = "A Kafka-compatible event log")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: with no flags, a single-node cluster (roles broker,controller, a quorum of
    /// one, formatted on first start); with a config naming `process.roles` and
    /// `controller.quorum.voters`, one broker and/or controller of a cluster (format its
    /// directories first with `gregor storage format`).
    Server {
        /// A Kafka-style .properties file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// key=value settings with Kafka's names, applied after --config (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        overrides: Vec<(String, String)>,
    },
    /// Format and inspect data directories (meta.properties), as kafka-storage.sh.
    Storage {
        #[command(subcommand)]
        action: StorageAction,
    },
    /// Create, list, describe, delete topics and change their configs.
    Topics {
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap_server: String,
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// The cluster: its brokers and active controller, and the KRaft metadata quorum.
    Cluster {
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap_server: String,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// List, describe, reset the offsets of, and delete consumer groups.
    Groups {
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap_server: String,
        #[command(subcommand)]
        action: GroupsAction,
    },
    /// Move partition replicas between brokers.
    Partitions {
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap_server: String,
        #[command(subcommand)]
        action: PartitionsAction,
    },
    /// Elect partition leaders (preferred or unclean), as kafka-leader-election.sh.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["all_topic_partitions", "topic", "path_to_json_file"])))]
    LeaderElection {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        /// preferred or unclean.
        #[arg(long)]
        election_type: String,
        /// Every partition of every topic.
        #[arg(long)]
        all_topic_partitions: bool,
        /// One topic (with --partition).
        #[arg(long, requires = "partition")]
        topic: Option<String>,
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// {"partitions": [{"topic": "t", "partition": 0}, ...]}
        #[arg(long)]
        path_to_json_file: Option<PathBuf>,
    },
    /// Produce one event per line of standard input.
    Produce {
        topic: String,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        /// parse.key=true, key.separator=: (repeatable).
        #[arg(long = "property", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        properties: Vec<(String, String)>,
        /// Send every event to this partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Add this header to every event (repeatable).
        #[arg(long = "header", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        headers: Vec<(String, String)>,
        /// all (-1), 1 or 0.
        #[arg(long, default_value = "all", value_parser = parse_acks)]
        acks: i16,
        /// none, gzip, snappy, lz4 or zstd.
        #[arg(long = "compression-codec", default_value = "none", value_parser = parse_compression)]
        compression: Compression,
    },
    /// Print a topic's events.
    Consume {
        topic: String,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        /// Start at the earliest offset instead of the end.
        #[arg(long)]
        from_beginning: bool,
        /// Read only this partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Start at this offset (needs --partition); -2 earliest, -1 latest.
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<i64>,
        /// Exit after this many events.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Consume as a member of this consumer group, committing progress to it.
        #[arg(long)]
        group: Option<String>,
        /// Exit when no event arrives for this long.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// print.key=true, print.partition=true, print.offset=true, print.timestamp=true,
        /// print.headers=true, key.separator=SEP (repeatable).
        #[arg(long = "property", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        properties: Vec<(String, String)>,
    },
}

#[derive(Subcommand)]
enum StorageAction {
    /// Print a new random cluster id (a Kafka UUID) for `format --cluster-id`.
    RandomUuid,
    /// Write meta.properties into every log directory and the metadata log directory of a
    /// node's config. Run on every node, with the same cluster id, before the first start.
    Format {
        /// The cluster id (from `gregor storage random-uuid`), the same on every node.
        #[arg(short = 't', long)]
        cluster_id: String,
        /// The node's .properties file.
        #[arg(short = 'c', long)]
        config: PathBuf,
        /// Skip directories that are already formatted (for this cluster and node) and format the others.
        #[arg(short = 'g', long)]
        ignore_formatted: bool,
        /// key=value settings applied after --config (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        overrides: Vec<(String, String)>,
    },
    /// Print each directory's meta.properties, or that it is not formatted.
    Info {
        /// The node's .properties file.
        #[arg(short = 'c', long)]
        config: PathBuf,
        /// key=value settings applied after --config (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        overrides: Vec<(String, String)>,
    },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create a topic.
    Create {
        topic: String,
        #[arg(long)]
        partitions: Option<i32>,
        #[arg(long)]
        replication_factor: Option<i16>,
        /// Topic config override key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        configs: Vec<(String, String)>,
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topic names.
    List,
    /// Describe one topic, or all.
    Describe {
        topic: Option<String>,
        /// Only partitions whose ISR is smaller than their replica set.
        #[arg(long)]
        under_replicated_partitions: bool,
        /// Only partitions without a live leader.
        #[arg(long)]
        unavailable_partitions: bool,
        /// Only partitions whose ISR is smaller than the topic's min.insync.replicas.
        #[arg(long)]
        under_min_isr_partitions: bool,
        /// Only partitions whose ISR is exactly the topic's min.insync.replicas.
        #[arg(long)]
        at_min_isr_partitions: bool,
    },
    /// Delete a topic.
    Delete { topic: String },
    /// Set or remove topic config overrides.
    AlterConfig {
        topic: String,
        #[arg(long = "add-config", value_name = "KEY=VALUE", value_parser = cli::parse_kv)]
        add: Vec<(String, String)>,
        #[arg(long = "delete-config", value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PartitionsAction {
    /// Generate, execute, verify, cancel or list replica reassignments, as
    /// kafka-reassign-partitions.sh.
    #[command(group(clap::ArgGroup::new("mode").required(true).args(["generate", "execute", "verify", "cancel", "list"])))]
    Reassign {
        /// {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}
        #[arg(long, required_if_eq_any([("execute", "true"), ("verify", "true"), ("cancel", "true")]))]
        reassignment_json_file: Option<PathBuf>,
        /// With --generate: {"version":1,"topics":[{"topic":"t"}]}
        #[arg(long, requires = "generate")]
        topics_to_move_json_file: Option<PathBuf>,
        /// With --generate: the brokers to place the replicas on, e.g. 1,2,3.
        #[arg(long, requires = "generate", value_delimiter = ',')]
        broker_list: Vec<i32>,
        /// Propose an assignment of the topics' partitions over --broker-list.
        #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
        generate: bool,
        /// Start the reassignments of the file.
        #[arg(long)]
        execute: bool,
        /// Report whether the file's reassignments completed.
        #[arg(long)]
        verify: bool,
        /// Cancel the file's reassignments still in progress.
        #[arg(long)]
        cancel: bool,
        /// List every reassignment in progress.
        #[arg(long)]
        list: bool,
        /// With --execute: start even while other reassignments are in progress.
        #[arg(long, requires = "execute")]
        additional: bool,
        /// With --execute: throttle replication for the moves to this many bytes/s per broker
        /// (leader.replication.throttled.rate / follower.replication.throttled.rate) until
        /// --verify sees them complete.
        #[arg(long, requires = "execute")]
        throttle: Option<u64>,
        /// With --verify: keep the throttles when the reassignments are complete.
        #[arg(long, requires = "verify")]
        preserve_throttles: bool,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// The cluster id, the active controller and every broker (endpoint, rack, fenced or not,
    /// partitions it leads).
    Describe,
    /// The KRaft metadata quorum, as `kafka-metadata-quorum.sh describe`: --status or --replication.
    #[command(group(clap::ArgGroup::new("view").required(true).args(["status", "replication"])))]
    Quorum {
        /// A summary: leader, epoch, high watermark, follower lag, voters and observers.
        #[arg(long)]
        status: bool,
        /// Every voter's and observer's log end offset, lag and last fetch and caught-up times.
        #[arg(long)]
        replication: bool,
        /// With --replication: times as "N ms ago".
        #[arg(long, conflicts_with = "status")]
        human_readable: bool,
    },
}

#[derive(Subcommand)]
enum GroupsAction {
    /// List group ids.
    List,
    /// Members, assignments, committed offsets, log end and lag per partition.
    Describe { group: String },
    /// Move a group's committed offsets on a topic (dry run unless --execute; the group must be inactive).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        #[arg(long, group = "target")]
        to_earliest: bool,
        #[arg(long, group = "target")]
        to_latest: bool,
        #[arg(long, group = "target", allow_hyphen_values = true)]
        to_offset: Option<i64>,
        /// YYYY-MM-DDTHH:mm:SS.sss (UTC).
        #[arg(long, group = "target", value_parser = cli::groups::parse_datetime)]
        to_datetime: Option<i64>,
        /// Apply the change (default: only show it).
        #[arg(long)]
        execute: bool,
        /// Only show the change (the default).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
    },
    /// Delete an inactive group and its committed offsets.
    Delete { group: String },
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("acks must be all, -1, 1 or 0, not {s:?}")),
    }
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!("unknown compression codec {s:?}")),
    }
}

/// `node.id` and `process.roles` of this server, on every log line once its config is read, so
/// that the logs of a cluster's nodes can be told apart when merged.
static LOG_TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The default line format, prefixed with [`LOG_TAG`].
struct Tagged;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Tagged
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if let Some(tag) = LOG_TAG.get() {
            write!(writer, "{tag} ")?;
        }
        tracing_subscriber::fmt::format::Format::default().format_event(ctx, writer, event)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GREGOR_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).event_format(Tagged).init();
}

fn load_config(path: Option<PathBuf>, overrides: Vec<(String, String)>) -> anyhow::Result<BrokerConfig> {
    let mut settings = Vec::new();
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        settings.extend(parse_properties(&text, &path.display().to_string())?);
    }
    settings.extend(overrides);
    let config = BrokerConfig::from_settings(&settings)?;
    for k in &config.unknown_keys {
        tracing::warn!(key = %k, "unknown configuration key ignored");
    }
    Ok(config)
}

/// A seed from real entropy (wall clock and process id): this binary is the I/O adapter that
/// gives the seeded library code its randomness.
fn entropy_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The wall clock, for tools that print times relative to now.
fn wall_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn run_storage(action: StorageAction) -> anyhow::Result<()> {
    match action {
        StorageAction::RandomUuid => {
            println!("{}", cli::storage::random_uuid(entropy_seed()));
            Ok(())
        }
        StorageAction::Format { cluster_id, config, ignore_formatted, overrides } => {
            let config = load_config(Some(config), overrides)?;
            cli::storage::format(&config, &cluster_id, ignore_formatted, entropy_seed())
        }
        StorageAction::Info { config, overrides } => cli::storage::info(&load_config(Some(config), overrides)?),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run_server(config: Option<PathBuf>, overrides: Vec<(String, String)>) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config = load_config(config, overrides)?;
    let roles: Vec<&str> = [(config.roles.broker, "broker"), (config.roles.controller, "controller")].into_iter().filter(|r| r.0).map(|r| r.1).collect();
    let _ = LOG_TAG.set(format!("node={} roles={}", config.node_id, roles.join(",")));
    // Kafka's log-directory lock on every data directory, held until the process exits (however
    // it exits): a second node on the same directory refuses to start instead of writing the
    // same logs.
    let _log_dir_locks = config
        .storage_dirs()
        .iter()
        .map(|dir| gregor_storage::FileDisk::new().lock_dir(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = Arc::new(Shutdown::default());
        {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("signal received");
                shutdown.trigger();
            });
        }
        let seed = entropy_seed();
        let disk = Arc::new(gregor_storage::FileDisk::new());
        let clock = Arc::new(gregor_core::clock::SystemClock::new());
        let data_dir = std::path::absolute(&config.log_dir).unwrap_or_else(|_| config.log_dir.clone());
        gregor_server::server::run(config, disk, clock, seed, shutdown, |broker, addr| {
            tracing::info!(
                listening = %addr,
                advertised = %format!("{}:{}", broker.config.advertised_host, broker.config.advertised_port),
                data_dir = %data_dir.display(),
                cluster_id = %broker.cluster_id,
                node_id = broker.config.node_id,
                roles = broker.config.roles.as_kafka_str(),
                quorum = %match broker.config.quorum() {
                    QuorumMode::Embedded => "single-node (this node is the only voter)".to_string(),
                    QuorumMode::Voters(v) => v.iter().map(|v| format!("{}@{}", v.id, v.addr())).collect::<Vec<_>>().join(","),
                },
                startup_ms = started.elapsed().as_millis() as u64,
                "gregor broker ready"
            );
            eprintln!("Gregor broker (node {}) listening on {addr}; data in {}", broker.config.node_id, data_dir.display());
        })
        .await
    })
}

fn main() {
    let args = Args::parse();
    init_logging();
    let result = match args.command {
        Command::Server { config, overrides } => run_server(config, overrides),
        Command::Storage { action } => run_storage(action),
        other => {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            };
            runtime.block_on(run_tool(other))
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run_tool(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server { .. } | Command::Storage { .. } => unreachable!("handled in main"),
        Command::Topics { bootstrap_server, action } => match action {
            TopicsAction::Create { topic, partitions, replication_factor, configs, if_not_exists } => {
                cli::topics::create(&bootstrap_server, &topic, partitions, replication_factor, &configs, if_not_exists).await
            }
            TopicsAction::List => cli::topics::list(&bootstrap_server).await,
            TopicsAction::Describe { topic, under_replicated_partitions, unavailable_partitions, under_min_isr_partitions, at_min_isr_partitions } => {
                let filter = cli::topics::PartitionFilter {
                    under_replicated: under_replicated_partitions,
                    unavailable: unavailable_partitions,
                    under_min_isr: under_min_isr_partitions,
                    at_min_isr: at_min_isr_partitions,
                };
                cli::topics::describe(&bootstrap_server, topic.as_deref(), filter).await
            }
            TopicsAction::Delete { topic } => cli::topics::delete(&bootstrap_server, &topic).await,
            TopicsAction::AlterConfig { topic, add, delete } => cli::topics::alter_config(&bootstrap_server, &topic, &add, &delete).await,
        },
        Command::Cluster { bootstrap_server, action } => match action {
            ClusterAction::Describe => cli::cluster::describe(&bootstrap_server).await,
            ClusterAction::Quorum { status, replication: _, human_readable } => {
                let view = if status {
                    cli::cluster::QuorumView::Status
                } else {
                    cli::cluster::QuorumView::Replication { human_readable_now_ms: human_readable.then(wall_now_ms) }
                };
                cli::cluster::quorum(&bootstrap_server, view).await
            }
        },
        Command::Groups { bootstrap_server, action } => match action {
            GroupsAction::List => cli::groups::list(&bootstrap_server).await,
            GroupsAction::Describe { group } => cli::groups::describe(&bootstrap_server, &group).await,
            GroupsAction::Delete { group } => cli::groups::delete(&bootstrap_server, &group).await,
            GroupsAction::ResetOffsets { group, topic, to_earliest, to_latest, to_offset, to_datetime, execute, dry_run: _ } => {
                use cli::groups::ResetTo;
                let to = match (to_earliest, to_latest, to_offset, to_datetime) {
                    (true, _, _, _) => ResetTo::Earliest,
                    (_, true, _, _) => ResetTo::Latest,
                    (_, _, Some(o), _) => ResetTo::Offset(o),
                    (_, _, _, Some(t)) => ResetTo::Datetime(t),
                    _ => anyhow::bail!("choose one of --to-earliest, --to-latest, --to-offset, --to-datetime"),
                };
                cli::groups::reset_offsets(&bootstrap_server, &group, &topic, to, execute).await
            }
        },
        Command::Partitions { bootstrap_server, action } => match action {
            PartitionsAction::Reassign {
                reassignment_json_file,
                topics_to_move_json_file,
                broker_list,
                generate,
                execute,
                verify,
                cancel,
                list,
                additional,
                throttle,
                preserve_throttles,
            } => {
                use cli::reassign;
                let read = |p: &Option<PathBuf>| -> anyhow::Result<String> {
                    let p = p.as_ref().expect("required by the argument rules");
                    std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
                };
                if generate {
                    return reassign::generate(&bootstrap_server, &read(&topics_to_move_json_file)?, &broker_list).await;
                }
                if list {
                    return reassign::list(&bootstrap_server).await;
                }
                let plan = reassign::parse_reassignment(&read(&reassignment_json_file)?)?;
                match (execute, verify, cancel) {
                    (true, _, _) => reassign::execute(&bootstrap_server, &plan, additional, throttle).await,
                    (_, true, _) => reassign::verify(&bootstrap_server, &plan, preserve_throttles).await,
                    _ => reassign::cancel(&bootstrap_server, &plan).await,
                }
            }
        },
        Command::LeaderElection { bootstrap_server, election_type, all_topic_partitions, topic, partition, path_to_json_file } => {
            use cli::leader_election::{read_json_file, run, Partitions};
            let which = match (all_topic_partitions, topic, partition, path_to_json_file) {
                (true, ..) => Partitions::All,
                (_, Some(t), Some(p), _) => Partitions::Named(vec![(t, p)]),
                (_, _, _, Some(path)) => Partitions::Named(read_json_file(&path)?),
                _ => anyhow::bail!("one of --all-topic-partitions, --topic with --partition, or --path-to-json-file is required"),
            };
            run(&bootstrap_server, &election_type, which).await
        }
        Command::Produce { topic, bootstrap_server, properties, partition, headers, acks, compression } => {
            cli::produce::run(cli::produce::ProduceOptions {
                bootstrap: bootstrap_server,
                topic,
                partition,
                properties: properties.into_iter().collect::<BTreeMap<_, _>>(),
                headers,
                acks,
                compression,
            })
            .await
        }
        Command::Consume { topic, bootstrap_server, from_beginning, partition, offset, max_messages, group, timeout_ms, properties } => {
            cli::consume::run(cli::consume::ConsumeOptions {
                bootstrap: bootstrap_server,
                group,
                topic,
                partition,
                offset,
                from_beginning,
                max_messages,
                timeout_ms,
                properties: properties.into_iter().collect(),
            })
            .await
        }
    }
}
