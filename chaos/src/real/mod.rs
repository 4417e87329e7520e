//! `gregor-chaos real`: chaos on real `gregor` processes (see [`run`]). [`history`] is what a
//! run records and [`checkers`] judge it; both are plain data and code, tested on planted
//! histories. The runner, the cluster and the report talk to real processes, files and clocks:
//! they are binary-only code, never simulated.

pub mod checkers;
pub mod history;
#[allow(clippy::disallowed_methods)]
pub mod interrupt;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod cluster;
pub mod nemesis;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod netns;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod report;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod run;
pub mod watchdog;
