//! DescribeTopicPartitions (key 75, KIP-966): the partitions of topics, with their eligible
//! leader replicas and last known ELR, a page at a time.
//!
//! As Kafka's broker answers it:
//! * An empty topic list means every topic; otherwise the listed ones (duplicates once). Either
//!   way, topics sort by name and only those at or after the cursor's topic are described.
//! * A listed topic that does not exist is answered UNKNOWN_TOPIC_OR_PARTITION (or
//!   INVALID_TOPIC_EXCEPTION for a name no topic can have) with a zero topic id; when every topic
//!   was asked for, only existing ones are listed.
//! * A page holds at most `min(response_partition_limit, max.request.partition.size.limit)`
//!   partitions. The cursor's topic starts at the cursor's partition, every later one at 0. A
//!   topic that does not fit whole ends the page with `next_cursor` at its first partition left
//!   out; a page that fills exactly before the next topic points the cursor at that topic's
//!   partition 0.
//! * A cursor naming a topic the list leaves out is an invalid request: every listed topic is
//!   answered INVALID_REQUEST.
//! * The leader is -1 when it is not a registered broker; offline replicas are those whose
//!   broker is fenced or not registered. Replicas and ISR are listed as registered.
//!
//! Authorized operations: Gregor has no authorizer, so every operation Kafka defines on a topic
//! is allowed, as on a Kafka broker without one.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::errors;
use gregor_core::metadata::{MetadataImage, PartitionRegistration};

/// Kafka's operations on a topic resource (AclOperation codes READ 3, WRITE 4, CREATE 5,
/// DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11), one bit each.
const TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub fn handle(broker: &Arc<Broker>, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let limit = req.response_partition_limit.min(broker.config.max_request_partition_size_limit);
    describe(&image, &req, limit)
}

fn describe(image: &MetadataImage, req: &DescribeTopicPartitionsRequest, limit: i32) -> DescribeTopicPartitionsResponse {
    let mut resp = DescribeTopicPartitionsResponse::default();
    let all = req.topics.is_empty();
    let (cursor_topic, cursor_partition) = req.cursor.as_ref().map_or(("", 0), |c| (c.topic_name.0.as_str(), c.partition_index));
    let names: BTreeSet<&str> = if all {
        image.topic_ids.keys().map(String::as_str).filter(|n| *n >= cursor_topic).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.as_str()).filter(|n| *n >= cursor_topic).collect()
    };
    if !all && req.cursor.is_some() && !names.contains(cursor_topic) {
        // Kafka refuses the request; its error answer repeats every listed topic with the code.
        resp.topics = req.topics.iter().map(|t| error_topic(t.name.0.as_str(), errors::INVALID_REQUEST)).collect();
        return resp;
    }
    let mut remaining = limit.max(0);
    for name in names {
        if remaining == 0 {
            // The page is full: the next one starts at this topic (which may not exist).
            resp.next_cursor = Some(cursor(name, 0));
            break;
        }
        let Some(t) = image.topic(name) else {
            if !all {
                let code = if gregor_core::topic::validate_topic_name(name).is_ok() { errors::UNKNOWN_TOPIC_OR_PARTITION } else { errors::INVALID_TOPIC_EXCEPTION };
                resp.topics.push(error_topic(name, code));
            }
            continue;
        };
        let first = if name == cursor_topic { cursor_partition.max(0) } else { 0 };
        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let upper = count.min(first.saturating_add(remaining));
        let mut e = DescribeTopicPartitionsResponseTopic::default();
        e.name = Some(TopicName(sb(name.to_string())));
        e.topic_id = uuid::Uuid::from_u128(t.id);
        e.is_internal = name.starts_with("__");
        e.topic_authorized_operations = TOPIC_OPERATIONS;
        // A cursor past the topic's last partition describes none of it (and ends the paging).
        e.partitions = if first < upper { t.partitions.range(first..upper).map(|(index, reg)| partition(image, *index, reg)).collect() } else { Vec::new() };
        remaining -= i32::try_from(e.partitions.len()).unwrap_or(i32::MAX);
        resp.topics.push(e);
        if upper < count {
            resp.next_cursor = Some(cursor(name, upper));
            break;
        }
    }
    resp
}

fn partition(image: &MetadataImage, index: i32, reg: &PartitionRegistration) -> DescribeTopicPartitionsResponsePartition {
    let ids = |v: &[i32]| v.iter().map(|r| BrokerId(*r)).collect::<Vec<_>>();
    let mut p = DescribeTopicPartitionsResponsePartition::default();
    p.error_code = errors::NONE;
    p.partition_index = index;
    p.leader_id = BrokerId(if image.brokers.contains_key(&reg.leader) { reg.leader } else { -1 });
    p.leader_epoch = reg.leader_epoch;
    p.replica_nodes = ids(&reg.replicas);
    p.isr_nodes = ids(&reg.isr);
    p.eligible_leader_replicas = Some(ids(&reg.elr));
    p.last_known_elr = Some(ids(&reg.last_known_elr));
    p.offline_replicas = reg.replicas.iter().filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced)).map(|r| BrokerId(*r)).collect();
    p
}

fn error_topic(name: &str, code: i16) -> DescribeTopicPartitionsResponseTopic {
    let mut e = DescribeTopicPartitionsResponseTopic::default();
    e.error_code = code;
    e.name = Some(TopicName(sb(name.to_string())));
    e.is_internal = name.starts_with("__");
    e
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(sb(topic.to_string()));
    c.partition_index = partition;
    c
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gregor_core::metadata::{BrokerRegistration, TopicImage};
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor as RequestCursor, TopicRequest};

    use super::*;

    /// Brokers 1 (fenced) and 2; topics `a` (3 partitions), `b` (2), `c` (1), replicas [2, 1, 3].
    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, fenced) in [(1, true), (2, false)] {
            image.brokers.insert(id, BrokerRegistration { id, incarnation_id: 0, epoch: 1, endpoints: vec![], rack: None, fenced });
        }
        for (n, (name, count)) in [("a", 3), ("b", 2), ("c", 1)].into_iter().enumerate() {
            let reg = |i: i32| PartitionRegistration {
                replicas: vec![2, 1, 3],
                isr: vec![2],
                leader: if i == 0 { 2 } else { 3 },
                leader_epoch: 4,
                partition_epoch: 5,
                adding: vec![],
                removing: vec![],
                elr: vec![1],
                last_known_elr: vec![3],
            };
            let partitions: BTreeMap<i32, PartitionRegistration> = (0..count).map(|i| (i, reg(i))).collect();
            let id = n as u128 + 1;
            image.topics.insert(id, Arc::new(TopicImage { name: name.to_string(), id, partitions }));
            image.topic_ids.insert(name.to_string(), id);
        }
        image
    }

    fn request(topics: &[&str], cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        let mut r = DescribeTopicPartitionsRequest::default();
        r.topics = topics.iter().map(|n| TopicRequest::default().with_name(TopicName(sb(n.to_string())))).collect();
        r.cursor = cursor.map(|(t, p)| RequestCursor::default().with_topic_name(TopicName(sb(t.to_string()))).with_partition_index(p));
        r
    }

    /// (topic, error, partition indexes) per answered topic, and the next cursor.
    fn summary(r: &DescribeTopicPartitionsResponse) -> (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>) {
        let topics = r.topics.iter().map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code, t.partitions.iter().map(|p| p.partition_index).collect())).collect();
        (topics, r.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
    }

    fn row(name: &str, code: i16, partitions: &[i32]) -> (String, i16, Vec<i32>) {
        (name.to_string(), code, partitions.to_vec())
    }

    #[test]
    fn pages_through_every_topic_with_a_cursor() {
        let image = image();
        let first = describe(&image, &request(&[], None), 4);
        assert_eq!(summary(&first), (vec![row("a", 0, &[0, 1, 2]), row("b", 0, &[0])], Some(("b".to_string(), 1))));
        let second = describe(&image, &request(&[], Some(("b", 1))), 4);
        assert_eq!(summary(&second), (vec![row("b", 0, &[1]), row("c", 0, &[0])], None));
        // A page that fills exactly at a topic's end points at the next topic's first partition.
        let exact = describe(&image, &request(&[], None), 3);
        assert_eq!(summary(&exact), (vec![row("a", 0, &[0, 1, 2])], Some(("b".to_string(), 0))));
        // A cursor past a topic's partitions (a client's word, not ours) describes none of them.
        let past = describe(&image, &request(&[], Some(("b", 9))), 4);
        assert_eq!(summary(&past), (vec![row("b", 0, &[]), row("c", 0, &[0])], None));
        let negative = describe(&image, &request(&["a"], Some(("a", -5))), 4);
        assert_eq!(summary(&negative), (vec![row("a", 0, &[0, 1, 2])], None));
    }

    #[test]
    fn listed_topics_sort_and_unknown_ones_are_reported() {
        let image = image();
        let r = describe(&image, &request(&["c", "nope", "a", "c", "bad/name"], None), 2000);
        let (topics, next) = summary(&r);
        assert_eq!(topics, vec![row("a", 0, &[0, 1, 2]), row("bad/name", errors::INVALID_TOPIC_EXCEPTION, &[]), row("c", 0, &[0]), row("nope", errors::UNKNOWN_TOPIC_OR_PARTITION, &[])]);
        assert_eq!(next, None);
        assert!(r.topics.iter().filter(|t| t.error_code != 0).all(|t| t.topic_id.is_nil()));
    }

    #[test]
    fn a_cursor_outside_the_listed_topics_is_refused() {
        let r = describe(&image(), &request(&["a", "c"], Some(("b", 0))), 2000);
        assert_eq!(summary(&r).0, vec![row("a", errors::INVALID_REQUEST, &[]), row("c", errors::INVALID_REQUEST, &[])]);
    }

    #[test]
    fn partitions_carry_elr_and_offline_replicas() {
        let r = describe(&image(), &request(&["a"], None), 2000);
        let p = &r.topics[0].partitions;
        assert_eq!(p[0].leader_id, BrokerId(2));
        // Broker 3 is not registered: no leader, and offline with the fenced broker 1.
        assert_eq!(p[1].leader_id, BrokerId(-1));
        assert_eq!(p[0].offline_replicas, vec![BrokerId(1), BrokerId(3)]);
        assert_eq!(p[0].eligible_leader_replicas, Some(vec![BrokerId(1)]));
        assert_eq!(p[0].last_known_elr, Some(vec![BrokerId(3)]));
        assert_eq!((p[0].leader_epoch, r.topics[0].topic_authorized_operations), (4, TOPIC_OPERATIONS));
    }
}
