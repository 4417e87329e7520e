//! duplicate: one value at two offsets (Jepsen's `duplicate`): a retried send appended twice,
//! which an idempotent producer must never cause. Both acknowledgements and reads count.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::real::history::History;

pub fn check(h: &History) -> Option<Violation> {
    let mut at: BTreeMap<u64, BTreeSet<(i32, i64)>> = BTreeMap::new();
    for (p, o, v, _) in h.acked() {
        at.entry(v).or_default().insert((p, o));
    }
    for (p, o, v) in h.reads() {
        at.entry(v).or_default().insert((p, o));
    }
    let dups = at
        .iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(v, places)| format!("value {v} at {}", places.iter().map(|(p, o)| format!("{p}/{o}")).collect::<Vec<_>>().join(", ")))
        .collect();
    Violation::from_instances("duplicate", "values at more than one offset", dups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, final_read};

    #[test]
    fn a_value_read_at_two_offsets_is_a_duplicate() {
        let h = History { ops: vec![ack(1, 0, 10, 0), final_read(0, &[(0, 10), (1, 10)])] };
        let v = check(&h).expect("value 10 twice");
        assert!(v.detail.contains("value 10 at 0/0, 0/1"), "{}", v.detail);
    }

    #[test]
    fn reading_a_value_where_it_was_acknowledged_is_fine() {
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 0, 11, 1), final_read(0, &[(0, 10), (1, 11)]), final_read(0, &[(0, 10)])] };
        assert_eq!(check(&h), None);
    }
}
