//! nonmonotonic-send: one producer's acknowledged sends to a partition, in the order it was
//! told of them, must have increasing offsets (Jepsen's `nonmonotonic-send`): an idempotent
//! producer's batches are appended in order, once.

use std::collections::BTreeMap;

use super::Violation;
use crate::real::history::{History, Op, SendOutcome};

pub fn check(h: &History) -> Option<Violation> {
    let mut last: BTreeMap<(u32, i32), (i64, u64)> = BTreeMap::new();
    let mut bad = Vec::new();
    for op in &h.ops {
        let Op::Send { process, partition, value, outcome: SendOutcome::Acked { offset }, .. } = op else { continue };
        if let Some((prev, prev_value)) = last.insert((*process, *partition), (*offset, *value)) {
            if *offset <= prev {
                bad.push(format!("producer {process}: value {value} acknowledged at {partition}/{offset} after value {prev_value} at {partition}/{prev}"));
            }
        }
    }
    Violation::from_instances("nonmonotonic-send", "a producer's acknowledged offsets went back", bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::ack;

    #[test]
    fn an_acknowledgement_below_the_previous_one_is_nonmonotonic() {
        let h = History { ops: vec![ack(1, 0, 10, 4), ack(1, 0, 11, 3)] };
        let v = check(&h).expect("went back");
        assert!(v.detail.contains("value 11 acknowledged at 0/3 after value 10 at 0/4"), "{}", v.detail);
    }

    #[test]
    fn other_producers_and_partitions_are_independent() {
        let h = History { ops: vec![ack(1, 0, 10, 4), ack(2, 0, 11, 3), ack(1, 1, 12, 0), ack(1, 0, 13, 5)] };
        assert_eq!(check(&h), None);
    }
}
