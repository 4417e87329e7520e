//! Durable at acknowledgement: whenever the broker relied on data being durable — it acknowledged
//! a produce or an offset commit, served records under fsync-before-ack, or a `write_atomic`
//! (checkpoint, snapshot, metadata) returned — the simulated disk said that the bytes and the
//! directory entries naming them would survive a power loss at that very moment.
//!
//! The broker asks at those points through `gregor_core::probe` (simulator builds only); the run
//! collects the answers (`HistoryData::durability_findings`). Unlike `lost-ack`, this does not
//! need a power loss to land in the window in which a missing fsync matters: a missing fsync,
//! directory fsync or flush fails the seed the first time it is relied on.

use super::{CheckContext, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let (count, examples) = &h.durability_findings;
    (*count > 0).then(|| Violation {
        checker: "durable-at-ack",
        message: format!("{count} times the broker relied on data that was not durable:\n      {}", examples.join("\n      ")),
    })
}
