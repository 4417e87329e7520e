//! committed-backwards: a group's acknowledged commits of a partition, in the order they were
//! acknowledged, never name a lower offset than an earlier one. One member owns a partition per
//! generation and a commit from an older generation is refused, so a committed offset that goes
//! back means the coordinator lost or reordered commits (e.g. across a failover). The workload
//! never seeks or resets its group.

use std::collections::BTreeMap;

use super::Violation;
use crate::real::history::{History, Op};

pub fn check(h: &History) -> Option<Violation> {
    let mut last: BTreeMap<(&str, i32), (i64, u32)> = BTreeMap::new();
    let mut bad = Vec::new();
    for op in &h.ops {
        let Op::Commit { process, group, partition, offset, time_ms } = op else { continue };
        if let Some((prev, by)) = last.insert((group.as_str(), *partition), (*offset, *process)) {
            if *offset < prev {
                bad.push(format!("group {group} partition {partition}: consumer {process} committed {offset} at t={time_ms} ms after consumer {by} committed {prev}"));
            }
        }
    }
    Violation::from_instances("committed-backwards", "committed offsets moved back", bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(process: u32, group: &str, partition: i32, offset: i64) -> Op {
        Op::Commit { time_ms: 0, process, group: group.into(), partition, offset }
    }

    #[test]
    fn a_lower_commit_after_a_higher_one_moves_back() {
        let h = History { ops: vec![commit(1, "g", 0, 10), commit(2, "g", 0, 7)] };
        let v = check(&h).expect("10 then 7");
        assert!(v.detail.contains("consumer 2 committed 7") && v.detail.contains("consumer 1 committed 10"), "{}", v.detail);
    }

    #[test]
    fn groups_and_partitions_are_independent_and_equal_commits_are_fine() {
        let h = History { ops: vec![commit(1, "g", 0, 10), commit(1, "g", 0, 10), commit(2, "g", 1, 3), commit(3, "h", 0, 2), commit(2, "g", 0, 11)] };
        assert_eq!(check(&h), None);
    }
}
