//! inconsistent-offsets: two values at one offset of a partition (Jepsen's
//! `inconsistent-offsets`): replicas that diverged and were both read, or an acknowledgement
//! at an offset that later holds another record.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::real::history::History;

pub fn check(h: &History) -> Option<Violation> {
    let mut values: BTreeMap<(i32, i64), BTreeSet<u64>> = BTreeMap::new();
    for (p, o, v, _) in h.acked() {
        values.entry((p, o)).or_default().insert(v);
    }
    for (p, o, v) in h.reads() {
        values.entry((p, o)).or_default().insert(v);
    }
    let bad = values
        .iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|((p, o), vs)| format!("{p}/{o} holds values {}", vs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")))
        .collect();
    Violation::from_instances("inconsistent-offsets", "offsets with more than one value", bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, final_read, poll};

    #[test]
    fn an_offset_acknowledged_for_one_value_and_read_with_another_is_inconsistent() {
        let h = History { ops: vec![ack(1, 0, 10, 5), poll(2, 0, 0, &[(5, 99)])] };
        let v = check(&h).expect("two values at 0/5");
        assert!(v.detail.contains("0/5 holds values 10, 99"), "{}", v.detail);
    }

    #[test]
    fn the_same_offset_in_two_partitions_is_fine() {
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 1, 11, 0), final_read(0, &[(0, 10)]), final_read(1, &[(0, 11)])] };
        assert_eq!(check(&h), None);
    }
}
