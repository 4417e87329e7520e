//! The partitions this broker hosts, keyed by topic-partition, each with the role and leader
//! epoch the metadata image gives it.
//!
//! Guarantees:
//! * The hosted set changes only by applying a [`MetadataDelta`] (or, at start-up, the whole
//!   image): a partition is hosted exactly when this broker is one of its replicas.
//! * [`check_leader_epoch`] is the one rule every handler applies to a client's leader epoch.
//! * No lock is held across an `.await` or a disk operation of another partition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::errors;

use super::partition::Partition;

/// A topic-partition by name, as clients address it.
pub type TopicPartition = (String, i32);

/// Checks the leader epoch a client sent (`-1`: none sent, any epoch will do) against the
/// partition's current one, as Kafka does: an older epoch is FENCED_LEADER_EPOCH (the client's
/// metadata is stale), a newer one UNKNOWN_LEADER_EPOCH (this broker's metadata is stale).
pub fn check_leader_epoch(requested: i32, current: i32) -> Result<(), i16> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested < current {
        Err(errors::FENCED_LEADER_EPOCH)
    } else {
        Err(errors::UNKNOWN_LEADER_EPOCH)
    }
}

#[derive(Default)]
pub struct ReplicaManager {
    partitions: Mutex<BTreeMap<TopicPartition, Arc<Partition>>>,
}

impl ReplicaManager {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, Arc<Partition>>> {
        self.partitions.lock().expect("replica manager lock poisoned")
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.lock().get(&(topic.to_string(), partition)).cloned()
    }

    /// Every hosted partition, in topic-partition order.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.lock().values().cloned().collect()
    }

    /// The hosted partitions of one topic, in partition order.
    pub fn of_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.lock().range((topic.to_string(), i32::MIN)..=(topic.to_string(), i32::MAX)).map(|(_, p)| p.clone()).collect()
    }

    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.lock().contains_key(&(topic.to_string(), partition))
    }

    pub fn insert(&self, p: Arc<Partition>) {
        let key = (p.topic.clone(), p.index);
        let old = self.lock().insert(key, p);
        assert!(old.is_none(), "a partition is hosted at most once");
    }

    pub fn remove(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.lock().remove(&(topic.to_string(), partition))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_rule() {
        assert_eq!(check_leader_epoch(-1, 5), Ok(()));
        assert_eq!(check_leader_epoch(5, 5), Ok(()));
        assert_eq!(check_leader_epoch(4, 5), Err(errors::FENCED_LEADER_EPOCH));
        assert_eq!(check_leader_epoch(6, 5), Err(errors::UNKNOWN_LEADER_EPOCH));
    }
}
