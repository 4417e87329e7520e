//! ListGroups (16), DescribeGroups (15), DeleteGroups (42) and OffsetDelete (47).
//!
//! Groups known only by their committed offsets (standalone consumers) are listed as Empty, as
//! Kafka does. Deleting a group removes its committed offsets and metadata from
//! `__consumer_offsets` (tombstones) and is allowed only while it is Empty. OffsetDelete, as in
//! Kafka, deletes the offsets of an Empty group freely; in a group with members it refuses, per
//! partition with GROUP_SUBSCRIBED_TO_TOPIC, the topics some member's consumer-protocol
//! subscription names, and refuses a group of another protocol type whole with NON_EMPTY_GROUP.
//! DescribeGroups, DeleteGroups and OffsetDelete are answered by the group's coordinator only
//! (NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS elsewhere); ListGroups lists the groups this
//! broker coordinates.

use std::sync::Arc;

use gregor_core::group::GroupState;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
    OffsetDeleteRequest, OffsetDeleteResponse,
};

use super::sb;
use crate::broker::Broker;
use crate::errors;

/// Every group the coordinator or the offsets store knows, with its state and protocol type.
fn all_groups(broker: &Broker) -> Vec<(String, String, GroupState)> {
    let listed = broker.groups.with(|c| (c.list(&[]), Vec::new()));
    let mut out: Vec<(String, String, GroupState)> = listed.into_iter().map(|g| (g.group_id, g.protocol_type, g.state)).collect();
    for g in broker.offsets.groups() {
        if !out.iter().any(|(id, _, _)| *id == g) {
            out.push((g, String::new(), GroupState::Empty));
        }
    }
    out.retain(|(_, _, s)| *s != GroupState::Dead);
    out.sort();
    out
}

pub fn list(broker: &Arc<Broker>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string().to_ascii_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string().to_ascii_lowercase()).collect();
    let mut resp = ListGroupsResponse::default();
    for (id, protocol_type, state) in all_groups(broker) {
        if !states.is_empty() && !states.contains(&state.as_str().to_ascii_lowercase()) {
            continue;
        }
        // Every group here uses the classic protocol.
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(sb(id));
        g.protocol_type = sb(protocol_type);
        g.group_state = sb(state.as_str());
        g.group_type = sb("classic");
        resp.groups.push(g);
    }
    resp
}

pub fn describe(broker: &Arc<Broker>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for gid in req.groups {
        let id = gid.0.to_string();
        let mut g = DescribedGroup::default();
        g.group_id = gid.clone();
        // Only the group's coordinator knows it (as Kafka: NOT_COORDINATOR elsewhere).
        if let Err(code) = broker.coordination(&id) {
            g.error_code = code;
            g.group_state = sb(GroupState::Dead.as_str());
            resp.groups.push(g);
            continue;
        }
        let d = broker.groups.with(|c| (c.describe(&id), Vec::new()));
        g.error_code = d.error_code;
        // A group with only committed offsets is Empty, not Dead.
        let state = if d.state == GroupState::Dead && broker.offsets.groups().contains(&id) { GroupState::Empty } else { d.state };
        g.group_state = sb(state.as_str());
        g.protocol_type = sb(d.protocol_type);
        g.protocol_data = sb(d.protocol_name);
        g.members = d
            .members
            .into_iter()
            .map(|m| {
                let mut dm = DescribedGroupMember::default();
                dm.member_id = sb(m.member_id);
                dm.group_instance_id = m.group_instance_id.map(sb);
                dm.client_id = sb(m.client_id);
                dm.client_host = sb(m.client_host);
                dm.member_metadata = m.metadata;
                dm.member_assignment = m.assignment;
                dm
            })
            .collect();
        resp.groups.push(g);
    }
    resp
}

pub async fn delete(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for gid in req.groups_names {
        let id = gid.0.to_string();
        if let Err(code) = broker.coordination(&id) {
            let mut r = DeletableGroupResult::default();
            r.group_id = gid;
            r.error_code = code;
            resp.results.push(r);
            continue;
        }
        let has_offsets = broker.offsets.groups().contains(&id);
        let mut code = broker.groups.with(|c| (c.delete(&id), Vec::new()));
        if code == errors::GROUP_ID_NOT_FOUND && has_offsets {
            code = errors::NONE;
        }
        if code == errors::NONE {
            let partitions: Vec<(String, i32)> = broker.offsets.group_offsets(&id).into_keys().collect();
            let result = async {
                broker.delete_offsets(&id, partitions).await?;
                broker.store_group_metadata(&id, None).await
            }
            .await;
            if let Err(c) = result {
                code = c;
            }
        }
        let mut r = DeletableGroupResult::default();
        r.group_id = gid;
        r.error_code = code;
        resp.results.push(r);
    }
    resp
}

pub async fn offset_delete(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let id = req.group_id.0.to_string();
    let mut resp = OffsetDeleteResponse::default();
    if let Err(code) = broker.coordination(&id) {
        resp.error_code = code;
        return resp;
    }
    let d = broker.groups.with(|c| (c.describe(&id), Vec::new()));
    let known = d.state != GroupState::Dead || broker.offsets.groups().contains(&id);
    if !known {
        resp.error_code = errors::GROUP_ID_NOT_FOUND;
        return resp;
    }
    if !d.members.is_empty() && d.protocol_type != gregor_core::consumer_protocol::PROTOCOL_TYPE {
        resp.error_code = errors::NON_EMPTY_GROUP;
        return resp;
    }
    let subscribed = if d.members.is_empty() { None } else { broker.groups.with(|c| (c.subscribed_topics(&id), Vec::new())) };
    let mut to_delete = Vec::new();
    for t in req.topics {
        let mut tr = OffsetDeleteResponseTopic::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = OffsetDeleteResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = if broker.image().partition(&t.name.0, p.partition_index).is_none() {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            } else if subscribed.as_ref().is_some_and(|s| s.contains(t.name.0.as_str())) {
                errors::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                to_delete.push((t.name.0.to_string(), p.partition_index));
                errors::NONE
            };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if let Err(code) = broker.delete_offsets(&id, to_delete).await {
        resp.error_code = code;
    }
    resp
}
