//! unseen: an acknowledged send that the final read (every partition from its start, after the
//! faults healed) does not hold (Jepsen's `unseen`). Records removed by retention would show
//! here too, so the suite's topics keep everything.

use std::collections::BTreeSet;

use super::Violation;
use crate::real::history::{History, Op};

pub fn check(h: &History) -> Option<Violation> {
    let finals: BTreeSet<i32> = h.ops.iter().filter_map(|op| if let Op::FinalRead { partition, .. } = op { Some(*partition) } else { None }).collect();
    let seen: BTreeSet<(i32, u64)> = h
        .ops
        .iter()
        .filter_map(|op| if let Op::FinalRead { partition, records, .. } = op { Some(records.iter().map(move |(_, v)| (*partition, *v))) } else { None })
        .flatten()
        .collect();
    let missing = h
        .acked()
        .filter(|(p, _, v, _)| !seen.contains(&(*p, *v)))
        .map(|(p, o, v, t)| {
            if finals.contains(&p) {
                format!("value {v} acknowledged at {p}/{o} (t={t} ms) is not in the final read")
            } else {
                format!("value {v} acknowledged at {p}/{o} (t={t} ms): partition {p} was never read at the end")
            }
        })
        .collect();
    Violation::from_instances("unseen", "acknowledged records the final read does not hold", missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, final_read, poll};

    #[test]
    fn an_acknowledged_record_missing_at_the_end_is_unseen() {
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 0, 11, 1), poll(2, 0, 0, &[(1, 11)]), final_read(0, &[(0, 10)])] };
        let v = check(&h).expect("11 is not in the final read");
        assert_eq!(v.count, 1);
        assert!(v.detail.contains("value 11"), "{}", v.detail);
        let unread = History { ops: vec![ack(1, 3, 10, 0)] };
        assert!(check(&unread).unwrap().detail.contains("never read at the end"));
    }

    #[test]
    fn everything_in_the_final_read_passes() {
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 0, 11, 1), final_read(0, &[(0, 10), (1, 11)])] };
        assert_eq!(check(&h), None);
    }
}
