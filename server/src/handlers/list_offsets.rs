//! ListOffsets (key 2): offsets by special timestamp or by record time.
//!
//! * -1 latest: the high watermark (the log end consumers can see), not the last batch's offset.
//!   A new leader whose high watermark still lags behind the start of its epoch answers clients
//!   OFFSET_NOT_AVAILABLE instead (KIP-207), as it does a timestamp lookup it finds nothing for:
//!   its high watermark may be below the one its predecessor answered.
//! * -2 earliest and -4 earliest-local: the log start offset.
//! * -3 max timestamp: the first record carrying the largest timestamp (KIP-734).
//! * -5 latest-tiered: -1 (there is no tiered storage).
//! * t >= 0: the first record whose timestamp is >= t, found inside its batch (decompressing if
//!   needed); offset -1 and timestamp -1 when no record is that late.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::records;
use crate::broker::{Broker, Partition, PartitionError};
use crate::errors;

/// `client`: the request comes from a consumer or admin client (replica id -1), to which a
/// new leader whose high watermark still lags says OFFSET_NOT_AVAILABLE (KIP-207) rather than
/// an offset below what its predecessor answered.
fn lookup(partition: &Partition, ts: i64, client: bool) -> Result<(i64, i64), PartitionError> {
    let offsets = partition.offsets()?;
    let lagging = || if client { offsets.lagging() } else { Ok(()) };
    match ts {
        -1 => lagging().map(|()| (-1, offsets.high_watermark)),
        -2 | -4 => Ok((-1, offsets.log_start)),
        -5 => Ok((-1, -1)),
        -3 => {
            let batch = partition.with_log_mut(|log, _| log.batch_with_max_timestamp())?;
            match batch.and_then(|b| records::max_timestamp_record(&b)) {
                Some((offset, t)) if offset < offsets.high_watermark => Ok((t, offset)),
                _ => lagging().map(|()| (-1, -1)),
            }
        }
        t if t >= 0 => {
            let batch = partition.with_log_mut(|log, _| log.batch_for_timestamp(t))?;
            match batch.and_then(|b| records::first_at_or_after(&b, t)) {
                Some((offset, found)) if offset < offsets.high_watermark => Ok((found, offset.max(offsets.log_start))),
                _ => lagging().map(|()| (-1, -1)),
            }
        }
        _ => Err(PartitionError::Corrupt("invalid timestamp".into())),
    }
}

pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let client = req.replica_id.0 == -1;
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            pr.leader_epoch = -1;
            match broker.leader_partition(&t.name.0, p.partition_index, p.current_leader_epoch) {
                Err(not_served) => pr.error_code = not_served.code,
                Ok(partition) => match lookup(&partition, p.timestamp, client) {
                    Ok((ts, offset)) => {
                        pr.error_code = errors::NONE;
                        // The field exists from v4; the codec refuses non-default values below that.
                        if version >= 4 {
                            pr.leader_epoch = partition.leader_epoch();
                        }
                        pr.timestamp = ts;
                        pr.offset = offset;
                    }
                    Err(PartitionError::Corrupt(_)) => pr.error_code = errors::INVALID_REQUEST,
                    Err(e) => pr.error_code = e.code(),
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
