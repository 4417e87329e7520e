//! OffsetFetch (key 9): committed offsets of a group (v0-7: one group; v8+: several). A partition
//! without a commit gets offset -1 and empty metadata; a null topic list means every partition
//! the group has committed.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::errors;

/// `(topic, [(partition, offset, leader epoch, metadata)])` for the requested partitions.
type Fetched = Vec<(String, Vec<(i32, i64, i32, String)>)>;

fn fetch(broker: &Broker, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Fetched {
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let rows = parts
                    .into_iter()
                    .map(|p| match broker.offsets.get(group, &t, p) {
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata),
                        None => (p, -1, -1, String::new()),
                    })
                    .collect();
                (t, rows)
            })
            .collect(),
        None => {
            let mut out: Fetched = Vec::new();
            for ((t, p), c) in broker.offsets.group_offsets(group) {
                match out.last_mut() {
                    Some((lt, rows)) if *lt == t => rows.push((p, c.offset, c.leader_epoch, c.metadata)),
                    _ => out.push((t, vec![(p, c.offset, c.leader_epoch, c.metadata)])),
                }
            }
            out
        }
    }
}

pub fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version < 8 {
        if let Err(code) = broker.coordination(req.group_id.0.as_str()) {
            // The top-level error code exists from v2; below it the client sees no offsets.
            resp.error_code = if version >= 2 { code } else { errors::NONE };
            return resp;
        }
        let topics = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        for (t, rows) in fetch(broker, &req.group_id.0, topics) {
            let mut tr = OffsetFetchResponseTopic::default();
            tr.name = TopicName(sb(t));
            for (p, offset, epoch, metadata) in rows {
                let mut pr = OffsetFetchResponsePartition::default();
                pr.partition_index = p;
                pr.committed_offset = offset;
                pr.committed_leader_epoch = if version >= 5 { epoch } else { -1 };
                pr.metadata = Some(sb(metadata));
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        return resp;
    }
    for g in req.groups {
        let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let mut gr = OffsetFetchResponseGroup::default();
        gr.group_id = g.group_id.clone();
        if let Err(code) = broker.coordination(g.group_id.0.as_str()) {
            gr.error_code = code;
            resp.groups.push(gr);
            continue;
        }
        for (t, rows) in fetch(broker, &g.group_id.0, topics) {
            let mut tr = OffsetFetchResponseTopics::default();
            if version >= 10 {
                tr.topic_id = broker.topic(&t).map(|x| x.id).unwrap_or_default();
            }
            tr.name = TopicName(sb(t));
            for (p, offset, epoch, metadata) in rows {
                let mut pr = OffsetFetchResponsePartitions::default();
                pr.partition_index = p;
                pr.committed_offset = offset;
                pr.committed_leader_epoch = epoch;
                pr.metadata = Some(sb(metadata));
                tr.partitions.push(pr);
            }
            gr.topics.push(tr);
        }
        resp.groups.push(gr);
    }
    resp
}
