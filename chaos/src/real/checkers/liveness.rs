//! liveness: once the last fault has healed, every partition takes an acknowledged write and
//! is read to its end: the cluster recovers by itself. (The runner waits a bounded time for the
//! cluster to settle before the final phase, so a cluster that never recovers fails here.)

use std::collections::BTreeSet;

use super::Violation;
use crate::real::history::{History, Op};

pub fn check(h: &History) -> Option<Violation> {
    let healed = h.ops.iter().filter_map(|op| if let Op::Fault { time_ms, phase, .. } = op { (phase == "stop").then_some(*time_ms) } else { None }).max().unwrap_or(0);
    let mut partitions: BTreeSet<i32> = h.ops.iter().filter_map(|op| if let Op::Send { partition, .. } = op { Some(*partition) } else { None }).collect();
    let read_at_end: BTreeSet<i32> = h.ops.iter().filter_map(|op| if let Op::FinalRead { partition, .. } = op { Some(*partition) } else { None }).collect();
    partitions.extend(read_at_end.iter().copied());
    let written_after: BTreeSet<i32> = h.acked().filter(|(_, _, _, t)| *t >= healed).map(|(p, _, _, _)| p).collect();
    let mut stuck = Vec::new();
    for p in &partitions {
        if !written_after.contains(p) {
            stuck.push(format!("partition {p} took no acknowledged write after the faults healed (t={healed} ms)"));
        }
        if !read_at_end.contains(p) {
            stuck.push(format!("partition {p} was not read at the end"));
        }
    }
    Violation::from_instances("liveness", "the cluster did not recover", stuck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::history::tests::{ack, final_read};

    fn heal(at: u64) -> Op {
        Op::Fault { time_ms: at, kind: "kill".into(), phase: "stop".into(), nodes: vec![1] }
    }

    #[test]
    fn a_partition_without_a_write_after_healing_is_stuck() {
        // ack(.., value, ..) is at time `value`.
        let h = History { ops: vec![ack(1, 0, 10, 0), ack(1, 1, 11, 0), heal(50), ack(999, 0, 60, 1), final_read(0, &[(0, 10), (1, 60)]), final_read(1, &[(0, 11)])] };
        let v = check(&h).expect("partition 1 is stuck");
        assert_eq!(v.count, 1);
        assert!(v.detail.contains("partition 1 took no acknowledged write"), "{}", v.detail);
    }

    #[test]
    fn writes_and_reads_after_healing_pass() {
        let h = History { ops: vec![heal(5), ack(999, 0, 60, 0), final_read(0, &[(0, 60)])] };
        assert_eq!(check(&h), None);
    }
}
