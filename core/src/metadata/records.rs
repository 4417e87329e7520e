//! Metadata records: the only way cluster metadata changes. Named and shaped after Kafka's
//! KRaft records (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`,
//! `PartitionChangeRecord`, `ConfigRecord`, `ProducerIdsRecord`, `RemoveTopicRecord`, …).
//!
//! Each record encodes as `[type: u8][version: u8][fields]`. The encoding is Gregor's own
//! (see [`super::codec`]); the metadata log stores each record as the value of one record in a
//! Kafka v2 record batch, so the batch CRC32C covers it. Decoding refuses unknown types, unknown
//! versions and trailing bytes: a record this code does not fully understand is never applied.

use super::codec::{Reader, Writer};

/// A topic id (Kafka's 128-bit UUID).
pub type TopicId = u128;

/// "No leader" in a partition registration (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One of a broker's listeners, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

/// A change of a partition's leader in [`MetadataRecord::PartitionChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderChange {
    /// The leader stays (Kafka encodes this as -2).
    Keep,
    /// The leader becomes this broker, or [`NO_LEADER`]; the leader epoch is bumped.
    Set(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A broker joins (or rejoins with a new incarnation). Brokers register fenced and are
    /// unfenced by the controller once they have caught up with the metadata log.
    RegisterBroker { broker_id: i32, incarnation_id: u128, broker_epoch: i64, endpoints: Vec<Endpoint>, rack: Option<String>, fenced: bool },
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    FenceBroker { broker_id: i32, broker_epoch: i64 },
    UnfenceBroker { broker_id: i32, broker_epoch: i64 },
    /// A topic exists; its partitions follow as [`MetadataRecord::Partition`] records.
    Topic { name: String, topic_id: TopicId },
    /// A partition exists. `adding`/`removing` are the replicas an ongoing reassignment adds
    /// and removes (both empty when none is ongoing; `replicas` then is the whole assignment).
    /// `elr` and `last_known_elr` are KIP-966's eligible leader replicas (see
    /// [`super::PartitionRegistration`]).
    Partition {
        topic_id: TopicId,
        partition_id: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        adding: Vec<i32>,
        removing: Vec<i32>,
        elr: Vec<i32>,
        last_known_elr: Vec<i32>,
    },
    /// Every change bumps the partition epoch; a leader change also bumps the leader epoch.
    /// `None` fields are unchanged.
    PartitionChange {
        topic_id: TopicId,
        partition_id: i32,
        leader: LeaderChange,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
        adding: Option<Vec<i32>>,
        removing: Option<Vec<i32>>,
        elr: Option<Vec<i32>>,
        last_known_elr: Option<Vec<i32>>,
    },
    /// Sets (`Some`) or removes (`None`) one config key of a resource. A broker resource named
    /// "" holds the cluster-wide dynamic defaults.
    Config { resource_type: i8, resource_name: String, name: String, value: Option<String> },
    /// Producer ids below `next_producer_id` have been handed out to brokers.
    ProducerIds { broker_id: i32, broker_epoch: i64, next_producer_id: i64 },
    RemoveTopic { topic_id: TopicId },
    FeatureLevel { name: String, level: i16 },
}

/// Why bytes are not a metadata record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown metadata record type {0}")]
    UnknownType(u8),
    #[error("unsupported version {version} of metadata record type {record_type}")]
    UnknownVersion { record_type: u8, version: u8 },
    #[error("malformed metadata record of type {0}")]
    Malformed(u8),
}

const REGISTER_BROKER: u8 = 0;
const UNREGISTER_BROKER: u8 = 1;
const FENCE_BROKER: u8 = 2;
const UNFENCE_BROKER: u8 = 3;
const TOPIC: u8 = 4;
const PARTITION: u8 = 5;
const PARTITION_CHANGE: u8 = 6;
const CONFIG: u8 = 7;
const PRODUCER_IDS: u8 = 8;
const REMOVE_TOPIC: u8 = 9;
const FEATURE_LEVEL: u8 = 10;

/// The first version of every record type. Partition and PartitionChange records gained the
/// reassignment fields in version 1 and the eligible leader replicas in version 2; each is
/// written only when its fields are set, so a log without them stays readable by a Gregor that
/// predates them.
const VERSION: u8 = 0;
const WITH_REASSIGNMENT: u8 = 1;
const WITH_ELR: u8 = 2;

impl MetadataRecord {
    pub fn type_id(&self) -> u8 {
        match self {
            MetadataRecord::RegisterBroker { .. } => REGISTER_BROKER,
            MetadataRecord::UnregisterBroker { .. } => UNREGISTER_BROKER,
            MetadataRecord::FenceBroker { .. } => FENCE_BROKER,
            MetadataRecord::UnfenceBroker { .. } => UNFENCE_BROKER,
            MetadataRecord::Topic { .. } => TOPIC,
            MetadataRecord::Partition { .. } => PARTITION,
            MetadataRecord::PartitionChange { .. } => PARTITION_CHANGE,
            MetadataRecord::Config { .. } => CONFIG,
            MetadataRecord::ProducerIds { .. } => PRODUCER_IDS,
            MetadataRecord::RemoveTopic { .. } => REMOVE_TOPIC,
            MetadataRecord::FeatureLevel { .. } => FEATURE_LEVEL,
        }
    }

    /// The version this record is written at.
    fn version(&self) -> u8 {
        match self {
            MetadataRecord::Partition { elr, last_known_elr, .. } if !elr.is_empty() || !last_known_elr.is_empty() => WITH_ELR,
            MetadataRecord::PartitionChange { elr, last_known_elr, .. } if elr.is_some() || last_known_elr.is_some() => WITH_ELR,
            MetadataRecord::Partition { adding, removing, .. } if !adding.is_empty() || !removing.is_empty() => WITH_REASSIGNMENT,
            MetadataRecord::PartitionChange { adding, removing, .. } if adding.is_some() || removing.is_some() => WITH_REASSIGNMENT,
            _ => VERSION,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.type_id());
        let version = self.version();
        w.u8(version);
        match self {
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, broker_epoch, endpoints, rack, fenced } => {
                w.i32(*broker_id);
                w.u128(*incarnation_id);
                w.i64(*broker_epoch);
                w.buf.extend_from_slice(&(endpoints.len() as u32).to_be_bytes());
                for e in endpoints {
                    w.str(&e.name);
                    w.str(&e.host);
                    w.i32(i32::from(e.port));
                    w.i16(e.security_protocol);
                }
                w.opt_str(rack.as_deref());
                w.bool(*fenced);
            }
            MetadataRecord::UnregisterBroker { broker_id, broker_epoch }
            | MetadataRecord::FenceBroker { broker_id, broker_epoch }
            | MetadataRecord::UnfenceBroker { broker_id, broker_epoch } => {
                w.i32(*broker_id);
                w.i64(*broker_epoch);
            }
            MetadataRecord::Topic { name, topic_id } => {
                w.str(name);
                w.u128(*topic_id);
            }
            MetadataRecord::Partition { topic_id, partition_id, replicas, isr, leader, leader_epoch, partition_epoch, adding, removing, elr, last_known_elr } => {
                w.u128(*topic_id);
                w.i32(*partition_id);
                w.i32s(replicas);
                w.i32s(isr);
                w.i32(*leader);
                w.i32(*leader_epoch);
                w.i32(*partition_epoch);
                if version >= WITH_REASSIGNMENT {
                    w.i32s(adding);
                    w.i32s(removing);
                }
                if version >= WITH_ELR {
                    w.i32s(elr);
                    w.i32s(last_known_elr);
                }
            }
            MetadataRecord::PartitionChange { topic_id, partition_id, leader, isr, replicas, adding, removing, elr, last_known_elr } => {
                w.u128(*topic_id);
                w.i32(*partition_id);
                w.i32(match leader {
                    LeaderChange::Keep => -2,
                    LeaderChange::Set(id) => *id,
                });
                w.opt_i32s(isr.as_deref());
                w.opt_i32s(replicas.as_deref());
                if version >= WITH_REASSIGNMENT {
                    w.opt_i32s(adding.as_deref());
                    w.opt_i32s(removing.as_deref());
                }
                if version >= WITH_ELR {
                    w.opt_i32s(elr.as_deref());
                    w.opt_i32s(last_known_elr.as_deref());
                }
            }
            MetadataRecord::Config { resource_type, resource_name, name, value } => {
                w.u8(*resource_type as u8);
                w.str(resource_name);
                w.str(name);
                w.opt_str(value.as_deref());
            }
            MetadataRecord::ProducerIds { broker_id, broker_epoch, next_producer_id } => {
                w.i32(*broker_id);
                w.i64(*broker_epoch);
                w.i64(*next_producer_id);
            }
            MetadataRecord::RemoveTopic { topic_id } => w.u128(*topic_id),
            MetadataRecord::FeatureLevel { name, level } => {
                w.str(name);
                w.i16(*level);
            }
        }
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let t = r.u8().ok_or(DecodeError::Malformed(255))?;
        let version = r.u8().ok_or(DecodeError::Malformed(t))?;
        if t > FEATURE_LEVEL {
            return Err(DecodeError::UnknownType(t));
        }
        let known = version == VERSION || ((version == WITH_REASSIGNMENT || version == WITH_ELR) && matches!(t, PARTITION | PARTITION_CHANGE));
        if !known {
            return Err(DecodeError::UnknownVersion { record_type: t, version });
        }
        let rec = decode_body(t, version, &mut r).ok_or(DecodeError::Malformed(t))?;
        if r.remaining() != 0 {
            return Err(DecodeError::Malformed(t));
        }
        Ok(rec)
    }
}

fn decode_body(t: u8, version: u8, r: &mut Reader<'_>) -> Option<MetadataRecord> {
    let reassignment = version >= WITH_REASSIGNMENT;
    let with_elr = version >= WITH_ELR;
    Some(match t {
        REGISTER_BROKER => {
            let broker_id = r.i32()?;
            let incarnation_id = r.u128()?;
            let broker_epoch = r.i64()?;
            // name (2) + host (2) + port (4) + protocol (2) at least.
            let n = r.count(10)?;
            let mut endpoints = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str()?;
                let host = r.str()?;
                let port = u16::try_from(r.i32()?).ok()?;
                let security_protocol = r.i16()?;
                endpoints.push(Endpoint { name, host, port, security_protocol });
            }
            let rack = r.opt_str()?;
            let fenced = r.bool()?;
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, broker_epoch, endpoints, rack, fenced }
        }
        UNREGISTER_BROKER => MetadataRecord::UnregisterBroker { broker_id: r.i32()?, broker_epoch: r.i64()? },
        FENCE_BROKER => MetadataRecord::FenceBroker { broker_id: r.i32()?, broker_epoch: r.i64()? },
        UNFENCE_BROKER => MetadataRecord::UnfenceBroker { broker_id: r.i32()?, broker_epoch: r.i64()? },
        TOPIC => MetadataRecord::Topic { name: r.str()?, topic_id: r.u128()? },
        PARTITION => MetadataRecord::Partition {
            topic_id: r.u128()?,
            partition_id: r.i32()?,
            replicas: r.i32s()?,
            isr: r.i32s()?,
            leader: r.i32()?,
            leader_epoch: r.i32()?,
            partition_epoch: r.i32()?,
            adding: if reassignment { r.i32s()? } else { Vec::new() },
            removing: if reassignment { r.i32s()? } else { Vec::new() },
            elr: if with_elr { r.i32s()? } else { Vec::new() },
            last_known_elr: if with_elr { r.i32s()? } else { Vec::new() },
        },
        PARTITION_CHANGE => {
            let topic_id = r.u128()?;
            let partition_id = r.i32()?;
            let leader = match r.i32()? {
                -2 => LeaderChange::Keep,
                id if id >= NO_LEADER => LeaderChange::Set(id),
                _ => return None,
            };
            let (isr, replicas) = (r.opt_i32s()?, r.opt_i32s()?);
            let (adding, removing) = if reassignment { (r.opt_i32s()?, r.opt_i32s()?) } else { (None, None) };
            let (elr, last_known_elr) = if with_elr { (r.opt_i32s()?, r.opt_i32s()?) } else { (None, None) };
            MetadataRecord::PartitionChange { topic_id, partition_id, leader, isr, replicas, adding, removing, elr, last_known_elr }
        }
        CONFIG => MetadataRecord::Config { resource_type: r.u8()? as i8, resource_name: r.str()?, name: r.str()?, value: r.opt_str()? },
        PRODUCER_IDS => MetadataRecord::ProducerIds { broker_id: r.i32()?, broker_epoch: r.i64()?, next_producer_id: r.i64()? },
        REMOVE_TOPIC => MetadataRecord::RemoveTopic { topic_id: r.u128()? },
        FEATURE_LEVEL => MetadataRecord::FeatureLevel { name: r.str()?, level: r.i16()? },
        _ => return None,
    })
}

/// Encodes the records of one log entry: a u32 count, then each record as a u32 length and its
/// bytes. The records of one entry are committed, and applied, together.
pub fn encode_entry(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        let bytes = r.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes [`encode_entry`]'s output; any damage or trailing byte is an error.
pub fn decode_entry(bytes: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    let mut r = Reader::new(bytes);
    // A record takes at least its 4-byte length and 2-byte header.
    let n = r.count(6).ok_or(DecodeError::Malformed(255))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.count(1).ok_or(DecodeError::Malformed(255))?;
        let body = r.take(len).ok_or(DecodeError::Malformed(255))?;
        out.push(MetadataRecord::decode(body)?);
    }
    if r.remaining() != 0 {
        return Err(DecodeError::Malformed(255));
    }
    Ok(out)
}
