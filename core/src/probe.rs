//! Simulator probes: the durability oracle and the crash points, compiled only into simulator
//! builds (`--cfg madsim`); in every other build each function here is an empty inline function,
//! so production code pays nothing and cannot act on them.
//!
//! # Durability oracle
//! Wherever the broker relies on data being durable — it acknowledges a write (produce, offset
//! commit), serves records under fsync-before-ack, or a `write_atomic` returns — it calls
//! [`check_durable`] with the file and byte range it relies on. The probe asks the disk itself
//! ([`Disk::durability_gap`]): the simulator's disk knows exactly which bytes and which directory
//! entries a power loss would take back *now*. The check runs on the broker, synchronously, at the
//! moment it decides to rely on the data (before the answer is even sent), so it does not depend
//! on a power loss landing in the short window in which a missing fsync matters, and no response
//! in flight can blur it. Findings are kept per thread (a madsim world runs on the thread that
//! drives it) and collected by the simulator after the run ([`take_findings`]), which fails the
//! seed with them.
//!
//! # Observed moments
//! Where a partition leader answers an acks=all produce, and where a metadata image applies a
//! committed ISR, the broker calls [`observe`]. The simulator registers an observer
//! ([`set_observer`]) that, at an acknowledgement, looks at every node's disk and counts the
//! replicas that hold the write durably — that is how it checks `min.insync.replicas` and the
//! committed ISR from outside the broker, which only knows its own disk and its own view.
//!
//! # Lost answers
//! [`fault_point`] marks a message the simulator may lose after its receiver acted on it — the
//! controller's answer to an AlterPartition it committed — so that the sender's handling of "it
//! may or may not have happened" runs in many seeds rather than in the rare schedule where a
//! network fault lands exactly there.
//!
//! # Crash points
//! [`crash_point`] marks moments right after which a power loss is most interesting (a segment
//! roll, a rename, a completed checkpoint write). The simulator's disk draws from its seed whether
//! to lose power there ([`Disk::crash_point`]): BUGGIFY-style fault points, never in production.

use std::ops::Range;
use std::path::Path;

use crate::disk::Disk;

/// A moment right after which the simulator may cut the power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// A new active segment was created.
    SegmentRoll,
    /// `write_atomic` renamed its temporary file over the target, before the directory fsync.
    Rename,
    /// `write_atomic` finished (a checkpoint, snapshot or metadata file was replaced).
    CheckpointWrite,
    /// Log compaction wrote and synced a cleaned segment, not yet committed as a swap.
    CleanedWritten,
    /// Log compaction committed a swap (renamed and synced), the old segments still there.
    SwapCommitted,
    /// Log compaction removed the old segments of a swap, before renaming the swap into place.
    SwapOldRemoved,
}

impl CrashPoint {
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::SegmentRoll => "after segment roll",
            CrashPoint::Rename => "after rename",
            CrashPoint::CheckpointWrite => "after checkpoint write",
            CrashPoint::CleanedWritten => "after a cleaned segment was written",
            CrashPoint::SwapCommitted => "after a compaction swap was committed",
            CrashPoint::SwapOldRemoved => "after a compaction swap removed the old segments",
        }
    }
}

/// How many findings are kept in full (the rest are only counted).
#[cfg(madsim)]
const FINDINGS_MAX: usize = 8;

#[cfg(madsim)]
thread_local! {
    static FINDINGS: std::cell::RefCell<(u64, Vec<String>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

/// The broker relies on bytes `range` of the file at `path` (and on the directory entry naming
/// it) being durable, because of `what`. Records a finding if the disk says they are not, and
/// returns whether they are (always `true` outside the simulator).
#[inline]
pub fn check_durable(disk: &dyn Disk, what: &str, path: &Path, range: Range<u64>) -> bool {
    #[cfg(madsim)]
    if let Some(gap) = disk.durability_gap(path, range) {
        report(format!("{what}: {gap}"));
        return false;
    }
    #[cfg(not(madsim))]
    let _ = (disk, what, path, range);
    true
}

/// Records a finding of the durability oracle that the caller established itself.
#[inline]
pub fn report(finding: String) {
    #[cfg(madsim)]
    FINDINGS.with(|f| {
        let mut f = f.borrow_mut();
        f.0 += 1;
        if f.1.len() < FINDINGS_MAX {
            f.1.push(finding);
        }
    });
    #[cfg(not(madsim))]
    let _ = finding;
}

/// Whether the durability oracle runs (simulator builds only): callers skip the work of
/// computing what to check otherwise.
#[inline]
pub fn enabled() -> bool {
    cfg!(madsim)
}

/// The findings recorded on this thread since the last call: how many, and the first few.
#[cfg(madsim)]
pub fn take_findings() -> (u64, Vec<String>) {
    FINDINGS.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

/// An acks=all write a partition leader acknowledged: every record of `topic`-`partition` below
/// `end_offset`, answered by broker `node_id`.
#[derive(Clone, Copy, Debug)]
pub struct AckedWrite<'a> {
    pub node_id: i32,
    pub topic: &'a str,
    pub partition: i32,
    pub end_offset: i64,
}

/// What the simulator's observer is told (see the module doc).
#[derive(Clone, Copy, Debug)]
pub enum Observed<'a> {
    /// A partition leader is about to answer an acks=all write.
    Acknowledged(AckedWrite<'a>),
    /// A node's metadata image applied the committed record at `offset` of the metadata log,
    /// which gave `topic`-`partition` this registration (leader, ISR, eligible leader replicas).
    IsrApplied { topic: &'a str, partition: i32, registration: &'a crate::metadata::PartitionRegistration, offset: i64 },
    /// A partition leader, broker `node_id` at `leader_epoch`, moved its high watermark to
    /// `high_watermark`: every record below it is committed.
    HighWatermark { topic: &'a str, partition: i32, node_id: i32, leader_epoch: i32, high_watermark: i64 },
    /// Broker `node_id` durably replaced its `replication-offset-checkpoint` with these
    /// `(topic, partition, high watermark)` entries: a restart finds exactly them.
    HwCheckpointed { node_id: i32, high_watermarks: &'a [(&'a str, i32, i64)] },
    /// Broker `node_id`, starting, opened its replica of `topic`-`partition` with this high
    /// watermark and log end.
    ReplicaOpened { topic: &'a str, partition: i32, node_id: i32, high_watermark: i64, log_end: i64 },
}

/// What the simulator runs at each [`Observed`] moment.
#[cfg(madsim)]
pub type Observer = Box<dyn FnMut(&Observed<'_>)>;

#[cfg(madsim)]
thread_local! {
    static OBSERVER: std::cell::RefCell<Option<Observer>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or with `None` removes) the observer for worlds driven by this thread.
#[cfg(madsim)]
pub fn set_observer(observer: Option<Observer>) {
    OBSERVER.with(|o| *o.borrow_mut() = observer);
}

/// Tells the simulator's observer, if any, what just happened (no-op outside the simulator).
#[inline]
pub fn observe(what: Observed<'_>) {
    #[cfg(madsim)]
    OBSERVER.with(|o| {
        if let Some(f) = o.borrow_mut().as_mut() {
            f(&what);
        }
    });
    #[cfg(not(madsim))]
    let _ = what;
}

/// A message the simulator may lose after its receiver acted on it (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The active controller's answer to an AlterPartition it has committed.
    AlterPartitionAnswer,
}

#[cfg(madsim)]
thread_local! {
    /// The fault points' random source and chance, and how many fired.
    static FAULT_POINTS: std::cell::RefCell<Option<(rand::rngs::SmallRng, f64, u64)>> = const { std::cell::RefCell::new(None) };
}

/// Arms the fault points for worlds driven by this thread: each one reached fires with
/// probability `chance`, drawn from `seed`; `None` disarms them. Returns how many fired since the
/// last call.
#[cfg(madsim)]
pub fn arm_fault_points(armed: Option<(u64, f64)>) -> u64 {
    use rand::SeedableRng;
    FAULT_POINTS.with(|f| {
        let fired = f.borrow().as_ref().map_or(0, |(_, _, n)| *n);
        *f.borrow_mut() = armed.map(|(seed, chance)| (rand::rngs::SmallRng::seed_from_u64(seed), chance, 0));
        fired
    })
}

/// Whether the simulator loses this message now (never outside the simulator).
#[inline]
pub fn fault_point(point: FaultPoint) -> bool {
    #[cfg(madsim)]
    {
        use rand::Rng;
        let _ = point;
        FAULT_POINTS.with(|f| {
            let mut f = f.borrow_mut();
            let Some((rng, chance, fired)) = f.as_mut() else { return false };
            let fire = *chance > 0.0 && rng.random_bool(chance.min(1.0));
            *fired += u64::from(fire);
            fire
        })
    }
    #[cfg(not(madsim))]
    {
        let _ = point;
        false
    }
}

/// A crash point: the simulated disk may lose power here (see the module doc).
#[inline]
pub fn crash_point(disk: &dyn Disk, point: CrashPoint) {
    #[cfg(madsim)]
    disk.crash_point(point.name());
    #[cfg(not(madsim))]
    let _ = (disk, point);
}
