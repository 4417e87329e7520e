//! `gregor topics`: create, list, describe, delete and alter-config, shaped like
//! `kafka-topics.sh` / `kafka-configs.sh`.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, DescribeTopicPartitionsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{connect, error_name, metadata};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn create(bootstrap: &str, name: &str, partitions: Option<i32>, replication_factor: Option<i16>, configs: &[(String, String)], if_not_exists: bool) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let mut t = CreatableTopic::default();
    t.name = TopicName(sb(name));
    t.num_partitions = partitions.unwrap_or(-1);
    t.replication_factor = replication_factor.unwrap_or(-1);
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = sb(k);
            c.value = Some(sb(v));
            c
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 30_000;
    let resp = client.send(&req).await?;
    for r in resp.topics {
        if r.error_code == 36 && if_not_exists {
            continue;
        }
        if r.error_code != 0 {
            anyhow::bail!("Error while executing topic command: {} ({}){}", error_name(r.error_code), r.error_code, r.error_message.map(|m| format!(": {m}")).unwrap_or_default());
        }
        println!("Created topic {}.", r.name.0);
    }
    Ok(())
}

pub async fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let md = metadata(&mut client, None, false).await?;
    let mut names: Vec<String> = md.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
    names.sort();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// The topic's configs that are not defaults, as `k=v` pairs: what kafka-topics.sh lists under
/// `Configs:` (its topic overrides, and values the broker's own settings give it).
async fn topic_overrides(client: &mut gregor_net::client::Client, topic: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = sb(topic);
    res.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![res];
    let resp = client.send(&req).await?;
    let mut out = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            continue;
        }
        for c in r.configs {
            // DEFAULT_CONFIG (5) is the one source kafka-topics.sh leaves out.
            if c.config_source != 5 {
                out.push((c.name.to_string(), c.value.map(|v| v.to_string()).unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

/// A topic's effective `min.insync.replicas` (its override or the broker's).
async fn topic_min_insync(client: &mut gregor_net::client::Client, topic: &str) -> anyhow::Result<usize> {
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = sb(topic);
    res.configuration_keys = Some(vec![sb("min.insync.replicas")]);
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![res];
    let resp = client.send(&req).await?;
    let value = resp.results.iter().flat_map(|r| r.configs.iter()).find(|c| c.name.as_str() == "min.insync.replicas").and_then(|c| c.value.as_ref());
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(1))
}

/// `kafka-topics.sh --describe`'s partition filters. With any of them set only the matching
/// partitions are printed, without the topic lines, as kafka-topics.sh does.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionFilter {
    pub under_replicated: bool,
    pub unavailable: bool,
    pub under_min_isr: bool,
    pub at_min_isr: bool,
}

impl PartitionFilter {
    fn any(&self) -> bool {
        self.under_replicated || self.unavailable || self.under_min_isr || self.at_min_isr
    }

    /// Whether a partition is shown, given the topic's min.insync.replicas.
    fn shows(&self, p: &PartitionView, min_isr: usize) -> bool {
        if !self.any() {
            return true;
        }
        let isr = p.isr.len();
        (self.under_replicated && isr < p.replicas.len())
            || (self.unavailable && !p.leader_live)
            || (self.under_min_isr && isr < min_isr)
            || (self.at_min_isr && isr == min_isr)
    }
}

/// One topic as described, by DescribeTopicPartitions or by Metadata.
struct TopicView {
    name: String,
    id: uuid::Uuid,
    error_code: i16,
    partitions: Vec<PartitionView>,
}

/// One partition as described. The eligible leader replicas are `None` when the broker could
/// only be asked through Metadata, which does not carry them.
#[derive(Debug, Default)]
struct PartitionView {
    index: i32,
    /// -1 without one.
    leader: i32,
    /// Whether the leader is a live (registered, unfenced) broker.
    leader_live: bool,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    elr: Option<Vec<i32>>,
    last_known_elr: Option<Vec<i32>>,
}

pub async fn describe(bootstrap: &str, name: Option<&str>, filter: PartitionFilter) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let mut topics = if client.version_for::<DescribeTopicPartitionsRequest>().is_some() {
        describe_topic_partitions(&mut client, name).await?
    } else {
        describe_by_metadata(&mut client, name).await?
    };
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for t in topics {
        if t.error_code != 0 {
            anyhow::bail!("Error while executing topic command: Topic '{}' {} ({})", t.name, error_name(t.error_code), t.error_code);
        }
        let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
        let overrides = topic_overrides(&mut client, &t.name).await?;
        let min_isr = if filter.under_min_isr || filter.at_min_isr { topic_min_insync(&mut client, &t.name).await? } else { 1 };
        if !filter.any() {
            let configs = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            // As kafka-topics.sh: no TopicId field for the zero id (a broker that has no topic ids).
            let topic_id = if t.id.is_nil() { String::new() } else { format!("\tTopicId: {}", base64_uuid(t.id)) };
            println!("Topic: {}{topic_id}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {configs}", t.name, t.partitions.len());
        }
        let mut parts = t.partitions;
        parts.sort_by_key(|p| p.index);
        for p in parts.iter().filter(|p| filter.shows(p, min_isr)) {
            println!("{}", partition_line(&t.name, p));
        }
    }
    Ok(())
}

/// Most partitions asked for per DescribeTopicPartitions page (Kafka's admin client default).
const PARTITIONS_PER_PAGE: i32 = 2000;

/// Every topic (or `name`) by DescribeTopicPartitions, following its cursor page by page.
async fn describe_topic_partitions(client: &mut gregor_net::client::Client, name: Option<&str>) -> anyhow::Result<Vec<TopicView>> {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut topics: Vec<TopicView> = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    loop {
        let mut req = DescribeTopicPartitionsRequest::default();
        req.topics = name.map(|n| TopicRequest::default().with_name(TopicName(sb(n)))).into_iter().collect();
        req.response_partition_limit = PARTITIONS_PER_PAGE;
        req.cursor = cursor.as_ref().map(|(t, p)| Cursor::default().with_topic_name(TopicName(sb(t))).with_partition_index(*p));
        let resp = client.send(&req).await?;
        for t in resp.topics {
            let tname = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            let partitions = t.partitions.iter().map(|p| PartitionView {
                index: p.partition_index,
                leader: p.leader_id.0,
                leader_live: p.leader_id.0 >= 0 && !p.offline_replicas.contains(&p.leader_id),
                replicas: ids(&p.replica_nodes),
                isr: ids(&p.isr_nodes),
                elr: p.eligible_leader_replicas.as_deref().map(ids),
                last_known_elr: p.last_known_elr.as_deref().map(ids),
            });
            // A topic split across pages continues in the next one.
            match topics.last_mut().filter(|last| last.name == tname) {
                Some(last) => last.partitions.extend(partitions),
                None => topics.push(TopicView { name: tname, id: t.topic_id, error_code: t.error_code, partitions: partitions.collect() }),
            }
        }
        let next = resp.next_cursor.map(|c| (c.topic_name.0.to_string(), c.partition_index));
        match next {
            None => return Ok(topics),
            Some(n) if Some(&n) == cursor.as_ref() => anyhow::bail!("DescribeTopicPartitions returned the cursor it was given ({} {}): stopping", n.0, n.1),
            n => cursor = n,
        }
    }
}

/// Every topic (or `name`) by Metadata, for a broker without DescribeTopicPartitions.
async fn describe_by_metadata(client: &mut gregor_net::client::Client, name: Option<&str>) -> anyhow::Result<Vec<TopicView>> {
    let names = name.map(|n| vec![n.to_string()]);
    let md = metadata(client, names.as_deref(), false).await?;
    let live: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(md
        .topics
        .into_iter()
        .map(|t| TopicView {
            name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
            id: t.topic_id,
            error_code: t.error_code,
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionView {
                    index: p.partition_index,
                    leader: p.leader_id.0,
                    leader_live: p.leader_id.0 >= 0 && live.contains(&p.leader_id.0),
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    elr: None,
                    last_known_elr: None,
                })
                .collect(),
        })
        .collect())
}

/// One partition as kafka-topics.sh (Kafka 4) prints it: the leader ("none" without one), the
/// replicas in assignment order, the ISR, and the eligible leader replicas (KIP-966) and last
/// known ELR — "N/A" when the broker could only be asked through Metadata, as kafka-topics.sh
/// prints them then.
fn partition_line(topic: &str, p: &PartitionView) -> String {
    let join = |v: &[i32]| v.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    let or_na = |v: &Option<Vec<i32>>| v.as_deref().map_or_else(|| "N/A".to_string(), join);
    let leader = if p.leader < 0 { "none".to_string() } else { p.leader.to_string() };
    format!(
        "\tTopic: {topic}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tElr: {}\tLastKnownElr: {}",
        p.index,
        join(&p.replicas),
        join(&p.isr),
        or_na(&p.elr),
        or_na(&p.last_known_elr)
    )
}

/// Kafka prints topic ids as URL-safe base64 without padding.
pub(super) fn base64_uuid(id: uuid::Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let chunk = &bytes[i..(i + 3).min(bytes.len())];
        let n = chunk.iter().enumerate().fold(0u32, |acc, (j, &b)| acc | (b as u32) << (16 - 8 * j));
        let chars = chunk.len() + 1;
        for j in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * j)) & 63) as usize] as char);
        }
        i += 3;
    }
    out
}

pub async fn delete(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![TopicName(sb(name))];
    let mut st = DeleteTopicState::default();
    st.name = Some(TopicName(sb(name)));
    req.topics = vec![st];
    req.timeout_ms = 30_000;
    let resp = client.send(&req).await?;
    for r in resp.responses {
        if r.error_code != 0 {
            anyhow::bail!("Error while executing topic command: {} ({}){}", error_name(r.error_code), r.error_code, r.error_message.map(|m| format!(": {m}")).unwrap_or_default());
        }
        println!("Deleted topic {name}.");
    }
    Ok(())
}

pub async fn alter_config(bootstrap: &str, name: &str, add: &[(String, String)], delete: &[String]) -> anyhow::Result<()> {
    if add.is_empty() && delete.is_empty() {
        anyhow::bail!("nothing to change: give --add-config k=v and/or --delete-config k");
    }
    let mut client = connect(bootstrap).await?;
    super::alter_config_ops(&mut client, 2, name, add, delete).await.map_err(|e| anyhow::anyhow!("Error while altering config: {e}"))?;
    println!("Completed updating config for topic {name}.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_lines_as_kafka_topics_prints_them() {
        let mut p = super::PartitionView { index: 2, leader: 3, leader_live: true, replicas: vec![3, 1, 2], isr: vec![3, 1], ..Default::default() };
        assert_eq!(super::partition_line("t", &p), "\tTopic: t\tPartition: 2\tLeader: 3\tReplicas: 3,1,2\tIsr: 3,1\tElr: N/A\tLastKnownElr: N/A");
        p.leader = -1;
        p.isr.clear();
        p.elr = Some(vec![1, 3]);
        p.last_known_elr = Some(vec![]);
        assert_eq!(super::partition_line("t", &p), "\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 3,1,2\tIsr: \tElr: 1,3\tLastKnownElr: ");
    }

    #[test]
    fn topic_id_base64() {
        // 16 zero bytes encode as 22 'A's, as Kafka prints Uuid.ZERO_UUID.
        assert_eq!(super::base64_uuid(uuid::Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(super::base64_uuid(uuid::Uuid::from_u128(u128::MAX)).len(), 22);
    }
}
