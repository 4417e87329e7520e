//! The classic group coordinator: every group this broker coordinates, driven by requests and
//! by `tick`, answering through [`Effect`]s.
//!
//! Guarantees: no I/O, clock or randomness: time is the `now_ms` argument and member ids are
//! derived from the client id (or group.instance.id), a coordinator epoch and a per-coordinator
//! counter, checked unique within the group. The same calls with the same arguments produce the
//! same effects in the same order. No input panics: malformed or hostile requests get Kafka
//! error codes. Due timers of a group fire before and after each request to it, so a request
//! never observes a member whose session has already expired, and zero delays complete at once.

use std::collections::{BTreeMap, BTreeSet};

use super::errors::*;
use super::machine::Group;
use super::snapshot::GroupSnapshot;
use super::types::*;

/// Most KIP-394 pending member ids one group holds at once. Each costs memory until its session
/// timeout passes, and a client looping on empty-id joins must not grow it without bound.
pub const PENDING_MEMBERS_MAX: usize = 4096;

/// The coordinator of all groups on this broker.
#[derive(Debug, Clone)]
pub struct Coordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    /// Distinguishes member ids issued by successive coordinators of the same groups (the server
    /// passes e.g. the `__consumer_offsets` partition's leader epoch), so a member id fenced by an
    /// earlier coordinator is never handed to a different client after failover.
    member_id_epoch: i64,
    member_id_counter: u64,
    /// Completed rebalances of groups no longer held (see [`Coordinator::completed_rebalances`]).
    retired_rebalances: u64,
}

fn dedup_protocols(protocols: Vec<JoinProtocol>) -> Vec<JoinProtocol> {
    // Kafka keys protocols by name; the first occurrence (the most preferred) wins.
    let mut out: Vec<JoinProtocol> = Vec::with_capacity(protocols.len());
    for p in protocols {
        if !out.iter().any(|q| q.name == p.name) {
            out.push(p);
        }
    }
    out
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        Coordinator { config, groups: BTreeMap::new(), member_id_epoch: 0, member_id_counter: 0, retired_rebalances: 0 }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Sets the epoch embedded in newly issued member ids (see the field's docs).
    pub fn set_member_id_epoch(&mut self, epoch: i64) {
        self.member_id_epoch = epoch;
    }

    /// Kafka issues `{client_id}-{uuid}` (`{group_instance_id}-{uuid}` for static members);
    /// here the uuid is `{epoch}-{counter}`, skipping ids the group already uses.
    fn new_member_id(&mut self, group_id: &str, base: &str) -> String {
        loop {
            self.member_id_counter = self.member_id_counter.wrapping_add(1);
            let id = format!("{base}-{}-{}", self.member_id_epoch, self.member_id_counter);
            let taken = self.groups.get(group_id).is_some_and(|g| g.members.contains_key(&id) || g.pending.contains_key(&id));
            if !taken {
                return id;
            }
        }
    }

    /// Forgets a group, keeping its share of [`Coordinator::completed_rebalances`].
    fn remove(&mut self, group_id: &str) -> Option<Group> {
        let g = self.groups.remove(group_id)?;
        self.retired_rebalances += g.completed_rebalances;
        Some(g)
    }

    /// Join phases completed (each hands out a new generation) in every group this coordinator
    /// has held since it started; only grows.
    pub fn completed_rebalances(&self) -> u64 {
        self.retired_rebalances + self.groups.values().map(|g| g.completed_rebalances).sum::<u64>()
    }

    fn check(&self, group_id: &str) {
        if let Some(g) = self.groups.get(group_id) {
            g.check_invariants();
        }
    }

    /// JoinGroup. The answer for `token` is in the returned effects or in those of a later call.
    pub fn join(&mut self, now_ms: i64, token: u64, req: JoinRequest) -> Vec<Effect> {
        let mut out = Vec::new();
        let group_id = req.group_id.clone();
        let existed = self.groups.contains_key(&group_id);
        self.join_inner(now_ms, token, req, &mut out);
        if !existed && self.groups.get(&group_id).is_some_and(|g| g.members.is_empty() && g.pending.is_empty()) {
            // A refused first join leaves no trace: otherwise every rejected request with a new
            // group id would leave an Empty group behind for ever.
            self.remove(&group_id);
        }
        if let Some(g) = self.groups.get_mut(&group_id) {
            // A rejoin may have been the last one the join phase waited for.
            g.maybe_complete_join(now_ms, &mut out);
            g.fire_timers(now_ms, &self.config, &mut out);
        }
        self.check(&group_id);
        out
    }

    fn join_inner(&mut self, now_ms: i64, token: u64, mut req: JoinRequest, out: &mut Vec<Effect>) {
        let reply = |out: &mut Vec<Effect>, member_id: &str, code: i16| {
            out.push(Effect::Join { token, response: JoinResponse::error(member_id, code) })
        };
        if req.group_id.is_empty() {
            return reply(out, &req.member_id, INVALID_GROUP_ID);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return reply(out, &req.member_id, INVALID_SESSION_TIMEOUT);
        }
        let protocols = dedup_protocols(std::mem::take(&mut req.protocols));
        let unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown_member {
                return reply(out, &req.member_id, UNKNOWN_MEMBER_ID);
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id));
        }
        if let Some(g) = self.groups.get_mut(&req.group_id) {
            g.fire_timers(now_ms, &self.config, out);
        }
        let Some(g) = self.groups.get(&req.group_id) else { return };

        // A restarting static member is an existing member for group.max.size, even though it
        // joins without its member id.
        let known_static = req.group_instance_id.as_ref().and_then(|i| g.static_members.get(i)).cloned();
        let size_key = if unknown_member { known_static.unwrap_or_default() } else { req.member_id.clone() };
        if !g.accept_joining_member(&size_key, self.config.max_size) {
            if let Some(g) = self.groups.get_mut(&req.group_id) {
                if g.members.contains_key(&req.member_id) {
                    g.remove_member(&req.member_id, out);
                    g.after_removal(now_ms, &self.config, out);
                }
            }
            return reply(out, "", GROUP_MAX_SIZE_REACHED);
        }
        if !g.supports_protocols(&req.protocol_type, &protocols) {
            return reply(out, &req.member_id, INCONSISTENT_GROUP_PROTOCOL);
        }

        if unknown_member {
            let base = req.group_instance_id.clone().unwrap_or_else(|| req.client_id.clone());
            let new_id = self.new_member_id(&req.group_id, &base);
            let cfg = &self.config;
            let Some(g) = self.groups.get_mut(&req.group_id) else { return };
            if let Some(inst) = req.group_instance_id.clone() {
                match g.static_members.get(&inst).cloned() {
                    Some(old_id) => g.replace_static_member(now_ms, cfg, &old_id, new_id, &req, protocols, token, out),
                    None => g.add_member_and_rebalance(now_ms, cfg, new_id, &req, protocols, token, out),
                }
            } else if req.version >= 4 {
                // KIP-394: hand out the id but do not admit the member until it comes back with
                // it, so clients that die between the two steps never join the group.
                if g.pending.len() >= PENDING_MEMBERS_MAX {
                    return reply(out, "", GROUP_MAX_SIZE_REACHED);
                }
                let expiry_ms = now_ms.saturating_add(i64::from(req.session_timeout_ms));
                g.pending.insert(new_id.clone(), expiry_ms);
                reply(out, &new_id, MEMBER_ID_REQUIRED);
            } else {
                g.add_member_and_rebalance(now_ms, cfg, new_id, &req, protocols, token, out);
            }
        } else {
            let cfg = &self.config;
            let Some(g) = self.groups.get_mut(&req.group_id) else { return };
            let member_id = req.member_id.clone();
            if g.pending.contains_key(&member_id) {
                if req.group_instance_id.is_some() {
                    // Pending ids are only issued to dynamic members.
                    return reply(out, &member_id, UNKNOWN_MEMBER_ID);
                }
                g.pending.remove(&member_id);
                g.add_member_and_rebalance(now_ms, cfg, member_id, &req, protocols, token, out);
                return;
            }
            if let Err(code) = g.validate_member(&member_id, req.group_instance_id.as_deref()) {
                return reply(out, &member_id, code);
            }
            let unchanged = g.members.get(&member_id).is_some_and(|m| m.protocols == protocols);
            match g.state {
                GroupState::PreparingRebalance => {
                    g.update_member_and_rebalance(now_ms, cfg, &member_id, &req, protocols, token, out)
                }
                GroupState::CompletingRebalance if unchanged => {
                    // It missed the join answer (e.g. a timed-out request): resend it.
                    let leader = g.is_leader(&member_id);
                    g.touch(&member_id, now_ms);
                    let resp = g.current_join_response(&member_id, leader);
                    out.push(Effect::Join { token, response: resp });
                }
                GroupState::Stable if unchanged && !g.is_leader(&member_id) => {
                    // A follower with unchanged metadata gets the current generation so it can
                    // sync again; only the leader (for changes it sees, e.g. new partitions)
                    // or changed metadata forces a rebalance.
                    g.touch(&member_id, now_ms);
                    let resp = g.current_join_response(&member_id, false);
                    out.push(Effect::Join { token, response: resp });
                }
                GroupState::CompletingRebalance | GroupState::Stable => {
                    g.update_member_and_rebalance(now_ms, cfg, &member_id, &req, protocols, token, out)
                }
                GroupState::Empty | GroupState::Dead => reply(out, &member_id, UNKNOWN_MEMBER_ID),
            }
        }
    }

    /// SyncGroup. The answer for `token` is in the returned effects or in those of a later call.
    pub fn sync(&mut self, now_ms: i64, token: u64, req: SyncRequest) -> Vec<Effect> {
        let mut out = Vec::new();
        let reply = |out: &mut Vec<Effect>, code: i16| out.push(Effect::Sync { token, response: SyncResponse::error(code) });
        if req.group_id.is_empty() {
            reply(&mut out, INVALID_GROUP_ID);
            return out;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            reply(&mut out, UNKNOWN_MEMBER_ID);
            return out;
        };
        g.fire_timers(now_ms, &self.config, &mut out);
        let checked = g.validate_member(&req.member_id, req.group_instance_id.as_deref()).and_then(|()| {
            if req.generation_id != g.generation {
                Err(ILLEGAL_GENERATION)
            } else if req.protocol_type.as_ref().is_some_and(|t| g.protocol_type.as_ref() != Some(t))
                || req.protocol_name.as_ref().is_some_and(|p| g.protocol_name.as_ref() != Some(p))
            {
                Err(INCONSISTENT_GROUP_PROTOCOL)
            } else {
                Ok(())
            }
        });
        match checked {
            Err(code) => reply(&mut out, code),
            Ok(()) => g.sync(now_ms, token, &req, &mut out),
        }
        g.fire_timers(now_ms, &self.config, &mut out);
        g.check_invariants();
        out
    }

    /// Heartbeat: the error code for the response, plus effects of timers that fell due.
    pub fn heartbeat(&mut self, now_ms: i64, req: HeartbeatRequest) -> (i16, Vec<Effect>) {
        let mut out = Vec::new();
        if req.group_id.is_empty() {
            return (INVALID_GROUP_ID, out);
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else { return (UNKNOWN_MEMBER_ID, out) };
        g.fire_timers(now_ms, &self.config, &mut out);
        let code = match g.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            Err(code) => code,
            Ok(()) if req.generation_id != g.generation => ILLEGAL_GENERATION,
            Ok(()) => match g.state {
                GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
                GroupState::PreparingRebalance => {
                    // Still refreshes the session: the member is alive, it just has to rejoin.
                    g.touch(&req.member_id, now_ms);
                    REBALANCE_IN_PROGRESS
                }
                GroupState::CompletingRebalance | GroupState::Stable => {
                    g.touch(&req.member_id, now_ms);
                    NONE
                }
            },
        };
        g.check_invariants();
        (code, out)
    }

    /// LeaveGroup: (top-level error, per-member errors in request order, effects).
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeaveMember>,
    ) -> (i16, Vec<(LeaveMember, i16)>, Vec<Effect>) {
        let mut out = Vec::new();
        if group_id.is_empty() {
            return (INVALID_GROUP_ID, Vec::new(), out);
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            let results = members.into_iter().map(|m| (m, UNKNOWN_MEMBER_ID)).collect();
            return (NONE, results, out);
        };
        g.fire_timers(now_ms, &self.config, &mut out);
        let mut results = Vec::with_capacity(members.len());
        for lm in members {
            let code = if lm.member_id.is_empty() {
                // Administrative removal by group.instance.id (KIP-345).
                match lm.group_instance_id.as_ref().and_then(|i| g.static_members.get(i)).cloned() {
                    Some(id) => {
                        g.remove_member(&id, &mut out);
                        g.after_removal(now_ms, &self.config, &mut out);
                        NONE
                    }
                    None => UNKNOWN_MEMBER_ID,
                }
            } else if g.remove_pending(&lm.member_id, now_ms, &mut out) {
                NONE
            } else {
                match g.validate_member(&lm.member_id, lm.group_instance_id.as_deref()) {
                    Ok(()) => {
                        g.remove_member(&lm.member_id, &mut out);
                        g.after_removal(now_ms, &self.config, &mut out);
                        NONE
                    }
                    Err(code) => code,
                }
            };
            results.push((lm, code));
        }
        g.fire_timers(now_ms, &self.config, &mut out);
        g.check_invariants();
        (NONE, results, out)
    }

    /// Fires every timer due at `now_ms` in every group (session expiry, pending-id expiry, join
    /// and sync phase deadlines).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            g.fire_timers(now_ms, &self.config, &mut out);
        }
        out
    }

    /// The earliest time at which `tick` has something to do (it may be in the past).
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(Group::next_deadline).min()
    }

    /// Whether an OffsetCommit from this member may be stored (Kafka's `validateOffsetCommit`
    /// plus its state check). A commit with generation < 0, no member id and no instance id is a
    /// standalone consumer's (manual assignment): allowed while the group is Empty, and it
    /// creates the group if missing. A valid member's commit refreshes its session.
    ///
    /// As in Kafka, members of the current generation may commit during PreparingRebalance (a
    /// consumer commits in `onPartitionsRevoked` before rejoining; the rebalance reaches it via
    /// heartbeats), while CompletingRebalance answers REBALANCE_IN_PROGRESS.
    pub fn validate_commit(
        &mut self,
        now_ms: i64,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), i16> {
        if !self.groups.contains_key(group_id) {
            if generation >= 0 {
                return Err(ILLEGAL_GENERATION);
            }
            self.groups.insert(group_id.to_string(), Group::new(group_id));
        }
        let Some(g) = self.groups.get_mut(group_id) else { return Err(UNKNOWN_MEMBER_ID) };
        // No timers fire here: their effects (answers to waiting requests) could not be returned
        // through this signature. A member whose session ran out a moment ago but has not been
        // expired by `tick` yet may still commit, which is the same race Kafka's timer wheel has.
        let result = if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            let generation_ok = if generation == g.generation { Ok(()) } else { Err(ILLEGAL_GENERATION) };
            g.validate_member(member_id, instance_id).and(generation_ok)
        } else if g.state != GroupState::Empty {
            // Without member id and generation only an Empty group accepts commits.
            Err(UNKNOWN_MEMBER_ID)
        } else {
            Ok(())
        };
        let result = result.and_then(|()| {
            if g.state == GroupState::CompletingRebalance {
                Err(REBALANCE_IN_PROGRESS)
            } else {
                Ok(())
            }
        });
        if result.is_ok() {
            g.touch(member_id, now_ms);
        }
        g.check_invariants();
        result
    }

    /// ListGroups, optionally filtered by state names (case-insensitive; unknown names match
    /// nothing), in group id order.
    pub fn list(&self, states_filter: &[String]) -> Vec<GroupListing> {
        let filter: Vec<Option<GroupState>> = states_filter.iter().map(|s| GroupState::parse(s)).collect();
        self.groups
            .values()
            .filter(|g| filter.is_empty() || filter.contains(&Some(g.state)))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// The topics the group's members subscribe to (see `Group::subscribed_topics`); `None` for
    /// an unknown group or when the subscriptions are not known.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<BTreeSet<String>> {
        self.groups.get(group_id)?.subscribed_topics()
    }

    /// DescribeGroups for one group. An unknown group is described as Dead with error NONE, as
    /// Kafka does.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        match self.groups.get(group_id) {
            Some(g) => g.description(),
            None => GroupDescription {
                error_code: NONE,
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups for one group: only Empty groups can be deleted. The server also deletes the
    /// group's offsets and writes a tombstone for its metadata record.
    pub fn delete(&mut self, group_id: &str) -> i16 {
        match self.groups.get(group_id) {
            None => GROUP_ID_NOT_FOUND,
            Some(g) if g.state != GroupState::Empty => NON_EMPTY_GROUP,
            Some(_) => {
                self.remove(group_id);
                NONE
            }
        }
    }

    /// Restores a group from persisted metadata (coordinator startup or failover). Members get a
    /// fresh session (now + session timeout). A group already held is replaced; its waiting
    /// requests are answered NOT_COORDINATOR in the returned effects.
    pub fn load(&mut self, now_ms: i64, group_id: &str, snapshot: GroupSnapshot) -> Vec<Effect> {
        let out = self.unload(group_id);
        self.groups.insert(group_id.to_string(), Group::from_snapshot(now_ms, group_id, snapshot));
        out
    }

    /// Forgets a group (this broker stopped coordinating it), answering its waiting requests with
    /// NOT_COORDINATOR so clients look the coordinator up again.
    pub fn unload(&mut self, group_id: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(mut g) = self.remove(group_id) {
            g.abort_waiting(NOT_COORDINATOR, &mut out);
        }
        out
    }

    /// Writing the group's metadata failed: as Kafka does, start a new rebalance so the
    /// assignment that could not be stored is replaced (its SyncGroup answers were held back and
    /// failed by the caller), and a generation is never handed out without being durable.
    pub fn persist_failed(&mut self, now_ms: i64, group_id: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        let cfg = self.config.clone();
        if let Some(g) = self.groups.get_mut(group_id) {
            g.maybe_prepare_rebalance(now_ms, &cfg, &mut out);
        }
        out
    }

    /// The group's metadata in persisted form (what `Effect::Persist` carries).
    pub fn snapshot(&self, group_id: &str) -> Option<GroupSnapshot> {
        self.groups.get(group_id).map(Group::snapshot)
    }

    /// The group's current generation and state, if it exists.
    pub fn generation(&self, group_id: &str) -> Option<(i32, GroupState)> {
        self.groups.get(group_id).map(|g| (g.generation, g.state))
    }
}
