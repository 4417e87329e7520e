//! gregor-server: the broker (and, later, controller) process and its command-line tools.
//!
//! [`server::run`] is the single entry point that starts a broker, used by the `gregor` binary
//! and (with simulated disk, clock and network) by the simulator.

pub mod broker;
pub mod cli;
pub mod config;
pub mod errors;
pub mod handlers;
pub mod listener;
pub mod server;
