//! `gregor cluster`: `describe` (the cluster id, the active controller and every broker, from
//! DescribeCluster and Metadata) and `quorum --status` / `quorum --replication` (the KRaft
//! metadata quorum from DescribeQuorum, shaped like `kafka-metadata-quorum.sh describe`).
//!
//! The quorum views need the quorum leader's answer. A node that does not lead the quorum
//! answers NOT_LEADER_OR_FOLLOWER with the leader it knows; the tool then asks that leader once,
//! at its broker endpoint from DescribeCluster (what a Kafka broker achieves by forwarding), and
//! when the leader has no broker endpoint it says whom to ask instead of printing a follower's
//! partial view as if it were the quorum's.

use std::collections::BTreeMap;

use gregor_core::raft::{METADATA_PARTITION, METADATA_TOPIC};
use gregor_net::client::Client;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::topics::base64_uuid;
use super::{connect, error_name, metadata};

/// One broker as `cluster describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRow {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Partitions it leads, from Metadata.
    pub leaders: usize,
}

/// What `cluster describe` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: String,
    /// -1 when no broker is known to be the controller.
    pub controller_id: i32,
    pub brokers: Vec<BrokerRow>,
}

/// Cluster id, controller and brokers by DescribeCluster (asking for fenced brokers too where
/// the broker serves v2), or by Metadata from a broker without DescribeCluster; partition
/// leaders per broker by Metadata.
async fn cluster_view(client: &mut Client) -> anyhow::Result<ClusterView> {
    let md = metadata(client, None, false).await?;
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for t in &md.topics {
        for p in &t.partitions {
            if p.leader_id.0 >= 0 {
                *leaders.entry(p.leader_id.0).or_default() += 1;
            }
        }
    }
    let mut view = match client.version_for::<DescribeClusterRequest>() {
        Some(version) => {
            let mut req = DescribeClusterRequest::default();
            req.endpoint_type = 1;
            req.include_fenced_brokers = version >= 2;
            let resp = client.send(&req).await?;
            if resp.error_code != 0 {
                anyhow::bail!(
                    "DescribeCluster failed: {} ({}){}",
                    error_name(resp.error_code),
                    resp.error_code,
                    resp.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                );
            }
            ClusterView {
                cluster_id: resp.cluster_id.to_string(),
                controller_id: resp.controller_id.0,
                brokers: resp
                    .brokers
                    .into_iter()
                    .map(|b| BrokerRow {
                        id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                        fenced: b.is_fenced,
                        leaders: 0,
                    })
                    .collect(),
            }
        }
        None => ClusterView {
            cluster_id: md.cluster_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            controller_id: md.controller_id.0,
            brokers: md
                .brokers
                .iter()
                .map(|b| BrokerRow {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: false,
                    leaders: 0,
                })
                .collect(),
        },
    };
    view.brokers.sort_by_key(|b| b.id);
    for b in &mut view.brokers {
        b.leaders = leaders.get(&b.id).copied().unwrap_or(0);
    }
    Ok(view)
}

/// `cluster describe`.
pub fn format_cluster(view: &ClusterView) -> String {
    let controller = if view.controller_id < 0 { "none".to_string() } else { view.controller_id.to_string() };
    let mut out = format!("ClusterId:        {}\nActiveController: {controller}\n", view.cluster_id);
    let rows: Vec<Vec<String>> = view
        .brokers
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                format!("{}:{}", b.host, b.port),
                b.rack.clone().unwrap_or_else(|| "null".to_string()),
                if b.fenced { "Fenced" } else { "Unfenced" }.to_string(),
                if b.id == view.controller_id { "yes" } else { "no" }.to_string(),
                b.leaders.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["BrokerId", "Endpoint", "Rack", "State", "Controller", "PartitionLeaders"], &rows));
    out
}

pub async fn describe(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    let mut view = cluster_view(&mut client).await?;
    if view.controller_id < 0 && client.version_for::<DescribeQuorumRequest>().is_some() {
        // DescribeCluster names a controller only among the brokers it lists; a controller-only
        // active controller is the quorum leader, which DescribeQuorum names.
        if let Ok(resp) = describe_quorum(&mut client).await {
            let p = resp.topics.iter().filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC).flat_map(|t| &t.partitions).next();
            if let Some(p) = p.filter(|p| resp.error_code == 0 && (p.error_code == 0 || p.error_code == 6)) {
                view.controller_id = p.leader_id.0.max(-1);
            }
        }
    }
    print!("{}", format_cluster(&view));
    Ok(())
}

/// The metadata partition of a DescribeQuorum answer, with the nodes' endpoints; an error
/// (naming the leader to ask, when known) when the answer is not the quorum leader's.
fn quorum_partition(resp: DescribeQuorumResponse, asked: &str) -> anyhow::Result<(describe_quorum_response::PartitionData, Vec<describe_quorum_response::Node>)> {
    if resp.error_code != 0 {
        anyhow::bail!(
            "DescribeQuorum failed: {} ({}){}",
            error_name(resp.error_code),
            resp.error_code,
            resp.error_message.map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    let partition = resp
        .topics
        .into_iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == METADATA_PARTITION)
        .ok_or_else(|| anyhow::anyhow!("DescribeQuorum answer has no {METADATA_TOPIC}-{METADATA_PARTITION}"))?;
    if partition.error_code != 0 {
        let mut msg = format!("DescribeQuorum failed: {} ({})", error_name(partition.error_code), partition.error_code);
        if partition.error_code == 6 {
            msg.push_str(&format!(": the node at {asked} does not lead the metadata quorum"));
            if partition.leader_id.0 >= 0 {
                msg.push_str(&format!("; the leader is node {} (epoch {})", partition.leader_id.0, partition.leader_epoch));
                let endpoints: Vec<String> = resp
                    .nodes
                    .iter()
                    .filter(|n| n.node_id == partition.leader_id)
                    .flat_map(|n| n.listeners.iter().map(|l| format!("{}:{}", l.host, l.port)))
                    .collect();
                if !endpoints.is_empty() {
                    msg.push_str(&format!(" at {}", endpoints.join(",")));
                }
            }
        } else if let Some(m) = &partition.error_message {
            msg.push_str(&format!(": {m}"));
        }
        anyhow::bail!(msg);
    }
    Ok((partition, resp.nodes))
}

async fn describe_quorum(client: &mut Client) -> anyhow::Result<DescribeQuorumResponse> {
    let mut p = PartitionData::default();
    p.partition_index = METADATA_PARTITION;
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    t.partitions = vec![p];
    let mut req = DescribeQuorumRequest::default();
    req.topics = vec![t];
    Ok(client.send(&req).await?)
}

/// The leader named by a NOT_LEADER_OR_FOLLOWER answer, if it names one.
fn leader_elsewhere(resp: &DescribeQuorumResponse) -> Option<i32> {
    let p = resp.topics.iter().filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC).flat_map(|t| &t.partitions).next()?;
    (resp.error_code == 0 && p.error_code == 6 && p.leader_id.0 >= 0).then_some(p.leader_id.0)
}

/// The quorum leader's DescribeQuorum answer, asking the leader itself (once) when the
/// bootstrap broker does not lead the quorum; also returns the connection that answered.
async fn leader_view(bootstrap: &str) -> anyhow::Result<(Client, describe_quorum_response::PartitionData, Vec<describe_quorum_response::Node>)> {
    let mut client = connect(bootstrap).await?;
    let resp = describe_quorum(&mut client).await?;
    let Some(leader) = leader_elsewhere(&resp) else {
        let (p, nodes) = quorum_partition(resp, client.addr())?;
        return Ok((client, p, nodes));
    };
    let brokers = cluster_view(&mut client).await?.brokers;
    let Some(b) = brokers.iter().find(|b| b.id == leader && !b.fenced) else {
        // No broker endpoint of the leader: the error says whom to ask.
        let asked = client.addr().to_string();
        return Err(quorum_partition(resp, &asked).err().unwrap_or_else(|| anyhow::anyhow!("the quorum leader {leader} has no broker endpoint")));
    };
    let addr = if b.host.contains(':') { format!("[{}]:{}", b.host, b.port) } else { format!("{}:{}", b.host, b.port) };
    let mut client = connect(&addr).await?;
    let resp = describe_quorum(&mut client).await?;
    let (p, nodes) = quorum_partition(resp, &addr)?;
    Ok((client, p, nodes))
}

/// `quorum --status`, as `kafka-metadata-quorum.sh describe --status` prints it.
pub fn format_status(cluster_id: &str, p: &describe_quorum_response::PartitionData, nodes: &[describe_quorum_response::Node]) -> anyhow::Result<String> {
    let leader = leader_state(p)?;
    // The voter furthest behind; the first of equals, so the leader itself when none is behind it.
    let behind = p.current_voters.iter().reduce(|a, b| if b.log_end_offset < a.log_end_offset { b } else { a }).unwrap_or(leader);
    let max_lag = leader.log_end_offset - behind.log_end_offset;
    let max_lag_time_ms = if behind.replica_id == leader.replica_id {
        0
    } else if leader.last_caught_up_timestamp >= 0 && behind.last_caught_up_timestamp >= 0 {
        leader.last_caught_up_timestamp - behind.last_caught_up_timestamp
    } else {
        -1
    };
    let replicas = |rs: &[ReplicaState]| {
        let items: Vec<String> = rs.iter().map(|r| replica_json(r, nodes)).collect();
        format!("[{}]", items.join(", "))
    };
    Ok(format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {max_lag}\n\
         MaxFollowerLagTimeMs:   {max_lag_time_ms}\n\
         CurrentVoters:          {}\n\
         CurrentObservers:       {}\n",
        p.leader_id.0,
        p.leader_epoch,
        p.high_watermark,
        replicas(&p.current_voters),
        replicas(&p.observers)
    ))
}

/// `{"id": 1, "directoryId": null, "endpoints": ["CONTROLLER://host:9093"]}`: a replica in
/// the status view (directory id null for the zero id; no endpoints key when none are known).
fn replica_json(r: &ReplicaState, nodes: &[describe_quorum_response::Node]) -> String {
    let dir = if r.replica_directory_id.is_nil() { "null".to_string() } else { format!("\"{}\"", base64_uuid(r.replica_directory_id)) };
    let endpoints: Vec<String> = nodes
        .iter()
        .filter(|n| n.node_id == r.replica_id)
        .flat_map(|n| n.listeners.iter())
        .map(|l| {
            let host = if l.host.contains(':') { format!("[{}]", l.host) } else { l.host.to_string() };
            format!("\"{}://{host}:{}\"", l.name, l.port)
        })
        .collect();
    let mut s = format!("{{\"id\": {}, \"directoryId\": {dir}", r.replica_id.0);
    if !endpoints.is_empty() {
        s.push_str(&format!(", \"endpoints\": [{}]", endpoints.join(", ")));
    }
    s.push('}');
    s
}

fn leader_state(p: &describe_quorum_response::PartitionData) -> anyhow::Result<&ReplicaState> {
    p.current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .ok_or_else(|| anyhow::anyhow!("the quorum leader {} is not among the voters the answer lists", p.leader_id.0))
}

/// `quorum --replication`, as `kafka-metadata-quorum.sh describe --replication` prints it: the
/// leader, the other voters, then the observers. With `now_ms`, times are shown as "N ms ago"
/// (`--human-readable`).
pub fn format_replication(p: &describe_quorum_response::PartitionData, now_ms: Option<i64>) -> anyhow::Result<String> {
    let leader = leader_state(p)?;
    let time = |t: i64| match now_ms {
        _ if t < 0 => "-1".to_string(),
        Some(now) => format!("{} ms ago", (now - t).max(0)),
        None => t.to_string(),
    };
    let row = |r: &ReplicaState, status: &str| {
        vec![
            r.replica_id.0.to_string(),
            base64_uuid(r.replica_directory_id),
            r.log_end_offset.to_string(),
            (leader.log_end_offset - r.log_end_offset).to_string(),
            time(r.last_fetch_timestamp),
            time(r.last_caught_up_timestamp),
            status.to_string(),
        ]
    };
    let mut rows = vec![row(leader, "Leader")];
    rows.extend(p.current_voters.iter().filter(|v| v.replica_id != p.leader_id).map(|v| row(v, "Follower")));
    rows.extend(p.observers.iter().map(|o| row(o, "Observer")));
    Ok(table(&["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"], &rows))
}

/// Columns padded to their widest cell, each followed by a tab, as Kafka's tools print tables.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<w$}\t"));
        }
        out.push('\n');
    }
    out
}

/// Which quorum view to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumView {
    Status,
    /// With the current wall-clock time for `--human-readable`.
    Replication { human_readable_now_ms: Option<i64> },
}

pub async fn quorum(bootstrap: &str, view: QuorumView) -> anyhow::Result<()> {
    let (mut client, partition, nodes) = leader_view(bootstrap).await?;
    match view {
        QuorumView::Status => {
            let cluster_id = cluster_view(&mut client).await?.cluster_id;
            print!("{}", format_status(&cluster_id, &partition, &nodes)?);
        }
        QuorumView::Replication { human_readable_now_ms } => print!("{}", format_replication(&partition, human_readable_now_ms)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState};
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn replica(id: i32, leo: i64, fetch: i64, caught_up: i64) -> ReplicaState {
        let mut r = ReplicaState::default();
        r.replica_id = BrokerId(id);
        r.log_end_offset = leo;
        r.last_fetch_timestamp = fetch;
        r.last_caught_up_timestamp = caught_up;
        r
    }

    fn three_voters() -> PartitionData {
        let mut p = PartitionData::default();
        p.leader_id = BrokerId(2);
        p.leader_epoch = 7;
        p.high_watermark = 40;
        p.current_voters = vec![replica(1, 38, 990, 900), replica(2, 42, 1000, 1000), replica(3, 42, 995, 995)];
        p.observers = vec![replica(4, 10, 980, -1)];
        p
    }

    #[test]
    fn status_reports_the_furthest_behind_voter() {
        let mut node = Node::default();
        node.node_id = BrokerId(2);
        let mut l = Listener::default();
        l.name = StrBytes::from_static_str("CONTROLLER");
        l.host = StrBytes::from_static_str("::1");
        l.port = 9093;
        node.listeners = vec![l];
        let s = format_status("cid", &three_voters(), &[node]).unwrap();
        assert_eq!(
            s,
            "ClusterId:              cid\n\
             LeaderId:               2\n\
             LeaderEpoch:            7\n\
             HighWatermark:          40\n\
             MaxFollowerLag:         4\n\
             MaxFollowerLagTimeMs:   100\n\
             CurrentVoters:          [{\"id\": 1, \"directoryId\": null}, {\"id\": 2, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://[::1]:9093\"]}, {\"id\": 3, \"directoryId\": null}]\n\
             CurrentObservers:       [{\"id\": 4, \"directoryId\": null}]\n"
        );
        // No voter behind the leader: no lag at all.
        let mut p = three_voters();
        p.current_voters.retain(|v| v.replica_id.0 != 1);
        let s = format_status("cid", &p, &[]).unwrap();
        assert!(s.contains("MaxFollowerLag:         0\nMaxFollowerLagTimeMs:   0\n"), "{s}");
        // A voter that never caught up: the lag time is unknown.
        let mut p = three_voters();
        p.current_voters[0].last_caught_up_timestamp = -1;
        assert!(format_status("cid", &p, &[]).unwrap().contains("MaxFollowerLagTimeMs:   -1\n"));
    }

    #[test]
    fn replication_lists_leader_then_followers_then_observers() {
        let s = format_replication(&three_voters(), None).unwrap();
        let lines: Vec<Vec<&str>> = s.lines().map(|l| l.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect()).collect();
        assert_eq!(lines[0], ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]);
        assert_eq!(lines[1], ["2", "AAAAAAAAAAAAAAAAAAAAAA", "42", "0", "1000", "1000", "Leader"]);
        assert_eq!(lines[2], ["1", "AAAAAAAAAAAAAAAAAAAAAA", "38", "4", "990", "900", "Follower"]);
        assert_eq!(lines[3], ["3", "AAAAAAAAAAAAAAAAAAAAAA", "42", "0", "995", "995", "Follower"]);
        assert_eq!(lines[4], ["4", "AAAAAAAAAAAAAAAAAAAAAA", "10", "32", "980", "-1", "Observer"]);
        // Columns line up: every line has its tabs at the same places.
        let tabs = |l: &str| l.match_indices('\t').map(|(i, _)| i).collect::<Vec<_>>();
        assert!(s.lines().all(|l| tabs(l) == tabs(s.lines().next().unwrap())), "{s}");
        let human = format_replication(&three_voters(), Some(1_500)).unwrap();
        assert!(human.lines().nth(2).unwrap().contains("510 ms ago"), "{human}");
        assert!(human.lines().nth(4).unwrap().contains("-1"), "{human}");
    }

    #[test]
    fn a_follower_answer_names_the_leader() {
        let mut resp = DescribeQuorumResponse::default();
        let mut t = describe_quorum_response::TopicData::default();
        t.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        let mut p = PartitionData::default();
        p.error_code = 6;
        p.leader_id = BrokerId(3);
        p.leader_epoch = 9;
        t.partitions = vec![p];
        resp.topics = vec![t];
        let e = quorum_partition(resp, "h:1").unwrap_err().to_string();
        assert!(e.contains("NOT_LEADER_OR_FOLLOWER") && e.contains("leader is node 3 (epoch 9)"), "{e}");
    }

    #[test]
    fn describe_marks_the_controller() {
        let view = ClusterView {
            cluster_id: "cid".into(),
            controller_id: 1,
            brokers: vec![
                BrokerRow { id: 1, host: "h1".into(), port: 9092, rack: Some("r1".into()), fenced: false, leaders: 3 },
                BrokerRow { id: 2, host: "h2".into(), port: 9092, rack: None, fenced: true, leaders: 0 },
            ],
        };
        let s = format_cluster(&view);
        let lines: Vec<Vec<&str>> = s.lines().skip(2).map(|l| l.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect()).collect();
        assert!(s.starts_with("ClusterId:        cid\nActiveController: 1\n"), "{s}");
        assert_eq!(lines[1], ["1", "h1:9092", "r1", "Unfenced", "yes", "3"]);
        assert_eq!(lines[2], ["2", "h2:9092", "null", "Fenced", "no", "0"]);
    }
}
