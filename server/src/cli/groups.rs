//! `gregor groups`: list, describe, reset-offsets and delete consumer groups, shaped like
//! `kafka-consumer-groups.sh`. A group's requests go to its coordinator (found with
//! FindCoordinator), offset lookups to each partition's leader, and the list is gathered from
//! every broker, as each lists the groups it coordinates.

use std::collections::BTreeMap;

use gregor_core::consumer_protocol::decode_assignment;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{connect, error_name, metadata};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut boot = connect(bootstrap).await?;
    let md = metadata(&mut boot, Some(&[]), false).await?;
    let mut names = std::collections::BTreeSet::new();
    for b in &md.brokers {
        let mut client = connect(&format!("{}:{}", b.host.as_str(), b.port)).await?;
        let resp = client.send(&ListGroupsRequest::default()).await?;
        if resp.error_code != 0 {
            anyhow::bail!("ListGroups at broker {} failed: {} ({})", b.node_id.0, error_name(resp.error_code), resp.error_code);
        }
        names.extend(resp.groups.iter().map(|g| g.group_id.0.to_string()));
    }
    for n in names {
        println!("{n}");
    }
    Ok(())
}

async fn committed(client: &mut gregor_net::client::Client, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut req = OffsetFetchRequest::default();
    // v8 moved the group into a list; only the fields of the version in use may be set.
    if client.version_for::<OffsetFetchRequest>().unwrap_or(0) >= 8 {
        let mut g = kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = GroupId(sb(group));
        g.topics = None;
        req.groups = vec![g];
    } else {
        req.group_id = GroupId(sb(group));
        req.topics = None;
    }
    let resp = client.send(&req).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
        }
    }
    for g in resp.groups {
        for t in g.topics {
            for p in t.partitions {
                out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// ListOffsets for `parts` at `ts`, each asked of its leader.
async fn list_offsets(bootstrap: &str, parts: &[(String, i32)], ts: i64) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut boot = connect(bootstrap).await?;
    let topics: Vec<String> = parts.iter().map(|(t, _)| t.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let md = metadata(&mut boot, Some(&topics), false).await?;
    let addrs: BTreeMap<i32, String> = md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            if parts.contains(&(name.clone(), p.partition_index)) && p.leader_id.0 >= 0 {
                by_leader.entry(p.leader_id.0).or_default().push((name.clone(), p.partition_index));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (leader, ps) in by_leader {
        let Some(addr) = addrs.get(&leader) else { continue };
        let mut client = connect(addr).await?;
        out.extend(list_offsets_at(&mut client, &ps, ts).await?);
    }
    Ok(out)
}

async fn list_offsets_at(client: &mut gregor_net::client::Client, parts: &[(String, i32)], ts: i64) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut lt = ListOffsetsTopic::default();
            lt.name = TopicName(sb(t));
            lt.partitions = ps
                .into_iter()
                .map(|p| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = p;
                    lp.timestamp = ts;
                    lp.current_leader_epoch = -1;
                    lp
                })
                .collect();
            lt
        })
        .collect();
    let resp = super::list_offsets(client, &req).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 {
                out.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

pub async fn describe(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut client = super::coordinator(bootstrap, group).await?;
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb(group))];
    let resp = client.send(&req).await?;
    let d = resp.groups.into_iter().next().ok_or_else(|| anyhow::anyhow!("empty DescribeGroups response"))?;
    if d.error_code != 0 {
        anyhow::bail!("DescribeGroups {group}: {} ({})", error_name(d.error_code), d.error_code);
    }
    let offsets = committed(&mut client, group).await?;
    if d.group_state.as_str() == "Dead" && offsets.is_empty() {
        anyhow::bail!("Consumer group '{group}' does not exist.");
    }
    // partition → (member, host, client) from the members' assignments.
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &d.members {
        for (t, ps) in decode_assignment(&m.member_assignment).unwrap_or_default() {
            for p in ps {
                owners.insert((t.clone(), p), (m.member_id.to_string(), m.client_host.to_string(), m.client_id.to_string()));
            }
        }
    }
    let mut parts: Vec<(String, i32)> = offsets.keys().cloned().collect();
    parts.extend(owners.keys().cloned());
    parts.sort();
    parts.dedup();
    let ends = list_offsets(bootstrap, &parts, -1).await?;
    if d.members.is_empty() {
        println!("\nConsumer group '{group}' has no active members.");
    }
    println!();
    println!("{:<20} {:<24} {:<10} {:<15} {:<15} {:<8} {:<40} {:<16} CLIENT-ID", "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST");
    for key in parts {
        let current = offsets.get(&key).copied().filter(|&o| o >= 0);
        let end = ends.get(&key).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".to_string(),
        };
        let (member, host, client) = owners.get(&key).cloned().unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{:<20} {:<24} {:<10} {:<15} {:<15} {:<8} {:<40} {:<16} {}",
            group,
            key.0,
            key.1,
            current.map_or("-".to_string(), |c| c.to_string()),
            end.map_or("-".to_string(), |e| e.to_string()),
            lag,
            member,
            host,
            client
        );
    }
    println!("\nState: {}", d.group_state.as_str());
    Ok(())
}

/// Where `reset-offsets` moves a group.
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Datetime(i64),
}

/// Parses `YYYY-MM-DDTHH:mm:SS[.sss]` (UTC) into epoch milliseconds, as kafka-consumer-groups'
/// `--to-datetime` takes.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("expected YYYY-MM-DDTHH:mm:SS.sss, got {s:?}");
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let ms: i64 = format!("{ms:0<3}")[..3].parse().map_err(|_| bad())?;
    if d.len() != 3 || t.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) || t[0] > 23 || t[1] > 59 || t[2] > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

pub async fn reset_offsets(bootstrap: &str, group: &str, topic: &str, to: ResetTo, execute: bool) -> anyhow::Result<()> {
    let mut client = super::coordinator(bootstrap, group).await?;
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb(group))];
    let d = client.send(&req).await?.groups.into_iter().next().ok_or_else(|| anyhow::anyhow!("empty DescribeGroups response"))?;
    if !d.members.is_empty() {
        anyhow::bail!("Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.", d.group_state.as_str());
    }
    let md = metadata(&mut client, Some(&[topic.to_string()]), false).await?;
    let t = md.topics.first().ok_or_else(|| anyhow::anyhow!("no metadata for {topic}"))?;
    if t.error_code != 0 {
        anyhow::bail!("topic {topic}: {} ({})", error_name(t.error_code), t.error_code);
    }
    let parts: Vec<(String, i32)> = t.partitions.iter().map(|p| (topic.to_string(), p.partition_index)).collect();
    let start = list_offsets(bootstrap, &parts, -2).await?;
    let end = list_offsets(bootstrap, &parts, -1).await?;
    let targets: BTreeMap<(String, i32), i64> = match to {
        ResetTo::Earliest => start.clone(),
        ResetTo::Latest => end.clone(),
        ResetTo::Offset(o) => parts.iter().map(|k| (k.clone(), o)).collect(),
        ResetTo::Datetime(ts) => {
            let found = list_offsets(bootstrap, &parts, ts).await?;
            parts.iter().map(|k| (k.clone(), found.get(k).copied().filter(|&o| o >= 0).or(end.get(k).copied()).unwrap_or(0))).collect()
        }
    };
    // Clamp into [log start, log end], as Kafka does.
    let targets: BTreeMap<(String, i32), i64> = targets
        .into_iter()
        .map(|(k, o)| {
            let lo = start.get(&k).copied().unwrap_or(0);
            let hi = end.get(&k).copied().unwrap_or(o);
            let v = o.clamp(lo, hi.max(lo));
            (k, v)
        })
        .collect();
    println!("\n{:<20} {:<24} {:<10} NEW-OFFSET", "GROUP", "TOPIC", "PARTITION");
    for ((t, p), o) in &targets {
        println!("{group:<20} {t:<24} {p:<10} {o}");
    }
    if !execute {
        println!("\n(dry run: add --execute to apply)");
        return Ok(());
    }
    let mut topic_req = OffsetCommitRequestTopic::default();
    topic_req.name = TopicName(sb(topic));
    topic_req.partitions = targets
        .iter()
        .map(|((_, p), o)| {
            let mut cp = OffsetCommitRequestPartition::default();
            cp.partition_index = *p;
            cp.committed_offset = *o;
            cp.committed_leader_epoch = -1;
            cp.committed_metadata = Some(sb(""));
            cp
        })
        .collect();
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(sb(group));
    commit.generation_id_or_member_epoch = -1;
    commit.topics = vec![topic_req];
    let resp = client.send(&commit).await?;
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                anyhow::bail!("reset of {}-{} failed: {} ({})", t.name.0, p.partition_index, error_name(p.error_code), p.error_code);
            }
        }
    }
    Ok(())
}

pub async fn delete(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut client = super::coordinator(bootstrap, group).await?;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(sb(group))];
    let resp = client.send(&req).await?;
    for r in resp.results {
        if r.error_code != 0 {
            anyhow::bail!("Deletion of group '{group}' failed: {} ({})", error_name(r.error_code), r.error_code);
        }
    }
    println!("Deletion of requested consumer groups ('{group}') was successful.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime("2024-02-29T12:34:56.789"), Ok(1_709_210_096_789));
        assert!(parse_datetime("2024-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }
}
