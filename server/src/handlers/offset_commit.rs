//! OffsetCommit (key 8): validate the committer against the group (generation, member, static
//! instance), then write the offsets to `__consumer_offsets` and answer once they are durable.
//! Standalone consumers (generation -1, no member id) may commit to an empty group.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::offsets::{CommittedOffset, OFFSET_METADATA_BYTES_MAX};
use crate::broker::Broker;
use crate::errors;

pub async fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let now = broker.clock.monotonic_ms() as i64;
    let verdict = if group.is_empty() {
        Err(errors::INVALID_GROUP_ID)
    } else if let Err(code) = broker.coordination(&group) {
        Err(code)
    } else {
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        broker.groups.with(|c| {
            (c.validate_commit(now, &group, req.generation_id_or_member_epoch, req.member_id.as_str(), instance.as_deref()), Vec::new())
        })
    };
    let wall = broker.clock.wall_ms();
    let mut resp = OffsetCommitResponse::default();
    let mut entries = Vec::new();
    // (topic index, partition index) of entries to be written.
    let mut written = Vec::new();
    for t in &req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        tr.topic_id = t.topic_id;
        for p in &t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            pr.error_code = match verdict {
                Err(code) => code,
                Ok(()) if metadata.len() > OFFSET_METADATA_BYTES_MAX => errors::OFFSET_METADATA_TOO_LARGE,
                Ok(()) if broker.image().partition(&t.name.0, p.partition_index).is_none() => errors::UNKNOWN_TOPIC_OR_PARTITION,
                Ok(()) => {
                    written.push((resp.topics.len(), tr.partitions.len()));
                    entries.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        CommittedOffset { offset: p.committed_offset, leader_epoch: p.committed_leader_epoch, metadata, commit_timestamp_ms: wall },
                    ));
                    errors::NONE
                }
            };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if !entries.is_empty() {
        if let Err(code) = broker.commit_offsets(&group, entries).await {
            for (t, p) in written {
                resp.topics[t].partitions[p].error_code = code;
            }
        }
    }
    resp
}
