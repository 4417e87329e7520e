//! Checkers over a real run's [`History`], as Jepsen's Kafka queue workload defines them, one
//! property per file. Each returns the violations it found, naming the records involved.

use super::history::History;

pub mod committed_backwards;
pub mod duplicate;
pub mod inconsistent_offsets;
pub mod liveness;
pub mod lost_write;
pub mod nonmonotonic_poll;
pub mod nonmonotonic_send;
pub mod poll_skip;
pub mod unseen;

/// How many offending records a violation lists.
pub const EXAMPLES_MAX: usize = 10;

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The checker's name.
    pub checker: &'static str,
    /// What is wrong, with the records involved (at most [`EXAMPLES_MAX`] of them).
    pub detail: String,
    /// How many instances there were in all.
    pub count: usize,
}

impl Violation {
    /// A violation of `checker` from its instances (none: no violation).
    pub fn from_instances(checker: &'static str, what: &str, instances: Vec<String>) -> Option<Violation> {
        if instances.is_empty() {
            return None;
        }
        let shown: Vec<&str> = instances.iter().take(EXAMPLES_MAX).map(String::as_str).collect();
        Some(Violation { checker, detail: format!("{what}: {}", shown.join("; ")), count: instances.len() })
    }
}

/// Every checker's name, in the order [`check_all`] runs them.
pub const NAMES: [&str; 9] =
    ["lost-write", "unseen", "duplicate", "inconsistent-offsets", "nonmonotonic-send", "nonmonotonic-poll", "poll-skip", "committed-backwards", "liveness"];

/// Runs every checker.
pub fn check_all(h: &History) -> Vec<Violation> {
    [
        lost_write::check(h),
        unseen::check(h),
        duplicate::check(h),
        inconsistent_offsets::check(h),
        nonmonotonic_send::check(h),
        nonmonotonic_poll::check(h),
        poll_skip::check(h),
        committed_backwards::check(h),
        liveness::check(h),
    ]
    .into_iter()
    .flatten()
    .collect()
}
