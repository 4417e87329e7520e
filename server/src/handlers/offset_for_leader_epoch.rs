//! OffsetForLeaderEpoch (key 23), single-node answer: the only leader epoch is 0, so epoch 0 ends
//! at the log end; a later epoch is unknown (-1/-1); a current epoch above ours is
//! UNKNOWN_LEADER_EPOCH. Replication will answer from the leader-epoch cache instead.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::errors;

pub fn handle(broker: &Arc<Broker>, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            match broker.partition(&t.topic.0, p.partition) {
                None => e.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                Some(_) if p.current_leader_epoch > 0 => e.error_code = errors::UNKNOWN_LEADER_EPOCH,
                Some(partition) => match partition.offsets() {
                    Ok(o) if p.leader_epoch == 0 => {
                        e.leader_epoch = 0;
                        e.end_offset = o.log_end;
                    }
                    Ok(_) => {}
                    Err(err) => e.error_code = err.code(),
                },
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}
