//! The quorum driver: runs this node's [`RaftNode`] against the real (or simulated) disk and
//! network, and publishes every committed metadata entry to the broker's image.
//!
//! One task owns the node. Each turn it carries out the node's [`Ready`] in the order the
//! node's contract demands — the quorum-state file durably first, then log changes and one
//! fsync (group commit: every proposal queued meanwhile shares it), then the messages — and then
//! applies newly committed entries, in log order, to a copy of the image that it publishes with
//! the delta. Proposals wait until their entry is applied, so a controller that hears "done"
//! finds its change in the image.
//!
//! Snapshots (`metadata.log.max.record.bytes.between.snapshots`): once that many bytes of
//! entries were applied since the last snapshot, the driver writes the image as a snapshot at
//! the applied offset, tells the node, and deletes the log before it. A replica whose fetch
//! position is gone from the leader's log receives the snapshot in FetchSnapshot chunks; the
//! driver stores them, installs the snapshot when the node resets its log to it, and publishes
//! the snapshot's image with its difference from the old one.
//!
//! Guarantees: nothing is applied before the high watermark covers it; entries are applied once
//! each, in order; a failed fsync or log write stops the quorum (never retried); the node's
//! invariants are checked after every turn.

pub mod snapshot;
pub mod store;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use gregor_core::metadata::{decode_entry, encode_entry, MetadataDelta, MetadataRecord};
use gregor_core::raft::messages::{Envelope, Message};
use gregor_core::metadata::MetadataImage;
use gregor_core::raft::{DescribeQuorumResponse, EntryKind, LeaderIdAndEpoch, LogOp, OffsetAndEpoch, PersistedState, ProposeError, RaftConfig, RaftNode};
use tokio::sync::{mpsc, oneshot};

use crate::broker::Broker;
use crate::config::Voter;
use crate::errors;
use store::{RaftStore, StoreError, ENTRY_BYTES_MAX};

/// Most events (proposals, peer messages) queued for the driver.
const EVENTS_MAX: usize = 4096;

enum Event {
    Propose { payload: Bytes, reply: oneshot::Sender<Result<(), i16>> },
    Describe { reply: oneshot::Sender<DescribeQuorumResponse> },
    /// A request from another node, answered through `reply`.
    Inbound { peer: i32, message: Message, reply: oneshot::Sender<Message> },
    /// Step down as leader (controlled shutdown), asking the voters to elect a successor.
    Resign,
    /// Answer once this node leads and has applied every entry of earlier leaders.
    WaitActive { reply: oneshot::Sender<Result<(), i16>> },
}

/// Most snapshot bytes sent in one FetchSnapshot answer.
const SNAPSHOT_CHUNK_MAX: usize = 1 << 20;

/// How long a request from another node may wait for the quorum's answer (a Fetch is held up
/// to its wait, then answered).
const INBOUND_ANSWER_MS: u64 = 10_000;

/// How long a controller operation waits for the quorum (to catch up after an election, or to
/// commit its entry) before it answers REQUEST_TIMED_OUT, as Kafka's controller times out
/// operations that cannot commit (no majority reachable).
const CONTROLLER_WAIT_MS: u64 = 15_000;

/// What handlers and tools may read about the quorum without asking the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumStatus {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
}

/// The parts the driver task takes over when it starts.
struct Parts {
    node: RaftNode,
    rx: mpsc::Receiver<Event>,
    /// Entries below this are in the image the broker opened with.
    applied_end: i64,
    /// The other voters to reach over their controller listeners (empty: a one-voter quorum).
    voters: Vec<Voter>,
    request_timeout_ms: u64,
    snapshot_bytes: u64,
}

pub struct Quorum {
    tx: mpsc::Sender<Event>,
    parts: Mutex<Option<Parts>>,
    /// The store, shared with [`Quorum::close`] so a clean shutdown can close it.
    store: Arc<Mutex<Option<RaftStore>>>,
    status: Arc<Mutex<QuorumStatus>>,
}

impl Quorum {
    /// Builds the node from what the store read back. `applied_end`: entries below it are
    /// already in the image the caller built.
    /// `snapshot_bytes`: entry bytes applied between snapshots.
    #[allow(clippy::too_many_arguments)]
    pub fn new(config: RaftConfig, voters: Vec<Voter>, store: RaftStore, persisted: PersistedState, seed: u64, now_ms: i64, applied_end: i64, snapshot_bytes: u64) -> Quorum {
        let request_timeout_ms = config.request_timeout_ms.max(1) as u64;
        let node = RaftNode::new(config, persisted, seed, now_ms);
        let (tx, rx) = mpsc::channel(EVENTS_MAX);
        let status = QuorumStatus { leader_id: -1, leader_epoch: node.epoch(), high_watermark: node.high_watermark() };
        Quorum {
            tx,
            parts: Mutex::new(Some(Parts { node, rx, applied_end, voters, request_timeout_ms, snapshot_bytes })),
            store: Arc::new(Mutex::new(Some(store))),
            status: Arc::new(Mutex::new(status)),
        }
    }

    pub fn status(&self) -> QuorumStatus {
        *self.status.lock().expect("quorum status lock")
    }

    /// Starts the driver task for `broker` (once).
    pub fn start(&self, broker: &Arc<Broker>) {
        let Some(parts) = self.parts.lock().expect("quorum parts lock").take() else { return };
        let (answers_tx, answers_rx) = mpsc::channel(EVENTS_MAX);
        let me = parts.node.node_id();
        let transport = (!parts.voters.is_empty()).then(|| transport::Transport::start(me, &parts.voters, parts.request_timeout_ms, answers_tx));
        let driver = Driver {
            transport,
            inbound: BTreeMap::new(),
            next_inbound_id: 0,
            broker: Arc::downgrade(broker),
            node: parts.node,
            store: self.store.clone(),
            status: self.status.clone(),
            applied_end: parts.applied_end,
            waiters: BTreeMap::new(),
            active_waiters: Vec::new(),
            snapshot_bytes: parts.snapshot_bytes.max(1),
            applied_since_snapshot: 0,
        };
        tokio::spawn(driver.run(parts.rx, answers_rx));
    }

    /// Commits `records` as one entry; returns once it is applied to the broker's image.
    /// Errors are Kafka codes: NOT_CONTROLLER when this node does not lead the quorum (or lost
    /// leadership before the entry committed), KAFKA_STORAGE_ERROR when the log failed.
    pub async fn propose(&self, records: &[MetadataRecord]) -> Result<(), i16> {
        let payload = Bytes::from(encode_entry(records));
        if payload.len() > ENTRY_BYTES_MAX {
            return Err(errors::POLICY_VIOLATION);
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Propose { payload, reply }).await.map_err(|_| errors::KAFKA_STORAGE_ERROR)?;
        match tokio::time::timeout(Duration::from_millis(CONTROLLER_WAIT_MS), rx).await {
            Ok(answer) => answer.unwrap_or(Err(errors::KAFKA_STORAGE_ERROR)),
            // It may still commit later; Kafka's answer then is the same.
            Err(_) => Err(errors::REQUEST_TIMED_OUT),
        }
    }

    /// Waits until this node is the active controller: it leads the quorum and its image holds
    /// every entry of earlier leaders (so what the controller validates against is current).
    /// NOT_CONTROLLER when it does not lead (or stops leading while waiting).
    pub async fn wait_active(&self) -> Result<(), i16> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::WaitActive { reply }).await.map_err(|_| errors::NOT_CONTROLLER)?;
        match tokio::time::timeout(Duration::from_millis(CONTROLLER_WAIT_MS), rx).await {
            Ok(answer) => answer.unwrap_or(Err(errors::NOT_CONTROLLER)),
            Err(_) => Err(errors::REQUEST_TIMED_OUT),
        }
    }

    /// The quorum as this node sees it (DescribeQuorum): the leader's view of every voter and
    /// observer when this node leads, NOT_LEADER_OR_FOLLOWER with the known leader otherwise.
    /// `None` when the quorum has stopped.
    pub async fn describe(&self) -> Option<DescribeQuorumResponse> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Describe { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Hands a request from node `peer` to the quorum and waits for its answer.
    pub async fn deliver(&self, peer: i32, message: Message) -> Result<Message, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Inbound { peer, message, reply }).await.map_err(|_| "the quorum has stopped".to_string())?;
        match tokio::time::timeout(Duration::from_millis(INBOUND_ANSWER_MS), rx).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err("the quorum gave no answer".into()),
            Err(_) => Err("the quorum did not answer in time".into()),
        }
    }

    /// If this node leads the quorum, resigns (EndQuorumEpoch to the voters, most caught up
    /// first), so a successor is elected at once instead of after the fetch timeout.
    pub async fn resign(&self) {
        let _ = self.tx.send(Event::Resign).await;
    }

    /// Clean shutdown: closes the log; the driver stops at its next turn.
    pub fn close(&self) {
        if let Some(store) = self.store.lock().expect("quorum store lock").take() {
            store.close();
        }
    }
}

struct Driver {
    transport: Option<transport::Transport>,
    /// Requests from other nodes awaiting the node's answer, by (peer, correlation id).
    inbound: BTreeMap<(i32, i32), oneshot::Sender<Message>>,
    next_inbound_id: i32,
    broker: Weak<Broker>,
    node: RaftNode,
    store: Arc<Mutex<Option<RaftStore>>>,
    status: Arc<Mutex<QuorumStatus>>,
    applied_end: i64,
    /// Proposals waiting to be applied, by the end offset of their entry.
    waiters: BTreeMap<i64, oneshot::Sender<Result<(), i16>>>,
    /// [`Quorum::wait_active`] callers waiting for this leader to catch up.
    active_waiters: Vec<oneshot::Sender<Result<(), i16>>>,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    snapshot_bytes: u64,
    /// Entry bytes applied since the last snapshot.
    applied_since_snapshot: u64,
}

/// Why the driver stopped.
enum Stop {
    Closed,
    Failed(StoreError),
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut answers: mpsc::Receiver<Envelope>) {
        loop {
            let Some(broker) = self.broker.upgrade() else { break };
            let now = broker.clock.monotonic_ms() as i64;
            if let Err(stop) = self.drive(&broker, now) {
                if let Stop::Failed(e) = stop {
                    tracing::error!(error = %e, "metadata quorum stopped: its log cannot be written");
                }
                break;
            }
            let wait_ms = (self.node.next_deadline_ms() - now).clamp(0, 60_000) as u64;
            drop(broker);
            tokio::select! {
                biased;
                event = rx.recv() => match event {
                    Some(Event::Propose { payload, reply }) => self.propose(payload, reply),
                    Some(Event::Describe { reply }) => {
                        let _ = reply.send(self.node.describe_quorum());
                    }
                    Some(Event::WaitActive { reply }) => {
                        self.active_waiters.push(reply);
                        self.answer_active_waiters();
                    }
                    Some(Event::Resign) => {
                        let now = self.broker.upgrade().map_or(0, |b| b.clock.monotonic_ms() as i64);
                        self.node.resign(now);
                    }
                    Some(Event::Inbound { peer, message, reply }) => {
                        self.next_inbound_id = self.next_inbound_id.wrapping_add(1);
                        let correlation_id = self.next_inbound_id;
                        self.inbound.retain(|_, w| !w.is_closed());
                        self.inbound.insert((peer, correlation_id), reply);
                        let now = self.broker.upgrade().map_or(0, |b| b.clock.monotonic_ms() as i64);
                        self.node.step(Envelope { peer, correlation_id, message }, now);
                    }
                    None => break,
                },
                Some(answer) = answers.recv() => {
                    let now = self.broker.upgrade().map_or(0, |b| b.clock.monotonic_ms() as i64);
                    self.node.step(answer, now);
                }
                _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            }
            if let Some(broker) = self.broker.upgrade() {
                self.node.tick(broker.clock.monotonic_ms() as i64);
            }
        }
        for (_, w) in std::mem::take(&mut self.waiters) {
            let _ = w.send(Err(errors::NOT_CONTROLLER));
        }
        for w in std::mem::take(&mut self.active_waiters) {
            let _ = w.send(Err(errors::NOT_CONTROLLER));
        }
    }

    /// Answers [`Quorum::wait_active`] callers once this leader has applied its LeaderChange
    /// entry (and so every earlier entry), or at once with NOT_CONTROLLER when it does not lead.
    fn answer_active_waiters(&mut self) {
        if self.active_waiters.is_empty() {
            return;
        }
        let answer = match self.node.epoch_start_offset() {
            None => Err(errors::NOT_CONTROLLER),
            Some(start) if self.applied_end > start => Ok(()),
            Some(_) => return,
        };
        for w in std::mem::take(&mut self.active_waiters) {
            let _ = w.send(answer);
        }
    }

    fn propose(&mut self, payload: Bytes, reply: oneshot::Sender<Result<(), i16>>) {
        let now = self.broker.upgrade().map_or(0, |b| b.clock.monotonic_ms() as i64);
        match self.node.propose(vec![payload], now) {
            Ok(end) => {
                self.waiters.insert(end.offset, reply);
            }
            Err(ProposeError::NotLeader(_)) => {
                let _ = reply.send(Err(errors::NOT_CONTROLLER));
            }
            Err(ProposeError::TooManyUncommitted) => {
                let _ = reply.send(Err(errors::THROTTLING_QUOTA_EXCEEDED));
            }
        }
    }

    /// Carries out every pending [`gregor_core::raft::Ready`] of the node.
    fn drive(&mut self, broker: &Arc<Broker>, now: i64) -> Result<(), Stop> {
        loop {
            let ready = self.node.ready();
            if ready.is_empty() {
                return Ok(());
            }
            let mut installed = None;
            {
                let mut guard = self.store.lock().expect("quorum store lock");
                let store = guard.as_mut().ok_or(Stop::Closed)?;
                if let Some(state) = &ready.quorum_state {
                    store.write_quorum_state(state).map_err(Stop::Failed)?;
                    self.node.quorum_state_persisted();
                }
                // Received snapshot chunks first: a ResetToSnapshot below needs the whole file.
                for chunk in &ready.snapshot_writes {
                    store.write_snapshot_chunk(chunk).map_err(Stop::Failed)?;
                }
                let mut changed = false;
                for op in &ready.log_ops {
                    match op {
                        LogOp::ResetToSnapshot(id) => installed = Some((*id, store.install_snapshot(*id).map_err(Stop::Failed)?)),
                        op => store.apply(op, broker.clock.wall_ms()).map_err(Stop::Failed)?,
                    }
                    changed = true;
                    if let LogOp::Truncate { offset } = op {
                        // Proposals whose entries were cut will never commit.
                        for (_, w) in self.waiters.split_off(&(offset + 1)) {
                            let _ = w.send(Err(errors::NOT_CONTROLLER));
                        }
                    }
                }
                if changed {
                    let end = store.sync().map_err(Stop::Failed)?;
                    let ours = self.node.log().end_offset_and_epoch();
                    assert_eq!(end, ours.offset, "the metadata log on disk and the quorum's copy disagree");
                    self.node.persisted(ours, now);
                }
                for read in ready.snapshot_reads {
                    let max = usize::try_from(read.request.max_bytes).unwrap_or(0).clamp(1, SNAPSHOT_CHUNK_MAX);
                    match store.read_snapshot_chunk(read.request.snapshot_id, read.request.position, max) {
                        Ok((size, bytes)) => self.node.send_snapshot_chunk(read, size, bytes),
                        // The follower's fetch times out and it asks again (for the newest one).
                        Err(e) => tracing::warn!(error = %e, peer = read.peer, "metadata snapshot chunk not served"),
                    }
                }
            }
            if let Some((id, records)) = installed {
                self.install_snapshot(broker, id, &records).map_err(Stop::Failed)?;
            }
            for envelope in ready.messages {
                if envelope.message.is_request() {
                    match &self.transport {
                        Some(t) => t.send(envelope),
                        None => tracing::warn!(peer = envelope.peer, "quorum request dropped: no other voters configured"),
                    }
                } else if let Some(w) = self.inbound.remove(&(envelope.peer, envelope.correlation_id)) {
                    let _ = w.send(envelope.message);
                }
            }
            if let Some(hw) = ready.high_watermark {
                self.apply_committed(broker, hw);
                self.maybe_snapshot(broker).map_err(Stop::Failed)?;
            }
            if gregor_core::bugs::active(gregor_core::bugs::Bug::ApplyUncommitted) {
                // The bug: whatever reached the log is applied, committed or not.
                let end = self.node.log().end_offset();
                self.apply_committed(broker, end);
            }
            if let Some(leader) = ready.leader {
                self.leader_changed(leader);
            }
            self.status.lock().expect("quorum status lock").high_watermark = self.node.high_watermark();
            self.answer_active_waiters();
            self.node.check_invariants();
        }
    }

    fn leader_changed(&mut self, leader: LeaderIdAndEpoch) {
        tracing::info!(leader = leader.leader_id, epoch = leader.leader_epoch, "metadata quorum leader");
        let mut status = self.status.lock().expect("quorum status lock");
        status.leader_id = leader.leader_id;
        status.leader_epoch = leader.leader_epoch;
        if !self.node.is_leader() {
            for (_, w) in std::mem::take(&mut self.waiters) {
                let _ = w.send(Err(errors::NOT_CONTROLLER));
            }
        }
    }

    /// Publishes the image of snapshot `id`, just installed in place of the whole log.
    fn install_snapshot(&mut self, broker: &Arc<Broker>, id: OffsetAndEpoch, records: &[gregor_core::metadata::MetadataRecord]) -> Result<(), StoreError> {
        let image = MetadataImage::from_snapshot(id.offset, records).map_err(|e| StoreError::Storage {
            dir: store::DIR_NAME.into(),
            reason: format!("snapshot {} does not rebuild an image: {e}", snapshot::file_name(id)),
        })?;
        image.check_invariants();
        let delta = broker.image().diff(&image);
        tracing::info!(snapshot = %snapshot::file_name(id), "installed a metadata snapshot from the leader");
        self.applied_end = id.offset;
        self.applied_since_snapshot = 0;
        broker.publish(image, &delta);
        Ok(())
    }

    /// Writes a snapshot at the applied offset once enough bytes were applied since the last.
    fn maybe_snapshot(&mut self, broker: &Broker) -> Result<(), StoreError> {
        let end = self.applied_end;
        if self.applied_since_snapshot < self.snapshot_bytes || end <= self.node.log().start_offset() || end > self.node.high_watermark() {
            return Ok(());
        }
        let id = OffsetAndEpoch::new(end, self.node.log().epoch_before(end));
        let mut records = broker.image().to_records();
        if gregor_core::bugs::active(gregor_core::bugs::Bug::SnapshotDropsRecord) {
            records.pop();
        }
        let mut guard = self.store.lock().expect("quorum store lock");
        let Some(store) = guard.as_mut() else { return Ok(()) };
        store.create_snapshot(id, &records)?;
        if let Err(e) = self.node.snapshot_created(id) {
            tracing::error!(error = ?e, snapshot = %snapshot::file_name(id), "the quorum refused its own snapshot");
        }
        tracing::info!(snapshot = %snapshot::file_name(id), records = records.len(), "wrote a metadata snapshot");
        self.applied_since_snapshot = 0;
        Ok(())
    }

    /// Applies the committed entries below `hw` not applied yet, publishes the image, and
    /// answers the proposals they complete.
    fn apply_committed(&mut self, broker: &Arc<Broker>, hw: i64) {
        if hw <= self.applied_end {
            return;
        }
        let mut image = (*broker.image()).clone();
        let mut delta = MetadataDelta::default();
        let mut applied_any = false;
        for entry in self.node.log().entries().filter(|e| e.offset >= self.applied_end && e.offset < hw) {
            if entry.kind != EntryKind::Data {
                continue;
            }
            applied_any = true;
            self.applied_since_snapshot += entry.payload.len() as u64;
            match decode_entry(&entry.payload) {
                Ok(records) => {
                    for record in &records {
                        if let Err(e) = image.apply(entry.offset, record, &mut delta) {
                            tracing::error!(offset = entry.offset, error = %e, ?record, "metadata record not applied");
                        }
                    }
                }
                // Every node decodes the same committed bytes the same way, so every node skips it.
                Err(e) => tracing::error!(offset = entry.offset, error = %e, "committed metadata entry cannot be decoded; skipped"),
            }
        }
        self.applied_end = hw;
        image.check_invariants();
        if applied_any {
            broker.publish(image, &delta);
        }
        let rest = self.waiters.split_off(&(hw + 1));
        for (_, w) in std::mem::replace(&mut self.waiters, rest) {
            let _ = w.send(Ok(()));
        }
    }
}
