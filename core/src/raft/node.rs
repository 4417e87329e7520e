//! [`RaftNode`]: one member (voter or observer) of the KRaft quorum as a sans-IO state machine.
//!
//! Inputs: [`RaftNode::step`] (a message from a peer), [`RaftNode::tick`] (time passes),
//! [`RaftNode::propose`] (the active controller writes), [`RaftNode::persisted`] (the driver
//! fsynced the log), [`RaftNode::quorum_state_persisted`] (the driver durably wrote the
//! quorum-state file). Output: [`RaftNode::ready`] returns a [`Ready`] the driver carries out.
//!
//! Durability contract (why [`Ready`] is shaped as it is): a node never sends a message, asks for a
//! log change or reports a high watermark that depends on quorum state the driver has not made
//! durable. While a quorum-state write is outstanding, every other output is held back inside the
//! node; it is released by the first `ready()` after `quorum_state_persisted()`. So a vote is
//! never granted on the wire before `(epoch, voted_id)` is on disk, and a new leader's
//! LeaderChange entry never reaches the log before its epoch is. The log is counted towards the
//! high watermark only up to what `persisted` acknowledged: a voter fetches only once its log is
//! fsynced, so the offset it fetches from is durable, and the leader counts its own log only up to
//! its fsynced end.
//!
//! Guarantees (checked by [`RaftNode::check_invariants`], which drivers call after every input):
//! one leader per epoch as this node has seen it; the epoch never decreases; the high watermark
//! never decreases within one incarnation and only covers entries present in the local log; a
//! truncation below the high watermark is refused and reported; the log's own invariants. No
//! input from a peer panics: malformed, stale, future-epoch, wrong-cluster and unknown-node input
//! gets Kafka's error codes or is ignored; a peer that contradicts a safety property (two leaders
//! in one epoch, truncation of committed entries) is refused and recorded as a violation, which
//! `check_invariants` turns into a loud stop.
//!
//! Deliberate simplifications against Kafka 4: static voters only (no KIP-853 add/remove voter,
//! no directory ids); one entry per offset (the server batches them); no fetch sessions; the
//! leader answers a Fetch from its in-memory log; snapshot contents are the driver's (the node
//! validates FetchSnapshot and hands the read to the driver, and tells a follower's driver to
//! store the chunks it receives).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::errors::*;
use super::log::{Entry, EntryKind, FetchPosition, LogOp, OffsetAndEpoch, RaftLog};
use super::messages::*;

/// Most violations kept for [`RaftNode::check_invariants`] to report.
const VIOLATIONS_MAX: usize = 16;
/// Most epochs whose leader the node remembers for the one-leader-per-epoch check.
const LEADERS_SEEN_MAX: usize = 1024;

/// Injectable bugs for mutation tests of the checkers that guard the quorum. Each changes the
/// node's behaviour only when set; all are off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftBugs {
    /// A granted vote is not recorded: it is not persisted and the voter grants again to another
    /// candidate in the same epoch.
    pub vote_twice_in_epoch: bool,
    /// The leader moves the high watermark to its own persisted end, ignoring the followers.
    pub commit_without_majority: bool,
    /// A follower told its log diverges keeps its log and goes on fetching from its end as if it
    /// matched the leader's current epoch.
    pub skip_diverging_truncation: bool,
}

/// Quorum configuration (Kafka's `controller.quorum.*` settings of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// node.id
    pub node_id: i32,
    /// controller.quorum.voters (ids only; the addresses are the server's).
    pub voters: BTreeSet<i32>,
    /// meta.properties cluster.id
    pub cluster_id: String,
    /// controller.quorum.election.timeout.ms: the base; each timer adds a random jitter in
    /// `[0, election_timeout_ms)`.
    pub election_timeout_ms: i64,
    /// controller.quorum.fetch.timeout.ms: a follower that has not heard from its leader for this
    /// long starts an election; the leader resigns when a majority has not fetched for 1.5× this.
    pub fetch_timeout_ms: i64,
    /// controller.quorum.request.timeout.ms: an unanswered request is sent again after this.
    pub request_timeout_ms: i64,
    /// controller.quorum.retry.backoff.ms: the wait after an error response.
    pub retry_backoff_ms: i64,
    /// The `max_wait_ms` of the Fetches this node sends (Kafka's raft fetch max wait).
    pub fetch_max_wait_ms: i32,
    /// Most entries in one Fetch response.
    pub fetch_entries_max: usize,
    /// Most observers the leader tracks for DescribeQuorum; the least recently seen is forgotten.
    pub observers_max: usize,
    /// Most entries appended by the leader and not yet committed; proposals beyond are refused.
    pub uncommitted_entries_max: usize,
    pub bugs: RaftBugs,
}

impl RaftConfig {
    /// Kafka's defaults for the timing settings.
    pub fn new(node_id: i32, voters: BTreeSet<i32>, cluster_id: impl Into<String>) -> Self {
        RaftConfig {
            node_id,
            voters,
            cluster_id: cluster_id.into(),
            election_timeout_ms: 1_000,
            fetch_timeout_ms: 2_000,
            request_timeout_ms: 2_000,
            retry_backoff_ms: 20,
            fetch_max_wait_ms: 500,
            fetch_entries_max: 1_024,
            observers_max: 1_024,
            uncommitted_entries_max: 65_536,
            bugs: RaftBugs::default(),
        }
    }

    fn check_quorum_timeout_ms(&self) -> i64 {
        self.fetch_timeout_ms.saturating_mul(3) / 2
    }
}

/// The `quorum-state` file: what must survive a crash for the election to stay safe. `None`
/// fields are written as -1, as Kafka does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuorumStateFile {
    pub leader_epoch: i32,
    pub leader_id: Option<i32>,
    pub voted_id: Option<i32>,
}

/// What the driver read back from disk at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedState {
    /// `None` for a freshly formatted node.
    pub quorum_state: Option<QuorumStateFile>,
    /// The durable log (what survived; unsynced entries may be missing).
    pub log: RaftLog,
}

/// The node's role, as Kafka's `QuorumState` names its epoch states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    Unattached,
    Prospective,
    Candidate,
    Leader,
    Follower,
    Resigned,
}

/// The leader's answer to a FetchSnapshot the driver must complete: read `request.snapshot_id`
/// from `request.position` and pass the bytes to [`RaftNode::send_snapshot_chunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRead {
    pub peer: i32,
    pub correlation_id: i32,
    pub request: FetchSnapshotRequest,
}

/// Snapshot bytes a follower received: the driver writes them at `position` of the snapshot file
/// for `snapshot_id`; once the last chunk is in, a [`LogOp::ResetToSnapshot`] follows, before
/// which the driver must have made the whole snapshot durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub snapshot_id: OffsetAndEpoch,
    pub position: i64,
    pub size: i64,
    pub bytes: Bytes,
}

/// What the driver does next, in this order: write `quorum_state` durably and call
/// [`RaftNode::quorum_state_persisted`]; store `snapshot_writes` (a `ResetToSnapshot` among the
/// log ops needs them); apply `log_ops` in order (and fsync, then call
/// [`RaftNode::persisted`]); serve `snapshot_reads`; send `messages`; act on `high_watermark`
/// and `leader`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    pub quorum_state: Option<QuorumStateFile>,
    pub log_ops: Vec<LogOp>,
    pub snapshot_writes: Vec<SnapshotChunk>,
    pub snapshot_reads: Vec<SnapshotRead>,
    pub messages: Vec<Envelope>,
    /// The new high watermark (exclusive: entries below it are committed), when it moved.
    pub high_watermark: Option<i64>,
    /// The new leader and epoch (leader -1 when unknown), when either changed.
    pub leader: Option<LeaderIdAndEpoch>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader appends; this is who the node believes leads.
    NotLeader(LeaderIdAndEpoch),
    /// More than `uncommitted_entries_max` entries wait for commit.
    TooManyUncommitted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    correlation_id: i32,
    sent_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SnapshotFetch {
    snapshot_id: OffsetAndEpoch,
    position: i64,
    in_flight: Option<InFlight>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReplicaProgress {
    end_offset: i64,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
    /// The leader's log end at this replica's previous fetch (Kafka's caught-up rule).
    last_fetch_leader_end: i64,
    /// Last Fetch of any kind in this epoch (check quorum).
    last_contact_ms: i64,
}

impl ReplicaProgress {
    fn unknown() -> Self {
        ReplicaProgress { end_offset: -1, last_fetch_ms: -1, last_caught_up_ms: -1, last_fetch_leader_end: -1, last_contact_ms: -1 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ParkedFetch {
    peer: i32,
    correlation_id: i32,
    request: FetchRequest,
    deadline_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LeaderState {
    /// Offset of this epoch's LeaderChange entry: the high watermark must pass it.
    epoch_start_offset: i64,
    voters: BTreeMap<i32, ReplicaProgress>,
    observers: BTreeMap<i32, ReplicaProgress>,
    begin_unacked: BTreeSet<i32>,
    next_begin_ms: i64,
    parked: BTreeMap<i32, ParkedFetch>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Unattached {
        voted_id: Option<i32>,
        election_deadline_ms: i64,
        /// Observers: the leader discovery Fetch in flight.
        discovery: Option<InFlight>,
    },
    Prospective {
        voted_id: Option<i32>,
        leader_id: Option<i32>,
        granted: BTreeSet<i32>,
        rejected: BTreeSet<i32>,
        /// Correlation id → voter of this round's pre-vote requests: only their answers count.
        requests: BTreeMap<i32, i32>,
        election_deadline_ms: i64,
    },
    Candidate {
        granted: BTreeSet<i32>,
        rejected: BTreeSet<i32>,
        /// Correlation id → voter of this epoch's vote requests: only their answers count (a
        /// late pre-vote grant is not a vote).
        requests: BTreeMap<i32, i32>,
        election_deadline_ms: i64,
    },
    Leader(Box<LeaderState>),
    Follower {
        leader_id: i32,
        voted_id: Option<i32>,
        last_contact_ms: i64,
        fetch: Option<InFlight>,
        next_fetch_ms: i64,
        snapshot: Option<SnapshotFetch>,
        /// Set by EndQuorumEpoch: start an election at this time.
        resign_deadline_ms: Option<i64>,
    },
    Resigned {
        election_deadline_ms: i64,
        end_unacked: BTreeSet<i32>,
        next_end_ms: i64,
        preferred_successors: Vec<i32>,
    },
}

/// One quorum member (see the module docs).
#[derive(Clone, Debug)]
pub struct RaftNode {
    config: RaftConfig,
    rng: SmallRng,
    epoch: i32,
    role: Role,
    log: RaftLog,
    /// End offset the driver has fsynced.
    persisted_end: i64,
    high_watermark: i64,
    /// The latest time passed in (DescribeQuorum reports the leader's own replica as of it).
    now_ms: i64,
    /// The follower's lie under `skip_diverging_truncation`.
    bug_claimed_epoch: Option<i32>,
    leaders_seen: BTreeMap<i32, i32>,
    violations: Vec<String>,
    conflicting_leader_claims: u64,
    next_correlation_id: i32,
    // Output.
    state_dirty: bool,
    state_in_flight: bool,
    outbox: Vec<Envelope>,
    log_ops: Vec<LogOp>,
    snapshot_reads: Vec<SnapshotRead>,
    snapshot_writes: Vec<SnapshotChunk>,
    reported_high_watermark: i64,
    reported_leader: Option<LeaderIdAndEpoch>,
}

impl RaftNode {
    /// A node restarting from `persisted` at time `now_ms`; `seed` drives the election jitter
    /// and the first correlation id, and should differ from one start to the next.
    pub fn new(config: RaftConfig, persisted: PersistedState, seed: u64, now_ms: i64) -> Self {
        let log = persisted.log;
        let state = persisted.quorum_state.unwrap_or_default();
        let mut node = RaftNode {
            rng: SmallRng::seed_from_u64(seed),
            epoch: state.leader_epoch.max(0),
            role: Role::Unattached { voted_id: None, election_deadline_ms: now_ms, discovery: None },
            persisted_end: log.end_offset(),
            high_watermark: log.start_offset(),
            now_ms,
            log,
            bug_claimed_epoch: None,
            leaders_seen: BTreeMap::new(),
            violations: Vec::new(),
            conflicting_leader_claims: 0,
            next_correlation_id: 0,
            state_dirty: false,
            state_in_flight: false,
            outbox: Vec::new(),
            log_ops: Vec::new(),
            snapshot_reads: Vec::new(),
            snapshot_writes: Vec::new(),
            reported_high_watermark: -1,
            reported_leader: None,
            config,
        };
        if node.log.last_epoch() > node.epoch {
            // The quorum-state write is ordered before the log writes of its epoch, so this is a
            // lost or stale quorum-state file: the vote of that epoch is unknown.
            node.violation(format!(
                "log epoch {} is ahead of the quorum-state epoch {}",
                node.log.last_epoch(),
                node.epoch
            ));
            node.epoch = node.log.last_epoch();
            node.state_dirty = true;
        }
        // Correlation ids start at a random point so that a late response to a request of an
        // earlier incarnation of this node is not taken for the answer to a new one (drivers pass
        // a different seed on every start).
        node.next_correlation_id = node.rng.random();
        let me = node.config.node_id;
        let deadline = node.election_deadline(now_ms);
        node.role = match (state.leader_id, state.voted_id) {
            (Some(l), _) if l == me && node.is_voter() => {
                // A restarted leader cannot know what it committed: it resigns its epoch.
                let others: Vec<i32> = node.other_voters().collect();
                Role::Resigned {
                    election_deadline_ms: deadline,
                    end_unacked: others.iter().copied().collect(),
                    next_end_ms: now_ms,
                    preferred_successors: others,
                }
            }
            (Some(l), voted_id) if l != me && l >= 0 => {
                node.leaders_seen.insert(node.epoch, l);
                Role::Follower {
                    leader_id: l,
                    voted_id,
                    last_contact_ms: now_ms,
                    fetch: None,
                    next_fetch_ms: now_ms,
                    snapshot: None,
                    resign_deadline_ms: None,
                }
            }
            (_, voted_id) => {
                // An observer looks for the leader at once; a voter waits for an election timeout.
                let election_deadline_ms = if node.is_voter() { deadline } else { now_ms };
                Role::Unattached { voted_id, election_deadline_ms, discovery: None }
            }
        };
        if node.is_voter() && node.config.voters.len() == 1 && !matches!(node.role, Role::Leader(_)) {
            node.become_candidate(now_ms);
        }
        node
    }

    // ----- accessors -------------------------------------------------------------------------

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    pub fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.node_id)
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Unattached { .. } => RoleKind::Unattached,
            Role::Prospective { .. } => RoleKind::Prospective,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower { .. } => RoleKind::Follower,
            Role::Resigned { .. } => RoleKind::Resigned,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The offset of the LeaderChange entry this node appended on becoming leader (`None` when
    /// it does not lead). Once the high watermark passes it, every entry of earlier leaders is
    /// committed: a state machine that applied everything below it is up to date.
    pub fn epoch_start_offset(&self) -> Option<i64> {
        match &self.role {
            Role::Leader(l) => Some(l.epoch_start_offset),
            _ => None,
        }
    }

    /// The leader this node knows (and still believes in) in its epoch, if any. A resigned
    /// leader and a prospective that gave up on its leader report none, so that they do not
    /// send others back to a leader that is gone.
    pub fn leader_id(&self) -> Option<i32> {
        match &self.role {
            Role::Leader(_) => Some(self.config.node_id),
            Role::Follower { leader_id, .. } => Some(*leader_id),
            Role::Prospective { .. } | Role::Resigned { .. } | Role::Unattached { .. } | Role::Candidate { .. } => None,
        }
    }

    pub fn leader_and_epoch(&self) -> LeaderIdAndEpoch {
        LeaderIdAndEpoch { leader_id: self.leader_id().unwrap_or(-1), leader_epoch: self.epoch }
    }

    /// The candidate this node voted for in its epoch.
    pub fn voted_id(&self) -> Option<i32> {
        match &self.role {
            Role::Unattached { voted_id, .. } | Role::Prospective { voted_id, .. } | Role::Follower { voted_id, .. } => *voted_id,
            Role::Candidate { .. } | Role::Leader(_) | Role::Resigned { .. } => Some(self.config.node_id),
        }
    }

    /// Committed end offset: entries below it are committed.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The end offset the driver has acknowledged as fsynced.
    pub fn persisted_end_offset(&self) -> i64 {
        self.persisted_end
    }

    /// The quorum state as the node would write it now.
    pub fn quorum_state(&self) -> QuorumStateFile {
        let leader_id = match &self.role {
            Role::Leader(_) | Role::Resigned { .. } => Some(self.config.node_id),
            Role::Follower { leader_id, .. } => Some(*leader_id),
            Role::Prospective { leader_id, .. } => *leader_id,
            Role::Unattached { .. } | Role::Candidate { .. } => None,
        };
        QuorumStateFile { leader_epoch: self.epoch, leader_id, voted_id: self.voted_id() }
    }

    /// How often a peer claimed to lead an epoch whose leader this node knew to be another.
    pub fn conflicting_leader_claims(&self) -> u64 {
        self.conflicting_leader_claims
    }

    /// The earliest time at which [`RaftNode::tick`] has something to do.
    pub fn next_deadline_ms(&self) -> i64 {
        match &self.role {
            Role::Unattached { election_deadline_ms, discovery, .. } => match discovery {
                Some(f) => (*election_deadline_ms).min(f.sent_ms + self.config.request_timeout_ms),
                None => *election_deadline_ms,
            },
            Role::Prospective { election_deadline_ms, .. } | Role::Candidate { election_deadline_ms, .. } => {
                *election_deadline_ms
            }
            Role::Leader(l) => {
                let parked = l.parked.values().map(|p| p.deadline_ms).min().unwrap_or(i64::MAX);
                let begin = l.next_begin_ms;
                parked.min(begin).min(self.check_quorum_deadline(l))
            }
            Role::Follower { last_contact_ms, fetch, next_fetch_ms, resign_deadline_ms, snapshot, .. } => {
                let mut t = last_contact_ms + self.config.fetch_timeout_ms;
                if let Some(r) = resign_deadline_ms {
                    t = t.min(*r);
                }
                let in_flight = match snapshot {
                    Some(s) => s.in_flight,
                    None => *fetch,
                };
                match in_flight {
                    Some(f) => t.min(f.sent_ms + self.config.request_timeout_ms),
                    // The next fetch waits for the log to be fsynced ([`RaftNode::persisted`]).
                    None if snapshot.is_none() && self.persisted_end != self.log.end_offset() => t,
                    None => t.min(*next_fetch_ms),
                }
            }
            Role::Resigned { election_deadline_ms, end_unacked, next_end_ms, .. } => {
                if end_unacked.is_empty() { *election_deadline_ms } else { (*election_deadline_ms).min(*next_end_ms) }
            }
        }
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// A message from `envelope.peer`.
    pub fn step(&mut self, envelope: Envelope, now_ms: i64) {
        self.observe_time(now_ms);
        let Envelope { peer, correlation_id, message } = envelope;
        match message {
            Message::VoteRequest(r) => {
                let resp = self.handle_vote_request(r, now_ms);
                self.send(peer, correlation_id, Message::VoteResponse(resp));
            }
            Message::VoteResponse(r) => self.handle_vote_response(peer, correlation_id, r, now_ms),
            Message::BeginQuorumEpochRequest(r) => {
                let resp = self.handle_begin_request(peer, r, now_ms);
                self.send(peer, correlation_id, Message::BeginQuorumEpochResponse(resp));
            }
            Message::BeginQuorumEpochResponse(r) => self.handle_begin_response(peer, r, now_ms),
            Message::EndQuorumEpochRequest(r) => {
                let resp = self.handle_end_request(peer, r, now_ms);
                self.send(peer, correlation_id, Message::EndQuorumEpochResponse(resp));
            }
            Message::EndQuorumEpochResponse(r) => self.handle_end_response(peer, r, now_ms),
            Message::FetchRequest(r) => self.handle_fetch_request(peer, correlation_id, r, now_ms),
            Message::FetchResponse(r) => self.handle_fetch_response(peer, correlation_id, r, now_ms),
            Message::FetchSnapshotRequest(r) => self.handle_fetch_snapshot_request(peer, correlation_id, r),
            Message::FetchSnapshotResponse(r) => self.handle_fetch_snapshot_response(peer, correlation_id, r, now_ms),
        }
        self.maybe_send_fetch(now_ms);
    }

    /// Time passed: fire due timers.
    pub fn tick(&mut self, now_ms: i64) {
        self.observe_time(now_ms);
        enum Action {
            None,
            Prospective,
            Discovery,
            ObserverLostLeader,
            Leader,
            SendEnd,
        }
        let is_voter = self.is_voter();
        let request_timeout_ms = self.config.request_timeout_ms;
        let fetch_timeout_ms = self.config.fetch_timeout_ms;
        let action = match &mut self.role {
            Role::Unattached { election_deadline_ms, discovery, .. } => {
                if is_voter {
                    if now_ms >= *election_deadline_ms { Action::Prospective } else { Action::None }
                } else {
                    let due = match discovery {
                        Some(f) => now_ms >= f.sent_ms + request_timeout_ms,
                        None => now_ms >= *election_deadline_ms,
                    };
                    if due { Action::Discovery } else { Action::None }
                }
            }
            Role::Prospective { election_deadline_ms, .. } | Role::Candidate { election_deadline_ms, .. } => {
                // KIP-996: a candidate that did not win goes back to asking for pre-votes.
                if now_ms >= *election_deadline_ms { Action::Prospective } else { Action::None }
            }
            Role::Leader(_) => Action::Leader,
            Role::Follower { last_contact_ms, fetch, resign_deadline_ms, .. } => {
                if fetch.is_some_and(|f| now_ms >= f.sent_ms + request_timeout_ms) {
                    *fetch = None;
                }
                let timed_out =
                    now_ms >= *last_contact_ms + fetch_timeout_ms || resign_deadline_ms.is_some_and(|r| now_ms >= r);
                match (timed_out, is_voter) {
                    (false, _) => Action::None,
                    (true, true) => Action::Prospective,
                    (true, false) => Action::ObserverLostLeader,
                }
            }
            Role::Resigned { election_deadline_ms, end_unacked, next_end_ms, .. } => {
                if now_ms >= *election_deadline_ms {
                    Action::Prospective
                } else if !end_unacked.is_empty() && now_ms >= *next_end_ms {
                    *next_end_ms = now_ms + request_timeout_ms;
                    Action::SendEnd
                } else {
                    Action::None
                }
            }
        };
        match action {
            Action::None => {}
            Action::Prospective => self.become_prospective(now_ms),
            Action::Discovery => self.send_discovery_fetch(now_ms),
            Action::ObserverLostLeader => {
                self.set_role(Role::Unattached { voted_id: None, election_deadline_ms: now_ms, discovery: None });
                self.send_discovery_fetch(now_ms);
            }
            Action::Leader => self.leader_tick(now_ms),
            Action::SendEnd => self.send_end_quorum_epoch(),
        }
        self.maybe_send_fetch(now_ms);
    }

    fn send_end_quorum_epoch(&mut self) {
        let Role::Resigned { end_unacked, preferred_successors, .. } = &self.role else { return };
        let targets: Vec<i32> = end_unacked.iter().copied().collect();
        let req = EndQuorumEpochRequest {
            cluster_id: Some(self.config.cluster_id.clone()),
            partition_index: METADATA_PARTITION,
            leader_id: self.config.node_id,
            leader_epoch: self.epoch,
            preferred_successors: preferred_successors.clone(),
        };
        for to in targets {
            self.send_request(to, Message::EndQuorumEpochRequest(req.clone()));
        }
    }

    /// The leader appends `payloads` in its epoch. Returns the end offset after the last one and
    /// the epoch: they are committed once the high watermark reaches that offset in that epoch.
    pub fn propose(&mut self, payloads: Vec<Bytes>, now_ms: i64) -> Result<OffsetAndEpoch, ProposeError> {
        self.observe_time(now_ms);
        if !self.is_leader() {
            return Err(ProposeError::NotLeader(self.leader_and_epoch()));
        }
        let uncommitted = (self.log.end_offset() - self.high_watermark) as usize;
        if uncommitted.saturating_add(payloads.len()) > self.config.uncommitted_entries_max {
            return Err(ProposeError::TooManyUncommitted);
        }
        let mut offset = self.log.end_offset();
        let entries: Vec<Entry> = payloads
            .into_iter()
            .map(|payload| {
                let e = Entry { offset, epoch: self.epoch, kind: EntryKind::Data, payload };
                offset += 1;
                e
            })
            .collect();
        self.append_local(entries);
        self.complete_parked_fetches();
        Ok(OffsetAndEpoch::new(offset, self.epoch))
    }

    /// The driver fsynced the log up to `end` (its end offset and the epoch of the entry before
    /// it). A stale acknowledgement (for entries since truncated) is ignored.
    pub fn persisted(&mut self, end: OffsetAndEpoch, now_ms: i64) {
        self.observe_time(now_ms);
        if end.offset > self.log.end_offset() || end.offset < self.log.start_offset() {
            return;
        }
        if self.log.epoch_before(end.offset) != end.epoch {
            return;
        }
        if end.offset > self.persisted_end {
            self.persisted_end = end.offset;
            if self.is_leader() {
                self.maybe_advance_leader_high_watermark();
            }
        }
        self.maybe_send_fetch(now_ms);
    }

    /// The driver durably wrote the last [`Ready::quorum_state`].
    pub fn quorum_state_persisted(&mut self) {
        self.state_in_flight = false;
    }

    /// Graceful resignation (controlled shutdown): the leader stops leading its epoch and asks the
    /// voters to elect a successor, most caught up first.
    pub fn resign(&mut self, now_ms: i64) {
        let Role::Leader(l) = &self.role else { return };
        let mut by_progress: Vec<(i64, i32)> = l
            .voters
            .iter()
            .filter(|(id, _)| **id != self.config.node_id)
            .map(|(id, p)| (p.end_offset, *id))
            .collect();
        by_progress.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let preferred: Vec<i32> = by_progress.into_iter().map(|(_, id)| id).collect();
        let deadline = self.election_deadline(now_ms);
        // The quorum-state file of a resigned leader is the leader's (its epoch, itself as leader
        // and vote): nothing to write, so EndQuorumEpoch leaves at once.
        self.abandon_leadership();
        self.role = Role::Resigned {
            election_deadline_ms: deadline,
            end_unacked: preferred.iter().copied().collect(),
            next_end_ms: now_ms,
            preferred_successors: preferred,
        };
        self.tick(now_ms);
    }

    /// The driver made a snapshot of the committed prefix ending at `snapshot_id`; entries below
    /// it are dropped from the model (the driver deletes them from disk at its pace).
    pub fn snapshot_created(&mut self, snapshot_id: OffsetAndEpoch) -> Result<(), super::log::LogError> {
        if snapshot_id.offset > self.high_watermark {
            return Err(super::log::LogError::OutOfRange {
                offset: snapshot_id.offset,
                start_offset: self.log.start_offset(),
                end_offset: self.high_watermark,
            });
        }
        self.log.compact_to_snapshot(snapshot_id)
    }

    /// Completes a [`SnapshotRead`]: `bytes` read from `read.request.position` of a snapshot of
    /// `size` bytes (empty and `POSITION_OUT_OF_RANGE` when the position is past the end).
    pub fn send_snapshot_chunk(&mut self, read: SnapshotRead, size: i64, bytes: Bytes) {
        let error = if read.request.position < 0 || read.request.position > size { POSITION_OUT_OF_RANGE } else { NONE };
        let resp = FetchSnapshotResponse {
            error_code: NONE,
            partition_index: METADATA_PARTITION,
            partition_error_code: error,
            snapshot_id: read.request.snapshot_id,
            current_leader: self.leader_and_epoch(),
            size,
            position: read.request.position,
            unaligned_records: if error == NONE { bytes } else { Bytes::new() },
        };
        self.send(read.peer, read.correlation_id, Message::FetchSnapshotResponse(resp));
    }

    /// DescribeQuorum: the leader's view of every replica; other nodes answer
    /// NOT_LEADER_OR_FOLLOWER with what they know.
    pub fn describe_quorum(&self) -> DescribeQuorumResponse {
        let view = self.leader_and_epoch();
        let mut resp = DescribeQuorumResponse {
            error_code: NONE,
            partition_index: METADATA_PARTITION,
            partition_error_code: NOT_LEADER_OR_FOLLOWER,
            leader_id: view.leader_id,
            leader_epoch: view.leader_epoch,
            high_watermark: self.high_watermark,
            current_voters: Vec::new(),
            observers: Vec::new(),
        };
        let Role::Leader(l) = &self.role else { return resp };
        resp.partition_error_code = NONE;
        let state = |id: i32, p: &ReplicaProgress| ReplicaState {
            replica_id: id,
            log_end_offset: p.end_offset,
            last_fetch_timestamp: p.last_fetch_ms,
            last_caught_up_timestamp: p.last_caught_up_ms,
        };
        let me = self.config.node_id;
        resp.current_voters = l
            .voters
            .iter()
            .map(|(id, p)| {
                if *id == me {
                    // The leader's own replica: its fsynced end, caught up as of now (Kafka).
                    ReplicaState {
                        replica_id: me,
                        log_end_offset: self.persisted_end,
                        last_fetch_timestamp: self.now_ms,
                        last_caught_up_timestamp: self.now_ms,
                    }
                } else {
                    state(*id, p)
                }
            })
            .collect();
        resp.observers = l.observers.iter().map(|(id, p)| state(*id, p)).collect();
        resp
    }

    /// The output accumulated since the last call (see [`Ready`] and the module docs).
    pub fn ready(&mut self) -> Ready {
        let mut r = Ready::default();
        if self.state_dirty && !self.state_in_flight {
            r.quorum_state = Some(self.quorum_state());
            self.state_dirty = false;
            self.state_in_flight = true;
        }
        if self.state_dirty || self.state_in_flight {
            return r;
        }
        r.log_ops = std::mem::take(&mut self.log_ops);
        r.snapshot_writes = std::mem::take(&mut self.snapshot_writes);
        r.snapshot_reads = std::mem::take(&mut self.snapshot_reads);
        r.messages = std::mem::take(&mut self.outbox);
        if self.high_watermark != self.reported_high_watermark {
            self.reported_high_watermark = self.high_watermark;
            r.high_watermark = Some(self.high_watermark);
        }
        let view = self.leader_and_epoch();
        if self.reported_leader != Some(view) {
            self.reported_leader = Some(view);
            r.leader = Some(view);
        }
        r
    }

    /// Whether output is held back waiting for a quorum-state write.
    pub fn awaiting_quorum_state_write(&self) -> bool {
        self.state_dirty || self.state_in_flight
    }

    /// The safety violations recorded so far plus any broken invariant, without panicking.
    pub fn invariant_violations(&self) -> Vec<String> {
        let mut out = self.violations.clone();
        let me = self.config.node_id;
        if self.high_watermark > self.log.end_offset() {
            out.push(format!("high watermark {} beyond the log end {}", self.high_watermark, self.log.end_offset()));
        }
        if self.high_watermark < self.log.start_offset() {
            out.push(format!("high watermark {} below the log start {}", self.high_watermark, self.log.start_offset()));
        }
        if self.persisted_end > self.log.end_offset() {
            out.push(format!("persisted end {} beyond the log end {}", self.persisted_end, self.log.end_offset()));
        }
        if self.log.last_epoch() > self.epoch {
            out.push(format!("log epoch {} ahead of the node's epoch {}", self.log.last_epoch(), self.epoch));
        }
        if let Some(l) = self.leader_id() {
            if let Some(seen) = self.leaders_seen.get(&self.epoch) {
                if *seen != l {
                    out.push(format!("epoch {}: following {l} but recorded {seen} as its leader", self.epoch));
                }
            }
        }
        match &self.role {
            Role::Leader(l) => {
                if !self.is_voter() {
                    out.push("an observer is leader".to_string());
                }
                if self.leaders_seen.get(&self.epoch) != Some(&me) {
                    out.push(format!("leader of epoch {} without recording itself as its leader", self.epoch));
                }
                match self.log.get(l.epoch_start_offset) {
                    Some(e) if e.epoch == self.epoch && matches!(e.kind, EntryKind::LeaderChange { .. }) => {}
                    // Compacted into a snapshot.
                    None if l.epoch_start_offset < self.log.start_offset() => {}
                    _ => out.push(format!("leader of epoch {}: no LeaderChange entry at its epoch start", self.epoch)),
                }
            }
            Role::Candidate { .. } | Role::Prospective { .. } | Role::Resigned { .. } if !self.is_voter() => {
                out.push(format!("an observer is {:?}", self.role()));
            }
            _ => {}
        }
        out
    }

    /// Panics with a description of every violated invariant (release builds too).
    pub fn check_invariants(&self) {
        self.log.check_invariants();
        let v = self.invariant_violations();
        assert!(v.is_empty(), "raft node {}: {}", self.config.node_id, v.join("; "));
    }

    fn observe_time(&mut self, now_ms: i64) {
        // The caller's clock is monotonic; a smaller value (a caller bug) does not move it back.
        self.now_ms = self.now_ms.max(now_ms);
    }

    // ----- elections -------------------------------------------------------------------------

    fn election_deadline(&mut self, now_ms: i64) -> i64 {
        let base = self.config.election_timeout_ms.max(1);
        now_ms + base + self.rng.random_range(0..base)
    }

    fn other_voters(&self) -> impl Iterator<Item = i32> + '_ {
        let me = self.config.node_id;
        self.config.voters.iter().copied().filter(move |v| *v != me)
    }

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
        self.state_dirty = true;
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch < self.epoch {
            self.violation(format!("epoch would move back from {} to {epoch}", self.epoch));
            return;
        }
        if epoch != self.epoch {
            self.epoch = epoch;
            self.bug_claimed_epoch = None;
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(what);
        }
    }

    /// Records `leader` as the leader of `epoch`; false (and a counted conflict) when another
    /// node is already known to lead it.
    fn accept_leader(&mut self, epoch: i32, leader: i32) -> bool {
        match self.leaders_seen.get(&epoch) {
            Some(l) if *l != leader => {
                self.conflicting_leader_claims += 1;
                false
            }
            Some(_) => true,
            None => {
                self.leaders_seen.insert(epoch, leader);
                while self.leaders_seen.len() > LEADERS_SEEN_MAX {
                    self.leaders_seen.pop_first();
                }
                true
            }
        }
    }

    fn become_unattached(&mut self, epoch: i32, now_ms: i64) {
        self.abandon_leadership();
        self.set_epoch(epoch);
        let deadline = self.election_deadline(now_ms);
        self.set_role(Role::Unattached { voted_id: None, election_deadline_ms: deadline, discovery: None });
        if !self.is_voter() {
            self.send_discovery_fetch(now_ms);
        }
    }

    /// Follows `leader` in `epoch` (≥ the current one). Refused when another leader is known.
    fn become_follower(&mut self, epoch: i32, leader: i32, now_ms: i64) -> bool {
        if leader == self.config.node_id || epoch < self.epoch || !self.accept_leader(epoch, leader) {
            return false;
        }
        let voted_id = if epoch == self.epoch { self.voted_id() } else { None };
        self.abandon_leadership();
        self.set_epoch(epoch);
        self.set_role(Role::Follower {
            leader_id: leader,
            voted_id,
            last_contact_ms: now_ms,
            fetch: None,
            next_fetch_ms: now_ms,
            snapshot: None,
            resign_deadline_ms: None,
        });
        true
    }

    /// Answers the fetches a leader that stops leading still holds: NOT_LEADER_OR_FOLLOWER, so
    /// their senders retry at once instead of after the request timeout.
    fn abandon_leadership(&mut self) {
        let Role::Leader(l) = &mut self.role else { return };
        let parked = std::mem::take(&mut l.parked);
        for p in parked.into_values() {
            let mut resp = self.fetch_error(NONE, NOT_LEADER_OR_FOLLOWER);
            resp.current_leader = LeaderIdAndEpoch { leader_id: -1, leader_epoch: self.epoch };
            self.send(p.peer, p.correlation_id, Message::FetchResponse(resp));
        }
    }

    fn vote_request(&self, to: i32, pre_vote: bool) -> VoteRequest {
        let last = self.log.end_offset_and_epoch();
        VoteRequest {
            cluster_id: Some(self.config.cluster_id.clone()),
            voter_id: to,
            partition_index: METADATA_PARTITION,
            replica_epoch: self.epoch + 1,
            replica_id: self.config.node_id,
            last_offset_epoch: last.epoch,
            last_offset: last.offset,
            pre_vote,
        }
    }

    /// KIP-996: ask for pre-votes without changing the epoch.
    fn become_prospective(&mut self, now_ms: i64) {
        if !self.is_voter() {
            return;
        }
        if self.config.voters.len() == 1 {
            self.become_candidate(now_ms);
            return;
        }
        let (voted_id, leader_id) = match &self.role {
            Role::Unattached { voted_id, .. } => (*voted_id, None),
            Role::Prospective { voted_id, leader_id, .. } => (*voted_id, *leader_id),
            Role::Follower { voted_id, leader_id, .. } => (*voted_id, Some(*leader_id)),
            Role::Candidate { .. } | Role::Resigned { .. } | Role::Leader(_) => (Some(self.config.node_id), None),
        };
        self.abandon_leadership();
        let deadline = self.election_deadline(now_ms);
        let mut granted = BTreeSet::new();
        granted.insert(self.config.node_id);
        // Not persisted: a pre-vote changes neither the epoch nor the vote, and a restart from
        // the previous file (following the old leader, or resigned) is as safe.
        self.role = Role::Prospective {
            voted_id,
            leader_id,
            granted,
            rejected: BTreeSet::new(),
            requests: BTreeMap::new(),
            election_deadline_ms: deadline,
        };
        let targets: Vec<i32> = self.other_voters().collect();
        for to in targets {
            let req = self.vote_request(to, true);
            let correlation_id = self.send_request(to, Message::VoteRequest(req));
            if let Role::Prospective { requests, .. } = &mut self.role {
                requests.insert(correlation_id, to);
            }
        }
    }

    fn become_candidate(&mut self, now_ms: i64) {
        if !self.is_voter() {
            return;
        }
        self.abandon_leadership();
        self.set_epoch(self.epoch + 1);
        let deadline = self.election_deadline(now_ms);
        let mut granted = BTreeSet::new();
        granted.insert(self.config.node_id);
        self.set_role(Role::Candidate {
            granted,
            rejected: BTreeSet::new(),
            requests: BTreeMap::new(),
            election_deadline_ms: deadline,
        });
        if self.majority() <= 1 {
            self.become_leader(now_ms);
            return;
        }
        let targets: Vec<i32> = self.other_voters().collect();
        for to in targets {
            // Requests built after the epoch bump ask for votes in the new epoch.
            let mut req = self.vote_request(to, false);
            req.replica_epoch = self.epoch;
            let correlation_id = self.send_request(to, Message::VoteRequest(req));
            if let Role::Candidate { requests, .. } = &mut self.role {
                requests.insert(correlation_id, to);
            }
        }
    }

    fn become_leader(&mut self, now_ms: i64) {
        let me = self.config.node_id;
        let granting: Vec<i32> = match &self.role {
            Role::Candidate { granted, .. } => granted.iter().copied().collect(),
            _ => return,
        };
        if !self.accept_leader(self.epoch, me) {
            self.violation(format!("won epoch {} whose leader is recorded as another node", self.epoch));
            return;
        }
        let epoch_start_offset = self.log.end_offset();
        let mut voters = BTreeMap::new();
        for v in &self.config.voters {
            let mut p = ReplicaProgress::unknown();
            // Grace for check quorum: every voter is taken as heard from at the start.
            p.last_contact_ms = now_ms;
            voters.insert(*v, p);
        }
        let begin_unacked: BTreeSet<i32> = self.other_voters().collect();
        self.set_role(Role::Leader(Box::new(LeaderState {
            epoch_start_offset,
            voters,
            observers: BTreeMap::new(),
            begin_unacked,
            next_begin_ms: now_ms,
            parked: BTreeMap::new(),
        })));
        let change = Entry {
            offset: epoch_start_offset,
            epoch: self.epoch,
            kind: EntryKind::LeaderChange {
                leader_id: me,
                voters: self.config.voters.iter().copied().collect(),
                granting_voters: granting,
            },
            payload: Bytes::new(),
        };
        self.append_local(vec![change]);
        self.leader_tick(now_ms);
        self.maybe_advance_leader_high_watermark();
    }

    fn leader_tick(&mut self, now_ms: i64) {
        let me = self.config.node_id;
        let Role::Leader(l) = &self.role else { return };
        // Check quorum: resign when a majority has not fetched for 1.5 × fetch timeout.
        if now_ms >= self.check_quorum_deadline(l) {
            self.resign(now_ms);
            return;
        }
        // BeginQuorumEpoch doubles as the leader's heartbeat (as in Kafka since KAFKA-16536):
        // sent again every fetch_timeout/2 to each voter that has neither acknowledged it nor
        // fetched for that long. A voter stuck in a higher epoch (its own vote requests were
        // lost, and pre-votes cannot win against a live leader) answers FENCED_LEADER_EPOCH with
        // its epoch, which moves the leader to it and so lets the quorum converge again.
        let period_ms = (self.config.fetch_timeout_ms / 2).max(1);
        let Role::Leader(l) = &mut self.role else { return };
        let begin_targets: Vec<i32> = if now_ms >= l.next_begin_ms {
            l.next_begin_ms = now_ms + period_ms;
            l.voters
                .iter()
                .filter(|(id, p)| **id != me && (l.begin_unacked.contains(id) || now_ms - p.last_fetch_ms >= period_ms))
                .map(|(id, _)| *id)
                .collect()
        } else {
            Vec::new()
        };
        let expired: Vec<i32> = l.parked.iter().filter(|(_, p)| now_ms >= p.deadline_ms).map(|(id, _)| *id).collect();
        let expired: Vec<ParkedFetch> = expired.into_iter().filter_map(|id| l.parked.remove(&id)).collect();
        for to in begin_targets {
            let req = BeginQuorumEpochRequest {
                cluster_id: Some(self.config.cluster_id.clone()),
                voter_id: to,
                partition_index: METADATA_PARTITION,
                leader_id: me,
                leader_epoch: self.epoch,
            };
            self.send_request(to, Message::BeginQuorumEpochRequest(req));
        }
        for p in expired {
            self.answer_fetch(p.peer, p.correlation_id, &p.request);
        }
    }

    fn check_quorum_deadline(&self, l: &LeaderState) -> i64 {
        if self.config.voters.len() <= 1 {
            return i64::MAX;
        }
        let me = self.config.node_id;
        let mut contacts: Vec<i64> =
            l.voters.iter().filter(|(id, _)| **id != me).map(|(_, p)| p.last_contact_ms).collect();
        contacts.sort_unstable_by(|a, b| b.cmp(a));
        // The leader itself is one of the majority; it needs majority - 1 others.
        let idx = self.majority() - 2;
        contacts.get(idx).copied().unwrap_or(i64::MIN / 2) + self.config.check_quorum_timeout_ms()
    }

    // ----- Vote --------------------------------------------------------------------------------

    fn cluster_ok(&self, cluster_id: &Option<String>) -> bool {
        // Kafka accepts a request without a cluster id (older senders).
        cluster_id.as_ref().is_none_or(|c| *c == self.config.cluster_id)
    }

    fn vote_response(&self, error: i16, partition_error: i16, granted: bool) -> VoteResponse {
        let view = self.leader_and_epoch();
        VoteResponse {
            error_code: error,
            partition_index: METADATA_PARTITION,
            partition_error_code: partition_error,
            leader_id: view.leader_id,
            leader_epoch: view.leader_epoch,
            vote_granted: granted,
        }
    }

    /// Whether this node hears from a live leader (KIP-996: such a voter refuses pre-votes).
    fn has_live_leader(&self, now_ms: i64) -> bool {
        match &self.role {
            Role::Leader(_) => true,
            Role::Follower { last_contact_ms, resign_deadline_ms, .. } => {
                resign_deadline_ms.is_none() && now_ms < last_contact_ms + self.config.fetch_timeout_ms
            }
            _ => false,
        }
    }

    fn handle_vote_request(&mut self, r: VoteRequest, now_ms: i64) -> VoteResponse {
        if !self.cluster_ok(&r.cluster_id) {
            return self.vote_response(INCONSISTENT_CLUSTER_ID, NONE, false);
        }
        if r.partition_index != METADATA_PARTITION {
            return self.vote_response(INVALID_REQUEST, NONE, false);
        }
        if r.last_offset < 0 || r.last_offset_epoch < 0 || r.last_offset_epoch >= r.replica_epoch {
            return self.vote_response(NONE, INVALID_REQUEST, false);
        }
        if r.replica_epoch < self.epoch {
            return self.vote_response(NONE, FENCED_LEADER_EPOCH, false);
        }
        if !self.is_voter() || !self.config.voters.contains(&r.replica_id) || r.replica_id == self.config.node_id {
            return self.vote_response(NONE, INCONSISTENT_VOTER_SET, false);
        }
        let log_ok = OffsetAndEpoch::new(r.last_offset, r.last_offset_epoch) >= self.log.end_offset_and_epoch();
        if r.pre_vote {
            let granted = log_ok && !self.has_live_leader(now_ms);
            return self.vote_response(NONE, NONE, granted);
        }
        if r.replica_epoch > self.epoch {
            self.become_unattached(r.replica_epoch, now_ms);
        }
        let candidate = r.replica_id;
        let bug = self.config.bugs.vote_twice_in_epoch;
        let can_vote = match &self.role {
            Role::Unattached { voted_id, .. } => bug || voted_id.is_none_or(|v| v == candidate),
            Role::Prospective { voted_id, leader_id: None, .. } => bug || voted_id.is_none_or(|v| v == candidate),
            // A node that knows a leader in this epoch, or voted for itself, does not vote.
            _ => false,
        };
        let granted = can_vote && log_ok;
        if granted {
            let deadline = self.election_deadline(now_ms);
            let voted_id = if bug { None } else { Some(candidate) };
            let changed = self.voted_id() != voted_id || !matches!(self.role, Role::Unattached { .. });
            self.role = Role::Unattached { voted_id, election_deadline_ms: deadline, discovery: None };
            if changed && !bug {
                self.state_dirty = true;
            }
        }
        self.vote_response(NONE, NONE, granted)
    }

    /// Handles the leader/epoch a response reports. Returns true when the response must not be
    /// processed further (it is stale, or it moved this node to a newer epoch or a known leader).
    fn handle_response_view(&mut self, peer: i32, leader_id: i32, leader_epoch: i32, now_ms: i64) -> bool {
        if leader_epoch > self.epoch {
            if leader_id >= 0 && leader_id != self.config.node_id {
                if !self.become_follower(leader_epoch, leader_id, now_ms) {
                    self.become_unattached(leader_epoch, now_ms);
                }
            } else {
                self.become_unattached(leader_epoch, now_ms);
            }
            return true;
        }
        if leader_epoch < self.epoch {
            return true;
        }
        if leader_id >= 0 && leader_id != self.config.node_id {
            let knows_leader = match &self.role {
                Role::Follower { .. } | Role::Leader(_) | Role::Resigned { .. } => true,
                // It timed out on that leader: only the leader itself proves it is alive, not
                // another voter that has not timed out yet.
                Role::Prospective { leader_id: Some(l), .. } => *l == leader_id && peer != leader_id,
                _ => false,
            };
            if !knows_leader {
                self.become_follower(leader_epoch, leader_id, now_ms);
                return true;
            }
        }
        false
    }

    fn handle_vote_response(&mut self, peer: i32, correlation_id: i32, r: VoteResponse, now_ms: i64) {
        if r.error_code != NONE || !self.config.voters.contains(&peer) {
            return;
        }
        if r.partition_error_code != NONE && r.partition_error_code != FENCED_LEADER_EPOCH {
            return;
        }
        if self.handle_response_view(peer, r.leader_id, r.leader_epoch, now_ms) {
            return;
        }
        let majority = self.majority();
        match &mut self.role {
            Role::Prospective { granted, rejected, requests, .. } => {
                if requests.remove(&correlation_id) != Some(peer) {
                    return;
                }
                if r.vote_granted {
                    granted.insert(peer);
                } else {
                    rejected.insert(peer);
                }
                // A lost pre-vote waits for the election timer. It does not go back to the old
                // leader on the word of voters that have not timed out yet (they may be following
                // a leader that is gone); the leader's own answer brings it back (see
                // `handle_response_view`).
                if granted.len() >= majority {
                    self.become_candidate(now_ms);
                }
            }
            Role::Candidate { granted, rejected, requests, .. } => {
                if requests.remove(&correlation_id) != Some(peer) {
                    return;
                }
                if r.vote_granted {
                    granted.insert(peer);
                } else {
                    rejected.insert(peer);
                }
                if granted.len() >= majority {
                    self.become_leader(now_ms);
                }
            }
            _ => {}
        }
    }

    // ----- BeginQuorumEpoch / EndQuorumEpoch ---------------------------------------------------

    fn begin_response(&self, error: i16, partition_error: i16) -> BeginQuorumEpochResponse {
        let view = self.leader_and_epoch();
        BeginQuorumEpochResponse {
            error_code: error,
            partition_index: METADATA_PARTITION,
            partition_error_code: partition_error,
            leader_id: view.leader_id,
            leader_epoch: view.leader_epoch,
        }
    }

    fn handle_begin_request(&mut self, peer: i32, r: BeginQuorumEpochRequest, now_ms: i64) -> BeginQuorumEpochResponse {
        if !self.cluster_ok(&r.cluster_id) {
            return self.begin_response(INCONSISTENT_CLUSTER_ID, NONE);
        }
        if r.partition_index != METADATA_PARTITION {
            return self.begin_response(INVALID_REQUEST, NONE);
        }
        if r.leader_epoch < self.epoch {
            return self.begin_response(NONE, FENCED_LEADER_EPOCH);
        }
        if !self.is_voter() || !self.config.voters.contains(&r.leader_id) || r.leader_id != peer {
            return self.begin_response(NONE, INCONSISTENT_VOTER_SET);
        }
        if r.leader_id == self.config.node_id {
            return self.begin_response(NONE, INVALID_REQUEST);
        }
        match &mut self.role {
            Role::Follower { leader_id, last_contact_ms, .. } if *leader_id == r.leader_id && r.leader_epoch == self.epoch => {
                *last_contact_ms = now_ms;
            }
            _ => {
                if !self.become_follower(r.leader_epoch, r.leader_id, now_ms) {
                    // Another leader is known for that epoch: refuse; the error names ours.
                    return self.begin_response(NONE, FENCED_LEADER_EPOCH);
                }
            }
        }
        self.begin_response(NONE, NONE)
    }

    fn handle_begin_response(&mut self, peer: i32, r: BeginQuorumEpochResponse, now_ms: i64) {
        if r.error_code != NONE {
            return;
        }
        if r.leader_epoch > self.epoch {
            self.handle_response_view(peer, r.leader_id, r.leader_epoch, now_ms);
            return;
        }
        if r.partition_error_code == NONE && r.leader_epoch == self.epoch {
            if let Role::Leader(l) = &mut self.role {
                l.begin_unacked.remove(&peer);
            }
        }
    }

    fn end_response(&self, error: i16, partition_error: i16) -> EndQuorumEpochResponse {
        let view = self.leader_and_epoch();
        EndQuorumEpochResponse {
            error_code: error,
            partition_index: METADATA_PARTITION,
            partition_error_code: partition_error,
            leader_id: view.leader_id,
            leader_epoch: view.leader_epoch,
        }
    }

    fn handle_end_request(&mut self, peer: i32, r: EndQuorumEpochRequest, now_ms: i64) -> EndQuorumEpochResponse {
        if !self.cluster_ok(&r.cluster_id) {
            return self.end_response(INCONSISTENT_CLUSTER_ID, NONE);
        }
        if r.partition_index != METADATA_PARTITION {
            return self.end_response(INVALID_REQUEST, NONE);
        }
        if r.leader_epoch < self.epoch {
            return self.end_response(NONE, FENCED_LEADER_EPOCH);
        }
        if !self.is_voter() || !self.config.voters.contains(&r.leader_id) || r.leader_id != peer {
            return self.end_response(NONE, INCONSISTENT_VOTER_SET);
        }
        if r.leader_epoch > self.epoch {
            // The leader of a newer epoch already resigned: join that epoch leaderless.
            self.become_unattached(r.leader_epoch, now_ms);
        }
        let me = self.config.node_id;
        let position = r.preferred_successors.iter().position(|id| *id == me);
        // Kafka's backoff: the first preferred successor starts at once, the others later.
        let delay_ms = match position {
            Some(p) => (self.config.retry_backoff_ms.max(1)).saturating_mul(1i64 << (p.min(20) as u32)) - self.config.retry_backoff_ms.max(1),
            None => self.config.election_timeout_ms,
        }
        .min(self.config.election_timeout_ms);
        match &mut self.role {
            Role::Follower { leader_id, resign_deadline_ms, .. } if *leader_id == r.leader_id => {
                *resign_deadline_ms = Some(now_ms + delay_ms);
            }
            Role::Unattached { election_deadline_ms, .. } => {
                *election_deadline_ms = (*election_deadline_ms).min(now_ms + delay_ms);
            }
            _ => {}
        }
        if delay_ms == 0 {
            self.tick(now_ms);
        }
        self.end_response(NONE, NONE)
    }

    fn handle_end_response(&mut self, peer: i32, r: EndQuorumEpochResponse, now_ms: i64) {
        if r.error_code != NONE {
            return;
        }
        if r.leader_epoch > self.epoch {
            self.handle_response_view(peer, r.leader_id, r.leader_epoch, now_ms);
            return;
        }
        if let Role::Resigned { end_unacked, .. } = &mut self.role {
            end_unacked.remove(&peer);
        }
    }

    // ----- Fetch (leader side) -------------------------------------------------------------------

    fn fetch_error(&self, error: i16, partition_error: i16) -> FetchResponse {
        FetchResponse {
            error_code: error,
            partition_index: METADATA_PARTITION,
            partition_error_code: partition_error,
            high_watermark: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            current_leader: self.leader_and_epoch(),
            snapshot_id: None,
            records: Vec::new(),
        }
    }

    /// Kafka's `validateLeaderOnlyRequest`.
    fn leader_only_error(&self, current_leader_epoch: i32) -> Option<i16> {
        if current_leader_epoch < self.epoch {
            Some(FENCED_LEADER_EPOCH)
        } else if current_leader_epoch > self.epoch {
            Some(UNKNOWN_LEADER_EPOCH)
        } else if !self.is_leader() {
            Some(NOT_LEADER_OR_FOLLOWER)
        } else {
            None
        }
    }

    fn handle_fetch_request(&mut self, peer: i32, correlation_id: i32, r: FetchRequest, now_ms: i64) {
        if !self.cluster_ok(&r.cluster_id) {
            let resp = self.fetch_error(INCONSISTENT_CLUSTER_ID, NONE);
            return self.send(peer, correlation_id, Message::FetchResponse(resp));
        }
        if r.partition != METADATA_PARTITION {
            let resp = self.fetch_error(INVALID_REQUEST, NONE);
            return self.send(peer, correlation_id, Message::FetchResponse(resp));
        }
        if r.max_wait_ms < 0 || r.fetch_offset < 0 || r.last_fetched_epoch < 0 || r.last_fetched_epoch > r.current_leader_epoch {
            let resp = self.fetch_error(NONE, INVALID_REQUEST);
            return self.send(peer, correlation_id, Message::FetchResponse(resp));
        }
        if let Some(e) = self.leader_only_error(r.current_leader_epoch) {
            let resp = self.fetch_error(NONE, e);
            return self.send(peer, correlation_id, Message::FetchResponse(resp));
        }
        // Any Fetch in this epoch from a voter counts for check quorum.
        if let Role::Leader(l) = &mut self.role {
            if let Some(p) = l.voters.get_mut(&r.replica_id) {
                p.last_contact_ms = now_ms;
            }
        }
        let position = self.log.validate_offset_and_epoch(r.fetch_offset, r.last_fetched_epoch);
        if position == FetchPosition::Valid {
            let hw_before = self.high_watermark;
            self.update_replica(r.replica_id, r.fetch_offset, now_ms);
            self.maybe_advance_leader_high_watermark();
            // Long poll: nothing to send yet, so wait for new entries or a new high watermark,
            // at most max_wait_ms, one waiting Fetch per replica and a bounded number in all. A
            // Fetch that moved the high watermark is answered at once, so the new high watermark
            // reaches this follower without waiting out the poll (as Kafka does); so is one from
            // a fetcher that says it knows an older high watermark (KIP-1166), which is how a
            // follower whose Fetch came after the one that moved it learns of it.
            let parked_max = self.config.voters.len() + self.config.observers_max;
            let hw_moved = self.high_watermark > hw_before;
            let behind = r.high_watermark.is_some_and(|known| known < self.high_watermark);
            let wait = !hw_moved && !behind && r.fetch_offset >= self.log.end_offset() && r.max_wait_ms > 0 && r.replica_id >= 0;
            if let (true, Role::Leader(l)) = (wait, &mut self.role) {
                if l.parked.len() < parked_max || l.parked.contains_key(&r.replica_id) {
                    let deadline_ms = now_ms + i64::from(r.max_wait_ms);
                    let replica_id = r.replica_id;
                    let replaced = l.parked.insert(replica_id, ParkedFetch { peer, correlation_id, request: r, deadline_ms });
                    if let Some(old) = replaced {
                        self.answer_fetch(old.peer, old.correlation_id, &old.request);
                    }
                    return;
                }
            }
        }
        self.answer_fetch(peer, correlation_id, &r);
    }

    fn answer_fetch(&mut self, peer: i32, correlation_id: i32, r: &FetchRequest) {
        if let Some(e) = self.leader_only_error(r.current_leader_epoch) {
            let resp = self.fetch_error(NONE, e);
            return self.send(peer, correlation_id, Message::FetchResponse(resp));
        }
        let mut resp = self.fetch_error(NONE, NONE);
        resp.high_watermark = self.high_watermark;
        resp.log_start_offset = self.log.start_offset();
        match self.log.validate_offset_and_epoch(r.fetch_offset, r.last_fetched_epoch) {
            FetchPosition::Valid => resp.records = self.log.read(r.fetch_offset, self.config.fetch_entries_max),
            FetchPosition::Diverging(d) => resp.diverging_epoch = Some(d),
            FetchPosition::Snapshot(s) => resp.snapshot_id = Some(s),
        }
        self.send(peer, correlation_id, Message::FetchResponse(resp));
    }

    fn update_replica(&mut self, replica_id: i32, fetch_offset: i64, now_ms: i64) {
        if replica_id < 0 || replica_id == self.config.node_id {
            return;
        }
        let leader_end = self.log.end_offset();
        let observers_max = self.config.observers_max;
        let Role::Leader(l) = &mut self.role else { return };
        let p = if let Some(p) = l.voters.get_mut(&replica_id) {
            p
        } else {
            if !l.observers.contains_key(&replica_id) && l.observers.len() >= observers_max {
                if let Some(oldest) = l.observers.iter().min_by_key(|(id, p)| (p.last_fetch_ms, **id)).map(|(id, _)| *id) {
                    l.observers.remove(&oldest);
                }
            }
            l.observers.entry(replica_id).or_insert_with(ReplicaProgress::unknown)
        };
        // Kafka's caught-up rule: caught up now when at the leader's end; caught up as of the
        // previous fetch when at least where the leader's end was then.
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if p.last_fetch_leader_end >= 0 && fetch_offset >= p.last_fetch_leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.last_fetch_leader_end = leader_end;
        p.last_fetch_ms = now_ms;
        // A follower's fetch offset can move back only if it lost unsynced data it never
        // reported; the reported offset is what it has now.
        p.end_offset = fetch_offset;
    }

    fn maybe_advance_leader_high_watermark(&mut self) {
        let me = self.config.node_id;
        let majority = self.majority();
        let persisted = self.persisted_end;
        let bug = self.config.bugs.commit_without_majority;
        let Role::Leader(l) = &self.role else { return };
        let candidate = if bug {
            persisted
        } else {
            let mut ends: Vec<i64> =
                l.voters.iter().map(|(id, p)| if *id == me { persisted } else { p.end_offset }).collect();
            ends.sort_unstable_by(|a, b| b.cmp(a));
            ends.get(majority - 1).copied().unwrap_or(-1)
        };
        // Only an entry of the current epoch commits the ones before it (Raft §5.4.2).
        if candidate > l.epoch_start_offset && candidate > self.high_watermark {
            self.set_high_watermark(candidate);
            self.complete_parked_fetches();
        }
    }

    fn set_high_watermark(&mut self, hw: i64) {
        if hw < self.high_watermark {
            self.violation(format!("high watermark would move back from {} to {hw}", self.high_watermark));
            return;
        }
        self.high_watermark = hw.min(self.log.end_offset());
    }

    fn complete_parked_fetches(&mut self) {
        let Role::Leader(l) = &mut self.role else { return };
        let parked = std::mem::take(&mut l.parked);
        for p in parked.into_values() {
            self.answer_fetch(p.peer, p.correlation_id, &p.request);
        }
    }

    fn handle_fetch_snapshot_request(&mut self, peer: i32, correlation_id: i32, r: FetchSnapshotRequest) {
        let error = |node: &Self, error: i16, partition_error: i16| FetchSnapshotResponse {
            error_code: error,
            partition_index: METADATA_PARTITION,
            partition_error_code: partition_error,
            snapshot_id: r.snapshot_id,
            current_leader: node.leader_and_epoch(),
            size: -1,
            position: -1,
            unaligned_records: Bytes::new(),
        };
        let resp = if !self.cluster_ok(&r.cluster_id) {
            error(self, INCONSISTENT_CLUSTER_ID, NONE)
        } else if r.partition != METADATA_PARTITION {
            error(self, INVALID_REQUEST, NONE)
        } else if let Some(e) = self.leader_only_error(r.current_leader_epoch) {
            error(self, NONE, e)
        } else if self.log.snapshot_id() != Some(r.snapshot_id) {
            error(self, NONE, SNAPSHOT_NOT_FOUND)
        } else if r.position < 0 {
            error(self, NONE, POSITION_OUT_OF_RANGE)
        } else {
            self.snapshot_reads.push(SnapshotRead { peer, correlation_id, request: r });
            return;
        };
        self.send(peer, correlation_id, Message::FetchSnapshotResponse(resp));
    }

    // ----- Fetch (follower side) -----------------------------------------------------------------

    fn send_discovery_fetch(&mut self, now_ms: i64) {
        let voters: Vec<i32> = self.other_voters().collect();
        if voters.is_empty() {
            return;
        }
        let to = voters[self.rng.random_range(0..voters.len())];
        let req = self.fetch_request();
        let correlation_id = self.send_request(to, Message::FetchRequest(req));
        let deadline = now_ms + self.config.request_timeout_ms;
        if let Role::Unattached { discovery, election_deadline_ms, .. } = &mut self.role {
            *discovery = Some(InFlight { correlation_id, sent_ms: now_ms });
            *election_deadline_ms = deadline;
        }
    }

    fn fetch_request(&self) -> FetchRequest {
        let last_fetched_epoch = self.bug_claimed_epoch.unwrap_or_else(|| self.log.last_epoch());
        FetchRequest {
            cluster_id: Some(self.config.cluster_id.clone()),
            replica_id: self.config.node_id,
            max_wait_ms: self.config.fetch_max_wait_ms,
            partition: METADATA_PARTITION,
            current_leader_epoch: self.epoch,
            fetch_offset: self.log.end_offset(),
            last_fetched_epoch: last_fetched_epoch.min(self.epoch),
            log_start_offset: self.log.start_offset(),
            high_watermark: Some(self.high_watermark),
        }
    }

    /// A follower fetches when nothing is in flight and its log is fsynced (so the offset it
    /// reports, which the leader counts towards the high watermark, is durable).
    fn maybe_send_fetch(&mut self, now_ms: i64) {
        let synced = self.persisted_end == self.log.end_offset();
        let request_timeout_ms = self.config.request_timeout_ms;
        let Role::Follower { leader_id, fetch, next_fetch_ms, snapshot, .. } = &mut self.role else { return };
        let leader = *leader_id;
        if let Some(s) = snapshot {
            if s.in_flight.is_some_and(|f| now_ms >= f.sent_ms + request_timeout_ms) {
                s.in_flight = None;
            }
            if s.in_flight.is_some() {
                return;
            }
            let req = FetchSnapshotRequest {
                cluster_id: Some(self.config.cluster_id.clone()),
                replica_id: self.config.node_id,
                max_bytes: i32::MAX,
                partition: METADATA_PARTITION,
                current_leader_epoch: self.epoch,
                snapshot_id: s.snapshot_id,
                position: s.position,
            };
            let correlation_id = self.send_request(leader, Message::FetchSnapshotRequest(req));
            if let Role::Follower { snapshot: Some(s), .. } = &mut self.role {
                s.in_flight = Some(InFlight { correlation_id, sent_ms: now_ms });
            }
            return;
        }
        if fetch.is_some() || now_ms < *next_fetch_ms || !synced {
            return;
        }
        let req = self.fetch_request();
        let correlation_id = self.send_request(leader, Message::FetchRequest(req));
        if let Role::Follower { fetch, .. } = &mut self.role {
            *fetch = Some(InFlight { correlation_id, sent_ms: now_ms });
        }
    }

    fn handle_fetch_response(&mut self, peer: i32, correlation_id: i32, r: FetchResponse, now_ms: i64) {
        // Only the answer to the fetch in flight counts: an older one may describe a log this
        // node has since truncated.
        let expected = match &self.role {
            Role::Follower { fetch: Some(f), .. } => Some(f.correlation_id),
            Role::Unattached { discovery: Some(f), .. } => Some(f.correlation_id),
            _ => None,
        };
        if expected != Some(correlation_id) {
            return;
        }
        let backoff = now_ms + self.config.retry_backoff_ms;
        match &mut self.role {
            Role::Follower { fetch, next_fetch_ms, .. } => {
                *fetch = None;
                *next_fetch_ms = backoff;
            }
            Role::Unattached { discovery, election_deadline_ms, .. } => {
                // Ask the next voter soon if this one does not know the leader either.
                *discovery = None;
                *election_deadline_ms = backoff;
            }
            _ => {}
        }
        if r.error_code != NONE {
            return;
        }
        let view = r.current_leader;
        if self.handle_response_view(peer, view.leader_id, view.leader_epoch, now_ms) {
            return;
        }
        if r.partition_error_code != NONE {
            // NOT_LEADER_OR_FOLLOWER from a leader that resigned or restarted: retry after the
            // backoff; EndQuorumEpoch or the fetch timeout starts the election.
            return;
        }
        let Role::Follower { leader_id, last_contact_ms, next_fetch_ms, snapshot, .. } = &mut self.role else { return };
        if *leader_id != peer || view.leader_id != peer {
            return;
        }
        *last_contact_ms = now_ms;
        *next_fetch_ms = now_ms;
        if let Some(d) = r.diverging_epoch {
            if self.config.bugs.skip_diverging_truncation {
                self.bug_claimed_epoch = Some(self.epoch);
                return;
            }
            let offset = self.log.truncation_offset_for(d);
            if offset < self.high_watermark {
                self.violation(format!(
                    "leader {peer} asked to truncate to {offset} (diverging {d:?}) below the high watermark {}",
                    self.high_watermark
                ));
                return;
            }
            if offset < self.log.end_offset() && self.log.truncate(offset).is_ok() {
                self.persisted_end = self.persisted_end.min(offset);
                self.log_ops.push(LogOp::Truncate { offset });
            }
            return;
        }
        if let Some(s) = r.snapshot_id {
            // The snapshot replaces the whole local log, so it must not end below what this
            // node already knows committed (its entries up to there match the leader's).
            if s.offset >= self.high_watermark {
                *snapshot = Some(SnapshotFetch { snapshot_id: s, position: 0, in_flight: None });
            }
            return;
        }
        if let Some(first) = r.records.first() {
            let consistent = first.offset == self.log.end_offset() && r.records.iter().all(|e| e.epoch <= view.leader_epoch);
            if !consistent {
                return;
            }
            let records = r.records;
            if self.log.append(records.clone()).is_err() {
                return;
            }
            self.log_ops.push(LogOp::Append(records));
        }
        if r.high_watermark >= 0 {
            let hw = r.high_watermark.min(self.log.end_offset());
            if hw > self.high_watermark {
                self.set_high_watermark(hw);
            }
        }
    }

    fn handle_fetch_snapshot_response(&mut self, peer: i32, correlation_id: i32, r: FetchSnapshotResponse, now_ms: i64) {
        let Role::Follower { snapshot: Some(s), leader_id, .. } = &mut self.role else { return };
        if s.in_flight.map(|f| f.correlation_id) != Some(correlation_id) || *leader_id != peer {
            return;
        }
        s.in_flight = None;
        if r.error_code != NONE {
            return;
        }
        let view = r.current_leader;
        if self.handle_response_view(peer, view.leader_id, view.leader_epoch, now_ms) {
            return;
        }
        let Role::Follower { snapshot, last_contact_ms, .. } = &mut self.role else { return };
        let Some(s) = snapshot else { return };
        if r.partition_error_code != NONE || r.snapshot_id != s.snapshot_id || r.position != s.position || r.size < 0 {
            // SNAPSHOT_NOT_FOUND, POSITION_OUT_OF_RANGE, a newer snapshot: fetch again.
            *snapshot = None;
            return;
        }
        *last_contact_ms = now_ms;
        let len = r.unaligned_records.len() as i64;
        let id = s.snapshot_id;
        self.snapshot_writes.push(SnapshotChunk { snapshot_id: id, position: r.position, size: r.size, bytes: r.unaligned_records });
        s.position += len;
        if s.position >= r.size {
            *snapshot = None;
            if id.offset < self.high_watermark {
                self.violation(format!("snapshot {id:?} ends below the high watermark {}", self.high_watermark));
                return;
            }
            self.log.reset_to_snapshot(id);
            self.persisted_end = id.offset;
            self.log_ops.push(LogOp::ResetToSnapshot(id));
            self.set_high_watermark(id.offset);
        } else if len == 0 {
            // No progress: start over rather than loop.
            *snapshot = None;
        }
    }

    // ----- output helpers --------------------------------------------------------------------

    fn append_local(&mut self, entries: Vec<Entry>) {
        match self.log.append(entries.clone()) {
            Ok(()) => self.log_ops.push(LogOp::Append(entries)),
            Err(e) => self.violation(format!("local append refused: {e:?}")),
        }
    }

    fn send(&mut self, peer: i32, correlation_id: i32, message: Message) {
        self.outbox.push(Envelope { peer, correlation_id, message });
    }

    fn send_request(&mut self, peer: i32, message: Message) -> i32 {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let id = self.next_correlation_id;
        self.send(peer, id, message);
        id
    }
}
