//! The fast fixed seed set (`cargo test`), the regression seeds of bugs the simulator found, and
//! the determinism check. Built only with `RUSTFLAGS="--cfg madsim"`.

#![cfg(madsim)]

use gregor_sim::{run_seed, Report, RunOptions, Scenario};

fn run(scenario: Scenario, seed: u64) -> Report {
    run_seed(seed, &RunOptions { scenario, trace: false, bugs: Vec::new() })
}

fn assert_passes(r: &Report) {
    let violations: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert!(r.passed(), "seed {} failed:\n{}\n{}\nreplay: {}", r.seed, r.knobs, violations.join("\n"), r.replay_line(&[]));
}

#[test]
fn fixed_seed_set_passes() {
    for scenario in Scenario::ALL {
        for seed in 1..=12 {
            let r = run(scenario, seed);
            assert_passes(&r);
            assert!(r.acks > 0 || r.knobs.workload.acks.iter().all(|&a| a == 0), "seed {seed}: nothing was acknowledged");
        }
    }
}

/// Seeds that once failed because of broker bugs, kept so the bugs stay fixed.
#[test]
fn regression_seeds_pass() {
    for (seed, bug) in [
        (34, "recovery trusted page-cache bytes whose fsync had failed; a later power loss lost acknowledged records"),
        (118, "retention dropped an idempotent producer's state, so a late retry was written twice"),
        (41, "one corrupt batch failed every read that spanned it, hiding the good records in front of it"),
        (132, "same as 41"),
        (291, "same as 41"),
        (198, "restarting a running node left its listener bound (harness bug: the broker never came back)"),
        (575, "thousands of tiny segments made every simulated-disk directory sync scan every file (harness: minutes per seed)"),
        (1704, "retention moved the log start during the final read, which stopped there (harness bug: reported as lost acks)"),
        (1759, "same as 1704"),
        (2723, "write_atomic reused a temporary file whose fsync had failed; its next \"successful\" fsync made nothing durable, so after a power loss the metadata file was empty and the broker never started again"),
        (344, "recovery rewrote scanned segments but synced them only after scanning them all; an open that then failed on a read error left the rewritten pages dirty, and a later power loss tore records that had been durable"),
        (585, "same as 344"),
    ] {
        let r = run(Scenario::SingleBroker, seed);
        assert!(r.passed(), "regression seed {seed} ({bug}) fails again: {:?}", r.violations);
    }
    for (seed, bug) in [(15, "a SyncGroup was answered although its generation's metadata write failed; after a restart the generation was handed out again")] {
        let r = run(Scenario::Groups, seed);
        assert!(r.passed(), "groups regression seed {seed} ({bug}) fails again: {:?}", r.violations);
    }
    for (seed, bug) in [
        (1, "a bit flip in a batch's base offset (outside its CRC) was copied into a cleaned segment, whose read-back check then failed the partition"),
        (137, "a reader stopped at an empty batch the cleaner kept (harness bug: Kafka's consumers move past it)"),
    ] {
        let r = run(Scenario::Compaction, seed);
        assert!(r.passed(), "compaction regression seed {seed} ({bug}) fails again: {:?}", r.violations);
    }
}

/// More seeds of the cluster scenarios (each takes well under a second of wall time).
#[test]
fn cluster_seed_set_passes() {
    for (scenario, seeds) in [(Scenario::Cluster, 13..=60), (Scenario::Cluster5, 13..=30)] {
        for seed in seeds {
            let r = run(scenario, seed);
            assert_passes(&r);
            assert!(r.acks > 0, "{scenario} seed {seed}: nothing was acknowledged");
        }
    }
}

/// Cluster seeds that once failed because of server bugs, kept so the bugs stay fixed.
#[test]
fn cluster_regression_seeds_pass() {
    for (scenario, seed, bug) in [
        (Scenario::Cluster, 504, "a heartbeat to a controller that went silent hung for 30 s, so the new leader fenced live brokers"),
        (Scenario::Cluster, 118, "a restarted broker took leader epochs from uncommitted entries of its local log; the committed image then lowered them and the broker stopped on its leader-epoch assertion"),
        (Scenario::Cluster, 36, "same as 118"),
        (Scenario::Cluster, 317, "same as 118"),
        (Scenario::Cluster5, 14, "same as 118"),
        (Scenario::ClusterSplit, 1, "a controller-only node bound its controller listener twice and exited"),
        (Scenario::ClusterSplit, 11, "a voter's snapshot beyond the leader's high watermark made the settle check build an empty range backwards (harness bug: panic)"),
        (Scenario::ClusterSplit, 18, "same as 11"),
        (Scenario::Cluster, 28, "a follower told its log diverged at its own log end kept the epoch it had begun there as a leader that wrote nothing, and truncated in a loop without ever fetching again"),
        (Scenario::ClusterSplit, 314, "a leader forgot an ISR expansion whose AlterPartition failed (NOT_CONTROLLER, then INVALID_UPDATE_VERSION) though the controller had committed it, acknowledged acks=all records from itself alone, and the new leader from the committed ISR lacked them"),
        (Scenario::Cluster5, 26, "the replica comparison ran while a follower, cut off until the heal, still held the old leader's tail it had not yet fetched past (harness bug: the settle now waits for every replica to agree)"),
    ] {
        let r = run(scenario, seed);
        assert!(r.passed(), "{scenario} regression seed {seed} ({bug}) fails again: {:?}", r.violations);
    }
}

#[test]
fn a_cluster_seed_replays_identically() {
    for scenario in [Scenario::Cluster, Scenario::Cluster5] {
        let a = run(scenario, 5);
        let b = run(scenario, 5);
        assert_eq!(a.trace_hash, b.trace_hash, "{scenario} seed 5 is not deterministic");
        assert_eq!((a.acks, a.operations, a.sim_time), (b.acks, b.operations, b.sim_time));
        assert!(a.trace_lines > 100, "{scenario} seed 5: trace suspiciously short");
    }
}

#[test]
fn a_seed_replays_identically() {
    for seed in [3, 7] {
        let a = run(Scenario::SingleBroker, seed);
        let b = run(Scenario::SingleBroker, seed);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} is not deterministic");
        assert_eq!((a.acks, a.operations, a.sim_time), (b.acks, b.operations, b.sim_time));
        assert!(a.trace_lines > 100, "seed {seed}: trace suspiciously short");
    }
    assert_ne!(run(Scenario::SingleBroker, 3).trace_hash, run(Scenario::SingleBroker, 4).trace_hash);
}
