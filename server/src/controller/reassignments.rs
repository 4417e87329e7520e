//! Partition reassignment (KIP-455: AlterPartitionReassignments, ListPartitionReassignments),
//! as Kafka's `ReplicationControlManager` and `PartitionChangeBuilder` make it.
//!
//! A reassignment from replicas `R` to a target `T` goes through two metadata changes:
//! 1. **Start**: `replicas = T ++ (R − T)`, `adding = T − R`, `removing = R − T`. The adding
//!    replicas open the partition and fetch from the leader like any follower; the leader adds
//!    each to the ISR (AlterPartition) once it has caught up, exactly as for a returning replica.
//! 2. **Completion**, inside whichever change makes it possible (the start itself, an ISR change,
//!    a fencing): once every target replica is in the ISR, `replicas = T`,
//!    `ISR = ISR − removing`, and the reassignment fields are cleared. If the leader is being
//!    removed, the first target replica in the ISR and live takes over. Every shrink of the
//!    replica set bumps the leader epoch, so a removed replica can no longer act on the
//!    partition; removed replicas then delete their copy.
//!
//! Nothing committed is lost: the target replicas all hold every committed record (they are in
//! the ISR) before any replica is removed, and the high watermark counts replicas being added
//! as the ISR does.
//!
//! Cancelling (a `null` target) puts back the replicas from before the reassignment (`replicas −
//! adding`, ISR likewise) — refused with INVALID_REPLICA_ASSIGNMENT when no replica of the old
//! set is in the ISR any more, since that would take an unclean election.

use std::collections::BTreeSet;

use gregor_core::metadata::{LeaderChange, MetadataImage, MetadataRecord, PartitionRegistration, TopicId, NO_LEADER};

use super::Controller;
use crate::broker::{AdminError, Broker};
use crate::errors;

fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

fn invalid(message: String) -> AdminError {
    AdminError::new(errors::INVALID_REPLICA_ASSIGNMENT, message)
}

/// What a partition becomes: the registration after a change, before the epochs are bumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Planned {
    fn of(reg: &PartitionRegistration) -> Planned {
        Planned { replicas: reg.replicas.clone(), isr: reg.isr.clone(), leader: reg.leader, adding: reg.adding.clone(), removing: reg.removing.clone() }
    }

    /// Completes the reassignment if every target replica is in the ISR (see the module docs).
    fn complete_if_ready(&mut self, image: &MetadataImage) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let mut isr: Vec<i32> = self.isr.iter().copied().filter(|r| !self.removing.contains(r)).collect();
        let replicas: Vec<i32> = self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect();
        if gregor_core::bugs::active(gregor_core::bugs::Bug::CompleteReassignmentEarly) {
            // Only under the injected bug: the new replicas count as in sync before they are.
            isr = replicas.clone();
        }
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.replicas = replicas;
        self.isr = self.replicas.iter().copied().filter(|r| isr.contains(r)).collect();
        self.adding.clear();
        self.removing.clear();
        self.elect_if_needed(image);
    }

    /// Keeps the leader if it is still in the ISR and live, else takes the first replica that is.
    fn elect_if_needed(&mut self, image: &MetadataImage) {
        if self.leader != NO_LEADER && self.isr.contains(&self.leader) && live(image, self.leader) {
            return;
        }
        self.leader = self.replicas.iter().copied().find(|r| self.isr.contains(r) && live(image, *r)).unwrap_or(NO_LEADER);
    }

    /// The record that turns `old` into this (None: no change). The leader epoch is bumped when
    /// the leader changes or the replica set shrinks.
    pub fn record(&self, topic_id: TopicId, partition_id: i32, old: &PartitionRegistration) -> Option<MetadataRecord> {
        let now = Planned::of(old);
        if *self == now {
            return None;
        }
        let shrinks = old.replicas.iter().any(|r| !self.replicas.contains(r));
        let leader = if self.leader != old.leader || shrinks { LeaderChange::Set(self.leader) } else { LeaderChange::Keep };
        let changed = |a: &Vec<i32>, b: &Vec<i32>| (a != b).then(|| a.clone());
        Some(MetadataRecord::PartitionChange {
            topic_id,
            partition_id,
            leader,
            isr: changed(&self.isr, &now.isr),
            replicas: changed(&self.replicas, &now.replicas),
            adding: changed(&self.adding, &now.adding),
            removing: changed(&self.removing, &now.removing),
            elr: None, last_known_elr: None,
        })
    }
}

/// Checks a target assignment: not empty, no broker twice, every broker registered.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), AdminError> {
    if target.is_empty() {
        return Err(invalid("The manual partition assignment includes an empty replica list.".into()));
    }
    let mut seen = BTreeSet::new();
    for b in target {
        if !seen.insert(*b) {
            return Err(invalid(format!("The manual partition assignment includes the broker {b} more than once.")));
        }
        if !image.brokers.contains_key(b) {
            return Err(invalid(format!("The manual partition assignment includes broker {b}, but no such broker is registered.")));
        }
    }
    Ok(())
}

/// The partition after starting a reassignment to `target` (completed at once when the target's
/// replicas are all in the ISR already, e.g. a reorder or a shrink).
pub fn plan_start(image: &MetadataImage, reg: &PartitionRegistration, target: &[i32]) -> Result<Planned, AdminError> {
    validate_target(image, target)?;
    // The assignment from before any reassignment under way: what `adding` is counted from.
    let base: Vec<i32> = reg.replicas.iter().copied().filter(|r| !reg.adding.contains(r)).collect();
    let mut adding: Vec<i32> = target.iter().copied().filter(|r| !base.contains(r)).collect();
    adding.sort_unstable();
    let mut removing: Vec<i32> = reg.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
    removing.sort_unstable();
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    let isr: Vec<i32> = replicas.iter().copied().filter(|r| reg.isr.contains(r)).collect();
    let mut p = Planned { replicas, isr, leader: reg.leader, adding, removing };
    p.complete_if_ready(image);
    Ok(p)
}

/// The partition after cancelling its reassignment.
pub fn plan_cancel(image: &MetadataImage, topic: &str, partition: i32, reg: &PartitionRegistration) -> Result<Planned, AdminError> {
    if !reg.is_reassigning() {
        return Err(AdminError::new(errors::NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress."));
    }
    let replicas: Vec<i32> = reg.replicas.iter().copied().filter(|r| !reg.adding.contains(r)).collect();
    let isr: Vec<i32> = replicas.iter().copied().filter(|r| reg.isr.contains(r)).collect();
    if isr.is_empty() {
        return Err(invalid(format!("Unable to revert partition assignment for {topic}:{partition} because it would require an unclean leader election.")));
    }
    let mut p = Planned { replicas, isr, leader: reg.leader, adding: Vec::new(), removing: Vec::new() };
    p.elect_if_needed(image);
    Ok(p)
}

/// An ISR change of a partition under reassignment: the partition after it, completed if it
/// can be.
pub fn plan_isr_with_reassignment(image: &MetadataImage, reg: &PartitionRegistration, isr: Vec<i32>) -> Planned {
    let mut p = Planned { isr, ..Planned::of(reg) };
    p.complete_if_ready(image);
    p
}

/// One partition of an AlterPartitionReassignments request: the target, or `None` to cancel.
pub type Reassignment = (String, i32, Option<Vec<i32>>);

/// An ongoing reassignment as ListPartitionReassignments reports it: (topic, partition,
/// replicas, adding, removing).
pub type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The reassignments under way among `selection` (None: every partition), in topic and
/// partition order. Unknown and idle partitions are left out, as Kafka does.
pub fn list(image: &MetadataImage, selection: Option<&[(String, Vec<i32>)]>) -> Vec<Ongoing> {
    let mut out = Vec::new();
    let mut push = |name: &str, p: i32, reg: &PartitionRegistration| {
        if reg.is_reassigning() {
            out.push((name.to_string(), p, reg.replicas.clone(), reg.adding.clone(), reg.removing.clone()));
        }
    };
    match selection {
        None => {
            let mut topics: Vec<_> = image.topics.values().collect();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            for t in topics {
                for (p, reg) in &t.partitions {
                    push(&t.name, *p, reg);
                }
            }
        }
        Some(sel) => {
            for (name, ps) in sel {
                let Some(t) = image.topic(name) else { continue };
                for p in ps {
                    if let Some(reg) = t.partitions.get(p) {
                        push(name, *p, reg);
                    }
                }
            }
        }
    }
    out
}

impl Controller {
    /// AlterPartitionReassignments: one result per partition, in request order; the records of
    /// every accepted partition are committed together.
    /// With `allow_rf_change` false (KIP-860), a target of another size than the partition's
    /// current target is refused with INVALID_REPLICATION_FACTOR.
    pub async fn alter_reassignments(&self, broker: &Broker, changes: Vec<Reassignment>, allow_rf_change: bool) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, partition, target) in &changes {
            let result = (|| {
                let t = image.topic(topic).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, format!("Unable to find a topic named {topic}.")))?;
                let reg = t.partitions.get(partition).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, format!("Unable to find partition {topic}:{partition}.")))?;
                let planned = match target {
                    Some(target) if !allow_rf_change && target.len() != reg.target_replicas().len() => {
                        let message = format!("The replication factor is changed from {} to {} but allowReplicationFactorChange is false.", reg.target_replicas().len(), target.len());
                        return Err(AdminError::new(errors::INVALID_REPLICATION_FACTOR, message));
                    }
                    Some(target) => plan_start(&image, reg, target)?,
                    None => plan_cancel(&image, topic, *partition, reg)?,
                };
                Ok(planned.record(t.id, *partition, reg))
            })();
            match result {
                Ok(record) => {
                    records.extend(record);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let n = records.len();
        self.commit(broker, &mut state, records).await?;
        if n > 0 {
            tracing::info!(partitions = n, "partition reassignments changed");
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::metadata::MetadataDelta;

    fn image(live: &[i32], fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::new();
        let mut d = MetadataDelta::default();
        for (i, id) in live.iter().chain(fenced).enumerate() {
            let r = MetadataRecord::RegisterBroker { broker_id: *id, incarnation_id: 1, broker_epoch: 1, endpoints: vec![], rack: None, fenced: fenced.contains(id) };
            image.apply(i as i64, &r, &mut d).unwrap();
        }
        image
    }

    fn reg(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration { replicas: replicas.to_vec(), isr: isr.to_vec(), leader, leader_epoch: 4, partition_epoch: 9, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] }
    }

    fn applied(p: &Planned) -> PartitionRegistration {
        PartitionRegistration { replicas: p.replicas.clone(), isr: p.isr.clone(), leader: p.leader, leader_epoch: 5, partition_epoch: 10, adding: p.adding.clone(), removing: p.removing.clone(), elr: vec![], last_known_elr: vec![] }
    }

    #[test]
    fn a_move_adds_first_and_removes_only_once_the_targets_are_in_sync() {
        let img = image(&[1, 2, 3, 4], &[]);
        let r = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let p = plan_start(&img, &r, &[4, 2, 3]).unwrap();
        assert_eq!(p, Planned { replicas: vec![4, 2, 3, 1], isr: vec![2, 3, 1], leader: 1, adding: vec![4], removing: vec![1] });
        let started = applied(&p);
        assert_eq!(started.target_replicas(), vec![4, 2, 3]);
        // The leader adds 4 to the ISR: the reassignment completes and the removed leader hands over.
        let done = plan_isr_with_reassignment(&img, &started, vec![4, 2, 3, 1]);
        assert_eq!(done, Planned { replicas: vec![4, 2, 3], isr: vec![4, 2, 3], leader: 4, adding: vec![], removing: vec![] });
        match done.record(7, 0, &started) {
            Some(MetadataRecord::PartitionChange { leader: LeaderChange::Set(4), replicas: Some(r), adding: Some(a), removing: Some(x), .. }) => {
                assert_eq!((r, a, x), (vec![4, 2, 3], vec![], vec![]));
            }
            other => panic!("{other:?}"),
        }
        // Until then the removing replica stays, and an ISR change without 4 completes nothing.
        let waiting = plan_isr_with_reassignment(&img, &started, vec![2, 3, 1]);
        assert_eq!(waiting.removing, vec![1]);
    }

    #[test]
    fn a_reorder_or_a_shrink_inside_the_isr_completes_at_once_with_an_epoch_bump() {
        let img = image(&[1, 2, 3], &[]);
        let r = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let p = plan_start(&img, &r, &[3, 2, 1]).unwrap();
        assert_eq!(p, Planned { replicas: vec![3, 2, 1], isr: vec![3, 2, 1], leader: 1, adding: vec![], removing: vec![] });
        assert!(matches!(p.record(7, 0, &r), Some(MetadataRecord::PartitionChange { leader: LeaderChange::Keep, adding: None, removing: None, .. })));
        let p = plan_start(&img, &r, &[2, 3]).unwrap();
        assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3], 2));
        assert!(matches!(p.record(7, 0, &r), Some(MetadataRecord::PartitionChange { leader: LeaderChange::Set(2), .. })));
        assert_eq!(plan_start(&img, &r, &[1, 2, 3]).unwrap().record(7, 0, &r), None, "the same assignment changes nothing");
    }

    #[test]
    fn bad_targets_are_refused_with_kafkas_messages() {
        let img = image(&[1, 2, 3], &[]);
        let r = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let err = |t: &[i32]| plan_start(&img, &r, t).unwrap_err();
        assert_eq!(err(&[]).code, errors::INVALID_REPLICA_ASSIGNMENT);
        assert!(err(&[1, 1]).message.contains("broker 1 more than once"));
        assert!(err(&[1, 9]).message.contains("broker 9, but no such broker is registered"));
        assert_eq!(plan_cancel(&img, "t", 0, &r).unwrap_err().code, errors::NO_REASSIGNMENT_IN_PROGRESS);
    }

    #[test]
    fn cancelling_puts_back_the_old_replicas_unless_that_needs_an_unclean_election() {
        let img = image(&[1, 2, 3, 4, 5], &[]);
        let r = reg(&[1, 2], &[1, 2], 1);
        let started = applied(&plan_start(&img, &r, &[4, 5]).unwrap());
        assert_eq!((started.adding.clone(), started.removing.clone()), (vec![4, 5], vec![1, 2]));
        let back = plan_cancel(&img, "t", 0, &started).unwrap();
        assert_eq!(back, Planned { replicas: vec![1, 2], isr: vec![1, 2], leader: 1, adding: vec![], removing: vec![] });
        // A new target while one is under way is counted from the original assignment.
        let again = plan_start(&img, &started, &[1, 4]).unwrap();
        assert_eq!((again.replicas.clone(), again.adding.clone(), again.removing.clone()), (vec![1, 4, 2, 5], vec![4], vec![2, 5]));
        // Only the added replicas are still in sync: cancelling would lose committed records.
        let mut gone = started.clone();
        gone.isr = vec![4, 5];
        gone.leader = 4;
        assert_eq!(plan_cancel(&img, "t", 0, &gone).unwrap_err().code, errors::INVALID_REPLICA_ASSIGNMENT);
        let listed = list(&img, None);
        assert!(listed.is_empty(), "an image without topics lists nothing");
    }

    #[test]
    fn a_fenced_target_replica_is_not_elected_on_completion() {
        let img = image(&[2, 3, 4], &[1]);
        let r = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let p = plan_start(&img, &r, &[2, 3]).unwrap();
        assert_eq!(p.leader, 2);
        let img = image(&[3], &[1, 2]);
        let p = plan_start(&img, &r, &[2, 3]).unwrap();
        assert_eq!(p.leader, 3, "the first live ISR member of the target");
    }
}
