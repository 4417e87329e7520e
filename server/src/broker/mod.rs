//! The broker: the metadata image it serves from, the partitions it hosts, and the coordinators.
//!
//! Guarantees:
//! * What this broker knows about topics, partitions, leaders, brokers and configs is one
//!   [`MetadataImage`], replaced only by [`Broker::publish`] with the result of applying
//!   committed metadata records; nothing else caches who leads what.
//! * The hosted partitions ([`ReplicaManager`]) follow the image: a published delta opens the
//!   partitions this broker became a replica of *before* the new image is visible, and stops
//!   those it no longer hosts *after*, so a client that sees a partition in Metadata finds it.
//! * Partition directories that the image does not give to this broker (left by a crash during
//!   a delete) are removed at startup, so a re-created topic never inherits old data.
//! * Admin operations go through the [`Controller`], the only writer of metadata records.

pub mod clean_shutdown;
pub mod cleaner;
pub mod fetcher;
pub mod group_loading;
pub mod group_store;
pub mod forward;
pub mod groups;
pub mod hw_checkpoint;
pub mod isr;
pub mod lifecycle;
pub mod log_configs;
pub mod offsets;
pub mod partition;
pub mod replica_manager;
pub mod throttle;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gregor_core::clock::SharedClock;
use gregor_core::disk::SharedDisk;
use gregor_core::metadata::{MetadataDelta, MetadataImage, PartitionRegistration, TopicImage, RESOURCE_BROKER};
use gregor_storage::{LogConfig, PartitionLog};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::controller::elections::{ElectionResult, ElectionType, Selection};
use crate::controller::reassignments::Reassignment;
use crate::controller::Controller;
use crate::errors;
pub use log_configs::{ACCEPTED_TOPIC_KEYS, DYNAMIC_BROKER_KEYS};
use log_configs::{effective_config, log_config_for};
pub use partition::{Offsets, Partition, PartitionError, RoleChange, Signals};
pub use replica_manager::{check_leader_epoch, ReplicaManager};

/// Most partitions one topic may have (bounds memory and file handles per request).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// A topic as the image describes it, for handlers.
#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Topic-level config overrides, as set by users.
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

impl Topic {
    fn from_image(image: &MetadataImage, t: &TopicImage) -> Topic {
        Topic { name: t.name.clone(), id: Uuid::from_u128(t.id), configs: image.topic_configs(&t.name), partitions: t.partitions.clone() }
    }
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Explicit replica lists, partition 0 first (then `partitions` and `replication_factor`
    /// are what they imply); `None`: the controller places the replicas.
    pub assignments: Option<Vec<Vec<i32>>>,
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

/// Why a request for a partition is not served here: a Kafka error code and, when known, the
/// current leader and its epoch (the KIP-951 hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServed {
    pub code: i16,
    pub leader: Option<(i32, i32)>,
}

impl NotServed {
    fn code(code: i16) -> NotServed {
        NotServed { code, leader: None }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(transparent)]
    MetadataLog(#[from] crate::quorum::store::StoreError),
    #[error("metadata log entry at offset {0} cannot be read: {1}")]
    MetadataEntry(i64, String),
    #[error("metadata file {0} is corrupt: {1}")]
    LegacyMetadata(String, String),
    #[error("cannot register this broker: {0}")]
    Registration(String),
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
    /// The current metadata image (replaced whole by [`Broker::publish`]).
    image: Mutex<Arc<MetadataImage>>,
    /// The only writer of metadata records.
    pub controller: Controller,
    /// The partitions this broker hosts.
    pub replicas: ReplicaManager,
    /// Wake long-polling fetches: consumers when a high watermark moves, followers when a log grows.
    pub signals: Signals,
    /// The partitions this broker follows, fetched from their leaders.
    pub fetchers: fetcher::Fetchers,
    /// Wakes whoever waits for the image to change (forwarded admin changes).
    pub image_changed: Notify,
    /// Committed offsets and group metadata (the cache of `__consumer_offsets`).
    pub offsets: offsets::OffsetCache,
    /// The consumer group coordinator.
    pub groups: groups::GroupService,
    /// The offsets partitions whose groups this broker coordinates.
    coordination: group_loading::Coordination,
    /// Set when shutdown begins: long polls answer at once instead of waiting.
    closing: std::sync::atomic::AtomicBool,
    /// Topic log defaults: the static `log.*` settings with dynamic broker overrides applied.
    log_defaults: Mutex<LogConfig>,
    /// The log cleaner's settings, with dynamic broker overrides applied.
    cleaner_config: Mutex<crate::config::CleanerConfig>,
    /// The log cleaner's state and figures.
    pub cleaner: cleaner::CleanerState,
    /// Replication throttles: the quotas and the throttled partitions.
    pub throttles: throttle::Throttles,
    /// This broker's epoch from its registration with the active controller (-1: not registered).
    pub broker_epoch: std::sync::atomic::AtomicI64,
    /// The epoch of the previous process's session if it ended in a clean shutdown, else -1
    /// (see [`clean_shutdown`]).
    pub previous_broker_epoch: i64,
    /// Set once clients may be served (see [`Broker::wait_serving`]).
    serving: std::sync::atomic::AtomicBool,
    serving_changed: Notify,
    /// Set when a controlled shutdown begins: the lifecycle stops its regular heartbeats, which
    /// would otherwise ask to be unfenced again.
    pub leaving: std::sync::atomic::AtomicBool,
    /// Set by the first [`Broker::publish`], which gives every hosted partition its role.
    roles_applied: std::sync::atomic::AtomicBool,
    /// Producer ids left in the block the controller gave this broker (empty: ask for one).
    producer_ids: Mutex<std::ops::Range<i64>>,
    /// What the Prometheus endpoint reports (`metrics.listener`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

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
    /// Opens (or initialises) the data directory, replays the metadata log, recovers every
    /// partition the local log gives this broker, and registers it (with a quorum of voters, in
    /// the background once the listeners are up). `seed` drives every random
    /// choice (cluster and topic ids, placement).
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

        let (controller, startup) = Controller::open(&config, &cluster_id, disk.clone(), clock.as_ref(), rng.random())?;
        let signals = Signals::default();
        let image = startup.local;
        let effective = effective_config(&config, &image.broker_configs(config.node_id)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring invalid stored dynamic broker config");
            config.clone()
        });
        let log_defaults = effective.log_defaults.clone();
        let throttles = throttle::Throttles::new(&effective.replication);
        throttles.update(&image, config.node_id, &effective.replication);
        let group_config = gregor_core::group::GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_size: config.group_max_size as usize,
        };
        let previous_broker_epoch = clean_shutdown::take(disk.as_ref(), &config.metadata_log_dir);
        let metrics = Arc::new(crate::metrics::Metrics::new(clock.clone()));
        let broker = Arc::new(Broker {
            previous_broker_epoch,
            metrics,
            config,
            clock,
            disk,
            cluster_id,
            image: Mutex::new(Arc::new(MetadataImage::new())),
            controller,
            replicas: ReplicaManager::default(),
            signals,
            fetchers: fetcher::Fetchers::default(),
            image_changed: Notify::new(),
            log_defaults: Mutex::new(log_defaults),
            cleaner_config: Mutex::new(effective.cleaner.clone()),
            cleaner: Default::default(),
            throttles,
            closing: std::sync::atomic::AtomicBool::new(false),
            coordination: Default::default(),
            offsets: offsets::OffsetCache::default(),
            groups: groups::GroupService::new(group_config),
            producer_ids: Mutex::new(0..0),
            roles_applied: std::sync::atomic::AtomicBool::new(false),
            broker_epoch: std::sync::atomic::AtomicI64::new(-1),
            leaving: std::sync::atomic::AtomicBool::new(false),
            serving: std::sync::atomic::AtomicBool::new(false),
            serving_changed: Notify::new(),
        });

        broker.remove_unhosted_partition_dirs(&image).map_err(data_dir_err)?;
        let embedded = broker.is_embedded();
        let mut hws = hw_checkpoint::read(broker.disk.as_ref(), &broker.config.log_dir);
        if gregor_core::bugs::active(gregor_core::bugs::Bug::ForgetHwCheckpoint) {
            hws.clear();
        }
        let mut opened = Vec::new();
        for t in image.topics.values() {
            let configs = image.topic_configs(&t.name);
            let log_config = log_config_for(&broker.log_defaults(), &configs).map_err(|e| StartError::TopicConfig(t.name.clone(), e.to_string()))?;
            for (index, reg) in &t.partitions {
                if !reg.replicas.contains(&broker.config.node_id) {
                    continue;
                }
                let hw = hws.get(&(t.name.clone(), *index)).copied();
                let p = broker.open_partition(&t.name, *index, reg, &log_config, false, hw).map_err(|e| StartError::Partition(t.name.clone(), e.message))?;
                if gregor_core::probe::enabled() {
                    if let Ok(o) = p.offsets() {
                        let node_id = broker.config.node_id;
                        gregor_core::probe::observe(gregor_core::probe::Observed::ReplicaOpened { topic: &t.name, partition: *index, node_id, high_watermark: o.high_watermark, log_end: o.log_end });
                    }
                }
                // With a quorum of voters the local log may hold uncommitted changes: leadership
                // waits for the committed image (published as the quorum commits).
                if embedded {
                    p.set_min_insync(image.min_insync_replicas(&t.name, broker.config.replication.min_insync_replicas, usize::MAX));
                    p.apply_registration(broker.config.node_id, reg, broker.clock.monotonic_ms());
                }
                opened.push(p);
            }
        }
        broker.sync_partition_dir_entries(opened.iter());
        for p in opened {
            broker.replicas.insert(p);
        }
        *broker.image.lock().expect("image lock") = Arc::new(startup.image);
        broker.controller.quorum.start(&broker);
        if broker.is_embedded() {
            broker.controller.register_self(&broker).await.map_err(|e| StartError::Registration(e.message))?;
            broker.start_serving();
        } else {
            // Registration needs a quorum leader, which needs the listeners: it runs beside them.
            if broker.config.roles.broker {
                tokio::spawn(lifecycle::run(broker.clone()));
            }
            if broker.config.roles.controller {
                tokio::spawn(lifecycle::fence_expired_sessions(Arc::downgrade(&broker)));
                tokio::spawn(lifecycle::elect_unclean_leaders(Arc::downgrade(&broker), broker.config.replication.unclean_leader_election_interval_ms));
                if broker.config.replication.auto_leader_rebalance {
                    tokio::spawn(lifecycle::balance_leaders(Arc::downgrade(&broker), broker.config.replication.leader_imbalance_check_interval_ms));
                }
            }
        }

        if broker.config.roles.broker {
            tokio::spawn(isr::run(Arc::downgrade(&broker)));
        }
        broker.set_member_id_epoch(member_id_epoch);
        broker.reconcile_coordination();
        Ok(broker)
    }

    /// Lets the client listener serve (the broker has caught up and been unfenced once).
    pub fn start_serving(&self) {
        self.serving.store(true, std::sync::atomic::Ordering::SeqCst);
        self.serving_changed.notify_waiters();
    }

    /// Waits until clients may be served.
    pub async fn wait_serving(&self) {
        loop {
            let changed = self.serving_changed.notified();
            if self.serving.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }

    /// Whether this node is the embedded one-voter quorum (no `controller.quorum.voters`).
    pub fn is_embedded(&self) -> bool {
        matches!(self.config.quorum(), crate::config::QuorumMode::Embedded)
    }

    /// Removes partition directories of partitions the image does not give this broker
    /// (interrupted deletes). The metadata log's own directory is never touched.
    fn remove_unhosted_partition_dirs(&self, image: &MetadataImage) -> std::io::Result<()> {
        let mut expected = BTreeSet::new();
        for t in image.topics.values() {
            for (p, reg) in &t.partitions {
                if reg.replicas.contains(&self.config.node_id) {
                    expected.insert(format!("{}-{p}", t.name));
                }
            }
        }
        let dir = &self.config.log_dir;
        for entry in self.disk.list_dir(dir)? {
            let is_partition_dir = entry.rsplit_once('-').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if is_partition_dir && entry != crate::quorum::store::DIR_NAME && !expected.contains(&entry) {
                tracing::warn!(dir = %entry, "removing partition directory of a deleted topic");
                self.disk.remove_dir_all(&dir.join(&entry))?;
            }
        }
        Ok(())
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

    /// Opens one hosted partition and starts its flusher. A `fresh` partition (just created by
    /// a metadata change) starts from an empty directory: anything left there is removed.
    /// `checkpointed_hw` is its high watermark from `replication-offset-checkpoint`.
    fn open_partition(&self, topic: &str, index: i32, reg: &PartitionRegistration, log_config: &LogConfig, fresh: bool, checkpointed_hw: Option<i64>) -> Result<Arc<Partition>, AdminError> {
        let dir = partition_dir(&self.config.log_dir, topic, index);
        if fresh && self.disk.exists(&dir) {
            let _ = self.disk.remove_dir_all(&dir);
        }
        let (log, report) = PartitionLog::open(self.disk.clone(), dir, log_config.clone(), self.clock.wall_ms())
            .map_err(|e| AdminError::new(errors::KAFKA_STORAGE_ERROR, format!("{topic}-{index}: {e}")))?;
        if !report.clean_shutdown || report.truncated_bytes > 0 {
            tracing::info!(topic, partition = index, ?report, "recovered partition");
        }
        // The high watermark a restarted replica starts from. A partition with one replica has
        // no one to learn it from: everything its recovery kept was durable, so it is committed.
        let hw = match checkpointed_hw {
            _ if reg.replicas.len() == 1 => log.log_end_offset(),
            Some(hw) => hw,
            None => log.log_start_offset(),
        };
        let p = Partition::new(topic.to_string(), index, log, hw, self.signals.clone(), self.metrics.clone(), self.clock.monotonic_ms());
        tokio::spawn(p.clone().run_flusher());
        Ok(p)
    }

    /// Replaces the image with `image`, which is the current image with `delta` applied, and
    /// makes the hosted partitions and configs follow it.
    pub fn publish(self: &Arc<Self>, image: MetadataImage, delta: &MetadataDelta) {
        let me = self.config.node_id;
        let broker_configs_changed = delta.changed_configs.iter().any(|(t, name)| *t == RESOURCE_BROKER && (name.is_empty() || *name == me.to_string()));
        if !delta.changed_configs.is_empty() || !delta.removed_topics.is_empty() {
            match effective_config(&self.config, &image.broker_configs(me)) {
                Ok(c) => {
                    if broker_configs_changed {
                        *self.log_defaults.lock().expect("log defaults lock") = c.log_defaults.clone();
                        *self.cleaner_config.lock().expect("cleaner config lock") = c.cleaner.clone();
                    }
                    self.throttles.update(&image, me, &c.replication);
                }
                Err(e) => tracing::error!(error = %e, "committed dynamic broker config is invalid; keeping the previous settings"),
            }
        }
        // Removed topics first: a name removed and created again in one delta (a topic deleted
        // and re-created while this node was behind) must end up hosting the new topic.
        for (name, partitions) in delta.removed_topics.values() {
            for &index in partitions {
                self.stop_replica(name, index, true);
            }
            tracing::info!(topic = %name, "deleted topic");
        }
        let previous = self.image();
        for ((topic_id, index), reg) in &delta.changed_partitions {
            if let Some(old) = previous.topics.get(topic_id).and_then(|t| t.partitions.get(index)) {
                self.metrics.registration_changed(self.config.node_id, old, reg);
            }
        }
        // Partitions this broker now hosts: open the new ones, update the others' leadership.
        let mut opened = Vec::new();
        for ((topic_id, index), reg) in &delta.changed_partitions {
            let Some(t) = image.topic_by_id(*topic_id) else { continue };
            match self.replicas.get(&t.name, *index) {
                Some(p) if reg.replicas.contains(&me) => self.apply_role(&image, &p, *topic_id, reg),
                Some(_) => self.stop_replica(&t.name, *index, true),
                None if reg.replicas.contains(&me) => {
                    let lc = match log_config_for(&self.log_defaults(), &image.topic_configs(&t.name)) {
                        Ok(lc) => lc,
                        Err(e) => {
                            tracing::error!(topic = %t.name, error = %e, "committed topic config is invalid; using the defaults");
                            self.log_defaults()
                        }
                    };
                    match self.open_partition(&t.name, *index, reg, &lc, true, None) {
                        Ok(p) => opened.push((p, *topic_id, reg.clone())),
                        Err(e) => tracing::error!(topic = %t.name, partition = index, error = %e.message, "cannot create partition"),
                    }
                }
                None => {}
            }
        }
        if !opened.is_empty() {
            self.sync_partition_dir_entries(opened.iter().map(|(p, _, _)| p));
            for (p, topic_id, reg) in opened {
                tracing::debug!(topic = %p.topic, partition = p.index, "hosting partition");
                self.apply_role(&image, &p, topic_id, &reg);
                self.replicas.insert(p);
            }
        }
        // Config changes: re-derive the effective log config of every affected topic.
        let broker_defaults_changed = broker_configs_changed;
        for t in image.topics.values() {
            let topic_changed = delta.changed_configs.contains(&(gregor_core::metadata::RESOURCE_TOPIC, t.name.clone()));
            if !(broker_defaults_changed || topic_changed) {
                continue;
            }
            if let Ok(lc) = log_config_for(&self.log_defaults(), &image.topic_configs(&t.name)) {
                for p in self.replicas.of_topic(&t.name) {
                    p.set_config(lc.clone());
                }
            }
            let min_insync = image.min_insync_replicas(&t.name, self.config.replication.min_insync_replicas, usize::MAX);
            for p in self.replicas.of_topic(&t.name) {
                p.set_min_insync(min_insync);
            }
        }
        *self.image.lock().expect("image lock") = Arc::new(image);
        if !self.roles_applied.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // The first committed image since start: partitions it did not change still need
            // their role (a restarted follower must start fetching).
            self.apply_roles();
        }
        self.reconcile_coordination();
        self.image_changed.notify_waiters();
        if !delta.removed_topics.is_empty() {
            self.signals.hw_changed.notify_waiters();
        }
    }

    /// Gives a hosted partition the role its registration says, and starts or stops fetching
    /// it from its leader accordingly.
    fn apply_role(self: &Arc<Self>, image: &MetadataImage, p: &Arc<Partition>, topic_id: gregor_core::metadata::TopicId, reg: &PartitionRegistration) {
        p.set_min_insync(image.min_insync_replicas(&p.topic, self.config.replication.min_insync_replicas, usize::MAX));
        match p.apply_registration(self.config.node_id, reg, self.clock.monotonic_ms()) {
            RoleChange::Unchanged => {}
            RoleChange::Leader => {
                tracing::info!(topic = %p.topic, partition = p.index, leader_epoch = reg.leader_epoch, isr = ?reg.isr, "leading partition");
                self.fetchers.unfollow(&p.topic, p.index);
            }
            RoleChange::Follower { leader, leader_epoch } => {
                tracing::info!(topic = %p.topic, partition = p.index, leader, leader_epoch, "following partition");
                self.fetchers.follow(self, p, Uuid::from_u128(topic_id), leader, leader_epoch);
            }
        }
    }

    /// Gives every hosted partition the role the current image says (at start-up, once the
    /// committed image is known).
    pub fn apply_roles(self: &Arc<Self>) {
        let image = self.image();
        for t in image.topics.values() {
            for (index, reg) in &t.partitions {
                if let Some(p) = self.replicas.get(&t.name, *index) {
                    self.apply_role(&image, &p, t.id, reg);
                }
            }
        }
    }

    /// Writes every hosted partition's high watermark to `replication-offset-checkpoint`.
    pub fn checkpoint_high_watermarks(&self) {
        let hws: BTreeMap<replica_manager::TopicPartition, i64> =
            self.replicas.all().iter().filter_map(|p| p.offsets().ok().map(|o| ((p.topic.clone(), p.index), o.high_watermark))).collect();
        match hw_checkpoint::write(self.disk.as_ref(), &self.config.log_dir, &hws) {
            Err(e) => tracing::warn!(error = %e, "cannot write the high watermark checkpoint"),
            Ok(()) if gregor_core::probe::enabled() => {
                let entries: Vec<(&str, i32, i64)> = hws.iter().map(|((t, p), hw)| (t.as_str(), *p, *hw)).collect();
                gregor_core::probe::observe(gregor_core::probe::Observed::HwCheckpointed { node_id: self.config.node_id, high_watermarks: &entries });
            }
            Ok(()) => {}
        }
    }

    /// Stops hosting a partition; with `delete`, removes its data.
    fn stop_replica(&self, topic: &str, index: i32, delete: bool) {
        self.fetchers.unfollow(topic, index);
        let Some(p) = self.replicas.remove(topic, index) else { return };
        if let Some(log) = p.take_for_delete() {
            let result = if delete { log.delete() } else { log.close() };
            if let Err(e) = result {
                tracing::warn!(topic, partition = index, error = %e, "could not remove partition data; it is removed at next start");
            }
        }
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.lock().expect("image lock poisoned").clone()
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        let image = self.image();
        image.topic(name).map(|t| Topic::from_image(&image, t))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Topic> {
        let image = self.image();
        image.topic_by_id(id.as_u128()).map(|t| Topic::from_image(&image, t))
    }

    pub fn topics(&self) -> Vec<Topic> {
        let image = self.image();
        image.topic_ids.values().filter_map(|id| image.topic_by_id(*id)).map(|t| Topic::from_image(&image, t)).collect()
    }

    /// The hosted replica of a partition, whatever its role.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.replicas.get(topic, index)
    }

    /// The partition for a request that only its leader may serve (produce, consumer fetch,
    /// list offsets, …), with the client's `current_leader_epoch` checked by
    /// [`check_leader_epoch`]: UNKNOWN_TOPIC_OR_PARTITION if the image has no such partition,
    /// NOT_LEADER_OR_FOLLOWER (with the current leader) if this broker does not lead it.
    pub fn leader_partition(&self, topic: &str, index: i32, current_leader_epoch: i32) -> Result<Arc<Partition>, NotServed> {
        let image = self.image();
        let reg = image.partition(topic, index).ok_or(NotServed::code(errors::UNKNOWN_TOPIC_OR_PARTITION))?;
        let hint = (reg.leader >= 0).then_some((reg.leader, reg.leader_epoch));
        let not_leader = NotServed { code: errors::NOT_LEADER_OR_FOLLOWER, leader: hint };
        if reg.leader != self.config.node_id {
            return Err(not_leader);
        }
        check_leader_epoch(current_leader_epoch, reg.leader_epoch).map_err(|code| NotServed { code, leader: hint })?;
        self.replicas.get(topic, index).ok_or(not_leader)
    }

    /// The topic's `min.insync.replicas` (its override, else the broker's default), as
    /// configured: what an acks=all write needs in the ISR.
    pub fn min_insync_replicas(&self, topic: &str) -> usize {
        self.image().min_insync_replicas(topic, self.config.replication.min_insync_replicas, usize::MAX)
    }

    /// The effective log config of a topic with these overrides (the defaults if the
    /// overrides are invalid, which validation before commit prevents).
    pub fn effective_log_config(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        log_config_for(&self.log_defaults(), configs).unwrap_or_else(|_| self.log_defaults())
    }

    /// This broker's dynamic config overrides: its own over the cluster-wide ones.
    pub fn broker_config_overrides(&self) -> BTreeMap<String, String> {
        self.image().broker_configs(self.config.node_id)
    }

    /// Whether admin changes are made here (this node leads the metadata quorum, or is the
    /// embedded one-voter quorum) rather than forwarded to the active controller.
    fn controls(&self) -> bool {
        self.is_embedded() || (self.config.roles.controller && self.controller.quorum.status().leader_id == self.config.node_id)
    }

    /// Hands out a producer id never handed out before, even across restarts: ids come from
    /// blocks the controller allocates with a metadata record that is committed before the
    /// first id of the block is used (what is left of a block at a restart is skipped, as in
    /// Kafka).
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        if let Some(id) = self.producer_ids.lock().expect("producer ids lock").next() {
            return Ok(id);
        }
        let block = if self.controls() { self.controller.allocate_producer_ids(self).await? } else { forward::allocate_producer_ids(self).await? };
        let mut ids = self.producer_ids.lock().expect("producer ids lock");
        if ids.is_empty() {
            *ids = block;
        }
        Ok(ids.next().expect("a new block is not empty"))
    }

    /// Checks a topic creation without doing it; returns the effective log config.
    pub fn validate_create(&self, name: &str, partitions: i32, replication_factor: i16, configs: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
        self.controller.validate_create(self, &self.image(), name, partitions, replication_factor, configs)
    }

    /// Creates a topic (or only validates it).
    pub async fn create_topic(&self, name: &str, partitions: i32, replication_factor: i16, configs: BTreeMap<String, String>, validate_only: bool) -> Result<Topic, AdminError> {
        let new = NewTopic { name: name.to_string(), partitions, replication_factor, configs, assignments: None };
        self.create_topics(vec![new], validate_only).await.pop().expect("one result per topic")
    }

    /// Creates topics (or only validates them), one result per topic in order, with one
    /// metadata commit for the whole batch.
    pub async fn create_topics(&self, new: Vec<NewTopic>, validate_only: bool) -> Vec<Result<Topic, AdminError>> {
        if self.controls() {
            return self.controller.create_topics(self, new, validate_only).await;
        }
        let results = forward::create_topics(self, &new, validate_only).await;
        new.into_iter()
            .zip(results)
            .map(|(t, r)| {
                r?;
                Ok(self.topic(&t.name).unwrap_or(Topic { name: t.name, id: Uuid::nil(), configs: t.configs, partitions: BTreeMap::new() }))
            })
            .collect()
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        if self.controls() {
            return self.controller.delete_topic(self, name).await;
        }
        let id = self.topic(name).map(|t| t.id).unwrap_or_default();
        forward::delete_topic(self, name).await?;
        Ok(id)
    }

    /// Grows a topic to `count` partitions, placed by the controller or on the replica lists
    /// `assignments` names (one per new partition).
    pub async fn create_partitions(&self, name: &str, count: i32, assignments: Option<&[Vec<i32>]>, validate_only: bool) -> Result<(), AdminError> {
        if self.controls() {
            return self.controller.create_partitions(self, name, count, assignments, validate_only).await;
        }
        forward::create_partitions(self, name, count, assignments, validate_only).await
    }

    /// Elects leaders (ElectLeaders): one result per partition tried, see
    /// [`crate::controller::elections`].
    pub async fn elect_leaders(&self, ty: ElectionType, selection: Selection) -> Result<Vec<(String, i32, ElectionResult)>, AdminError> {
        if self.controls() {
            return self.controller.elect_leaders(self, ty, selection).await;
        }
        forward::elect_leaders(self, ty, &selection).await
    }

    /// Starts, changes or cancels partition reassignments (AlterPartitionReassignments): one
    /// result per partition, see [`crate::controller::reassignments`].
    pub async fn alter_reassignments(&self, changes: Vec<Reassignment>, allow_rf_change: bool) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        if self.controls() {
            return self.controller.alter_reassignments(self, changes, allow_rf_change).await;
        }
        forward::alter_reassignments(self, &changes, allow_rf_change).await
    }

    /// Replaces a topic's config overrides.
    pub async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        if self.controls() {
            return self.controller.set_topic_configs(self, name, configs, validate_only).await;
        }
        forward::alter_configs(self, gregor_core::metadata::RESOURCE_TOPIC, name, &configs, validate_only).await
    }

    /// Replaces the dynamic config overrides of the broker resource `name` ("" for the cluster
    /// defaults, or a broker id; only [`DYNAMIC_BROKER_KEYS`]).
    pub async fn set_broker_configs(&self, name: &str, overrides: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        if self.controls() {
            return self.controller.set_broker_configs(self, name, overrides, validate_only).await;
        }
        forward::alter_configs(self, RESOURCE_BROKER, name, &overrides, validate_only).await
    }

    /// Starts shutdown: waiting fetches are answered with what they have.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        self.signals.hw_changed.notify_waiters();
        self.signals.appended.notify_waiters();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current topic log defaults.
    pub fn log_defaults(&self) -> LogConfig {
        self.log_defaults.lock().expect("log defaults lock").clone()
    }

    /// The log cleaner's current settings.
    pub fn cleaner_config(&self) -> crate::config::CleanerConfig {
        self.cleaner_config.lock().expect("cleaner config lock").clone()
    }

    /// Applies retention to every hosted partition.
    pub fn apply_retention(&self) {
        let now = self.clock.wall_ms();
        for p in self.replicas.all() {
            // Never past the high watermark: unflushed data is not eligible.
            match p.with_log_mut(|log, hw| log.apply_retention_below(now, hw)) {
                Ok(r) if r.segments_deleted > 0 => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = r.segments_deleted, bytes = r.bytes_deleted, log_start_offset = r.log_start_offset, "retention deleted segments");
                }
                Ok(_) => {}
                Err(PartitionError::Deleted) => {}
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
            }
        }
    }

    /// Page-cache policy: flush partitions whose `flush.ms` has elapsed.
    pub fn flush_on_interval(&self) {
        let now = self.clock.monotonic_ms();
        for p in self.replicas.all() {
            p.maybe_flush_on_interval(now);
        }
    }

    /// Clean shutdown of every partition (sync, indexes, clean-shutdown marker) and of the
    /// metadata log.
    pub fn close(&self) {
        self.fetchers.stop_all();
        self.checkpoint_high_watermarks();
        for p in self.replicas.all() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "error closing partition");
            }
        }
        self.controller.close();
        let epoch = self.broker_epoch.load(std::sync::atomic::Ordering::SeqCst);
        if epoch >= 0 {
            if let Err(e) = clean_shutdown::write(self.disk.as_ref(), &self.config.metadata_log_dir, epoch) {
                tracing::warn!(error = %e, "cannot record the clean shutdown; the next start counts as unclean");
            }
        }
    }
}
