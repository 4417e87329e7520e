//! DeleteRecords keeps what it must: after every acknowledged DeleteRecords(offset), a read at
//! `offset` starts exactly there — every record at or above the requested offset is still
//! readable — unless the log start had meanwhile moved past it for another reason (retention, a
//! later DeleteRecords), which the read's own answer shows. The admin client checks this right
//! after each call (`workload::admin`); this reports what it found.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("delete-records", "DeleteRecords calls that deleted records at or above the requested offset");
    for failure in &h.delete_records_failures {
        f.add(failure.clone());
    }
    f.into_violation()
}
