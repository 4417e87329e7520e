//! lost-write: an acknowledged send that no read saw, although some read of its partition saw
//! a higher offset — the record was there to be read and is gone (Jepsen's `lost-write`).

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::real::history::History;

pub fn check(h: &History) -> Option<Violation> {
    let read: BTreeSet<(i32, u64)> = h.reads().map(|(p, _, v)| (p, v)).collect();
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in h.reads() {
        let e = highest.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
    let lost = h
        .acked()
        .filter(|(p, o, v, _)| !read.contains(&(*p, *v)) && highest.get(p).is_some_and(|hi| hi > o))
        .map(|(p, o, v, t)| format!("value {v} acknowledged at {p}/{o} (t={t} ms), never read; reads reached {p}/{}", highest[&p]))
        .collect();
    Violation::from_instances("lost-write", "acknowledged records missing below what was read", lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, final_read, poll};

    #[test]
    fn a_hole_below_what_was_read_is_a_lost_write() {
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 0, 11, 1), ack(1, 0, 12, 2), final_read(0, &[(0, 10), (2, 12)])] };
        let v = check(&h).expect("value 11 was lost");
        assert_eq!(v.count, 1);
        assert!(v.detail.contains("value 11 acknowledged at 0/1"), "{}", v.detail);
    }

    #[test]
    fn the_unread_tail_is_not_a_lost_write_and_a_clean_history_passes() {
        let tail = History { ops: vec![ack(1, 0, 10, 0), ack(1, 0, 11, 1), poll(2, 0, 0, &[(0, 10)])] };
        assert_eq!(check(&tail), None, "unseen, not lost: nothing above it was read");
        let clean = History { ops: vec![ack(1, 0, 10, 0), ack(1, 1, 11, 0), final_read(0, &[(0, 10)]), final_read(1, &[(0, 11)])] };
        assert_eq!(check(&clean), None);
    }
}
