//! The high watermark is held by every replica the controller may elect: whenever the leader
//! the newest committed metadata names moved its high watermark on the scenario's topic, every
//! member of the committed ISR and of the eligible leader replicas (KIP-966) held the batch just
//! below it, with the leader's bytes (see `ack_replicas`). Consumers read up to the high
//! watermark, acks=1 writes included; a replica lacking what is below it could be elected and
//! take back what a consumer has read. This fails a seed when the watermark moves, before a
//! fault has to elect that replica.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("hw-held", "high watermark moves past records that a replica the controller may elect lacked");
    for l in &c.hw_lacking {
        f.add(format!(
            "p{} high watermark {} moved by node {} at {:?}: committed ISR+ELR {:?} (metadata offset {}), nodes {:?} lack the batch below it",
            l.partition, l.high_watermark, l.node_id, l.at, l.electable, l.metadata_offset, l.lacking
        ));
    }
    f.into_violation()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, HwLacking};
    use crate::knobs::Durability;

    #[test]
    fn a_high_watermark_past_an_eligible_replica_is_caught() {
        let ctx = CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) };
        let l = HwLacking { at: Duration::from_millis(3), node_id: 1, partition: 2, high_watermark: 14, electable: vec![1, 3], metadata_offset: 40, lacking: vec![3] };
        let h = HistoryData { cluster: Some(ClusterData { hw_lacking: vec![l], ..ClusterData::default() }), ..HistoryData::default() };
        let v = check(&h, &ctx).expect("caught");
        assert!(v.message.contains("p2 high watermark 14 moved by node 1") && v.message.contains("nodes [3] lack"), "{v}");
        assert_eq!(check(&HistoryData { cluster: Some(ClusterData::default()), ..HistoryData::default() }, &ctx), None);
    }
}
