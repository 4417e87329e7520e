//! One partition of a topic on this broker: its log, its role (leader or follower, from the
//! metadata image), its high watermark, and group commit.
//!
//! Replication (see [`gregor_core::replica`] for the rules):
//! * As **leader** it appends producers' batches stamped with its leader epoch, serves
//!   followers' fetches up to its log end (checking their last fetched epoch for divergence
//!   first), and moves the high watermark to the minimum durable log end over the ISR: its own
//!   flushed offset and each ISR follower's fetch offset. acks=all waits for the high watermark.
//! * As **follower** it appends the leader's batches as they are (offsets and epochs kept),
//!   truncates where the leader says its log diverges, and takes the leader's high watermark
//!   (never above its own log end). It reports a fetch offset only once everything below it is
//!   durable, which is what lets the leader count that offset as durable.
//! * The single-node policies below are the one-replica case: with no followers the high
//!   watermark is the leader's flushed offset.
//!
//! Durability policy (per topic, from `flush.messages` / `log.flush.interval.messages`):
//! * **fsync before ack** (`flush.messages` = 1, Gregor's default): an append wakes this
//!   partition's flusher task; producers with acks=1/all wait until the flusher has fsynced past
//!   their batch. Appends that arrive while an fsync runs share the next one, and those that arrive
//!   while the flusher waits out the device's latency join the current one (group commit). The
//!   high watermark is the flushed offset, so consumers never see data a crash could take back.
//! * **page cache** (`flush.messages` > 1, Kafka's behaviour): acks do not wait for fsync; the
//!   flusher runs every `flush.messages` messages or `flush.ms`. The high watermark is the log end.
//!
//! Under fsync-before-ack, each acknowledgement and each read asks the simulator's durability
//! oracle ([`gregor_core::probe`]; nothing outside simulator builds) whether what it relies on is
//! durable at that moment.
//!
//! A failed fsync is fatal for the partition: it is marked failed, waiters get
//! KAFKA_STORAGE_ERROR, and the log is never synced again in this process (no "fsyncgate" retry).
//! The broker keeps serving every other partition.
//!
//! Idempotent producers are deduplicated by the log itself ([`PartitionLog::append_checked`]): a
//! retried batch is answered with the original's offsets and waits for the same durability as the
//! original (its offsets are at or below the log end, so `wait_durable` covers it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use gregor_core::bugs::{self, Bug};
use gregor_core::metadata::PartitionRegistration;
use gregor_core::replica::divergence::{diverging_epoch, truncation_offset, EpochEnd};
use gregor_core::replica::leader::Leadership;
use gregor_storage::{AppendInfo, AppendOutcome, LogConfig, LogError, PartitionLog, ProducerError, ReadResult};
use tokio::sync::Notify;
use crate::metrics::Metrics;

/// Why a partition operation failed, mapped to Kafka error codes by the handlers.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("storage error: {0}")]
    Storage(String),
    #[error("partition was deleted")]
    Deleted,
    #[error("batch of {size} bytes is larger than max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("corrupt batch: {0}")]
    Corrupt(String),
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OutOfRange { offset: i64, start: i64, end: i64 },
    #[error("{0}")]
    Producer(ProducerError),
    #[error("this broker is not the leader of the partition at that epoch")]
    NotLeader,
    #[error("this broker is not a follower of that leader epoch")]
    NotFollower,
    #[error("broker {0} is not a replica of the partition")]
    NotAReplica(i32),
    #[error("the write was appended but the ISR has {isr} replicas, fewer than min.insync.replicas {min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    #[error("this partition's high watermark ({high_watermark}) is lagging behind the start offset of its leader epoch ({epoch_start})")]
    HighWatermarkLagging { high_watermark: i64, epoch_start: i64 },
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        use crate::errors::*;
        match self {
            PartitionError::Storage(_) => KAFKA_STORAGE_ERROR,
            PartitionError::Deleted => UNKNOWN_TOPIC_OR_PARTITION,
            PartitionError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            PartitionError::Corrupt(_) => CORRUPT_MESSAGE,
            PartitionError::OutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            PartitionError::Producer(ProducerError::InvalidProducerEpoch { .. }) => INVALID_PRODUCER_EPOCH,
            PartitionError::Producer(ProducerError::OutOfOrderSequence { .. }) => OUT_OF_ORDER_SEQUENCE_NUMBER,
            PartitionError::NotLeader | PartitionError::NotFollower | PartitionError::NotAReplica(_) => NOT_LEADER_OR_FOLLOWER,
            PartitionError::NotEnoughReplicasAfterAppend { .. } => NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            PartitionError::HighWatermarkLagging { .. } => OFFSET_NOT_AVAILABLE,
        }
    }
}

fn from_log(e: LogError) -> PartitionError {
    match e {
        LogError::MessageTooLarge { size, max } => PartitionError::TooLarge { size, max },
        LogError::Corrupt(b) => PartitionError::Corrupt(b.to_string()),
        LogError::Producer(p) => PartitionError::Producer(p),
        LogError::OffsetOutOfRange { offset, log_start_offset, log_end_offset } => {
            PartitionError::OutOfRange { offset, start: log_start_offset, end: log_end_offset }
        }
        other => PartitionError::Storage(other.to_string()),
    }
}

/// This replica's role, as the metadata image gives it.
enum Role {
    /// Not yet given one (at start-up, until the committed image is published).
    Unassigned,
    Leader(Leadership),
    /// Following `leader` (-1: the partition has no leader now).
    Follower { leader: i32 },
}

struct State {
    /// `None` once closed at shutdown.
    log: Option<PartitionLog>,
    high_watermark: i64,
    failed: bool,
    unflushed_messages: i64,
    last_flush_ms: u64,
    /// The leader epoch of the current registration; written into every batch appended while
    /// leading, and the epoch a follower fetches at.
    leader_epoch: i32,
    role: Role,
    /// The topic's `min.insync.replicas` as configured (given to every leadership).
    min_insync: usize,
}

impl State {
    /// The leader's own durable log end: what it counts toward the high watermark.
    fn durable_end(&self) -> i64 {
        let log = self.log.as_ref().expect("checked open");
        if !strict(log.config()) || bugs::active(Bug::HwBeforeFsync) {
            log.log_end_offset()
        } else {
            log.flushed_offset()
        }
    }

    /// Moves a leader's high watermark as far as the ISR allows; true if it moved.
    fn advance_hw(&mut self, topic: &str, partition: i32) -> bool {
        let durable = self.durable_end();
        let Role::Leader(l) = &mut self.role else { return false };
        let moved = if bugs::active(Bug::HwFromLeaderAlone) { (durable > l.high_watermark()).then_some(durable) } else { l.advance_high_watermark(durable) };
        match moved {
            Some(hw) => {
                assert!(hw >= self.high_watermark, "high watermark went back from {} to {hw}", self.high_watermark);
                self.high_watermark = hw;
                gregor_core::probe::observe(gregor_core::probe::Observed::HighWatermark { topic, partition, node_id: l.me, leader_epoch: l.leader_epoch, high_watermark: hw });
                true
            }
            None => false,
        }
    }
}

/// Broker-wide signals a partition raises.
#[derive(Clone, Default)]
pub struct Signals {
    /// Wakes long-polling consumer fetches when any high watermark moves.
    pub hw_changed: Arc<Notify>,
    /// Wakes long-polling follower fetches when any leader's log grows.
    pub appended: Arc<Notify>,
}

/// A partition hosted by this broker.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    state: Mutex<State>,
    /// Wakes the flusher (permit-storing, so a wake during an fsync is not lost).
    flush_wanted: Notify,
    /// Wakes whoever waits for durability or for the high watermark.
    progress: Notify,
    signals: Signals,
    /// Times this partition's fsyncs.
    metrics: Arc<Metrics>,
    deleted: AtomicBool,
}

/// What a leader answers a follower's fetch.
#[derive(Debug, Clone)]
pub struct ReplicaRead {
    pub data: Bytes,
    pub high_watermark: i64,
    pub log_start: i64,
    pub log_end: i64,
    /// Set when the follower's log diverges: the epoch and end offset to truncate by; no data.
    pub diverging: Option<EpochEnd>,
}

/// Where a follower fetches from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub log_start: i64,
}

/// How a registration changed this replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    /// Leads now (a new leadership, or a new leader epoch).
    Leader,
    /// Follows `leader` at `leader_epoch` now.
    Follower { leader: i32, leader_epoch: i32 },
}

/// A snapshot of the partition's offsets.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    pub log_end: i64,
    /// While this broker leads: the first offset of its leader epoch (its log end when the
    /// leadership began). A new leader's high watermark may lag behind it, and so behind the
    /// high watermark its predecessor reported, until its followers fetch again.
    pub epoch_start: Option<i64>,
}

impl Offsets {
    /// KIP-207: a leader whose high watermark lags behind the start of its epoch does not answer
    /// a client's ListOffsets with it (it may be below what the previous leader reported, and a
    /// client's "latest" would go back), but with OFFSET_NOT_AVAILABLE, which clients retry.
    pub fn lagging(&self) -> Result<(), PartitionError> {
        match self.epoch_start {
            Some(epoch_start) if epoch_start > self.high_watermark && !bugs::active(Bug::ListOffsetsLaggingHw) => {
                Err(PartitionError::HighWatermarkLagging { high_watermark: self.high_watermark, epoch_start })
            }
            _ => Ok(()),
        }
    }
}

fn offsets_of(st: &State, log: &PartitionLog) -> Offsets {
    let epoch_start = match &st.role {
        Role::Leader(l) => Some(l.epoch_start_offset),
        _ => None,
    };
    Offsets { log_start: log.log_start_offset(), high_watermark: st.high_watermark, log_end: log.log_end_offset(), epoch_start }
}

fn strict(config: &LogConfig) -> bool {
    config.flush_messages <= 1
}

impl Partition {
    /// Wraps an opened log whose high watermark was `high_watermark` (clamped to the log). The
    /// caller spawns [`Partition::run_flusher`].
    pub fn new(
        topic: String,
        index: i32,
        log: PartitionLog,
        high_watermark: i64,
        signals: Signals,
        metrics: Arc<Metrics>,
        now_mono_ms: u64,
    ) -> Arc<Partition> {
        let hw = high_watermark.clamp(log.log_start_offset(), log.log_end_offset());
        Arc::new(Partition {
            topic,
            index,
            state: Mutex::new(State {
                log: Some(log),
                high_watermark: hw,
                failed: false,
                unflushed_messages: 0,
                last_flush_ms: now_mono_ms,
                // No role until the metadata image gives it one.
                leader_epoch: -1,
                role: Role::Unassigned,
                min_insync: 1,
            }),
            flush_wanted: Notify::new(),
            progress: Notify::new(),
            signals,
            metrics,
            deleted: AtomicBool::new(false),
        })
    }

    fn hw_moved(&self) {
        self.progress.notify_waiters();
        self.signals.hw_changed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while appending: the in-memory state cannot be trusted.
        self.state.lock().unwrap_or_else(|p| panic!("partition {}-{} state poisoned: {p}", self.topic, self.index))
    }

    fn with_log<T>(&self, f: impl FnOnce(&mut State) -> Result<T, PartitionError>) -> Result<T, PartitionError> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(PartitionError::Deleted);
        }
        let mut st = self.lock();
        if st.failed {
            return Err(PartitionError::Storage("partition failed after a storage error".into()));
        }
        if st.log.is_none() {
            return Err(PartitionError::Storage("partition is closed".into()));
        }
        f(&mut st)
    }

    /// Applies the registration the metadata image gives this partition: becomes its leader,
    /// a follower of its leader, or updates the current leadership's replicas and ISR.
    pub fn apply_registration(&self, me: i32, reg: &PartitionRegistration, now_mono_ms: u64) -> RoleChange {
        let (change, moved) = {
            let mut st = self.lock();
            let old = st.leader_epoch;
            // The image only ever raises leader epochs (MetadataImage::apply bumps them).
            assert!(reg.leader_epoch >= old, "{}-{}: leader epoch went back from {old} to {}", self.topic, self.index, reg.leader_epoch);
            let same_epoch = reg.leader_epoch == old;
            let change = if reg.leader == me {
                match &mut st.role {
                    Role::Leader(l) if same_epoch => {
                        l.update(reg.partition_epoch, &reg.replicas, &reg.isr, now_mono_ms);
                        RoleChange::Unchanged
                    }
                    _ => {
                        let hw = st.high_watermark;
                        let log_end = match st.log.as_mut() {
                            Some(log) => {
                                log.assign_leader_epoch(reg.leader_epoch);
                                log.log_end_offset()
                            }
                            None => 0,
                        };
                        let mut l = Leadership::new(me, reg.leader_epoch, reg.partition_epoch, &reg.replicas, &reg.isr, log_end, hw, now_mono_ms);
                        l.set_min_insync(st.min_insync);
                        st.role = Role::Leader(l);
                        RoleChange::Leader
                    }
                }
            } else {
                let unchanged = same_epoch && matches!(st.role, Role::Follower { leader } if leader == reg.leader);
                st.role = Role::Follower { leader: reg.leader };
                if unchanged {
                    RoleChange::Unchanged
                } else {
                    RoleChange::Follower { leader: reg.leader, leader_epoch: reg.leader_epoch }
                }
            };
            st.leader_epoch = reg.leader_epoch;
            let moved = st.log.is_some() && !st.failed && st.advance_hw(&self.topic, self.index);
            (change, moved)
        };
        // Producers waiting on an old leadership learn it ended.
        self.progress.notify_waiters();
        if moved {
            self.hw_moved();
        }
        change
    }

    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.lock().role, Role::Leader(_))
    }

    /// The committed ISR's size while leading (0 otherwise).
    pub fn isr_len(&self) -> usize {
        match &self.lock().role {
            Role::Leader(l) => l.isr().len(),
            _ => 0,
        }
    }

    /// The leadership's state, for ISR management and tests (None unless leading).
    pub fn leadership(&self) -> Option<Leadership> {
        match &self.lock().role {
            Role::Leader(l) => Some(l.clone()),
            _ => None,
        }
    }

    /// Runs `f` on the leadership (None unless leading at `leader_epoch`).
    pub fn with_leadership<T>(&self, leader_epoch: i32, f: impl FnOnce(&mut Leadership) -> T) -> Option<T> {
        let mut st = self.lock();
        match &mut st.role {
            Role::Leader(l) if l.leader_epoch == leader_epoch => Some(f(l)),
            _ => None,
        }
    }

    /// Appends validated batches, assigning offsets. Durability is awaited separately. An
    /// idempotent producer's retry of a batch already in the log appends nothing and returns the
    /// original batch's offsets.
    pub fn append(&self, batches: &mut [u8], record_count: i64, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let (info, wake_flusher, hw_moved) = self.with_log(|st| {
            if !matches!(st.role, Role::Leader(_)) {
                return Err(PartitionError::NotLeader);
            }
            let epoch = st.leader_epoch;
            let log = st.log.as_mut().expect("checked open");
            let info = match log.append_checked(batches, epoch, now_ms) {
                Ok(AppendOutcome::Appended(info)) => info,
                Ok(AppendOutcome::Duplicate(info)) => {
                    tracing::debug!(topic = %self.topic, partition = self.index, base_offset = info.base_offset, "duplicate batch from an idempotent producer");
                    return Ok((info, false, false));
                }
                Err(e @ LogError::Io(_)) | Err(e @ LogError::Failed) => {
                    st.failed = true;
                    return Err(from_log(e));
                }
                Err(e) => return Err(from_log(e)),
            };
            let config = log.config();
            let wake = if strict(config) {
                true
            } else {
                st.unflushed_messages += record_count;
                st.unflushed_messages >= config.flush_messages
            };
            Ok((info, wake, st.advance_hw(&self.topic, self.index)))
        })?;
        if wake_flusher {
            self.flush_wanted.notify_one();
        }
        self.signals.appended.notify_waiters();
        if hw_moved {
            self.hw_moved();
        }
        Ok(info)
    }

    /// acks=all: waits until the high watermark covers everything below `offset` (the ISR has
    /// it durably), then checks that the ISR still has `min_insync` replicas. Fails with
    /// NOT_LEADER_OR_FOLLOWER if the leadership at `leader_epoch` ends first: the write may or
    /// may not survive, and the producer's retry (idempotent) settles it.
    pub async fn wait_replicated(&self, offset: i64, leader_epoch: i32, min_insync: usize) -> Result<(), PartitionError> {
        self.wait_for(|st| {
            let log = st.log.as_ref().expect("checked open");
            let l = match &st.role {
                Role::Leader(l) if l.leader_epoch == leader_epoch => l,
                _ => return Some(Err(PartitionError::NotLeader)),
            };
            if st.high_watermark < offset {
                return None;
            }
            let isr = l.isr().len();
            if isr < min_insync {
                return Some(Err(PartitionError::NotEnoughReplicasAfterAppend { isr, min: min_insync }));
            }
            if strict(log.config()) {
                log.probe_durable_below("acknowledged write", offset);
            }
            Some(Ok(()))
        })
        .await
    }

    /// Waits until `ready` gives an answer, re-checking whenever the partition makes progress
    /// (a flush, a high watermark move, a role change). A failed, closed or deleted partition
    /// ends the wait with its error.
    async fn wait_for(&self, mut ready: impl FnMut(&State) -> Option<Result<(), PartitionError>>) -> Result<(), PartitionError> {
        loop {
            let notified = self.progress.notified();
            {
                let st = self.lock();
                if st.failed {
                    return Err(PartitionError::Storage("partition failed after a storage error".into()));
                }
                if st.log.is_none() {
                    return Err(PartitionError::Storage("partition is closed".into()));
                }
                if let Some(answer) = ready(&st) {
                    return answer;
                }
            }
            if self.deleted.load(Ordering::Acquire) {
                return Err(PartitionError::Deleted);
            }
            notified.await;
        }
    }

    /// Leader: serves a follower's fetch at `fetch_offset` whose last batch has epoch
    /// `last_fetched_epoch`: the divergence check first, then the follower's new position (which
    /// may move the high watermark), then up to `max_bytes` of batches up to the log end.
    ///
    /// `throttled` (the partition is throttled here and the leader quota is used up) withholds
    /// the data from a replica outside the ISR; its position still counts.
    #[allow(clippy::too_many_arguments)]
    pub fn read_for_follower(
        &self,
        replica: i32,
        replica_epoch: i64,
        leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        max_bytes: usize,
        throttled: bool,
        now_mono_ms: u64,
    ) -> Result<ReplicaRead, PartitionError> {
        let (read, moved) = self.with_log(|st| {
            match &st.role {
                Role::Leader(l) if l.leader_epoch == leader_epoch => {}
                _ => return Err(PartitionError::NotLeader),
            }
            let log = st.log.as_ref().expect("checked open");
            let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
            let diverging = diverging_epoch(last_fetched_epoch, fetch_offset, log.epoch_end_offset(last_fetched_epoch)).filter(|_| !bugs::active(Bug::SkipEpochTruncation));
            if let Some(mut d) = diverging {
                if d.0 < 0 {
                    // No epoch at or below the follower's here: nothing before this log's start
                    // is shared. (Fetch cannot carry an end offset of -1: it means "no divergence".)
                    d = (-1, log_start);
                }
                return Ok((ReplicaRead { data: Bytes::new(), high_watermark: st.high_watermark, log_start, log_end, diverging: Some(d) }, false));
            }
            if fetch_offset < log_start || fetch_offset > log_end {
                return Err(PartitionError::OutOfRange { offset: fetch_offset, start: log_start, end: log_end });
            }
            let Role::Leader(l) = &mut st.role else { unreachable!("checked above") };
            l.on_fetch(replica, replica_epoch, fetch_offset, log_end, now_mono_ms).map_err(|_| PartitionError::NotAReplica(replica))?;
            let withheld = throttled && !l.maximal_isr().contains(&replica);
            let moved = st.advance_hw(&self.topic, self.index);
            let log = st.log.as_ref().expect("checked open");
            let data = if fetch_offset < log_end && !withheld { log.read(fetch_offset, max_bytes, log_end).map_err(from_log)?.data } else { Bytes::new() };
            Ok((ReplicaRead { data, high_watermark: st.high_watermark, log_start, log_end, diverging: None }, moved))
        })?;
        if moved {
            self.hw_moved();
        }
        Ok(read)
    }

    /// Follower: where to fetch from next (the log end and the epoch of its last batch).
    pub fn fetch_position(&self) -> Result<FetchPosition, PartitionError> {
        self.with_log(|st| {
            let log = st.log.as_ref().expect("checked open");
            Ok(FetchPosition { fetch_offset: log.log_end_offset(), last_fetched_epoch: log.latest_epoch().unwrap_or(-1), log_start: log.log_start_offset() })
        })
    }

    fn check_follower(st: &State, leader_epoch: i32) -> Result<(), PartitionError> {
        match st.role {
            Role::Follower { .. } if st.leader_epoch == leader_epoch => Ok(()),
            _ => Err(PartitionError::NotFollower),
        }
    }

    /// Follower: appends batches fetched from the leader of `leader_epoch` (offsets and epochs
    /// kept), then takes the leader's high watermark and log start. Returns the new log end.
    pub fn append_from_leader(&self, leader_epoch: i32, data: &mut [u8], leader_hw: i64, leader_log_start: i64, now_ms: i64) -> Result<i64, PartitionError> {
        let (end, appended, moved) = self.with_log(|st| {
            Self::check_follower(st, leader_epoch)?;
            let log = st.log.as_mut().expect("checked open");
            let before = log.log_end_offset();
            if !data.is_empty() {
                if let Err(e) = log.append_as_follower(data, now_ms) {
                    if matches!(e, LogError::Io(_) | LogError::Failed) {
                        st.failed = true;
                    }
                    return Err(from_log(e));
                }
            }
            let end = log.log_end_offset();
            // The leader's log start moves a follower's too (retention, DeleteRecords), but
            // never past what this replica knows is committed.
            let hw = st.high_watermark.max(leader_hw.min(end));
            if leader_log_start > log.log_start_offset() && leader_log_start <= hw {
                log.delete_records_before(leader_log_start).map_err(from_log)?;
            }
            let moved = hw > st.high_watermark;
            st.high_watermark = hw;
            Ok((end, end > before, moved))
        })?;
        if appended {
            self.flush_wanted.notify_one();
        }
        if moved {
            self.hw_moved();
        }
        Ok(end)
    }

    /// Follower: truncates where the leader of `leader_epoch` says this log diverges from its
    /// own. Returns the new log end.
    pub fn truncate_diverging(&self, leader_epoch: i32, diverging: EpochEnd) -> Result<i64, PartitionError> {
        self.with_log(|st| {
            Self::check_follower(st, leader_epoch)?;
            let log = st.log.as_mut().expect("checked open");
            let local = log.epoch_end_offset(diverging.0);
            let to = truncation_offset(diverging, local, log.log_start_offset(), log.log_end_offset());
            let result = if to < log.log_start_offset() { log.truncate_fully_and_start_at(to) } else { log.truncate_to(to) };
            if let Err(e) = result {
                st.failed = true;
                return Err(from_log(e));
            }
            if to < st.high_watermark {
                // Only an unclean election makes a replica give up committed records.
                tracing::warn!(topic = %self.topic, partition = self.index, high_watermark = st.high_watermark, to, "truncating below the high watermark");
                st.high_watermark = to;
            }
            tracing::info!(topic = %self.topic, partition = self.index, ?diverging, to, "truncated a diverging log");
            Ok(log_end_of(st))
        })
    }

    /// Follower: the leader no longer has this replica's fetch offset (its log start passed
    /// it): empties the log and restarts it at `offset`.
    pub fn restart_at(&self, leader_epoch: i32, offset: i64) -> Result<(), PartitionError> {
        self.with_log(|st| {
            Self::check_follower(st, leader_epoch)?;
            let log = st.log.as_mut().expect("checked open");
            if let Err(e) = log.truncate_fully_and_start_at(offset) {
                st.failed = true;
                return Err(from_log(e));
            }
            st.high_watermark = offset;
            Ok(())
        })
    }

    /// Follower: where the next fetch starts, once everything below it is fsynced here (nothing
    /// to wait for under the page-cache policy). The leader counts a reported fetch offset as
    /// durable on this replica, so the wait sits right where the offset is reported, whichever
    /// fetcher appended last.
    pub async fn durable_fetch_position(&self) -> Result<FetchPosition, PartitionError> {
        let pos = self.fetch_position()?;
        if !bugs::active(Bug::FollowerReportsBeforeFsync) {
            self.wait_for(|st| {
                let log = st.log.as_ref().expect("checked open");
                (!strict(log.config()) || log.flushed_offset() >= pos.fetch_offset).then_some(Ok(()))
            })
            .await?;
        }
        self.with_log(|st| {
            let log = st.log.as_ref().expect("checked open");
            if strict(log.config()) {
                // The simulator's durability oracle: a reported offset must be durable now.
                log.probe_durable_below("fetch offset reported to the leader", pos.fetch_offset);
            }
            Ok(())
        })?;
        Ok(pos)
    }

    /// Waits until everything below `offset` is durable on this replica under the partition's
    /// policy (acks=1, and the single-node case of acks=all).
    pub async fn wait_durable(&self, offset: i64) -> Result<(), PartitionError> {
        self.wait_for(|st| {
            let log = st.log.as_ref().expect("checked open");
            if !strict(log.config()) {
                return Some(Ok(()));
            }
            if log.flushed_offset() >= offset || bugs::active(Bug::AckBeforeFsync) {
                // The simulator's durability oracle: everything acknowledged must be durable now.
                log.probe_durable_below("acknowledged write", offset);
                return Some(Ok(()));
            }
            None
        })
        .await
    }

    /// The flusher: syncs whatever was appended since the last sync, outside the partition lock,
    /// then publishes the new durable offset. Runs until the partition is deleted or closed.
    pub async fn run_flusher(self: Arc<Self>) {
        loop {
            self.flush_wanted.notified().await;
            if self.deleted.load(Ordering::Acquire) {
                self.progress.notify_waiters();
                return;
            }
            let (mut files, mut target) = {
                let mut st = self.lock();
                if st.failed {
                    continue;
                }
                match st.log.as_mut() {
                    None => return,
                    Some(log) => log.take_unflushed(),
                }
            };
            let delay = files.iter().map(|f| f.sync_delay()).max().unwrap_or_default();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                // Appends made while the device was busy join this fsync (group commit).
                let mut st = self.lock();
                if st.failed {
                    // An append failed meanwhile: the waiters learn it from the state.
                    drop(st);
                    self.progress.notify_waiters();
                    continue;
                }
                match st.log.as_mut() {
                    None => return,
                    Some(log) => {
                        let (more, t) = log.take_unflushed();
                        for f in more {
                            if !files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                                files.push(f);
                            }
                        }
                        target = t;
                    }
                }
            }
            let started_us = self.metrics.now_us();
            #[allow(deprecated)] // madsim-tokio deprecates spawn_blocking; in the simulator it runs inline
            let result = tokio::task::spawn_blocking(move || files.iter().try_for_each(|f| f.sync())).await;
            self.metrics.log_flush.observe_us(self.metrics.elapsed_us(started_us));
            let ok = matches!(result, Ok(Ok(()))) || bugs::active(Bug::IgnoreFsyncFailure);
            let moved = {
                let mut st = self.lock();
                if ok {
                    match st.log.as_mut() {
                        Some(log) => {
                            log.mark_flushed(target);
                            st.unflushed_messages = 0;
                            st.advance_hw(&self.topic, self.index)
                        }
                        None => false,
                    }
                } else {
                    tracing::error!(topic = %self.topic, partition = self.index, error = ?result,
                        "fsync failed; partition taken offline until restart");
                    st.failed = true;
                    if let Some(log) = st.log.as_mut() {
                        log.mark_failed();
                    }
                    false
                }
            };
            self.progress.notify_waiters();
            if moved {
                self.signals.hw_changed.notify_waiters();
            }
        }
    }

    /// Asks for a flush if the page-cache policy's `flush.ms` has elapsed.
    pub fn maybe_flush_on_interval(&self, now_mono_ms: u64) {
        let due = {
            let mut st = self.lock();
            let Some(log) = st.log.as_ref() else { return };
            let flush_ms = log.config().flush_ms;
            let due = !strict(log.config())
                && st.unflushed_messages > 0
                && flush_ms >= 0
                && now_mono_ms.saturating_sub(st.last_flush_ms) >= flush_ms as u64;
            if due {
                st.last_flush_ms = now_mono_ms;
            }
            due
        };
        if due {
            self.flush_wanted.notify_one();
        }
    }

    /// Reads whole batches from `offset`, bounded by `max_bytes` and the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<(ReadResult, Offsets), PartitionError> {
        self.with_log(|st| {
            let log = st.log.as_ref().expect("checked open");
            let offsets = offsets_of(st, log);
            if offset > st.high_watermark && offset <= offsets.log_end {
                // Between the high watermark and the log end: nothing visible yet, not an error.
                return Ok((ReadResult { data: bytes::Bytes::new(), log_start_offset: offsets.log_start, log_end_offset: offsets.log_end }, offsets));
            }
            let r = log.read(offset, max_bytes, st.high_watermark).map_err(from_log)?;
            if strict(log.config()) {
                // Under fsync-before-ack consumers only see durable records (simulator oracle).
                log.probe_served("read served under fsync-before-ack", &r.data);
            }
            Ok((r, offsets))
        })
    }

    pub fn offsets(&self) -> Result<Offsets, PartitionError> {
        self.with_log(|st| {
            let log = st.log.as_ref().expect("checked open");
            Ok(offsets_of(st, log))
        })
    }

    /// Runs `f` on the log (ListOffsets lookups, retention, config changes).
    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog, i64) -> Result<T, LogError>) -> Result<T, PartitionError> {
        self.with_log(|st| {
            let hw = st.high_watermark;
            let log = st.log.as_mut().expect("checked open");
            match f(log, hw) {
                Ok(v) => Ok(v),
                Err(e @ LogError::Io(_)) => {
                    st.failed = true;
                    Err(from_log(e))
                }
                Err(e) => Err(from_log(e)),
            }
        })
    }

    /// Takes the topic's `min.insync.replicas` (before a registration is applied, and whenever
    /// the config changes): a lower value may let a leader's high watermark move at once.
    pub fn set_min_insync(&self, configured: usize) {
        let moved = {
            let mut st = self.lock();
            st.min_insync = configured;
            if let Role::Leader(l) = &mut st.role {
                l.set_min_insync(configured);
            }
            st.log.is_some() && !st.failed && st.advance_hw(&self.topic, self.index)
        };
        if moved {
            self.hw_moved();
        }
    }

    pub fn set_config(&self, config: LogConfig) {
        let mut st = self.lock();
        if let Some(log) = st.log.as_mut() {
            log.set_config(config);
        }
    }

    /// Marks the partition deleted and returns its log for removal.
    pub fn take_for_delete(&self) -> Option<PartitionLog> {
        self.deleted.store(true, Ordering::Release);
        let log = self.lock().log.take();
        self.flush_wanted.notify_one();
        self.progress.notify_waiters();
        log
    }

    /// Clean shutdown: closes the log (sync, indexes, clean marker).
    pub fn close(&self) -> Result<(), PartitionError> {
        let log = self.lock().log.take();
        self.flush_wanted.notify_one();
        self.progress.notify_waiters();
        match log {
            Some(log) => log.close().map_err(from_log),
            None => Ok(()),
        }
    }
}

fn log_end_of(st: &State) -> i64 {
    st.log.as_ref().map_or(0, |l| l.log_end_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_whose_high_watermark_lags_its_epoch_start_answers_offset_not_available() {
        let o = Offsets { log_start: 0, high_watermark: 5, log_end: 9, epoch_start: Some(9) };
        let e = o.lagging().expect_err("lagging");
        assert_eq!(e.code(), crate::errors::OFFSET_NOT_AVAILABLE);
        assert!(e.to_string().contains("high watermark (5) is lagging behind the start offset of its leader epoch (9)"), "{e}");
        assert!(Offsets { high_watermark: 9, ..o }.lagging().is_ok());
        assert!(Offsets { epoch_start: None, ..o }.lagging().is_ok());
    }
}
