//! One classic consumer group: its members and the Kafka state machine
//! Empty → PreparingRebalance → CompletingRebalance → Stable (and back), without any I/O.
//!
//! Guarantees (checked by [`Group::check_invariants`] after every operation):
//! - `static_members` and the members' `instance_id`s describe the same mapping;
//! - a group with members has a leader that is a member; an Empty group has no members;
//!   Stable and CompletingRebalance groups have members and a chosen protocol;
//! - exactly the PreparingRebalance state has a join deadline; only members of a
//!   PreparingRebalance group wait for a JoinGroup answer and only members of a
//!   CompletingRebalance group wait for a SyncGroup answer;
//! - a KIP-394 pending member id is never also a member id;
//! - the generation never decreases.
//!
//! Every waiting request token is answered exactly once: when the phase it waits for completes,
//! or with an error when its member is removed, fenced, superseded or the group is unloaded.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::errors::*;
use crate::consumer_protocol;
use super::snapshot::{GroupSnapshot, MemberSnapshot};
use super::types::*;

/// How many rounds of due timers one call fires for one group. Each round makes progress (a
/// member or pending id removed, or a phase completed), so this only bounds pathological input
/// such as zero rebalance timeouts; anything left fires on the next call.
const TIMER_ROUNDS_MAX: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// In the member's order of preference, names unique.
    pub protocols: Vec<JoinProtocol>,
    pub assignment: Bytes,
    /// Order in which members were added: the leader fallback and the member-list order.
    pub join_seq: u64,
    /// A JoinGroup waiting for the join phase to complete: (token, request version).
    pub awaiting_join: Option<(u64, i16)>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<u64>,
    /// Last heartbeat, join or sync; the session expires at `last_seen_ms + session_timeout_ms`.
    pub last_seen_ms: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }

    /// Session deadline, or None while the member waits on the coordinator (Kafka keeps members
    /// that wait for a join or sync answer alive: the phase deadlines bound that wait instead).
    fn session_deadline_ms(&self) -> Option<i64> {
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            None
        } else {
            Some(self.last_seen_ms.saturating_add(i64::from(self.session_timeout_ms.max(0))))
        }
    }
}

/// Kafka's InitialDelayedJoin: the first rebalance of an Empty group waits
/// group.initial.rebalance.delay.ms, again while new members keep arriving, up to the
/// rebalance timeout in total.
#[derive(Debug, Clone)]
struct InitialDelay {
    configured_ms: i64,
    delay_ms: i64,
    remaining_ms: i64,
    new_member_added: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id (KIP-345).
    pub static_members: BTreeMap<String, String>,
    /// KIP-394 member ids handed out with MEMBER_ID_REQUIRED → expiry time.
    pub pending: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup since the join phase completed.
    pending_sync: BTreeSet<String>,
    join_deadline_ms: Option<i64>,
    initial_delay: Option<InitialDelay>,
    sync_deadline_ms: Option<i64>,
    next_join_seq: u64,
    /// Join phases completed while this coordinator held the group (a metric).
    pub completed_rebalances: u64,
}

fn push_join(out: &mut Vec<Effect>, token: u64, response: JoinResponse) {
    out.push(Effect::Join { token, response });
}

fn push_sync(out: &mut Vec<Effect>, token: u64, response: SyncResponse) {
    out.push(Effect::Sync { token, response });
}

impl Group {
    pub fn new(group_id: &str) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            generation: 0,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            next_join_seq: 0,
            completed_rebalances: 0,
        }
    }

    /// Restores a group from its persisted metadata. Inconsistent snapshots are repaired rather
    /// than trusted: duplicate member or instance ids keep their first entry, members without a
    /// chosen protocol are dropped (they could never be given one), a missing leader becomes the
    /// first member.
    pub fn from_snapshot(now_ms: i64, group_id: &str, s: GroupSnapshot) -> Group {
        let mut g = Group::new(group_id);
        g.generation = s.generation.max(0);
        g.protocol_type = if s.protocol_type.is_empty() { None } else { Some(s.protocol_type) };
        if let (Some(protocol), Some(_)) = (s.protocol_name.clone(), g.protocol_type.as_ref()) {
            for m in s.members {
                if g.members.contains_key(&m.member_id) {
                    continue;
                }
                if let Some(inst) = &m.group_instance_id {
                    if g.static_members.contains_key(inst) {
                        continue;
                    }
                    g.static_members.insert(inst.clone(), m.member_id.clone());
                }
                let seq = g.next_join_seq;
                g.next_join_seq += 1;
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        member_id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout_ms.max(0),
                        session_timeout_ms: m.session_timeout_ms.max(0),
                        protocols: vec![JoinProtocol { name: protocol.clone(), metadata: m.subscription }],
                        assignment: m.assignment,
                        join_seq: seq,
                        awaiting_join: None,
                        awaiting_sync: None,
                        // Kafka restores members with a fresh session: they get a full session
                        // timeout to find the new coordinator.
                        last_seen_ms: now_ms,
                    },
                );
            }
            if !g.members.is_empty() {
                g.state = GroupState::Stable;
                g.protocol_name = Some(protocol);
                g.leader = match s.leader {
                    Some(l) if g.members.contains_key(&l) => Some(l),
                    _ => g.first_member(),
                };
            }
        }
        g.check_invariants();
        g
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state: self.state,
            members: self
                .members_in_join_order()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn persist(&self, out: &mut Vec<Effect>) {
        out.push(Effect::Persist { group_id: self.group_id.clone(), snapshot: self.snapshot() });
    }

    pub fn members_in_join_order(&self) -> impl Iterator<Item = &Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.join_seq);
        v.into_iter()
    }

    fn first_member(&self) -> Option<String> {
        self.members.values().min_by_key(|m| m.join_seq).map(|m| m.member_id.clone())
    }

    /// The group's rebalance timeout: the largest of its members' (Kafka).
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms.max(0))).max().unwrap_or(0)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `validateMember`: with an instance id the instance must be known and map to this
    /// member id (else FENCED_INSTANCE_ID: a newer incarnation replaced it); without one the
    /// member id must be known.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        match instance_id {
            Some(inst) => match self.static_members.get(inst) {
                None => Err(UNKNOWN_MEMBER_ID),
                Some(current) if current != member_id => Err(FENCED_INSTANCE_ID),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(UNKNOWN_MEMBER_ID),
        }
    }

    /// Kafka's `supportsProtocols`: an empty group accepts any non-empty protocol type and
    /// protocol list; otherwise the type must match and one protocol must be supported by every
    /// current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[JoinProtocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.values().all(|m| m.protocols.iter().any(|q| q.name == p.name)))
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes for
    /// its most preferred; most votes wins. Kafka breaks ties by hash order; here the tie goes to
    /// the protocol the earliest-joined voter of a tied protocol preferred, which is deterministic.
    fn select_protocol(&self) -> Option<String> {
        let ordered: Vec<&Member> = self.members_in_join_order().collect();
        let first = ordered.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| ordered.iter().all(|m| m.protocols.iter().any(|q| q.name == *name)))
            .collect();
        // votes: protocol → (count, join_seq of the first voter)
        let mut votes: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for m in &ordered {
            if let Some(v) = m.protocols.iter().find(|p| candidates.contains(&p.name.as_str())) {
                let e = votes.entry(v.name.as_str()).or_insert((0, m.join_seq));
                e.0 += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
            .map(|(name, _)| name.to_string())
    }

    /// Kafka's `acceptJoiningMember` (group.max.size).
    pub fn accept_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                // Counting members awaiting join (not the group size) lets the last rejoiners be
                // the ones turned away when the limit was lowered.
                let awaiting = self.members.values().filter(|m| m.awaiting_join.is_some()).count();
                self.members.get(member_id).is_some_and(|m| m.awaiting_join.is_some()) || awaiting < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    fn join_response_for(&self, member_id: &str, with_members: bool, skip_assignment: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResponse {
            error_code: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members: if with_members {
                self.members_in_join_order()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Adds a new member that waits for the join phase (Kafka's `addMemberAndRebalance`).
    #[allow(clippy::too_many_arguments)]
    pub fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        cfg: &GroupConfig,
        member_id: String,
        req: &JoinRequest,
        protocols: Vec<JoinProtocol>,
        token: u64,
        out: &mut Vec<Effect>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if let Some(inst) = &req.group_instance_id {
            self.static_members.insert(inst.clone(), member_id.clone());
        }
        if let Some(d) = self.initial_delay.as_mut() {
            d.new_member_added = true;
        }
        let seq = self.next_join_seq;
        self.next_join_seq += 1;
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                rebalance_timeout_ms: req.rebalance_timeout_ms.max(0),
                session_timeout_ms: req.session_timeout_ms,
                protocols,
                assignment: Bytes::new(),
                join_seq: seq,
                awaiting_join: Some((token, req.version)),
                awaiting_sync: None,
                last_seen_ms: now_ms,
            },
        );
        self.maybe_prepare_rebalance(now_ms, cfg, out);
    }

    /// Records a member's rejoin with new metadata and makes sure a rebalance is under way
    /// (Kafka's `updateMemberAndRebalance`). A JoinGroup it had already waiting is superseded.
    #[allow(clippy::too_many_arguments)]
    pub fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        cfg: &GroupConfig,
        member_id: &str,
        req: &JoinRequest,
        protocols: Vec<JoinProtocol>,
        token: u64,
        out: &mut Vec<Effect>,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0);
            m.session_timeout_ms = req.session_timeout_ms;
            m.last_seen_ms = now_ms;
            if let Some((old, _)) = m.awaiting_join.replace((token, req.version)) {
                // The client gave up on the earlier request (it timed out and retried); answer it
                // so that no token is left hanging.
                push_join(out, old, JoinResponse::error(member_id, REBALANCE_IN_PROGRESS));
            }
        }
        self.maybe_prepare_rebalance(now_ms, cfg, out);
    }

    /// KIP-345: a known group.instance.id joined with no member id. The old member id is replaced
    /// (and thereby fenced); in Stable with unchanged protocols the member gets the current
    /// generation at once and no rebalance happens.
    #[allow(clippy::too_many_arguments)]
    pub fn replace_static_member(
        &mut self,
        now_ms: i64,
        cfg: &GroupConfig,
        old_id: &str,
        new_id: String,
        req: &JoinRequest,
        protocols: Vec<JoinProtocol>,
        token: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(mut m) = self.members.remove(old_id) else {
            // Cannot happen while the static map is consistent (checked by check_invariants);
            // joining as a new member is the safe answer.
            self.add_member_and_rebalance(now_ms, cfg, new_id, req, protocols, token, out);
            return;
        };
        // Fence the old incarnation's waiting requests at once.
        if let Some((t, _)) = m.awaiting_join.take() {
            push_join(out, t, JoinResponse::error(old_id, FENCED_INSTANCE_ID));
        }
        if let Some(t) = m.awaiting_sync.take() {
            push_sync(out, t, SyncResponse::error(FENCED_INSTANCE_ID));
        }
        let unchanged = m.protocols == protocols;
        m.member_id = new_id.clone();
        m.protocols = protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0);
        m.session_timeout_ms = req.session_timeout_ms;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.last_seen_ms = now_ms;
        self.members.insert(new_id.clone(), m);
        if let Some(inst) = &req.group_instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.state {
            GroupState::Stable if unchanged => {
                // Stricter than Kafka, which only compares the selected protocol: a changed
                // subscription rebalances, so the new metadata is never silently ignored.
                let leader = self.is_leader(&new_id);
                let resp = self.join_response_for(&new_id, leader && req.version >= 9, leader);
                push_join(out, token, resp);
                // The new member id must survive a failover, or the restarted instance would be
                // unknown to the next coordinator.
                self.persist(out);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some((token, req.version));
                }
                self.maybe_prepare_rebalance(now_ms, cfg, out);
            }
        }
    }

    /// Answers a rejoin of a current member whose metadata did not change with the current
    /// generation's information (Kafka's CompletingRebalance/Stable shortcut).
    pub fn current_join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        self.join_response_for(member_id, with_members, false)
    }

    /// Removes a member, answering its waiting requests with UNKNOWN_MEMBER_ID. Does not start a
    /// rebalance: callers follow with [`Group::after_removal`].
    pub fn remove_member(&mut self, member_id: &str, out: &mut Vec<Effect>) {
        let Some(mut m) = self.members.remove(member_id) else { return };
        if let Some((t, _)) = m.awaiting_join.take() {
            push_join(out, t, JoinResponse::error("", UNKNOWN_MEMBER_ID));
        }
        if let Some(t) = m.awaiting_sync.take() {
            push_sync(out, t, SyncResponse::error(UNKNOWN_MEMBER_ID));
        }
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(member_id) {
                self.static_members.remove(inst);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self.first_member();
        }
    }

    /// What Kafka does after a member leaves or fails: rebalance a Stable/CompletingRebalance
    /// group, or see whether a running join phase can now complete.
    pub fn after_removal(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Vec<Effect>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance(now_ms, cfg, out),
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub fn remove_pending(&mut self, member_id: &str, now_ms: i64, out: &mut Vec<Effect>) -> bool {
        let removed = self.pending.remove(member_id).is_some();
        if removed && self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(now_ms, out);
        }
        removed
    }

    pub fn maybe_prepare_rebalance(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Vec<Effect>) {
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty) {
            self.prepare_rebalance(now_ms, cfg, out);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being synced is void: waiting followers must rejoin (Kafka's
            // resetAndPropagateAssignmentError).
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.awaiting_sync.take() {
                    push_sync(out, t, SyncResponse::error(REBALANCE_IN_PROGRESS));
                    // Its session was suspended while it waited; it restarts now (Kafka).
                    m.last_seen_ms = m.last_seen_ms.max(now_ms);
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        if self.state == GroupState::Empty {
            let configured_ms = i64::from(cfg.initial_rebalance_delay_ms.max(0));
            self.initial_delay = Some(InitialDelay {
                configured_ms,
                delay_ms: configured_ms,
                remaining_ms: (rebalance_timeout_ms - configured_ms).max(0),
                new_member_added: false,
            });
            self.join_deadline_ms = Some(now_ms.saturating_add(configured_ms));
        } else {
            self.initial_delay = None;
            self.join_deadline_ms = Some(now_ms.saturating_add(rebalance_timeout_ms));
        }
        self.state = GroupState::PreparingRebalance;
        // Kafka's DelayedJoin is tried at once (e.g. the only member rejoined, or the last one left).
        self.maybe_complete_join(now_ms, out);
    }

    /// Kafka's `hasAllMembersJoined`: every member waits for the join answer and no KIP-394
    /// pending member is still expected.
    fn all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Completes the join phase early when everyone is in. The initial delay is never cut short
    /// (Kafka's InitialDelayedJoin only completes on expiry).
    pub fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance && self.initial_delay.is_none() && self.all_members_joined() {
            self.complete_join(now_ms, out);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        self.initial_delay = None;
        // Dynamic members that did not rejoin are gone; static ones stay (KIP-345: they keep their
        // place until their session expires, so a bounce does not cost them their assignment).
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id, out);
        }
        if !self.members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_none()) {
            // Only absent static members remain: wait another rebalance timeout for them to
            // rejoin or for their sessions to expire (Kafka postpones the same way).
            self.join_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms().max(1)));
            return;
        }
        // The old leader stays leader if it rejoined; otherwise the earliest rejoined member.
        let leader_rejoined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_rejoined {
            let first_rejoined =
                self.members_in_join_order().find(|m| m.awaiting_join.is_some()).map(|m| m.member_id.clone());
            self.leader = first_rejoined;
        }
        self.join_deadline_ms = None;
        self.completed_rebalances += 1;
        if !crate::bugs::active(crate::bugs::Bug::SameGeneration) {
            self.generation = self.generation.saturating_add(1);
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.persist(out);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members_in_join_order().map(|m| m.member_id.clone()).collect();
        for id in &ids {
            let is_leader = self.is_leader(id);
            let resp = self.join_response_for(id, is_leader, false);
            if let Some(m) = self.members.get_mut(id) {
                m.last_seen_ms = now_ms;
                if let Some((t, _)) = m.awaiting_join.take() {
                    push_join(out, t, resp);
                }
            }
            self.pending_sync.insert(id.clone());
        }
        // Members that never send SyncGroup are removed after the rebalance timeout. At least
        // 1 ms: members just answered must get a chance to sync even with a zero timeout, or
        // they would be removed in the very call that told them they joined.
        self.sync_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms().max(1)));
    }

    /// A SyncGroup from a validated member of the current generation.
    pub fn sync(&mut self, now_ms: i64, token: u64, req: &SyncRequest, out: &mut Vec<Effect>) {
        match self.state {
            GroupState::Empty | GroupState::Dead => push_sync(out, token, SyncResponse::error(UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => push_sync(out, token, SyncResponse::error(REBALANCE_IN_PROGRESS)),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    if let Some(old) = m.awaiting_sync.replace(token) {
                        push_sync(out, old, SyncResponse::error(REBALANCE_IN_PROGRESS));
                    }
                }
                if self.is_leader(&req.member_id) {
                    self.complete_sync(now_ms, &req.assignments, out);
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(&req.member_id);
                let resp = self.sync_response_for(&req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.last_seen_ms = now_ms;
                }
                push_sync(out, token, resp);
            }
        }
    }

    fn sync_response_for(&self, member_id: &str) -> SyncResponse {
        SyncResponse {
            error_code: NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// The leader's assignment arrived: store it (members it omits get an empty one, entries for
    /// non-members are ignored), answer every waiting SyncGroup, go Stable and persist.
    fn complete_sync(&mut self, now_ms: i64, assignments: &[SyncAssignment], out: &mut Vec<Effect>) {
        let mut given: BTreeMap<&str, &Bytes> = BTreeMap::new();
        for a in assignments {
            // First entry wins for a duplicated member id.
            given.entry(a.member_id.as_str()).or_insert(&a.assignment);
        }
        for m in self.members.values_mut() {
            m.assignment = given.get(m.member_id.as_str()).map(|b| (*b).clone()).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        let ids: Vec<String> = self.members_in_join_order().map(|m| m.member_id.clone()).collect();
        for id in &ids {
            let resp = self.sync_response_for(id);
            if let Some(m) = self.members.get_mut(id) {
                if let Some(t) = m.awaiting_sync.take() {
                    m.last_seen_ms = now_ms;
                    push_sync(out, t, resp);
                }
            }
        }
        self.persist(out);
    }

    /// Refreshes a member's session (heartbeat, commit).
    pub fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = m.last_seen_ms.max(now_ms);
        }
    }

    /// Fires every timer due at `now_ms`: KIP-394 pending ids, member sessions, the join-phase
    /// deadline (with the initial delay) and the sync-phase deadline.
    pub fn fire_timers(&mut self, now_ms: i64, cfg: &GroupConfig, out: &mut Vec<Effect>) {
        for _ in 0..TIMER_ROUNDS_MAX {
            let mut progressed = false;

            let expired: Vec<String> =
                self.pending.iter().filter(|(_, d)| **d <= now_ms).map(|(id, _)| id.clone()).collect();
            for id in &expired {
                self.remove_pending(id, now_ms, out);
                progressed = true;
            }

            let expired: Vec<String> = self
                .members
                .values()
                .filter(|m| m.session_deadline_ms().is_some_and(|d| d <= now_ms))
                .map(|m| m.member_id.clone())
                .collect();
            for id in &expired {
                // Re-check: an earlier removal in this loop may have changed what this member
                // waits for (e.g. a completed join phase refreshed its session).
                let still_expired = self
                    .members
                    .get(id)
                    .and_then(|m| m.session_deadline_ms())
                    .is_some_and(|d| d <= now_ms);
                if still_expired {
                    self.remove_member(id, out);
                    self.after_removal(now_ms, cfg, out);
                    progressed = true;
                }
            }

            if self.state == GroupState::PreparingRebalance && self.join_deadline_ms.is_some_and(|d| d <= now_ms) {
                self.on_join_deadline(now_ms, out);
                progressed = true;
            }

            if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable)
                && self.sync_deadline_ms.is_some_and(|d| d <= now_ms)
            {
                self.sync_deadline_ms = None;
                let never_synced: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
                if !never_synced.is_empty() {
                    for id in &never_synced {
                        self.remove_member(id, out);
                    }
                    self.maybe_prepare_rebalance(now_ms, cfg, out);
                }
                progressed = true;
            }

            if !progressed {
                break;
            }
        }
        self.check_invariants();
    }

    fn on_join_deadline(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if let Some(d) = self.initial_delay.as_mut() {
            if d.new_member_added && d.remaining_ms > 0 {
                // Kafka's InitialDelayedJoin: wait again while members keep arriving, never past
                // the rebalance timeout in total.
                d.new_member_added = false;
                let delay_ms = d.configured_ms.min(d.remaining_ms);
                d.remaining_ms = (d.remaining_ms - d.delay_ms).max(0);
                d.delay_ms = delay_ms;
                self.join_deadline_ms = Some(now_ms.saturating_add(delay_ms));
                return;
            }
        }
        self.complete_join(now_ms, out);
    }

    /// Earliest time `fire_timers` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut best: Option<i64> = None;
        let mut consider = |t: i64| best = Some(best.map_or(t, |b: i64| b.min(t)));
        self.pending.values().for_each(|d| consider(*d));
        self.members.values().filter_map(Member::session_deadline_ms).for_each(&mut consider);
        if self.state == GroupState::PreparingRebalance {
            if let Some(d) = self.join_deadline_ms {
                consider(d);
            }
        }
        if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable) && !self.pending_sync.is_empty() {
            if let Some(d) = self.sync_deadline_ms {
                consider(d);
            }
        }
        best
    }

    /// Answers every waiting request with `error` (the group is being unloaded or replaced).
    pub fn abort_waiting(&mut self, error: i16, out: &mut Vec<Effect>) {
        for m in self.members.values_mut() {
            if let Some((t, _)) = m.awaiting_join.take() {
                push_join(out, t, JoinResponse::error(&m.member_id, error));
            }
            if let Some(t) = m.awaiting_sync.take() {
                push_sync(out, t, SyncResponse::error(error));
            }
        }
    }

    /// The topics this group's members subscribe to, as Kafka's classic coordinator computes
    /// them: only for groups of the `consumer` protocol type with a selected protocol, from each
    /// member's metadata for that protocol. `None` when unknown (another protocol type, no
    /// generation yet, or a subscription that does not decode), which counts as subscribed to
    /// nothing.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(consumer_protocol::PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(consumer_protocol::subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    pub fn description(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            error_code: NONE,
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { protocol.clone() } else { String::new() },
            members: self
                .members_in_join_order()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata_for(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// The structural invariants listed in the module docs. They stay on in release builds
    /// (DESIGN §7): a violation is a coordinator bug, and continuing would hand out wrong
    /// memberships.
    pub fn check_invariants(&self) {
        for (inst, id) in &self.static_members {
            assert!(
                self.members.get(id).is_some_and(|m| m.instance_id.as_deref() == Some(inst.as_str())),
                "group {}: static member {inst} maps to {id}, which is not that member",
                self.group_id
            );
        }
        for m in self.members.values() {
            if let Some(inst) = &m.instance_id {
                assert_eq!(self.static_members.get(inst), Some(&m.member_id), "group {}: static map", self.group_id);
            }
            assert!(!self.pending.contains_key(&m.member_id), "group {}: pending id is a member", self.group_id);
            assert!(
                m.awaiting_join.is_none() || self.state == GroupState::PreparingRebalance,
                "group {}: join waiting outside PreparingRebalance",
                self.group_id
            );
            assert!(
                m.awaiting_sync.is_none() || self.state == GroupState::CompletingRebalance,
                "group {}: sync waiting outside CompletingRebalance",
                self.group_id
            );
        }
        match &self.leader {
            Some(l) => assert!(self.members.contains_key(l), "group {}: leader is not a member", self.group_id),
            None => assert!(self.members.is_empty(), "group {}: members without a leader", self.group_id),
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                assert!(self.members.is_empty(), "group {}: {:?} with members", self.group_id, self.state)
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                assert!(!self.members.is_empty(), "group {}: {:?} without members", self.group_id, self.state);
                assert!(self.protocol_name.is_some(), "group {}: no protocol chosen", self.group_id);
            }
            GroupState::PreparingRebalance => {}
        }
        assert_eq!(
            self.join_deadline_ms.is_some(),
            self.state == GroupState::PreparingRebalance,
            "group {}: join deadline iff PreparingRebalance",
            self.group_id
        );
    }
}
