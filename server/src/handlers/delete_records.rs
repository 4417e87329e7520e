//! DeleteRecords (key 21): raise a partition's log start offset. Offset -1 means the high
//! watermark; an offset above the high watermark is OFFSET_OUT_OF_RANGE; one at or below the
//! current start changes nothing and reports the current low watermark.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::errors;

pub fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match broker.leader_partition(&t.name.0, p.partition_index, -1) {
                Err(not_served) => pr.error_code = not_served.code,
                Ok(partition) => {
                    let result = partition.with_log_mut(|log, hw| {
                        let target = if p.offset == -1 { hw } else { p.offset };
                        if target < 0 || target > hw {
                            return Ok(Err(errors::OFFSET_OUT_OF_RANGE));
                        }
                        if target <= log.log_start_offset() {
                            return Ok(Ok(log.log_start_offset()));
                        }
                        log.delete_records_before(target).map(Ok)
                    });
                    match result {
                        Ok(Ok(low)) => pr.low_watermark = low,
                        Ok(Err(code)) => pr.error_code = code,
                        Err(e) => pr.error_code = e.code(),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
