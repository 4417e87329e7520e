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

mod configs;
mod legacy;
mod topics;

use std::collections::BTreeMap;

use gregor_core::clock::Clock;
use gregor_core::disk::SharedDisk;
use gregor_core::metadata::{Endpoint, MetadataDelta, MetadataImage, MetadataRecord};
use gregor_storage::LogConfig;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use uuid::Uuid;

use crate::broker::metadata_log::MetadataLog;
use crate::broker::{AdminError, Broker, NewTopic, StartError, Topic};
use crate::config::BrokerConfig;
use crate::errors;

/// Producer ids handed to a broker at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

struct State {
    log: Option<MetadataLog>,
    rng: SmallRng,
}

pub struct Controller {
    state: tokio::sync::Mutex<State>,
}

impl Controller {
    /// Opens the metadata log and replays it into an image (converting a legacy metadata file
    /// first if there is one).
    pub fn open(config: &BrokerConfig, disk: SharedDisk, clock: &dyn Clock, seed: u64) -> Result<(Controller, MetadataImage), StartError> {
        let (mut log, mut records) = MetadataLog::open(disk.clone(), &config.log_dir, clock.wall_ms())?;
        if records.is_empty() {
            if let Some(converted) = legacy::read(disk.as_ref(), &config.log_dir, config.node_id)? {
                let first = log.append(&converted, clock.wall_ms())?;
                legacy::remove(disk.as_ref(), &config.log_dir);
                tracing::info!(records = converted.len(), "converted the metadata file into the metadata log");
                records = converted.into_iter().enumerate().map(|(i, r)| (first + i as i64, r)).collect();
            }
        } else if disk.exists(&config.log_dir.join(legacy::FILE_NAME)) {
            // Converted before a crash that came before its removal.
            legacy::remove(disk.as_ref(), &config.log_dir);
        }
        let mut image = MetadataImage::new();
        let mut delta = MetadataDelta::default();
        for (offset, record) in &records {
            if let Err(e) = image.apply(*offset, record, &mut delta) {
                tracing::error!(offset, error = %e, "metadata record not applied");
            }
        }
        image.check_invariants();
        let controller = Controller { state: tokio::sync::Mutex::new(State { log: Some(log), rng: SmallRng::seed_from_u64(seed) }) };
        Ok((controller, image))
    }

    /// Commits `records` and publishes the resulting image. Records the image refuses are
    /// logged and skipped (every node skips the same ones, so images stay identical).
    fn commit(&self, broker: &Broker, state: &mut State, records: Vec<MetadataRecord>) -> Result<(), AdminError> {
        if records.is_empty() {
            return Ok(());
        }
        let log = state.log.as_mut().ok_or_else(|| AdminError::new(errors::KAFKA_STORAGE_ERROR, "the metadata log is closed"))?;
        let first = log
            .append(&records, broker.clock.wall_ms())
            .map_err(|e| AdminError::new(errors::KAFKA_STORAGE_ERROR, format!("cannot commit metadata: {e}")))?;
        let mut image = (*broker.image()).clone();
        let mut delta = MetadataDelta::default();
        for (i, record) in records.iter().enumerate() {
            if let Err(e) = image.apply(first + i as i64, record, &mut delta) {
                tracing::error!(offset = first + i as i64, error = %e, ?record, "metadata record not applied");
            }
        }
        image.check_invariants();
        broker.publish(image, &delta);
        Ok(())
    }

    /// Registers this broker (unfenced: with the embedded quorum the broker is caught up by
    /// construction) if the image does not already hold its current endpoint and rack.
    pub async fn register_self(&self, broker: &Broker) -> Result<(), AdminError> {
        let mut state = self.state.lock().await;
        let image = broker.image();
        let config = &broker.config;
        let endpoints = vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: config.advertised_host.clone(),
            port: u16::try_from(config.advertised_port).map_err(|_| AdminError::new(errors::INVALID_CONFIG, "advertised port out of range"))?,
            security_protocol: 0,
        }];
        let rack: Option<String> = None;
        if let Some(b) = image.brokers.get(&config.node_id) {
            if b.endpoints == endpoints && b.rack == rack && !b.fenced {
                return Ok(());
            }
        }
        let log_end = state.log.as_ref().map_or(0, MetadataLog::end_offset);
        let epoch = image.brokers.get(&config.node_id).map_or(log_end, |b| (b.epoch + 1).max(log_end));
        let incarnation_id = rand::Rng::random::<u128>(&mut state.rng);
        let record = MetadataRecord::RegisterBroker { broker_id: config.node_id, incarnation_id, broker_epoch: epoch, endpoints, rack, fenced: false };
        self.commit(broker, &mut state, vec![record])
    }

    /// Allocates the next block of producer ids for `broker`.
    pub async fn allocate_producer_ids(&self, broker: &Broker) -> Result<std::ops::Range<i64>, AdminError> {
        let mut state = self.state.lock().await;
        let start = broker.image().next_producer_id;
        let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or_else(|| AdminError::new(errors::KAFKA_STORAGE_ERROR, "producer ids exhausted"))?;
        let epoch = broker.image().brokers.get(&broker.config.node_id).map_or(-1, |b| b.epoch);
        let record = MetadataRecord::ProducerIds { broker_id: broker.config.node_id, broker_epoch: epoch, next_producer_id: end };
        self.commit(broker, &mut state, vec![record])?;
        tracing::info!(start, end, "allocated producer id block");
        Ok(start..end)
    }

    pub fn validate_create(&self, broker: &Broker, image: &MetadataImage, name: &str, partitions: i32, rf: i16, configs: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
        topics::validate_create(image, &broker.log_defaults(), name, partitions, rf, configs)
    }

    pub async fn create_topics(&self, broker: &Broker, new: Vec<NewTopic>, validate_only: bool) -> Vec<Result<Topic, AdminError>> {
        let mut state = self.state.lock().await;
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
        if let Err(e) = self.commit(broker, &mut state, records) {
            return planned.iter().map(|r| r.as_ref().map_err(Clone::clone).and(Err(e.clone()))).collect();
        }
        for p in planned.iter().flatten() {
            tracing::info!(topic = %p.name, partitions = p.partitions.len(), "created topic");
        }
        planned.iter().map(|r| r.as_ref().map(answer).map_err(Clone::clone)).collect()
    }

    pub async fn delete_topic(&self, broker: &Broker, name: &str) -> Result<Uuid, AdminError> {
        let mut state = self.state.lock().await;
        let image = broker.image();
        let t = image.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        let id = t.id;
        self.commit(broker, &mut state, vec![MetadataRecord::RemoveTopic { topic_id: id }])?;
        Ok(Uuid::from_u128(id))
    }

    pub async fn create_partitions(&self, broker: &Broker, name: &str, count: i32, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.state.lock().await;
        let image = broker.image();
        let records = topics::plan_create_partitions(&image, name, count, &mut state.rng)?;
        if validate_only {
            return Ok(());
        }
        self.commit(broker, &mut state, records)
    }

    pub async fn set_topic_configs(&self, broker: &Broker, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.state.lock().await;
        let image = broker.image();
        let records = configs::plan_topic_configs(&image, &broker.log_defaults(), name, &configs)?;
        if validate_only {
            return Ok(());
        }
        self.commit(broker, &mut state, records)
    }

    pub async fn set_broker_configs(&self, broker: &Broker, overrides: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.state.lock().await;
        let image = broker.image();
        let records = configs::plan_broker_configs(&image, &broker.config, &overrides)?;
        if validate_only {
            return Ok(());
        }
        self.commit(broker, &mut state, records)
    }

    /// Closes the metadata log (clean shutdown). Later admin requests fail.
    pub fn close(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            if let Some(log) = state.log.take() {
                log.close();
            }
        }
    }
}
