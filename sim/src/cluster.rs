//! The cluster scenario: 3 or 5 combined broker+controller nodes (every node a KRaft voter)
//! running the production server, formatted with one cluster id, under process, power and
//! network faults of any node, the active controller included.
//!
//! Clients: an admin creating topics (1–6 partitions, RF 1) on random nodes, recording which
//! creations were acknowledged; producers and a consumer on the `events` topic, routed to each
//! partition's leader by Metadata (NOT_LEADER_OR_FOLLOWER and UNKNOWN_TOPIC_OR_PARTITION are
//! retried after a refresh); and an observer that polls every node's DescribeQuorum and
//! Metadata all run long. Whenever a node reports a new high watermark, the observer reads that
//! node's `__cluster_metadata-0` segments from its simulated disk (read-only) and records the
//! entries below it: those are committed, and must never change or vanish.
//!
//! After the heal the scenario waits (bounded) for the cluster to converge — one leader known
//! to every node, equal high watermarks, identical Metadata answers — and then records every
//! node's log and Metadata answer for the state checkers, and reads every `events` partition
//! from its leader for the history checkers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_core::disk::{read_all, Disk};
use gregor_net::client::Client;
use gregor_storage::mem_disk::MemDisk;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, DescribeQuorumRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::history::{
    Ack, ClusterData, CommittedSeen, DiskLog, FinalRead, History, LatestPoll, MetadataPoll, MetadataView, PartitionView,
    QuorumPoll, RecordId, ReplicaBatch, TopicView,
};
use crate::knobs::{ClusterKnobs, Durability, Knobs};
use crate::scenario::{Outcome, LIVENESS_BOUND_MS, PROBE_PRODUCER};
use crate::trace::Trace;
use crate::workload::{self, Ctx, Pending};
use crate::world::{World, DATA_DIR};

/// The port of every node's controller listener.
pub const CONTROLLER_PORT: u16 = 9093;
/// How often the observer polls every node.
const POLL_MS: u64 = 250;
/// How long one poll of one node may take.
const POLL_TIMEOUT_MS: u64 = 1_000;
/// How long the cluster has to form and create the `events` topic.
const FORM_MS_MAX: u64 = 60_000;
/// How long client tasks get to notice the stop flag.
const STOP_GRACE_MS: u64 = 15_000;
/// Longest a single fault lasts.
const FAULT_DURATION_MS_MAX: u64 = 5_000;
/// How long a graceful stop may take before the nemesis kills the process.
const GRACEFUL_STOP_MS_MAX: u64 = 20_000;
/// How often the nemesis looks for nodes a crash point took down while it waits.
const REAP_INTERVAL_MS: u64 = 250;
/// Most committed-entry conflicts recorded (each is already a violation).
const CONFLICTS_MAX: usize = 100;
/// The client id under which a node answers DescribeQuorum with its own view instead of
/// forwarding it to the quorum leader (`FORWARDED_CLIENT_ID` of the server's DescribeQuorum
/// handler): the observer wants every node's own leader, epoch and high watermark.
const LOCAL_VIEW_CLIENT_ID: &str = "gregor-describe-quorum-forward";
/// Kafka error codes the clients react to.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Where a node keeps its metadata log.
const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// The knobs of the cluster scenario with `nodes` nodes (`controllers` of them controller-only, or
/// none: all combined): the seed's crash model, fsync
/// durability, an `events` topic of 2–6 partitions, two acks=all producers and one consumer.
/// [`cluster_knobs`] of three nodes, on a compacted topic (see `Scenario::ClusterCompaction`).
pub fn cluster_compaction_knobs(seed: u64) -> Knobs {
    let mut k = cluster_knobs(seed, 3, 0);
    k.workload.compaction = Some(crate::knobs::CompactionKnobs::draw(seed));
    k.workload.segment_bytes = [1_024, 4_096][(seed % 2) as usize];
    // The admin client's DeleteRecords and scratch topics are checked in the plain scenarios.
    k.workload.admin = false;
    k
}

pub fn cluster_knobs(seed: u64, nodes: usize, controllers: usize) -> Knobs {
    let mut k = Knobs::draw(seed);
    k.durability = Durability::Fsync;
    k.faults.bit_flip = false;
    k.faults.disk_burst_weight = 0;
    let w = &mut k.workload;
    w.partitions = 2 + (seed % 5) as i32;
    w.producers = 2;
    w.acks = vec![-1, -1];
    // Drawn from its own stream, so the other knobs stay what they were for every seed: the
    // first producer is idempotent in half the seeds (exactly-once across leader changes).
    w.idempotent = vec![SmallRng::seed_from_u64(seed ^ 0x6964_656d_706f_7465).random_bool(0.5), false];
    w.compression = (0..2).map(|i| w.compression.get(i).copied().unwrap_or(0)).collect();
    w.consumers = 1;
    w.retention_bytes = -1;
    w.admin = true;
    k.safety_ms = 30_000;
    k.cluster = Some(ClusterKnobs::draw(seed, nodes, controllers));
    k
}

/// What every cluster client shares: the nodes' addresses, and (for the observer) their disks
/// and process-start counters.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Client (broker listener) addresses of the nodes that have the broker role.
    pub(crate) addrs: Vec<String>,
    /// The node index of each of `addrs`.
    pub(crate) serving: Vec<usize>,
    pub(crate) disks: Vec<MemDisk>,
    pub(crate) starts: Vec<Arc<AtomicU64>>,
    pub(crate) history: History,
    pub(crate) trace: Trace,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    /// Replication factor of the topics created.
    pub(crate) replication_factor: i16,
    /// `min.insync.replicas` of `topic`.
    pub(crate) min_insync: i16,
    /// More configs of `topic` (a compacted topic's).
    pub(crate) topic_configs: Vec<(String, String)>,
    /// `topic` is compacted: each replica cleans its own copy, so copies of a batch may differ
    /// in bytes (records removed) or be gone (a hole) while holding the same offsets and epoch.
    pub(crate) compacted: bool,
}

impl Shared {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn with_cluster<T>(&self, f: impl FnOnce(&mut ClusterData) -> T) -> T {
        let mut h = self.history.lock();
        f(h.cluster.get_or_insert_with(ClusterData::default))
    }

    /// The current process start of node `i` (0 = first).
    fn incarnation(&self, i: usize) -> u64 {
        self.starts[i].load(Ordering::SeqCst).saturating_sub(1)
    }
}

async fn connect(addr: &str, who: &str, trace: &Trace, timeout_ms: u64) -> Option<Client> {
    match tokio::time::timeout(Duration::from_millis(workload::CONNECT_TIMEOUT_MS), Client::connect(addr, who)).await {
        Ok(Ok(mut c)) => {
            c.set_timeout(Duration::from_millis(timeout_ms));
            Some(c)
        }
        Ok(Err(e)) => {
            trace.event(who, format!("connect {addr} failed: {e}"));
            None
        }
        Err(_) => {
            trace.event(who, format!("connect {addr} timed out"));
            None
        }
    }
}

/// Connections of one client, one per node address.
pub(crate) struct Pool {
    who: String,
    timeout_ms: u64,
    clients: BTreeMap<String, Client>,
}

impl Pool {
    pub(crate) fn new(who: &str, timeout_ms: u64) -> Pool {
        Pool { who: who.to_string(), timeout_ms, clients: BTreeMap::new() }
    }

    pub(crate) async fn get(&mut self, addr: &str, trace: &Trace) -> Option<&mut Client> {
        if !self.clients.contains_key(addr) {
            let c = connect(addr, &self.who, trace, self.timeout_ms).await?;
            self.clients.insert(addr.to_string(), c);
        }
        self.clients.get_mut(addr)
    }

    pub(crate) fn drop_conn(&mut self, addr: &str) {
        self.clients.remove(addr);
    }
}

/// A Metadata answer as a [`MetadataView`].
fn view_of(resp: &MetadataResponse) -> MetadataView {
    let brokers = resp.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
    let topics = resp
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let view = PartitionView {
                        error_code: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                        isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                    };
                    (p.partition_index, view)
                })
                .collect();
            Some((name, TopicView { error_code: t.error_code, partitions }))
        })
        .collect();
    MetadataView { brokers, controller_id: resp.controller_id.0, topics }
}

async fn metadata(c: &mut Client) -> Result<MetadataView, String> {
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = false;
    req.topics = None;
    c.send(&req).await.map(|r| view_of(&r)).map_err(|e| e.to_string())
}

/// (error, leader id, leader epoch, high watermark, the leader's own log end if it answered as leader).
async fn describe_quorum(c: &mut Client) -> Result<(i16, i32, i32, i64, Option<i64>), String> {
    let mut p = PartitionData::default();
    p.partition_index = 0;
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    t.partitions = vec![p];
    let mut req = DescribeQuorumRequest::default();
    req.topics = vec![t];
    let resp = c.send(&req).await.map_err(|e| e.to_string())?;
    let pd = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("empty DescribeQuorum answer")?;
    let leader_end = (pd.error_code == 0).then(|| pd.current_voters.iter().find(|v| v.replica_id.0 == pd.leader_id.0).map(|v| v.log_end_offset)).flatten();
    Ok((pd.error_code, pd.leader_id.0, pd.leader_epoch, pd.high_watermark, leader_end))
}

/// Every partition of `topic` from ListOffsets "latest" (timestamp -1) as a client asks it (replica
/// id -1, no current leader epoch): (partition, error, offset, leader epoch).
async fn latest_offsets(c: &mut Client, topic: &str, partitions: i32) -> Result<Vec<(i32, i16, i64, i32)>, String> {
    let mut t = ListOffsetsTopic::default();
    t.name = workload::name(topic);
    t.partitions = (0..partitions)
        .map(|i| {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = i;
            p.timestamp = -1;
            p.current_leader_epoch = -1;
            p
        })
        .collect();
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    let resp = c.send(&req).await.map_err(|e| e.to_string())?;
    Ok(resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code, p.offset, p.leader_epoch))).collect())
}

/// FNV-1a, for entry digests.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A node's metadata log read from its disk without changing it: its newest snapshot's end and
/// every whole, valid entry (segment files in base-offset order; a torn or corrupt tail ends a
/// segment's entries).
pub fn read_metadata_log(disk: &MemDisk) -> Result<DiskLog, String> {
    let dir = Path::new(DATA_DIR).join(METADATA_LOG_DIR);
    let names = disk.list_dir(&dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    let snapshot_end = names.iter().filter_map(|n| n.strip_suffix(".checkpoint")?.split_once('-')?.0.parse::<i64>().ok()).max().unwrap_or(0);
    let mut segments: Vec<(i64, String)> = names.into_iter().filter_map(|n| Some((n.strip_suffix(".log")?.parse().ok()?, n))).collect();
    segments.sort();
    let mut out = BTreeMap::new();
    for (_, name) in segments {
        let path = dir.join(&name);
        let mut data = Bytes::from(read_all(disk, &path).map_err(|e| format!("read {}: {e}", path.display()))?);
        while let Ok(h) = gregor_core::batch::BatchHeader::parse(&data) {
            if h.total_len() == 0 || h.total_len() > data.len() {
                break;
            }
            let one = data.split_to(h.total_len());
            let Ok(entries) = gregor_net::raft_wire::batches_to_entries(one) else { break };
            for e in entries {
                // The canonical encoding, so that what a node's log stamped on append never differs.
                out.insert(e.offset, (e.epoch, fnv(&gregor_net::raft_wire::entry_to_batch(&e))));
            }
        }
    }
    Ok(DiskLog { snapshot_end, entries: out })
}

/// A partition replica's log read from its node's disk without changing it: every whole batch
/// of its segment files, in base-offset order (a torn or unparsable tail ends a segment).
/// The records of one replica of `topic`'s `partition` on `disk`, in offset order; a batch that
/// does not decode ends the segment it is in.
pub fn read_partition_records(disk: &MemDisk, topic: &str, partition: i32) -> Vec<(i64, crate::history::Served)> {
    let dir = Path::new(DATA_DIR).join(format!("{topic}-{partition}"));
    let names = disk.list_dir(&dir).unwrap_or_default();
    let mut segments: Vec<(i64, String)> = names.into_iter().filter_map(|n| Some((n.strip_suffix(".log")?.parse().ok()?, n))).collect();
    segments.sort();
    let mut out = Vec::new();
    for (_, name) in segments {
        let Ok(data) = read_all(disk, &dir.join(&name)) else { continue };
        let mut data = Bytes::from(data);
        while let Ok(h) = gregor_core::batch::BatchHeader::parse(&data) {
            if h.total_len() == 0 || h.total_len() > data.len() {
                break;
            }
            match workload::decode_batches(data.split_to(h.total_len())) {
                Ok(records) => out.extend(records),
                Err(_) => break,
            }
        }
    }
    out
}

pub fn read_partition_log(disk: &MemDisk, topic: &str, partition: i32) -> Result<Vec<ReplicaBatch>, String> {
    let dir = Path::new(DATA_DIR).join(format!("{topic}-{partition}"));
    let names = disk.list_dir(&dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    let mut segments: Vec<(i64, String)> = names.into_iter().filter_map(|n| Some((n.strip_suffix(".log")?.parse().ok()?, n))).collect();
    segments.sort();
    let mut out = Vec::new();
    for (_, name) in segments {
        let path = dir.join(&name);
        let data = read_all(disk, &path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let mut rest = &data[..];
        while let Ok(h) = gregor_core::batch::BatchHeader::parse(rest) {
            if h.total_len() == 0 || h.total_len() > rest.len() {
                break;
            }
            let (one, tail) = rest.split_at(h.total_len());
            out.push((h.base_offset, h.base_offset + i64::from(h.last_offset_delta), h.partition_leader_epoch, fnv(one)));
            rest = tail;
        }
    }
    Ok(out)
}

/// Waits (up to `bound`) until every replica of every `events` partition holds its leader's
/// high watermark, then records every replica's log and the leaders.
async fn record_replicas(sh: &Shared, view: Option<&MetadataView>, read: &crate::history::FinalRead, bound: Duration) {
    let Some(mut t) = view.and_then(|v| v.topics.get(&sh.topic)).cloned() else { return };
    let deadline = sh.trace.elapsed() + bound;
    let disk_of = |id: i32| sh.disks.get(usize::try_from(id - 1).ok()?);
    let snapshot = |t: &TopicView| -> BTreeMap<i32, Vec<(i32, Result<Vec<ReplicaBatch>, String>)>> {
        t.partitions
            .iter()
            .map(|(&p, pv)| {
                let logs = pv.replicas.iter().map(|&id| (id, disk_of(id).ok_or_else(|| format!("no node {id}")).and_then(|d| read_partition_log(d, &sh.topic, p)))).collect();
                (p, logs)
            })
            .collect()
    };
    let below = |batches: &[ReplicaBatch], hw: i64| batches.iter().copied().filter(|b| b.0 < hw).collect::<Vec<_>>();
    let compacted = sh.compacted;
    let mut pool = Pool::new(LOCAL_VIEW_CLIENT_ID, POLL_TIMEOUT_MS);
    loop {
        // The assignment as the cluster has it now: a reassignment the operator asked for last
        // may complete (and delete the removed replicas' logs) after the convergence was seen.
        if let Some(fresh) = current_topic_view(sh, &mut pool).await {
            t = fresh;
        }
        let logs = snapshot(&t);
        // Caught up: every replica has reached the high watermark and holds the leader's batches
        // below it. A replica that still holds a diverging tail has not yet fetched from the new
        // leader since the heal; it is given until the bound to truncate it.
        let caught_up = logs.iter().all(|(p, replicas)| {
            let hw = read.high_watermark.get(p).copied().unwrap_or(0);
            let leader = t.partitions.get(p).map(|pv| pv.leader);
            let leader_log = replicas.iter().find(|(id, _)| Some(*id) == leader).and_then(|(_, l)| l.as_ref().ok()).map(|b| below(b, hw));
            // Compacted replicas clean their own copies: their bytes differ by design.
            let same = |b: &[ReplicaBatch]| compacted || leader_log.as_ref().is_none_or(|want| below(b, hw) == *want);
            replicas.iter().all(|(_, l)| l.as_ref().is_ok_and(|b| (hw == 0 || b.last().is_some_and(|last| last.1 + 1 >= hw)) && same(b)))
        });
        if caught_up || sh.trace.elapsed() >= deadline {
            sh.trace.event("settle", format!("replicas caught up: {caught_up}"));
            let records = if compacted {
                t.partitions
                    .iter()
                    .map(|(&p, pv)| (p, pv.replicas.iter().filter_map(|&id| Some((id, read_partition_records(disk_of(id)?, &sh.topic, p)))).collect()))
                    .collect()
            } else {
                BTreeMap::new()
            };
            sh.with_cluster(|c| {
                c.final_replicas = logs;
                c.final_leaders = t.partitions.iter().map(|(&p, pv)| (p, pv.leader)).collect();
                c.final_replica_records = records;
            });
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The scenario topic's partitions as the first node that answers Metadata has them now.
async fn current_topic_view(sh: &Shared, pool: &mut Pool) -> Option<TopicView> {
    for addr in &sh.addrs {
        let Some(c) = pool.get(addr, &sh.trace).await else { continue };
        match metadata(c).await {
            Ok(view) => {
                if let Some(t) = view.topics.get(&sh.topic) {
                    return Some(t.clone());
                }
            }
            Err(_) => pool.drop_conn(addr),
        }
    }
    None
}

/// Records the entries of node `i`'s log below the high watermark `hw` it reported.
fn note_committed(sh: &Shared, i: usize, hw: i64) {
    let Ok(log) = read_metadata_log(&sh.disks[i]) else { return };
    let at = sh.trace.elapsed();
    sh.with_cluster(|c| {
        for (&offset, &digest) in log.entries.range(..hw) {
            let seen = CommittedSeen { digest, node: i, at, high_watermark: hw };
            match c.committed.get(&offset) {
                None => {
                    c.committed.insert(offset, seen);
                }
                Some(first) if first.digest != digest => {
                    if c.committed_conflicts.len() < CONFLICTS_MAX {
                        c.committed_conflicts.push((offset, first.clone(), seen));
                    }
                }
                Some(_) => {}
            }
        }
    });
}

/// Polls every node's DescribeQuorum (and every other round its Metadata) until `stop`.
async fn observer(sh: Shared, stop: Arc<AtomicBool>) {
    let who = "observer";
    let n = sh.disks.len();
    let mut clients: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    let mut checked: Vec<(u64, i64)> = vec![(u64::MAX, -1); n];
    let mut seen: Vec<(i16, i32, i32, i64)> = vec![(0, -2, -2, -2); n];
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        for (k, &i) in sh.serving.iter().enumerate() {
            let before = sh.incarnation(i);
            if clients[i].is_none() {
                clients[i] = connect(&sh.addrs[k], LOCAL_VIEW_CLIENT_ID, &sh.trace, POLL_TIMEOUT_MS).await;
            }
            let Some(c) = clients[i].as_mut() else { continue };
            match describe_quorum(c).await {
                Ok((error_code, leader_id, leader_epoch, high_watermark, _)) => {
                    let incarnation = sh.incarnation(i);
                    if incarnation != before {
                        clients[i] = None;
                        continue;
                    }
                    if error_code == 0 && leader_id != i as i32 + 1 {
                        // Another node's view (a forwarded answer): not this node's.
                        continue;
                    }
                    let at = sh.trace.elapsed();
                    if seen[i] != (error_code, leader_id, leader_epoch, high_watermark) {
                        seen[i] = (error_code, leader_id, leader_epoch, high_watermark);
                        sh.trace.event(who, format!("node {}: error {error_code} leader {leader_id} epoch {leader_epoch} hw {high_watermark}", i + 1));
                    }
                    sh.with_cluster(|c| c.quorum_polls.push(QuorumPoll { node: i, incarnation, at, error_code, leader_id, leader_epoch, high_watermark }));
                    if high_watermark > 0 && checked[i] != (incarnation, high_watermark) {
                        checked[i] = (incarnation, high_watermark);
                        note_committed(&sh, i, high_watermark);
                    }
                }
                Err(_) => {
                    clients[i] = None;
                    continue;
                }
            }
            if round % 2 == 1 {
                let c = clients[i].as_mut().expect("connected above");
                let sent_at = sh.trace.elapsed();
                match latest_offsets(c, &sh.topic, sh.partitions).await {
                    Ok(answers) if sh.incarnation(i) == before => {
                        let at = sh.trace.elapsed();
                        sh.with_cluster(|c| {
                            let ok = answers.into_iter().filter(|a| a.1 == 0);
                            c.latest_polls.extend(ok.map(|(partition, _, offset, leader_epoch)| LatestPoll { node: i, partition, sent_at, at, offset, leader_epoch }));
                        });
                    }
                    Ok(_) | Err(_) => {
                        clients[i] = None;
                        continue;
                    }
                }
            }
            if round % 2 == 0 {
                let c = clients[i].as_mut().expect("connected above");
                match metadata(c).await {
                    Ok(view) if sh.incarnation(i) == before => {
                        let at = sh.trace.elapsed();
                        sh.with_cluster(|c| c.metadata_polls.push(MetadataPoll { node: i, incarnation: before, at, view }));
                    }
                    Ok(_) => clients[i] = None,
                    Err(_) => clients[i] = None,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Creates `topic` on node `node` once; Some(error code) if answered.
/// The scenario's own topic is created with its `min.insync.replicas`.
async fn create_once(pool: &mut Pool, sh: &Shared, addr: &str, topic: &str, partitions: i32) -> Option<i16> {
    let c = pool.get(addr, &sh.trace).await?;
    let mut t = CreatableTopic::default();
    t.name = workload::name(topic);
    t.num_partitions = partitions;
    t.replication_factor = sh.replication_factor;
    if topic == sh.topic {
        let min_insync = ("min.insync.replicas".to_string(), sh.min_insync.to_string());
        t.configs = std::iter::once(&min_insync)
            .chain(&sh.topic_configs)
            .map(|(k, v)| {
                let mut config = CreatableTopicConfig::default();
                config.name = StrBytes::from_string(k.clone());
                config.value = Some(StrBytes::from_string(v.clone()));
                config
            })
            .collect();
    }
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 10_000;
    sh.history.lock().operations += 1;
    match c.send(&req).await {
        Ok(resp) => {
            let code = resp.topics.first().map_or(-1, |t| t.error_code);
            sh.trace.event(&pool.who, format!("create topic {topic} ({partitions} partitions) at {addr}: error {code}"));
            if code == 0 {
                sh.with_cluster(|c| {
                    if let Some(first) = c.created_acked.insert(topic.to_string(), partitions) {
                        c.created_twice.push((topic.to_string(), first, partitions));
                    }
                });
            }
            Some(code)
        }
        Err(e) => {
            sh.trace.event(&pool.who, format!("create topic {topic} at {addr}: {e}"));
            pool.drop_conn(addr);
            None
        }
    }
}

const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Creates a new topic on a random node every ~`gap_ms` until stopped.
async fn admin(sh: Shared, gap_ms: u64, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool = Pool::new("admin", 12_000);
    let mut k = 0u32;
    while !sh.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(gap_ms / 2..=gap_ms * 3 / 2))).await;
        k += 1;
        let topic = format!("t{k}");
        let partitions = rng.random_range(1..=6);
        let addr = sh.addrs[rng.random_range(0..sh.addrs.len())].clone();
        let answer = create_once(&mut pool, &sh, &addr, &topic, partitions).await;
        if !matches!(answer, Some(0) | Some(TOPIC_ALREADY_EXISTS)) {
            // The outcome is unknown (or the node could not do it): try again elsewhere, as a
            // client would, with another partition count. The topic must end up with the count
            // of the one creation that was acknowledged, and at most one may be.
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..=1_000))).await;
            let addr = sh.addrs[rng.random_range(0..sh.addrs.len())].clone();
            let partitions = rng.random_range(1..=6);
            create_once(&mut pool, &sh, &addr, &topic, partitions).await;
        }
    }
}

/// The leader address of every partition of `topic` with a live leader, from one node's Metadata.
async fn leaders(pool: &mut Pool, sh: &Shared, rng: &mut SmallRng) -> BTreeMap<i32, String> {
    let addr = sh.addrs[rng.random_range(0..sh.addrs.len())].clone();
    let Some(c) = pool.get(&addr, &sh.trace).await else { return BTreeMap::new() };
    match metadata(c).await {
        Ok(view) => leaders_in(&view, &sh.topic),
        Err(_) => {
            pool.drop_conn(&addr);
            BTreeMap::new()
        }
    }
}

fn leaders_in(view: &MetadataView, topic: &str) -> BTreeMap<i32, String> {
    let Some(t) = view.topics.get(topic) else { return BTreeMap::new() };
    t.partitions
        .iter()
        .filter(|(_, p)| p.error_code == 0 && p.leader >= 0)
        .filter_map(|(&i, p)| Some((i, view.brokers.get(&p.leader)?.clone())))
        .collect()
}

/// A new producer id from any broker (InitProducerId), or None.
async fn init_producer_id(pool: &mut Pool, sh: &Shared, rng: &mut SmallRng) -> Option<(i64, i16)> {
    let addr = sh.addrs[rng.random_range(0..sh.addrs.len())].clone();
    let c = pool.get(&addr, &sh.trace).await?;
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    match c.send(&req).await {
        Ok(r) if r.error_code == 0 => {
            sh.trace.event(&pool.who, format!("producer id {} epoch {}", r.producer_id.0, r.producer_epoch));
            Some((r.producer_id.0, r.producer_epoch))
        }
        Ok(r) => {
            sh.trace.event(&pool.who, format!("InitProducerId at {addr}: error {}", r.error_code));
            None
        }
        Err(e) => {
            sh.trace.event(&pool.who, format!("InitProducerId at {addr}: {e}"));
            pool.drop_conn(&addr);
            None
        }
    }
}

/// An acks=all producer on `events`, routed to each partition's leader; idempotent (a batch
/// retried with its sequence until answered, through leader changes) when the knobs say so.
async fn producer(sh: Shared, index: u32, compression: Compression, wk: crate::knobs::WorkloadKnobs, seed: u64) {
    let who = format!("producer-{index}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool = Pool::new(&who, workload::REQUEST_TIMEOUT_MS);
    let mut routes: BTreeMap<i32, String> = BTreeMap::new();
    let mut next_n = 0u64;
    let mut pending: Option<Pending> = None;
    let idempotent = wk.idempotent.get(index as usize).copied().unwrap_or(false);
    let mut pid: Option<(i64, i16)> = None;
    let mut next_seq: BTreeMap<i32, i32> = BTreeMap::new();
    while !sh.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..=wk.produce_gap_ms.max(1)))).await;
        if routes.len() < sh.partitions as usize {
            routes = leaders(&mut pool, &sh, &mut rng).await;
        }
        if idempotent && pid.is_none() {
            pid = init_producer_id(&mut pool, &sh, &mut rng).await;
            next_seq.clear();
            if pid.is_none() {
                continue;
            }
        }
        let mut batch = match pending.take() {
            Some(p) => p,
            None => {
                let partition = rng.random_range(0..sh.partitions);
                let n = rng.random_range(1..=wk.records_per_batch_max);
                let mut records = Vec::new();
                for _ in 0..n {
                    let id: RecordId = (index, next_n);
                    next_n += 1;
                    let r = workload::new_record(&mut rng, id, &sh.topic, partition, wk.value_bytes_max, false, wk.compaction.as_ref(), sh.trace.elapsed());
                    sh.history.lock().produced.insert(id, r.clone());
                    records.push(r);
                }
                let base_sequence = if idempotent { workload::take_sequences(&mut next_seq, partition, n) } else { -1 };
                Pending { partition, records, base_sequence, attempts: 0 }
            }
        };
        let Some(addr) = routes.get(&batch.partition).cloned() else {
            pending = Some(batch);
            continue;
        };
        let (producer_id, epoch) = if idempotent { pid.expect("initialised above") } else { (-1, -1) };
        let Ok(req) = workload::produce_request(&sh.topic, &batch, -1, producer_id, epoch, compression) else { continue };
        let Some(c) = pool.get(&addr, &sh.trace).await else {
            routes.clear();
            pending = Some(batch);
            continue;
        };
        batch.attempts += 1;
        let (first, last) = (batch.records[0].id.1, batch.records[batch.records.len() - 1].id.1);
        sh.history.lock().operations += 1;
        let sent_at = sh.trace.elapsed();
        let retry_allowed = idempotent || batch.attempts <= workload::PLAIN_RETRIES_MAX;
        match c.send(&req).await {
            Ok(resp) => {
                let pr = resp.responses.first().and_then(|t| t.partition_responses.first());
                let (code, base) = pr.map_or((-1, -1), |p| (p.error_code, p.base_offset));
                sh.trace.event(&who, format!("produce p{} #{first}..{last} at {addr} attempt {} -> error {code} offset {base}", batch.partition, batch.attempts));
                if code == 0 {
                    let at = sh.trace.elapsed();
                    let mut h = sh.history.lock();
                    for (i, r) in batch.records.iter().enumerate() {
                        h.acks.push(Ack { id: r.id, partition: batch.partition, offset: base + i as i64, sent_at, at, idempotent });
                    }
                } else if idempotent && matches!(code, 45 | 47 | 59 | 90) {
                    // The producer's sequence state is gone or fenced: start a new producer id,
                    // as the Java client does; this batch's fate is unknown.
                    pid = None;
                } else if matches!(code, NOT_LEADER_OR_FOLLOWER | UNKNOWN_TOPIC_OR_PARTITION) {
                    // Not written: retry after a metadata refresh, without counting the attempt.
                    batch.attempts -= 1;
                    routes.clear();
                    pending = Some(batch);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else if retry_allowed {
                    pending = Some(batch);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Err(e) => {
                sh.trace.event(&who, format!("produce p{} #{first}..{last} at {addr} attempt {}: {e}", batch.partition, batch.attempts));
                pool.drop_conn(&addr);
                routes.clear();
                if retry_allowed {
                    pending = Some(batch);
                }
            }
        }
    }
}

/// Tails every partition of `events` from its leader, recording what it is served.
async fn consumer(sh: Shared, index: u32, seed: u64) {
    let who = format!("consumer-{index}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool = Pool::new(&who, workload::REQUEST_TIMEOUT_MS);
    let mut routes: BTreeMap<i32, String> = BTreeMap::new();
    let mut positions: BTreeMap<i32, i64> = (0..sh.partitions).map(|p| (p, 0)).collect();
    while !sh.stopped() {
        if routes.len() < sh.partitions as usize {
            routes = leaders(&mut pool, &sh, &mut rng).await;
        }
        let mut idle = true;
        for p in 0..sh.partitions {
            let Some(addr) = routes.get(&p).cloned() else { continue };
            let Some(c) = pool.get(&addr, &sh.trace).await else {
                routes.remove(&p);
                continue;
            };
            let pos = positions[&p];
            let req = workload::fetch_request(&sh.topic, &BTreeMap::from([(p, pos)]));
            let sent_at = sh.trace.elapsed();
            let resp = match c.send_at(&req, workload::FETCH_VERSION).await {
                Ok(r) => r,
                Err(e) => {
                    sh.trace.event(&who, format!("fetch p{p} at {addr}: {e}"));
                    pool.drop_conn(&addr);
                    routes.remove(&p);
                    continue;
                }
            };
            sh.history.lock().operations += 1;
            let Some(pd) = resp.responses.into_iter().next().and_then(|t| t.partitions.into_iter().next()) else { continue };
            if matches!(pd.error_code, NOT_LEADER_OR_FOLLOWER | UNKNOWN_TOPIC_OR_PARTITION) {
                routes.remove(&p);
                continue;
            }
            if pd.error_code == workload::OFFSET_OUT_OF_RANGE {
                let start = pd.log_start_offset.max(0);
                let to = if pos < start { start } else { 0 };
                sh.trace.event(&who, format!("p{p} offset {pos} out of range (log start {start}, hw {}): reset to {to}", pd.high_watermark));
                sh.history.lock().resets.push((who.clone(), p, to));
                positions.insert(p, to);
                continue;
            }
            if pd.error_code != 0 {
                continue;
            }
            let Some(data) = pd.records else { continue };
            let end = workload::batches_end(&data).unwrap_or(pos);
            match workload::decode_batches(data) {
                Ok(records) => {
                    let at = sh.trace.elapsed();
                    let served = workload::FetchAnswer { reader: &who, partition: p, sent_at, at, log_start: pd.log_start_offset, high_watermark: pd.high_watermark };
                    let (next, new) = served.record(&mut sh.history.lock(), pos, records);
                    idle &= !new;
                    positions.insert(p, next.max(end));
                }
                Err(e) => {
                    sh.trace.event(&who, format!("p{p}: {e}"));
                    sh.history.lock().corrupt_served.push(format!("{who} p{p} at {pos}: {e}"));
                }
            }
        }
        if idle {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One look at the whole cluster after the heal.
struct Look {
    quorum: Vec<Option<(i16, i32, i32, i64, Option<i64>)>>,
    metadata: Vec<Option<MetadataView>>,
}

async fn look(sh: &Shared, pool: &mut Pool) -> Look {
    let mut out = Look { quorum: Vec::new(), metadata: Vec::new() };
    for addr in &sh.addrs {
        let (q, m) = match pool.get(addr, &sh.trace).await {
            Some(c) => {
                let q = describe_quorum(c).await.ok();
                let m = metadata(c).await.ok();
                (q, m)
            }
            None => (None, None),
        };
        if q.is_none() || m.is_none() {
            pool.drop_conn(addr);
        }
        out.quorum.push(q);
        out.metadata.push(m);
    }
    out
}

/// The leader (index, epoch, high watermark) if the look shows a converged cluster.
/// (`serving`: the node index of each answer; `nodes`: how many nodes there are.)
fn converged(look: &Look, serving: &[usize], nodes: usize) -> Option<(usize, i32, i64)> {
    let q: Vec<_> = look.quorum.iter().map(|q| q.as_ref()).collect::<Option<Vec<_>>>()?;
    let m: Vec<_> = look.metadata.iter().map(|m| m.as_ref()).collect::<Option<Vec<_>>>()?;
    let (_, leader, epoch, hw, _) = *q[0];
    if leader < 1 || leader as usize > nodes {
        return None;
    }
    let li = leader as usize - 1;
    if q.iter().any(|x| x.1 != leader || x.2 != epoch || x.3 != hw) {
        return None;
    }
    // The leader's own answer, when it has a broker listener to ask: its log end is the
    // high watermark (nothing uncommitted is left).
    if let Some(k) = serving.iter().position(|&i| i == li) {
        let (code, _, _, _, end) = *q[k];
        if code != 0 || end != Some(hw) {
            return None;
        }
    }
    let all_live = m[0].brokers.len() == serving.len() && m[0].topics.values().all(|t| t.error_code == 0 && t.partitions.values().all(|p| p.leader >= 0));
    (all_live && m.iter().all(|v| v.agrees_with(m[0]))).then_some((li, epoch, hw))
}

/// Waits (up to `bound`) for the cluster to converge, then records the final state.
async fn settle(sh: Shared, bound: Duration) -> (Option<(usize, i32, i64)>, Vec<(usize, Option<MetadataView>)>) {
    let mut pool = Pool::new(LOCAL_VIEW_CLIENT_ID, POLL_TIMEOUT_MS);
    let deadline = sh.trace.elapsed() + bound;
    loop {
        let l = look(&sh, &mut pool).await;
        // Voters without a broker listener are not polled: their logs must reach the high
        // watermark on disk too (a voter may lag while the others commit).
        // ... and hold the leader's entries there: a voter may still have to truncate a
        // diverging entry it holds at a committed offset.
        let done = converged(&l, &sh.serving, sh.disks.len()).filter(|&(li, _, hw)| {
            let Ok(leader) = read_metadata_log(&sh.disks[li]) else { return false };
            sh.disks.iter().all(|d| {
                read_metadata_log(d).is_ok_and(|log| {
                    log.covers(hw) && log.entries.range(log.snapshot_end.min(hw)..hw).all(|(o, e)| leader.entries.get(o).is_none_or(|x| x == e))
                })
            })
        });
        if done.is_some() || sh.trace.elapsed() >= deadline {
            sh.trace.event("settle", format!("converged: {done:?}"));
            return (done, sh.serving.iter().copied().zip(l.metadata).collect());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long one attempt of the final read of one partition may take before the leader is
/// looked up again.
const FINAL_READ_ATTEMPT_MS: u64 = 5_000;

/// Reads every `events` partition from its leader, within `bound`. A read that its node refuses
/// as not the leader (leadership may still move after convergence: a new active controller
/// fences brokers whose heartbeats it has not seen) is retried at the leader a fresh Metadata
/// answer names; each attempt probes with its own producer number.
async fn final_read(ctx: Ctx, sh: Shared, view: Option<MetadataView>, bound: Duration) -> FinalRead {
    let mut routes = view.as_ref().map(|v| leaders_in(v, &ctx.topic)).unwrap_or_default();
    let mut pool = Pool::new("checker", POLL_TIMEOUT_MS);
    let mut rng = SmallRng::seed_from_u64(0x6669_6e61_6c);
    let start = ctx.trace.elapsed();
    let deadline = start + bound;
    let mut out = FinalRead::default();
    let mut all_served = true;
    for p in 0..ctx.partitions {
        let mut attempt = 0u32;
        let one = loop {
            let left = deadline.saturating_sub(ctx.trace.elapsed());
            let broker = routes.get(&p).cloned().unwrap_or_else(|| sh.addrs[0].clone());
            let probe = PROBE_PRODUCER + p as u32 + 100 * attempt;
            let one = workload::final_read_of(Ctx { broker, ..ctx.clone() }, probe, left.min(Duration::from_millis(FINAL_READ_ATTEMPT_MS)), &[p]).await;
            attempt += 1;
            let refused = one.served_after.is_none() || one.stuck.get(&p).is_some_and(|(_, why)| why.starts_with("fetch error 6") || why.starts_with("fetch error 3"));
            if !refused || ctx.trace.elapsed() >= deadline {
                break one;
            }
            ctx.trace.event("checker", format!("p{p}: final read attempt {attempt} failed; looking the leader up again"));
            tokio::time::sleep(Duration::from_millis(200)).await;
            let fresh = leaders(&mut pool, &sh, &mut rng).await;
            if !fresh.is_empty() {
                routes = fresh;
            }
        };
        all_served &= one.served_after.is_some();
        out.log_start.extend(one.log_start);
        out.high_watermark.extend(one.high_watermark);
        out.records.extend(one.records);
        out.stuck.extend(one.stuck);
    }
    if all_served {
        out.served_after = Some(ctx.trace.elapsed().saturating_sub(start));
    }
    out
}

/// Sleeps `d`, restarting nodes a crash point takes down meanwhile.
async fn nap(world: &mut World, d: Duration) {
    let end = world.trace.elapsed() + d;
    loop {
        world.restart_crashed();
        let now = world.trace.elapsed();
        if now >= end {
            return;
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(REAP_INTERVAL_MS))).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Kill,
    PowerLoss,
    PowerLossAll,
    Isolate,
    OneWay,
    Bridge,
    Swizzle,
    Pause,
    GracefulRestart,
}

/// The index of the quorum leader the observer last saw.
fn last_leader(history: &History, nodes: usize) -> Option<usize> {
    let h = history.lock();
    let polls = &h.cluster.as_ref()?.quorum_polls;
    let l = polls.iter().rev().find(|p| p.leader_id >= 1)?.leader_id as usize;
    (l <= nodes).then(|| l - 1)
}

fn shuffled(rng: &mut SmallRng, mut v: Vec<usize>) -> Vec<usize> {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
    v
}

/// Injects faults one at a time until `until`, each undone before the next.
async fn nemesis(world: &mut World, ck: &ClusterKnobs, history: &History, rng: &mut SmallRng, until: Duration, counts: &mut BTreeMap<String, u64>) {
    let n = world.brokers.len();
    let kinds = [
        (Kind::Kill, ck.kill_weight),
        (Kind::PowerLoss, ck.power_loss_weight),
        (Kind::PowerLossAll, ck.power_loss_all_weight),
        (Kind::Isolate, ck.isolate_weight),
        (Kind::OneWay, ck.one_way_weight),
        (Kind::Bridge, ck.bridge_weight),
        (Kind::Swizzle, ck.swizzle_weight),
        (Kind::Pause, ck.pause_weight),
        (Kind::GracefulRestart, ck.graceful_restart_weight),
    ];
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    let mut power_all_budget = 1u32;
    loop {
        let gap = rng.random_range(ck.mean_gap_ms / 2..=ck.mean_gap_ms * 3 / 2);
        if total == 0 || world.trace.elapsed() + Duration::from_millis(gap) >= until {
            nap(world, until.saturating_sub(world.trace.elapsed())).await;
            return;
        }
        nap(world, Duration::from_millis(gap)).await;
        let mut roll = rng.random_range(0..total);
        let kind = kinds.iter().find(|(_, w)| if roll < *w { true } else { roll -= w; false }).map_or(Kind::Kill, |(k, _)| *k);
        let random = rng.random_range(0..n);
        let target = if rng.random_bool(ck.target_controller_chance) { last_leader(history, n).unwrap_or(random) } else { random };
        let hold = Duration::from_millis(rng.random_range(0..=FAULT_DURATION_MS_MAX));
        let name = match kind {
            Kind::Kill | Kind::PowerLoss => {
                let power = matches!(kind, Kind::PowerLoss);
                world.kill(target, power);
                if power {
                    history.lock().power_losses.push(world.trace.elapsed());
                }
                nap(world, hold).await;
                world.restart(target);
                if power {
                    "power loss of one node"
                } else {
                    "process kill"
                }
            }
            Kind::GracefulRestart => {
                if !world.brokers[target].running {
                    continue;
                }
                world.stop_gracefully(target);
                let deadline = world.trace.elapsed() + Duration::from_millis(GRACEFUL_STOP_MS_MAX);
                while !world.stopped_gracefully(target) {
                    if world.trace.elapsed() >= deadline || !world.brokers[target].running {
                        // A clean close that hangs is a process an operator kills.
                        world.trace.event(&world.brokers[target].name.clone(), "did not stop within 20 s; killed");
                        world.kill(target, false);
                        break;
                    }
                    nap(world, Duration::from_millis(100)).await;
                }
                nap(world, hold).await;
                world.restart(target);
                "graceful restart"
            }
            Kind::PowerLossAll => {
                if power_all_budget == 0 {
                    continue;
                }
                power_all_budget -= 1;
                for i in 0..n {
                    world.kill(i, true);
                }
                history.lock().power_losses.push(world.trace.elapsed());
                nap(world, hold.min(Duration::from_millis(3_000))).await;
                for i in 0..n {
                    world.restart(i);
                }
                "power loss of every node"
            }
            Kind::Isolate => {
                for j in (0..n).filter(|&j| j != target) {
                    world.clog_between(target, j);
                    world.clog_between(j, target);
                }
                nap(world, hold).await;
                world.unclog_between_all();
                "isolate a node from the others"
            }
            Kind::OneWay => {
                let outbound = rng.random_bool(0.5);
                for j in (0..n).filter(|&j| j != target) {
                    if outbound {
                        world.clog_between(target, j);
                    } else {
                        world.clog_between(j, target);
                    }
                }
                nap(world, hold).await;
                world.unclog_between_all();
                "one-way partition"
            }
            Kind::Bridge => {
                let others = shuffled(rng, (0..n).filter(|&j| j != target).collect());
                let (a, b) = others.split_at(others.len() / 2);
                for &x in a {
                    for &y in b {
                        world.clog_between(x, y);
                        world.clog_between(y, x);
                    }
                }
                nap(world, hold).await;
                world.unclog_between_all();
                "bridge partition"
            }
            Kind::Swizzle => {
                let k = rng.random_range(1..=n / 2 + 1);
                let subset: Vec<usize> = shuffled(rng, (0..n).collect()).into_iter().take(k).collect();
                for &i in &subset {
                    world.clog_broker(i, true, true);
                    nap(world, Duration::from_millis(rng.random_range(100..=1_000))).await;
                }
                for i in shuffled(rng, subset) {
                    world.unclog_broker(i);
                    nap(world, Duration::from_millis(rng.random_range(100..=1_000))).await;
                }
                "swizzle clog"
            }
            Kind::Pause => {
                world.pause(target);
                nap(world, hold).await;
                world.resume(target);
                "pause"
            }
        };
        *counts.entry(name.into()).or_default() += 1;
    }
}

/// What a node runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Combined,
    Controller,
    Broker,
}

/// The settings of node `i` (node.id `i + 1`).
fn node_settings(i: usize, role: Role, voters: &str, ip: &str, ck: &ClusterKnobs) -> Vec<(String, String)> {
    let broker_port = crate::world::BROKER_PORT;
    let (roles, listeners, advertised) = match role {
        Role::Combined => ("broker,controller", format!("PLAINTEXT://0.0.0.0:{broker_port},CONTROLLER://0.0.0.0:{CONTROLLER_PORT}"), format!("PLAINTEXT://{ip}:{broker_port}")),
        Role::Controller => ("controller", format!("CONTROLLER://0.0.0.0:{CONTROLLER_PORT}"), String::new()),
        Role::Broker => ("broker", format!("PLAINTEXT://0.0.0.0:{broker_port}"), format!("PLAINTEXT://{ip}:{broker_port}")),
    };
    let inter_broker = if role == Role::Controller { String::new() } else { "PLAINTEXT".to_string() };
    [
        ("node.id", (i + 1).to_string()),
        ("process.roles", roles.into()),
        ("listeners", listeners),
        ("advertised.listeners", advertised),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", inter_broker),
        ("controller.quorum.voters", voters.to_string()),
        ("controller.quorum.election.timeout.ms", "1000".into()),
        ("controller.quorum.fetch.timeout.ms", "2000".into()),
        ("broker.heartbeat.interval.ms", "500".into()),
        ("broker.session.timeout.ms", "3000".into()),
        ("auto.create.topics.enable", "false".into()),
        ("default.replication.factor", "1".into()),
        ("offsets.topic.num.partitions", "3".into()),
        ("offsets.topic.replication.factor", "1".into()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        ("metadata.log.max.record.bytes.between.snapshots", ck.snapshot_bytes.to_string()),
        // With an operator moving leaders and replicas, the controller moves leadership back
        // to preferred replicas too (else only after Kafka's 300 s, beyond a run).
        ("leader.imbalance.check.interval.seconds", if ck.operator_gap_ms > 0 { "4" } else { "300" }.into()),
        // Short enough that a paused, clogged or lagging follower leaves the ISR (and re-joins)
        // within a run, not only a fenced one.
        ("replica.lag.time.max.ms", "4000".into()),
        ("replica.fetch.backoff.ms", "200".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The cluster scenario (see the module documentation).
pub async fn cluster(seed: u64, knobs: &Knobs, trace: Trace) -> Outcome {
    let ck = knobs.cluster.clone().expect("cluster knobs");
    let wk = &knobs.workload;
    let fk = &knobs.faults;
    let n = ck.nodes;
    let mut world = World::new(seed, trace.clone());
    // A raft node's invariant checks panic with "raft node <id>: ..."; the node restarts and the
    // run goes on, so the checkers see what the broken invariant did to the cluster.
    world.restart_on_panic_matching = Some("raft node ");
    let ips: Vec<String> = (0..n).map(|i| format!("10.0.0.{}", i + 1)).collect();
    // With controller-only nodes, the first `controllers` nodes are the voters; else every node.
    let role = |i: usize| match ck.controllers {
        0 => Role::Combined,
        c if i < c => Role::Controller,
        _ => Role::Broker,
    };
    let voter_count = if ck.controllers == 0 { n } else { ck.controllers };
    let voters = (0..voter_count).map(|i| format!("{}@{}:{CONTROLLER_PORT}", i + 1, ips[i])).collect::<Vec<_>>().join(",");
    let mut id_rng = SmallRng::seed_from_u64(seed ^ 0x636c_7573_7465_7269);
    let cluster_id = gregor_server::meta_properties::random_uuid(&mut id_rng);
    for i in 0..n {
        let mut settings = node_settings(i, role(i), &voters, &ips[i], &ck);
        if wk.compaction.is_some() {
            settings.extend(crate::knobs::CompactionKnobs::broker_settings());
        }
        let index = world.add_broker_prepared(settings, fk.crash_faults(), |disk| {
            gregor_server::meta_properties::format(disk, &[DATA_DIR.into()], &cluster_id, (i + 1) as i32, false, &mut id_rng)
                .expect("formatting a fresh simulated disk");
        });
        debug_assert_eq!(world.brokers[index].ip.to_string(), ips[i]);
    }
    let topic = "events";
    let history = History::new(topic, wk.partitions);
    history.lock().cluster = Some(ClusterData { nodes: n, ..ClusterData::default() });
    history.lock().compaction = wk.compaction;
    let stop = Arc::new(AtomicBool::new(false));
    let sh = Shared {
        addrs: (0..n).filter(|&i| role(i) != Role::Controller).map(|i| world.brokers[i].addr()).collect(),
        serving: (0..n).filter(|&i| role(i) != Role::Controller).collect(),
        disks: world.brokers.iter().map(|b| b.disk.clone()).collect(),
        starts: world.brokers.iter().map(|b| b.starts.clone()).collect(),
        history: history.clone(),
        trace: trace.clone(),
        stop: stop.clone(),
        topic: topic.to_string(),
        partitions: wk.partitions,
        replication_factor: ck.replication_factor,
        min_insync: ck.min_insync_replicas,
        compacted: wk.compaction.is_some(),
        topic_configs: match &wk.compaction {
            Some(c) => std::iter::once(("segment.bytes".to_string(), wk.segment_bytes.to_string())).chain(c.topic_configs()).collect(),
            None => Vec::new(),
        },
    };
    gregor_core::probe::set_observer(Some(crate::ack_replicas::observer(sh.clone())));
    let observer_stop = Arc::new(AtomicBool::new(false));
    let observer_task = world.add_client("observer").spawn(observer(sh.clone(), observer_stop.clone()));

    let admin_node = world.add_client("admin");
    let created = {
        let sh = sh.clone();
        let parts = wk.partitions;
        admin_node.spawn(async move {
            let mut pool = Pool::new("admin", 12_000);
            let mut k = 0;
            loop {
                let addr = sh.addrs[k % sh.addrs.len()].clone();
                k += 1;
                match create_once(&mut pool, &sh, &addr, "events", parts).await {
                    Some(0) => return true,
                    Some(36) => {
                        // An earlier attempt that timed out did create it.
                        sh.with_cluster(|c| c.created_acked.insert("events".into(), parts));
                        return true;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };
    if !matches!(tokio::time::timeout(Duration::from_millis(FORM_MS_MAX), created).await, Ok(Ok(true))) {
        history.lock().liveness_failures.push(format!("the cluster did not form and create the topic within {FORM_MS_MAX} ms"));
        observer_stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), observer_task).await;
        return Outcome { history: std::mem::take(&mut *history.lock()), faults: BTreeMap::new() };
    }

    let mut tasks = Vec::new();
    for i in 0..wk.producers {
        let node = world.add_client(&format!("producer-{i}"));
        let compression = workload::compression(wk.compression[i as usize]);
        tasks.push(node.spawn(producer(sh.clone(), i, compression, wk.clone(), seed ^ (0x5eed_0000 + u64::from(i)))));
    }
    for i in 0..wk.consumers {
        let node = world.add_client(&format!("consumer-{i}"));
        tasks.push(node.spawn(consumer(sh.clone(), i, seed ^ (0xc0_0000 + u64::from(i)))));
    }
    tasks.push(admin_node.spawn(admin(sh.clone(), ck.create_gap_ms, seed ^ 0xad31)));
    let operator = (ck.operator_gap_ms > 0).then(|| world.add_client("operator").spawn(crate::operator::operator(sh.clone(), ck.operator_gap_ms, seed ^ 0x0be7_a70e)));

    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7300);
    let mut faults = BTreeMap::new();
    let until = trace.elapsed() + Duration::from_millis(knobs.safety_ms);
    world.arm_crash_points(fk.crash_point_chance, fk.crash_points_max);
    gregor_core::probe::arm_fault_points(Some((seed ^ 0x6661_756c_7470_7473, ck.lost_alter_partition_answer)));
    nemesis(&mut world, &ck, &history, &mut rng, until, &mut faults).await;
    tokio::time::sleep(until.saturating_sub(trace.elapsed())).await;

    stop.store(true, Ordering::SeqCst);
    world.heal();
    let lost = gregor_core::probe::arm_fault_points(None);
    if lost > 0 {
        faults.insert("AlterPartition answer lost".to_string(), lost);
    }
    crate::scenario::note_crash_points(&world, &history, &mut faults);
    history.lock().healed_at = Some(trace.elapsed());
    for t in tasks {
        if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), t).await.is_err() {
            history.lock().liveness_failures.push("a client task did not stop within its grace period".into());
        }
    }
    if let Some(op) = operator {
        match tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), op).await {
            Ok(Ok(counts)) => faults.extend(counts),
            _ => history.lock().liveness_failures.push("the operator did not stop within its grace period".into()),
        }
    }

    // Every high watermark the checkers compare with the final state is observed before it.
    observer_stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), observer_task).await;
    let bound = Duration::from_millis(LIVENESS_BOUND_MS);
    let checker = world.add_client("checker");
    let (leader, views) = checker.spawn(settle(sh.clone(), bound)).await.unwrap_or_default();
    // The logs as they are the moment the cluster was seen converged.
    let logs: Vec<_> = sh.disks.iter().enumerate().map(|(i, d)| (i, read_metadata_log(d))).collect();
    let leader_view = leader.and_then(|_| views.first().and_then(|(_, v)| v.clone()));
    sh.with_cluster(|c| {
        c.converged = leader.is_some();
        c.final_leader = leader;
        c.final_logs = logs;
        c.final_metadata = views;
    });
    if leader.is_none() {
        history.lock().liveness_failures.push(format!("the cluster did not converge within {bound:?} of the heal"));
    }
    let ctx = Ctx { history: history.clone(), trace: trace.clone(), stop: Arc::new(AtomicBool::new(false)), broker: sh.addrs[0].clone(), topic: topic.into(), partitions: wk.partitions };
    let read = checker.spawn(final_read(ctx, sh.clone(), leader_view.clone(), bound)).await.unwrap_or_default();
    {
        let sh = sh.clone();
        let read = read.clone();
        let _ = checker.spawn(async move { record_replicas(&sh, leader_view.as_ref(), &read, bound).await }).await;
    }
    history.lock().final_read = read;

    let (mut torn, mut lost) = (0, 0);
    for b in &world.brokers {
        let c = b.disk.fault_counts();
        torn += c.torn_on_crash;
        lost += c.lose_unsynced_on_crash;
    }
    for (k, v) in [("torn write on crash", torn), ("unsynced data lost on crash", lost)] {
        if v > 0 {
            faults.insert(k.to_string(), v);
        }
    }
    gregor_core::probe::set_observer(None);
    let data = std::mem::take(&mut *history.lock());
    Outcome { history: data, faults }
}
