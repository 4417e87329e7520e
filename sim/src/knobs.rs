//! The configuration of one simulated run, drawn from its seed (swarm testing: every seed picks
//! its own mix of faults and workload, so a campaign covers combinations nobody thought to write).
//!
//! Every probability and rate is a named knob. Knobs are drawn with the run's own RNG before the
//! world starts, and printed with every violation so a failure can be read without replaying it.

use std::fmt;

use gregor_storage::mem_disk::FaultConfig;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How the broker makes produced records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync before acknowledging (`flush.messages=1`, the default): acknowledged records survive
    /// power loss.
    Fsync,
    /// Kafka's page-cache policy (`flush.messages` large, `flush.ms` periodic): acknowledged
    /// records survive a process crash but not power loss.
    PageCache,
}

/// Which process and network faults the nemesis may inject in this run.
#[derive(Clone, Debug)]
pub struct FaultKnobs {
    /// Mean simulated milliseconds between two injected faults.
    pub mean_gap_ms: u64,
    /// Relative weights of each fault kind (0 disables it).
    pub kill_weight: u32,
    pub power_loss_weight: u32,
    pub pause_weight: u32,
    pub clog_node_weight: u32,
    pub clog_link_weight: u32,
    pub disk_burst_weight: u32,
    /// Whether one bit flip at rest may be injected (budget: one per run, in a segment file).
    pub bit_flip: bool,
    /// Disk fault probabilities while a disk burst lasts.
    pub disk_write_error: f64,
    pub disk_read_error: f64,
    pub disk_sync_error: f64,
    pub disk_no_space: f64,
    /// Crash semantics of the disk (always on).
    pub torn_on_crash: f64,
    pub lose_unsynced_on_crash: f64,
    /// Upper bound of one fsync's simulated duration.
    pub sync_delay_ms_max: u64,
    /// Chance that a crash point (after a segment roll, a rename, a checkpoint write) cuts the
    /// broker's power, and how many times per broker it may (the budget keeps the run live).
    pub crash_point_chance: f64,
    pub crash_points_max: u32,
}

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadKnobs {
    pub partitions: i32,
    pub producers: u32,
    /// acks per producer (-1, 1 or 0), one entry per producer.
    pub acks: Vec<i16>,
    /// Whether each producer is idempotent (only meaningful with acks=-1).
    pub idempotent: Vec<bool>,
    /// Kafka compression codec id per producer (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub compression: Vec<i8>,
    pub records_per_batch_max: u32,
    pub value_bytes_max: usize,
    /// Simulated milliseconds between two produce requests of one producer.
    pub produce_gap_ms: u64,
    /// Probability that a produce request's connection is dropped right after sending it.
    pub drop_connection: f64,
    pub consumers: u32,
    /// Topic `segment.bytes` (small values make segments roll often).
    pub segment_bytes: u64,
    /// Topic `retention.bytes` per partition (-1: unlimited).
    pub retention_bytes: i64,
    /// Whether an admin client issues DeleteRecords and creates/deletes scratch topics.
    pub admin: bool,
    /// A compacted topic (`cleanup.policy=compact`) and a keyed workload with tombstones, or
    /// `None`: the topic deletes by retention and keys are incidental.
    pub compaction: Option<CompactionKnobs>,
}

/// The compaction scenario's topic and workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionKnobs {
    /// Records are keyed `k0` .. `k{keys - 1}`: few keys, many updates of each.
    pub keys: u32,
    /// Chance that a record is a tombstone (a null value).
    pub tombstone_chance: f64,
    /// Topic `delete.retention.ms`: how long a tombstone stays after cleaning reaches it.
    pub delete_retention_ms: i64,
    /// Topic `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// Topic `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
}

impl CompactionKnobs {
    /// The topic configs that make the topic compacted as these knobs say.
    pub fn topic_configs(&self) -> Vec<(String, String)> {
        vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("delete.retention.ms".to_string(), self.delete_retention_ms.to_string()),
            ("min.compaction.lag.ms".to_string(), self.min_compaction_lag_ms.to_string()),
            ("min.cleanable.dirty.ratio".to_string(), self.min_cleanable_dirty_ratio.to_string()),
        ]
    }

    /// Broker settings: the cleaner looks for dirty logs often, with a small offset map (so
    /// that some passes fill it and stop early).
    pub fn broker_settings() -> Vec<(String, String)> {
        vec![
            ("log.cleaner.backoff.ms".to_string(), "300".to_string()),
            ("log.cleaner.dedupe.buffer.size".to_string(), (1 << 20).to_string()),
        ]
    }

    /// Draws compaction knobs from their own stream of `seed`.
    pub fn draw(seed: u64) -> CompactionKnobs {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x636f_6d70_6163_7431);
        CompactionKnobs {
            keys: pick(&mut rng, &[3, 10, 40]),
            tombstone_chance: pick(&mut rng, &[0.0, 0.05, 0.2]),
            delete_retention_ms: pick(&mut rng, &[0, 2_000, 15_000, 600_000]),
            min_compaction_lag_ms: pick(&mut rng, &[0, 0, 1_000, 10_000]),
            min_cleanable_dirty_ratio: pick(&mut rng, &[0.01, 0.1, 0.5]),
        }
    }
}

/// Everything drawn from one seed.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub durability: Durability,
    pub faults: FaultKnobs,
    pub workload: WorkloadKnobs,
    /// Simulated milliseconds of the safety phase (faults on).
    pub safety_ms: u64,
    /// The cluster scenario's own knobs (None in single-node scenarios).
    pub cluster: Option<ClusterKnobs>,
}

/// The cluster scenario: its shape and its nemesis. Faults come one at a time (each is undone
/// before the next), so at any moment at most one node is down, cut off or paused — a majority
/// can always make progress — except a power loss of every node at once, which the default
/// durability policy (fsync before ack, quorum entries counted only once persisted) must survive.
#[derive(Clone, Debug)]
pub struct ClusterKnobs {
    /// Nodes: 3 or 5 combined broker+controller nodes (all voters), or 6.
    pub nodes: usize,
    /// Controller-only nodes among them (the voters; the others are broker-only), or 0: every
    /// node is combined.
    pub controllers: usize,
    /// Mean simulated milliseconds between two faults.
    pub mean_gap_ms: u64,
    /// Relative weights of each fault kind (0 disables it):
    /// a process kill (and restart after up to 5 s) of one node;
    pub kill_weight: u32,
    /// a power loss (unsynced writes lost or torn per the crash model) of one node;
    pub power_loss_weight: u32,
    /// a power loss of every node at once;
    pub power_loss_all_weight: u32,
    /// one node cut off from the other nodes, both ways (clients still reach it);
    pub isolate_weight: u32,
    /// one node's messages to the other nodes held, while it still hears them (or the
    /// reverse): an asymmetric, one-way partition;
    pub one_way_weight: u32,
    /// the nodes split in two halves that cannot talk, both reaching one bridge node;
    pub bridge_weight: u32,
    /// swizzle clogging: nodes clogged one at a time (to clients too), unclogged in random order;
    pub swizzle_weight: u32,
    /// one node paused (a stalled process) for up to 5 s.
    pub pause_weight: u32,
    /// one node stopped as SIGTERM does (controlled shutdown, clean close; killed if it has not
    /// exited within 20 s) and started again after up to 5 s.
    pub graceful_restart_weight: u32,
    /// Chance that a kill, power loss, isolation or pause targets the active controller (the
    /// quorum leader last polled) rather than a random node.
    pub target_controller_chance: f64,
    /// Mean simulated milliseconds between two CreateTopics of the admin client.
    pub create_gap_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: Kafka's default (no snapshot within a
    /// run) or small, so that snapshots are written, and lagging or restarted replicas fetch
    /// them, many times a run.
    pub snapshot_bytes: u64,
    /// Replication factor of every topic the clients create: 1 (each partition lives and dies
    /// with one broker), 3, or (with five brokers) 5.
    pub replication_factor: i16,
    /// `min.insync.replicas` of the `events` topic: 1 with a replication factor of 1, else
    /// 1 or a majority of the replicas (2 of 3, 3 of 5), so that acks=all writes are refused
    /// with NOT_ENOUGH_REPLICAS while too few replicas are in sync.
    pub min_insync_replicas: i16,
    /// Chance that the active controller's answer to an AlterPartition it committed is lost
    /// (`gregor_core::probe::FaultPoint::AlterPartitionAnswer`): the leader must keep counting
    /// the change as possibly made.
    pub lost_alter_partition_answer: f64,
    /// Mean simulated milliseconds between two operator actions (preferred elections and
    /// replica reassignments of the `events` partitions), or 0: no operator. With an operator,
    /// the controller also rebalances leaders by itself every few seconds.
    pub operator_gap_ms: u64,
}

impl ClusterKnobs {
    pub fn draw(seed: u64, nodes: usize, controllers: usize) -> ClusterKnobs {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x636c_7573_7465_7231);
        let w = |rng: &mut SmallRng| if rng.random_bool(0.7) { rng.random_range(1..=5) } else { 0 };
        let mut k = ClusterKnobs {
            nodes,
            controllers,
            mean_gap_ms: rng.random_range(1_000..=4_000),
            kill_weight: w(&mut rng),
            power_loss_weight: w(&mut rng),
            power_loss_all_weight: if rng.random_bool(0.4) { 1 } else { 0 },
            isolate_weight: w(&mut rng),
            one_way_weight: w(&mut rng),
            bridge_weight: w(&mut rng),
            swizzle_weight: w(&mut rng),
            pause_weight: w(&mut rng),
            target_controller_chance: pick(&mut rng, &[0.0, 0.5, 0.8]),
            graceful_restart_weight: pick(&mut SmallRng::seed_from_u64(seed ^ 0x7369_6774_6572_6d21), &[0, 0, 3]),
            create_gap_ms: pick(&mut rng, &[500, 1_500, 3_000]),
            // Drawn from its own stream, so the knobs above stay what they were for every seed.
            snapshot_bytes: pick(&mut SmallRng::seed_from_u64(seed ^ 0x736e_6170_7368_6f74), &[20 * 1024 * 1024, 2_048, 16_384]),
            replication_factor: {
                let brokers = if controllers == 0 { nodes } else { nodes - controllers };
                let choices: &[i16] = if brokers >= 5 { &[1, 3, 3, 5, 5] } else { &[1, 3, 3] };
                pick(&mut SmallRng::seed_from_u64(seed ^ 0x7265_706c_6963_6173), choices)
            },
            operator_gap_ms: pick(&mut SmallRng::seed_from_u64(seed ^ 0x6f70_6572_6174_6f72), &[0, 2_000, 5_000]),
            min_insync_replicas: 1,
            lost_alter_partition_answer: pick(&mut SmallRng::seed_from_u64(seed ^ 0x6c6f_7374_5f61_6e73), &[0.0, 0.1, 0.3]),
        };
        if k.replication_factor > 1 {
            let majority = k.replication_factor / 2 + 1;
            k.min_insync_replicas = pick(&mut SmallRng::seed_from_u64(seed ^ 0x6d69_6e5f_6973_7221), &[1, majority, majority]);
        }
        if k.kill_weight + k.power_loss_weight + k.isolate_weight + k.one_way_weight + k.bridge_weight + k.swizzle_weight + k.pause_weight == 0 {
            k.kill_weight = 1;
            k.isolate_weight = 1;
        }
        k
    }
}

impl FaultKnobs {
    /// The disk faults a broker's disk always has: what a crash does to unsynced writes, and
    /// fsync latency. Error bursts are switched on and off by the nemesis on top of these.
    pub fn crash_faults(&self) -> FaultConfig {
        FaultConfig {
            torn_on_crash: self.torn_on_crash,
            lose_unsynced_on_crash: self.lose_unsynced_on_crash,
            sync_delay_ms_max: self.sync_delay_ms_max,
            ..FaultConfig::default()
        }
    }
}

impl Knobs {
    /// Draws the knobs of `seed`. The same seed always gives the same knobs.
    pub fn draw(seed: u64) -> Knobs {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x6b6e_6f62_735f_7631);
        let w = |rng: &mut SmallRng| if rng.random_bool(0.6) { rng.random_range(1..=5) } else { 0 };
        let faults = FaultKnobs {
            mean_gap_ms: rng.random_range(500..=4_000),
            kill_weight: w(&mut rng),
            power_loss_weight: w(&mut rng),
            pause_weight: w(&mut rng),
            clog_node_weight: w(&mut rng),
            clog_link_weight: w(&mut rng),
            disk_burst_weight: w(&mut rng),
            bit_flip: rng.random_bool(0.25),
            disk_write_error: pick(&mut rng, &[0.0, 0.001, 0.01, 0.05]),
            disk_read_error: pick(&mut rng, &[0.0, 0.001, 0.01, 0.05]),
            disk_sync_error: pick(&mut rng, &[0.0, 0.01, 0.05, 0.2]),
            disk_no_space: pick(&mut rng, &[0.0, 0.001, 0.01]),
            torn_on_crash: pick(&mut rng, &[0.0, 0.3, 0.7, 1.0]),
            lose_unsynced_on_crash: pick(&mut rng, &[0.0, 0.2, 0.5]),
            sync_delay_ms_max: pick(&mut rng, &[0, 1, 5, 20]),
            crash_point_chance: 0.0,
            crash_points_max: 0,
        };
        let producers = rng.random_range(1..=3);
        let workload = WorkloadKnobs {
            partitions: rng.random_range(1..=4),
            producers,
            acks: (0..producers).map(|_| pick(&mut rng, &[-1, -1, 1, 0])).collect(),
            idempotent: (0..producers).map(|_| rng.random_bool(0.5)).collect(),
            compression: (0..producers).map(|_| pick(&mut rng, &[0, 0, 1, 2, 3, 4])).collect(),
            records_per_batch_max: rng.random_range(1..=8),
            value_bytes_max: pick(&mut rng, &[16, 200, 2_000]),
            produce_gap_ms: rng.random_range(5..=100),
            drop_connection: pick(&mut rng, &[0.0, 0.0, 0.02, 0.1]),
            consumers: rng.random_range(0..=2),
            segment_bytes: pick(&mut rng, &[4_096, 16_384, 1 << 20]),
            retention_bytes: pick(&mut rng, &[-1, -1, -1, 20_000, 100_000]),
            admin: rng.random_bool(0.3),
            compaction: None,
        };
        let durability = if rng.random_bool(0.75) { Durability::Fsync } else { Durability::PageCache };
        let mut k = Knobs { durability, faults, workload, safety_ms: 40_000, cluster: None };
        // Drawn from their own stream, so adding them left every other knob of a seed as it was.
        let mut crash_rng = SmallRng::seed_from_u64(seed ^ 0x6372_6173_6870_7431);
        k.faults.crash_points_max = pick(&mut crash_rng, &[0, 0, 1, 2, 4]);
        k.faults.crash_point_chance = pick(&mut crash_rng, &[0.005, 0.02, 0.1]);
        k
    }
}

fn pick<T: Copy>(rng: &mut SmallRng, options: &[T]) -> T {
    options[rng.random_range(0..options.len())]
}

impl fmt::Display for Knobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fk = &self.faults;
        let wk = &self.workload;
        writeln!(f, "  durability: {:?}; safety phase {} ms", self.durability, self.safety_ms)?;
        writeln!(
            f,
            "  faults: every ~{} ms; weights kill={} power-loss={} pause={} clog-node={} clog-link={} disk-burst={}; bit-flip={}",
            fk.mean_gap_ms, fk.kill_weight, fk.power_loss_weight, fk.pause_weight, fk.clog_node_weight, fk.clog_link_weight,
            fk.disk_burst_weight, fk.bit_flip
        )?;
        writeln!(
            f,
            "  disk: burst write-eio={} read-eio={} fsync-eio={} enospc={}; crash torn={} lose-unsynced={}; fsync delay <= {} ms; crash points chance={} max={}",
            fk.disk_write_error, fk.disk_read_error, fk.disk_sync_error, fk.disk_no_space, fk.torn_on_crash,
            fk.lose_unsynced_on_crash, fk.sync_delay_ms_max, fk.crash_point_chance, fk.crash_points_max
        )?;
        write!(
            f,
            "  workload: {} partitions; {} producers acks={:?} idempotent={:?} compression={:?}; batch <= {} records of <= {} B every {} ms; drop-connection={}; {} consumers; segment.bytes={} retention.bytes={}; admin={}",
            wk.partitions, wk.producers, wk.acks, wk.idempotent, wk.compression, wk.records_per_batch_max, wk.value_bytes_max,
            wk.produce_gap_ms, wk.drop_connection, wk.consumers, wk.segment_bytes, wk.retention_bytes, wk.admin
        )?;
        if let Some(c) = &wk.compaction {
            write!(
                f,
                "\n  compaction: {} keys, tombstones {}; delete.retention.ms={} min.compaction.lag.ms={} min.cleanable.dirty.ratio={}",
                c.keys, c.tombstone_chance, c.delete_retention_ms, c.min_compaction_lag_ms, c.min_cleanable_dirty_ratio
            )?;
        }
        if let Some(c) = &self.cluster {
            write!(
                f,
                "\n  cluster: {} nodes ({} controller-only); faults every ~{} ms; weights kill={} power-loss={} power-loss-all={} isolate={} one-way={} bridge={} swizzle={} pause={} graceful-restart={}; target controller {}; CreateTopics every ~{} ms; replication factor {}, min.insync.replicas {}; operator every ~{} ms; AlterPartition answers lost {}",
                c.nodes, c.controllers, c.mean_gap_ms, c.kill_weight, c.power_loss_weight, c.power_loss_all_weight, c.isolate_weight, c.one_way_weight,
                c.bridge_weight, c.swizzle_weight, c.pause_weight, c.graceful_restart_weight, c.target_controller_chance, c.create_gap_ms, c.replication_factor,
                c.min_insync_replicas, c.operator_gap_ms, c.lost_alter_partition_answer
            )?;
        }
        Ok(())
    }
}
