//! Partition replication, sans-IO: the leader epoch cache, the leader's view of its followers
//! (ISR, high watermark) and a follower's truncation decision. The broker's replica manager
//! drives these with what it reads from disk and the network; nothing here performs I/O.

pub mod epoch_cache;
pub mod divergence;
pub mod leader;
