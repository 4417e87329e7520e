//! gregor-core: the domain types shared by every Gregor crate and the I/O seam.
//!
//! Nothing in this crate performs I/O, reads a clock or draws randomness on its own: the traits in
//! [`disk`] and [`clock`] are the only way the rest of Gregor reaches the outside world, so the same
//! code runs on real files and sockets or inside the deterministic simulator. The one exception is
//! [`clock::SystemClock`], the production adapter of the clock seam.

pub mod batch;
pub mod batch_filter;
pub mod bugs;
pub mod be_reader;
pub mod clock;
pub mod compression;
pub mod consumer_protocol;
pub mod disk;
pub mod errors;
pub mod group;
pub mod metadata;
pub mod probe;
pub mod raft;
pub mod replica;
pub mod records;
pub mod topic;
