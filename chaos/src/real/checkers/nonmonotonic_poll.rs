//! nonmonotonic-poll: within one assignment (a consumer `epoch`), a consumer's polls of a
//! partition return increasing offsets, poll after poll and within a poll (Jepsen's
//! `nonmonotonic-poll`). A new assignment may start over from the committed offset.

use std::collections::BTreeMap;

use super::Violation;
use crate::real::history::{History, Op};

pub fn check(h: &History) -> Option<Violation> {
    let mut last: BTreeMap<(u32, u32, i32), i64> = BTreeMap::new();
    let mut bad = Vec::new();
    for op in &h.ops {
        let Op::Poll { process, epoch, partition, records, .. } = op else { continue };
        for (o, v) in records {
            if let Some(prev) = last.insert((*process, *epoch, *partition), *o) {
                if *o <= prev {
                    bad.push(format!("consumer {process} (assignment {epoch}) read {partition}/{o} (value {v}) after {partition}/{prev}"));
                }
            }
        }
    }
    Violation::from_instances("nonmonotonic-poll", "a consumer's reads went back within one assignment", bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::poll;

    #[test]
    fn reading_back_within_an_assignment_is_nonmonotonic() {
        let h = History { ops: vec![poll(2, 0, 0, &[(0, 10), (1, 11)]), poll(2, 0, 0, &[(1, 11)])] };
        let v = check(&h).expect("re-read 0/1");
        assert!(v.detail.contains("read 0/1 (value 11) after 0/1"), "{}", v.detail);
    }

    #[test]
    fn a_new_assignment_may_start_over() {
        let h = History { ops: vec![poll(2, 0, 0, &[(0, 10), (1, 11)]), poll(2, 1, 0, &[(0, 10)]), poll(3, 0, 0, &[(0, 10)])] };
        assert_eq!(check(&h), None);
    }
}
