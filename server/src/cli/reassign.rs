//! `gregor partitions reassign`: move partition replicas between brokers through
//! AlterPartitionReassignments / ListPartitionReassignments, shaped like
//! `kafka-reassign-partitions.sh` — the same JSON files and the same output lines for
//! `--generate`, `--execute`, `--verify`, `--cancel` and `--list`.
//!
//! A reassignment file is `{"version":1,"partitions":[{"topic":"t","partition":0,
//! "replicas":[1,2,3],"log_dirs":["any","any","any"]}]}` (`log_dirs` optional; only `"any"`, as
//! Gregor brokers have one log directory).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::{alter_config_ops, connect, error_name, metadata};
use crate::broker::throttle::{FOLLOWER_THROTTLED_RATE, FOLLOWER_THROTTLED_REPLICAS, LEADER_THROTTLED_RATE, LEADER_THROTTLED_REPLICAS};

const RESOURCE_TOPIC: i8 = gregor_core::metadata::RESOURCE_TOPIC;
const RESOURCE_BROKER: i8 = gregor_core::metadata::RESOURCE_BROKER;

/// (topic, partition) → replicas, sorted by topic then partition.
pub type Assignment = BTreeMap<(String, i32), Vec<i32>>;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn tp((t, p): &(String, i32)) -> String {
    format!("{t}-{p}")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Parses a reassignment file's text, with kafka-reassign-partitions.sh's checks.
pub fn parse_reassignment(text: &str) -> anyhow::Result<Assignment> {
    let v: Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the reassignment file is not JSON: {e}"))?;
    if let Some(version) = v.get("version") {
        if version.as_i64() != Some(1) {
            anyhow::bail!("Not supported version field value {version}");
        }
    }
    let list = v.get("partitions").and_then(Value::as_array).ok_or_else(|| anyhow::anyhow!("the reassignment file needs a \"partitions\" list"))?;
    if list.is_empty() {
        anyhow::bail!("Partition reassignment list cannot be empty");
    }
    let mut out = Assignment::new();
    let mut duplicates = Vec::new();
    for p in list {
        let topic = p.get("topic").and_then(Value::as_str).ok_or_else(|| anyhow::anyhow!("every partition needs a \"topic\": {p}"))?;
        let partition = p.get("partition").and_then(Value::as_i64).and_then(|x| i32::try_from(x).ok()).ok_or_else(|| anyhow::anyhow!("every partition needs a \"partition\": {p}"))?;
        let replicas: Vec<i32> = p
            .get("replicas")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow::anyhow!("every partition needs \"replicas\": {p}"))?
            .iter()
            .map(|r| r.as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(|| anyhow::anyhow!("replicas must be broker ids: {p}")))
            .collect::<anyhow::Result<_>>()?;
        if replicas.is_empty() {
            anyhow::bail!("Partition replica list cannot be empty");
        }
        if let Some(dirs) = p.get("log_dirs") {
            let dirs = dirs.as_array().ok_or_else(|| anyhow::anyhow!("\"log_dirs\" must be a list: {p}"))?;
            if dirs.len() != replicas.len() {
                anyhow::bail!("Size of replicas list {replicas:?} is different from size of log dirs list {dirs:?} for partition {topic}-{partition}");
            }
            if dirs.iter().any(|d| d.as_str() != Some("any")) {
                anyhow::bail!("log_dirs other than \"any\" are not supported: a Gregor broker has one log directory ({topic}-{partition})");
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = replicas.iter().find(|r| !seen.insert(**r)) {
            anyhow::bail!("Partition replica lists may not contain duplicate entries: {topic}-{partition} contains multiple entries for {dup}");
        }
        if out.insert((topic.to_string(), partition), replicas).is_some() {
            duplicates.push(format!("{topic}-{partition}"));
        }
    }
    if !duplicates.is_empty() {
        anyhow::bail!("Partition reassignment contains duplicate topic partitions: {}", duplicates.join(","));
    }
    Ok(out)
}

/// An assignment as kafka-reassign-partitions.sh prints it (compact JSON, `log_dirs` "any").
/// Fields in Kafka's order, which a JSON map would not keep.
pub fn format_assignment(a: &Assignment) -> String {
    let partitions: Vec<String> = a
        .iter()
        .map(|((t, p), r)| format!(r#"{{"topic":{},"partition":{p},"replicas":{},"log_dirs":{}}}"#, json!(t), json!(r), json!(vec!["any"; r.len()])))
        .collect();
    format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(","))
}

/// The current assignment of every partition of `topics` (None: all), from Metadata.
fn current(md: &MetadataResponse, topics: Option<&BTreeSet<String>>) -> Assignment {
    let mut out = Assignment::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else { continue };
        if topics.is_some_and(|ts| !ts.contains(&name)) || t.error_code != 0 {
            continue;
        }
        for p in &t.partitions {
            out.insert((name.clone(), p.partition_index), p.replica_nodes.iter().map(|b| b.0).collect());
        }
    }
    out
}

/// Ongoing reassignments: (topic, partition) → (replicas, adding, removing).
async fn ongoing(client: &mut gregor_net::client::Client, only: Option<&Assignment>) -> anyhow::Result<BTreeMap<(String, i32), (Vec<i32>, Vec<i32>, Vec<i32>)>> {
    let mut req = ListPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.topics = only.map(|a| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in a.keys() {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut x = ListPartitionReassignmentsTopics::default();
                x.name = TopicName(sb(t));
                x.partition_indexes = ps;
                x
            })
            .collect()
    });
    let resp = client.send(&req).await?;
    if resp.error_code != 0 {
        anyhow::bail!("ListPartitionReassignments: {} ({})", error_name(resp.error_code), resp.error_code);
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| ((t.name.0.to_string(), p.partition_index), (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)))))
        .collect())
}

/// Sends targets (None: cancel); returns the partitions refused, with why.
async fn alter(client: &mut gregor_net::client::Client, targets: &BTreeMap<(String, i32), Option<Vec<i32>>>) -> anyhow::Result<Vec<(String, String)>> {
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.allow_replication_factor_change = true;
    for ((t, p), target) in targets {
        let mut rp = ReassignablePartition::default();
        rp.partition_index = *p;
        rp.replicas = target.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect());
        match req.topics.last_mut() {
            Some(rt) if rt.name.0.as_str() == t => rt.partitions.push(rp),
            _ => {
                let mut rt = ReassignableTopic::default();
                rt.name = TopicName(sb(t));
                rt.partitions.push(rp);
                req.topics.push(rt);
            }
        }
    }
    let resp = client.send(&req).await?;
    if resp.error_code != 0 {
        anyhow::bail!("{} ({}){}", error_name(resp.error_code), resp.error_code, resp.error_message.map(|m| format!(": {m}")).unwrap_or_default());
    }
    let mut failed = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                let why = format!("{} ({}){}", error_name(p.error_code), p.error_code, p.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default());
                failed.push((format!("{}-{}", t.name.0, p.partition_index), why));
            }
        }
    }
    Ok(failed)
}

/// `--generate`: a proposed assignment moving every partition of the listed topics
/// (`{"version":1,"topics":[{"topic":"t"}]}`) onto `brokers`, keeping each one's replication
/// factor.
pub async fn generate(bootstrap: &str, topics_json: &str, brokers: &[i32]) -> anyhow::Result<()> {
    let v: Value = serde_json::from_str(topics_json).map_err(|e| anyhow::anyhow!("the topics file is not JSON: {e}"))?;
    let names: BTreeSet<String> = v
        .get("topics")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow::anyhow!("the topics file needs a \"topics\" list"))?
        .iter()
        .map(|t| t.get("topic").and_then(Value::as_str).map(str::to_string).ok_or_else(|| anyhow::anyhow!("every entry needs a \"topic\": {t}")))
        .collect::<anyhow::Result<_>>()?;
    if brokers.is_empty() {
        anyhow::bail!("--broker-list must name at least one broker");
    }
    let mut client = connect(bootstrap).await?;
    let md = metadata(&mut client, Some(&names.iter().cloned().collect::<Vec<_>>()), false).await?;
    let known: BTreeSet<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    if let Some(b) = brokers.iter().find(|b| !known.contains(b)) {
        anyhow::bail!("Unknown broker id {b}");
    }
    let now = current(&md, Some(&names));
    for n in &names {
        if !now.keys().any(|(t, _)| t == n) {
            anyhow::bail!("Topic {n} not found");
        }
    }
    let candidates: Vec<gregor_core::metadata::placement::Candidate> = md
        .brokers
        .iter()
        .filter(|b| brokers.contains(&b.node_id.0))
        .map(|b| gregor_core::metadata::placement::Candidate { id: b.node_id.0, rack: b.rack.as_ref().map(|r| r.to_string()) })
        .collect();
    let mut proposed = Assignment::new();
    for name in &names {
        let parts: Vec<(&(String, i32), &Vec<i32>)> = now.iter().filter(|((t, _), _)| t == name).collect();
        let rf = parts.first().map_or(1, |(_, r)| r.len()) as i16;
        // Like Kafka's tool, a start drawn at random spreads leaders differently each run.
        let start = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) as usize) % candidates.len();
        let placed = gregor_core::metadata::placement::place(&candidates, 0, parts.len() as i32, rf, start).map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, replicas) in placed.into_iter().enumerate() {
            proposed.insert((name.clone(), i as i32), replicas);
        }
    }
    println!("Current partition replica assignment\n{}\n", format_assignment(&now));
    println!("Proposed partition reassignment configuration\n{}", format_assignment(&proposed));
    Ok(())
}

const YOU_MUST_VERIFY: &str = "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.";

/// The throttle settings of a reassignment, as Kafka's tool computes them: on every topic with a
/// moving partition, its current replicas throttle as leaders and its new replicas as
/// followers; the rate applies on every broker taking part.
fn throttle_plan(before: &Assignment, plan: &Assignment) -> (BTreeMap<String, (Vec<String>, Vec<String>)>, BTreeSet<i32>) {
    let mut topics: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut brokers = BTreeSet::new();
    for ((t, p), target) in plan {
        let Some(now) = before.get(&(t.clone(), *p)) else { continue };
        if now == target {
            continue;
        }
        let entry = topics.entry(t.clone()).or_default();
        entry.0.extend(now.iter().map(|b| format!("{p}:{b}")));
        entry.1.extend(target.iter().filter(|b| !now.contains(b)).map(|b| format!("{p}:{b}")));
        brokers.extend(now.iter().chain(target).copied());
    }
    (topics, brokers)
}

/// Sets the reassignment's throttles (`--throttle`, bytes/s).
async fn set_throttles(client: &mut gregor_net::client::Client, before: &Assignment, plan: &Assignment, rate: u64) -> anyhow::Result<()> {
    let (topics, brokers) = throttle_plan(before, plan);
    for (t, (leaders, followers)) in &topics {
        let mut set = vec![(LEADER_THROTTLED_REPLICAS.to_string(), leaders.join(","))];
        // An empty follower list would throttle nothing; Kafka's tool writes it all the same.
        set.push((FOLLOWER_THROTTLED_REPLICAS.to_string(), followers.join(",")));
        alter_config_ops(client, RESOURCE_TOPIC, t, &set, &[]).await.map_err(|e| anyhow::anyhow!("cannot set the throttled replicas of topic {t}: {e}"))?;
    }
    for b in &brokers {
        let set = [(LEADER_THROTTLED_RATE.to_string(), rate.to_string()), (FOLLOWER_THROTTLED_RATE.to_string(), rate.to_string())];
        alter_config_ops(client, RESOURCE_BROKER, &b.to_string(), &set, &[]).await.map_err(|e| anyhow::anyhow!("cannot set the throttle rate of broker {b}: {e}"))?;
    }
    Ok(())
}

/// Removes every reassignment throttle: the rates on all `brokers`, the throttled replicas of
/// `topics` (what `--verify` does once the reassignments are complete).
async fn clear_throttles(client: &mut gregor_net::client::Client, brokers: &[i32], topics: &BTreeSet<String>) -> anyhow::Result<()> {
    println!();
    println!("Clearing broker-level throttles on brokers {}", brokers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","));
    for b in brokers {
        let delete = [LEADER_THROTTLED_RATE.to_string(), FOLLOWER_THROTTLED_RATE.to_string()];
        alter_config_ops(client, RESOURCE_BROKER, &b.to_string(), &[], &delete).await.map_err(|e| anyhow::anyhow!("cannot clear the throttle rate of broker {b}: {e}"))?;
    }
    println!("Clearing topic-level throttles on topic{} {}", if topics.len() == 1 { "" } else { "s" }, topics.iter().cloned().collect::<Vec<_>>().join(","));
    for t in topics {
        let delete = [LEADER_THROTTLED_REPLICAS.to_string(), FOLLOWER_THROTTLED_REPLICAS.to_string()];
        alter_config_ops(client, RESOURCE_TOPIC, t, &[], &delete).await.map_err(|e| anyhow::anyhow!("cannot clear the throttled replicas of topic {t}: {e}"))?;
    }
    Ok(())
}

/// `--execute`: starts the reassignments of the file. Refused while any reassignment is under
/// way unless `additional`. With `throttle` (bytes/s), replication for the moves is throttled
/// first, until `--verify` sees them complete.
pub async fn execute(bootstrap: &str, plan: &Assignment, additional: bool, throttle: Option<u64>) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    if !additional && !ongoing(&mut client, None).await?.is_empty() {
        anyhow::bail!(
            "Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment."
        );
    }
    let md = metadata(&mut client, None, false).await?;
    let known: BTreeSet<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    if let Some(b) = plan.values().flatten().find(|b| !known.contains(b)) {
        anyhow::bail!("Unknown broker id {b}");
    }
    let topics: BTreeSet<String> = plan.keys().map(|(t, _)| t.clone()).collect();
    let now = current(&md, Some(&topics));
    let missing: Vec<String> = plan.keys().filter(|k| !now.contains_key(*k)).map(tp).collect();
    if !missing.is_empty() {
        anyhow::bail!("Topic or partition does not exist: {}", missing.join(","));
    }
    let before: Assignment = now.into_iter().filter(|(k, _)| plan.contains_key(k)).collect();
    println!("Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback", format_assignment(&before));
    if let Some(rate) = throttle {
        println!("{YOU_MUST_VERIFY}");
        set_throttles(&mut client, &before, plan, rate).await?;
        println!("The inter-broker throttle limit was set to {rate} B/s");
    }
    let targets = plan.iter().map(|(k, r)| (k.clone(), Some(r.clone()))).collect();
    let failed = alter(&mut client, &targets).await?;
    if !failed.is_empty() {
        println!("Error reassigning partition(s):");
        for (p, why) in &failed {
            println!("{p}: {why}");
        }
        anyhow::bail!("{} partition reassignment(s) failed", failed.len());
    }
    println!("Successfully started partition reassignment{} for {}", plural(plan.len()), plan.keys().map(tp).collect::<Vec<_>>().join(","));
    Ok(())
}

/// `--verify`: whether each reassignment of the file has completed. Fails while any is still
/// in progress or ended with another replica set. Once all are complete, the throttles are
/// removed unless `preserve_throttles`.
pub async fn verify(bootstrap: &str, plan: &Assignment, preserve_throttles: bool) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let running = ongoing(&mut client, Some(plan)).await?;
    let topics: BTreeSet<String> = plan.keys().map(|(t, _)| t.clone()).collect();
    let md = metadata(&mut client, Some(&topics.into_iter().collect::<Vec<_>>()), false).await?;
    let now = current(&md, None);
    let join = |v: &[i32]| v.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    println!("Status of partition reassignment:");
    let mut unfinished = 0;
    for (k, target) in plan {
        if running.contains_key(k) {
            println!("Reassignment of partition {} is still in progress.", tp(k));
            unfinished += 1;
        } else if now.get(k) == Some(target) {
            println!("Reassignment of partition {} is completed.", tp(k));
        } else {
            let have = now.get(k).map_or_else(|| "unknown".to_string(), |r| join(r));
            println!("There is no active reassignment of partition {}, but replica set is {have} rather than {}.", tp(k), join(target));
            unfinished += 1;
        }
    }
    if unfinished > 0 {
        anyhow::bail!("{unfinished} partition reassignment(s) not completed");
    }
    if !preserve_throttles {
        let mut brokers: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort_unstable();
        let topics: BTreeSet<String> = plan.keys().map(|(t, _)| t.clone()).collect();
        clear_throttles(&mut client, &brokers, &topics).await?;
    }
    Ok(())
}

/// `--cancel`: cancels the file's reassignments that are under way.
pub async fn cancel(bootstrap: &str, plan: &Assignment) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let running = ongoing(&mut client, Some(plan)).await?;
    let targets: BTreeMap<(String, i32), Option<Vec<i32>>> = plan.keys().filter(|k| running.contains_key(*k)).map(|k| (k.clone(), None)).collect();
    if targets.is_empty() {
        println!("None of the specified partition reassignments are active.");
        return Ok(());
    }
    let failed = alter(&mut client, &targets).await?;
    if !failed.is_empty() {
        println!("Error cancelling partition reassignment{} for:", plural(failed.len()));
        for (p, why) in &failed {
            println!("{p}: {why}");
        }
        anyhow::bail!("{} cancellation(s) failed", failed.len());
    }
    println!("Successfully cancelled partition reassignment{} for: {}", plural(targets.len()), targets.keys().map(tp).collect::<Vec<_>>().join(","));
    Ok(())
}

/// `--list`: every reassignment under way.
pub async fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let running = ongoing(&mut client, None).await?;
    if running.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    let join = |v: &[i32]| v.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    println!("Current partition reassignments:");
    for (k, (replicas, adding, removing)) in &running {
        println!("{}: replicas: {}. adding: {}. removing: {}.", tp(k), join(replicas), join(adding), join(removing));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignment_files_parse_and_print_like_kafkas_tool() {
        let a = parse_reassignment(r#"{"version":1,"partitions":[{"topic":"b","partition":1,"replicas":[3,1]},{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}"#).unwrap();
        assert_eq!(a.keys().cloned().collect::<Vec<_>>(), vec![("a".to_string(), 0), ("b".to_string(), 1)]);
        assert_eq!(
            format_assignment(&a),
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},{"topic":"b","partition":1,"replicas":[3,1],"log_dirs":["any","any"]}]}"#
        );
        assert_eq!(parse_reassignment(&format_assignment(&a)).unwrap(), a);
        let err = |s: &str| parse_reassignment(s).unwrap_err().to_string();
        assert_eq!(err(r#"{"version":2,"partitions":[]}"#), "Not supported version field value 2");
        assert_eq!(err(r#"{"partitions":[]}"#), "Partition reassignment list cannot be empty");
        assert_eq!(err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[]}]}"#), "Partition replica list cannot be empty");
        assert!(err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#).contains("a-0 contains multiple entries for 1"));
        assert!(err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#).contains("duplicate topic partitions: a-0"));
        assert!(err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/x"]}]}"#).contains("one log directory"));
        assert!(err("not json").contains("not JSON"));
    }

    #[test]
    fn throttles_cover_current_replicas_as_leaders_and_new_ones_as_followers() {
        let a = |v: &[(&str, i32, &[i32])]| v.iter().map(|(t, p, r)| ((t.to_string(), *p), r.to_vec())).collect::<Assignment>();
        let before = a(&[("t", 0, &[1, 2]), ("t", 1, &[2, 3]), ("u", 0, &[1])]);
        let plan = a(&[("t", 0, &[2, 4]), ("t", 1, &[2, 3]), ("u", 0, &[1])]);
        let (topics, brokers) = throttle_plan(&before, &plan);
        // t-1 and u-0 do not move: u gets no throttle, t only for partition 0.
        assert_eq!(topics.len(), 1);
        assert_eq!(topics["t"], (vec!["0:1".to_string(), "0:2".to_string()], vec!["0:4".to_string()]));
        assert_eq!(brokers, [1, 2, 4].into());
    }
}
