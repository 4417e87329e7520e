//! Cluster metadata as KRaft keeps it: typed [`MetadataRecord`]s, the only way metadata
//! changes; the [`MetadataImage`] built by applying committed records in order; the
//! [`MetadataDelta`] each batch of records makes, which drives the replica manager and the
//! coordinators; and replica [`placement`].
//!
//! The controller is the only writer of records; every node (controllers and brokers alike)
//! builds its image from the same committed log, so nothing else caches who leads what.

pub mod codec;
mod image;
pub mod placement;
mod records;

#[cfg(test)]
mod tests;

pub use image::{effective_min_insync, ApplyError, BrokerRegistration, ConfigResource, MetadataDelta, MetadataImage, PartitionRegistration, TopicImage};
pub use records::{decode_entry, encode_entry, DecodeError, Endpoint, LeaderChange, MetadataRecord, TopicId, NO_LEADER, RESOURCE_BROKER, RESOURCE_TOPIC};
