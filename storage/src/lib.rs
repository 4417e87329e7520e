//! gregor-storage: the partition log over the [`gregor_core::disk`] seam.
//!
//! A partition is a directory of segments holding Kafka v2 record batches exactly as produced
//! (with broker-assigned offsets) or as replicated from the leader, sparse offset and time
//! indexes, checkpoint files (including the leader epoch cache's) and the idempotent producers'
//! state. The log recovers to the longest valid prefix after a crash, never invents a record,
//! and checks every batch's CRC32C when it reads it. [`FileDisk`] is the real-file adapter; [`MemDisk`] is the
//! fault-injecting in-memory disk used by tests and the simulator.

pub mod config;
// The real-disk adapter: the one storage module allowed to use std::fs (see clippy.toml).
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod file_disk;
pub mod cleaner;
mod index;
pub mod log;
pub mod mem_disk;
pub mod producer_state;
mod segment;

pub use config::{CleanupPolicy, ConfigError, LogConfig, TimestampType};
pub use file_disk::FileDisk;
pub use log::{AppendInfo, AppendOutcome, CleanOptions, CleanPass, CleanReport, CleanStep, LogError, PartitionLog, ReadResult, RecoveryReport, RetentionReport};
pub use mem_disk::{FaultConfig, FaultCounts, MemDisk};
pub use producer_state::{ProducerError, ProducerStateMap};
pub use gregor_core::replica::epoch_cache::{EpochEntry, LeaderEpochCache};
