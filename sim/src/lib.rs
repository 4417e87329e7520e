//! The deterministic simulator of Gregor clusters.
//!
//! A run is one seed: the seed draws the run's knobs (fault mix, durability policy, workload),
//! builds a madsim world whose broker nodes run the production broker on simulated disks, drives
//! client workloads over the Kafka wire protocol, injects faults, heals them, and checks the
//! recorded history. The same seed always makes the same run, down to the trace hash.
//!
//! Everything here is compiled only with `RUSTFLAGS="--cfg madsim"`.

#![cfg(madsim)]

mod ack_replicas;
pub mod checkers;
pub mod cluster;
pub mod group_member;
pub mod history;
pub mod knobs;
pub mod nemesis;
mod operator;
pub mod scenario;
pub mod trace;
pub mod workload;
pub mod world;

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_core::bugs::Bug;

use crate::checkers::{CheckContext, Violation};
use crate::knobs::Knobs;
pub use crate::scenario::Scenario;
use crate::trace::Trace;

/// Simulated time after which a run is abandoned as hung.
pub const SIM_TIME_LIMIT: Duration = Duration::from_secs(600);

/// How to run a seed.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub scenario: Scenario,
    /// Print the event log (and the brokers' logs) while running.
    pub trace: bool,
    /// Injected bugs (mutation testing).
    pub bugs: Vec<Bug>,
}

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub scenario: Scenario,
    pub knobs: Knobs,
    pub sim_time: Duration,
    pub wall_time: Duration,
    pub faults: BTreeMap<String, u64>,
    pub operations: u64,
    pub acks: u64,
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    pub trace_lines: u64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one command that replays this run exactly.
    pub fn replay_line(&self, bugs: &[Bug]) -> String {
        let bugs: String = bugs.iter().map(|b| format!(" --bug {b}")).collect();
        format!("cargo run --release -p gregor-chaos -- sim --scenario {} --seeds {} --trace{bugs}", self.scenario, self.seed)
    }
}

thread_local! {
    /// Whether panics on this thread are being recorded (while a seed runs).
    static RECORD_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Panics recorded on this thread: nodes that panicked and were restarted
    /// ([`world::World::restart_on_panic_matching`]) leave only this trace.
    static PANICS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Installs (once per process) a panic hook that records the panics of threads running seeds,
/// then calls the previous hook.
fn install_panic_recorder() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if RECORD_PANICS.with(|r| r.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                PANICS.with(|p| p.borrow_mut().push(msg));
            }
            previous(info);
        }));
    });
}

/// Runs one seed to completion and checks it.
pub fn run_seed(seed: u64, opts: &RunOptions) -> Report {
    install_panic_recorder();
    PANICS.with(|p| p.borrow_mut().clear());
    RECORD_PANICS.with(|r| r.set(true));
    gregor_core::bugs::set_active(&opts.bugs);
    let _ = gregor_core::probe::take_findings();
    let knobs = match opts.scenario {
        Scenario::SingleBroker => Knobs::draw(seed),
        Scenario::Groups => scenario::group_knobs(seed),
        Scenario::Cluster => cluster::cluster_knobs(seed, 3, 0),
        Scenario::Cluster5 => cluster::cluster_knobs(seed, 5, 0),
        Scenario::ClusterSplit => cluster::cluster_knobs(seed, 6, 3),
        Scenario::Compaction => scenario::compaction_knobs(seed),
        Scenario::ClusterCompaction => cluster::cluster_compaction_knobs(seed),
    };
    let wall = std::time::Instant::now();
    let mut rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.set_time_limit(SIM_TIME_LIMIT);
    let _log = opts.trace.then(install_broker_log);
    let scenario = opts.scenario;
    let run_knobs = knobs.clone();
    let trace_print = opts.trace;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let trace = Trace::new(trace_print);
            let outcome = match scenario {
                Scenario::SingleBroker | Scenario::Compaction => scenario::single_broker(seed, &run_knobs, trace.clone()).await,
                Scenario::Groups => scenario::groups(seed, &run_knobs, trace.clone()).await,
                Scenario::Cluster | Scenario::Cluster5 | Scenario::ClusterSplit | Scenario::ClusterCompaction => {
                    cluster::cluster(seed, &run_knobs, trace.clone()).await
                }
            };
            let result = (outcome, trace.hash(), trace.lines(), trace.elapsed());
            // The scenario's world has killed its nodes; one more turn of the executor drops
            // their tasks (see `World`'s drop).
            tokio::time::sleep(Duration::from_millis(1)).await;
            result
        })
    }));
    let wall_time = wall.elapsed();
    RECORD_PANICS.with(|r| r.set(false));
    let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    gregor_core::bugs::set_active(&[]);
    // A scenario that panicked did not remove its observer of acknowledged writes.
    gregor_core::probe::set_observer(None);
    gregor_core::probe::arm_fault_points(None);
    let findings = gregor_core::probe::take_findings();
    match result {
        Ok((mut outcome, trace_hash, trace_lines, sim_time)) => {
            outcome.history.durability_findings = findings;
            let ctx = CheckContext { durability: knobs.durability, liveness_bound: Duration::from_millis(scenario::LIVENESS_BOUND_MS) };
            let mut violations = checkers::check_all(&outcome.history, &ctx);
            if !panics.is_empty() {
                let shown: Vec<&str> = panics.iter().take(checkers::EXAMPLES_MAX).map(String::as_str).collect();
                violations.push(Violation {
                    checker: "panic",
                    message: format!("{} panics in nodes (each node restarted):\n      {}", panics.len(), shown.join("\n      ")),
                });
            }
            Report {
                seed,
                scenario,
                knobs,
                sim_time,
                wall_time,
                faults: outcome.faults,
                operations: outcome.history.operations,
                acks: outcome.history.acks.len() as u64,
                violations,
                trace_hash,
                trace_lines,
            }
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Report {
                seed,
                scenario,
                knobs,
                sim_time: Duration::ZERO,
                wall_time,
                faults: BTreeMap::new(),
                operations: 0,
                acks: 0,
                violations: vec![Violation { checker: "panic", message: msg }],
                trace_hash: 0,
                trace_lines: 0,
            }
        }
    }
}

/// Routes the brokers' own `tracing` output to stderr for a traced replay, stamped with
/// simulated time (madsim tags each line with the node it comes from).
fn install_broker_log() -> tracing::subscriber::DefaultGuard {
    struct SimTime;
    impl tracing_subscriber::fmt::time::FormatTime for SimTime {
        fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
            match madsim::time::TimeHandle::try_current() {
                Some(t) => {
                    let e = t.elapsed();
                    write!(w, "{:>4}.{:06}s", e.as_secs(), e.subsec_micros())
                }
                None => write!(w, "       -   "),
            }
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_timer(SimTime).with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).finish();
    tracing::subscriber::set_default(subscriber)
}
