//! poll-skip: within one assignment, a consumer that read offset `a` and then `b` of a
//! partition skipped no record between them (Jepsen's `poll-skip`). A record counts as there
//! if any read saw it or it was acknowledged there; offsets nobody knows of (transaction
//! markers, records that were never acknowledged) are gaps a consumer rightly passes over.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::real::history::{History, Op};

pub fn check(h: &History) -> Option<Violation> {
    let mut known: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (p, o, _, _) in h.acked() {
        known.entry(p).or_default().insert(o);
    }
    for (p, o, _) in h.reads() {
        known.entry(p).or_default().insert(o);
    }
    let mut last: BTreeMap<(u32, u32, i32), i64> = BTreeMap::new();
    let mut bad = Vec::new();
    for op in &h.ops {
        let Op::Poll { process, epoch, partition, records, .. } = op else { continue };
        for (o, _) in records {
            if let Some(prev) = last.insert((*process, *epoch, *partition), *o) {
                if *o > prev + 1 {
                    let skipped: Vec<i64> = known.get(partition).map(|k| k.range(prev + 1..*o).copied().take(5).collect()).unwrap_or_default();
                    if !skipped.is_empty() {
                        bad.push(format!("consumer {process} (assignment {epoch}) went from {partition}/{prev} to {partition}/{o}, skipping {skipped:?}"));
                    }
                }
            }
        }
    }
    Violation::from_instances("poll-skip", "a consumer skipped records within one assignment", bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, poll};

    #[test]
    fn passing_over_a_known_record_is_a_skip() {
        let h = History { ops: vec![ack(1, 0, 11, 1), poll(2, 0, 0, &[(0, 10)]), poll(2, 0, 0, &[(2, 12)])] };
        let v = check(&h).expect("skipped 0/1");
        assert!(v.detail.contains("skipping [1]"), "{}", v.detail);
    }

    #[test]
    fn unknown_offsets_and_new_assignments_are_not_skips() {
        let h = History { ops: vec![poll(2, 0, 0, &[(0, 10), (3, 13)]), ack(1, 0, 11, 1), poll(2, 1, 0, &[(5, 15)])] };
        let v = check(&h).expect("0/1 is known (acknowledged) and was skipped");
        assert_eq!(v.count, 1);
        let h = History { ops: vec![poll(2, 0, 0, &[(0, 10), (3, 13)]), poll(2, 1, 0, &[(5, 15)])] };
        assert_eq!(check(&h), None, "offsets 1, 2 and 4 are unknown (e.g. markers)");
    }
}
