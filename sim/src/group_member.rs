//! A classic-protocol consumer group member for the groups scenario: joins (KIP-394 member id
//! round trip), assigns with the range strategy when it is the leader, syncs, resumes from the
//! group's committed offsets, fetches, commits, heartbeats, rejoins on rebalance and sometimes
//! leaves — over the wire, recording what the group checkers need.
//!
//! It is a workload, not broker logic: the coordinator under test is the production one.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gregor_core::consumer_protocol::{self, decode_assignment, encode_assignment, encode_subscription, range_assign};
use gregor_net::client::Client;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::history::{Assignment, Commit, Resume};
use crate::workload::{connect, decode_batches, fetch_request, Ctx};

pub const GROUP: &str = "sim-group";
pub const SESSION_TIMEOUT_MS: i32 = 6_000;
pub const REBALANCE_TIMEOUT_MS: i32 = 10_000;
const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
const COMMIT_INTERVAL_MS: u64 = 500;
/// OffsetFetch/Fetch versions used (by topic name).
const OFFSET_FETCH_VERSION: i16 = 7;
const FETCH_VERSION: i16 = 12;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

enum Next {
    Rejoin,
    Reconnect,
}

/// Runs one member until the context stops. `incarnation` distinguishes restarts of its node.
pub async fn member(ctx: Ctx, index: u32, incarnation: u64) {
    let who = format!("member-{index}");
    let mut rng = SmallRng::seed_from_u64(0x6d65_6d62 ^ (u64::from(index) << 32) ^ incarnation);
    let mut member_id = String::new();
    while !ctx.stop.load(Ordering::SeqCst) {
        let Some(mut c) = connect(&ctx, &who).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        match session(&ctx, &who, &mut c, &mut member_id, &mut rng).await {
            Next::Rejoin => {}
            Next::Reconnect => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Asks for the group's coordinator, as every client does before it joins (the first request
/// creates `__consumer_offsets`). The scenario has one broker, so the answer must name it.
async fn find_coordinator(ctx: &Ctx, who: &str, c: &mut Client) -> Result<(), Next> {
    let mut req = FindCoordinatorRequest::default();
    req.key = sb(GROUP);
    // v3: the last version with one key (v4+ batch keys in `coordinator_keys`).
    match c.send_at(&req, 3).await {
        Ok(r) if r.error_code == 0 => Ok(()),
        Ok(r) => {
            ctx.trace.event(who, format!("find coordinator: error {}", r.error_code));
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err(Next::Rejoin)
        }
        Err(e) => {
            ctx.trace.event(who, format!("find coordinator: {e}"));
            Err(Next::Reconnect)
        }
    }
}

/// One membership: find the coordinator, join, sync, resume, then consume until a rebalance
/// or an error.
async fn session(ctx: &Ctx, who: &str, c: &mut Client, member_id: &mut String, rng: &mut SmallRng) -> Next {
    if let Err(next) = find_coordinator(ctx, who, c).await {
        return next;
    }
    // JoinGroup, with the KIP-394 round trip for a new member id.
    let join = loop {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(sb(GROUP));
        req.session_timeout_ms = SESSION_TIMEOUT_MS;
        req.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
        req.member_id = sb(member_id);
        req.protocol_type = sb(consumer_protocol::PROTOCOL_TYPE);
        let mut p = JoinGroupRequestProtocol::default();
        p.name = sb("range");
        p.metadata = encode_subscription(&[&ctx.topic]);
        req.protocols = vec![p];
        let resp = match c.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                ctx.trace.event(who, format!("join: {e}"));
                return Next::Reconnect;
            }
        };
        match resp.error_code {
            0 => break resp,
            79 => *member_id = resp.member_id.to_string(),
            25 => member_id.clear(),
            code => {
                ctx.trace.event(who, format!("join: error {code}"));
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Next::Rejoin;
            }
        }
    };
    *member_id = join.member_id.to_string();
    let generation = join.generation_id;
    let mut assignments = Vec::new();
    if join.leader == join.member_id {
        let members: Vec<String> = join.members.iter().map(|m| m.member_id.to_string()).collect();
        let partitions: Vec<i32> = (0..ctx.partitions).collect();
        for (m, parts) in range_assign(&partitions, &members) {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = sb(&m);
            a.assignment = encode_assignment(&BTreeMap::from([(ctx.topic.clone(), parts)]));
            assignments.push(a);
        }
    }
    let mut sync = SyncGroupRequest::default();
    sync.group_id = GroupId(sb(GROUP));
    sync.generation_id = generation;
    sync.member_id = sb(member_id);
    sync.protocol_type = Some(sb(consumer_protocol::PROTOCOL_TYPE));
    sync.protocol_name = Some(sb("range"));
    sync.assignments = assignments;
    let resp = match c.send(&sync).await {
        Ok(r) => r,
        Err(e) => {
            ctx.trace.event(who, format!("sync: {e}"));
            return Next::Reconnect;
        }
    };
    if resp.error_code != 0 {
        ctx.trace.event(who, format!("sync generation {generation}: error {}", resp.error_code));
        if matches!(resp.error_code, 25) {
            member_id.clear();
        }
        return Next::Rejoin;
    }
    let mine = decode_assignment(&resp.assignment).and_then(|mut a| a.remove(&ctx.topic)).unwrap_or_default();
    ctx.trace.event(who, format!("generation {generation} as {member_id}: partitions {mine:?}"));
    ctx.history.lock().assignments.push(Assignment { generation, member: member_id.clone(), partitions: mine.clone(), at: ctx.trace.elapsed() });

    // Resume from the committed offsets.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    if !mine.is_empty() {
        let mut t = OffsetFetchRequestTopic::default();
        t.name = TopicName(sb(&ctx.topic));
        t.partition_indexes = mine.clone();
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(sb(GROUP));
        req.topics = Some(vec![t]);
        let sent_at = ctx.trace.elapsed();
        let resp = match c.send_at(&req, OFFSET_FETCH_VERSION).await {
            Ok(r) => r,
            Err(e) => {
                ctx.trace.event(who, format!("offset fetch: {e}"));
                return Next::Reconnect;
            }
        };
        if resp.error_code != 0 {
            ctx.trace.event(who, format!("offset fetch: error {}", resp.error_code));
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Next::Rejoin;
        }
        let at = ctx.trace.elapsed();
        let mut h = ctx.history.lock();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    continue;
                }
                positions.insert(p.partition_index, p.committed_offset.max(0));
                h.resumes.push(Resume { member: member_id.clone(), generation, partition: p.partition_index, committed: p.committed_offset, sent_at, at });
            }
        }
        if positions.len() != mine.len() {
            drop(h);
            return Next::Rejoin;
        }
    }

    let mut last_commit = ctx.trace.elapsed();
    let mut last_heartbeat = ctx.trace.elapsed();
    let mut committed: BTreeMap<i32, i64> = positions.clone();
    while !ctx.stop.load(Ordering::SeqCst) {
        if !positions.is_empty() {
            let req = fetch_request(&ctx.topic, &positions);
            match c.send_at(&req, FETCH_VERSION).await {
                Ok(resp) => {
                    for t in resp.responses {
                        for pd in t.partitions {
                            let p = pd.partition_index;
                            let Some(data) = pd.records.filter(|_| pd.error_code == 0) else { continue };
                            let Ok(records) = decode_batches(data) else { continue };
                            let pos = positions.get(&p).copied().unwrap_or(0);
                            let mut h = ctx.history.lock();
                            crate::workload::note_served_order(&mut h, who, p, &records);
                            let mut next = pos;
                            for (offset, _) in records {
                                if offset < next {
                                    continue;
                                }
                                h.group_consumed.entry(p).or_default().insert(offset);
                                next = offset + 1;
                            }
                            positions.insert(p, next);
                        }
                    }
                }
                Err(e) => {
                    ctx.trace.event(who, format!("fetch: {e}"));
                    return Next::Reconnect;
                }
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let now = ctx.trace.elapsed();
        if now.saturating_sub(last_commit) >= Duration::from_millis(COMMIT_INTERVAL_MS) && positions != committed {
            last_commit = now;
            match commit(ctx, who, c, member_id, generation, &positions).await {
                Some(true) => committed = positions.clone(),
                Some(false) => return Next::Rejoin,
                None => return Next::Reconnect,
            }
        }
        if now.saturating_sub(last_heartbeat) >= Duration::from_millis(HEARTBEAT_INTERVAL_MS) {
            last_heartbeat = now;
            let mut req = HeartbeatRequest::default();
            req.group_id = GroupId(sb(GROUP));
            req.generation_id = generation;
            req.member_id = sb(member_id);
            match c.send(&req).await {
                Ok(r) if r.error_code == 0 => {}
                Ok(r) => {
                    ctx.trace.event(who, format!("heartbeat generation {generation}: error {}", r.error_code));
                    if matches!(r.error_code, 22 | 25) {
                        member_id.clear();
                    }
                    return Next::Rejoin;
                }
                Err(e) => {
                    ctx.trace.event(who, format!("heartbeat: {e}"));
                    return Next::Reconnect;
                }
            }
            if rng.random_bool(0.03) {
                // Leave politely (after a final commit), stay away a while, come back.
                let _ = commit(ctx, who, c, member_id, generation, &positions).await;
                let mut req = LeaveGroupRequest::default();
                req.group_id = GroupId(sb(GROUP));
                let mut m = MemberIdentity::default();
                m.member_id = sb(member_id);
                req.members = vec![m];
                let r = c.send(&req).await.map(|r| r.error_code).map_err(|e| e.to_string());
                ctx.trace.event(who, format!("leave: {r:?}"));
                member_id.clear();
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..=3_000))).await;
                return Next::Rejoin;
            }
        }
    }
    Next::Rejoin
}

/// Commits `positions` in `generation`: `Some(true)` when accepted, `Some(false)` when the
/// member must rejoin, `None` on a connection error.
async fn commit(ctx: &Ctx, who: &str, c: &mut Client, member_id: &mut String, generation: i32, positions: &BTreeMap<i32, i64>) -> Option<bool> {
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(sb(&ctx.topic));
    t.partitions = positions
        .iter()
        .map(|(&p, &o)| {
            let mut cp = OffsetCommitRequestPartition::default();
            cp.partition_index = p;
            cp.committed_offset = o;
            cp.committed_leader_epoch = -1;
            cp
        })
        .collect();
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(GROUP));
    req.generation_id_or_member_epoch = generation;
    req.member_id = sb(member_id);
    req.topics = vec![t];
    let sent_at = ctx.trace.elapsed();
    let first_attempt = {
        let mut h = ctx.history.lock();
        let first = h.commit_attempts.len();
        h.commit_attempts.extend(positions.iter().map(|(&p, &o)| (p, o, sent_at, false)));
        first
    };
    let resp = match c.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            ctx.trace.event(who, format!("commit: {e}"));
            return None;
        }
    };
    let at = ctx.trace.elapsed();
    let mut worst = 0;
    let mut h = ctx.history.lock();
    for a in &mut h.commit_attempts[first_attempt..first_attempt + positions.len()] {
        a.3 = true;
    }
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 {
                let offset = positions.get(&p.partition_index).copied().unwrap_or(-1);
                h.commits.push(Commit { member: member_id.clone(), generation, partition: p.partition_index, offset, sent_at, at });
            } else {
                worst = p.error_code;
            }
        }
    }
    drop(h);
    if worst != 0 {
        ctx.trace.event(who, format!("commit generation {generation}: error {worst}"));
        if matches!(worst, 22 | 25) {
            member_id.clear();
        }
        return Some(false);
    }
    Some(true)
}

/// The group's committed offset of every partition, read after the heal (-1: none).
pub async fn final_commits(ctx: &Ctx, bound: Duration) -> Option<BTreeMap<i32, i64>> {
    let deadline = ctx.trace.elapsed() + bound;
    while ctx.trace.elapsed() < deadline {
        let Some(mut c) = connect(ctx, "checker").await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let mut t = OffsetFetchRequestTopic::default();
        t.name = TopicName(sb(&ctx.topic));
        t.partition_indexes = (0..ctx.partitions).collect();
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(sb(GROUP));
        req.topics = Some(vec![t]);
        match c.send_at(&req, OFFSET_FETCH_VERSION).await {
            Ok(r) if r.error_code == 0 => {
                let out: BTreeMap<i32, i64> = r.topics.into_iter().flat_map(|t| t.partitions).map(|p| (p.partition_index, p.committed_offset)).collect();
                ctx.trace.event("checker", format!("final committed offsets {out:?}"));
                return Some(out);
            }
            Ok(r) => ctx.trace.event("checker", format!("final offset fetch: error {}", r.error_code)),
            Err(e) => ctx.trace.event("checker", format!("final offset fetch: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}
