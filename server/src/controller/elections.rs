//! Leader elections asked for by an operator (ElectLeaders) or by the controller itself
//! (`auto.leader.rebalance.enable`), as Kafka's `ReplicationControlManager` makes them.
//!
//! * **Preferred**: leadership moves to the partition's preferred replica — the first of its
//!   target replicas — if that replica is in the ISR and unfenced. Nothing is lost: the new
//!   leader has every committed record, and the old one truncates only what was never
//!   committed. Already led by it: ELECTION_NOT_NEEDED; not eligible:
//!   PREFERRED_LEADER_NOT_AVAILABLE (unless the partition has no leader at all: then the next
//!   in-sync live replica is elected, as Kafka's `PartitionChangeBuilder` does).
//! * **Unclean**: only for a partition with no leader. A live ISR member is elected if there is
//!   one, else a live eligible leader replica (both clean elections, see [`super::elr`]);
//!   otherwise the first live target replica becomes the leader and the only ISR member, giving
//!   up whatever only the lost ISR held. A partition that has a leader:
//!   ELECTION_NOT_NEEDED; no live replica: ELIGIBLE_LEADERS_NOT_AVAILABLE.
//! * Automatic rebalancing makes the preferred elections that would succeed, at most
//!   [`MAX_ELECTIONS_PER_BALANCE`] per round.
//! * Periodic unclean elections (`unclean.leader.election.interval.ms`) make the unclean
//!   elections that would succeed for leaderless partitions of topics that allow them (their
//!   `unclean.leader.election.enable`, else the controller's), as many per round: an operator who
//!   turns the setting on for a partition stuck without a leader needs nothing else.

use gregor_core::metadata::{LeaderChange, MetadataImage, MetadataRecord, PartitionRegistration, TopicId, NO_LEADER};

use super::{elr, Controller};
use crate::broker::{AdminError, Broker};
use crate::errors;

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// From the wire (0 preferred, 1 unclean).
    pub fn from_wire(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// Preferred elections one automatic rebalance makes at most (Kafka's
/// `maxElectionsPerImbalance`).
pub const MAX_ELECTIONS_PER_BALANCE: usize = 1000;

/// One partition's election result: the error code and message (NONE when elected).
pub type ElectionResult = (i16, Option<String>);

fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

fn change(topic_id: TopicId, partition_id: i32, leader: i32, isr: Option<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::PartitionChange { topic_id, partition_id, leader: LeaderChange::Set(leader), isr, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None }
}

/// The record that makes `ty`'s election of one partition, or why there is none.
pub fn plan_election(image: &MetadataImage, topic_id: TopicId, partition_id: i32, reg: &PartitionRegistration, ty: ElectionType) -> Result<MetadataRecord, ElectionResult> {
    let target = reg.target_replicas();
    match ty {
        ElectionType::Preferred => {
            let preferred = target[0];
            if reg.leader == preferred {
                return Err((errors::ELECTION_NOT_NEEDED, None));
            }
            let valid = |r: i32| reg.isr.contains(&r) && live(image, r);
            if valid(preferred) {
                return Ok(change(topic_id, partition_id, preferred, None));
            }
            // A partition without a leader takes the next valid replica, as Kafka's builder
            // does; one with a leader keeps it.
            if reg.leader == NO_LEADER {
                if let Some(next) = target.iter().copied().find(|r| valid(*r)) {
                    return Ok(change(topic_id, partition_id, next, None));
                }
                if let Some(eligible) = elr::eligible_leader(image, reg, NO_LEADER) {
                    return Ok(change(topic_id, partition_id, eligible, Some(vec![eligible])));
                }
            }
            Err((errors::PREFERRED_LEADER_NOT_AVAILABLE, Some("The preferred leader was not available.".into())))
        }
        ElectionType::Unclean => {
            if reg.leader != NO_LEADER {
                return Err((errors::ELECTION_NOT_NEEDED, None));
            }
            if let Some(clean) = target.iter().copied().find(|r| reg.isr.contains(r) && live(image, *r)) {
                return Ok(change(topic_id, partition_id, clean, None));
            }
            if let Some(eligible) = elr::eligible_leader(image, reg, NO_LEADER) {
                return Ok(change(topic_id, partition_id, eligible, Some(vec![eligible])));
            }
            match target.iter().copied().find(|r| live(image, *r)) {
                Some(r) => Ok(change(topic_id, partition_id, r, Some(vec![r]))),
                None => Err((errors::ELIGIBLE_LEADERS_NOT_AVAILABLE, Some("Eligible topic partition leaders are not available.".into()))),
            }
        }
    }
}

/// Partitions whose preferred replica could lead but does not (what automatic rebalancing
/// moves), in topic and partition order.
pub fn imbalanced(image: &MetadataImage) -> Vec<(TopicId, i32)> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (p, reg) in &t.partitions {
            if plan_election(image, t.id, *p, reg, ElectionType::Preferred).is_ok() {
                out.push((t.id, *p));
            }
        }
    }
    out
}

/// The unclean elections one periodic round makes: for every leaderless partition of a topic
/// `unclean(topic)` allows, the election [`plan_election`] makes (an ISR member or an eligible
/// replica first, when one is live), in topic and partition order.
pub fn unclean_elections(image: &MetadataImage, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    image
        .topics
        .values()
        .filter(|t| unclean(&t.name))
        .flat_map(|t| t.partitions.iter().filter(|(_, reg)| reg.leader == NO_LEADER).map(move |(p, reg)| (t.id, *p, reg)))
        .filter_map(|(id, p, reg)| plan_election(image, id, p, reg, ElectionType::Unclean).ok())
        .take(MAX_ELECTIONS_PER_BALANCE)
        .collect()
}

/// Which partitions an ElectLeaders request names: `None` is every partition.
pub type Selection = Option<Vec<(String, Vec<i32>)>>;

impl Controller {
    /// ElectLeaders: one result per named partition (topic, partition, result). With no
    /// partitions named, every partition is tried and only those elected or failed are
    /// reported (ELECTION_NOT_NEEDED ones are left out, as Kafka does).
    pub async fn elect_leaders(&self, broker: &Broker, ty: ElectionType, selection: Selection) -> Result<Vec<(String, i32, ElectionResult)>, AdminError> {
        let mut state = self.active().await?;
        let image = broker.image();
        let all = selection.is_none();
        let named: Vec<(String, i32)> = match selection {
            Some(s) => s.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect(),
            None => image.topics.values().flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p))).collect(),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, p) in named {
            let found = image.topic(&topic).and_then(|t| t.partitions.get(&p).map(|reg| (t.id, reg)));
            let result = match found {
                None => Err((errors::UNKNOWN_TOPIC_OR_PARTITION, Some(format!("No such partition as {topic}-{p}")))),
                Some((id, reg)) => plan_election(&image, id, p, reg, ty),
            };
            match result {
                Ok(record) => {
                    records.push(record);
                    results.push((topic, p, (errors::NONE, None)));
                }
                Err((code, _)) if all && code == errors::ELECTION_NOT_NEEDED => {}
                Err(e) => results.push((topic, p, e)),
            }
        }
        let elected = records.len();
        self.commit(broker, &mut state, records).await?;
        if elected > 0 {
            tracing::info!(election = ty.name(), partitions = elected, "elected leaders");
        }
        Ok(results)
    }

    /// One round of automatic leader rebalancing (`auto.leader.rebalance.enable`): preferred
    /// elections where they would succeed. Only the active controller acts.
    pub async fn balance_leaders(&self, broker: &Broker) {
        if self.quorum.status().leader_id != broker.config.node_id {
            return;
        }
        let Ok(mut state) = self.active().await else { return };
        let image = broker.image();
        let records: Vec<MetadataRecord> = imbalanced(&image)
            .into_iter()
            .take(MAX_ELECTIONS_PER_BALANCE)
            .filter_map(|(id, p)| {
                let reg = image.topic_by_id(id)?.partitions.get(&p)?;
                plan_election(&image, id, p, reg, ElectionType::Preferred).ok()
            })
            .collect();
        let n = records.len();
        match self.commit(broker, &mut state, records).await {
            Ok(()) if n > 0 => tracing::info!(partitions = n, "moved leadership back to preferred replicas"),
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e.message, "automatic leader rebalance failed"),
        }
    }

    /// One round of periodic unclean elections (`unclean.leader.election.interval.ms`), see
    /// [`unclean_elections`]. Only the active controller acts.
    pub async fn elect_unclean_leaders(&self, broker: &Broker) {
        if self.quorum.status().leader_id != broker.config.node_id {
            return;
        }
        let Ok(mut state) = self.active().await else { return };
        let image = broker.image();
        let default = broker.config.replication.unclean_leader_election;
        let records = unclean_elections(&image, &|t| super::partitions::unclean_allowed(&image, t, default));
        let elected: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::PartitionChange { topic_id, partition_id, leader: LeaderChange::Set(l), .. } => {
                    Some(format!("{}-{partition_id} -> {l}", image.topic_by_id(*topic_id).map_or("?", |t| t.name.as_str())))
                }
                _ => None,
            })
            .collect();
        match self.commit(broker, &mut state, records).await {
            Ok(()) if !elected.is_empty() => tracing::warn!(partitions = ?elected, "unclean.leader.election.enable: elected leaders for leaderless partitions"),
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e.message, "periodic unclean leader election failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::metadata::MetadataDelta;

    fn image(replicas: &[i32], isr: &[i32], leader: i32, fenced: &[i32]) -> (MetadataImage, PartitionRegistration) {
        let mut image = MetadataImage::new();
        let mut d = MetadataDelta::default();
        for id in 1..=3 {
            let r = MetadataRecord::RegisterBroker { broker_id: id, incarnation_id: 1, broker_epoch: 1, endpoints: vec![], rack: None, fenced: fenced.contains(&id) };
            image.apply(id as i64, &r, &mut d).unwrap();
        }
        image.apply(4, &MetadataRecord::Topic { name: "t".into(), topic_id: 7 }, &mut d).unwrap();
        let p = MetadataRecord::Partition { topic_id: 7, partition_id: 0, replicas: replicas.to_vec(), isr: isr.to_vec(), leader, leader_epoch: 2, partition_epoch: 2, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] };
        image.apply(5, &p, &mut d).unwrap();
        let reg = image.topic("t").unwrap().partitions[&0].clone();
        (image, reg)
    }

    fn elect(img: &(MetadataImage, PartitionRegistration), ty: ElectionType) -> Result<(i32, Option<Vec<i32>>), i16> {
        match plan_election(&img.0, 7, 0, &img.1, ty) {
            Ok(MetadataRecord::PartitionChange { leader: LeaderChange::Set(l), isr, .. }) => Ok((l, isr)),
            Ok(other) => panic!("unexpected record {other:?}"),
            Err((code, _)) => Err(code),
        }
    }

    #[test]
    fn preferred_election_moves_leadership_to_the_first_replica_only_if_it_is_in_sync_and_live() {
        assert_eq!(elect(&image(&[1, 2, 3], &[1, 2, 3], 2, &[]), ElectionType::Preferred), Ok((1, None)));
        assert_eq!(elect(&image(&[1, 2, 3], &[1, 2, 3], 1, &[]), ElectionType::Preferred), Err(errors::ELECTION_NOT_NEEDED));
        assert_eq!(elect(&image(&[1, 2, 3], &[2, 3], 2, &[]), ElectionType::Preferred), Err(errors::PREFERRED_LEADER_NOT_AVAILABLE), "not in the ISR");
        assert_eq!(elect(&image(&[1, 2, 3], &[1, 2, 3], 2, &[1]), ElectionType::Preferred), Err(errors::PREFERRED_LEADER_NOT_AVAILABLE), "fenced");
        assert_eq!(elect(&image(&[1, 2, 3], &[2, 3], NO_LEADER, &[2]), ElectionType::Preferred), Ok((3, None)), "leaderless: the next valid replica");
        let (img, _) = image(&[1, 2, 3], &[1, 2, 3], 2, &[]);
        assert_eq!(imbalanced(&img), vec![(7, 0)]);
        let (img, _) = image(&[1, 2, 3], &[2, 3], 2, &[]);
        assert!(imbalanced(&img).is_empty(), "an election that would fail is not imbalance");
    }

    #[test]
    fn unclean_election_prefers_the_isr_and_otherwise_gives_up_the_lost_records() {
        assert_eq!(elect(&image(&[1, 2, 3], &[1, 2, 3], 1, &[]), ElectionType::Unclean), Err(errors::ELECTION_NOT_NEEDED));
        assert_eq!(elect(&image(&[1, 2, 3], &[3], NO_LEADER, &[]), ElectionType::Unclean), Ok((3, None)), "a live ISR member first");
        assert_eq!(elect(&image(&[1, 2, 3], &[1], NO_LEADER, &[1]), ElectionType::Unclean), Ok((2, Some(vec![2]))));
        assert_eq!(elect(&image(&[1], &[1], NO_LEADER, &[1]), ElectionType::Unclean), Err(errors::ELIGIBLE_LEADERS_NOT_AVAILABLE));
    }

    #[test]
    fn periodic_unclean_elections_only_where_the_topic_allows_them_and_a_leader_is_missing() {
        let leaders = |records: Vec<MetadataRecord>| -> Vec<(i32, i32, Option<Vec<i32>>)> {
            records
                .into_iter()
                .map(|r| match r {
                    MetadataRecord::PartitionChange { partition_id, leader: LeaderChange::Set(l), isr, .. } => (partition_id, l, isr),
                    other => panic!("unexpected record {other:?}"),
                })
                .collect()
        };
        // The last ISR member (1) is fenced: replica 2 is elected, alone in the ISR.
        let (stuck, _) = image(&[1, 2, 3], &[1], NO_LEADER, &[1]);
        assert_eq!(leaders(unclean_elections(&stuck, &|t| t == "t")), vec![(0, 2, Some(vec![2]))]);
        assert_eq!(leaders(unclean_elections(&stuck, &|_| false)), vec![], "the topic does not allow it");
        let (led, _) = image(&[1, 2, 3], &[1, 2], 1, &[]);
        assert_eq!(leaders(unclean_elections(&led, &|_| true)), vec![], "a partition with a leader");
        let (dead, _) = image(&[1], &[1], NO_LEADER, &[1]);
        assert_eq!(leaders(unclean_elections(&dead, &|_| true)), vec![], "no live replica");
    }
}
