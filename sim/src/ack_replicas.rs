//! Who holds an acknowledged write: the observer the cluster scenario registers with
//! `gregor_core::probe::set_observer`. Whenever a partition leader answers an acks=all produce on
//! the scenario's topic, it looks at every node's simulated disk at that very moment and counts
//! the replicas whose log holds the acknowledged batch (the same bytes as the leader's) durably:
//! within a segment whose directory entry and bytes up to the batch's end a power loss would not
//! take back (also on a disk whose power a crash point cut: what it holds is what survives).
//!
//! Four findings, for four checkers:
//! * fewer holders than the topic's `min.insync.replicas` (`acked-min-isr`);
//! * a member of the committed ISR, or an eligible leader replica (KIP-966), that does not hold
//!   it (`committed-isr-holds`). Both come from the newest committed metadata record any node's
//!   image has applied (`Observed::IsrApplied`), which may lag the controller but never runs
//!   ahead of it; a leader must count every ISR member (and any member its in-flight change
//!   adds) before it acknowledges, and acknowledges nothing while eligible replicas exist (its
//!   ISR is then below `min.insync.replicas`), so a replica the controller may elect always has
//!   every acknowledged record.
//!
//! * a member of the committed ISR or ELR that lacks the batch ending just below a leader's
//!   high watermark when that leader moved it (`hw-held`): the high watermark is what every
//!   replica the controller may elect holds, acks=1 writes included, so a consumer never reads a
//!   record a failover could take back. Only the leader the newest committed record names, at
//!   its leader epoch, is checked; a deposed leader's view is its own.
//!
//! * a replica a restarting broker opens with a high watermark below what that broker's last
//!   durable `replication-offset-checkpoint` held for it, though its log reaches that far
//!   (`hw-restored`): consumers of a restarted leader would see the watermark go back.
//!
//! The first three ask the broker nothing: a leader that miscounts its ISR, forgets a change it
//! asked for, or forgets the setting, is caught by what the disks hold. The fourth compares two
//! moments the broker reports: a checkpoint it durably wrote, and the replica it opened later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gregor_core::batch::{BatchHeader, HEADER_LEN};
use gregor_core::probe::{AckedWrite, Observed, Observer};
use gregor_storage::mem_disk::MemDisk;

use crate::cluster::Shared;
use crate::history::{HwForgotten, HwLacking, IsrLacking, ShortAck};
use crate::world::DATA_DIR;

/// The observer for `sh`'s topic, whose `min.insync.replicas` is `sh.min_insync`.
pub(crate) fn observer(sh: Shared) -> Observer {
    // Partition -> the newest committed registration any node applied.
    let mut committed: BTreeMap<i32, Committed> = BTreeMap::new();
    // Node -> partition -> high watermark, as its last durable checkpoint holds them.
    let mut checkpoints: BTreeMap<i32, BTreeMap<i32, i64>> = BTreeMap::new();
    Box::new(move |what: &Observed<'_>| match what {
        Observed::IsrApplied { topic, partition, registration, offset } if *topic == sh.topic => {
            let newer = committed.get(partition).is_none_or(|c| *offset > c.offset);
            if newer {
                // Eligible leader replicas count as the ISR does: the controller may elect them.
                let electable = registration.isr.iter().chain(&registration.elr).copied().collect();
                committed.insert(*partition, Committed { offset: *offset, electable, leader: registration.leader, leader_epoch: registration.leader_epoch });
            }
        }
        Observed::Acknowledged(w) if w.topic == sh.topic => {
            let holders = holders(&sh, w);
            record(&sh, w, &holders, committed.get(&w.partition).map(|c| (c.offset, c.electable.clone())).as_ref());
        }
        Observed::HighWatermark { topic, partition, node_id, leader_epoch, high_watermark } if *topic == sh.topic => {
            if let Some(c) = committed.get(partition).filter(|c| c.leader == *node_id && c.leader_epoch == *leader_epoch) {
                check_high_watermark(&sh, *partition, *node_id, *high_watermark, c);
            }
        }
        Observed::HwCheckpointed { node_id, high_watermarks } => {
            let ours = high_watermarks.iter().filter(|(t, _, _)| *t == sh.topic).map(|&(_, p, hw)| (p, hw)).collect();
            checkpoints.insert(*node_id, ours);
        }
        Observed::ReplicaOpened { topic, partition, node_id, high_watermark, log_end } if *topic == sh.topic => {
            let checkpointed = checkpoints.get(node_id).and_then(|c| c.get(partition)).copied();
            sh.with_cluster(|cl| {
                cl.hw_restores_checked += 1;
                // A log a crash cut below the checkpoint (page cache, or a follower's unsynced
                // tail) cannot keep it: the watermark is then the log end.
                if let Some(c) = checkpointed.filter(|&c| *high_watermark < c.min(*log_end)) {
                    sh.trace.event("checker", format!("p{partition} opened by node {node_id} with high watermark {high_watermark}, checkpointed {c}, log end {log_end}"));
                    cl.hw_forgotten.push(HwForgotten { at: sh.trace.elapsed(), node_id: *node_id, partition: *partition, checkpointed: c, high_watermark: *high_watermark, log_end: *log_end });
                }
            });
        }
        _ => {}
    })
}

/// The newest committed registration of one partition, as far as the observer needs it.
struct Committed {
    /// Its metadata log offset.
    offset: i64,
    /// The ISR and the eligible leader replicas: the replicas the controller may elect.
    electable: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
}

/// Records every electable replica that lacks the batch ending just below the high watermark
/// `hw` that `leader` moved to (present with the leader's bytes; durability is `durable-at-ack`'s).
fn check_high_watermark(sh: &Shared, partition: i32, leader: i32, hw: i64, c: &Committed) {
    let disk = |id: i32| usize::try_from(id - 1).ok().and_then(|i| sh.disks.get(i));
    // A leader whose own log does not end a batch there (trimmed below it) makes no claim to check.
    let Some(ours) = disk(leader).and_then(|d| last_batch(d, &sh.topic, partition, hw)).filter(|b| !b.hole) else { return };
    let lacking: Vec<i32> =
        c.electable.iter().copied().filter(|&id| !disk(id).and_then(|d| last_batch(d, &sh.topic, partition, hw)).is_some_and(|b| b.same_as(&ours, sh.compacted))).collect();
    sh.with_cluster(|cl| {
        cl.hws_checked += 1;
        if !lacking.is_empty() {
            sh.trace.event("checker", format!("p{partition} high watermark {hw} moved by node {leader} while {lacking:?} of ISR+ELR {:?} lack it", c.electable));
            cl.hw_lacking.push(HwLacking { at: sh.trace.elapsed(), node_id: leader, partition, high_watermark: hw, electable: c.electable.clone(), metadata_offset: c.offset, lacking });
        }
    });
}

/// The nodes holding the acknowledged batch durably, with the same bytes as the leader's.
fn holders(sh: &Shared, w: &AckedWrite<'_>) -> Vec<i32> {
    let leader = usize::try_from(w.node_id - 1).ok().and_then(|i| sh.disks.get(i));
    // A leader whose own log does not end a batch there holds nothing anyone can be shown to hold.
    let Some(leader_batch) = leader.and_then(|d| last_batch(d, w.topic, w.partition, w.end_offset)).filter(|b| !b.hole) else { return Vec::new() };
    sh.disks
        .iter()
        .enumerate()
        .filter(|(_, d)| last_batch(d, w.topic, w.partition, w.end_offset).is_some_and(|b| b.same_as(&leader_batch, sh.compacted) && b.durable))
        .map(|(i, _)| i as i32 + 1)
        .collect()
}

fn record(sh: &Shared, w: &AckedWrite<'_>, holders: &[i32], committed: Option<&(i64, Vec<i32>)>) {
    let at = sh.trace.elapsed();
    let min = sh.min_insync;
    let short = holders.len() < usize::try_from(min).unwrap_or(usize::MAX);
    let lacking: Vec<i32> = committed.map(|(_, isr)| isr.iter().copied().filter(|id| !holders.contains(id)).collect()).unwrap_or_default();
    if short || !lacking.is_empty() {
        sh.trace.event(
            "checker",
            format!("acknowledged p{} below {} by node {}: durable on {holders:?} only (committed ISR {committed:?})", w.partition, w.end_offset, w.node_id),
        );
    }
    sh.with_cluster(|c| {
        c.acks_checked += 1;
        if short {
            c.short_acks.push(ShortAck { at, node_id: w.node_id, partition: w.partition, end_offset: w.end_offset, holders: holders.to_vec(), min_insync: min });
        }
        if let (false, Some((offset, isr))) = (lacking.is_empty(), committed) {
            c.isr_lacking.push(IsrLacking { at, node_id: w.node_id, partition: w.partition, end_offset: w.end_offset, isr: isr.clone(), metadata_offset: *offset, lacking });
        }
    });
}

/// The batch of a replica's log whose last offset is `end_offset - 1`, if there is one.
struct Found {
    digest: u64,
    leader_epoch: i32,
    /// Whether a power loss now would leave the batch (and its segment's name) in place.
    durable: bool,
    /// No batch holds that offset, and the log goes on after it: its cleaner removed the batch.
    hole: bool,
}

impl Found {
    /// Whether this copy holds what `leader`'s does: the same bytes, or on a compacted topic the
    /// same leader epoch at the same last offset (the cleaner rewrote or removed its records).
    fn same_as(&self, leader: &Found, compacted: bool) -> bool {
        if compacted {
            self.hole || self.leader_epoch == leader.leader_epoch
        } else {
            !self.hole && self.digest == leader.digest
        }
    }
}

/// Finds the batch ending at `end_offset - 1` in `disk`'s replica of `topic`-`partition`,
/// reading batch headers only, in the last segment that starts at or below it.
fn last_batch(disk: &MemDisk, topic: &str, partition: i32, end_offset: i64) -> Option<Found> {
    let dir = Path::new(DATA_DIR).join(format!("{topic}-{partition}"));
    let last = end_offset - 1;
    let (_, name) = disk.peek_dir(&dir).into_iter().filter_map(|n| Some((n.strip_suffix(".log")?.parse::<i64>().ok()?, n))).filter(|&(b, _)| b <= last).max()?;
    let path: PathBuf = dir.join(name);
    let mut pos = 0u64;
    loop {
        let (len, header) = disk.peek(&path, pos..pos + HEADER_LEN as u64)?;
        let h = BatchHeader::parse(&header).ok()?;
        let total = h.total_len() as u64;
        if total == 0 || pos + total > len {
            return None;
        }
        let batch_last = h.base_offset + i64::from(h.last_offset_delta);
        if batch_last >= last {
            if h.base_offset > last {
                let durable = disk.durability_gap(&path, 0..pos + total).is_none();
                return Some(Found { digest: 0, leader_epoch: h.partition_leader_epoch, durable, hole: true });
            }
            if batch_last != last {
                return None;
            }
            let (_, bytes) = disk.peek(&path, pos..pos + total)?;
            let durable = disk.durability_gap(&path, 0..pos + total).is_none();
            return Some(Found { digest: crate::cluster::fnv(&bytes), leader_epoch: h.partition_leader_epoch, durable, hole: false });
        }
        pos += total;
    }
}
