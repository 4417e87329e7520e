//! The nemesis: injects faults into the world during the safety phase, one at a time, at random
//! moments drawn from the seed, with the mix of kinds the seed's knobs chose.
//!
//! Fault budget (what keeps a single broker's guarantee checkable): at most one bit flip per run
//! (its partition's later offsets are excused from the durability check, since one broker has no
//! other copy); disk error bursts last at most a few seconds; every fault is undone before the
//! next one starts, and the heal at the end of the safety phase undoes anything left.
//!
//! Crash points (armed for the safety phase by the scenario) may also cut a broker's power at any
//! moment; while the nemesis waits, it restarts such a broker within [`REAP_INTERVAL_MS`], as it
//! restarts a broker after its own power losses.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gregor_core::disk::Disk;
use gregor_storage::mem_disk::FaultConfig;
use rand::rngs::SmallRng;
use rand::Rng;

use crate::history::History;
use crate::knobs::FaultKnobs;
use crate::world::{World, DATA_DIR};

/// Longest a single fault (outage, pause, clog, disk burst) lasts.
pub const FAULT_DURATION_MS_MAX: u64 = 5_000;
/// How often the nemesis looks for brokers a crash point took down, while it waits.
pub const REAP_INTERVAL_MS: u64 = 250;

/// Sleeps `d` of simulated time, restarting brokers that crash points take down meanwhile.
async fn nap(world: &mut World, d: Duration) {
    let end = world.trace.elapsed() + d;
    loop {
        world.restart_crashed();
        let now = world.trace.elapsed();
        if now >= end {
            return;
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(REAP_INTERVAL_MS))).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    PowerLoss,
    Pause,
    ClogNode,
    ClogLink,
    DiskBurst,
    Latency,
    BitFlip,
}

/// Injects faults until `until` (simulated time since the run began), counting them by kind into `counts`.
pub async fn run(world: &mut World, knobs: &FaultKnobs, history: &History, rng: &mut SmallRng, until: Duration, counts: &mut BTreeMap<String, u64>) {
    let mut kinds = vec![
        (Kind::Kill, knobs.kill_weight),
        (Kind::PowerLoss, knobs.power_loss_weight),
        (Kind::Pause, knobs.pause_weight),
        (Kind::ClogNode, knobs.clog_node_weight),
        (Kind::ClogLink, knobs.clog_link_weight),
        (Kind::DiskBurst, knobs.disk_burst_weight),
        (Kind::Latency, knobs.clog_node_weight.min(2)),
    ];
    let mut bit_flip_budget = u32::from(knobs.bit_flip);
    if bit_flip_budget > 0 {
        kinds.push((Kind::BitFlip, 1));
    }
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    if total == 0 {
        nap(world, until.saturating_sub(world.trace.elapsed())).await;
        return;
    }
    loop {
        let gap = rng.random_range(knobs.mean_gap_ms / 2..=knobs.mean_gap_ms * 3 / 2);
        if world.trace.elapsed() + Duration::from_millis(gap) >= until {
            nap(world, until.saturating_sub(world.trace.elapsed())).await;
            return;
        }
        nap(world, Duration::from_millis(gap)).await;
        let mut roll = rng.random_range(0..total);
        let kind = kinds
            .iter()
            .find(|(_, w)| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .map(|(k, _)| *k)
            .unwrap_or(Kind::Kill);
        let b = rng.random_range(0..world.brokers.len());
        let hold = Duration::from_millis(rng.random_range(0..=FAULT_DURATION_MS_MAX));
        let name = match kind {
            Kind::Kill | Kind::PowerLoss => {
                let power = kind == Kind::PowerLoss;
                world.kill(b, power);
                if power {
                    history.lock().power_losses.push(world.trace.elapsed());
                }
                nap(world, hold).await;
                world.restart(b);
                if rng.random_bool(0.3) {
                    // Kill again while the broker is still recovering or just serving.
                    nap(world, Duration::from_millis(rng.random_range(0..=30))).await;
                    world.kill(b, power);
                    if power {
                        history.lock().power_losses.push(world.trace.elapsed());
                    }
                    *counts.entry("kill during recovery".into()).or_default() += 1;
                    nap(world, Duration::from_millis(rng.random_range(0..=1_000))).await;
                    world.restart(b);
                }
                if power {
                    "power loss"
                } else {
                    "process kill"
                }
            }
            Kind::Pause => {
                world.pause(b);
                nap(world, hold).await;
                world.resume(b);
                "pause"
            }
            Kind::ClogNode => {
                let (inbound, outbound) = match rng.random_range(0..3) {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                world.clog_broker(b, inbound, outbound);
                nap(world, hold).await;
                world.unclog_broker(b);
                if inbound && outbound {
                    "isolate node"
                } else {
                    "clog node one way"
                }
            }
            Kind::ClogLink => {
                if world.clients.is_empty() {
                    continue;
                }
                let c = rng.random_range(0..world.clients.len());
                world.clog_link(c, b, rng.random_bool(0.5));
                nap(world, hold).await;
                world.unclog_link(c, b);
                "clog link one way"
            }
            Kind::Latency => {
                let max = rng.random_range(50..=1_000);
                world.set_latency(max / 10, max);
                nap(world, hold).await;
                world.set_latency(1, 10);
                "network delay"
            }
            Kind::DiskBurst => {
                let base = world.brokers[b].base_faults.clone();
                let burst = FaultConfig {
                    write_error: knobs.disk_write_error,
                    read_error: knobs.disk_read_error,
                    sync_error: knobs.disk_sync_error,
                    no_space: knobs.disk_no_space,
                    ..base
                };
                world.set_disk_faults(b, Some(burst));
                nap(world, hold.min(Duration::from_millis(3_000))).await;
                world.set_disk_faults(b, None);
                "disk error burst"
            }
            Kind::BitFlip => {
                if bit_flip_budget == 0 {
                    continue;
                }
                match flip_one_bit(world, b, history, rng) {
                    Some(what) => {
                        bit_flip_budget -= 1;
                        world.trace.event(&world.brokers[b].name, format!("BIT FLIP {what}"));
                        "bit flip"
                    }
                    None => continue,
                }
            }
        };
        *counts.entry(name.into()).or_default() += 1;
    }
}

/// Flips one random bit of one segment file of the checked topic, and records which offsets
/// that may destroy. Returns a description, or `None` if there was nothing to flip.
fn flip_one_bit(world: &World, b: usize, history: &History, rng: &mut SmallRng) -> Option<String> {
    let (topic, partitions) = {
        let h = history.lock();
        (h.topic.clone(), h.partitions)
    };
    let p = rng.random_range(0..partitions);
    let disk = &world.brokers[b].disk;
    let dir = Path::new(DATA_DIR).join(format!("{topic}-{p}"));
    let segments: Vec<String> = disk.list_dir(&dir).ok()?.into_iter().filter(|n| n.ends_with(".log")).collect();
    if segments.is_empty() {
        return None;
    }
    let file = &segments[rng.random_range(0..segments.len())];
    let base: i64 = file.trim_end_matches(".log").parse().ok()?;
    let path = dir.join(file);
    let len = disk.file_len(&path).ok()?;
    if len == 0 {
        return None;
    }
    let at = rng.random_range(0..len);
    let bit = rng.random_range(0..8u8);
    disk.flip_bit(&path, at, bit).ok()?;
    let mut h = history.lock();
    let e = h.bit_flips.entry(p).or_insert(base);
    *e = (*e).min(base);
    Some(format!("{} byte {at} bit {bit}", path.display()))
}
