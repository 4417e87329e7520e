//! The cluster-describing APIs and tools: DescribeQuorum (key 55) and DescribeCluster (key 60)
//! driven through the broker's dispatcher on a single-node broker (MemDisk, ManualClock), and
//! `gregor cluster describe`, `gregor cluster quorum --status/--replication` and `gregor topics
//! describe` run as the real binary against a real server.
//!
//! The binary tests work in their own directory under the system temp dir (removed at the end),
//! bind loopback only, bound every process they start, and stop the server by its PID.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gregor_core::clock::{Clock, ManualClock};
use gregor_core::metadata::{Endpoint, MetadataDelta, MetadataRecord};
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest, DescribeQuorumRequest, DescribeQuorumResponse, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use support::call;

const NODE_ID: i32 = 3;
const WALL_START_MS: i64 = 1_700_000_000_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn open(disk: &MemDisk, clock: Arc<ManualClock>) -> Arc<Broker> {
    let config = BrokerConfig::from_settings(&[
        ("log.dirs".into(), "/data".into()),
        ("node.id".into(), NODE_ID.to_string()),
        ("broker.rack".into(), "rack-a".into()),
        ("listeners".into(), "PLAINTEXT://127.0.0.1:19092".into()),
    ])
    .unwrap();
    Broker::open(config, Arc::new(disk.clone()), clock, 7).await.unwrap()
}

fn quorum_request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = partitions
        .iter()
        .map(|&i| {
            let mut p = PartitionData::default();
            p.partition_index = i;
            p
        })
        .collect();
    let mut req = DescribeQuorumRequest::default();
    req.topics = vec![t];
    req
}

async fn describe_quorum(broker: &Arc<Broker>, version: i16, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let ResponseKind::DescribeQuorum(resp) = call(broker, ApiKey::DescribeQuorum, version, RequestKind::DescribeQuorum(req)).await else {
        panic!("not a DescribeQuorum response")
    };
    // What goes on the wire must encode at the version asked (fields of later versions unset).
    resp.encode(&mut BytesMut::new(), version).unwrap_or_else(|e| panic!("DescribeQuorum v{version} response does not encode: {e}"));
    resp
}

async fn describe_cluster(broker: &Arc<Broker>, version: i16, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let ResponseKind::DescribeCluster(resp) = call(broker, ApiKey::DescribeCluster, version, RequestKind::DescribeCluster(req)).await else {
        panic!("not a DescribeCluster response")
    };
    resp.encode(&mut BytesMut::new(), version).unwrap_or_else(|e| panic!("DescribeCluster v{version} response does not encode: {e}"));
    resp
}

#[test]
fn describe_quorum_of_a_single_node_is_its_own_leader() {
    rt().block_on(async {
        let disk = MemDisk::new(1, FaultConfig::default());
        let clock = Arc::new(ManualClock::new(WALL_START_MS));
        let broker = open(&disk, clock.clone()).await;
        broker.create_topic("t", 2, 1, Default::default(), false).await.unwrap();
        // Times on the wire are wall-clock times, not the raft node's monotonic ones.
        clock.advance_ms(5_000);
        let image = broker.image();
        let registration = &image.brokers[&NODE_ID];

        for version in 0..=2 {
            let resp = describe_quorum(&broker, version, quorum_request("__cluster_metadata", &[0])).await;
            assert_eq!(resp.error_code, 0, "v{version}");
            assert_eq!(resp.topics.len(), 1);
            assert_eq!(resp.topics[0].topic_name.0.as_str(), "__cluster_metadata");
            let p = &resp.topics[0].partitions[..];
            assert_eq!(p.len(), 1);
            let p = &p[0];
            assert_eq!((p.partition_index, p.error_code), (0, 0), "v{version}: {p:?}");
            assert_eq!(p.leader_id.0, NODE_ID);
            assert!(p.leader_epoch >= 1, "epoch {}", p.leader_epoch);
            // Registration, the topic and its partitions were committed.
            assert!(p.high_watermark > 0, "high watermark {}", p.high_watermark);
            assert_eq!(p.high_watermark, broker.controller.quorum.status().high_watermark);
            let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
            assert_eq!(voters, vec![NODE_ID]);
            assert!(p.observers.is_empty());
            let me = &p.current_voters[0];
            assert!(me.log_end_offset >= p.high_watermark, "leader log end {} below the high watermark {}", me.log_end_offset, p.high_watermark);
            // The leader reports the current (wall-clock) time for itself, as Kafka does.
            assert_eq!(me.last_fetch_timestamp, clock.wall_ms());
            assert_eq!(me.last_caught_up_timestamp, clock.wall_ms());
            assert!(me.replica_directory_id.is_nil());
            if version >= 2 {
                assert_eq!(resp.nodes.len(), 1);
                assert_eq!(resp.nodes[0].node_id.0, NODE_ID);
                let listeners: Vec<(String, String, u16)> =
                    resp.nodes[0].listeners.iter().map(|l| (l.name.to_string(), l.host.to_string(), l.port)).collect();
                let registered: Vec<(String, String, u16)> =
                    registration.endpoints.iter().map(|e| (e.name.clone(), e.host.clone(), e.port)).collect();
                assert_eq!(listeners, registered);
                assert_eq!(listeners, vec![("PLAINTEXT".to_string(), "127.0.0.1".to_string(), 19092)]);
            } else {
                assert!(resp.nodes.is_empty());
            }
        }

        // Anything but exactly __cluster_metadata-0 is an unknown partition, reported per partition.
        for (topic, partitions) in [("__cluster_metadata", vec![1]), ("other", vec![0]), ("__cluster_metadata", vec![0, 1])] {
            let resp = describe_quorum(&broker, 2, quorum_request(topic, &partitions)).await;
            assert_eq!(resp.error_code, 0);
            assert_eq!(resp.topics[0].topic_name.0.as_str(), topic);
            let got: Vec<(i32, i16)> = resp.topics[0].partitions.iter().map(|p| (p.partition_index, p.error_code)).collect();
            assert_eq!(got, partitions.iter().map(|&i| (i, 3)).collect::<Vec<_>>(), "{topic} {partitions:?}");
            assert!(resp.nodes.is_empty());
        }
        broker.close();
    });
}

#[test]
fn describe_quorum_is_advertised_as_kafka_4_serves_it() {
    rt().block_on(async {
        let disk = MemDisk::new(1, FaultConfig::default());
        let broker = open(&disk, Arc::new(ManualClock::new(WALL_START_MS))).await;
        let ResponseKind::ApiVersions(resp) =
            call(&broker, ApiKey::ApiVersions, 3, RequestKind::ApiVersions(Default::default())).await
        else {
            panic!("not an ApiVersions response")
        };
        let range = resp.api_keys.iter().find(|k| k.api_key == ApiKey::DescribeQuorum as i16).map(|k| (k.min_version, k.max_version));
        assert_eq!(range, Some((0, 2)));
        broker.close();
    });
}

#[test]
fn describe_cluster_lists_the_registered_broker_and_the_quorum_leader() {
    rt().block_on(async {
        let disk = MemDisk::new(1, FaultConfig::default());
        let broker = open(&disk, Arc::new(ManualClock::new(WALL_START_MS))).await;
        let registered = broker.image().brokers[&NODE_ID].clone();
        assert!(!registered.fenced);
        for version in 0..=1 {
            let resp = describe_cluster(&broker, version, DescribeClusterRequest::default().with_endpoint_type(1)).await;
            assert_eq!(resp.error_code, 0, "v{version}: {:?}", resp.error_message);
            assert_eq!(resp.cluster_id.as_str(), broker.cluster_id);
            assert_eq!(resp.cluster_id.len(), 22);
            assert_eq!(resp.controller_id.0, NODE_ID);
            assert_eq!(resp.controller_id.0, broker.controller.quorum.status().leader_id);
            assert_eq!(brokers(&resp), vec![(NODE_ID, "127.0.0.1".to_string(), 19092, registered.rack.clone(), false)]);
        }
        // Without an authorizer every cluster operation is allowed (Kafka's bits 5 and 7-12);
        // not asked, the field keeps its "not computed" default.
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)).await;
        assert_eq!(resp.cluster_authorized_operations, 8096);
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default()).await;
        assert_eq!((resp.error_code, resp.cluster_authorized_operations), (0, i32::MIN));
        // This is a broker listener: the controllers' endpoints are asked of the wrong one.
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default().with_endpoint_type(2)).await;
        assert_eq!(resp.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
        assert!(resp.brokers.is_empty());
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default().with_endpoint_type(7)).await;
        assert_eq!(resp.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");

        // More brokers in the image: a fenced one (listed only when asked for, v2) and one in a rack.
        register(&broker, 4, "10.0.0.4", Some("rack-z"), true);
        register(&broker, 6, "10.0.0.6", Some("rack-y"), false);
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default().with_endpoint_type(1)).await;
        let me = (NODE_ID, "127.0.0.1".to_string(), 19092, registered.rack.clone(), false);
        let six = (6, "10.0.0.6".to_string(), 9092, Some("rack-y".to_string()), false);
        assert_eq!(brokers(&resp), vec![me.clone(), six.clone()]);
        assert_eq!(resp.controller_id.0, NODE_ID);
        let resp = describe_cluster(&broker, 2, DescribeClusterRequest::default().with_endpoint_type(1).with_include_fenced_brokers(true)).await;
        assert_eq!(brokers(&resp), vec![me, (4, "10.0.0.4".to_string(), 9092, Some("rack-z".to_string()), true), six.clone()]);
        // A quorum leader that is not among the listed brokers is not reported as the controller.
        register(&broker, NODE_ID, "127.0.0.1", None, true);
        let resp = describe_cluster(&broker, 1, DescribeClusterRequest::default().with_endpoint_type(1)).await;
        assert_eq!(brokers(&resp), vec![six]);
        assert_eq!(resp.controller_id.0, -1);
        broker.close();
    });
}

fn brokers(resp: &DescribeClusterResponse) -> Vec<(i32, String, i32, Option<String>, bool)> {
    resp.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port, b.rack.as_ref().map(|r| r.to_string()), b.is_fenced)).collect()
}

/// Publishes an image in which broker `id` is registered as given (at the image's own offset,
/// so the quorum's next committed entry still applies after it).
fn register(broker: &Arc<Broker>, id: i32, host: &str, rack: Option<&str>, fenced: bool) {
    let mut image = (*broker.image()).clone();
    let mut delta = MetadataDelta::default();
    let port = if id == NODE_ID { 19092 } else { 9092 };
    let endpoints = vec![Endpoint { name: "PLAINTEXT".into(), host: host.into(), port, security_protocol: 0 }];
    let broker_epoch = image.brokers.get(&id).map_or(1, |b| b.epoch + 1);
    let record = MetadataRecord::RegisterBroker { broker_id: id, incarnation_id: id as u128, broker_epoch, endpoints, rack: rack.map(String::from), fenced };
    image.apply(image.offset, &record, &mut delta).unwrap();
    broker.publish(image, &delta);
}

#[test]
fn describe_configs_types_the_cluster_settings_as_kafka_does() {
    rt().block_on(async {
        let disk = MemDisk::new(1, FaultConfig::default());
        let broker = open(&disk, Arc::new(ManualClock::new(WALL_START_MS))).await;
        let mut res = DescribeConfigsResource::default();
        res.resource_type = 4;
        res.resource_name = StrBytes::from_string(NODE_ID.to_string());
        res.configuration_keys = None;
        let mut req = DescribeConfigsRequest::default();
        req.resources = vec![res];
        let ResponseKind::DescribeConfigs(resp) = call(&broker, ApiKey::DescribeConfigs, 4, RequestKind::DescribeConfigs(req)).await else {
            panic!("not a DescribeConfigs response")
        };
        let types: BTreeMap<String, i8> = resp.results[0].configs.iter().map(|c| (c.name.to_string(), c.config_type)).collect();
        // Kafka's ConfigDef: BOOLEAN 1, STRING 2, INT 3, LONG 5, LIST 7.
        for (key, ty) in [
            ("process.roles", 7),
            ("controller.quorum.voters", 7),
            ("listeners", 2),
            ("advertised.listeners", 2),
            ("log.dirs", 2),
            ("controller.listener.names", 2),
            ("listener.security.protocol.map", 2),
            ("inter.broker.listener.name", 2),
            ("broker.rack", 2),
            ("metadata.log.dir", 2),
            ("node.id", 3),
            ("controller.quorum.fetch.timeout.ms", 3),
            ("broker.session.timeout.ms", 3),
            ("metadata.log.max.record.bytes.between.snapshots", 5),
            ("log.retention.ms", 5),
            ("auto.create.topics.enable", 1),
        ] {
            assert_eq!(types.get(key), Some(&ty), "{key}");
        }
        broker.close();
    });
}

// ---- the real binary ----

const GREGOR: &str = env!("CARGO_BIN_EXE_gregor");
/// Bound on any one process run.
const RUN_MAX: Duration = Duration::from_secs(30);

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("gregor-cluster-tools-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, stopped by its PID when dropped (SIGTERM, then SIGKILL after the bound).
struct Server {
    child: Option<Child>,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + RUN_MAX;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the embedded single-node `gregor server` on a loopback port with its data under
/// `dir`, until it is ready.
fn start_server(dir: &Path, node_id: i32) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let listeners = format!("listeners=PLAINTEXT://{addr}");
    let log_dirs = format!("log.dirs={}", dir.join("data").display());
    let node = format!("node.id={node_id}");
    spawn_server(dir, "server.log", &["--override", &listeners, "--override", &log_dirs, "--override", &node], addr)
}

/// Runs `gregor server args…` in `dir` (stderr to `log_name`) until it is ready; `addr` is its
/// client address.
fn spawn_server(dir: &Path, log_name: &str, args: &[&str], addr: String) -> Server {
    let log = dir.join(log_name);
    let mut child = Command::new(GREGOR)
        .arg("server")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn gregor server");
    let deadline = Instant::now() + RUN_MAX;
    loop {
        let mut printed = String::new();
        if let Ok(mut f) = std::fs::File::open(&log) {
            let _ = f.read_to_string(&mut printed);
        }
        if printed.contains("listening on") {
            return Server { child: Some(child), addr };
        }
        if child.try_wait().unwrap().is_some() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gregor server did not become ready: {printed}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `gregor args…` to completion (bounded; killed by PID past the bound).
fn gregor(args: &[&str]) -> Output {
    let mut child = Command::new(GREGOR)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor");
    let deadline = Instant::now() + RUN_MAX;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("gregor {args:?} did not exit within {RUN_MAX:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout_ok(args: &[&str]) -> String {
    let out = gregor(args);
    assert!(out.status.success(), "gregor {args:?}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The cells of a tab-separated, padded table line.
fn cells(line: &str) -> Vec<&str> {
    line.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// `Key: value` lines.
fn fields(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

#[test]
fn cluster_and_quorum_tools_against_the_real_server() {
    let tmp = TempDir::new("tools");
    let server = start_server(&tmp.0, 5);
    let bs = server.addr.as_str();
    let meta = std::fs::read_to_string(tmp.0.join("data").join("meta.properties")).unwrap();
    let cluster_id = meta.lines().find_map(|l| l.strip_prefix("cluster.id=")).expect("cluster.id").to_string();

    let created = stdout_ok(&["topics", "create", "events", "--partitions", "3", "--bootstrap-server", bs]);
    assert!(created.contains("Created topic events."), "{created}");

    // cluster describe: the id, the active controller, the broker with its endpoint (and no rack).
    let out = stdout_ok(&["cluster", "describe", "--bootstrap-server", bs]);
    let f = fields(&out);
    assert_eq!(f.get("ClusterId"), Some(&cluster_id), "{out}");
    assert_eq!(f.get("ActiveController").map(String::as_str), Some("5"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("BrokerId")).unwrap_or_else(|| panic!("no broker table: {out}"));
    assert_eq!(cells(lines[header]), ["BrokerId", "Endpoint", "Rack", "State", "Controller", "PartitionLeaders"]);
    assert_eq!(cells(lines[header + 1]), ["5", bs, "null", "Unfenced", "yes", "3"], "{out}");
    assert_eq!(lines.len(), header + 2, "one broker: {out}");

    // quorum --status: kafka-metadata-quorum.sh's fields.
    let out = stdout_ok(&["cluster", "quorum", "--status", "--bootstrap-server", bs]);
    let keys: Vec<&str> = out.lines().filter_map(|l| l.split_once(':')).map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag", "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"],
        "{out}"
    );
    let f = fields(&out);
    assert_eq!(f["ClusterId"], cluster_id);
    assert_eq!(f["LeaderId"], "5");
    assert!(f["LeaderEpoch"].parse::<i32>().unwrap() >= 1, "{out}");
    let hw: i64 = f["HighWatermark"].parse().unwrap();
    assert!(hw > 0, "{out}");
    assert_eq!(f["MaxFollowerLag"], "0");
    assert_eq!(f["MaxFollowerLagTimeMs"], "0");
    assert_eq!(f["CurrentVoters"], format!("[{{\"id\": 5, \"directoryId\": null, \"endpoints\": [\"PLAINTEXT://{bs}\"]}}]"), "{out}");
    assert_eq!(f["CurrentObservers"], "[]");

    // quorum --replication: the leader's row; its times are wall-clock times of now.
    let before_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let out = stdout_ok(&["cluster", "quorum", "--replication", "--bootstrap-server", bs]);
    let after_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(cells(lines[0]), ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]);
    let row = cells(lines[1]);
    assert_eq!((row[0], row[1], row[3], row[6]), ("5", "AAAAAAAAAAAAAAAAAAAAAA", "0", "Leader"), "{out}");
    assert!(row[2].parse::<i64>().unwrap() >= hw, "leader log end below the high watermark: {out}");
    for t in [row[4], row[5]] {
        let t: i64 = t.parse().unwrap();
        assert!((before_ms..=after_ms).contains(&t), "{t} not within {before_ms}..={after_ms}: {out}");
    }
    let out = stdout_ok(&["cluster", "quorum", "--replication", "--human-readable", "--bootstrap-server", bs]);
    assert!(cells(out.lines().nth(1).unwrap())[4].ends_with(" ms ago"), "{out}");

    // topics describe: the real leader, replicas and ISR of each partition.
    let out = stdout_ok(&["topics", "describe", "events", "--bootstrap-server", bs]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Topic: events\tTopicId: ") && lines[0].contains("\tPartitionCount: 3\tReplicationFactor: 1\t"), "{out}");
    for (i, line) in lines[1..].iter().enumerate() {
        assert_eq!(*line, format!("\tTopic: events\tPartition: {i}\tLeader: 5\tReplicas: 5\tIsr: 5\tElr: \tLastKnownElr: "));
    }
    assert_eq!(lines.len(), 4, "{out}");

    // Bad arguments: usage, and no request sent.
    for args in [vec!["cluster", "quorum"], vec!["cluster", "quorum", "--status", "--replication"], vec!["cluster", "quorum", "--status", "--human-readable"], vec!["cluster", "frobnicate"]] {
        let mut all = args.clone();
        all.extend(["--bootstrap-server", bs]);
        let out = gregor(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: gregor cluster"), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    drop(server);
}

#[test]
fn cluster_tools_report_an_unreachable_broker() {
    let bs = format!("127.0.0.1:{}", free_port());
    for args in [vec!["cluster", "describe"], vec!["cluster", "quorum", "--status"]] {
        let mut all = args.clone();
        all.extend(["--bootstrap-server", bs.as_str()]);
        let out = gregor(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("is a broker running at {bs}?")), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Three combined nodes (the quorum) and a broker-only node (an observer), each a real process.
#[test]
fn quorum_and_cluster_of_three_voters_and_an_observer() {
    let tmp = TempDir::new("three");
    let root = tmp.0.as_path();
    let started_ms = wall_ms();
    let client_ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = (0..3).map(|i| format!("{}@127.0.0.1:{}", i + 1, controller_ports[i])).collect::<Vec<_>>().join(",");
    let cluster_id = String::from_utf8(gregor(&["storage", "random-uuid"]).stdout).unwrap().trim().to_string();
    let mut servers = Vec::new();
    for i in 0..4 {
        let id = i + 1;
        let client = format!("127.0.0.1:{}", client_ports[i]);
        let mut props = vec![format!("node.id={id}"), format!("log.dirs={}", root.join(format!("data{id}")).display())];
        props.push(format!("controller.quorum.voters={voters}"));
        props.push("controller.listener.names=CONTROLLER".into());
        props.push(format!("advertised.listeners=PLAINTEXT://{client}"));
        if i < 3 {
            props.push("process.roles=broker,controller".into());
            props.push(format!("listeners=PLAINTEXT://{client},CONTROLLER://127.0.0.1:{}", controller_ports[i]));
            props.push("inter.broker.listener.name=PLAINTEXT".into());
            props.push(format!("broker.rack=r{id}"));
        } else {
            props.push("process.roles=broker".into());
            props.push(format!("listeners=PLAINTEXT://{client}"));
        }
        let config = root.join(format!("node{id}.properties"));
        std::fs::write(&config, props.join("\n") + "\n").unwrap();
        let config = config.to_str().unwrap().to_string();
        let formatted = gregor(&["storage", "format", "-t", &cluster_id, "-c", &config]);
        assert!(formatted.status.success(), "{}", String::from_utf8_lossy(&formatted.stderr));
        servers.push(spawn_server(root, &format!("node{id}.log"), &["--config", &config], client));
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();

    // Until a leader is elected and the observer has registered, any node may refuse.
    let deadline = Instant::now() + RUN_MAX;
    let status = loop {
        let out = gregor(&["cluster", "quorum", "--status", "--bootstrap-server", &addrs[3]]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && text.contains("CurrentObservers:       [{\"id\": 4") {
            break text;
        }
        assert!(Instant::now() < deadline, "no quorum leader within {RUN_MAX:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    let f = fields(&status);
    let leader: i32 = f["LeaderId"].parse().unwrap();
    assert!((1..=3).contains(&leader), "{status}");
    assert_eq!(f["ClusterId"], cluster_id);
    let endpoints = |i: usize| format!("{{\"id\": {}, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://127.0.0.1:{}\"]}}", i + 1, controller_ports[i]);
    assert_eq!(f["CurrentVoters"], format!("[{}, {}, {}]", endpoints(0), endpoints(1), endpoints(2)), "{status}");
    assert_eq!(f["CurrentObservers"], "[{\"id\": 4, \"directoryId\": null}]");
    // Every node gives the leader's view.
    for addr in &addrs[..3] {
        let other = stdout_ok(&["cluster", "quorum", "--status", "--bootstrap-server", addr]);
        assert_eq!(fields(&other)["LeaderId"], leader.to_string(), "{addr}: {other}");
    }

    // On the wire: a node that is not the leader forwards to the leader's broker listener, so
    // any broker answers with the leader's view (as Kafka brokers forward to the controller) ...
    let follower = if leader == 1 { 2 } else { 1 };
    rt().block_on(async {
        for (version, from) in [(2, follower), (1, 4), (0, follower)] {
            let mut c = gregor_net::client::Client::connect(&addrs[from as usize - 1], "cluster-tools-test").await.unwrap();
            let resp: DescribeQuorumResponse = c.send_at(&quorum_request("__cluster_metadata", &[0]), version).await.unwrap();
            let p = &resp.topics[0].partitions[0];
            assert_eq!((p.error_code, p.leader_id.0), (0, leader), "v{version} from node {from}: {resp:?}");
            let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
            assert_eq!(voters, vec![1, 2, 3]);
            assert_eq!(resp.nodes.len(), if version >= 2 { 3 } else { 0 });
        }
        // ... but a forwarded request is answered where it arrives: the node's own view, naming
        // the leader and, at v2, its endpoint.
        let mut c = gregor_net::client::Client::connect(&addrs[follower as usize - 1], "gregor-describe-quorum-forward").await.unwrap();
        let resp: DescribeQuorumResponse = c.send_at(&quorum_request("__cluster_metadata", &[0]), 2).await.unwrap();
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id.0), (6, leader), "{resp:?}");
        assert!(p.leader_epoch >= 1 && p.current_voters.is_empty());
        let named: Vec<(i32, u16)> = resp.nodes.iter().flat_map(|n| n.listeners.iter().map(move |l| (n.node_id.0, l.port))).collect();
        assert_eq!(named, vec![(leader, controller_ports[leader as usize - 1])]);
    });

    // --replication: the leader, the two followers, the observer; wall-clock times of this run.
    // (Waits until every replica has caught up once: before that its caught-up time is -1.)
    let deadline = Instant::now() + RUN_MAX;
    let out = loop {
        let out = stdout_ok(&["cluster", "quorum", "--replication", "--bootstrap-server", &addrs[3]]);
        if out.lines().skip(1).all(|l| cells(l)[5] != "-1") {
            break out;
        }
        assert!(Instant::now() < deadline, "a replica never caught up: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let now_ms = wall_ms();
    let rows: Vec<Vec<&str>> = out.lines().skip(1).map(cells).collect();
    let ids_and_status: Vec<(i32, &str)> = rows.iter().map(|r| (r[0].parse().unwrap(), r[6])).collect();
    let followers: Vec<i32> = (1..=3).filter(|&i| i != leader).collect();
    assert_eq!(ids_and_status, vec![(leader, "Leader"), (followers[0], "Follower"), (followers[1], "Follower"), (4, "Observer")], "{out}");
    let leader_end: i64 = rows[0][2].parse().unwrap();
    assert!(leader_end >= fields(&status)["HighWatermark"].parse::<i64>().unwrap(), "{out}");
    for r in &rows {
        let end: i64 = r[2].parse().unwrap();
        assert_eq!(r[3].parse::<i64>().unwrap(), leader_end - end, "lag = leader's log end - its log end: {out}");
        for t in [r[4], r[5]] {
            let t: i64 = t.parse().unwrap();
            assert!((started_ms..=now_ms).contains(&t), "{t} is not a wall-clock time of this run ({started_ms}..={now_ms}): {out}");
        }
    }

    // cluster describe from the observer: all four brokers, their racks, the leader as controller.
    // (The broker-only node is listed once its registration is committed and it is unfenced.)
    let deadline = Instant::now() + RUN_MAX;
    let out = loop {
        let out = stdout_ok(&["cluster", "describe", "--bootstrap-server", &addrs[3]]);
        // Four brokers, each unfenced, and the observer knows the leader.
        if out.lines().count() == 7 && out.matches("Unfenced").count() == 4 && !out.contains("ActiveController: none") {
            break out;
        }
        assert!(Instant::now() < deadline, "not four brokers: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let f = fields(&out);
    assert_eq!(f["ClusterId"], cluster_id);
    assert_eq!(f["ActiveController"], leader.to_string(), "{out}");
    let rows: Vec<Vec<&str>> = out.lines().skip(3).map(cells).collect();
    let expected: Vec<Vec<String>> = (1..=4)
        .map(|id: i32| {
            let rack = if id <= 3 { format!("r{id}") } else { "null".to_string() };
            let controller = if id == leader { "yes" } else { "no" };
            vec![id.to_string(), addrs[id as usize - 1].clone(), rack, "Unfenced".into(), controller.into(), "0".into()]
        })
        .collect();
    assert_eq!(rows, expected, "{out}");
    drop(servers);
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
