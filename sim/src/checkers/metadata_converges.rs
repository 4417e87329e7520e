//! Metadata converges: once the faults are healed and the quorum has settled, every broker's
//! Metadata answer (brokers, topics, partitions, leaders, leader epochs, replicas, ISR) is the
//! same (the controller id is not compared: in KRaft mode a broker names any live broker
//! there, as clients cannot reach controllers; Gregor names itself), and every topic whose
//! CreateTopics was acknowledged exists with the partitions asked. A name is created at most
//! once: two acknowledged creations of one topic (the admin client retries a creation whose
//! outcome it does not know) mean a controller validated against a stale image.

use super::{CheckContext, Findings, Violation};
use crate::history::{HistoryData, MetadataView};

fn differences(a: &MetadataView, b: &MetadataView) -> Vec<String> {
    let mut out = Vec::new();
    if a.brokers != b.brokers {
        out.push(format!("brokers {:?} vs {:?}", a.brokers.keys().collect::<Vec<_>>(), b.brokers.keys().collect::<Vec<_>>()));
    }
    for name in a.topics.keys().chain(b.topics.keys()) {
        match (a.topics.get(name), b.topics.get(name)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                for (p, px) in &x.partitions {
                    if y.partitions.get(p) != Some(px) {
                        out.push(format!("{name}-{p}: {px:?} vs {:?}", y.partitions.get(p)));
                    }
                }
                if x.partitions.len() != y.partitions.len() || x.error_code != y.error_code {
                    out.push(format!("{name}: {} partitions (error {}) vs {} (error {})", x.partitions.len(), x.error_code, y.partitions.len(), y.error_code));
                }
            }
            (Some(_), None) => out.push(format!("topic {name} only on the first")),
            (None, _) => out.push(format!("topic {name} only on the second")),
        }
    }
    out.dedup();
    out
}

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("metadata-converges", "metadata disagreements after the heal");
    if c.final_metadata.is_empty() {
        return None; // the run ended before the heal: the liveness checker reports it
    }
    let answered: Vec<(usize, &MetadataView)> = c.final_metadata.iter().filter_map(|(i, v)| Some((*i, v.as_ref()?))).collect();
    for (i, v) in &c.final_metadata {
        if v.is_none() {
            f.add(format!("node {} gave no Metadata answer after the heal", i + 1));
        }
    }
    for (topic, first, second) in &c.created_twice {
        f.add(format!("topic {topic}: creation acknowledged twice ({first} partitions, then {second})"));
    }
    if let Some((first, base)) = answered.first() {
        for (i, v) in &answered[1..] {
            for d in differences(base, v) {
                f.add(format!("node {} vs node {}: {d}", first + 1, i + 1));
            }
        }
        for (topic, partitions) in &c.created_acked {
            match base.topics.get(topic) {
                Some(t) if t.error_code == 0 && t.partitions.len() == *partitions as usize => {}
                Some(t) => f.add(format!(
                    "topic {topic}: creation with {partitions} partitions acknowledged, node {} shows {} partitions (error {})",
                    first + 1, t.partitions.len(), t.error_code
                )),
                None => f.add(format!("topic {topic}: creation acknowledged, but node {} does not know it", first + 1)),
            }
        }
    }
    f.into_violation()
}
