//! OffsetForLeaderEpoch (key 23), single-node answer: the only leader epoch is 0, so epoch 0 ends
//! at the log end; a later epoch is unknown (-1/-1); a current epoch above ours is
//! UNKNOWN_LEADER_EPOCH. Replication will answer from the leader-epoch cache instead.

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
                // Until leadership moves between replicas there is one epoch per partition
                // life; its end is the log end.
                Ok(partition) => match partition.offsets() {
                    Ok(o) if p.leader_epoch == partition.leader_epoch() => {
                        e.leader_epoch = partition.leader_epoch();
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
