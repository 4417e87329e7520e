//! Which consumer groups this broker coordinates: those whose `__consumer_offsets` partition it
//! leads, once that partition's groups are loaded.
//!
//! Whenever a new image is published the broker compares the offsets partitions it leads with
//! the ones it has loaded. A partition it now leads is loaded: its committed offsets and group
//! metadata are replayed from its log into the offset cache and the group coordinator; until
//! that is done its groups answer COORDINATOR_LOAD_IN_PROGRESS (clients retry). A partition it
//! no longer leads is unloaded: its groups leave the coordinator (members waiting in a join or
//! sync are answered NOT_COORDINATOR) and the cache, so a later load starts from the log, never
//! from what this broker remembered.
//!
//! Images are published one at a time (by the quorum driver, or at open), so loads and unloads
//! never race each other.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::offsets::{partition_for, OFFSETS_TOPIC};
use super::Broker;
use crate::errors;

/// Bytes read per step when replaying an offsets partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// The offsets partitions this broker coordinates: partition → loaded (false while loading).
#[derive(Default)]
pub struct Coordination {
    partitions: std::sync::Mutex<BTreeMap<i32, bool>>,
    /// Generation ids of member ids issued by this process, set once at open.
    member_id_epoch: std::sync::atomic::AtomicI64,
}

impl Coordination {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, bool>> {
        self.partitions.lock().expect("coordination lock")
    }
}

impl Broker {
    /// Whether this broker coordinates `group` now: `Ok` when it leads the group's offsets
    /// partition and has loaded it; COORDINATOR_LOAD_IN_PROGRESS while loading; NOT_COORDINATOR
    /// otherwise — also while this broker's image has no offsets topic, as Kafka answers: a
    /// member that has not asked FindCoordinator (which creates the topic) is sent to ask, and
    /// a broker whose image lags never takes groups it cannot persist.
    pub fn coordination(&self, group: &str) -> Result<(), i16> {
        let image = self.image();
        let Some(t) = image.topic(OFFSETS_TOPIC) else { return Err(errors::NOT_COORDINATOR) };
        let n = t.partitions.len() as i32;
        if n == 0 {
            return Err(errors::NOT_COORDINATOR);
        }
        let p = partition_for(group, n);
        if t.partitions.get(&p).is_none_or(|r| r.leader != self.config.node_id) {
            return Err(errors::NOT_COORDINATOR);
        }
        match self.coordination.lock().get(&p) {
            Some(true) => Ok(()),
            _ => Err(errors::COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    pub(crate) fn set_member_id_epoch(&self, epoch: i64) {
        self.coordination.member_id_epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
        self.groups.with(|c| {
            c.set_member_id_epoch(epoch);
            ((), Vec::new())
        });
    }

    /// Loads the offsets partitions this broker now leads and unloads the others (see the
    /// module docs). Called after every image change.
    pub(crate) fn reconcile_coordination(&self) {
        let image = self.image();
        let me = self.config.node_id;
        let (count, led): (i32, BTreeSet<i32>) = match image.topic(OFFSETS_TOPIC) {
            Some(t) => (t.partitions.len() as i32, t.partitions.iter().filter(|(_, r)| r.leader == me).map(|(p, _)| *p).collect()),
            None => (0, BTreeSet::new()),
        };
        let known: BTreeSet<i32> = self.coordination.lock().keys().copied().collect();
        for &p in known.difference(&led) {
            self.coordination.lock().remove(&p);
            let groups = self.unload_groups(p, count);
            tracing::info!(partition = p, groups, "no longer coordinating the groups of {OFFSETS_TOPIC}-{p}");
        }
        for &p in led.difference(&known) {
            self.coordination.lock().insert(p, false);
            let (records, groups) = self.load_groups(p, count);
            // Still led (nothing else publishes meanwhile): open the partition's groups.
            self.coordination.lock().insert(p, true);
            if records > 0 || groups > 0 {
                tracing::info!(partition = p, records, groups, "loaded the groups of {OFFSETS_TOPIC}-{p}");
            }
        }
    }

    /// The groups whose offsets partition is `p` of `count`, as the cache knows them.
    fn groups_of(&self, p: i32, count: i32) -> Vec<String> {
        self.offsets.groups().into_iter().filter(|g| count > 0 && partition_for(g, count) == p).collect()
    }

    fn unload_groups(&self, p: i32, count: i32) -> usize {
        let groups = self.groups_of(p, count);
        for g in &groups {
            self.groups.with(|c| ((), c.unload(g)));
            self.offsets.remove_group(g);
        }
        groups.len()
    }

    /// Replays offsets partition `p` into the cache and loads its groups into the coordinator.
    /// Returns (records replayed, groups loaded).
    fn load_groups(&self, p: i32, count: i32) -> (usize, usize) {
        // Whatever this broker remembers of these groups is older than the log: start over.
        for g in self.groups_of(p, count) {
            self.offsets.remove_group(&g);
        }
        if gregor_core::bugs::active(gregor_core::bugs::Bug::ForgetCommitsOnRestart) {
            return (0, 0);
        }
        let Some(partition) = self.replicas.get(OFFSETS_TOPIC, p) else { return (0, 0) };
        let mut offset = match partition.offsets() {
            Ok(o) => o.log_start,
            Err(e) => {
                tracing::error!(partition = p, error = %e, "cannot load {OFFSETS_TOPIC}");
                return (0, 0);
            }
        };
        let mut records = 0;
        loop {
            let data: Bytes = match partition.read(offset, REPLAY_READ_BYTES) {
                Ok((r, _)) => r.data,
                Err(e) => {
                    tracing::error!(partition = p, offset, error = %e, "cannot read {OFFSETS_TOPIC}");
                    break;
                }
            };
            let Some(next) = last_next_offset(&data) else { break };
            records += self.offsets.replay(data);
            offset = next;
        }
        let now = self.clock.monotonic_ms() as i64;
        let stored: BTreeMap<String, Bytes> = self.offsets.group_metadata().into_iter().filter(|(g, _)| partition_for(g, count) == p).collect();
        let groups = self.groups.load(now, self.coordination.member_id_epoch.load(std::sync::atomic::Ordering::SeqCst), stored);
        (records, groups)
    }
}

/// The offset after the last whole batch in `data`.
fn last_next_offset(mut data: &[u8]) -> Option<i64> {
    let mut next = None;
    while let Ok(h) = gregor_core::batch::BatchHeader::parse(data) {
        if h.total_len() > data.len() {
            break;
        }
        next = Some(h.next_offset());
        data = &data[h.total_len()..];
    }
    next
}
