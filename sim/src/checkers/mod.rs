//! Checkers: each file states one property and checks it over a run's recorded history.
//!
//! A checker returns the violations it found, each naming the offending records, so the failure
//! can be understood from the report alone. [`check_all`] runs every checker.

use std::fmt;
use std::time::Duration;

use crate::history::HistoryData;
use crate::knobs::Durability;

pub mod acked_min_isr;
pub mod committed_isr_holds;
pub mod committed_prefix;
pub mod compacted_latest;
pub mod delete_records;
pub mod dense_offsets;
pub mod durable_at_ack;
pub mod group_commits;
pub mod group_generation;
pub mod group_resume;
pub mod hw_held;
pub mod hw_monotonic;
pub mod hw_restored;
pub mod latest_monotonic;
pub mod leader_epochs_grow;
pub mod liveness;
pub mod lost_ack;
pub mod metadata_converges;
pub mod no_duplicates;
pub mod no_phantom;
pub mod one_leader_per_epoch;
pub mod one_record_per_offset;
pub mod order;
pub mod replicas_agree;

/// How many offending records a violation lists.
pub const EXAMPLES_MAX: usize = 5;

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.checker, self.message)
    }
}

/// What the checkers need to know besides the history.
#[derive(Clone, Copy, Debug)]
pub struct CheckContext {
    pub durability: Durability,
    /// The liveness bound after the heal.
    pub liveness_bound: Duration,
}

impl CheckContext {
    /// Whether a power loss happened strictly between `a` and `b` (simulated times), which
    /// under the page-cache policy may legitimately undo what was acknowledged or served.
    pub fn power_loss_between(&self, h: &HistoryData, a: Duration, b: Duration) -> bool {
        self.durability == Durability::PageCache && h.power_losses.iter().any(|&t| t > a && t <= b)
    }
}

/// Collects up to [`EXAMPLES_MAX`] examples and a count into one violation.
pub(crate) struct Findings {
    checker: &'static str,
    what: &'static str,
    count: usize,
    examples: Vec<String>,
}

impl Findings {
    pub fn new(checker: &'static str, what: &'static str) -> Findings {
        Findings { checker, what, count: 0, examples: Vec::new() }
    }
    pub fn add(&mut self, example: String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(example);
        }
    }
    pub fn into_violation(self) -> Option<Violation> {
        (self.count > 0).then(|| Violation {
            checker: self.checker,
            message: format!("{} {}:\n      {}", self.count, self.what, self.examples.join("\n      ")),
        })
    }
}

/// Runs every checker; returns the violations and the number of operations checked.
pub fn check_all(h: &HistoryData, ctx: &CheckContext) -> Vec<Violation> {
    let mut v = Vec::new();
    v.extend(liveness::check(h, ctx));
    v.extend(durable_at_ack::check(h, ctx));
    v.extend(acked_min_isr::check(h, ctx));
    v.extend(committed_isr_holds::check(h, ctx));
    v.extend(hw_held::check(h, ctx));
    v.extend(hw_restored::check(h, ctx));
    v.extend(delete_records::check(h, ctx));
    v.extend(lost_ack::check(h, ctx));
    v.extend(compacted_latest::check(h, ctx));
    v.extend(one_record_per_offset::check(h, ctx));
    v.extend(no_phantom::check(h, ctx));
    v.extend(order::check(h, ctx));
    v.extend(dense_offsets::check(h, ctx));
    v.extend(no_duplicates::check(h, ctx));
    v.extend(group_generation::check(h, ctx));
    v.extend(group_commits::check(h, ctx));
    v.extend(group_resume::check(h, ctx));
    v.extend(one_leader_per_epoch::check(h, ctx));
    v.extend(committed_prefix::check(h, ctx));
    v.extend(metadata_converges::check(h, ctx));
    v.extend(leader_epochs_grow::check(h, ctx));
    v.extend(hw_monotonic::check(h, ctx));
    v.extend(latest_monotonic::check(h, ctx));
    v.extend(replicas_agree::check(h, ctx));
    v
}
