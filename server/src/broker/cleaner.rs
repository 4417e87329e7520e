//! The log cleaner: compacts the hosted partitions whose `cleanup.policy` includes `compact`, in
//! the background, as Kafka's `LogCleaner` does.
//!
//! Every round it looks at every hosted partition (leader or follower: each replica compacts its
//! own copy) and picks, up to `log.cleaner.threads` of them, the dirtiest: those whose dirty
//! share of the cleanable bytes is above `min.cleanable.dirty.ratio` (strictly, as Kafka), or
//! whose oldest dirty record is older than `max.compaction.lag.ms`, the latter first. A pass
//! cleans below the first uncleanable offset: the high watermark (a replica never compacts what
//! is not committed: it could still be truncated), the first segment holding a record younger
//! than `min.compaction.lag.ms`, and (in the log) the active segment and what is not yet synced.
//! When no partition needs cleaning it sleeps `log.cleaner.backoff.ms`.
//!
//! A pass runs step by step ([`gregor_storage::PartitionLog::clean_step`]): the partition is
//! locked for one step at a time (about 8 MiB read into the offset map, or rewritten into a
//! cleaned segment), so produce and fetch go on between steps. Between steps the
//! cleaners sleep to keep their I/O under `log.cleaner.io.max.bytes.per.second` (shared
//! equally among the threads). A partition whose data cannot be decoded is marked uncleanable
//! and left alone until restart (Kafka's `uncleanable-partitions-count`).
//!
//! The settings are read every round, so dynamic changes to `log.cleaner.*` and topic configs
//! (switching a topic between `delete` and `compact` with alter-config) apply without a restart.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_storage::{CleanOptions, CleanReport, CleanStep, LogError};
use tracing::{info, warn};

use super::partition::{Partition, PartitionError};
use super::Broker;
use crate::config::CleanerConfig;
use crate::handlers::produce::{DECOMPRESSED_BYTES_FLOOR, DECOMPRESSED_BYTES_PER_MESSAGE_BYTE};
use crate::listener::Shutdown;

/// How often the cleaner looks again while it is disabled (`log.cleaner.enable=false` or no
/// threads), so that enabling it takes effect soon.
const DISABLED_RECHECK_MS: u64 = 1_000;

/// The cleaner's state shared with the metrics.
#[derive(Default)]
pub struct CleanerState {
    /// Partitions whose data could not be decoded, `(topic, partition)`.
    uncleanable: Mutex<BTreeSet<(String, i32)>>,
    /// What the cleaner has done since start.
    pub stats: Mutex<CleanerStats>,
}

/// Totals since start, and the last pass's figures (Kafka's LogCleaner metrics).
#[derive(Debug, Default, Clone)]
pub struct CleanerStats {
    pub passes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// Offset-map utilization of the last pass, 0.0 to 1.0.
    pub last_map_utilization: f64,
    /// Seconds the last pass took (wall clock).
    pub last_pass_seconds: f64,
    /// The largest dirty share among compacted partitions at the last round, 0.0 to 1.0.
    pub max_dirty_ratio: f64,
}

impl CleanerState {
    pub fn uncleanable_count(&self) -> usize {
        self.uncleanable.lock().expect("cleaner lock").len()
    }
}

/// A partition that needs cleaning, as a round found it.
struct Candidate {
    partition: Arc<Partition>,
    /// Below this the pass may clean.
    upto: i64,
    dirty_ratio: f64,
    /// `max.compaction.lag.ms` has passed for its oldest dirty record.
    overdue: bool,
    options: CleanOptions,
}

/// Runs the cleaner until shutdown.
pub async fn run(broker: Arc<Broker>, shutdown: Arc<Shutdown>) {
    loop {
        let config = broker.cleaner_config();
        let sleep_ms = if !config.enable || config.threads == 0 {
            DISABLED_RECHECK_MS
        } else if clean_round(&broker, &config, &shutdown).await {
            0
        } else {
            config.backoff_ms
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms.max(1))) => {}
        }
    }
}

/// One round: cleans up to `threads` of the dirtiest partitions at once; whether any was cleaned.
async fn clean_round(broker: &Arc<Broker>, config: &CleanerConfig, shutdown: &Arc<Shutdown>) -> bool {
    let now_ms = broker.clock.wall_ms();
    let dedupe_buffer_bytes = usize::try_from(config.dedupe_buffer_size / config.threads as u64).unwrap_or(usize::MAX);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut max_dirty_ratio = 0.0f64;
    for p in broker.replicas.all() {
        if broker.cleaner.uncleanable.lock().expect("cleaner lock").contains(&(p.topic.clone(), p.index)) {
            continue;
        }
        if let Some(c) = candidate(&p, now_ms, dedupe_buffer_bytes, &mut max_dirty_ratio) {
            candidates.push(c);
        }
    }
    broker.cleaner.stats.lock().expect("cleaner lock").max_dirty_ratio = max_dirty_ratio;
    // Overdue ones first, then the dirtiest.
    candidates.sort_by(|a, b| b.overdue.cmp(&a.overdue).then(b.dirty_ratio.total_cmp(&a.dirty_ratio)));
    candidates.truncate(config.threads);
    if candidates.is_empty() {
        return false;
    }
    let rate = config.io_max_bytes_per_second / candidates.len() as f64;
    let passes: Vec<_> = candidates
        .into_iter()
        .map(|c| {
            let (broker, shutdown) = (broker.clone(), shutdown.clone());
            tokio::spawn(async move {
                let started = broker.clock.monotonic_ms();
                let outcome = clean_partition(&broker, &c, now_ms, rate, &shutdown).await;
                (c.partition, outcome, broker.clock.monotonic_ms().saturating_sub(started))
            })
        })
        .collect();
    let mut cleaned = false;
    for pass in passes {
        let Ok((p, outcome, took_ms)) = pass.await else { continue };
        match outcome {
            Ok(Outcome::Cleaned(r)) => {
                cleaned = true;
                let mut s = broker.cleaner.stats.lock().expect("cleaner lock");
                s.passes += 1;
                s.bytes_read += r.bytes_read;
                s.bytes_written += r.bytes_written;
                s.records_removed += r.removed.records;
                s.last_map_utilization = r.map_utilization;
                s.last_pass_seconds = took_ms as f64 / 1000.0;
            }
            Ok(Outcome::Nothing) | Err(PartitionError::Deleted) => {}
            Ok(Outcome::Undecodable(why)) => {
                warn!(topic = %p.topic, partition = p.index, error = %why, "partition data cannot be decoded; marking it uncleanable");
                broker.cleaner.uncleanable.lock().expect("cleaner lock").insert((p.topic.clone(), p.index));
            }
            Err(e) => warn!(topic = %p.topic, partition = p.index, error = %e, "cleaning failed"),
        }
    }
    cleaned
}

/// Whether `p` needs cleaning now, and below which offset.
fn candidate(p: &Arc<Partition>, now_ms: i64, dedupe_buffer_bytes: usize, max_dirty_ratio: &mut f64) -> Option<Candidate> {
    let found = p.with_log_mut(|log, hw| {
        let c = log.config();
        if !c.cleanup_policy.compact {
            return Ok(None);
        }
        let hw = if gregor_core::bugs::active(gregor_core::bugs::Bug::CleanPastHighWatermark) { i64::MAX } else { hw };
        let upto = hw.min(log.compaction_lag_end(now_ms, c.min_compaction_lag_ms));
        let (clean, dirty) = log.clean_and_dirty_bytes(upto);
        if dirty == 0 {
            return Ok(None);
        }
        let dirty_ratio = dirty as f64 / (clean + dirty) as f64;
        let overdue = c.max_compaction_lag_ms < i64::MAX
            && log.first_dirty_timestamp().is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > c.max_compaction_lag_ms);
        let options = CleanOptions {
            dedupe_buffer_bytes,
            delete_retention_ms: c.delete_retention_ms,
            decompressed_bytes_max: (c.max_message_bytes as u64).saturating_mul(DECOMPRESSED_BYTES_PER_MESSAGE_BYTE).max(DECOMPRESSED_BYTES_FLOOR),
        };
        Ok(Some((upto, dirty_ratio, overdue, options, c.min_cleanable_dirty_ratio)))
    });
    let (upto, dirty_ratio, overdue, options, min_ratio) = found.ok().flatten()?;
    *max_dirty_ratio = max_dirty_ratio.max(dirty_ratio);
    (dirty_ratio > min_ratio || overdue).then(|| Candidate { partition: p.clone(), upto, dirty_ratio, overdue, options })
}

/// How a pass ended.
enum Outcome {
    Cleaned(CleanReport),
    /// Nothing to do, abandoned, or stopped by shutdown.
    Nothing,
    /// A batch failed its CRC or could not be decoded.
    Undecodable(String),
}

/// One pass over `c.partition`, a step at a time, throttled to `rate` bytes per second.
async fn clean_partition(broker: &Broker, c: &Candidate, now_ms: i64, rate: f64, shutdown: &Shutdown) -> Result<Outcome, PartitionError> {
    let p = &c.partition;
    let Some(mut pass) = p.with_log_mut(|log, _| Ok(log.begin_clean(c.upto, now_ms, &c.options)))? else {
        return Ok(Outcome::Nothing);
    };
    loop {
        if shutdown.is_triggered() || broker.is_closing() {
            // The checkpoint has not moved: the next start cleans this section again.
            return Ok(Outcome::Nothing);
        }
        let step = p.with_log_mut(|log, _| match log.clean_step(&mut pass) {
            Err(LogError::Records(why)) => Ok(Err(why)),
            Err(LogError::Corrupt(e)) => Ok(Err(e.to_string())),
            other => other.map(Ok),
        })?;
        let step = match step {
            Ok(s) => s,
            Err(why) => return Ok(Outcome::Undecodable(why)),
        };
        match step {
            CleanStep::Working { io_bytes } => {
                let pause = io_bytes as f64 / rate;
                if pause >= 0.001 {
                    tokio::time::sleep(Duration::from_secs_f64(pause.min(60.0))).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            CleanStep::Done(Some(r)) => {
                info!(topic = %p.topic, partition = p.index, cleaned_to = r.cleaned_to, removed = r.removed.records,
                    read = r.bytes_read, written = r.bytes_written, "compacted partition");
                return Ok(Outcome::Cleaned(r));
            }
            CleanStep::Done(None) => return Ok(Outcome::Nothing),
            CleanStep::Abandoned(why) => {
                info!(topic = %p.topic, partition = p.index, why, "cleaning pass abandoned; it starts over next round");
                return Ok(Outcome::Nothing);
            }
        }
    }
}
