//! `gregor-chaos real`: one run of the real-process chaos suite.
//!
//! It starts a cluster of release `gregor` processes on loopback, creates a replicated topic,
//! runs the queue workload (`chaos/workload/queue.py`, confluent-kafka) while the nemesis
//! injects its seeded schedule of process faults, heals everything, lets the cluster settle
//! (bounded), runs the final phase (a write to every partition, then a read of everything), and
//! judges the history with every checker. Everything it writes goes to
//! `<report-dir>/<run>/`: `history.jsonl`, `index.html`, the nodes' logs and the workload's.
//!
//! Guarantees: bounded in time (the workload gets its duration plus a grace period, settling
//! and the final phase have their own limits), every process it starts is stopped by PID (see
//! [`Cluster`]), and a failing run prints its seed and the command that runs the same schedule.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use super::checkers::{self, Violation};
use super::cluster::{Cluster, Placement, SESSION_TIMEOUT_MS};
use super::netns::Net;
use super::history::{History, Op, SendOutcome};
use super::interrupt::{self, interrupted};
use super::nemesis::{self, Fault, Kind};
use super::report;
use super::watchdog;

/// How long the cluster gets to settle after healing (every partition led, no under-replicated one).
const SETTLE_MS: u64 = 60_000;
/// Beyond its duration, how long the workload gets to finish its in-flight sends.
const WORKLOAD_GRACE_MS: u64 = 60_000;
/// The final phase's limit.
const FINAL_MS: u64 = 120_000;
const TOPIC: &str = "chaos";
/// How often the partitions' leaders and ISRs are sampled for the report.
const SAMPLE_MS: u64 = 1_000;

fn parse_duration(s: &str) -> Result<u64, String> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 120s, 5m)"))?;
    match unit {
        "ms" => Ok(n),
        "s" => Ok(n * 1000),
        "m" => Ok(n * 60_000),
        _ => Err(format!("{s:?}: the unit is ms, s or m")),
    }
}

/// Options of `gregor-chaos real`.
#[derive(Parser, Debug, Clone)]
#[command(name = "gregor-chaos real", about = "Chaos on real gregor processes, judged as Jepsen's Kafka queue workload", args_override_self = true)]
pub struct Options {
    /// Cluster size (combined broker+controller nodes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub nodes: u32,
    /// How long the workload and the faults run (e.g. 120s, 5m).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub duration: u64,
    /// Faults to draw from: kill, pause, restart, restart-all, kill-all, lagging-kill, and in network namespaces (root, iproute2, iptables) partition, clog, loss, and latency (where the kernel has tc netem).
    #[arg(long, default_value = "kill,pause,restart,restart-all")]
    pub nemesis: String,
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The producers' acks: all (idempotent, the default) or 1.
    #[arg(long, default_value = "all", value_parser = ["all", "1"])]
    pub acks: String,
    /// Let the topic elect out-of-sync leaders (`unclean.leader.election.enable=true`, `min.insync.replicas=1`).
    #[arg(long)]
    pub unclean: bool,
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    #[arg(long, default_value_t = 2)]
    pub producers: u32,
    #[arg(long, default_value_t = 2)]
    pub consumers: u32,
    /// Sends per second per producer.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The gregor binary (default: $GREGOR_BIN, else `cargo build --release --bin gregor`).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// A Python with confluent-kafka (default: the repository's .venv, set up if missing).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Where runs write their reports.
    #[arg(long, default_value = "chaos-report")]
    pub report_dir: PathBuf,
    /// Judge a recorded history.jsonl with every checker instead of running anything.
    #[arg(long, value_name = "FILE")]
    pub check_history: Option<PathBuf>,
    /// Internal: this process runs in the client namespace of namespaces `PREFIX:SUBNET` that
    /// its parent created (and deletes).
    #[arg(long, hide = true, value_name = "PREFIX:SUBNET")]
    pub inside: Option<String>,
}

impl Options {
    /// The command line that runs this schedule again.
    pub fn replay_command(&self) -> String {
        let mut s = format!(
            "cargo run --release -p gregor-chaos -- real --nodes {} --duration {}ms --nemesis {} --seed {} --acks {} --partitions {} --producers {} --consumers {} --rate {}",
            self.nodes, self.duration, self.nemesis, self.seed, self.acks, self.partitions, self.producers, self.consumers, self.rate
        );
        if self.unclean {
            s.push_str(" --unclean");
        }
        s
    }
}

/// What a run found.
pub struct Outcome {
    pub dir: PathBuf,
    pub history: History,
    pub faults: Vec<Fault>,
    pub violations: Vec<Violation>,
    /// When a Ctrl-C ended the run early (see [`interrupt`]).
    pub interrupted_at_ms: Option<u64>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gregor_bin(opts: &Options) -> Result<PathBuf, String> {
    if let Some(b) = opts.bin.clone().or_else(|| std::env::var_os("GREGOR_BIN").map(PathBuf::from)) {
        return if b.exists() { Ok(b) } else { Err(format!("no gregor binary at {}", b.display())) };
    }
    let root = repo_root();
    eprintln!("==> cargo build --release --bin gregor");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "--bin", "gregor"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release --bin gregor failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("gregor"))
}

fn has_confluent_kafka(python: &Path) -> bool {
    Command::new(python).args(["-c", "import confluent_kafka"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A Python that imports confluent_kafka: the given one, or the repository's `.venv`, created
/// and given confluent-kafka if needed.
fn python(opts: &Options) -> Result<PathBuf, String> {
    if let Some(p) = &opts.python {
        return if has_confluent_kafka(p) { Ok(p.clone()) } else { Err(format!("{} cannot import confluent_kafka", p.display())) };
    }
    let venv = repo_root().join(".venv");
    let py = venv.join("bin").join("python");
    if has_confluent_kafka(&py) {
        return Ok(py);
    }
    eprintln!("==> setting up {} with confluent-kafka", venv.display());
    if !py.exists() {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot create a virtualenv at {} (python3 -m venv)", venv.display()));
        }
    }
    let ok = Command::new(&py).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "confluent-kafka==2.*"]).status().is_ok_and(|s| s.success());
    if ok && has_confluent_kafka(&py) {
        Ok(py)
    } else {
        Err("cannot install confluent-kafka into the virtualenv".into())
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The samples of a node's metrics page, by name (labels dropped; the sum over labels).
pub fn scrape(host: &str, port: u16) -> Option<BTreeMap<String, f64>> {
    let mut s = std::net::TcpStream::connect((host, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let name = name.split('{').next().unwrap_or(name);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    Some(out)
}

/// Whether every node serves, one is the active controller seeing all brokers unfenced, and no
/// partition is offline or under-replicated.
fn settled(cluster: &Cluster) -> bool {
    let pages: Vec<_> = cluster.nodes.iter().map(|n| scrape(&n.host, n.metrics_port)).collect();
    if pages.iter().any(Option::is_none) {
        return false;
    }
    let pages: Vec<_> = pages.into_iter().flatten().collect();
    let get = |p: &BTreeMap<String, f64>, k: &str| p.get(k).copied().unwrap_or(0.0);
    let active: Vec<_> = pages.iter().filter(|p| get(p, "kafka_controller_kafkacontroller_activecontrollercount") == 1.0).collect();
    active.len() == 1
        && get(active[0], "kafka_controller_kafkacontroller_activebrokercount") == cluster.nodes.len() as f64
        && get(active[0], "kafka_controller_kafkacontroller_offlinepartitionscount") == 0.0
        && pages.iter().all(|p| get(p, "kafka_server_replicamanager_underreplicatedpartitions") == 0.0)
}

fn wait_until(limit_ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(limit_ms);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// Runs the workload script in `mode`, collecting its operations into `ops` as they come.
fn spawn_workload(python: &Path, mode: &str, args: &[String], log: &Path, ops: Arc<Mutex<Vec<Op>>>) -> Result<(Child, std::thread::JoinHandle<Result<(), String>>), String> {
    let script = repo_root().join("chaos").join("workload").join("queue.py");
    let err = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(python);
    super::watchdog::join(&mut cmd);
    let mut child = cmd
        .arg(&script)
        .arg(mode)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let op: Op = serde_json::from_str(&line).map_err(|e| format!("workload wrote {line:?}: {e}"))?;
            ops.lock().expect("ops lock").push(op);
        }
        Ok(())
    });
    Ok((child, reader))
}

/// Every partition of the topic as `gregor topics describe` prints it: (partition, leader or
/// -1, ISR).
fn describe_partitions(bin: &Path, bootstrap: &str) -> Option<Vec<(i32, i32, Vec<i32>)>> {
    let out = Command::new(bin).args(["topics", "describe", TOPIC, "--bootstrap-server", bootstrap]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = Vec::new();
    for line in text.lines().filter(|l| l.contains("\tPartition: ")) {
        let field = |name: &str| line.split('\t').find_map(|f| f.strip_prefix(name)).map(str::trim);
        let partition = field("Partition: ")?.parse().ok()?;
        let leader = field("Leader: ").and_then(|l| l.parse().ok()).unwrap_or(-1);
        let isr = field("Isr: ").unwrap_or("").split(',').filter_map(|r| r.trim().parse().ok()).collect();
        parts.push((partition, leader, isr));
    }
    Some(parts)
}

/// The index of the node leading partition 0 of the topic now, asked through any node.
fn leader_of_partition_0(cluster: &Cluster, bin: &Path) -> Option<usize> {
    let parts = describe_partitions(bin, &cluster.bootstrap())?;
    let leader = parts.iter().find(|(p, _, _)| *p == 0)?.1;
    cluster.nodes.iter().position(|n| n.id as i32 == leader)
}

/// Waits for `child` up to `limit_ms`, then kills it; whether it exited successfully in time.
fn wait_child(child: &mut Child, limit_ms: u64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(limit_ms);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn progress(t_ms: u64, total_ms: u64, faults: usize, sends: usize) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        // A log, not a terminal: a line every 10 s instead of a bar redrawn in place.
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);
        let tick = t_ms / 10_000;
        if LAST.swap(tick, std::sync::atomic::Ordering::Relaxed) != tick {
            eprintln!("  {:>4}s/{}s  faults {faults}  acked sends {sends}", t_ms / 1000, total_ms / 1000);
        }
        return;
    }
    let width = 40;
    let done = ((t_ms.min(total_ms) * width) / total_ms.max(1)) as usize;
    eprint!("\r[{}{}] {:>4}s/{}s  faults {faults}  acked sends {sends}   ", "#".repeat(done), ".".repeat(width as usize - done), t_ms / 1000, total_ms / 1000);
    let _ = std::io::stderr().flush();
}

/// Whether `kind` can be made with `net` (or on loopback without it), else why not.
fn runnable(kind: Kind, net: Option<&Net>) -> Result<(), String> {
    match net {
        None if kind.needs_network() => Err("it needs network namespaces".into()),
        Some(net) if kind.needs_netem() => net.netem().map_err(str::to_string),
        _ => Ok(()),
    }
}

/// One run; `Err` when the suite itself could not run (not a finding about the system). With
/// `net`, the nodes run in its namespaces and this process in its client namespace.
pub fn run(opts: &Options, net: Option<&Net>) -> Result<Outcome, String> {
    let kinds: Vec<Kind> = Kind::parse_list(&opts.nemesis)?.into_iter().filter(|k| runnable(*k, net).is_ok()).collect();
    let bin = gregor_bin(opts)?;
    let python = python(opts)?;
    let run_name = format!("seed-{}-{}", opts.seed, epoch_ms() / 1000);
    let dir = opts.report_dir.join(&run_name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;

    let placement = match net {
        None => Placement::Loopback,
        Some(net) => {
            let n = opts.nodes as usize;
            Placement::Namespaces { namespaces: (0..n).map(|i| net.node(i)).collect(), hosts: (0..n).map(|i| net.node_ip(i)).collect() }
        }
    };
    let mut cluster = Cluster::create(&bin, &dir, opts.nodes, &[], &placement)?;
    for i in 0..cluster.nodes.len() {
        cluster.start(i)?;
    }
    if !wait_until(SETTLE_MS, || settled(&cluster)) {
        return Err(format!("the cluster did not form within {SETTLE_MS} ms (logs in {})", dir.display()));
    }
    let rf = opts.nodes.min(3).to_string();
    let min_insync = if opts.unclean || opts.nodes < 2 { "1" } else { "2" };
    let mut create = vec!["topics", "create", TOPIC, "--bootstrap-server"];
    let bootstrap = cluster.bootstrap();
    let partitions = opts.partitions.to_string();
    let min_insync_cfg = format!("min.insync.replicas={min_insync}");
    create.extend([bootstrap.as_str(), "--partitions", &partitions, "--replication-factor", &rf, "--config", &min_insync_cfg]);
    if opts.unclean {
        create.extend(["--config", "unclean.leader.election.enable=true"]);
    }
    cluster.tool(&create)?;
    if !wait_until(SETTLE_MS, || settled(&cluster)) {
        return Err("the topic's partitions did not get leaders and full ISRs".into());
    }

    let faults = nemesis::schedule(opts.seed, &kinds, cluster.nodes.len(), opts.duration, SESSION_TIMEOUT_MS);
    let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
    let t0 = epoch_ms();
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let common = |extra: &[String]| -> Vec<String> {
        let mut a = vec!["--bootstrap".into(), bootstrap.clone(), "--topic".into(), TOPIC.into(), "--partitions".into(), partitions.clone(), "--t0".into(), t0.to_string(), "--acks".into(), opts.acks.clone()];
        a.extend(extra.iter().cloned());
        a
    };
    let run_args = common(&[
        "--producers".into(),
        opts.producers.to_string(),
        "--consumers".into(),
        opts.consumers.to_string(),
        "--seconds".into(),
        (opts.duration as f64 / 1000.0).to_string(),
        "--rate".into(),
        opts.rate.to_string(),
    ]);
    let (mut workload, reader) = spawn_workload(&python, "run", &run_args, &dir.join("workload.log"), ops.clone())?;

    // Leaders and ISRs over time, for the report.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (ops, sampling, bin, bootstrap) = (ops.clone(), sampling.clone(), bin.clone(), bootstrap.clone());
        let endpoints: Vec<(u32, String, u16)> = cluster.nodes.iter().map(|n| (n.id, n.host.clone(), n.metrics_port)).collect();
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let t = start.elapsed().as_millis() as u64;
                if let Some(parts) = describe_partitions(&bin, &bootstrap) {
                    let mut ops = ops.lock().expect("ops lock");
                    ops.extend(parts.into_iter().map(|(partition, leader, isr)| Op::PartitionState { time_ms: t, partition, leader, isr }));
                }
                for (node, host, port) in &endpoints {
                    if let Some(m) = scrape(host, *port) {
                        let get = |k: &str| m.get(k).copied().unwrap_or(0.0) as u64;
                        ops.lock().expect("ops lock").push(Op::NodeMetrics {
                            time_ms: t,
                            node: *node,
                            under_replicated: get("kafka_server_replicamanager_underreplicatedpartitions"),
                            leaders: get("kafka_server_replicamanager_leadercount"),
                            elections: get("kafka_controller_controllerstats_leaderelections_total"),
                        });
                    }
                }
                std::thread::sleep(Duration::from_millis(SAMPLE_MS));
            }
        })
    };
    let acked = |ops: &Arc<Mutex<Vec<Op>>>| ops.lock().expect("ops lock").iter().filter(|o| matches!(o, Op::Send { outcome: SendOutcome::Acked { .. }, .. })).count();
    let mut crashes: Vec<String> = Vec::new();
    let mut sleep_until = |cluster: &mut Cluster, at_ms: u64, done: usize| {
        while now_ms() < at_ms && !interrupted() {
            progress(now_ms(), opts.duration, done, acked(&ops));
            std::thread::sleep(Duration::from_millis((at_ms - now_ms()).min(500)));
            for (id, status) in cluster.exited() {
                crashes.push(format!("node {id} exited by itself ({status}) at t={} ms", now_ms()));
            }
        }
    };
    let fault_op = |kind: Kind, phase: &str, nodes: &[usize], t: u64| Op::Fault { time_ms: t, kind: kind.name().into(), phase: phase.into(), nodes: nodes.iter().map(|&i| i as u32 + 1).collect() };
    let mut faults = faults;
    let mut reached = faults.len();
    for n in 0..faults.len() {
        let at_ms = faults[n].at_ms;
        sleep_until(&mut cluster, at_ms, n);
        if interrupted() {
            reached = n;
            break;
        }
        let f = &mut faults[n];
        if f.kind.targets_leader() {
            match leader_of_partition_0(&cluster, &bin) {
                Some(i) => f.nodes = vec![i],
                None => continue,
            }
        }
        let f = &faults[n];
        ops.lock().expect("ops lock").push(fault_op(f.kind, "start", &f.nodes, now_ms()));
        match f.kind {
            Kind::Kill | Kind::KillAll => f.nodes.iter().for_each(|&i| cluster.kill9(i)),
            Kind::Pause => f.nodes.iter().for_each(|&i| cluster.pause(i)),
            Kind::Restart | Kind::RestartAll => cluster.stop_all(&f.nodes),
            Kind::Partition => net.expect("network faults run in namespaces").isolate(f.nodes[0])?,
            Kind::Clog => net.expect("network faults run in namespaces").clog(f.nodes[0], f.nodes[1])?,
            Kind::Loss => net.expect("network faults run in namespaces").loss(f.nodes[0], 20)?,
            Kind::Latency => net.expect("network faults run in namespaces").delay(f.nodes[0], nemesis::LATENCY_MS, nemesis::JITTER_MS)?,
            Kind::LaggingKill => {
                let followers: Vec<usize> = (0..cluster.nodes.len()).filter(|i| !f.nodes.contains(i)).collect();
                followers.iter().for_each(|&i| cluster.pause(i));
                std::thread::sleep(Duration::from_millis(nemesis::LAG_MS));
                f.nodes.iter().for_each(|&i| cluster.kill9(i));
                followers.iter().for_each(|&i| cluster.resume(i));
            }
        }
        sleep_until(&mut cluster, now_ms() + f.for_ms, n);
        match f.kind {
            Kind::Pause => f.nodes.iter().for_each(|&i| cluster.resume(i)),
            k if k.needs_network() => net.expect("network faults run in namespaces").heal()?,
            _ => {
                for &i in &f.nodes {
                    cluster.start(i)?;
                }
            }
        }
        ops.lock().expect("ops lock").push(fault_op(f.kind, "stop", &f.nodes, now_ms()));
    }
    sleep_until(&mut cluster, opts.duration, faults.len());
    eprintln!();
    let interrupted_at_ms = interrupted().then(now_ms);
    if interrupted_at_ms.is_some() {
        // The workload ends its loops as at its deadline: every send still ends in an operation.
        let _ = Command::new("kill").arg("-TERM").arg(workload.id().to_string()).stderr(Stdio::null()).status();
    }
    let workload_ok = wait_child(&mut workload, WORKLOAD_GRACE_MS);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let read = reader.join().unwrap_or_else(|_| Err("the workload reader panicked".into()));

    cluster.heal()?;
    let settled_in = wait_until(SETTLE_MS, || settled(&cluster));
    let (mut final_child, final_reader) = spawn_workload(&python, "final", &common(&[]), &dir.join("workload.log"), ops.clone())?;
    let final_ok = wait_child(&mut final_child, FINAL_MS);
    let final_read = final_reader.join().unwrap_or_else(|_| Err("the workload reader panicked".into()));
    cluster.stop_all(&(0..cluster.nodes.len()).collect::<Vec<_>>());
    drop(cluster);

    let mut all = std::mem::take(&mut *ops.lock().expect("ops lock"));
    all.sort_by_key(Op::time_ms);
    let history = History { ops: all };
    std::fs::write(dir.join("history.jsonl"), history.to_jsonl()).map_err(|e| e.to_string())?;
    let mut violations = checkers::check_all(&history);
    let mut suite = Vec::new();
    if !workload_ok || read.is_err() {
        suite.push(format!("the workload did not finish cleanly ({}; see workload.log)", read.err().unwrap_or_else(|| "non-zero exit or killed at its limit".into())));
    }
    if !final_ok || final_read.is_err() {
        suite.push(format!("the final phase did not finish cleanly ({})", final_read.err().unwrap_or_else(|| "non-zero exit or killed at its limit".into())));
    }
    if !settled_in {
        suite.push(format!("the healed cluster did not settle within {SETTLE_MS} ms (a partition offline or under-replicated)"));
    }
    suite.extend(crashes);
    if let Some(v) = Violation::from_instances("cluster", "the cluster or the suite misbehaved", suite) {
        violations.push(v);
    }
    // An interrupted run reports the part of its schedule that it reached.
    faults.truncate(reached);
    let outcome = Outcome { dir, history, faults, violations, interrupted_at_ms };
    report::write(&outcome, opts).map_err(|e| format!("cannot write the report: {e}"))?;
    Ok(outcome)
}

/// The arguments of the run inside the namespaces: the user's, with the binary and the Python
/// resolved here (outside, where cargo and pip can reach what they need).
fn args_for_inside(opts: &Options) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = std::env::args().skip(2).collect();
    a.extend(["--bin".into(), gregor_bin(opts)?.display().to_string(), "--python".into(), python(opts)?.display().to_string()]);
    Ok(a)
}

/// Runs this command again inside `net`'s client namespace, then deletes the namespaces.
fn run_inside(opts: &Options, args: Result<Vec<String>, String>, net: &Net) -> i32 {
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gregor-chaos real: {e}");
            return 2;
        }
    };
    let Ok(me) = std::env::current_exe() else {
        eprintln!("gregor-chaos real: cannot find this program's path");
        return 2;
    };
    eprintln!("==> {} nodes in network namespaces {}-n1.. (198.18.{}.0/24), the suite in {}", opts.nodes, net.prefix(), net.subnet(), net.client());
    let mut cmd = Command::new("ip");
    if let Some(g) = watchdog::group() {
        cmd.env(watchdog::PGID_ENV, g.to_string());
    }
    let status = cmd
        .args(["netns", "exec", &net.client()])
        .arg(me)
        .arg("real")
        .args(args)
        .args(["--inside", &format!("{}:{}", net.prefix(), net.subnet())])
        .status();
    match status {
        Ok(s) => s.code().unwrap_or(2),
        Err(e) => {
            eprintln!("gregor-chaos real: cannot enter the client namespace: {e}");
            2
        }
    }
}

const INTERRUPT_NOTICE: &str = "gregor-chaos real: interrupted; healing, then the final read, the checkers and the report (Ctrl-C again to stop at once)";

/// `gregor-chaos real ...`: exit 0 when clean, 1 with violations, 2 when the suite could not
/// run, 130 when a Ctrl-C ended a run that was clean as far as it went.
pub fn main(args: Vec<String>) -> i32 {
    let opts = match Options::try_parse_from(std::iter::once("gregor-chaos real".to_string()).chain(args)) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Some(path) = &opts.check_history {
        let judged = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display())).and_then(|t| History::parse(&t));
        return match judged {
            Err(e) => {
                eprintln!("gregor-chaos real: {e}");
                2
            }
            Ok(h) => {
                let violations = checkers::check_all(&h);
                for v in &violations {
                    println!("{} ({}): {}", v.checker, v.count, v.detail);
                }
                println!("{} operations; {}", h.ops.len(), if violations.is_empty() { "no violations".to_string() } else { format!("{} checker(s) violated", violations.len()) });
                i32::from(!violations.is_empty())
            }
        };
    }
    let kinds = match Kind::parse_list(&opts.nemesis) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("gregor-chaos real: {e}");
            return 2;
        }
    };
    let attached;
    let net = match &opts.inside {
        Some(spec) => {
            let Some((prefix, subnet)) = spec.split_once(':').and_then(|(p, s)| Some((p, s.parse::<u8>().ok()?))) else {
                eprintln!("gregor-chaos real: --inside takes PREFIX:SUBNET");
                return 2;
            };
            attached = Net::attach(prefix, opts.nodes as usize, subnet);
            Some(&attached)
        }
        None => {
            if kinds.iter().any(|k| k.needs_network()) {
                match Net::create(opts.nodes as usize) {
                    Ok(net) => {
                        for k in kinds.iter().filter(|k| runnable(**k, Some(&net)).is_err()) {
                            eprintln!("gregor-chaos real: {} is not run: {}", k.name(), runnable(*k, Some(&net)).unwrap_err());
                        }
                        let mut names: Vec<String> = (0..opts.nodes as usize).map(|i| net.node(i)).collect();
                        names.push(net.client());
                        if let Err(e) = watchdog::start(&names) {
                            eprintln!("gregor-chaos real: {e}");
                            return 2;
                        }
                        // The run inside the namespaces reports a Ctrl-C; this process only waits for it.
                        if let Err(e) = interrupt::install("") {
                            eprintln!("gregor-chaos real: {e}");
                            return 2;
                        }
                        return run_inside(&opts, args_for_inside(&opts), &net);
                    }
                    Err(why) => eprintln!("gregor-chaos real: network faults need network namespaces, which cannot be made here ({why}); running on loopback with the process faults only"),
                }
            }
            if let Err(e) = watchdog::start(&[]) {
                eprintln!("gregor-chaos real: {e}");
                return 2;
            }
            None
        }
    };
    if let Err(e) = interrupt::install(INTERRUPT_NOTICE) {
        eprintln!("gregor-chaos real: {e}");
        return 2;
    }
    match run(&opts, net) {
        Err(e) => {
            eprintln!("gregor-chaos real: {e}");
            2
        }
        Ok(o) => {
            print!("{}", report::summary(&o));
            println!("report: {}", o.dir.join("index.html").display());
            if !o.violations.is_empty() {
                println!("seed {} FAILED; run the same schedule again with:\n  {}", opts.seed, opts.replay_command());
                1
            } else if o.interrupted_at_ms.is_some() {
                // Clean as far as it went, but not the whole run that was asked for.
                130
            } else {
                0
            }
        }
    }
}
