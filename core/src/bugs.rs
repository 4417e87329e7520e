//! Deliberately injectable bugs, used to prove that the simulator's checkers catch what they
//! guard against ("mutation tests").
//!
//! Each [`Bug`] names one wrong behaviour that a call site in the broker or the log can switch to.
//! Bugs exist only in simulator builds (`--cfg madsim`): in every other build [`active`] is a
//! constant `false`, so the production binary cannot contain them. In the simulator the set of
//! active bugs is per thread, because a madsim world runs on the thread that drives it; a campaign
//! that runs seeds on several threads sets the bugs on each.

use std::fmt;
use std::str::FromStr;

/// One injectable bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// Produce answers acks=1/all before the records are fsynced.
    AckBeforeFsync,
    /// A failed fsync is treated as success: the partition keeps serving from memory.
    IgnoreFsyncFailure,
    /// Recovery accepts batches without checking their CRC.
    SkipRecoveryCrc,
    /// Recovery keeps the torn bytes at the end of a segment instead of cutting them off.
    KeepTornTail,
    /// A rebalance completes without bumping the group generation.
    SameGeneration,
    /// The idempotent producer's dedup window is empty: retried batches are appended again.
    NoDedupWindow,
    /// A restarted broker does not replay `__consumer_offsets` (committed offsets and group
    /// metadata).
    ForgetCommitsOnRestart,
    /// `write_atomic` renames the new file into place but does not fsync the directory, so the
    /// new name (and with it the new contents) is not durable when it returns.
    SkipDirFsyncAfterRename,
    /// A segment roll counts the old segment's unsynced tail as flushed without fsyncing it.
    RollWithoutFsync,
    /// DeleteRecords also deletes the segment whose last offset is the new log start.
    DeleteRecordsOffByOne,
    /// Under fsync-before-ack, an append moves the high watermark to the log end before the
    /// fsync, so consumers can read records a power loss takes back.
    HwBeforeFsync,
    /// A read of two or more batches returns the first two in swapped order.
    FetchOutOfOrder,
    /// A read of three or more batches leaves the second one out.
    FetchSkipsBatch,
    /// A quorum voter forgets its vote: it is not persisted, and a second candidate of the same
    /// epoch gets a vote too.
    VoteTwiceInEpoch,
    /// The quorum leader commits entries once it alone has them.
    CommitWithoutMajority,
    /// A quorum follower told its log diverges keeps its log.
    SkipDivergingTruncation,
    /// The metadata image applies entries before the quorum has committed them.
    ApplyUncommitted,
    /// A metadata snapshot leaves out the image's last record.
    SnapshotDropsRecord,
    /// A partition leader never tells a follower its log diverges (no KIP-320 check): the
    /// follower keeps records the leader does not have.
    SkipEpochTruncation,
    /// A partition leader moves its high watermark to its own durable end, ignoring the ISR:
    /// acks=all is answered before the followers have the records.
    HwFromLeaderAlone,
    /// Fencing a partition leader elects the first live replica, in the ISR or not.
    ElectOutsideIsr,
    /// A follower's appends do not update its idempotent-producer state, so as a new leader it
    /// cannot recognise a retry of a batch it replicated.
    NoFollowerProducerState,
    /// A partition reassignment completes as soon as it starts, before its new replicas have
    /// caught up: the old replicas, the only ones with the records, are removed.
    CompleteReassignmentEarly,
    /// A partition leader forgets an in-flight ISR expansion whenever its AlterPartition fails,
    /// though the controller may have committed it: the high watermark stops waiting for a
    /// replica the committed ISR holds.
    ForgetPendingIsr,
    /// Under fsync-before-ack, a follower reports its log end to the leader before that log is
    /// fsynced: the leader counts records as durable on a replica that a power loss takes back.
    FollowerReportsBeforeFsync,
    /// A partition leader forgets `min.insync.replicas`: it neither refuses acks=all nor holds
    /// its high watermark while its ISR is below it, so with the ISR shrunk to the leader alone
    /// a write is acknowledged from one replica.
    AckBelowMinIsr,
    /// A new partition leader answers a client's ListOffsets "latest" with a high watermark that
    /// lags behind the start of its epoch (no KIP-207 check): below what its predecessor said.
    ListOffsetsLaggingHw,
    /// A partition leader advances its high watermark while its ISR is below
    /// `min.insync.replicas` (no KIP-966 rule): an eligible leader replica the controller may
    /// elect lacks records consumers have read.
    HwUnderMinIsr,
    /// A restarted broker ignores its `replication-offset-checkpoint`: every replica starts
    /// with its high watermark at its log start, below what consumers had already read.
    ForgetHwCheckpoint,
    /// The log cleaner cleans up to the log end, past the high watermark (and what is synced):
    /// an older record goes for a newer one that a deposed leader then truncates, or a crash
    /// takes.
    CleanPastHighWatermark,
    /// The cleaner drops a tombstone at the first pass after the one that reached it, without
    /// waiting `delete.retention.ms`.
    TombstoneEarly,
    /// The cleaner removes the old segments before the cleaned one is committed (renamed to
    /// `.swap`): a crash in between loses both.
    SwapNotAtomic,
}

impl Bug {
    pub const ALL: [Bug; 32] = [
        Bug::AckBeforeFsync,
        Bug::IgnoreFsyncFailure,
        Bug::SkipRecoveryCrc,
        Bug::KeepTornTail,
        Bug::SameGeneration,
        Bug::NoDedupWindow,
        Bug::ForgetCommitsOnRestart,
        Bug::SkipDirFsyncAfterRename,
        Bug::RollWithoutFsync,
        Bug::DeleteRecordsOffByOne,
        Bug::HwBeforeFsync,
        Bug::FetchOutOfOrder,
        Bug::FetchSkipsBatch,
        Bug::VoteTwiceInEpoch,
        Bug::CommitWithoutMajority,
        Bug::SkipDivergingTruncation,
        Bug::ApplyUncommitted,
        Bug::SnapshotDropsRecord,
        Bug::SkipEpochTruncation,
        Bug::HwFromLeaderAlone,
        Bug::ElectOutsideIsr,
        Bug::NoFollowerProducerState,
        Bug::CompleteReassignmentEarly,
        Bug::ForgetPendingIsr,
        Bug::FollowerReportsBeforeFsync,
        Bug::AckBelowMinIsr,
        Bug::ListOffsetsLaggingHw,
        Bug::HwUnderMinIsr,
        Bug::ForgetHwCheckpoint,
        Bug::CleanPastHighWatermark,
        Bug::TombstoneEarly,
        Bug::SwapNotAtomic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::IgnoreFsyncFailure => "ignore-fsync-failure",
            Bug::SkipRecoveryCrc => "skip-recovery-crc",
            Bug::KeepTornTail => "keep-torn-tail",
            Bug::SameGeneration => "same-generation",
            Bug::NoDedupWindow => "no-dedup-window",
            Bug::ForgetCommitsOnRestart => "forget-commits-on-restart",
            Bug::SkipDirFsyncAfterRename => "skip-dir-fsync-after-rename",
            Bug::RollWithoutFsync => "roll-without-fsync",
            Bug::DeleteRecordsOffByOne => "delete-records-off-by-one",
            Bug::HwBeforeFsync => "hw-before-fsync",
            Bug::FetchOutOfOrder => "fetch-out-of-order",
            Bug::FetchSkipsBatch => "fetch-skips-batch",
            Bug::VoteTwiceInEpoch => "vote-twice-in-epoch",
            Bug::CommitWithoutMajority => "commit-without-majority",
            Bug::SkipDivergingTruncation => "skip-diverging-truncation",
            Bug::ApplyUncommitted => "apply-uncommitted",
            Bug::SnapshotDropsRecord => "snapshot-drops-record",
            Bug::SkipEpochTruncation => "skip-epoch-truncation",
            Bug::HwFromLeaderAlone => "hw-from-leader-alone",
            Bug::ElectOutsideIsr => "elect-outside-isr",
            Bug::NoFollowerProducerState => "no-follower-producer-state",
            Bug::CompleteReassignmentEarly => "complete-reassignment-early",
            Bug::ForgetPendingIsr => "forget-pending-isr",
            Bug::FollowerReportsBeforeFsync => "follower-reports-before-fsync",
            Bug::AckBelowMinIsr => "ack-below-min-isr",
            Bug::ListOffsetsLaggingHw => "list-offsets-lagging-hw",
            Bug::HwUnderMinIsr => "hw-under-min-isr",
            Bug::ForgetHwCheckpoint => "forget-hw-checkpoint",
            Bug::CleanPastHighWatermark => "clean-past-hw",
            Bug::TombstoneEarly => "tombstone-early",
            Bug::SwapNotAtomic => "swap-not-atomic",
        }
    }

    #[cfg_attr(not(madsim), allow(dead_code))]
    fn bit(self) -> u32 {
        const _: () = assert!(Bug::ALL.len() <= 32, "the active set is a u32 mask");
        1 << (self as u32)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug {s:?}; known: {}", names.join(", "))
        })
    }
}

#[cfg(madsim)]
thread_local! {
    static ACTIVE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether `bug` is switched on. Always `false` outside the simulator.
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(madsim)]
    {
        ACTIVE.with(|a| a.get() & bug.bit() != 0)
    }
    #[cfg(not(madsim))]
    {
        let _ = bug;
        false
    }
}

/// Switches on exactly `bugs` for worlds driven by this thread.
#[cfg(madsim)]
pub fn set_active(bugs: &[Bug]) {
    let mask = bugs.iter().fold(0, |m, b| m | b.bit());
    ACTIVE.with(|a| a.set(mask));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>(), Ok(b));
        }
        assert!("nope".parse::<Bug>().is_err());
    }

    #[cfg(not(madsim))]
    #[test]
    fn no_bug_is_active_outside_the_simulator() {
        assert!(Bug::ALL.iter().all(|b| !active(*b)));
    }
}
