//! KIP-966 eligible leader replicas (ELR) on the active controller: which replicas, outside
//! the ISR, still hold every committed record and so may be elected cleanly.
//!
//! The rules, as Kafka's `PartitionChangeBuilder` applies them, here applied to every partition
//! change the controller commits ([`complete`]), so no path can forget them:
//! * While the ISR has at least `min.insync.replicas` members (never more than the partition's
//!   replicas: [`MetadataImage::min_insync_replicas`]) the ELR and the last known ELR are empty.
//! * Below that, a replica that leaves the ISR joins the ELR: the leader's high watermark does
//!   not advance while its committed ISR is below `min.insync.replicas` (see
//!   `gregor_core::replica::leader`), so what the replica held when it left is everything ever
//!   committed. A replica whose broker restarted after an unclean shutdown may have lost records
//!   (page-cache durability, a lost disk): it leaves the ELR for the last known ELR instead.
//! * A replica that (re)joins the ISR leaves the ELR; an unclean election clears both lists; the
//!   lists only ever hold replicas of the partition.
//! * When no ISR member is live, a live ELR member is elected ([`eligible_leader`]); it becomes
//!   the only ISR member and the former ISR member joins the ELR by the rule above.
//!
//! Unlike Kafka, the ISR keeps its last member when that broker is fenced (as before KIP-966):
//! under fsync-before-ack durability a broker restarted after a crash still holds every record it
//! acknowledged, so it stays electable instead of leaving the partition to an unclean election.

use std::collections::BTreeMap;

use gregor_core::metadata::{effective_min_insync, LeaderChange, MetadataImage, MetadataRecord, PartitionRegistration, TopicId, NO_LEADER, RESOURCE_TOPIC};

/// Whether broker `id` is registered and unfenced.
fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// The replica to elect when no ISR member of `reg` is live: the first live ELR member in
/// assignment order, other than `except` (a broker on its way out).
pub fn eligible_leader(image: &MetadataImage, reg: &PartitionRegistration, except: i32) -> Option<i32> {
    if reg.isr.iter().any(|r| *r != except && live(image, *r)) {
        return None;
    }
    reg.target_replicas().into_iter().find(|r| *r != except && reg.elr.contains(r) && live(image, *r))
}

/// The ELR fields `change` (a partition change of `old`) must carry, given the topic's
/// effective `min_isr` and the brokers that come back from an unclean shutdown; `None` where a
/// field stays as it is.
fn elr_fields(old: &PartitionRegistration, change: &MetadataRecord, min_isr: usize, unclean_shutdown: &[i32]) -> (Option<Vec<i32>>, Option<Vec<i32>>) {
    let MetadataRecord::PartitionChange { leader, isr, replicas, .. } = change else { return (None, None) };
    let new_isr = isr.as_ref().unwrap_or(&old.isr);
    let new_replicas = replicas.as_ref().unwrap_or(&old.replicas);
    let unclean_election = matches!(leader, LeaderChange::Set(l) if *l != NO_LEADER && !old.isr.contains(l) && !old.elr.contains(l) && isr.as_deref() == Some(&[*l][..]));
    let (elr, last_known) = if unclean_election || new_isr.len() >= min_isr {
        (Vec::new(), Vec::new())
    } else {
        let candidate = |r: &i32| (old.elr.contains(r) || old.isr.contains(r)) && !new_isr.contains(r);
        let elr: Vec<i32> = new_replicas.iter().copied().filter(|r| candidate(r) && !unclean_shutdown.contains(r)).collect();
        let last_known: Vec<i32> = new_replicas.iter().copied().filter(|r| (candidate(r) || (old.last_known_elr.contains(r) && !new_isr.contains(r))) && !elr.contains(r)).collect();
        (elr, last_known)
    };
    ((elr != old.elr).then_some(elr), (last_known != old.last_known_elr).then_some(last_known))
}

/// `records` as the controller commits them: every partition change with its ELR fields set by
/// the rules above, in order (a later change of the same partition sees the earlier ones, and
/// a `min.insync.replicas` set earlier in `records`). A change that then changes nothing is
/// dropped. `default_min_isr` is the controller's `min.insync.replicas`.
pub fn complete(image: &MetadataImage, records: Vec<MetadataRecord>, default_min_isr: i32, unclean_shutdown: &[i32]) -> Vec<MetadataRecord> {
    let mut regs: BTreeMap<(TopicId, i32), PartitionRegistration> = BTreeMap::new();
    let mut min_isr_set: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::with_capacity(records.len());
    for mut record in records {
        match &mut record {
            MetadataRecord::Config { resource_type, resource_name, name, value } if *resource_type == RESOURCE_TOPIC && name == "min.insync.replicas" => {
                min_isr_set.insert(resource_name.clone(), value.clone());
            }
            MetadataRecord::PartitionChange { topic_id, partition_id, leader, isr, replicas, adding, removing, elr, last_known_elr } => {
                let key = (*topic_id, *partition_id);
                let Some(topic) = image.topic_by_id(*topic_id) else { continue };
                let Some(old) = regs.get(&key).or_else(|| topic.partitions.get(partition_id)).cloned() else { continue };
                let new_replicas = replicas.as_ref().unwrap_or(&old.replicas).len();
                let min_isr = match min_isr_set.get(&topic.name) {
                    Some(v) => {
                        let n = v.as_deref().and_then(|v| v.trim().parse::<i32>().ok()).unwrap_or(default_min_isr);
                        effective_min_insync(usize::try_from(n).unwrap_or(1), new_replicas)
                    }
                    None => image.min_insync_replicas(&topic.name, default_min_isr, new_replicas),
                };
                let change = MetadataRecord::PartitionChange { topic_id: *topic_id, partition_id: *partition_id, leader: *leader, isr: isr.clone(), replicas: replicas.clone(), adding: adding.clone(), removing: removing.clone(), elr: None, last_known_elr: None };
                (*elr, *last_known_elr) = elr_fields(&old, &change, min_isr, unclean_shutdown);
                let no_op = matches!(leader, LeaderChange::Keep) && [&*isr, &*replicas, &*adding, &*removing, &*elr, &*last_known_elr].iter().all(|f| f.is_none());
                if no_op {
                    continue;
                }
                // A change that does not apply is committed as it is: every node refuses it alike.
                if let Ok(new) = old.changed(&record) {
                    regs.insert(key, new);
                }
            }
            _ => {}
        }
        out.push(record);
    }
    out
}

/// Changes that re-apply the ELR rules to every partition of `topic` with an ELR or last known
/// ELR (for a new `min.insync.replicas`: [`complete`] fills them in, or drops them).
pub fn recheck_topic(image: &MetadataImage, topic: &str) -> Vec<MetadataRecord> {
    let Some(t) = image.topic(topic) else { return Vec::new() };
    t.partitions
        .iter()
        .filter(|(_, reg)| !reg.elr.is_empty() || !reg.last_known_elr.is_empty())
        .map(|(p, _)| MetadataRecord::PartitionChange { topic_id: t.id, partition_id: *p, leader: LeaderChange::Keep, isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None })
        .collect()
}

/// Changes that re-apply the ELR rules to every partition where broker `id` is an eligible
/// leader replica (after its unclean shutdown: [`complete`] moves it to the last known ELR).
pub fn recheck_broker(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().filter(|(_, reg)| reg.elr.contains(&id)).map(|(p, _)| (t.id, *p)))
        .map(|(topic_id, partition_id)| MetadataRecord::PartitionChange { topic_id, partition_id, leader: LeaderChange::Keep, isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::metadata::MetadataDelta;

    fn image(isr: &[i32], elr: &[i32], leader: i32, fenced: &[i32], min_isr: &str) -> MetadataImage {
        let mut image = MetadataImage::new();
        let mut d = MetadataDelta::default();
        let mut off = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            off += 1;
            image.apply(off, &r, &mut d).unwrap();
        };
        for id in 1..=3 {
            apply(&mut image, MetadataRecord::RegisterBroker { broker_id: id, incarnation_id: 1, broker_epoch: 1, endpoints: vec![], rack: None, fenced: fenced.contains(&id) });
        }
        apply(&mut image, MetadataRecord::Topic { name: "t".into(), topic_id: 7 });
        apply(&mut image, MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: "t".into(), name: "min.insync.replicas".into(), value: Some(min_isr.into()) });
        let p = MetadataRecord::Partition { topic_id: 7, partition_id: 0, replicas: vec![1, 2, 3], isr: isr.to_vec(), leader, leader_epoch: 2, partition_epoch: 2, adding: vec![], removing: vec![], elr: elr.to_vec(), last_known_elr: vec![] };
        apply(&mut image, p);
        image
    }

    fn isr_change(isr: &[i32]) -> MetadataRecord {
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Keep, isr: Some(isr.to_vec()), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }
    }

    fn elr_of(records: &[MetadataRecord]) -> (Option<Vec<i32>>, Option<Vec<i32>>) {
        match records.last() {
            Some(MetadataRecord::PartitionChange { elr, last_known_elr, .. }) => (elr.clone(), last_known_elr.clone()),
            other => panic!("no partition change: {other:?}"),
        }
    }

    #[test]
    fn replicas_leaving_an_isr_below_min_insync_become_eligible() {
        let img = image(&[1, 2, 3], &[], 1, &[], "2");
        assert_eq!(elr_of(&complete(&img, vec![isr_change(&[1, 2])], 1, &[])), (None, None), "at min.insync.replicas: no ELR");
        let img = image(&[1, 2], &[], 1, &[], "2");
        assert_eq!(elr_of(&complete(&img, vec![isr_change(&[1])], 1, &[])), (Some(vec![2]), None));
        // The ISR grows back to min.insync.replicas: the ELR is cleared.
        let img = image(&[1], &[2], 1, &[], "2");
        assert_eq!(elr_of(&complete(&img, vec![isr_change(&[1, 3])], 1, &[])), (Some(vec![]), None));
        // An unclean shutdown: the replica is only last known eligible.
        let img = image(&[1, 2], &[], 1, &[], "3");
        assert_eq!(elr_of(&complete(&img, vec![isr_change(&[1])], 1, &[2])), (None, Some(vec![2])));
    }

    #[test]
    fn an_eligible_replica_is_elected_when_no_isr_member_is_live() {
        // 1 is the last ISR member and fenced; 2 left the ISR below min.insync.replicas.
        let img = image(&[1], &[2], NO_LEADER, &[1], "2");
        let reg = img.partition("t", 0).unwrap().clone();
        assert_eq!(eligible_leader(&img, &reg, -1), Some(2));
        let elect = MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(2), isr: Some(vec![2]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None };
        assert_eq!(elr_of(&complete(&img, vec![elect], 1, &[])), (Some(vec![1]), None), "the former ISR member is eligible in turn");
        // A live ISR member is elected before any eligible replica.
        let img = image(&[1], &[2], NO_LEADER, &[], "2");
        assert_eq!(eligible_leader(&img, img.partition("t", 0).unwrap(), -1), None);
        // An unclean election clears both lists.
        let img = image(&[1], &[2], NO_LEADER, &[1, 2], "2");
        let unclean = MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(3), isr: Some(vec![3]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None };
        assert_eq!(elr_of(&complete(&img, vec![unclean], 1, &[])), (Some(vec![]), None));
    }

    #[test]
    fn a_lower_min_insync_clears_the_eligible_replicas_with_the_config_change() {
        let img = image(&[1], &[2], 1, &[], "2");
        let config = MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: "t".into(), name: "min.insync.replicas".into(), value: Some("1".into()) };
        let mut records = vec![config.clone()];
        records.extend(recheck_topic(&img, "t"));
        let out = complete(&img, records, 1, &[]);
        assert_eq!(out[0], config);
        assert_eq!(elr_of(&out), (Some(vec![]), None));
        // Unchanged: the no-op change is dropped.
        let img = image(&[1], &[2], 1, &[], "2");
        assert_eq!(complete(&img, recheck_topic(&img, "t"), 1, &[]), vec![]);
    }
}
