//! A cluster of real `gregor` processes on loopback: formatted, started, and faulted by signal.
//!
//! Guarantees: every process this module starts is tracked by PID and killed when the
//! [`Cluster`] is dropped (a paused one is continued first, so it can die), also when the run
//! fails half-way; nodes bind only 127.0.0.1 or, with [`Placement::Namespaces`], their own
//! namespace's address; each node's output goes to its own log file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The brokers' session timeout (a paused node is fenced after this long).
pub const SESSION_TIMEOUT_MS: u64 = 3_000;
/// How long a SIGTERM'd node gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A port free on loopback right now.
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the nodes run.
pub enum Placement {
    /// All on 127.0.0.1, on free ports.
    Loopback,
    /// Node `i` in network namespace `namespaces[i]` at `hosts[i]` (see [`super::netns`]).
    Namespaces { namespaces: Vec<String>, hosts: Vec<String> },
}

pub struct Node {
    pub id: u32,
    pub host: String,
    /// The network namespace the node runs in, if any.
    pub namespace: Option<String>,
    pub port: u16,
    pub metrics_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl Node {
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<Node>,
}

fn signal(pid: u32, sig: &str) -> io::Result<()> {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).stderr(Stdio::null()).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{sig} {pid} failed")))
    }
}

impl Cluster {
    /// Writes the configs of `n` combined broker+controller nodes under `root` and formats them
    /// with one cluster id. `extra` are extra settings for every node.
    pub fn create(bin: &Path, root: &Path, n: u32, extra: &[String], placement: &Placement) -> Result<Cluster, String> {
        // (host, namespace, client port, controller port, metrics port) per node.
        let mut places = Vec::new();
        for i in 0..n as usize {
            places.push(match placement {
                Placement::Loopback => {
                    let p = || free_port().map_err(|e| e.to_string());
                    ("127.0.0.1".to_string(), None, p()?, p()?, p()?)
                }
                Placement::Namespaces { namespaces, hosts } => (hosts[i].clone(), Some(namespaces[i].clone()), 9092, 9093, 9644),
            });
        }
        let voters: Vec<String> = places.iter().enumerate().map(|(i, (h, _, _, c, _))| format!("{}@{h}:{c}", i + 1)).collect();
        let mut nodes = Vec::new();
        for (i, (host, namespace, port, controller_port, metrics_port)) in places.into_iter().enumerate() {
            let id = i as u32 + 1;
            let dir = root.join(format!("node{id}"));
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let config = dir.join("node.properties");
            let mut lines = vec![
                "process.roles=broker,controller".to_string(),
                format!("node.id={id}"),
                format!("listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}"),
                format!("advertised.listeners=PLAINTEXT://{host}:{port}"),
                "controller.listener.names=CONTROLLER".into(),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!("log.dirs={}", dir.join("data").display()),
                format!("metrics.listener=http://{host}:{metrics_port}/metrics"),
                format!("broker.session.timeout.ms={SESSION_TIMEOUT_MS}"),
                "broker.heartbeat.interval.ms=500".into(),
                "controller.quorum.election.timeout.ms=500".into(),
                "controller.quorum.fetch.timeout.ms=1000".into(),
                "replica.lag.time.max.ms=3000".into(),
                "offsets.topic.num.partitions=3".into(),
                "group.initial.rebalance.delay.ms=0".into(),
                format!("default.replication.factor={}", n.min(3)),
            ];
            lines.extend(extra.iter().cloned());
            lines.push(String::new());
            fs::write(&config, lines.join("\n")).map_err(|e| format!("{}: {e}", config.display()))?;
            nodes.push(Node { id, host, namespace, port, metrics_port, config, log: dir.join("gregor.log"), child: None, paused: false, starts: 0 });
        }
        let c = Cluster { bin: bin.to_path_buf(), nodes };
        let id = c.tool(&["storage", "random-uuid"])?;
        for node in &c.nodes {
            c.tool(&["storage", "format", "--cluster-id", id.trim(), "--config", &node.config.display().to_string()])?;
        }
        Ok(c)
    }

    /// Runs a `gregor` tool command; its standard output, or why it failed.
    pub fn tool(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("gregor {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(Node::bootstrap).collect::<Vec<_>>().join(",")
    }

    pub fn start(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            return Ok(());
        }
        node.starts += 1;
        let log = fs::OpenOptions::new().create(true).append(true).open(&node.log).map_err(|e| format!("{}: {e}", node.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        // `ip netns exec` enters the namespace and execs the server: the PID is the server's.
        let mut cmd = match &node.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        super::watchdog::join(&mut cmd);
        let child = cmd
            .args(["server", "--config", &node.config.display().to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start node {}: {e}", node.id))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    pub fn kill9(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.paused = false;
    }

    /// SIGTERM to every node of `nodes` at once (as an operator restarting them together
    /// would), waiting for them all up to one grace period, then `kill -9` to what is left.
    pub fn stop_all(&mut self, nodes: &[usize]) {
        let mut stopping = Vec::new();
        for &i in nodes {
            let node = &mut self.nodes[i];
            let Some(c) = node.child.take() else { continue };
            if node.paused {
                let _ = signal(c.id(), "CONT");
                node.paused = false;
            }
            let _ = signal(c.id(), "TERM");
            stopping.push(c);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && !stopping.is_empty() {
            stopping.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(50));
        }
        for mut c in stopping {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pause(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let (Some(pid), false) = (node.pid(), node.paused) {
            node.paused = signal(pid, "STOP").is_ok();
        }
    }

    pub fn resume(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let (Some(pid), true) = (node.pid(), node.paused) {
            let _ = signal(pid, "CONT");
            node.paused = false;
        }
    }

    /// Notices nodes that exited by themselves (a crash is a finding: its log says why).
    pub fn exited(&mut self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(c) = node.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    out.push((node.id, status.to_string()));
                    node.child = None;
                }
            }
        }
        out
    }

    /// Continues paused nodes and starts stopped ones.
    pub fn heal(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.resume(i);
            self.start(i)?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                if node.paused {
                    let _ = signal(c.id(), "CONT");
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
