//! gregor-server: the broker (and, later, controller) process and its command-line tools.
//!
//! [`server::run`] is the single entry point that starts a broker, used by the `gregor` binary
//! and (with simulated disk, clock and network) by the simulator.

pub mod broker;
// Binary-only tools, never simulated: they read real files and clocks (see clippy.toml).
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod cli;
pub mod config;
pub mod controller;
pub mod controller_listener;
pub mod errors;
pub mod handlers;
pub mod listener;
pub mod quorum;
pub mod meta_properties;
pub mod metrics;
pub mod server;
