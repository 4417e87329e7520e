//! Tests of the group coordinator: scenarios with explicit times asserting on emitted effects,
//! and property tests (snapshot codec on garbage, protocol invariants over random runs).

use bytes::Bytes;
use proptest::prelude::*;

use super::errors::*;
use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const G: &str = "g";

fn cfg(initial_delay_ms: i32) -> GroupConfig {
    GroupConfig { initial_rebalance_delay_ms: initial_delay_ms, ..GroupConfig::default() }
}

fn proto(name: &str) -> JoinProtocol {
    JoinProtocol { name: name.to_string(), metadata: Bytes::from(format!("meta-{name}")) }
}

fn join_req(member_id: &str, client_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        version: 5,
        group_id: G.to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: "consumer".to_string(),
        protocols: protocols.iter().map(|p| proto(p)).collect(),
        client_id: client_id.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

fn sync_req(generation: i32, member_id: &str, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: G.to_string(),
        generation_id: generation,
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| SyncAssignment { member_id: m.to_string(), assignment: Bytes::from(a.to_string()) })
            .collect(),
    }
}

fn hb(c: &mut Coordinator, now: i64, generation: i32, member_id: &str) -> i16 {
    let (code, _) = c.heartbeat(
        now,
        HeartbeatRequest {
            group_id: G.to_string(),
            generation_id: generation,
            member_id: member_id.to_string(),
            group_instance_id: None,
        },
    );
    code
}

fn joins(effects: &[Effect]) -> Vec<(u64, JoinResponse)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Join { token, response } => Some((*token, response.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(effects: &[Effect]) -> Vec<(u64, SyncResponse)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Sync { token, response } => Some((*token, response.clone())),
            _ => None,
        })
        .collect()
}

fn persists(effects: &[Effect]) -> Vec<GroupSnapshot> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist { snapshot, .. } => Some(snapshot.clone()),
            _ => None,
        })
        .collect()
}

/// The one Join answer for `token` among `effects`.
fn join_for(effects: &[Effect], token: u64) -> JoinResponse {
    let found: Vec<JoinResponse> = joins(effects).into_iter().filter(|(t, _)| *t == token).map(|(_, r)| r).collect();
    assert_eq!(found.len(), 1, "expected one join answer for token {token} in {effects:?}");
    found.into_iter().next().unwrap_or_else(|| JoinResponse::error("", -1))
}

fn sync_for(effects: &[Effect], token: u64) -> SyncResponse {
    let found: Vec<SyncResponse> = syncs(effects).into_iter().filter(|(t, _)| *t == token).map(|(_, r)| r).collect();
    assert_eq!(found.len(), 1, "expected one sync answer for token {token} in {effects:?}");
    found.into_iter().next().unwrap_or_else(|| SyncResponse::error(-1))
}

/// KIP-394 first step: returns the member id handed out.
fn get_member_id(c: &mut Coordinator, now: i64, token: u64, client: &str) -> String {
    let out = c.join(now, token, join_req("", client, &["range"]));
    let r = join_for(&out, token);
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    assert!(!r.member_id.is_empty());
    r.member_id
}

/// A one-member Stable group at generation 1 (initial delay 0); returns the member id.
fn stable_single(c: &mut Coordinator, now: i64) -> String {
    let a = get_member_id(c, now, 1, "a");
    let out = c.join(now, 2, join_req(&a, "a", &["range"]));
    assert_eq!(join_for(&out, 2).generation_id, 1);
    let out = c.sync(now, 3, sync_req(1, &a, &[(&a, "A1")]));
    assert_eq!(sync_for(&out, 3).error_code, NONE);
    a
}

/// A two-member Stable group (a leader, b follower) at generation 2; returns (a, b).
fn stable_pair(c: &mut Coordinator, now: i64) -> (String, String) {
    let a = stable_single(c, now);
    let b = get_member_id(c, now, 10, "b");
    let out = c.join(now, 11, join_req(&b, "b", &["range"]));
    assert!(joins(&out).is_empty());
    let out = c.join(now, 12, join_req(&a, "a", &["range"]));
    assert_eq!(join_for(&out, 11).generation_id, 2);
    assert_eq!(join_for(&out, 12).generation_id, 2);
    let out = c.sync(now, 13, sync_req(2, &b, &[]));
    assert!(syncs(&out).is_empty());
    let out = c.sync(now, 14, sync_req(2, &a, &[(&a, "A2"), (&b, "B2")]));
    assert_eq!(sync_for(&out, 13).assignment, Bytes::from("B2"));
    assert_eq!(sync_for(&out, 14).assignment, Bytes::from("A2"));
    (a, b)
}

#[test]
fn kip394_two_step_join() {
    let mut c = Coordinator::new(cfg(0));
    let out = c.join(0, 1, join_req("", "client", &["range"]));
    let r = join_for(&out, 1);
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    assert!(r.member_id.starts_with("client-"));
    // Not a member yet.
    assert!(c.describe(G).members.is_empty());
    assert_eq!(c.describe(G).state, GroupState::Empty);
    let out = c.join(100, 2, join_req(&r.member_id, "client", &["range"]));
    let j = join_for(&out, 2);
    assert_eq!(j.error_code, NONE);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, r.member_id);
    assert_eq!(j.member_id, r.member_id);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(c.describe(G).state, GroupState::CompletingRebalance);
}

#[test]
fn kip394_pending_member_id_expires() {
    let mut c = Coordinator::new(cfg(0));
    let id = get_member_id(&mut c, 0, 1, "client");
    assert_eq!(c.next_deadline(), Some(i64::from(SESSION_MS)));
    assert!(c.tick(i64::from(SESSION_MS)).is_empty());
    let out = c.join(i64::from(SESSION_MS) + 1, 2, join_req(&id, "client", &["range"]));
    assert_eq!(join_for(&out, 2).error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn pre_v4_join_gets_id_and_joins_directly() {
    let mut c = Coordinator::new(cfg(0));
    let mut req = join_req("", "old", &["range"]);
    req.version = 3;
    let out = c.join(0, 1, req);
    let j = join_for(&out, 1);
    assert_eq!(j.error_code, NONE);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, j.member_id);
}

#[test]
fn single_member_sync_goes_stable_and_persists() {
    let mut c = Coordinator::new(cfg(0));
    let a = get_member_id(&mut c, 0, 1, "a");
    c.join(0, 2, join_req(&a, "a", &["range"]));
    let out = c.sync(5, 3, sync_req(1, &a, &[(&a, "assign-a"), ("stranger", "x")]));
    let s = sync_for(&out, 3);
    assert_eq!(s.error_code, NONE);
    assert_eq!(s.assignment, Bytes::from("assign-a"));
    assert_eq!(s.protocol_name.as_deref(), Some("range"));
    let p = persists(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].generation, 1);
    assert_eq!(p[0].state, GroupState::Stable);
    assert_eq!(p[0].members.len(), 1);
    assert_eq!(p[0].members[0].assignment, Bytes::from("assign-a"));
    assert_eq!(c.describe(G).state, GroupState::Stable);
    // In Stable a sync answers at once with the stored assignment.
    let out = c.sync(6, 4, sync_req(1, &a, &[]));
    assert_eq!(sync_for(&out, 4).assignment, Bytes::from("assign-a"));
    assert_eq!(hb(&mut c, 7, 1, &a), NONE);
}

#[test]
fn second_member_triggers_rebalance_and_followers_wait_for_leader() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    let b = get_member_id(&mut c, 10, 10, "b");
    let out = c.join(10, 11, join_req(&b, "b", &["range"]));
    assert!(joins(&out).is_empty(), "b waits for a to rejoin");
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
    assert_eq!(hb(&mut c, 20, 1, &a), REBALANCE_IN_PROGRESS);
    // Sync of the old generation during the join phase.
    let out = c.sync(21, 12, sync_req(1, &a, &[]));
    assert_eq!(sync_for(&out, 12).error_code, REBALANCE_IN_PROGRESS);
    let out = c.join(30, 13, join_req(&a, "a", &["range"]));
    let ja = join_for(&out, 13);
    let jb = join_for(&out, 11);
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.leader, a);
    assert_eq!(jb.leader, a);
    let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    assert!(jb.members.is_empty());
    assert_eq!(hb(&mut c, 31, 2, &b), NONE, "CompletingRebalance heartbeats are NONE");
    let out = c.sync(40, 14, sync_req(2, &b, &[]));
    assert!(syncs(&out).is_empty(), "follower waits for the leader");
    let out = c.sync(50, 15, sync_req(2, &a, &[(&a, "A"), (&b, "B")]));
    assert_eq!(sync_for(&out, 14).assignment, Bytes::from("B"));
    assert_eq!(sync_for(&out, 15).assignment, Bytes::from("A"));
    assert_eq!(persists(&out).len(), 1);
    assert_eq!(c.describe(G).state, GroupState::Stable);
}

#[test]
fn leader_missing_member_gets_empty_assignment() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    let b = get_member_id(&mut c, 0, 10, "b");
    c.join(0, 11, join_req(&b, "b", &["range"]));
    c.join(0, 12, join_req(&a, "a", &["range"]));
    c.sync(0, 13, sync_req(2, &b, &[]));
    let out = c.sync(0, 14, sync_req(2, &a, &[(&a, "A")]));
    assert_eq!(sync_for(&out, 13).assignment, Bytes::new());
}

#[test]
fn initial_rebalance_delay_waits_and_extends() {
    let mut c = Coordinator::new(cfg(3_000));
    let mut req = join_req("", "a", &["range"]);
    req.version = 3;
    req.rebalance_timeout_ms = 10_000;
    let out = c.join(0, 1, req.clone());
    assert!(joins(&out).is_empty());
    assert_eq!(c.next_deadline(), Some(3_000));
    req.client_id = "b".into();
    c.join(1_000, 2, req.clone());
    assert!(c.tick(2_999).is_empty());
    // b arrived during the delay: wait another delay.
    assert!(joins(&c.tick(3_000)).is_empty());
    assert_eq!(c.next_deadline(), Some(6_000));
    let out = c.tick(6_000);
    let (ja, jb) = (join_for(&out, 1), join_for(&out, 2));
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    assert_eq!(ja.leader, ja.member_id, "first joiner leads");
    assert_eq!(ja.members.len(), 2);

    // Without new arrivals the delay is not extended, and not cut short either.
    let mut c = Coordinator::new(cfg(3_000));
    let out = c.join(0, 1, req.clone());
    assert!(joins(&out).is_empty());
    assert!(c.tick(2_999).is_empty());
    assert_eq!(join_for(&c.tick(3_000), 1).generation_id, 1);
}

#[test]
fn member_that_does_not_rejoin_is_removed_at_rebalance_timeout() {
    let mut c = Coordinator::new(cfg(0));
    let (a, b) = stable_pair(&mut c, 0);
    let x = get_member_id(&mut c, 1_000, 20, "x");
    c.join(1_000, 21, join_req(&x, "x", &["range"]));
    c.join(2_000, 22, join_req(&a, "a", &["range"]));
    // b keeps heartbeating (so its session holds) but never rejoins.
    for t in [4_000, 12_000, 20_000, 28_000] {
        assert_eq!(hb(&mut c, t, 2, &b), REBALANCE_IN_PROGRESS);
    }
    assert!(c.tick(30_999).is_empty());
    let out = c.tick(31_000);
    let ja = join_for(&out, 22);
    assert_eq!(ja.generation_id, 3);
    assert_eq!(join_for(&out, 21).generation_id, 3);
    let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), x.as_str()]);
    assert_eq!(hb(&mut c, 31_001, 2, &b), UNKNOWN_MEMBER_ID);
}

#[test]
fn session_expiry_rebalances_then_empties() {
    let mut c = Coordinator::new(cfg(0));
    let (a, b) = stable_pair(&mut c, 0);
    assert_eq!(hb(&mut c, 5_000, 2, &b), NONE);
    assert_eq!(c.next_deadline(), Some(10_000));
    let out = c.tick(10_000);
    assert!(out.is_empty());
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
    assert_eq!(hb(&mut c, 10_001, 2, &a), UNKNOWN_MEMBER_ID);
    assert_eq!(hb(&mut c, 10_002, 2, &b), REBALANCE_IN_PROGRESS);
    let out = c.join(10_003, 30, join_req(&b, "b", &["range"]));
    let jb = join_for(&out, 30);
    assert_eq!(jb.generation_id, 3);
    assert_eq!(jb.leader, b, "the old leader is gone: b leads");
    c.sync(10_004, 31, sync_req(3, &b, &[(&b, "all")]));
    let out = c.tick(20_004);
    let p = persists(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].state, GroupState::Empty);
    assert_eq!(p[0].generation, 4);
    assert!(p[0].members.is_empty());
    assert_eq!(c.describe(G).state, GroupState::Empty);
}

#[test]
fn leave_rebalances_and_answers_waiting_requests() {
    let mut c = Coordinator::new(cfg(0));
    let (a, b) = stable_pair(&mut c, 0);
    let (top, results, _) = c.leave(
        1,
        G,
        vec![
            LeaveMember { member_id: b.clone(), group_instance_id: None },
            LeaveMember { member_id: "nobody".into(), group_instance_id: None },
        ],
    );
    assert_eq!(top, NONE);
    assert_eq!(results.iter().map(|r| r.1).collect::<Vec<_>>(), vec![NONE, UNKNOWN_MEMBER_ID]);
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
    let x = get_member_id(&mut c, 2, 40, "x");
    c.join(2, 41, join_req(&x, "x", &["range"]));
    // x leaves while its join waits: its join is answered UNKNOWN_MEMBER_ID.
    let (_, results, out) = c.leave(3, G, vec![LeaveMember { member_id: x.clone(), group_instance_id: None }]);
    assert_eq!(results[0].1, NONE);
    assert_eq!(join_for(&out, 41).error_code, UNKNOWN_MEMBER_ID);
    let out = c.join(4, 42, join_req(&a, "a", &["range"]));
    assert_eq!(join_for(&out, 42).generation_id, 3);
    let (_, _, out) = c.leave(5, G, vec![LeaveMember { member_id: a.clone(), group_instance_id: None }]);
    assert_eq!(c.describe(G).state, GroupState::Empty);
    assert_eq!(persists(&out).len(), 1);
    let (top, results, _) = c.leave(6, "nope", vec![LeaveMember { member_id: a, group_instance_id: None }]);
    assert_eq!((top, results[0].1), (NONE, UNKNOWN_MEMBER_ID));
}

fn static_req(member_id: &str, instance: &str, protocols: &[&str]) -> JoinRequest {
    let mut r = join_req(member_id, instance, protocols);
    r.group_instance_id = Some(instance.to_string());
    r
}

#[test]
fn static_member_rejoin_in_stable_does_not_rebalance_and_fences_old_id() {
    let mut c = Coordinator::new(cfg(0));
    // Leader a (dynamic), static follower s.
    let a = stable_single(&mut c, 0);
    let out = c.join(1, 10, static_req("", "inst-s", &["range"]));
    assert!(joins(&out).is_empty(), "a new static member joins directly and waits for the rebalance");
    let out = c.join(1, 11, join_req(&a, "a", &["range"]));
    let s_old = join_for(&out, 10).member_id;
    assert!(s_old.starts_with("inst-s-"));
    c.sync(2, 12, SyncRequest { group_instance_id: Some("inst-s".into()), ..sync_req(2, &s_old, &[]) });
    c.sync(2, 13, sync_req(2, &a, &[(&a, "A"), (&s_old, "S")]));
    assert_eq!(c.describe(G).state, GroupState::Stable);

    // s restarts: same instance id, no member id, same metadata.
    let out = c.join(100, 20, static_req("", "inst-s", &["range"]));
    let j = join_for(&out, 20);
    assert_eq!(j.error_code, NONE);
    assert_eq!(j.generation_id, 2, "no new generation");
    assert_eq!(j.leader, a);
    assert_ne!(j.member_id, s_old);
    assert_eq!(persists(&out).len(), 1, "the new member id is persisted");
    assert_eq!(c.describe(G).state, GroupState::Stable);
    let s_new = j.member_id;
    // The old incarnation is fenced.
    let (code, _) = c.heartbeat(
        101,
        HeartbeatRequest {
            group_id: G.into(),
            generation_id: 2,
            member_id: s_old.clone(),
            group_instance_id: Some("inst-s".into()),
        },
    );
    assert_eq!(code, FENCED_INSTANCE_ID);
    let out = c.sync(101, 21, SyncRequest { group_instance_id: Some("inst-s".into()), ..sync_req(2, &s_old, &[]) });
    assert_eq!(sync_for(&out, 21).error_code, FENCED_INSTANCE_ID);
    // The new one keeps the assignment without any rebalance.
    let out = c.sync(102, 22, SyncRequest { group_instance_id: Some("inst-s".into()), ..sync_req(2, &s_new, &[]) });
    assert_eq!(sync_for(&out, 22).assignment, Bytes::from("S"));
    assert_eq!(
        c.validate_commit(103, G, 2, &s_old, Some("inst-s")),
        Err(FENCED_INSTANCE_ID)
    );
    // Changed subscription: rebalance.
    let mut changed = static_req("", "inst-s", &["range"]);
    changed.protocols[0].metadata = Bytes::from("new-subscription");
    let out = c.join(200, 23, changed);
    assert!(joins(&out).is_empty());
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
}

#[test]
fn static_leader_rejoin_gets_skip_assignment_in_v9() {
    let mut c = Coordinator::new(cfg(0));
    let out = c.join(0, 1, static_req("", "inst-l", &["range"]));
    let l = join_for(&out, 1).member_id;
    c.sync(0, 2, SyncRequest { group_instance_id: Some("inst-l".into()), ..sync_req(1, &l, &[(&l, "L")]) });
    let mut req = static_req("", "inst-l", &["range"]);
    req.version = 9;
    let out = c.join(10, 3, req);
    let j = join_for(&out, 3);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, j.member_id, "leadership moves to the new member id");
    assert!(j.skip_assignment);
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].group_instance_id.as_deref(), Some("inst-l"));
}

#[test]
fn static_member_absent_during_rebalance_keeps_its_place() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    // Static members use long sessions so that a bounce does not expire them.
    let out = c.join(0, 10, JoinRequest { session_timeout_ms: 60_000, ..static_req("", "inst-s", &["range"]) });
    assert!(joins(&out).is_empty());
    let out = c.join(0, 11, join_req(&a, "a", &["range"]));
    let s = join_for(&out, 10).member_id;
    c.sync(0, 12, SyncRequest { group_instance_id: Some("inst-s".into()), ..sync_req(2, &s, &[]) });
    c.sync(0, 13, sync_req(2, &a, &[]));
    // a rejoins as leader (forces a rebalance); s is away but its session holds.
    c.join(1_000, 14, join_req(&a, "a", &["range"]));
    let out = c.tick(31_000);
    let ja = join_for(&out, 14);
    assert_eq!(ja.generation_id, 3);
    assert_eq!(ja.members.len(), 2, "static member s is still in the group");
}

#[test]
fn protocol_selection_by_votes() {
    // rr: 2 votes, range: 1 vote.
    let mut c = Coordinator::new(cfg(1_000));
    for (i, ps) in [vec!["range", "rr"], vec!["rr", "range"], vec!["rr", "range", "sticky"]].iter().enumerate() {
        let id = get_member_id(&mut c, 0, 100 + i as u64, &format!("m{i}"));
        c.join(0, i as u64, join_req(&id, &format!("m{i}"), ps));
    }
    // Later joiners extended the initial delay once.
    assert!(c.tick(1_000).is_empty());
    let out = c.tick(2_000);
    for i in 0..3 {
        assert_eq!(join_for(&out, i).protocol_name.as_deref(), Some("rr"));
    }
    // A tie goes to the earliest joiner's preference.
    let mut c = Coordinator::new(cfg(1_000));
    for (i, ps) in [vec!["range", "rr"], vec!["rr", "range"]].iter().enumerate() {
        let id = get_member_id(&mut c, 0, 100 + i as u64, &format!("m{i}"));
        c.join(0, i as u64, join_req(&id, &format!("m{i}"), ps));
    }
    assert!(c.tick(1_000).is_empty());
    let out = c.tick(2_000);
    assert_eq!(join_for(&out, 0).protocol_name.as_deref(), Some("range"));
    // "sticky" alone is supported by nobody else; another protocol type is refused too.
    let out = c.join(1_001, 7, join_req("", "x", &["sticky"]));
    assert_eq!(join_for(&out, 7).error_code, INCONSISTENT_GROUP_PROTOCOL);
    let mut other = join_req("", "x", &["range"]);
    other.protocol_type = "connect".into();
    assert_eq!(join_for(&c.join(1_001, 8, other), 8).error_code, INCONSISTENT_GROUP_PROTOCOL);
    // An Empty group refuses an empty protocol type or list.
    let mut c = Coordinator::new(cfg(0));
    let mut bad = join_req("", "x", &[]);
    assert_eq!(join_for(&c.join(0, 9, bad.clone()), 9).error_code, INCONSISTENT_GROUP_PROTOCOL);
    bad.protocols = vec![proto("range")];
    bad.protocol_type = String::new();
    assert_eq!(join_for(&c.join(0, 10, bad), 10).error_code, INCONSISTENT_GROUP_PROTOCOL);
}

#[test]
fn generation_and_membership_errors() {
    let mut c = Coordinator::new(cfg(0));
    let (a, b) = stable_pair(&mut c, 0);
    assert_eq!(hb(&mut c, 1, 1, &a), ILLEGAL_GENERATION);
    assert_eq!(hb(&mut c, 1, 2, "ghost"), UNKNOWN_MEMBER_ID);
    assert_eq!(hb(&mut c, 1, 2, &b), NONE);
    let out = c.sync(1, 1, sync_req(7, &a, &[]));
    assert_eq!(sync_for(&out, 1).error_code, ILLEGAL_GENERATION);
    let out = c.sync(1, 2, sync_req(2, "ghost", &[]));
    assert_eq!(sync_for(&out, 2).error_code, UNKNOWN_MEMBER_ID);
    let mut wrong = sync_req(2, &a, &[]);
    wrong.protocol_name = Some("rr".into());
    assert_eq!(sync_for(&c.sync(1, 3, wrong), 3).error_code, INCONSISTENT_GROUP_PROTOCOL);
    let out = c.join(1, 4, join_req("ghost", "g", &["range"]));
    assert_eq!(join_for(&out, 4).error_code, UNKNOWN_MEMBER_ID);
    let out = c.join(1, 5, JoinRequest { group_id: "other".into(), ..join_req("ghost", "g", &["range"]) });
    assert_eq!(join_for(&out, 5).error_code, UNKNOWN_MEMBER_ID);
    let mut bad = join_req("", "x", &["range"]);
    bad.session_timeout_ms = 5_999;
    assert_eq!(join_for(&c.join(1, 6, bad.clone()), 6).error_code, INVALID_SESSION_TIMEOUT);
    bad.session_timeout_ms = 1_800_001;
    assert_eq!(join_for(&c.join(1, 7, bad), 7).error_code, INVALID_SESSION_TIMEOUT);
    assert_eq!(hb(&mut c, 1, 2, &a), NONE);
    let (code, _) = c.heartbeat(1, HeartbeatRequest { group_id: "none".into(), generation_id: 1, member_id: a.clone(), group_instance_id: None });
    assert_eq!(code, UNKNOWN_MEMBER_ID);
    let out = c.join(1, 8, JoinRequest { group_id: String::new(), ..join_req("", "x", &["range"]) });
    assert_eq!(join_for(&out, 8).error_code, INVALID_GROUP_ID);
}

#[test]
fn zero_rebalance_timeout_still_lets_members_sync() {
    // Found by the random runs: with rebalance_timeout_ms = 0 the sync deadline used to fire in
    // the same call that answered the join, removing the member it had just admitted.
    let mut c = Coordinator::new(cfg(0));
    let mut req = join_req("", "a", &["range"]);
    req.version = 3;
    req.rebalance_timeout_ms = 0;
    let out = c.join(0, 1, req);
    let j = join_for(&out, 1);
    assert_eq!((j.error_code, j.generation_id), (NONE, 1));
    assert_eq!(c.describe(G).members.len(), 1);
    let out = c.sync(0, 2, sync_req(1, &j.member_id, &[(&j.member_id, "A")]));
    assert_eq!(sync_for(&out, 2).assignment, Bytes::from("A"));
}

#[test]
fn refused_first_join_leaves_no_group() {
    let mut c = Coordinator::new(cfg(0));
    let out = c.join(0, 1, join_req("", "a", &[]));
    assert_eq!(join_for(&out, 1).error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert!(c.list(&[]).is_empty());
}

#[test]
fn group_max_size() {
    let mut c = Coordinator::new(GroupConfig { max_size: 1, ..cfg(0) });
    let _a = stable_single(&mut c, 0);
    let out = c.join(1, 5, join_req("", "b", &["range"]));
    assert_eq!(join_for(&out, 5).error_code, GROUP_MAX_SIZE_REACHED);

    // A full group still takes back a restarting static member.
    let mut c = Coordinator::new(GroupConfig { max_size: 1, ..cfg(0) });
    let s = join_for(&c.join(0, 1, static_req("", "inst", &["range"])), 1).member_id;
    c.sync(0, 2, SyncRequest { group_instance_id: Some("inst".into()), ..sync_req(1, &s, &[(&s, "S")]) });
    let j = join_for(&c.join(1, 3, static_req("", "inst", &["range"])), 3);
    assert_eq!((j.error_code, j.generation_id), (NONE, 1));
}

#[test]
fn leader_never_syncs_members_are_removed() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    let b = get_member_id(&mut c, 0, 10, "b");
    c.join(0, 11, join_req(&b, "b", &["range"]));
    c.join(0, 12, join_req(&a, "a", &["range"]));
    let out = c.sync(100, 13, sync_req(2, &b, &[]));
    assert!(syncs(&out).is_empty());
    // a keeps heartbeating but never syncs.
    for t in [5_000, 14_000, 23_000] {
        assert_eq!(hb(&mut c, t, 2, &a), NONE);
    }
    assert_eq!(c.next_deadline(), Some(30_000));
    let out = c.tick(30_000);
    assert_eq!(sync_for(&out, 13).error_code, REBALANCE_IN_PROGRESS);
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
    assert_eq!(hb(&mut c, 30_001, 2, &a), UNKNOWN_MEMBER_ID);
    let out = c.join(30_002, 14, join_req(&b, "b", &["range"]));
    let jb = join_for(&out, 14);
    assert_eq!((jb.generation_id, jb.leader.as_str()), (3, b.as_str()));
}

#[test]
fn validate_commit_cases() {
    let mut c = Coordinator::new(cfg(0));
    // Standalone consumer on an unknown group: allowed, group created Empty.
    assert_eq!(c.validate_commit(0, "solo", -1, "", None), Ok(()));
    assert_eq!(c.describe("solo").state, GroupState::Empty);
    assert_eq!(c.validate_commit(0, "unknown", 3, "", None), Err(ILLEGAL_GENERATION));
    assert_eq!(c.validate_commit(0, "solo", 0, "m", None), Err(UNKNOWN_MEMBER_ID));
    let (a, b) = stable_pair(&mut c, 0);
    assert_eq!(c.validate_commit(1, G, 2, &a, None), Ok(()));
    assert_eq!(c.validate_commit(1, G, 1, &a, None), Err(ILLEGAL_GENERATION));
    assert_eq!(c.validate_commit(1, G, 2, "ghost", None), Err(UNKNOWN_MEMBER_ID));
    assert_eq!(c.validate_commit(1, G, -1, "", None), Err(UNKNOWN_MEMBER_ID), "non-empty group");
    assert_eq!(c.validate_commit(1, G, 2, &a, Some("inst")), Err(UNKNOWN_MEMBER_ID));
    // PreparingRebalance: the current generation may still commit (as Kafka).
    c.join(2, 20, join_req(&b, "b", &["range", "rr"]));
    assert_eq!(c.describe(G).state, GroupState::PreparingRebalance);
    assert_eq!(c.validate_commit(3, G, 2, &a, None), Ok(()));
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    c.join(4, 21, join_req(&a, "a", &["range"]));
    assert_eq!(c.describe(G).state, GroupState::CompletingRebalance);
    assert_eq!(c.validate_commit(5, G, 3, &a, None), Err(REBALANCE_IN_PROGRESS));
    assert_eq!(c.validate_commit(5, G, 2, &a, None), Err(ILLEGAL_GENERATION));
}

#[test]
fn delete_only_empty_groups() {
    let mut c = Coordinator::new(cfg(0));
    assert_eq!(c.delete("nope"), GROUP_ID_NOT_FOUND);
    let a = stable_single(&mut c, 0);
    assert_eq!(c.delete(G), NON_EMPTY_GROUP);
    c.leave(1, G, vec![LeaveMember { member_id: a, group_instance_id: None }]);
    assert_eq!(c.describe(G).state, GroupState::Empty);
    assert_eq!(c.delete(G), NONE);
    assert_eq!(c.describe(G).state, GroupState::Dead);
    assert_eq!(c.describe(G).error_code, NONE);
    assert_eq!(c.delete(G), GROUP_ID_NOT_FOUND);
}

fn subscription(topics: &[&str]) -> Bytes {
    crate::consumer_protocol::encode_subscription(topics)
}

#[test]
fn subscribed_topics_come_from_the_selected_protocol() {
    let mut c = Coordinator::new(cfg(0));
    assert_eq!(c.subscribed_topics(G), None, "unknown group");
    let a = get_member_id(&mut c, 0, 1, "a");
    let mut req = join_req(&a, "a", &["range", "roundrobin"]);
    req.protocols[0].metadata = subscription(&["orders", "payments"]);
    req.protocols[1].metadata = subscription(&["ignored"]);
    c.join(0, 2, req);
    let b = get_member_id(&mut c, 0, 3, "b");
    let mut req = join_req(&b, "b", &["range"]);
    req.protocols[0].metadata = subscription(&["audit"]);
    c.join(0, 4, req);
    let out = c.join(0, 5, join_req(&a, "a", &["range", "roundrobin"]));
    let j = join_for(&out, 5);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    // Member a's rejoin above replaced its metadata with the placeholder, which does not decode.
    assert_eq!(c.subscribed_topics(G), None);
    let mut req = join_req(&a, "a", &["range"]);
    req.protocols[0].metadata = subscription(&["orders", "payments"]);
    c.join(0, 6, req);
    let mut req = join_req(&b, "b", &["range"]);
    req.protocols[0].metadata = subscription(&["audit"]);
    c.join(0, 7, req);
    let topics: Vec<String> = c.subscribed_topics(G).map(|t| t.into_iter().collect()).unwrap_or_default();
    assert_eq!(topics, ["audit", "orders", "payments"]);

    // Another protocol type: not known.
    let mut other = Coordinator::new(cfg(0));
    let m = get_member_id(&mut other, 0, 1, "m");
    let mut req = join_req(&m, "m", &["range"]);
    req.protocol_type = "connect".into();
    req.protocols[0].metadata = subscription(&["orders"]);
    other.join(0, 2, req);
    assert_eq!(other.subscribed_topics(G), None);
}

#[test]
fn list_and_describe() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    c.validate_commit(0, "solo", -1, "", None).ok();
    let all = c.list(&[]);
    assert_eq!(all.iter().map(|l| l.group_id.as_str()).collect::<Vec<_>>(), vec!["g", "solo"]);
    let stable = c.list(&["stable".to_string()]);
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].protocol_type, "consumer");
    assert!(c.list(&["Bogus".to_string()]).is_empty());
    let d = c.describe(G);
    assert_eq!(d.state.as_str(), "Stable");
    assert_eq!(d.protocol_name, "range");
    assert_eq!(d.members[0].member_id, a);
    assert_eq!(d.members[0].client_id, "a");
    assert_eq!(d.members[0].client_host, "/127.0.0.1");
    assert_eq!(d.members[0].assignment, Bytes::from("A1"));
    assert_eq!(d.members[0].metadata, Bytes::from("meta-range"));
}

#[test]
fn load_restores_stable_group_after_failover() {
    let mut c = Coordinator::new(cfg(0));
    let (a, b) = stable_pair(&mut c, 0);
    let snap = c.snapshot(G).expect("group exists");
    let bytes = snap.encode();
    let decoded = GroupSnapshot::decode(&bytes).expect("decodes");
    assert_eq!(decoded, snap);

    let mut n = Coordinator::new(cfg(0));
    n.set_member_id_epoch(1);
    assert!(n.load(50_000, G, decoded).is_empty());
    assert_eq!(n.describe(G).state, GroupState::Stable);
    assert_eq!(hb(&mut n, 55_000, 2, &a), NONE);
    let out = n.sync(56_000, 1, sync_req(2, &b, &[]));
    assert_eq!(sync_for(&out, 1).assignment, Bytes::from("B2"));
    // Sessions run from the last heartbeat/sync: a's ends first.
    assert!(n.tick(64_999).is_empty());
    n.tick(65_000);
    assert_eq!(n.describe(G).members.len(), 1);
    assert_eq!(n.describe(G).state, GroupState::PreparingRebalance);
    // New ids from the new coordinator carry its epoch.
    let id = get_member_id(&mut n, 65_001, 9, "c");
    assert!(id.starts_with("c-1-"), "{id}");
}

#[test]
fn unload_answers_waiting_requests() {
    let mut c = Coordinator::new(cfg(0));
    let a = stable_single(&mut c, 0);
    c.join(1, 5, join_req(&a, "a", &["range", "rr"]));
    let b = get_member_id(&mut c, 1, 6, "b");
    let out = c.join(1, 7, join_req(&b, "b", &["range"]));
    // a was the only member and rejoined: generation 2 completed with a; b then triggered 3.
    let _ = out;
    let out = c.unload(G);
    for (_, r) in joins(&out) {
        assert_eq!(r.error_code, NOT_COORDINATOR);
    }
    assert_eq!(c.describe(G).state, GroupState::Dead);
}

#[test]
fn snapshot_round_trip_and_rejects_trailing_bytes() {
    let s = GroupSnapshot {
        protocol_type: "consumer".into(),
        generation: 7,
        protocol_name: Some("range".into()),
        leader: None,
        state: GroupState::Stable,
        members: vec![MemberSnapshot {
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 1,
            session_timeout_ms: 2,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::new(),
        }],
    };
    let mut bytes = s.encode();
    assert_eq!(GroupSnapshot::decode(&bytes), Ok(s));
    bytes.push(0);
    assert_eq!(GroupSnapshot::decode(&bytes), Err(SnapshotDecodeError::TrailingBytes(1)));
    assert_eq!(GroupSnapshot::decode(&[0, 9]), Err(SnapshotDecodeError::UnsupportedVersion(9)));
    // A huge claimed member count fails before allocating.
    let mut huge = GroupSnapshot { members: vec![], ..GroupSnapshot::decode(&bytes[..bytes.len() - 1]).unwrap_or_else(|_| unreachable!()) }.encode();
    let n = huge.len();
    huge[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(GroupSnapshot::decode(&huge), Err(SnapshotDecodeError::Truncated));
}

fn arb_snapshot() -> impl Strategy<Value = GroupSnapshot> {
    let member = (
        ".{0,8}",
        proptest::option::of(".{0,8}"),
        ".{0,4}",
        ".{0,4}",
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..8),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(m, i, c, h, r, s, sub, a)| MemberSnapshot {
            member_id: m,
            group_instance_id: i,
            client_id: c,
            client_host: h,
            rebalance_timeout_ms: r,
            session_timeout_ms: s,
            subscription: Bytes::from(sub),
            assignment: Bytes::from(a),
        });
    (
        ".{0,8}",
        any::<i32>(),
        proptest::option::of(".{0,8}"),
        proptest::option::of(".{0,8}"),
        prop_oneof![Just(GroupState::Empty), Just(GroupState::Stable), Just(GroupState::Dead)],
        proptest::collection::vec(member, 0..4),
    )
        .prop_map(|(t, g, p, l, st, members)| GroupSnapshot {
            protocol_type: t,
            generation: g,
            protocol_name: p,
            leader: l,
            state: st,
            members,
        })
}

proptest! {
    // Regressions are kept as scenario tests instead of files outside this module.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_encode_decode_round_trip(s in arb_snapshot()) {
        prop_assert_eq!(GroupSnapshot::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn snapshot_decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = GroupSnapshot::decode(&bytes);
    }

    #[test]
    fn snapshot_decode_never_panics_on_corrupted_snapshot(
        s in arb_snapshot(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()
    ) {
        let mut bytes = s.encode();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        // Whatever decodes must also load without panicking.
        if let Ok(snap) = GroupSnapshot::decode(&bytes) {
            let mut c = Coordinator::new(cfg(0));
            c.load(0, G, snap);
            c.tick(1_000_000);
        }
    }
}

// ---- Random runs: protocol invariants -------------------------------------------------------

/// A client of the random runs, acting as a (sloppy) Kafka consumer would.
#[derive(Debug, Default, Clone)]
struct SimClient {
    instance: Option<String>,
    member_id: String,
    generation: i32,
    /// Member ids the client saw as leader of its generation (to build assignments).
    members: Vec<String>,
    leader: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Join { client: usize, variant: usize, version: i16 },
    Sync { client: usize },
    Heartbeat { client: usize },
    Leave { client: usize },
    Commit { client: usize },
    Tick { dt: i64 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let client = 0..4usize;
    prop_oneof![
        4 => (client.clone(), 0..4usize, prop_oneof![Just(3i16), Just(5), Just(9)])
            .prop_map(|(client, variant, version)| Op::Join { client, variant, version }),
        3 => client.clone().prop_map(|client| Op::Sync { client }),
        2 => client.clone().prop_map(|client| Op::Heartbeat { client }),
        1 => client.clone().prop_map(|client| Op::Leave { client }),
        1 => client.prop_map(|client| Op::Commit { client }),
        3 => (0..40_000i64).prop_map(|dt| Op::Tick { dt }),
    ]
}

struct Checker {
    outstanding: std::collections::BTreeSet<u64>,
    /// member id → client index, learned from every answer that names a member id.
    owner: std::collections::BTreeMap<String, usize>,
    /// generation → leader's client index.
    leaders: std::collections::BTreeMap<i32, usize>,
    max_generation: i32,
}

impl Checker {
    /// Checks one call's effects; `token_client` maps tokens to the client that sent them.
    fn absorb(
        &mut self,
        c: &Coordinator,
        effects: &[Effect],
        token_client: &std::collections::BTreeMap<u64, usize>,
        clients: &mut [SimClient],
    ) {
        for e in effects {
            if let Effect::Join { token, response } = e {
                if !response.member_id.is_empty() {
                    self.owner.insert(response.member_id.clone(), token_client[token]);
                }
            }
        }
        let group = c.describe(G);
        for e in effects {
            match e {
                Effect::Join { token, response } => {
                    assert!(self.outstanding.remove(token), "join token {token} answered twice or never asked");
                    let k = token_client[token];
                    let cl = &mut clients[k];
                    match response.error_code {
                        NONE => {
                            assert!(
                                group.members.iter().any(|m| m.member_id == response.member_id),
                                "join answer names {} which is not a member: {group:?}",
                                response.member_id
                            );
                            assert!(response.generation_id <= c.generation(G).map_or(0, |g| g.0));
                            let leader = *self.owner.get(&response.leader).expect("leader id was issued to a client");
                            let prev = *self.leaders.entry(response.generation_id).or_insert(leader);
                            assert_eq!(prev, leader, "two leaders in generation {}", response.generation_id);
                            cl.member_id = response.member_id.clone();
                            cl.generation = response.generation_id;
                            cl.leader = response.leader == response.member_id;
                            cl.members = response.members.iter().map(|m| m.member_id.clone()).collect();
                        }
                        MEMBER_ID_REQUIRED => cl.member_id = response.member_id.clone(),
                        UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID => cl.member_id.clear(),
                        _ => {}
                    }
                }
                Effect::Sync { token, response } => {
                    assert!(self.outstanding.remove(token), "sync token {token} answered twice or never asked");
                    let k = token_client[token];
                    if response.error_code == NONE && !response.assignment.is_empty() {
                        // An assignment reaches only the client the leader meant it for.
                        assert_eq!(response.assignment, Bytes::from(format!("client{k}")));
                    }
                }
                Effect::Persist { snapshot, .. } => {
                    let decoded = GroupSnapshot::decode(&snapshot.encode());
                    assert_eq!(decoded.as_ref(), Ok(snapshot));
                }
            }
        }
        if let Some((generation, _)) = c.generation(G) {
            assert!(generation >= self.max_generation, "generation went back");
            self.max_generation = generation;
        }
    }
}

fn run_ops(ops: Vec<Op>, initial_delay_ms: i32, rebalance_ms: i32, statics: usize) {
    let mut c = Coordinator::new(cfg(initial_delay_ms));
    let mut clients: Vec<SimClient> = (0..4)
        .map(|i| SimClient { instance: (i < statics).then(|| format!("inst{i}")), ..SimClient::default() })
        .collect();
    let mut checker = Checker {
        outstanding: Default::default(),
        owner: Default::default(),
        leaders: Default::default(),
        max_generation: 0,
    };
    let mut token_client = std::collections::BTreeMap::new();
    let mut next_token = 0u64;
    let mut now = 0i64;
    let variants: [&[&str]; 4] = [&["range"], &["range", "rr"], &["rr", "range"], &["rr"]];
    for op in ops {
        now += 10;
        if !matches!(op, Op::Tick { .. }) {
            // Fire due timers first, as the server's timer would: otherwise an answer emitted by
            // a timer inside the call could name a member the request itself then replaces, and
            // the check below could not tell the two apart.
            let out = c.tick(now);
            checker.absorb(&c, &out, &token_client, &mut clients);
        }
        let effects = match op {
            Op::Join { client, variant, version } => {
                next_token += 1;
                token_client.insert(next_token, client);
                checker.outstanding.insert(next_token);
                let cl = &clients[client];
                let mut req = join_req(&cl.member_id, &format!("client{client}"), variants[variant]);
                req.version = version;
                req.rebalance_timeout_ms = rebalance_ms;
                req.group_instance_id = cl.instance.clone();
                c.join(now, next_token, req)
            }
            Op::Sync { client } => {
                next_token += 1;
                token_client.insert(next_token, client);
                checker.outstanding.insert(next_token);
                let cl = &clients[client];
                let mut req = sync_req(cl.generation, &cl.member_id, &[]);
                req.group_instance_id = cl.instance.clone();
                if cl.leader {
                    req.assignments = cl
                        .members
                        .iter()
                        .filter_map(|m| checker.owner.get(m).map(|k| (m, *k)))
                        .map(|(m, k)| SyncAssignment { member_id: m.clone(), assignment: Bytes::from(format!("client{k}")) })
                        .collect();
                }
                c.sync(now, next_token, req)
            }
            Op::Heartbeat { client } => {
                let cl = &clients[client];
                let (code, out) = c.heartbeat(
                    now,
                    HeartbeatRequest {
                        group_id: G.into(),
                        generation_id: cl.generation,
                        member_id: cl.member_id.clone(),
                        group_instance_id: cl.instance.clone(),
                    },
                );
                if code == UNKNOWN_MEMBER_ID {
                    clients[client].member_id.clear();
                }
                out
            }
            Op::Leave { client } => {
                let cl = &clients[client];
                let lm = LeaveMember { member_id: cl.member_id.clone(), group_instance_id: cl.instance.clone() };
                let (_, _, out) = c.leave(now, G, vec![lm]);
                clients[client].member_id.clear();
                out
            }
            Op::Commit { client } => {
                let cl = &clients[client];
                let _ = c.validate_commit(now, G, cl.generation, &cl.member_id, cl.instance.as_deref());
                Vec::new()
            }
            Op::Tick { dt } => {
                now += dt;
                c.tick(now)
            }
        };
        checker.absorb(&c, &effects, &token_client, &mut clients);
    }
    // Everyone goes quiet: every waiting request must be answered once the deadlines pass.
    for _ in 0..20 {
        now += 100_000;
        let out = c.tick(now);
        checker.absorb(&c, &out, &token_client, &mut clients);
    }
    assert!(checker.outstanding.is_empty(), "never answered: {:?}", checker.outstanding);
    assert_eq!(c.describe(G).members.len(), 0, "all sessions expired");
    assert_eq!(c.next_deadline(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_group_invariants(
        ops in proptest::collection::vec(arb_op(), 1..120),
        initial_delay_ms in prop_oneof![Just(0), Just(3_000)],
        rebalance_ms in prop_oneof![Just(0), Just(1_000), Just(20_000)],
        statics in 0..3usize,
    ) {
        run_ops(ops, initial_delay_ms, rebalance_ms, statics);
    }
}

#[test]
fn completed_rebalances_count_join_phases_and_survive_unloading() {
    let mut c = Coordinator::new(cfg(0));
    assert_eq!(c.completed_rebalances(), 0);
    stable_pair(&mut c, 0);
    assert_eq!(c.completed_rebalances(), 2, "generations 1 and 2");
    let snapshot = c.snapshot(G).expect("group held");
    c.unload(G);
    assert_eq!(c.completed_rebalances(), 2, "an unloaded group's rebalances still count");
    c.load(0, G, snapshot);
    assert_eq!(c.completed_rebalances(), 2, "loading is not a rebalance");
}
