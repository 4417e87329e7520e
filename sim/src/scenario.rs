//! Scenarios: what world a run builds and what it does to it. Each runs a safety phase (workload
//! plus nemesis), heals every fault, then a liveness phase (a bounded final read), and hands the
//! history to the checkers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gregor_storage::mem_disk::FaultConfig;
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
}

impl Scenario {
    pub const ALL: [Scenario; 1] = [Scenario::SingleBroker];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SingleBroker => "single-broker",
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
    let base_faults = FaultConfig {
        torn_on_crash: fk.torn_on_crash,
        lose_unsynced_on_crash: fk.lose_unsynced_on_crash,
        sync_delay_ms_max: fk.sync_delay_ms_max,
        ..FaultConfig::default()
    };
    let settings = vec![
        ("log.retention.check.interval.ms".to_string(), "1000".to_string()),
        ("offsets.topic.num.partitions".to_string(), "3".to_string()),
        ("group.initial.rebalance.delay.ms".to_string(), "0".to_string()),
    ];
    world.add_broker(settings, base_faults);
    let topic = "events";
    let history = History::new(topic, wk.partitions);
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
        };
        let node = world.add_client(&format!("producer-{i}"));
        tasks.push(node.spawn(workload::producer(ctx.clone(), spec, seed ^ (0x5eed_0000 + u64::from(i)))));
    }
    for i in 0..wk.consumers {
        let node = world.add_client(&format!("consumer-{i}"));
        tasks.push(node.spawn(workload::consumer(ctx.clone(), i)));
    }
    if wk.admin {
        tasks.push(admin_node.spawn(workload::admin(ctx.clone(), seed ^ 0xad31)));
    }

    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7300);
    let mut faults = BTreeMap::new();
    let until = trace.elapsed() + Duration::from_millis(knobs.safety_ms);
    crate::nemesis::run(&mut world, fk, &history, &mut rng, until, &mut faults).await;
    tokio::time::sleep(until.saturating_sub(trace.elapsed())).await;

    stop.store(true, Ordering::SeqCst);
    world.heal();
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
