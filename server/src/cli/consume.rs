//! `gregor consume`: print a topic's events, like `kafka-console-consumer.sh`.
//!
//! Without `--group` it reads the topic's partitions directly: from the end by default, from the
//! beginning with `--from-beginning`, or from `--offset` on one `--partition`. With `--group` it
//! joins the consumer group, reads the partitions assigned to it starting after the group's last
//! committed offsets (or per `--from-beginning` where nothing was committed), commits every few
//! seconds and on exit, and leaves the group when it stops.
//! Follows new events until interrupted, `--max-messages` are printed, or `--timeout-ms` passes
//! without a new event. Formatting properties follow Kafka's DefaultMessageFormatter:
//! `print.timestamp`, `print.partition`, `print.offset`, `print.headers`, `print.key`,
//! `key.separator`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use gregor_core::batch::BatchHeader;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};

use super::group_member::GroupMember;
use super::{connect, error_name, metadata};

pub struct ConsumeOptions {
    pub bootstrap: String,
    /// Join this consumer group (range assignor) and commit progress to it.
    pub group: Option<String>,
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub from_beginning: bool,
    pub max_messages: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub properties: BTreeMap<String, String>,
}

struct Format {
    timestamp: bool,
    partition: bool,
    offset: bool,
    headers: bool,
    key: bool,
    key_separator: String,
}

impl Format {
    fn from(props: &BTreeMap<String, String>) -> Format {
        let on = |k: &str| props.get(k).is_some_and(|v| v == "true");
        Format {
            timestamp: on("print.timestamp"),
            partition: on("print.partition"),
            offset: on("print.offset"),
            headers: on("print.headers"),
            key: on("print.key"),
            key_separator: props.get("key.separator").cloned().unwrap_or_else(|| "\t".to_string()),
        }
    }
}

fn text(b: &Option<bytes::Bytes>) -> String {
    match b {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => "null".to_string(),
    }
}

async fn list_offset(client: &mut gregor_net::client::Client, topic: &str, partition: i32, ts: i64) -> anyhow::Result<i64> {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = ts;
    p.current_leader_epoch = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    let resp = super::list_offsets(client, &req).await?;
    let pr = resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| anyhow::anyhow!("empty ListOffsets response"))?;
    if pr.error_code != 0 {
        anyhow::bail!("ListOffsets for {topic}-{partition}: {} ({})", error_name(pr.error_code), pr.error_code);
    }
    Ok(pr.offset)
}

pub async fn run(opts: ConsumeOptions) -> anyhow::Result<()> {
    let format = Format::from(&opts.properties);
    let mut client = connect(&opts.bootstrap).await?;
    let md = metadata(&mut client, Some(std::slice::from_ref(&opts.topic)), false).await?;
    let t = md.topics.first().ok_or_else(|| anyhow::anyhow!("no metadata for topic {}", opts.topic))?;
    if t.error_code != 0 {
        anyhow::bail!("topic {}: {} ({})", opts.topic, error_name(t.error_code), t.error_code);
    }
    let topic_id = t.topic_id;
    let all: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    let partitions = match opts.partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => anyhow::bail!("partition {p} does not exist"),
        None => all.clone(),
    };
    if opts.offset.is_some() && opts.partition.is_none() {
        anyhow::bail!("--offset needs --partition");
    }
    if opts.group.is_some() && (opts.partition.is_some() || opts.offset.is_some()) {
        anyhow::bail!("--partition and --offset cannot be used with --group");
    }
    let mut member = None;
    let partitions = match &opts.group {
        Some(g) => {
            let (m, assigned) = GroupMember::join(&opts.bootstrap, g, &opts.topic, all.clone()).await?;
            member = Some(m);
            assigned
        }
        None => partitions,
    };
    let mut positions = initial_positions(&mut client, member.as_mut(), &opts, &partitions).await?;
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut idle_since = tokio::time::Instant::now();
    let mut last_heartbeat = tokio::time::Instant::now();
    let mut last_commit = tokio::time::Instant::now();
    loop {
        if let Some(m) = member.as_mut() {
            if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
                last_heartbeat = tokio::time::Instant::now();
                if m.heartbeat().await? {
                    m.commit(&positions).await?;
                    let assigned = m.rejoin().await?;
                    positions = initial_positions(&mut client, Some(m), &opts, &assigned).await?;
                }
            }
            if last_commit.elapsed() >= AUTO_COMMIT_INTERVAL {
                last_commit = tokio::time::Instant::now();
                m.commit(&positions).await?;
            }
        }
        if opts.max_messages.is_some_and(|m| printed >= m) {
            break;
        }
        if let Some(t) = opts.timeout_ms {
            if idle_since.elapsed() >= Duration::from_millis(t) {
                break;
            }
        }
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(StrBytes::from_string(opts.topic.clone()));
        ft.topic_id = topic_id;
        ft.partitions = positions
            .iter()
            .map(|(&p, &o)| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.fetch_offset = o;
                fp.current_leader_epoch = -1;
                fp.log_start_offset = -1;
                fp.partition_max_bytes = 1 << 20;
                fp
            })
            .collect();
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_wait_ms = opts.timeout_ms.map(|t| t.min(500) as i32).unwrap_or(500);
        req.min_bytes = 1;
        req.max_bytes = 50 << 20;
        req.session_epoch = -1;
        req.topics = vec![ft];
        if positions.is_empty() {
            // Nothing assigned (more members than partitions): wait for a rebalance.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let resp = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break,
            r = client.send(&req) => r?,
        };
        if resp.error_code != 0 {
            anyhow::bail!("fetch failed: {} ({})", error_name(resp.error_code), resp.error_code);
        }
        let mut out = stdout.lock();
        for tr in resp.responses {
            for pd in tr.partitions {
                let p = pd.partition_index;
                if pd.error_code == 1 {
                    // Retention or DeleteRecords moved the start past us: continue from the start.
                    positions.insert(p, pd.log_start_offset.max(0));
                    continue;
                }
                if pd.error_code != 0 {
                    anyhow::bail!("fetch {}-{p}: {} ({})", opts.topic, error_name(pd.error_code), pd.error_code);
                }
                let Some(mut data) = pd.records else { continue };
                while data.len() >= gregor_core::batch::HEADER_LEN {
                    let Ok(h) = BatchHeader::parse(&data) else { break };
                    if h.total_len() > data.len() {
                        break;
                    }
                    let mut batch = data.split_to(h.total_len());
                    let pos = positions.get(&p).copied().unwrap_or(0);
                    if h.is_control() {
                        positions.insert(p, pos.max(h.next_offset()));
                        continue;
                    }
                    let set = RecordBatchDecoder::decode(&mut batch)?;
                    for r in set.records {
                        if r.offset < pos || opts.max_messages.is_some_and(|m| printed >= m) {
                            continue;
                        }
                        let mut line = String::new();
                        if format.timestamp {
                            let kind = if r.timestamp_type == TimestampType::LogAppend { "LogAppendTime" } else { "CreateTime" };
                            line.push_str(&format!("{kind}:{}\t", r.timestamp));
                        }
                        if format.partition {
                            line.push_str(&format!("Partition:{p}\t"));
                        }
                        if format.offset {
                            line.push_str(&format!("Offset:{}\t", r.offset));
                        }
                        if format.headers {
                            if r.headers.is_empty() {
                                line.push_str("NO_HEADERS\t");
                            } else {
                                let hs: Vec<String> = r.headers.iter().map(|(k, v)| format!("{}:{}", k.as_str(), text(v))).collect();
                                line.push_str(&hs.join(","));
                                line.push('\t');
                            }
                        }
                        if format.key {
                            line.push_str(&text(&r.key));
                            line.push_str(&format.key_separator);
                        }
                        line.push_str(&text(&r.value));
                        writeln!(out, "{line}")?;
                        printed += 1;
                        idle_since = tokio::time::Instant::now();
                        positions.insert(p, r.offset + 1);
                    }
                    let cur = positions.get(&p).copied().unwrap_or(0);
                    if opts.max_messages.is_none_or(|m| printed < m) {
                        positions.insert(p, cur.max(h.next_offset()));
                    }
                }
            }
        }
        out.flush()?;
    }
    if let Some(m) = member.as_mut() {
        m.commit(&positions).await?;
        m.leave().await?;
    }
    eprintln!("Processed a total of {printed} messages");
    Ok(())
}

/// How often a group member heartbeats and commits.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_millis(5000);

/// Where to start reading each partition: the group's committed offset if there is one, else
/// `--offset`, else the beginning or the end.
async fn initial_positions(
    client: &mut gregor_net::client::Client,
    member: Option<&mut GroupMember>,
    opts: &ConsumeOptions,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let committed = match member {
        Some(m) => m.committed(partitions).await?,
        None => BTreeMap::new(),
    };
    let mut positions = BTreeMap::new();
    for &p in partitions {
        let pos = match (committed.get(&p).copied().filter(|&o| o >= 0), opts.offset) {
            (Some(c), _) => c,
            (None, Some(o)) if o >= 0 => o,
            (None, Some(o)) => list_offset(client, &opts.topic, p, if o == -2 { -2 } else { -1 }).await?,
            (None, None) => list_offset(client, &opts.topic, p, if opts.from_beginning { -2 } else { -1 }).await?,
        };
        positions.insert(p, pos);
    }
    Ok(positions)
}
