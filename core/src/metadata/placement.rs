//! Replica placement for new partitions: which brokers hold each partition's replicas, the
//! first of them being the preferred leader.
//!
//! Guarantees: deterministic for the same inputs; the replicas of one partition are distinct;
//! leaders are spread round-robin over the brokers, starting at `start` (the controller draws it
//! from its seeded RNG, as Kafka starts at a random broker); when brokers have racks
//! (`broker.rack`), the brokers are taken in rack-alternating order (one broker of each rack in
//! turn, Kafka's rack-aware order), so consecutive replicas of a partition land on different
//! racks whenever the racks allow it.

use std::collections::BTreeMap;

/// A broker that can receive replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {brokers} broker(s) are registered.")]
    NotEnoughBrokers { rf: i16, brokers: usize },
    #[error("Replication factor must be larger than 0.")]
    InvalidReplicationFactor,
}

/// The brokers in placement order: by id, or rack-alternating when any broker has a rack.
fn ordered(brokers: &[Candidate]) -> Vec<i32> {
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.id);
    if sorted.iter().all(|b| b.rack.is_none()) {
        return sorted.iter().map(|b| b.id).collect();
    }
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in &sorted {
        by_rack.entry(b.rack.clone().unwrap_or_default()).or_default().push(b.id);
    }
    let mut out = Vec::with_capacity(sorted.len());
    for round in 0.. {
        let before = out.len();
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// Replicas for partitions `first..first + count` with replication factor `rf`.
pub fn place(brokers: &[Candidate], first: i32, count: i32, rf: i16, start: usize) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf < 1 {
        return Err(PlacementError::InvalidReplicationFactor);
    }
    let order = ordered(brokers);
    let n = order.len();
    if usize::try_from(rf).unwrap_or(usize::MAX) > n {
        return Err(PlacementError::NotEnoughBrokers { rf, brokers: n });
    }
    Ok((first..first + count)
        .map(|p| {
            let base = start.wrapping_add(p as usize);
            (0..rf as usize).map(|j| order[(base + j) % n]).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i32, rack: Option<&str>) -> Candidate {
        Candidate { id, rack: rack.map(str::to_string) }
    }

    #[test]
    fn leaders_round_robin_and_replicas_distinct() {
        let brokers = [c(3, None), c(1, None), c(2, None)];
        let p = place(&brokers, 0, 6, 1, 0).unwrap();
        assert_eq!(p, vec![vec![1], vec![2], vec![3], vec![1], vec![2], vec![3]]);
        let p = place(&brokers, 0, 3, 3, 1).unwrap();
        assert_eq!(p, vec![vec![2, 3, 1], vec![3, 1, 2], vec![1, 2, 3]]);
        assert!(matches!(place(&brokers, 0, 1, 4, 0), Err(PlacementError::NotEnoughBrokers { rf: 4, brokers: 3 })));
        assert_eq!(place(&brokers, 0, 1, 0, 0), Err(PlacementError::InvalidReplicationFactor));
    }

    #[test]
    fn racks_alternate() {
        let brokers = [c(1, Some("a")), c(2, Some("a")), c(3, Some("b")), c(4, Some("b"))];
        assert_eq!(ordered(&brokers), vec![1, 3, 2, 4]);
        for replicas in place(&brokers, 0, 8, 2, 0).unwrap() {
            let racks: Vec<_> = replicas.iter().map(|r| brokers.iter().find(|b| b.id == *r).unwrap().rack.clone()).collect();
            assert_ne!(racks[0], racks[1], "replicas {replicas:?} share a rack");
        }
    }
}
