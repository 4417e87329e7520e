//! The simulated world: broker nodes running the production broker (`gregor_server::server::run`,
//! the same entry point as the `gregor` binary) on simulated disks, client nodes running
//! workloads over the real Kafka wire protocol, and the controls the nemesis uses to hurt them.
//!
//! A broker's disk ([`MemDisk`]) is owned here, outside the node, so it survives `kill` and
//! `restart`: a kill is a process crash (written pages stay in the page cache) unless it is a
//! power loss, which also applies the disk's crash model. The world takes any number of brokers
//! and client nodes, so multi-broker scenarios add brokers, not a new harness.
//!
//! Crash points ([`gregor_core::probe`]): a broker's disk may cut its own power where the code
//! passes one. The disk's hook kills the broker's node right there (from inside its own task:
//! madsim drops the node's tasks at their next yield, and the halted disk refuses every call
//! until then) and records the time; [`World::reap`] then marks the broker down, and the nemesis
//! restarts it ([`World::restart_crashed`]) as it would after any power loss.

use core::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gregor_server::config::BrokerConfig;
use gregor_server::listener::Shutdown;
use gregor_storage::mem_disk::{FaultConfig, MemDisk};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use crate::trace::Trace;

/// The port every broker listens on.
pub const BROKER_PORT: u16 = 9092;
/// The data directory inside every broker's disk.
pub const DATA_DIR: &str = "/data";

/// What the world knows about one broker.
pub struct BrokerNode {
    pub name: String,
    pub ip: IpAddr,
    pub node: NodeHandle,
    pub disk: MemDisk,
    /// Crash-time disk faults, always on (torn and lost unsynced writes, fsync latency).
    pub base_faults: FaultConfig,
    /// Whether the process is running (not killed).
    pub running: bool,
    pub paused: bool,
    /// Set by the broker when it serves, cleared when it stops.
    pub serving: Arc<AtomicBool>,
    /// Disk faults counted when the broker last started (to tell whether it saw new ones).
    pub faults_at_start: u64,
    pub starts: Arc<AtomicU64>,
    /// Set by the disk's power-loss hook when a crash point cut the power.
    pub crashed_at_point: Arc<AtomicBool>,
    /// Down after a crash point, waiting for the nemesis to bring it back.
    pub awaiting_restart: bool,
    /// The running process's shutdown trigger (what SIGTERM pulls in the real binary).
    pub shutdown: Arc<std::sync::Mutex<Option<Arc<Shutdown>>>>,
    /// Set when the process's `server::run` returned (it stopped by itself).
    pub exited: Arc<AtomicBool>,
}

impl BrokerNode {
    pub fn addr(&self) -> String {
        format!("{}:{BROKER_PORT}", self.ip)
    }
}

/// The whole simulated cluster.
pub struct World {
    pub brokers: Vec<BrokerNode>,
    pub clients: Vec<(String, NodeHandle)>,
    pub trace: Trace,
    /// Simulated times of power losses at crash points (the checkers treat them as any other).
    pub crash_point_losses: Arc<std::sync::Mutex<Vec<std::time::Duration>>>,
    /// Restart (rather than end the run) a broker whose quorum invariant check panics (a panic
    /// whose message contains this), so that the run goes on and the state checkers see what
    /// the broken invariant led to; the panic itself is still reported (see `run_seed`).
    pub restart_on_panic_matching: Option<&'static str>,
    seed: u64,
}

impl World {
    pub fn new(seed: u64, trace: Trace) -> World {
        World { brokers: Vec::new(), clients: Vec::new(), trace, crash_point_losses: Arc::default(), restart_on_panic_matching: None, seed }
    }

    /// Adds and starts a broker with the given Kafka settings (on top of the simulator's own:
    /// node id, listener, data directory).
    pub fn add_broker(&mut self, settings: Vec<(String, String)>, base_faults: FaultConfig) -> usize {
        self.add_broker_prepared(settings, base_faults, |_| {})
    }

    /// [`World::add_broker`], with `prepare` run on the broker's disk before its first start
    /// (a node of a configured quorum must find its directories formatted). Settings given
    /// here replace the simulator's own; an empty value removes one.
    pub fn add_broker_prepared(&mut self, settings: Vec<(String, String)>, base_faults: FaultConfig, prepare: impl FnOnce(&MemDisk)) -> usize {
        let index = self.brokers.len();
        let name = format!("broker-{index}");
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, index as u8 + 1));
        let disk = MemDisk::new(self.seed ^ (0xd15c_0000 + index as u64), base_faults.clone());
        prepare(&disk);
        let mut all = vec![
            ("node.id".to_string(), index.to_string()),
            ("listeners".to_string(), format!("PLAINTEXT://0.0.0.0:{BROKER_PORT}")),
            ("advertised.listeners".to_string(), format!("PLAINTEXT://{ip}:{BROKER_PORT}")),
            ("log.dirs".to_string(), DATA_DIR.to_string()),
        ];
        // A setting given here replaces the simulator's own; an empty value removes it.
        all.retain(|(k, _)| !settings.iter().any(|(s, _)| s == k));
        all.extend(settings.into_iter().filter(|(_, v)| !v.is_empty()));
        let serving = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicU64::new(0));
        let shutdown_slot: Arc<std::sync::Mutex<Option<Arc<Shutdown>>>> = Arc::default();
        let exited = Arc::new(AtomicBool::new(false));
        let init = {
            let (disk, trace, name, serving, starts) = (disk.clone(), self.trace.clone(), name.clone(), serving.clone(), starts.clone());
            let (shutdown_slot, exited) = (shutdown_slot.clone(), exited.clone());
            let seed = self.seed;
            move || {
                let (disk, trace, name, serving, starts) = (disk.clone(), trace.clone(), name.clone(), serving.clone(), starts.clone());
                let (shutdown_slot, exited) = (shutdown_slot.clone(), exited.clone());
                let settings = all.clone();
                async move {
                    exited.store(false, Ordering::SeqCst);
                    let start = starts.fetch_add(1, Ordering::SeqCst);
                    trace.event(&name, format!("process start #{start}"));
                    let config = match BrokerConfig::from_settings(&settings) {
                        Ok(c) => c,
                        Err(e) => {
                            trace.event(&name, format!("invalid config: {e}"));
                            return;
                        }
                    };
                    let clock = Arc::new(gregor_core::clock::SystemClock::new());
                    let shutdown = Arc::new(Shutdown::default());
                    *shutdown_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(shutdown.clone());
                    let broker_seed = seed ^ start.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64;
                    let ready_trace = trace.clone();
                    let ready_name = name.clone();
                    let ready_flag = serving.clone();
                    let result = gregor_server::server::run(config, Arc::new(disk), clock, broker_seed, shutdown, move |_, addr| {
                        ready_flag.store(true, Ordering::SeqCst);
                        ready_trace.event(&ready_name, format!("serving on {addr}"));
                    })
                    .await;
                    serving.store(false, Ordering::SeqCst);
                    exited.store(true, Ordering::SeqCst);
                    match result {
                        Ok(()) => trace.event(&name, "stopped"),
                        Err(e) => trace.event(&name, format!("exited: {e}")),
                    }
                }
            }
        };
        let handle = Handle::current();
        let mut builder = handle.create_node().name(&name).ip(ip).init(init);
        if let Some(m) = self.restart_on_panic_matching {
            builder = builder.restart_on_panic_matching(m);
        }
        let node = builder.build();
        self.trace.event(&name, format!("created at {ip}"));
        let crashed_at_point = Arc::new(AtomicBool::new(false));
        {
            let (id, trace, name, serving, crashed, losses) =
                (node.id(), self.trace.clone(), name.clone(), serving.clone(), crashed_at_point.clone(), self.crash_point_losses.clone());
            disk.set_power_loss_hook(Arc::new(move |point| {
                Handle::current().kill(id);
                serving.store(false, Ordering::SeqCst);
                crashed.store(true, Ordering::SeqCst);
                losses.lock().unwrap_or_else(|e| e.into_inner()).push(trace.elapsed());
                trace.event(&name, format!("POWER LOSS at crash point ({point})"));
            }));
        }
        self.brokers.push(BrokerNode {
            name,
            ip,
            node,
            disk,
            base_faults,
            running: true,
            paused: false,
            serving,
            faults_at_start: 0,
            starts,
            crashed_at_point,
            awaiting_restart: false,
            shutdown: shutdown_slot,
            exited,
        });
        index
    }

    /// Creates a client node (its tasks are spawned by the caller on the returned handle).
    pub fn add_client(&mut self, name: &str) -> NodeHandle {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 1, self.clients.len() as u8 + 1));
        let node = Handle::current().create_node().name(name).ip(ip).build();
        self.trace.event(name, format!("created at {ip}"));
        self.clients.push((name.to_string(), node.clone()));
        node
    }

    /// Creates a client node whose task is `init`, re-run from scratch on every restart of the
    /// node (a crashed client process coming back). `init` gets the restart count.
    pub fn add_client_with_init<F, Fut>(&mut self, name: &str, init: F) -> NodeHandle
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 1, self.clients.len() as u8 + 1));
        let starts = Arc::new(AtomicU64::new(0));
        let node = Handle::current()
            .create_node()
            .name(name)
            .ip(ip)
            .init(move || init(starts.fetch_add(1, Ordering::SeqCst)))
            .build();
        self.trace.event(name, format!("created at {ip}"));
        self.clients.push((name.to_string(), node.clone()));
        node
    }

    /// Kills broker `i`. With `power_loss` the machine loses power too: unsynced writes are lost
    /// or torn per the disk's crash model; otherwise only the process dies.
    pub fn kill(&mut self, i: usize, power_loss: bool) {
        let b = &mut self.brokers[i];
        Handle::current().kill(b.node.id());
        b.serving.store(false, Ordering::SeqCst);
        if power_loss {
            b.disk.crash();
        } else {
            b.disk.kill_process();
        }
        b.running = false;
        b.paused = false;
        b.awaiting_restart = false;
        b.crashed_at_point.store(false, Ordering::SeqCst);
        self.trace.event(&b.name, if power_loss { "POWER LOSS" } else { "KILLED (process)" });
    }

    /// Asks broker `i` to stop as SIGTERM does (controlled shutdown, then a clean close); see
    /// [`World::stopped_gracefully`] for whether it has.
    pub fn stop_gracefully(&mut self, i: usize) {
        let b = &self.brokers[i];
        let trigger = b.shutdown.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(t) = trigger {
            self.trace.event(&b.name, "SIGTERM");
            t.trigger();
        }
    }

    /// Whether broker `i`'s process has returned from its run (after [`World::stop_gracefully`]);
    /// then it is marked down, as a process that exited.
    pub fn stopped_gracefully(&mut self, i: usize) -> bool {
        let b = &mut self.brokers[i];
        if !b.exited.load(Ordering::SeqCst) {
            return false;
        }
        // The process is gone: what it wrote stays in the page cache, as after `exit`.
        Handle::current().kill(b.node.id());
        b.disk.kill_process();
        b.running = false;
        b.paused = false;
        true
    }

    /// Arms (chance > 0, budget > 0) or disarms every broker disk's crash points.
    pub fn arm_crash_points(&self, chance: f64, budget: u32) {
        for b in &self.brokers {
            b.disk.arm_crash_points(chance, budget);
        }
        if chance > 0.0 && budget > 0 {
            self.trace.event("world", format!("crash points armed: chance {chance}, at most {budget} per broker"));
        }
    }

    /// Marks the brokers whose power a crash point cut as down.
    pub fn reap(&mut self) {
        for b in &mut self.brokers {
            if b.crashed_at_point.swap(false, Ordering::SeqCst) {
                b.running = false;
                b.paused = false;
                b.awaiting_restart = true;
            }
        }
    }

    /// Restarts the brokers a crash point took down.
    pub fn restart_crashed(&mut self) {
        self.reap();
        for i in 0..self.brokers.len() {
            if self.brokers[i].awaiting_restart {
                self.restart(i);
            }
        }
    }

    /// Starts broker `i` again (running its recovery).
    pub fn restart(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        if b.running {
            // madsim's restart alone leaves the old process's sockets bound: kill it first.
            Handle::current().kill(b.node.id());
            b.disk.kill_process();
        }
        b.faults_at_start = disk_fault_total(&b.disk);
        b.disk.power_on();
        b.crashed_at_point.store(false, Ordering::SeqCst);
        Handle::current().restart(b.node.id());
        b.running = true;
        b.paused = false;
        b.awaiting_restart = false;
        self.trace.event(&b.name, "restart");
    }

    pub fn pause(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        Handle::current().pause(b.node.id());
        b.paused = true;
        self.trace.event(&b.name, "PAUSED");
    }

    pub fn resume(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        Handle::current().resume(b.node.id());
        b.paused = false;
        self.trace.event(&b.name, "resumed");
    }

    /// Clogs broker `i`'s network: `inbound`/`outbound` choose the directions.
    pub fn clog_broker(&self, i: usize, inbound: bool, outbound: bool) {
        let b = &self.brokers[i];
        let net = NetSim::current();
        if inbound {
            net.clog_node_in(b.node.id());
        }
        if outbound {
            net.clog_node_out(b.node.id());
        }
        self.trace.event(&b.name, format!("CLOG in={inbound} out={outbound}"));
    }

    pub fn unclog_broker(&self, i: usize) {
        let b = &self.brokers[i];
        NetSim::current().unclog_node(b.node.id());
        self.trace.event(&b.name, "unclog");
    }

    /// Clogs one direction of the link between client `c` and broker `b`.
    pub fn clog_link(&self, c: usize, b: usize, client_to_broker: bool) {
        let (cname, cnode) = &self.clients[c];
        let broker = &self.brokers[b];
        let net = NetSim::current();
        if client_to_broker {
            net.clog_link(cnode.id(), broker.node.id());
        } else {
            net.clog_link(broker.node.id(), cnode.id());
        }
        let dir = if client_to_broker { "->" } else { "<-" };
        self.trace.event(&broker.name, format!("CLOG LINK {cname} {dir} {}", broker.name));
    }

    pub fn unclog_link(&self, c: usize, b: usize) {
        let (cname, cnode) = &self.clients[c];
        let broker = &self.brokers[b];
        let net = NetSim::current();
        net.unclog_link(cnode.id(), broker.node.id());
        net.unclog_link(broker.node.id(), cnode.id());
        self.trace.event(&broker.name, format!("unclog link {cname}"));
    }

    /// Clogs the link from broker `from` to broker `to`, one direction (messages from `from`
    /// are held until the link is unclogged; new connections from it are refused).
    pub fn clog_between(&self, from: usize, to: usize) {
        let (a, b) = (&self.brokers[from], &self.brokers[to]);
        NetSim::current().clog_link(a.node.id(), b.node.id());
        self.trace.event(&a.name, format!("CLOG LINK {} -> {}", a.name, b.name));
    }

    /// Unclogs every link between two brokers, both directions.
    pub fn unclog_between_all(&self) {
        let net = NetSim::current();
        for a in &self.brokers {
            for b in &self.brokers {
                if a.node.id() != b.node.id() {
                    net.unclog_link(a.node.id(), b.node.id());
                }
            }
        }
        if self.brokers.len() > 1 {
            self.trace.event("network", "unclog every broker link");
        }
    }

    /// Sets the network's one-way latency range (ms).
    pub fn set_latency(&self, min_ms: u64, max_ms: u64) {
        NetSim::current().update_config(|c| {
            c.send_latency = std::time::Duration::from_millis(min_ms)..std::time::Duration::from_millis(max_ms.max(min_ms + 1));
        });
        self.trace.event("network", format!("latency {min_ms}..{max_ms} ms"));
    }

    /// Turns extra disk faults on for broker `i` (on top of the crash model), or back off.
    pub fn set_disk_faults(&self, i: usize, extra: Option<FaultConfig>) {
        let b = &self.brokers[i];
        match extra {
            Some(f) => {
                self.trace.event(&b.name, format!("DISK FAULTS write={} read={} fsync={} enospc={}", f.write_error, f.read_error, f.sync_error, f.no_space));
                b.disk.set_faults(f);
            }
            None => {
                self.trace.event(&b.name, "disk faults off");
                b.disk.set_faults(b.base_faults.clone());
            }
        }
    }

    /// Ends every fault: unclogs all nodes and links, resumes paused brokers, restarts dead
    /// ones and those whose disk failed since they started (a failed fsync takes a partition
    /// offline until restart, by design), and resets the network latency.
    pub fn heal(&mut self) {
        self.trace.event("world", "HEAL");
        self.arm_crash_points(0.0, 0);
        self.reap();
        let net = NetSim::current();
        for (_, c) in &self.clients {
            net.unclog_node(c.id());
        }
        self.unclog_between_all();
        for i in 0..self.brokers.len() {
            net.unclog_node(self.brokers[i].node.id());
            for (_, c) in &self.clients {
                net.unclog_link(c.id(), self.brokers[i].node.id());
                net.unclog_link(self.brokers[i].node.id(), c.id());
            }
            self.brokers[i].disk.set_faults(self.brokers[i].base_faults.clone());
            if self.brokers[i].paused {
                self.resume(i);
            }
            let exited = Handle::current().is_exit(self.brokers[i].node.id());
            let disk_failed = disk_fault_total(&self.brokers[i].disk) > self.brokers[i].faults_at_start;
            if !self.brokers[i].running || exited || disk_failed {
                self.restart(i);
            }
        }
        NetSim::current().update_config(|c| c.send_latency = std::time::Duration::from_millis(1)..std::time::Duration::from_millis(10));
    }
}

impl Drop for World {
    /// Kills every node, so that the executor drops their tasks before the runtime goes away
    /// (the caller gives it one more turn): a task holds a handle to madsim's task queue and the
    /// queue holds the task, so a world left running would keep its whole state, disks
    /// included, alive for the rest of the process, and a long campaign would run out of memory.
    fn drop(&mut self) {
        if let Ok(h) = Handle::try_current() {
            for b in &self.brokers {
                h.kill(b.node.id());
            }
            for (_, c) in &self.clients {
                h.kill(c.id());
            }
        }
    }
}

/// Errors injected on a disk (not crashes or bit flips: those are the world's own doing).
fn disk_fault_total(disk: &MemDisk) -> u64 {
    let c = disk.fault_counts();
    c.write_error + c.read_error + c.sync_error + c.no_space
}
