//! JoinGroup (11), SyncGroup (14), Heartbeat (12) and LeaveGroup (13): translate between the
//! wire messages and the group coordinator (`gregor_core::group`), which holds all the rules.
//! Join and Sync answer later, when the coordinator completes the rebalance step. A broker that
//! does not lead the group's offsets partition answers NOT_COORDINATOR.

use std::sync::Arc;

use gregor_core::group::{HeartbeatRequest as CoreHeartbeat, JoinProtocol, JoinRequest, LeaveMember, SyncAssignment, SyncRequest};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ResponseKind,
    SyncGroupRequest, SyncGroupResponse,
};

use super::{sb, Reply};
use crate::broker::Broker;

fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|x| x.to_string()).filter(|x| !x.is_empty())
}

pub fn join(broker: &Arc<Broker>, req: JoinGroupRequest, version: i16, client_id: String, client_host: String) -> Reply {
    if let Err(code) = broker.coordination(req.group_id.0.as_str()) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = code;
        resp.generation_id = -1;
        resp.member_id = req.member_id.clone();
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = if version < 7 { Some(sb("")) } else { None };
        return Reply::Now(ResponseKind::JoinGroup(resp));
    }
    let core = JoinRequest {
        version,
        group_id: req.group_id.0.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 { req.session_timeout_ms } else { req.rebalance_timeout_ms },
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| JoinProtocol { name: p.name.to_string(), metadata: p.metadata.clone() }).collect(),
        client_id,
        client_host,
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let now = broker.clock.monotonic_ms() as i64;
        let r = broker.groups.join(now, core).await;
        let mut resp = JoinGroupResponse::default();
        resp.error_code = r.error_code;
        resp.generation_id = r.generation_id;
        resp.protocol_type = if version >= 7 { r.protocol_type.map(sb) } else { None };
        resp.protocol_name = match r.protocol_name {
            Some(n) => Some(sb(n)),
            // Before v7 the field is not nullable.
            None if version < 7 => Some(sb("")),
            None => None,
        };
        resp.leader = sb(r.leader);
        resp.skip_assignment = version >= 9 && r.skip_assignment;
        resp.member_id = sb(r.member_id);
        resp.members = r
            .members
            .into_iter()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = sb(m.member_id);
                jm.group_instance_id = if version >= 5 { m.group_instance_id.map(sb) } else { None };
                jm.metadata = m.metadata;
                jm
            })
            .collect();
        ResponseKind::JoinGroup(resp)
    }))
}

pub fn sync(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> Reply {
    if let Err(code) = broker.coordination(req.group_id.0.as_str()) {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = code;
        return Reply::Now(ResponseKind::SyncGroup(resp));
    }
    let core = SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req.assignments.iter().map(|a| SyncAssignment { member_id: a.member_id.to_string(), assignment: a.assignment.clone() }).collect(),
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let now = broker.clock.monotonic_ms() as i64;
        let r = broker.groups.sync(now, core).await;
        let mut resp = SyncGroupResponse::default();
        resp.error_code = r.error_code;
        if version >= 5 {
            resp.protocol_type = r.protocol_type.map(sb);
            resp.protocol_name = r.protocol_name.map(sb);
        }
        resp.assignment = r.assignment;
        ResponseKind::SyncGroup(resp)
    }))
}

pub fn heartbeat(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    let now = broker.clock.monotonic_ms() as i64;
    let core = CoreHeartbeat {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
    };
    let code = match broker.coordination(&core.group_id) {
        Ok(()) => broker.groups.with(|c| c.heartbeat(now, core)),
        Err(code) => code,
    };
    let mut resp = HeartbeatResponse::default();
    resp.error_code = code;
    resp
}

pub fn leave(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let now = broker.clock.monotonic_ms() as i64;
    let members: Vec<LeaveMember> = if version >= 3 {
        req.members.iter().map(|m| LeaveMember { member_id: m.member_id.to_string(), group_instance_id: opt(&m.group_instance_id) }).collect()
    } else {
        vec![LeaveMember { member_id: req.member_id.to_string(), group_instance_id: None }]
    };
    let group = req.group_id.0.to_string();
    if let Err(code) = broker.coordination(&group) {
        let mut resp = LeaveGroupResponse::default();
        resp.error_code = code;
        return resp;
    }
    let (top, per_member) = broker.groups.with(|c| {
        let (top, per, effects) = c.leave(now, &group, members);
        ((top, per), effects)
    });
    let mut resp = LeaveGroupResponse::default();
    if version >= 3 {
        resp.error_code = top;
        resp.members = per_member
            .into_iter()
            .map(|(m, code)| {
                let mut r = MemberResponse::default();
                r.member_id = sb(m.member_id);
                r.group_instance_id = m.group_instance_id.map(sb);
                r.error_code = code;
                r
            })
            .collect();
    } else {
        resp.error_code = if top != 0 { top } else { per_member.first().map(|(_, c)| *c).unwrap_or(0) };
    }
    resp
}
