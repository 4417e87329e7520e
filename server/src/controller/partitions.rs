//! Partition leadership and ISR on the active controller: AlterPartition (a leader's ISR change)
//! and the elections that fencing and unfencing a broker cause.
//!
//! Rules (Kafka's `ReplicationControlManager`):
//! * An ISR change is taken only from the partition's current leader, at the current leader
//!   epoch (older: FENCED_LEADER_EPOCH) and the current partition epoch (else
//!   INVALID_UPDATE_VERSION), so a deposed leader or a stale request can never change the ISR.
//!   The new ISR must hold the leader and be replicas only (INVALID_REQUEST); a replica it adds
//!   must be registered, unfenced and, when the request names one, at that broker epoch
//!   (INELIGIBLE_REPLICA, KIP-903) — a restarted broker re-joins only through a new fetch.
//! * Fencing a broker removes it from every ISR and elects, where it led, the first replica in
//!   assignment order that is in the remaining ISR and unfenced, else the first live eligible
//!   leader replica (KIP-966, see [`super::elr`]), else — only where
//!   `unclean.leader.election.enable` allows it — any live replica. A partition whose last ISR
//!   member is fenced keeps that member as its ISR, with no leader if none of those is found:
//!   it waits for that broker or an eligible one to come back, which is what keeps committed
//!   records.
//! * Unfencing a broker elects it where a partition has no leader and it is in the ISR, or is
//!   eligible while no ISR member is live.

use gregor_core::metadata::{LeaderChange, MetadataImage, MetadataRecord, PartitionRegistration, TopicId, NO_LEADER};

use super::{elr, reassignments, Controller};
use crate::broker::Broker;
use crate::errors;

/// One partition's ISR change in an AlterPartition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The new ISR with each member's broker epoch (-1: not given).
    pub new_isr: Vec<(i32, i64)>,
}

fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// Checks one ISR change from broker `from`; returns the record to commit (None: no change).
pub fn plan_isr_change(image: &MetadataImage, from: i32, c: &IsrChange) -> Result<Option<MetadataRecord>, i16> {
    let topic = image.topic_by_id(c.topic_id).ok_or(errors::UNKNOWN_TOPIC_ID)?;
    let reg = topic.partitions.get(&c.partition).ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    if c.leader_epoch < reg.leader_epoch {
        return Err(errors::FENCED_LEADER_EPOCH);
    }
    if reg.leader != from || c.leader_epoch != reg.leader_epoch {
        return Err(errors::NOT_LEADER_OR_FOLLOWER);
    }
    if c.partition_epoch != reg.partition_epoch {
        return Err(errors::INVALID_UPDATE_VERSION);
    }
    let mut isr: Vec<i32> = c.new_isr.iter().map(|(id, _)| *id).collect();
    isr.sort_unstable();
    isr.dedup();
    if isr.len() != c.new_isr.len() || !isr.contains(&from) || isr.iter().any(|id| !reg.replicas.contains(id)) {
        return Err(errors::INVALID_REQUEST);
    }
    for (id, epoch) in &c.new_isr {
        if reg.isr.contains(id) {
            continue;
        }
        let eligible = image.brokers.get(id).is_some_and(|b| !b.fenced && (*epoch < 0 || b.epoch == *epoch));
        if !eligible {
            return Err(errors::INELIGIBLE_REPLICA);
        }
    }
    // Keep the assignment's order, as Kafka reports ISRs.
    let ordered: Vec<i32> = reg.replicas.iter().copied().filter(|r| isr.contains(r)).collect();
    let mut current = reg.isr.clone();
    current.sort_unstable();
    if current == isr {
        return Ok(None);
    }
    if reg.is_reassigning() {
        // The change may be the one that completes a reassignment.
        return Ok(reassignments::plan_isr_with_reassignment(image, reg, ordered).record(c.topic_id, c.partition, reg));
    }
    Ok(Some(MetadataRecord::PartitionChange { topic_id: c.topic_id, partition_id: c.partition, leader: LeaderChange::Keep, isr: Some(ordered), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }))
}

/// Whether `topic` allows unclean leader elections: its `unclean.leader.election.enable`, else
/// the controller's own setting (`default`).
pub fn unclean_allowed(image: &MetadataImage, topic: &str, default: bool) -> bool {
    image.topic_configs(topic).get("unclean.leader.election.enable").map_or(default, |v| v.eq_ignore_ascii_case("true"))
}

/// Records that take broker `id` out of every ISR and move its leaderships to the first live
/// ISR member (fencing, controlled shutdown, re-registration of a new incarnation). Where no ISR
/// member is live and `unclean(topic)` allows it, the first live replica becomes the leader and
/// the whole ISR, giving up what only the lost ISR held (Kafka's `unclean.leader.election.enable`).
pub fn leaders_away(image: &MetadataImage, id: i32, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    let bug = gregor_core::bugs::active(gregor_core::bugs::Bug::ElectOutsideIsr);
    for t in image.topics.values() {
        for (p, reg) in &t.partitions {
            if reg.leader != id && !reg.isr.contains(&id) {
                continue;
            }
            let mut isr: Vec<i32> = reg.isr.iter().copied().filter(|r| *r != id).collect();
            if isr.is_empty() {
                // The last in-sync replica stays in the ISR: only it has every committed record.
                isr = vec![id];
            }
            let leader = if reg.leader == id {
                let any_live = || reg.replicas.iter().copied().find(|r| *r != id && live(image, *r));
                let elected = if bug {
                    // Only under the injected bug: the first live replica, in the ISR or not.
                    any_live()
                } else {
                    reg.replicas
                        .iter()
                        .copied()
                        .find(|r| *r != id && isr.contains(r) && live(image, *r))
                        .or_else(|| elr::eligible_leader(image, reg, id))
                        .or_else(|| if unclean(&t.name) { any_live() } else { None })
                }
                .unwrap_or(NO_LEADER);
                if elected != NO_LEADER && !isr.contains(&elected) {
                    // An eligible replica's, or after an unclean election the new leader's, log is
                    // the partition's from now on.
                    isr = vec![elected];
                }
                LeaderChange::Set(elected)
            } else {
                LeaderChange::Keep
            };
            let isr_change = (isr != reg.isr).then_some(isr);
            if matches!(leader, LeaderChange::Keep) && isr_change.is_none() {
                continue;
            }
            out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition_id: *p, leader, isr: isr_change, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None });
        }
    }
    out
}

/// Records that elect broker `id` where a partition has no leader and `id` is in its ISR
/// (unfencing) — or, where `unclean(topic)` allows it, is any of its replicas (then the whole
/// ISR).
pub fn leaders_back(image: &MetadataImage, id: i32, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (p, reg) in &t.partitions {
            if reg.leader != NO_LEADER || !reg.replicas.contains(&id) {
                continue;
            }
            let isr = if reg.isr.contains(&id) {
                None
            } else if reg.elr.contains(&id) && !reg.isr.iter().any(|r| live(image, *r)) {
                Some(vec![id])
            } else if unclean(&t.name) {
                Some(vec![id])
            } else {
                continue;
            };
            out.push(MetadataRecord::PartitionChange { topic_id: t.id, partition_id: *p, leader: LeaderChange::Set(id), isr, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None });
        }
    }
    out
}

impl Controller {
    /// AlterPartition from broker `from` at `broker_epoch`: one result per change, in order (the
    /// new registration, or a Kafka error code). The whole request fails with
    /// STALE_BROKER_EPOCH if `from` is not registered at that epoch.
    pub async fn alter_partition(&self, broker: &Broker, from: i32, broker_epoch: i64, changes: Vec<IsrChange>) -> Result<Vec<Result<PartitionRegistration, i16>>, i16> {
        let mut state = self.active().await.map_err(|e| e.code)?;
        let image = broker.image();
        if image.brokers.get(&from).is_none_or(|b| b.epoch != broker_epoch) {
            return Err(errors::STALE_BROKER_EPOCH);
        }
        let mut records = Vec::new();
        let planned: Vec<Result<Option<MetadataRecord>, i16>> = changes.iter().map(|c| plan_isr_change(&image, from, c)).collect();
        for r in planned.iter().flatten().flatten() {
            records.push(r.clone());
        }
        if !records.is_empty() {
            self.commit(broker, &mut state, records).await.map_err(|e| e.code)?;
        }
        let image = broker.image();
        Ok(changes
            .iter()
            .zip(planned)
            .map(|(c, p)| {
                p?;
                image.topic_by_id(c.topic_id).and_then(|t| t.partitions.get(&c.partition).cloned()).ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::metadata::MetadataDelta;

    fn image(replicas: &[i32], isr: &[i32], leader: i32, fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::new();
        let mut d = MetadataDelta::default();
        let mut off = 0;
        for id in 1..=3 {
            off += 1;
            image
                .apply(off, &MetadataRecord::RegisterBroker { broker_id: id, incarnation_id: id as u128, broker_epoch: 10 + id as i64, endpoints: vec![], rack: None, fenced: fenced.contains(&id) }, &mut d)
                .unwrap();
        }
        off += 1;
        image.apply(off, &MetadataRecord::Topic { name: "t".into(), topic_id: 7 }, &mut d).unwrap();
        off += 1;
        image
            .apply(off, &MetadataRecord::Partition { topic_id: 7, partition_id: 0, replicas: replicas.to_vec(), isr: isr.to_vec(), leader, leader_epoch: 3, partition_epoch: 5, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] }, &mut d)
            .unwrap();
        image
    }

    fn change(isr: &[(i32, i64)]) -> IsrChange {
        IsrChange { topic_id: 7, partition: 0, leader_epoch: 3, partition_epoch: 5, new_isr: isr.to_vec() }
    }

    #[test]
    fn only_the_current_leader_at_the_current_epochs_changes_the_isr() {
        let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[]);
        let shrink = plan_isr_change(&img, 1, &change(&[(1, -1), (2, -1)])).unwrap().unwrap();
        assert!(matches!(shrink, MetadataRecord::PartitionChange { isr: Some(ref i), leader: LeaderChange::Keep, .. } if *i == vec![1, 2]));
        assert_eq!(plan_isr_change(&img, 2, &change(&[(2, -1)])), Err(errors::NOT_LEADER_OR_FOLLOWER));
        let mut stale = change(&[(1, -1)]);
        stale.leader_epoch = 2;
        assert_eq!(plan_isr_change(&img, 1, &stale), Err(errors::FENCED_LEADER_EPOCH));
        let mut stale = change(&[(1, -1)]);
        stale.partition_epoch = 4;
        assert_eq!(plan_isr_change(&img, 1, &stale), Err(errors::INVALID_UPDATE_VERSION));
        assert_eq!(plan_isr_change(&img, 1, &change(&[(2, -1)])), Err(errors::INVALID_REQUEST), "the leader must stay");
        assert_eq!(plan_isr_change(&img, 1, &change(&[(1, -1), (9, -1)])), Err(errors::INVALID_REQUEST));
        assert_eq!(plan_isr_change(&img, 1, &change(&[(1, -1), (2, -1), (3, -1)])), Ok(None));
    }

    #[test]
    fn a_joining_replica_must_be_live_at_its_epoch() {
        let img = image(&[1, 2, 3], &[1, 2], 1, &[3]);
        assert_eq!(plan_isr_change(&img, 1, &change(&[(1, -1), (2, -1), (3, -1)])), Err(errors::INELIGIBLE_REPLICA), "fenced");
        let img = image(&[1, 2, 3], &[1, 2], 1, &[]);
        assert_eq!(plan_isr_change(&img, 1, &change(&[(1, -1), (2, -1), (3, 99)])), Err(errors::INELIGIBLE_REPLICA), "old incarnation");
        let ok = plan_isr_change(&img, 1, &change(&[(1, -1), (3, 13), (2, -1)])).unwrap().unwrap();
        assert!(matches!(ok, MetadataRecord::PartitionChange { isr: Some(ref i), .. } if *i == vec![1, 2, 3]), "ordered as assigned");
    }

    fn clean(_: &str) -> bool {
        false
    }

    fn unclean(_: &str) -> bool {
        true
    }

    #[test]
    fn with_unclean_elections_allowed_a_lost_isr_is_replaced_by_a_live_replica() {
        // The last ISR member (1, the leader) is fenced; 2 and 3 are live but out of sync.
        let img = image(&[1, 2, 3], &[1], 1, &[]);
        assert_eq!(leaders_away(&img, 1, &clean)[0], MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(NO_LEADER), isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None });
        assert_eq!(leaders_away(&img, 1, &unclean)[0], MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(2), isr: Some(vec![2]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None });
        // A live ISR member is still preferred.
        let img = image(&[1, 2, 3], &[1, 3], 1, &[]);
        assert!(matches!(leaders_away(&img, 1, &unclean)[0], MetadataRecord::PartitionChange { leader: LeaderChange::Set(3), .. }));
        // A leaderless partition takes a returning out-of-sync replica only when allowed.
        let img = image(&[1, 2, 3], &[1], NO_LEADER, &[]);
        assert!(leaders_back(&img, 2, &clean).is_empty());
        assert!(matches!(&leaders_back(&img, 2, &unclean)[0], MetadataRecord::PartitionChange { leader: LeaderChange::Set(2), isr: Some(i), .. } if *i == vec![2]));
        assert!(!unclean_allowed(&img, "t", false) && unclean_allowed(&img, "t", true));
    }

    #[test]
    fn fencing_removes_from_the_isr_and_elects_only_from_it() {
        let img = image(&[1, 2, 3], &[1, 3], 1, &[]);
        let r = leaders_away(&img, 1, &clean);
        assert_eq!(r, vec![MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(3), isr: Some(vec![3]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }]);
        // A follower leaves the ISR; the leader stays.
        let r = leaders_away(&img, 3, &clean);
        assert_eq!(r, vec![MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Keep, isr: Some(vec![1]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }]);
        // Not in the ISR: nothing to do.
        assert!(leaders_away(&img, 2, &clean).is_empty());
        // The last ISR member keeps its place and the partition has no leader.
        let img = image(&[1, 2, 3], &[1], 1, &[]);
        assert_eq!(leaders_away(&img, 1, &clean), vec![MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(NO_LEADER), isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }]);
        // A fenced ISR member is not elected.
        let img = image(&[1, 2, 3], &[1, 2], 1, &[2]);
        assert_eq!(leaders_away(&img, 1, &clean), vec![MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(NO_LEADER), isr: Some(vec![2]), replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }]);
        assert_eq!(leaders_back(&image(&[1, 2, 3], &[2], NO_LEADER, &[]), 2, &clean).len(), 1);
    }
}
