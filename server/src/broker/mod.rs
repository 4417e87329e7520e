//! The broker's state: topics, their partitions, and the admin operations that change them.
//!
//! Guarantees:
//! * Topic metadata changes (create, delete, add partitions, config changes) are persisted with
//!   an atomic replace of the metadata file *before* they are visible to clients, and are
//!   serialized by one admin lock so two concurrent creates cannot both succeed.
//! * Partition directories that the metadata does not name (left by a crash during a delete)
//!   are removed at startup, so a re-created topic never inherits old data.
//! * No lock is held across an `.await` except the admin lock, which guards only metadata.

pub mod group_store;
pub mod groups;
pub mod metadata_store;
pub mod offsets;
pub mod partition;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gregor_core::clock::SharedClock;
use gregor_core::disk::SharedDisk;
use gregor_core::topic::validate_topic_name;
use gregor_storage::{ConfigError as LogConfigError, LogConfig, PartitionLog};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::errors;
use metadata_store::{MetadataImage, TopicRecord};
pub use partition::{Offsets, Partition, PartitionError};

/// Most partitions one topic may have (bounds memory and file handles per request).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Producer ids reserved durably at a time (see [`Broker::allocate_producer_id`]).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A topic and its partitions. Replaced as a whole (copy on write) when it changes.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Topic-level config overrides, as set by users.
    pub configs: BTreeMap<String, String>,
    /// The effective log configuration (broker defaults + overrides).
    pub log_config: LogConfig,
    pub partitions: Vec<Arc<Partition>>,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// An admin failure: a Kafka error code and a message for the client.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub code: i16,
    pub message: String,
}

impl AdminError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        AdminError { code, message: message.into() }
    }
}

fn config_error(e: LogConfigError) -> AdminError {
    AdminError::new(errors::INVALID_CONFIG, e.to_string())
}

#[derive(Default)]
struct Registry {
    topics: BTreeMap<String, Arc<Topic>>,
    ids: HashMap<Uuid, String>,
    image: MetadataImage,
    /// Producer ids left in the current durably reserved block (empty: reserve a new block).
    producer_ids: std::ops::Range<i64>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(transparent)]
    Metadata(#[from] metadata_store::MetadataError),
    #[error("cannot open partition {0}: {1}")]
    Partition(String, String),
    #[error("invalid stored config for topic {0}: {1}")]
    TopicConfig(String, String),
}

/// The broker.
pub struct Broker {
    pub config: BrokerConfig,
    pub clock: SharedClock,
    pub disk: SharedDisk,
    pub cluster_id: String,
    registry: Mutex<Registry>,
    /// Serializes metadata changes (held across the metadata file write).
    admin: tokio::sync::Mutex<()>,
    /// Wakes long-polling fetches when any high watermark moves.
    pub hw_changed: Arc<Notify>,
    rng: Mutex<SmallRng>,
    /// Committed offsets and group metadata (the cache of `__consumer_offsets`).
    pub offsets: offsets::OffsetCache,
    /// The consumer group coordinator.
    pub groups: groups::GroupService,
    /// Set when shutdown begins: long polls answer at once instead of waiting.
    closing: std::sync::atomic::AtomicBool,
    /// Topic log defaults: the static `log.*` settings with dynamic broker overrides applied.
    log_defaults: Mutex<LogConfig>,
}

/// Broker settings that AlterConfigs may change at runtime (they only set topic defaults).
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "message.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "log.cleanup.policy",
];

fn partition_dir(root: &Path, topic: &str, index: i32) -> PathBuf {
    root.join(format!("{topic}-{index}"))
}

/// Kafka-style cluster id: 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id(rng: &mut SmallRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v: u128 = rng.random();
    (0..22).map(|i| ALPHABET[((v >> (i * 6)) & 63) as usize] as char).collect()
}

impl Broker {
    /// Opens (or initialises) the data directory, recovers every partition and starts their
    /// flushers. `seed` drives every random choice (cluster and topic ids).
    pub async fn open(config: BrokerConfig, disk: SharedDisk, clock: SharedClock, seed: u64) -> Result<Arc<Broker>, StartError> {
        let dir = config.log_dir.clone();
        let data_dir_err = |source| StartError::DataDir { dir: dir.display().to_string(), source };
        disk.create_dir_all(&dir).map_err(data_dir_err)?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let member_id_epoch = i64::from(rng.random::<u32>());

        let props_path = dir.join("meta.properties");
        let cluster_id = match gregor_core::disk::read_all(disk.as_ref(), &props_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes)
                .lines()
                .find_map(|l| l.strip_prefix("cluster.id=").map(str::to_string))
                .unwrap_or_else(|| new_cluster_id(&mut rng)),
            Err(_) => {
                let id = new_cluster_id(&mut rng);
                let text = format!("version=1\ncluster.id={id}\nnode.id={}\n", config.node_id);
                gregor_core::disk::write_atomic(disk.as_ref(), &props_path, text.as_bytes()).map_err(data_dir_err)?;
                id
            }
        };

        let image = MetadataImage::load(disk.as_ref(), &dir)?;
        let hw_changed = Arc::new(Notify::new());
        let log_defaults = effective_log_defaults(&config, &image.broker_configs).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring invalid stored dynamic broker config");
            config.log_defaults.clone()
        });
        let config_group = (
            config.group_min_session_timeout_ms,
            config.group_max_session_timeout_ms,
            config.group_initial_rebalance_delay_ms,
            config.group_max_size as usize,
        );
        let broker = Arc::new(Broker {
            config,
            clock,
            disk,
            cluster_id,
            registry: Mutex::new(Registry::default()),
            admin: tokio::sync::Mutex::new(()),
            hw_changed,
            rng: Mutex::new(rng),
            log_defaults: Mutex::new(log_defaults),
            closing: std::sync::atomic::AtomicBool::new(false),
            offsets: offsets::OffsetCache::default(),
            groups: groups::GroupService::new(gregor_core::group::GroupConfig {
                min_session_timeout_ms: config_group.0,
                max_session_timeout_ms: config_group.1,
                initial_rebalance_delay_ms: config_group.2,
                max_size: config_group.3,
            }),
        });

        // Remove partition directories the metadata does not know (interrupted deletes).
        let mut expected = std::collections::BTreeSet::new();
        for (name, t) in &image.topics {
            for p in 0..t.partitions {
                expected.insert(format!("{name}-{p}"));
            }
        }
        for entry in broker.disk.list_dir(&dir).map_err(data_dir_err)? {
            let is_partition_dir = entry.rsplit_once('-').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if is_partition_dir && !expected.contains(&entry) {
                tracing::warn!(dir = %entry, "removing partition directory of a deleted topic");
                broker.disk.remove_dir_all(&dir.join(&entry)).map_err(data_dir_err)?;
            }
        }

        let mut topics = Vec::new();
        for (name, rec) in &image.topics {
            let log_config = log_config_for(&broker.log_defaults(), &rec.configs)
                .map_err(|e| StartError::TopicConfig(name.clone(), e.to_string()))?;
            let partitions = broker
                .open_partitions(name, 0..rec.partitions, &log_config)
                .map_err(|e| StartError::Partition(name.clone(), e.message))?;
            topics.push(Topic { name: name.clone(), id: rec.id, configs: rec.configs.clone(), log_config, partitions });
        }
        broker.sync_partition_dir_entries(topics.iter().flat_map(|t| t.partitions.iter()));
        {
            let mut reg = broker.registry.lock().expect("registry lock");
            for t in topics {
                reg.ids.insert(t.id, t.name.clone());
                reg.topics.insert(t.name.clone(), Arc::new(t));
            }
            reg.image = image;
        }
        let loaded = broker.load_offsets();
        if loaded > 0 {
            tracing::info!(records = loaded, "loaded {}", offsets::OFFSETS_TOPIC);
        }
        let groups = broker.groups.load(broker.clock.monotonic_ms() as i64, member_id_epoch, broker.offsets.group_metadata());
        if groups > 0 {
            tracing::info!(groups, "restored consumer groups");
        }
        Ok(broker)
    }

    /// Makes the partition directories' entries in the data directory durable with one sync,
    /// so each partition need not sync the data directory at its first write. If the sync
    /// fails, each partition still does it itself before its first write.
    fn sync_partition_dir_entries<'a>(&self, partitions: impl Iterator<Item = &'a Arc<Partition>>) {
        if let Err(e) = self.disk.sync_dir(&self.config.log_dir) {
            tracing::warn!(error = %e, "could not sync the data directory; partitions sync it at their first write");
            return;
        }
        for p in partitions {
            let _ = p.with_log_mut(|log, _| {
                log.parent_entry_synced();
                Ok(())
            });
        }
    }

    fn open_partitions(&self, topic: &str, range: std::ops::Range<i32>, log_config: &LogConfig) -> Result<Vec<Arc<Partition>>, AdminError> {
        let mut out = Vec::new();
        for index in range {
            let dir = partition_dir(&self.config.log_dir, topic, index);
            let (log, report) = PartitionLog::open(self.disk.clone(), dir, log_config.clone(), self.clock.wall_ms())
                .map_err(|e| AdminError::new(errors::KAFKA_STORAGE_ERROR, format!("{topic}-{index}: {e}")))?;
            if !report.clean_shutdown || report.truncated_bytes > 0 {
                tracing::info!(topic, partition = index, ?report, "recovered partition");
            }
            let p = Partition::new(topic.to_string(), index, log, self.hw_changed.clone(), self.clock.monotonic_ms());
            tokio::spawn(p.clone().run_flusher());
            out.push(p);
        }
        Ok(out)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry lock poisoned")
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.registry().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        let reg = self.registry();
        reg.ids.get(id).and_then(|n| reg.topics.get(n)).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.registry().topics.values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(index).ok().and_then(|i| t.partitions.get(i).cloned())
    }

    pub fn broker_config_overrides(&self) -> BTreeMap<String, String> {
        self.registry().image.broker_configs.clone()
    }

    fn persist(&self, image: &MetadataImage) -> Result<(), AdminError> {
        image
            .store(self.disk.as_ref(), &self.config.log_dir)
            .map_err(|e| AdminError::new(errors::KAFKA_STORAGE_ERROR, format!("cannot persist metadata: {e}")))
    }

    /// Hands out a producer id never handed out before, even across restarts: ids come from
    /// blocks of [`PRODUCER_ID_BLOCK_SIZE`] whose end is persisted before the first id of the
    /// block is used (what is left of a block at a restart is skipped).
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        if let Some(id) = self.registry().producer_ids.next() {
            return Ok(id);
        }
        let _admin = self.admin.lock().await;
        if let Some(id) = self.registry().producer_ids.next() {
            return Ok(id);
        }
        let mut image = self.registry().image.clone();
        let start = image.producer_id_block_end;
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or_else(|| AdminError::new(errors::KAFKA_STORAGE_ERROR, "producer ids exhausted"))?;
        image.producer_id_block_end = end;
        self.persist(&image)?;
        let mut reg = self.registry();
        reg.image = image;
        reg.producer_ids = start + 1..end;
        tracing::info!(start, end, "reserved producer id block");
        Ok(start)
    }

    /// Checks a topic creation without doing it; returns the effective log config.
    pub fn validate_create(&self, name: &str, partitions: i32, replication_factor: i16, configs: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
        validate_topic_name(name).map_err(|e| AdminError::new(errors::INVALID_TOPIC_EXCEPTION, e.to_string()))?;
        if self.topic(name).is_some() {
            return Err(AdminError::new(errors::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
        }
        if partitions < 1 || partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}.")));
        }
        if replication_factor < 1 {
            return Err(AdminError::new(errors::INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."));
        }
        if replication_factor > 1 {
            return Err(AdminError::new(
                errors::INVALID_REPLICATION_FACTOR,
                format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        check_config_values(configs)?;
        log_config_for(&self.log_defaults(), configs).map_err(config_error)
    }

    /// Creates a topic (or only validates it).
    pub async fn create_topic(&self, name: &str, partitions: i32, replication_factor: i16, configs: BTreeMap<String, String>, validate_only: bool) -> Result<Arc<Topic>, AdminError> {
        let new = NewTopic { name: name.to_string(), partitions, replication_factor, configs };
        self.create_topics(vec![new], validate_only).await.pop().expect("one result per topic")
    }

    /// Creates topics (or only validates them), one result per topic in order. The metadata is
    /// persisted once for the whole batch, so one CreateTopics request of a thousand topics
    /// costs one metadata write, not a thousand.
    pub async fn create_topics(&self, new: Vec<NewTopic>, validate_only: bool) -> Vec<Result<Arc<Topic>, AdminError>> {
        let _admin = self.admin.lock().await;
        let mut results: Vec<Option<Result<Arc<Topic>, AdminError>>> = vec![None; new.len()];
        let mut image = self.registry().image.clone();
        let mut accepted = Vec::new();
        for (i, t) in new.into_iter().enumerate() {
            let log_config = match self.validate_create(&t.name, t.partitions, t.replication_factor, &t.configs) {
                Ok(lc) => lc,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            // The same name twice in one batch: the first one wins.
            if image.topics.contains_key(&t.name) {
                results[i] = Some(Err(AdminError::new(errors::TOPIC_ALREADY_EXISTS, format!("Topic '{}' already exists.", t.name))));
                continue;
            }
            let id = loop {
                let id = Uuid::from_u128(self.rng.lock().expect("rng lock").random());
                if !id.is_nil() && self.topic_by_id(&id).is_none() && image.topics.values().all(|r| r.id != id) {
                    break id;
                }
            };
            if validate_only {
                let topic = Topic { name: t.name, id, configs: t.configs, log_config, partitions: Vec::new() };
                results[i] = Some(Ok(Arc::new(topic)));
                continue;
            }
            for p in 0..t.partitions {
                let dir = partition_dir(&self.config.log_dir, &t.name, p);
                if self.disk.exists(&dir) {
                    let _ = self.disk.remove_dir_all(&dir);
                }
            }
            image.topics.insert(t.name.clone(), TopicRecord { id, partitions: t.partitions, configs: t.configs.clone() });
            accepted.push((i, t, id, log_config));
        }
        if accepted.is_empty() {
            return results.into_iter().map(|r| r.expect("every topic answered")).collect();
        }
        if let Err(e) = self.persist(&image) {
            for (i, ..) in &accepted {
                results[*i] = Some(Err(e.clone()));
            }
            return results.into_iter().map(|r| r.expect("every topic answered")).collect();
        }
        let mut created = Vec::new();
        for (i, t, id, log_config) in accepted {
            match self.open_partitions(&t.name, 0..t.partitions, &log_config) {
                Ok(parts) => {
                    tracing::info!(topic = %t.name, partitions = t.partitions, "created topic");
                    let topic = Arc::new(Topic { name: t.name, id, configs: t.configs, log_config, partitions: parts });
                    created.push(topic.clone());
                    results[i] = Some(Ok(topic));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        self.sync_partition_dir_entries(created.iter().flat_map(|t| t.partitions.iter()));
        let mut reg = self.registry();
        for topic in created {
            reg.ids.insert(topic.id, topic.name.clone());
            reg.topics.insert(topic.name.clone(), topic);
        }
        reg.image = image;
        drop(reg);
        results.into_iter().map(|r| r.expect("every topic answered")).collect()
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        let mut image = self.registry().image.clone();
        image.topics.remove(name);
        self.persist(&image)?;
        {
            let mut reg = self.registry();
            reg.topics.remove(name);
            reg.ids.remove(&topic.id);
            reg.image = image;
        }
        for p in &topic.partitions {
            if let Some(log) = p.take_for_delete() {
                if let Err(e) = log.delete() {
                    tracing::warn!(topic = name, partition = p.index, error = %e, "could not remove partition data; it is removed at next start");
                }
            }
        }
        self.hw_changed.notify_waiters();
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), AdminError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
        }
        if count == current {
            return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Topic already has {current} partitions.")));
        }
        if count > PARTITIONS_PER_TOPIC_MAX {
            return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Number of partitions must be at most {PARTITIONS_PER_TOPIC_MAX}.")));
        }
        if validate_only {
            return Ok(());
        }
        let mut image = self.registry().image.clone();
        if let Some(rec) = image.topics.get_mut(name) {
            rec.partitions = count;
        }
        self.persist(&image)?;
        let mut parts = topic.partitions.clone();
        parts.extend(self.open_partitions(name, current..count, &topic.log_config)?);
        let new_topic = Arc::new(Topic { name: topic.name.clone(), id: topic.id, configs: topic.configs.clone(), log_config: topic.log_config.clone(), partitions: parts });
        let mut reg = self.registry();
        reg.topics.insert(name.to_string(), new_topic);
        reg.image = image;
        Ok(())
    }

    /// Replaces a topic's config overrides.
    pub async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        check_config_values(&configs)?;
        let log_config = log_config_for(&self.log_defaults(), &configs).map_err(config_error)?;
        if validate_only {
            return Ok(());
        }
        let mut image = self.registry().image.clone();
        if let Some(rec) = image.topics.get_mut(name) {
            rec.configs = configs.clone();
        }
        self.persist(&image)?;
        for p in &topic.partitions {
            p.set_config(log_config.clone());
        }
        let new_topic = Arc::new(Topic { name: topic.name.clone(), id: topic.id, configs, log_config, partitions: topic.partitions.clone() });
        let mut reg = self.registry();
        reg.topics.insert(name.to_string(), new_topic);
        reg.image = image;
        Ok(())
    }

    /// Starts shutdown: waiting fetches are answered with what they have.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        self.hw_changed.notify_waiters();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current topic log defaults.
    pub fn log_defaults(&self) -> LogConfig {
        self.log_defaults.lock().expect("log defaults lock").clone()
    }

    /// Replaces the dynamic broker config overrides (only [`DYNAMIC_BROKER_KEYS`]) and re-derives
    /// every topic's effective log config.
    pub async fn set_broker_configs(&self, overrides: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let _admin = self.admin.lock().await;
        if let Some(k) = overrides.keys().find(|k| !DYNAMIC_BROKER_KEYS.contains(&k.as_str())) {
            return Err(AdminError::new(errors::INVALID_CONFIG, format!("Cannot update these configs dynamically: {k}")));
        }
        check_config_values(&overrides)?;
        let defaults = effective_log_defaults(&self.config, &overrides).map_err(|e| AdminError::new(errors::INVALID_CONFIG, e.to_string()))?;
        let mut new_topics = Vec::new();
        for t in self.topics() {
            let lc = log_config_for(&defaults, &t.configs).map_err(config_error)?;
            new_topics.push((t, lc));
        }
        if validate_only {
            return Ok(());
        }
        let mut image = self.registry().image.clone();
        image.broker_configs = overrides;
        self.persist(&image)?;
        *self.log_defaults.lock().expect("log defaults lock") = defaults;
        let mut reg = self.registry();
        for (t, lc) in new_topics {
            for p in &t.partitions {
                p.set_config(lc.clone());
            }
            let nt = Arc::new(Topic { name: t.name.clone(), id: t.id, configs: t.configs.clone(), log_config: lc, partitions: t.partitions.clone() });
            reg.topics.insert(t.name.clone(), nt);
        }
        reg.image = image;
        Ok(())
    }

    /// Applies retention to every partition.
    pub fn apply_retention(&self) {
        let now = self.clock.wall_ms();
        for t in self.topics() {
            for p in &t.partitions {
                // Never past the high watermark: unflushed data is not eligible.
                match p.with_log_mut(|log, hw| log.apply_retention_below(now, hw)) {
                    Ok(r) if r.segments_deleted > 0 => {
                        tracing::info!(topic = %t.name, partition = p.index, segments = r.segments_deleted, bytes = r.bytes_deleted, log_start_offset = r.log_start_offset, "retention deleted segments");
                    }
                    Ok(_) => {}
                    Err(PartitionError::Deleted) => {}
                    Err(e) => tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention failed"),
                }
            }
        }
    }

    /// Page-cache policy: flush partitions whose `flush.ms` has elapsed.
    pub fn flush_on_interval(&self) {
        let now = self.clock.monotonic_ms();
        for t in self.topics() {
            for p in &t.partitions {
                p.maybe_flush_on_interval(now);
            }
        }
    }

    /// Clean shutdown of every partition (sync, indexes, clean-shutdown marker).
    pub fn close(&self) {
        for t in self.topics() {
            for p in &t.partitions {
                if let Err(e) = p.close() {
                    tracing::error!(topic = %t.name, partition = p.index, error = %e, "error closing partition");
                }
            }
        }
    }
}

/// Kafka topic configs that Gregor accepts, stores and reports but does not act on yet (they
/// concern replication, compaction, tiered storage or broker-side recompression). Accepting them
/// lets existing topic definitions and tools work; everything else unknown is INVALID_CONFIG.
pub const ACCEPTED_TOPIC_KEYS: &[&str] = &[
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "compression.type",
    "preallocate",
    "message.downconversion.enable",
    "file.delete.delay.ms",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
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
fn log_config_for(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> Result<LogConfig, LogConfigError> {
    let log_keys: BTreeMap<String, String> =
        configs.iter().filter(|(k, _)| !ACCEPTED_TOPIC_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    LogConfig::with_overrides(defaults, &log_keys)
}

/// Config values are stored in a tab-separated file; refuse characters that would break it.
fn check_config_values(configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
    for (k, v) in configs {
        if k.contains(['\t', '\n', '\r']) || v.contains(['\t', '\n', '\r']) {
            return Err(AdminError::new(errors::INVALID_CONFIG, format!("Invalid value {v:?} for configuration {k}: control characters are not allowed")));
        }
    }
    Ok(())
}

/// The topic defaults given the static config and dynamic broker overrides.
fn effective_log_defaults(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig, crate::config::ConfigError> {
    if overrides.is_empty() {
        return Ok(config.log_defaults.clone());
    }
    let mut settings: Vec<(String, String)> = config.explicit.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    settings.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(BrokerConfig::from_settings(&settings)?.log_defaults)
}
