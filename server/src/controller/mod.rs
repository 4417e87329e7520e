//! The controller: the only writer of metadata records.
//!
//! Admin requests (create/delete topics, create partitions, configs), producer-id blocks and
//! broker registrations are validated against the current image, turned into
//! [`MetadataRecord`]s, committed to the metadata log, applied to a copy of the image and
//! published to the broker. One lock serializes them, so two concurrent creates of one topic
//! cannot both succeed.
//!
//! Guarantees:
//! * Nothing is applied or answered before its records are committed. With the embedded
//!   one-voter quorum, committed means fsynced in the local metadata log.
//! * Validation and record building are pure functions of the image and the request
//!   ([`topics`], [`configs`]); the records alone carry the change, so replaying the log
//!   rebuilds the same image.
//! * A data directory written before the metadata log existed (the `__gregor_metadata` file)
//!   is converted into records once, at start-up.

pub mod brokers;
mod configs;
pub mod elections;
pub mod elr;
mod legacy;
pub mod partitions;
pub mod reassignments;
mod topics;

use std::collections::BTreeMap;

use gregor_core::clock::Clock;
use gregor_core::disk::SharedDisk;
use gregor_core::metadata::{decode_entry, encode_entry, Endpoint, MetadataDelta, MetadataImage, MetadataRecord};
use gregor_core::bugs::{self, Bug};
use gregor_core::raft::{Entry, EntryKind, LogOp, PersistedState, RaftBugs, RaftConfig};
use gregor_storage::LogConfig;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::broker::{AdminError, Broker, NewTopic, StartError, Topic};
use crate::config::{BrokerConfig, QuorumMode};
use crate::quorum::store::{self, RaftStore};
use crate::quorum::Quorum;
use crate::errors;

/// Producer ids handed to a broker at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

struct State {
    rng: SmallRng,
}

pub struct Controller {
    state: tokio::sync::Mutex<State>,
    /// The metadata quorum this node takes part in; the controller writes through it.
    pub quorum: Quorum,
    /// Heartbeats seen by this node while it is the active controller.
    sessions: std::sync::Mutex<brokers::Sessions>,
}

/// What a node starts from.
pub struct Startup {
    /// The committed image known at start (everything, for a one-voter quorum; else empty).
    pub image: MetadataImage,
    /// Everything in the local log, committed or not: which partitions this node may host.
    pub local: MetadataImage,
}

/// The quorum settings of `config` (Kafka's names).
fn raft_config(config: &BrokerConfig, cluster_id: &str) -> RaftConfig {
    let voters = match config.quorum() {
        QuorumMode::Embedded => std::iter::once(config.node_id).collect(),
        QuorumMode::Voters(v) => v.iter().map(|v| v.id).collect(),
    };
    let mut rc = RaftConfig::new(config.node_id, voters, cluster_id);
    rc.election_timeout_ms = config.quorum_election_timeout_ms as i64;
    rc.fetch_timeout_ms = config.quorum_fetch_timeout_ms as i64;
    rc.request_timeout_ms = config.quorum_request_timeout_ms as i64;
    rc.retry_backoff_ms = config.quorum_retry_backoff_ms as i64;
    // Injectable only in simulator builds (always off elsewhere).
    rc.bugs = RaftBugs {
        vote_twice_in_epoch: bugs::active(Bug::VoteTwiceInEpoch),
        commit_without_majority: bugs::active(Bug::CommitWithoutMajority),
        skip_diverging_truncation: bugs::active(Bug::SkipDivergingTruncation),
    };
    rc
}

impl Controller {
    /// Opens the metadata log and quorum state, and builds the image the broker starts from:
    /// with a one-voter quorum every durable entry is committed (this node alone is the
    /// majority that persisted it), so the image holds them all. A data directory written by an
    /// earlier Gregor (the `__gregor_metadata` file) is converted into the log's first entry.
    pub fn open(config: &BrokerConfig, cluster_id: &str, disk: SharedDisk, clock: &dyn Clock, seed: u64) -> Result<(Controller, Startup), StartError> {
        let store::Opened { mut store, quorum_state, mut log, snapshot } = RaftStore::open(disk.clone(), &config.metadata_log_dir, clock.wall_ms())?;
        if log.end_offset() == 0 {
            if let Some(converted) = legacy::read(disk.as_ref(), &config.log_dir, config.node_id)? {
                let entry = Entry { offset: 0, epoch: 0, kind: EntryKind::Data, payload: encode_entry(&converted).into() };
                store.apply(&LogOp::Append(vec![entry.clone()]), clock.wall_ms())?;
                store.sync()?;
                log.append(vec![entry]).map_err(|e| StartError::Registration(format!("{e:?}")))?;
                legacy::remove(disk.as_ref(), &config.log_dir);
                tracing::info!(records = converted.len(), "converted the metadata file into the metadata log");
            }
        } else if disk.exists(&config.log_dir.join(legacy::FILE_NAME)) {
            // Converted before a crash that came before its removal.
            legacy::remove(disk.as_ref(), &config.log_dir);
        }
        let raft = raft_config(config, cluster_id);
        // A snapshot holds only committed records: the image starts from it.
        let committed = match &snapshot {
            Some((id, records)) => MetadataImage::from_snapshot(id.offset, records)
                .map_err(|e| StartError::MetadataEntry(id.offset, format!("the snapshot does not rebuild an image: {e}")))?,
            None => MetadataImage::new(),
        };
        let snapshot_end = log.start_offset();
        // Everything in the local log, committed or not: the partitions this node may host.
        let mut local = committed.clone();
        let mut delta = MetadataDelta::default();
        for entry in log.entries().filter(|e| e.kind == EntryKind::Data) {
            let records = decode_entry(&entry.payload).map_err(|e| StartError::MetadataEntry(entry.offset, e.to_string()))?;
            for record in &records {
                if let Err(e) = local.apply(entry.offset, record, &mut delta) {
                    tracing::error!(offset = entry.offset, error = %e, "metadata record not applied");
                }
            }
        }
        local.check_invariants();
        // With one voter, every durable entry is committed (this node alone is the majority that
        // persisted it). Otherwise the image starts empty and fills as the quorum commits.
        let embedded = raft.voters.len() == 1 && raft.voters.contains(&config.node_id);
        let (image, applied_end) = if embedded { (local.clone(), log.end_offset()) } else { (committed, snapshot_end) };
        let mut rng = SmallRng::seed_from_u64(seed);
        let persisted = PersistedState { quorum_state, log };
        let voters = match config.quorum() {
            QuorumMode::Embedded => Vec::new(),
            QuorumMode::Voters(v) => v.to_vec(),
        };
        let snapshot_bytes = config.metadata_snapshot_max_new_record_bytes;
        let quorum = Quorum::new(raft, voters, store, persisted, rng.random(), clock.monotonic_ms() as i64, applied_end, snapshot_bytes);
        let controller = Controller { state: tokio::sync::Mutex::new(State { rng }), quorum, sessions: Default::default() };
        Ok((controller, Startup { image, local }))
    }

    /// The controller's lock, taken once this node is the active controller and its image is
    /// current (see [`Quorum::wait_active`]): every operation validates against that image and
    /// commits before the next one validates.
    async fn active(&self) -> Result<tokio::sync::MutexGuard<'_, State>, AdminError> {
        let state = self.state.lock().await;
        self.quorum.wait_active().await.map_err(|code| {
            let message = if code == errors::NOT_CONTROLLER { "this node is not the active controller" } else { "the metadata quorum did not catch up in time" };
            AdminError::new(code, message)
        })?;
        Ok(state)
    }

    /// Commits `records` through the quorum; returns once they are in the broker's image.
    async fn commit(&self, broker: &Broker, state: &mut State, records: Vec<MetadataRecord>) -> Result<(), AdminError> {
        self.commit_after_unclean_shutdown(broker, state, records, &[]).await
    }

    /// [`Controller::commit`], where the brokers `unclean_shutdown` come back from an unclean
    /// shutdown. Every partition change gets its eligible leader replicas here ([`elr`]).
    async fn commit_after_unclean_shutdown(&self, broker: &Broker, _state: &mut State, records: Vec<MetadataRecord>, unclean_shutdown: &[i32]) -> Result<(), AdminError> {
        let records = elr::complete(&broker.image(), records, broker.config.replication.min_insync_replicas, unclean_shutdown);
        if records.is_empty() {
            return Ok(());
        }
        self.quorum.propose(&records).await.map_err(|code| {
            let message = match code {
                errors::NOT_CONTROLLER => "this node is not the active controller",
                errors::POLICY_VIOLATION => "the change is too large for one metadata entry",
                _ => "the metadata log cannot be written",
            };
            AdminError::new(code, message)
        })
    }

    /// Registers this broker (unfenced: with the embedded quorum the broker is caught up by
    /// construction) if the image does not already hold its current endpoint and rack.
    pub async fn register_self(&self, broker: &Broker) -> Result<(), AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let config = &broker.config;
        let endpoints = vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: config.advertised_host.clone(),
            port: u16::try_from(config.advertised_port).map_err(|_| AdminError::new(errors::INVALID_CONFIG, "advertised port out of range"))?,
            security_protocol: 0,
        }];
        let rack = config.rack.clone();
        if let Some(b) = image.brokers.get(&config.node_id) {
            if b.endpoints == endpoints && b.rack == rack && !b.fenced {
                return Ok(());
            }
        }
        let log_end = image.offset + 1;
        let epoch = image.brokers.get(&config.node_id).map_or(log_end, |b| (b.epoch + 1).max(log_end));
        let incarnation_id = state.rng.random::<u128>();
        let record = MetadataRecord::RegisterBroker { broker_id: config.node_id, incarnation_id, broker_epoch: epoch, endpoints, rack, fenced: false };
        self.commit(broker, &mut state, vec![record]).await
    }

    /// Allocates the next block of producer ids for `broker`.
    pub async fn allocate_producer_ids(&self, broker: &Broker) -> Result<std::ops::Range<i64>, AdminError> {
        let mut state = self.active().await?;
        let start = broker.image().next_producer_id;
        let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or_else(|| AdminError::new(errors::KAFKA_STORAGE_ERROR, "producer ids exhausted"))?;
        let epoch = broker.image().brokers.get(&broker.config.node_id).map_or(-1, |b| b.epoch);
        let record = MetadataRecord::ProducerIds { broker_id: broker.config.node_id, broker_epoch: epoch, next_producer_id: end };
        self.commit(broker, &mut state, vec![record]).await?;
        tracing::info!(start, end, "allocated producer id block");
        Ok(start..end)
    }

    pub fn validate_create(&self, broker: &Broker, image: &MetadataImage, name: &str, partitions: i32, rf: i16, configs: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
        topics::validate_create(image, &broker.log_defaults(), name, partitions, rf, configs)
    }

    pub async fn create_topics(&self, broker: &Broker, new: Vec<NewTopic>, validate_only: bool) -> Vec<Result<Topic, AdminError>> {
        let mut state = match self.active().await {
            Ok(s) => s,
            Err(e) => return new.iter().map(|_| Err(e.clone())).collect(),
        };
        let image = broker.image();
        let planned = topics::plan_create(&image, &broker.log_defaults(), new, &mut state.rng);
        let mut records = Vec::new();
        for p in planned.iter().flatten() {
            records.extend(p.records.iter().cloned());
        }
        let answer = |p: &topics::PlannedTopic| Topic {
            name: p.name.clone(),
            id: Uuid::from_u128(p.id),
            configs: p.configs.clone(),
            partitions: p.partitions.clone(),
        };
        if validate_only {
            return planned.iter().map(|r| r.as_ref().map(answer).map_err(Clone::clone)).collect();
        }
        if let Err(e) = self.commit(broker, &mut state, records).await {
            return planned.iter().map(|r| r.as_ref().map_err(Clone::clone).and(Err(e.clone()))).collect();
        }
        for p in planned.iter().flatten() {
            tracing::info!(topic = %p.name, partitions = p.partitions.len(), "created topic");
        }
        planned.iter().map(|r| r.as_ref().map(answer).map_err(Clone::clone)).collect()
    }

    pub async fn delete_topic(&self, broker: &Broker, name: &str) -> Result<Uuid, AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let t = image.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        let id = t.id;
        self.commit(broker, &mut state, vec![MetadataRecord::RemoveTopic { topic_id: id }]).await?;
        Ok(Uuid::from_u128(id))
    }

    pub async fn create_partitions(&self, broker: &Broker, name: &str, count: i32, assignments: Option<&[Vec<i32>]>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let records = topics::plan_create_partitions(&image, name, count, assignments, &mut state.rng)?;
        if validate_only {
            return Ok(());
        }
        self.commit(broker, &mut state, records).await
    }

    pub async fn set_topic_configs(&self, broker: &Broker, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let mut records = configs::plan_topic_configs(&image, &broker.log_defaults(), name, &configs)?;
        if validate_only {
            return Ok(());
        }
        // A new min.insync.replicas re-applies the ELR rules in the same entry, so no leader
        // counts its high watermark against one value while the ELR was built for another.
        if records.iter().any(|r| matches!(r, MetadataRecord::Config { name, .. } if name == "min.insync.replicas")) {
            records.extend(elr::recheck_topic(&image, name));
        }
        self.commit(broker, &mut state, records).await
    }

    pub async fn set_broker_configs(&self, broker: &Broker, name: &str, overrides: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let records = configs::plan_broker_configs(&image, &broker.config, name, &overrides)?;
        if validate_only {
            return Ok(());
        }
        self.commit(broker, &mut state, records).await
    }

    /// Closes the metadata log (clean shutdown). Later admin requests fail.
    pub fn close(&self) {
        self.quorum.close();
    }
}
