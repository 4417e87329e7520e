//! The committed ISR holds every acknowledged write: whenever a partition leader acknowledged an
//! acks=all write on the scenario's topic, every member of the ISR the metadata had committed by
//! then held the acknowledged batch durably (see `ack_replicas`). The controller may elect any
//! of them; one lacking the write would lose it. This fails a seed at the acknowledgement, before
//! any fault has to elect the replica that lacks it.

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("committed-isr-holds", "acks=all writes acknowledged while members of the committed ISR lacked them");
    for l in &c.isr_lacking {
        f.add(format!(
            "p{} below offset {} acknowledged by node {} at {:?}: committed ISR {:?} (metadata offset {}), nodes {:?} lack it",
            l.partition, l.end_offset, l.node_id, l.at, l.isr, l.metadata_offset, l.lacking
        ));
    }
    f.into_violation()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{ClusterData, IsrLacking};
    use crate::knobs::Durability;

    #[test]
    fn an_isr_member_lacking_an_acknowledged_write_is_caught() {
        let l = IsrLacking { at: Duration::from_millis(3), node_id: 1, partition: 0, end_offset: 9, isr: vec![1, 2, 3], metadata_offset: 40, lacking: vec![3] };
        let h = HistoryData { cluster: Some(ClusterData { isr_lacking: vec![l], ..ClusterData::default() }), ..HistoryData::default() };
        let v = check(&h, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) }).expect("caught");
        assert!(v.message.contains("committed ISR [1, 2, 3] (metadata offset 40), nodes [3] lack it"), "{v}");
        assert_eq!(check(&HistoryData { cluster: Some(ClusterData::default()), ..HistoryData::default() }, &CheckContext { durability: Durability::Fsync, liveness_bound: Duration::from_secs(30) }), None);
    }
}
