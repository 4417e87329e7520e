//! OffsetForLeaderEpoch (key 23): where a leader epoch ends in the leader's log, from its leader
//! epoch cache (Kafka's `endOffsetFor`): the current epoch ends at the log end; an older one at
//! the start of the next epoch the log has, answered with the largest epoch at or below the one
//! asked; an epoch below every epoch the log has is answered with the first one's start. Clients
//! use it after a leader change to check that their position is still in the log (KIP-320).
//! A current epoch above ours is UNKNOWN_LEADER_EPOCH, below it FENCED_LEADER_EPOCH.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;

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
            match broker.leader_partition(&t.topic.0, p.partition, p.current_leader_epoch) {
                Err(not_served) => e.error_code = not_served.code,
                Ok(partition) => match partition.with_log_mut(|log, _| Ok(log.epoch_end_offset(p.leader_epoch))) {
                    Ok((epoch, end)) => {
                        e.leader_epoch = epoch;
                        e.end_offset = end;
                    }
                    Err(err) => e.error_code = err.code(),
                },
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}
