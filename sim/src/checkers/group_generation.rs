//! Consumer groups: within one generation, no partition is assigned to two members.

use std::collections::BTreeMap;

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("group-generation", "partitions assigned to two members in one generation");
    let mut owner: BTreeMap<(i32, i32), &str> = BTreeMap::new();
    for a in &h.assignments {
        for &p in &a.partitions {
            match owner.get(&(a.generation, p)) {
                Some(&m) if m != a.member => {
                    f.add(format!("generation {}: partition {p} assigned to {m} and to {} (at {:?})", a.generation, a.member, a.at));
                }
                _ => {
                    owner.insert((a.generation, p), a.member.as_str());
                }
            }
        }
    }
    f.into_violation()
}
