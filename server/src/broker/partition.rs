//! One partition of a topic on this broker: its log, its high watermark, and group commit.
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

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gregor_core::bugs::{self, Bug};
use gregor_storage::{AppendInfo, AppendOutcome, LogConfig, LogError, PartitionLog, ProducerError, ReadResult};
use tokio::sync::Notify;

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

struct State {
    /// `None` once closed at shutdown.
    log: Option<PartitionLog>,
    high_watermark: i64,
    failed: bool,
    unflushed_messages: i64,
    last_flush_ms: u64,
}

/// A partition hosted by this broker.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// The leader epoch of the current leadership (from the metadata image), written into every
    /// batch appended while leading.
    leader_epoch: AtomicI32,
    /// Whether this broker leads the partition (from the metadata image).
    leading: AtomicBool,
    state: Mutex<State>,
    /// Wakes the flusher (permit-storing, so a wake during an fsync is not lost).
    flush_wanted: Notify,
    /// Wakes producers waiting for durability.
    flushed: Notify,
    /// Broker-wide: wakes long-polling fetches when any high watermark moves.
    hw_changed: Arc<Notify>,
    deleted: AtomicBool,
}

/// A snapshot of the partition's offsets.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    pub log_end: i64,
}

fn strict(config: &LogConfig) -> bool {
    config.flush_messages <= 1
}

impl Partition {
    /// Wraps an opened log. The caller spawns [`Partition::run_flusher`].
    pub fn new(topic: String, index: i32, log: PartitionLog, hw_changed: Arc<Notify>, now_mono_ms: u64) -> Arc<Partition> {
        // Everything recovery kept is treated as committed: it was on disk when we started.
        let hw = log.log_end_offset();
        Arc::new(Partition {
            topic,
            index,
            // No leadership until the metadata image gives it one.
            leader_epoch: AtomicI32::new(-1),
            leading: AtomicBool::new(false),
            state: Mutex::new(State { log: Some(log), high_watermark: hw, failed: false, unflushed_messages: 0, last_flush_ms: now_mono_ms }),
            flush_wanted: Notify::new(),
            flushed: Notify::new(),
            hw_changed,
            deleted: AtomicBool::new(false),
        })
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

    /// Applies the leadership the metadata image gives this partition.
    pub fn set_leadership(&self, leading: bool, leader_epoch: i32) {
        let old = self.leader_epoch.swap(leader_epoch, Ordering::SeqCst);
        assert!(leader_epoch >= old, "{}-{}: leader epoch went back from {old} to {leader_epoch}", self.topic, self.index);
        self.leading.store(leading, Ordering::SeqCst);
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::SeqCst)
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Appends validated batches, assigning offsets. Durability is awaited separately. An
    /// idempotent producer's retry of a batch already in the log appends nothing and returns the
    /// original batch's offsets.
    pub fn append(&self, batches: &mut [u8], record_count: i64, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let (info, wake_flusher, hw_moved) = self.with_log(|st| {
            let log = st.log.as_mut().expect("checked open");
            let info = match log.append_checked(batches, self.leader_epoch(), now_ms) {
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
            if strict(config) && bugs::active(Bug::HwBeforeFsync) {
                st.high_watermark = log.log_end_offset();
                Ok((info, true, true))
            } else if strict(config) {
                Ok((info, true, false))
            } else {
                st.high_watermark = log.log_end_offset();
                st.unflushed_messages += record_count;
                Ok((info, st.unflushed_messages >= config.flush_messages, true))
            }
        })?;
        if wake_flusher {
            self.flush_wanted.notify_one();
        }
        if hw_moved {
            self.hw_changed.notify_waiters();
        }
        Ok(info)
    }

    /// Waits until everything below `offset` is durable under the partition's policy.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), PartitionError> {
        loop {
            let notified = self.flushed.notified();
            {
                let st = self.lock();
                if st.failed {
                    return Err(PartitionError::Storage("fsync failed".into()));
                }
                let Some(log) = st.log.as_ref() else {
                    return Err(PartitionError::Storage("partition is closed".into()));
                };
                if !strict(log.config()) {
                    return Ok(());
                }
                if log.flushed_offset() >= offset || bugs::active(Bug::AckBeforeFsync) {
                    // The simulator's durability oracle: everything acknowledged must be durable now.
                    log.probe_durable_below("acknowledged write", offset);
                    return Ok(());
                }
            }
            if self.deleted.load(Ordering::Acquire) {
                return Err(PartitionError::Deleted);
            }
            notified.await;
        }
    }

    /// The flusher: syncs whatever was appended since the last sync, outside the partition lock,
    /// then publishes the new durable offset. Runs until the partition is deleted or closed.
    pub async fn run_flusher(self: Arc<Self>) {
        loop {
            self.flush_wanted.notified().await;
            if self.deleted.load(Ordering::Acquire) {
                self.flushed.notify_waiters();
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
                    self.flushed.notify_waiters();
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
            #[allow(deprecated)] // madsim-tokio deprecates spawn_blocking; in the simulator it runs inline
            let result = tokio::task::spawn_blocking(move || files.iter().try_for_each(|f| f.sync())).await;
            let ok = matches!(result, Ok(Ok(()))) || bugs::active(Bug::IgnoreFsyncFailure);
            {
                let mut st = self.lock();
                if ok {
                    if let Some(log) = st.log.as_mut() {
                        log.mark_flushed(target);
                        let strict_mode = strict(log.config());
                        st.unflushed_messages = 0;
                        if strict_mode && target > st.high_watermark {
                            st.high_watermark = target;
                        }
                    }
                } else {
                    tracing::error!(topic = %self.topic, partition = self.index, error = ?result,
                        "fsync failed; partition taken offline until restart");
                    st.failed = true;
                    if let Some(log) = st.log.as_mut() {
                        log.mark_failed();
                    }
                }
            }
            self.flushed.notify_waiters();
            self.hw_changed.notify_waiters();
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
            let offsets = Offsets { log_start: log.log_start_offset(), high_watermark: st.high_watermark, log_end: log.log_end_offset() };
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
            Ok(Offsets { log_start: log.log_start_offset(), high_watermark: st.high_watermark, log_end: log.log_end_offset() })
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
        self.flushed.notify_waiters();
        log
    }

    /// Clean shutdown: closes the log (sync, indexes, clean marker).
    pub fn close(&self) -> Result<(), PartitionError> {
        let log = self.lock().log.take();
        self.flush_wanted.notify_one();
        self.flushed.notify_waiters();
        match log {
            Some(log) => log.close().map_err(from_log),
            None => Ok(()),
        }
    }
}
