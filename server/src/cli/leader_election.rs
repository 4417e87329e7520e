//! `gregor leader-election`: preferred or unclean leader elections through the ElectLeaders
//! API, shaped like `kafka-leader-election.sh` (its options and its output lines).

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{connect, error_name};

/// Which partitions to elect for.
pub enum Partitions {
    All,
    Named(Vec<(String, i32)>),
}

/// Reads `--path-to-json-file`: `{"partitions": [{"topic": "t", "partition": 0}, …]}`.
pub fn read_json_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, i32)>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
    let list = v.get("partitions").and_then(|p| p.as_array()).ok_or_else(|| anyhow::anyhow!("{}: expected {{\"partitions\": [...]}}", path.display()))?;
    let mut out = Vec::new();
    for p in list {
        let topic = p.get("topic").and_then(|t| t.as_str());
        let partition = p.get("partition").and_then(|x| x.as_i64()).and_then(|x| i32::try_from(x).ok());
        match (topic, partition) {
            (Some(t), Some(n)) => out.push((t.to_string(), n)),
            _ => anyhow::bail!("{}: every entry needs \"topic\" and \"partition\": {p}", path.display()),
        }
    }
    if out.is_empty() {
        anyhow::bail!("{}: no partitions listed", path.display());
    }
    Ok(out)
}

pub async fn run(bootstrap: &str, election_type: &str, partitions: Partitions) -> anyhow::Result<()> {
    let (wire, name) = match election_type.to_ascii_uppercase().as_str() {
        "PREFERRED" => (0i8, "PREFERRED"),
        "UNCLEAN" => (1, "UNCLEAN"),
        other => anyhow::bail!("--election-type must be preferred or unclean, not {other:?}"),
    };
    let mut client = connect(bootstrap).await?;
    let mut req = ElectLeadersRequest::default();
    req.election_type = wire;
    req.timeout_ms = 30_000;
    req.topic_partitions = match partitions {
        Partitions::All => None,
        Partitions::Named(list) => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for (t, p) in list {
                by_topic.entry(t).or_default().push(p);
            }
            Some(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        let mut tp = TopicPartitions::default();
                        tp.topic = TopicName(StrBytes::from_string(t));
                        tp.partitions = ps;
                        tp
                    })
                    .collect(),
            )
        }
    };
    let resp = client.send(&req).await?;
    if resp.error_code != 0 {
        anyhow::bail!("Error completing leader election ({name}): {} ({})", error_name(resp.error_code), resp.error_code);
    }
    let (mut done, mut noop, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let tp = format!("{}-{}", t.topic.0, p.partition_id);
            match p.error_code {
                0 => done.push(tp),
                84 => noop.push(tp),
                code => failed.push((tp, format!("{} ({code}){}", error_name(code), p.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()))),
            }
        }
    }
    if !done.is_empty() {
        println!("Successfully completed leader election ({name}) for partitions {}", done.join(", "));
    }
    if !noop.is_empty() {
        println!("Valid replica already elected for partitions {}", noop.join(", "));
    }
    for (tp, why) in &failed {
        println!("Error completing leader election ({name}) for partition: {tp}: {why}");
    }
    if !failed.is_empty() {
        anyhow::bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}
