//! Scenarios: what world a run builds and what it does to it. Each runs a safety phase (workload
//! plus nemesis), heals every fault, then a liveness phase (a bounded final read), and hands the
//! history to the checkers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::history::{History, HistoryData};
use crate::knobs::{Durability, Knobs};
use crate::trace::Trace;
use crate::workload::{self, Ctx, ProducerSpec};
use crate::world::World;

/// How long the broker has to serve again after the heal.
pub const LIVENESS_BOUND_MS: u64 = 30_000;
/// How long client tasks get to notice the stop flag.
const STOP_GRACE_MS: u64 = 10_000;
/// The producer number of the liveness probe.
pub const PROBE_PRODUCER: u32 = 1_000;

/// A named scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// One broker, producers, consumers and an admin client; process, network and disk faults.
    SingleBroker,
    /// One broker, an idempotent producer and a consumer group whose members join, leave,
    /// crash and stall, under the broker faults of `SingleBroker` (without bit flips).
    Groups,
    /// Three combined broker+controller nodes (a KRaft quorum of three voters), topics created
    /// and written through any node, under process, power and network faults of any node
    /// (see [`crate::cluster`]).
    Cluster,
    /// [`Scenario::Cluster`] with five nodes.
    Cluster5,
    /// [`Scenario::Cluster`] with three controller-only nodes (the voters) and three broker-only
    /// nodes.
    ClusterSplit,
    /// [`Scenario::SingleBroker`] on a compacted topic: few keys, many updates, tombstones, small
    /// segments, a cleaner that runs often; crashes and power losses land in cleaning passes
    /// (crash points in the swap protocol) and disk faults fail them.
    Compaction,
    /// [`Scenario::Cluster`] (three nodes) on a compacted topic of replication factor 1 or 3:
    /// every replica cleans its own copy below its high watermark while leaders change.
    ClusterCompaction,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::SingleBroker,
        Scenario::Groups,
        Scenario::Cluster,
        Scenario::Cluster5,
        Scenario::ClusterSplit,
        Scenario::Compaction,
        Scenario::ClusterCompaction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SingleBroker => "single-broker",
            Scenario::Groups => "groups",
            Scenario::Cluster => "cluster",
            Scenario::Cluster5 => "cluster-5",
            Scenario::ClusterSplit => "cluster-split",
            Scenario::Compaction => "compaction",
            Scenario::ClusterCompaction => "cluster-compaction",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Scenario, String> {
        Scenario::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|x| x.name()).collect();
            format!("unknown scenario {s:?}; known: {}", names.join(", "))
        })
    }
}

/// What a scenario leaves for the checkers and the report.
pub struct Outcome {
    pub history: HistoryData,
    pub faults: BTreeMap<String, u64>,
}

/// One broker under the full single-node fault model.
pub async fn single_broker(seed: u64, knobs: &Knobs, trace: Trace) -> Outcome {
    let fk = &knobs.faults;
    let wk = &knobs.workload;
    let mut world = World::new(seed, trace.clone());
    let mut settings = vec![
        ("log.retention.check.interval.ms".to_string(), "1000".to_string()),
        ("offsets.topic.num.partitions".to_string(), "3".to_string()),
        ("group.initial.rebalance.delay.ms".to_string(), "0".to_string()),
    ];
    if wk.compaction.is_some() {
        settings.extend(crate::knobs::CompactionKnobs::broker_settings());
    }
    world.add_broker(settings, fk.crash_faults());
    let topic = "events";
    let history = History::new(topic, wk.partitions);
    history.lock().compaction = wk.compaction;
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Ctx { history: history.clone(), trace: trace.clone(), stop: stop.clone(), broker: world.brokers[0].addr(), topic: topic.to_string(), partitions: wk.partitions };

    let mut topic_configs = vec![
        ("segment.bytes".to_string(), wk.segment_bytes.to_string()),
        ("retention.bytes".to_string(), wk.retention_bytes.to_string()),
    ];
    if knobs.durability == Durability::PageCache {
        topic_configs.push(("flush.messages".to_string(), "1000000".to_string()));
        topic_configs.push(("flush.ms".to_string(), "1000".to_string()));
    }
    if let Some(c) = &wk.compaction {
        topic_configs.extend(c.topic_configs());
    }
    let admin_node = world.add_client("admin");
    let created = {
        let ctx = ctx.clone();
        let parts = wk.partitions;
        admin_node.spawn(async move { workload::create_topic(&ctx, "admin", "events", parts, &topic_configs).await })
    };
    let created = matches!(tokio::time::timeout(Duration::from_secs(30), created).await, Ok(Ok(true)));
    if !created {
        history.lock().liveness_failures.push("the topic could not be created within 30 s".into());
        return Outcome { history: std::mem::take(&mut *history.lock()), faults: BTreeMap::new() };
    }

    let mut tasks = Vec::new();
    for i in 0..wk.producers {
        let spec = ProducerSpec {
            index: i,
            acks: wk.acks[i as usize],
            idempotent: wk.idempotent[i as usize],
            compression: workload::compression(wk.compression[i as usize]),
            records_per_batch_max: wk.records_per_batch_max,
            value_bytes_max: wk.value_bytes_max,
            gap_ms: wk.produce_gap_ms,
            drop_connection: wk.drop_connection,
            compaction: wk.compaction,
        };
        let node = world.add_client(&format!("producer-{i}"));
        tasks.push(node.spawn(workload::producer(ctx.clone(), spec, seed ^ (0x5eed_0000 + u64::from(i)))));
    }
    for i in 0..wk.consumers {
        let node = world.add_client(&format!("consumer-{i}"));
        tasks.push(node.spawn(workload::consumer(ctx.clone(), i)));
    }
    if wk.admin {
        let disk = world.brokers[0].disk.clone();
        let topic = topic.to_string();
        let bases: workload::SegmentBases = Arc::new(move |p| {
            use gregor_core::disk::Disk;
            let dir = std::path::Path::new(crate::world::DATA_DIR).join(format!("{topic}-{p}"));
            let names = disk.list_dir(&dir).unwrap_or_default();
            names.iter().filter_map(|n| n.strip_suffix(".log")?.parse().ok()).collect()
        });
        tasks.push(admin_node.spawn(workload::admin(ctx.clone(), seed ^ 0xad31, Some(bases))));
    }

    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7300);
    let mut faults = BTreeMap::new();
    let until = trace.elapsed() + Duration::from_millis(knobs.safety_ms);
    world.arm_crash_points(fk.crash_point_chance, fk.crash_points_max);
    crate::nemesis::run(&mut world, fk, &history, &mut rng, until, &mut faults).await;
    tokio::time::sleep(until.saturating_sub(trace.elapsed())).await;

    stop.store(true, Ordering::SeqCst);
    world.heal();
    note_crash_points(&world, &history, &mut faults);
    history.lock().healed_at = Some(trace.elapsed());
    for t in tasks {
        if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), t).await.is_err() {
            history.lock().liveness_failures.push("a client task did not stop within its grace period".into());
        }
    }
    let checker = world.add_client("checker");
    let reader_ctx = Ctx { stop: Arc::new(AtomicBool::new(false)), ..ctx.clone() };
    let final_read = checker.spawn(workload::final_read(reader_ctx, PROBE_PRODUCER, Duration::from_millis(LIVENESS_BOUND_MS))).await;
    let final_read = final_read.unwrap_or_default();
    history.lock().final_read = final_read;

    let disk = world.brokers[0].disk.fault_counts();
    for (k, v) in [
        ("disk write EIO", disk.write_error),
        ("disk read EIO", disk.read_error),
        ("disk fsync EIO", disk.sync_error),
        ("disk ENOSPC", disk.no_space),
        ("torn write on crash", disk.torn_on_crash),
        ("unsynced data lost on crash", disk.lose_unsynced_on_crash),
    ] {
        if v > 0 {
            faults.insert(k.to_string(), v);
        }
    }
    let data = std::mem::take(&mut *history.lock());
    Outcome { history: data, faults }
}

/// Hands the power losses crash points caused to the history (the checkers excuse what a power
/// loss may take under the page-cache policy, whoever caused it) and counts them as faults.
pub(crate) fn note_crash_points(world: &World, history: &History, faults: &mut BTreeMap<String, u64>) {
    let losses = world.crash_point_losses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if losses.is_empty() {
        return;
    }
    *faults.entry("power loss at a crash point".to_string()).or_default() += losses.len() as u64;
    let mut h = history.lock();
    h.power_losses.extend(losses);
    h.power_losses.sort();
}

/// The knobs of the groups scenario: the seed's fault mix on one broker (no bit flips, fsync
/// durability), one idempotent acks=all producer, 3 to 6 partitions, 2 or 3 members.
/// The compaction scenario's knobs: [`Knobs::draw`]'s, with a compacted topic, small segments,
/// no size retention and no admin client (DeleteRecords and compaction are checked apart).
pub fn compaction_knobs(seed: u64) -> Knobs {
    let mut k = Knobs::draw(seed);
    let w = &mut k.workload;
    w.compaction = Some(crate::knobs::CompactionKnobs::draw(seed));
    w.segment_bytes = [1_024, 4_096][(seed % 2) as usize];
    w.retention_bytes = -1;
    w.admin = false;
    // Power losses at crash points land inside cleaning passes (the swap protocol has three).
    k.faults.crash_points_max = k.faults.crash_points_max.max(2);
    k.faults.crash_point_chance = k.faults.crash_point_chance.max(0.02);
    k
}

pub fn group_knobs(seed: u64) -> Knobs {
    let mut k = Knobs::draw(seed);
    k.durability = Durability::Fsync;
    k.faults.bit_flip = false;
    let w = &mut k.workload;
    w.partitions = 3 + (seed % 4) as i32;
    w.producers = 1;
    w.acks = vec![-1];
    w.idempotent = vec![true];
    w.compression.truncate(1);
    w.consumers = 2 + (seed % 2) as u32;
    w.retention_bytes = -1;
    w.admin = false;
    k
}

/// A consumer group (members on their own nodes) under broker and member faults.
pub async fn groups(seed: u64, knobs: &Knobs, trace: Trace) -> Outcome {
    use crate::group_member;
    let fk = &knobs.faults;
    let wk = &knobs.workload;
    let mut world = World::new(seed, trace.clone());
    let settings = vec![
        ("offsets.topic.num.partitions".to_string(), "3".to_string()),
        ("group.initial.rebalance.delay.ms".to_string(), "0".to_string()),
    ];
    world.add_broker(settings, fk.crash_faults());
    let topic = "events";
    let history = History::new(topic, wk.partitions);
    history.lock().group = true;
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Ctx { history: history.clone(), trace: trace.clone(), stop: stop.clone(), broker: world.brokers[0].addr(), topic: topic.to_string(), partitions: wk.partitions };
    let admin = world.add_client("admin");
    let created = {
        let ctx = ctx.clone();
        let parts = wk.partitions;
        let configs = vec![("segment.bytes".to_string(), wk.segment_bytes.to_string())];
        admin.spawn(async move { workload::create_topic(&ctx, "admin", "events", parts, &configs).await })
    };
    if !matches!(tokio::time::timeout(Duration::from_secs(30), created).await, Ok(Ok(true))) {
        history.lock().liveness_failures.push("the topic could not be created within 30 s".into());
        return Outcome { history: std::mem::take(&mut *history.lock()), faults: BTreeMap::new() };
    }
    let spec = ProducerSpec {
        index: 0,
        acks: -1,
        idempotent: true,
        compression: workload::compression(wk.compression[0]),
        records_per_batch_max: wk.records_per_batch_max,
        value_bytes_max: wk.value_bytes_max,
        gap_ms: wk.produce_gap_ms,
        drop_connection: wk.drop_connection,
        compaction: None,
    };
    let producer_node = world.add_client("producer-0");
    let producer = producer_node.spawn(workload::producer(ctx.clone(), spec, seed ^ 0x5eed_0000));
    let mut members = Vec::new();
    for i in 0..wk.consumers {
        let ctx = ctx.clone();
        members.push(world.add_client_with_init(&format!("member-{i}"), move |incarnation| group_member::member(ctx.clone(), i, incarnation)));
    }

    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7300);
    let mut member_rng = SmallRng::seed_from_u64(seed ^ 0x6d65_6d62_6572_7300);
    let mut faults = BTreeMap::new();
    let until = trace.elapsed() + Duration::from_millis(knobs.safety_ms);
    world.arm_crash_points(fk.crash_point_chance, fk.crash_points_max);
    let member_faults = member_faults(&members, &trace, &mut member_rng, until);
    let (_, member_counts) = tokio::join!(crate::nemesis::run(&mut world, fk, &history, &mut rng, until, &mut faults), member_faults);
    for (k, v) in member_counts {
        *faults.entry(k).or_default() += v;
    }
    tokio::time::sleep(until.saturating_sub(trace.elapsed())).await;

    stop.store(true, Ordering::SeqCst);
    for m in &members {
        madsim::runtime::Handle::current().resume(m.id());
    }
    world.heal();
    note_crash_points(&world, &history, &mut faults);
    history.lock().healed_at = Some(trace.elapsed());
    if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), producer).await.is_err() {
        history.lock().liveness_failures.push("the producer did not stop within its grace period".into());
    }
    // Members notice the stop flag within one request timeout.
    tokio::time::sleep(Duration::from_millis(crate::workload::REQUEST_TIMEOUT_MS + 1_000)).await;
    let checker = world.add_client("checker");
    let reader_ctx = Ctx { stop: Arc::new(AtomicBool::new(false)), ..ctx.clone() };
    let bound = Duration::from_millis(LIVENESS_BOUND_MS);
    let result = checker
        .spawn(async move {
            let commits = group_member::final_commits(&reader_ctx, bound).await;
            let read = workload::final_read(reader_ctx, PROBE_PRODUCER, bound).await;
            (commits, read)
        })
        .await;
    if let Ok((commits, read)) = result {
        let mut h = history.lock();
        h.final_commits = commits;
        h.final_read = read;
    }
    {
        // The group checkers are only as good as the group: it must have formed at all.
        let mut h = history.lock();
        if h.assignments.is_empty() {
            h.liveness_failures.push("no member was ever assigned partitions: the group never formed".into());
        }
    }
    let data = std::mem::take(&mut *history.lock());
    Outcome { history: data, faults }
}

/// Crashes (kill, restart later) and stalls (pause past the session timeout, or not) group
/// members until `until`.
async fn member_faults(members: &[madsim::runtime::NodeHandle], trace: &Trace, rng: &mut SmallRng, until: Duration) -> BTreeMap<String, u64> {
    use rand::Rng;
    let handle = madsim::runtime::Handle::current();
    let mut counts = BTreeMap::new();
    loop {
        let gap = Duration::from_millis(rng.random_range(2_000..=6_000));
        if trace.elapsed() + gap >= until || members.is_empty() {
            return counts;
        }
        tokio::time::sleep(gap).await;
        let i = rng.random_range(0..members.len());
        let name = format!("member-{i}");
        let hold = Duration::from_millis(rng.random_range(0..=10_000));
        match rng.random_range(0..10) {
            0..=3 => {
                trace.event(&name, "KILLED");
                handle.kill(members[i].id());
                tokio::time::sleep(hold.min(Duration::from_millis(3_000))).await;
                handle.restart(members[i].id());
                trace.event(&name, "restart");
                *counts.entry("member crash".to_string()).or_default() += 1;
            }
            4..=7 => {
                trace.event(&name, format!("PAUSED for {hold:?}"));
                handle.pause(members[i].id());
                tokio::time::sleep(hold).await;
                handle.resume(members[i].id());
                trace.event(&name, "resumed");
                *counts.entry("member stall".to_string()).or_default() += 1;
            }
            _ => {}
        }
    }
}
