//! The cluster scenario's operator: while faults are injected, it asks random nodes for the
//! changes an operator makes to a running cluster — preferred leader elections (ElectLeaders)
//! and replica moves of the `events` partitions (AlterPartitionReassignments, sometimes cancelled
//! again) — through the same Kafka requests `gregor leader-election` and `gregor partitions
//! reassign` send. The checkers then hold the cluster to the same promises as without them:
//! no acknowledged record lost, replicas agreeing below the high watermark.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{Pool, Shared};
use crate::workload;

/// What one operator action was, for the fault counts.
const ELECTION: &str = "preferred leader election";
const REASSIGNMENT: &str = "partition reassignment";
const CANCEL: &str = "reassignment cancelled";

/// Acts every ~`gap_ms` until stopped; returns how many of each action it asked for.
pub(crate) async fn operator(sh: Shared, gap_ms: u64, seed: u64) -> BTreeMap<String, u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool = Pool::new("operator", 12_000);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let brokers: Vec<i32> = sh.serving.iter().map(|i| *i as i32 + 1).collect();
    while !sh.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(gap_ms / 2..=gap_ms * 3 / 2))).await;
        if sh.stopped() {
            break;
        }
        let addr = sh.addrs[rng.random_range(0..sh.addrs.len())].clone();
        let roll = rng.random_range(0..10);
        let (what, outcome) = if roll < 4 {
            let mut req = ElectLeadersRequest::default();
            req.election_type = 0;
            req.timeout_ms = 10_000;
            req.topic_partitions = None;
            let Some(c) = pool.get(&addr, &sh.trace).await else { continue };
            (ELECTION, c.send(&req).await.map(|r| format!("error {}, {} topics", r.error_code, r.replica_election_results.len())))
        } else {
            let partition = rng.random_range(0..sh.partitions);
            let target = if roll < 9 {
                let mut pick = brokers.clone();
                let mut chosen = Vec::new();
                for _ in 0..(sh.replication_factor as usize).min(pick.len()) {
                    chosen.push(pick.swap_remove(rng.random_range(0..pick.len())));
                }
                Some(chosen)
            } else {
                None
            };
            let mut p = ReassignablePartition::default();
            p.partition_index = partition;
            p.replicas = target.as_ref().map(|t| t.iter().map(|b| BrokerId(*b)).collect());
            let mut t = ReassignableTopic::default();
            t.name = workload::name(&sh.topic);
            t.partitions = vec![p];
            let mut req = AlterPartitionReassignmentsRequest::default();
            req.timeout_ms = 10_000;
            req.allow_replication_factor_change = true;
            req.topics = vec![t];
            let Some(c) = pool.get(&addr, &sh.trace).await else { continue };
            let what = if target.is_some() { REASSIGNMENT } else { CANCEL };
            let sent = c.send(&req).await.map(|r| {
                let code = r.responses.first().and_then(|t| t.partitions.first()).map_or(r.error_code, |p| p.error_code);
                format!("partition {partition} to {target:?}: error {code}")
            });
            (what, sent)
        };
        sh.history.lock().operations += 1;
        match outcome {
            Ok(answer) => sh.trace.event("operator", format!("{what} at {addr}: {answer}")),
            Err(e) => {
                sh.trace.event("operator", format!("{what} at {addr}: {e}"));
                pool.drop_conn(&addr);
            }
        }
        *counts.entry(what.to_string()).or_default() += 1;
    }
    counts
}
