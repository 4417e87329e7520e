//! Network namespaces for real network faults: every node in its own namespace, joined by
//! veth pairs to a bridge in a client namespace where the suite and its clients run.
//!
//! ```text
//!   client ns  (br0 198.18.S.254/24, the suite, the workload, the tools)
//!     ├── veth ── node 1 ns (eth0 198.18.S.1)
//!     ├── veth ── node 2 ns (eth0 198.18.S.2)
//!     └── veth ── node 3 ns (eth0 198.18.S.3)
//! ```
//!
//! Faults are iptables rules inside the node namespaces: a partition drops traffic between the
//! nodes both ways, a clog one way, loss drops a share of a node's packets at random. Clients in
//! the client namespace still reach every node, as clients of a partitioned cluster would.
//! Latency is a `tc netem` qdisc on both ends of a node's veth pair, where the kernel has
//! traffic control's netem ([`Net::netem`] probes it; some kernels have netfilter but no qdiscs).
//!
//! Guarantees: only namespaces this run creates are touched (their names carry the run's
//! process id), addresses are in 198.18.0.0/15 (RFC 2544's benchmarking range) and exist only
//! inside those namespaces, and [`Net`] deletes every namespace it created when dropped.

use std::process::{Command, Stdio};

/// The namespaces of one run.
pub struct Net {
    prefix: String,
    nodes: usize,
    subnet: u8,
    /// Whether this value created the namespaces (and so deletes them).
    owner: bool,
    /// Why `tc netem` cannot be used here, if it cannot.
    no_netem: Option<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `tc ARGS` in namespace `ns`.
fn tc(ns: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(["netns", "exec", ns, "tc"]).args(args).stdin(Stdio::null()).output().map_err(|e| format!("tc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("tc {} in {ns}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Net {
    fn client_name(prefix: &str) -> String {
        format!("{prefix}-c")
    }

    /// Creates the namespaces of `nodes` nodes, or says why it cannot (not root, no iproute2,
    /// no iptables, no veth or bridge support).
    pub fn create(nodes: usize) -> Result<Net, String> {
        let pid = std::process::id();
        let mut net = Net { prefix: format!("gch{pid}"), nodes, subnet: (pid % 250) as u8 + 1, owner: true, no_netem: None };
        if Command::new("iptables").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().map_or(true, |s| !s.success()) {
            return Err("iptables is not installed".into());
        }
        let client = net.client();
        ip(&["netns", "add", &client])?;
        ip(&["-n", &client, "link", "set", "lo", "up"])?;
        ip(&["-n", &client, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &client, "addr", "add", &format!("198.18.{}.254/24", net.subnet), "dev", "br0"])?;
        ip(&["-n", &client, "link", "set", "br0", "up"])?;
        for i in 0..nodes {
            let ns = net.node(i);
            let host = Self::host_end(i);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "add", &host, "netns", &client, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &client, "link", "set", &host, "master", "br0"])?;
            ip(&["-n", &client, "link", "set", &host, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.node_ip(i)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        net.no_netem = net.probe_netem().err();
        Ok(net)
    }

    /// The namespaces another process created (`--inside`), not deleted by this value.
    pub fn attach(prefix: &str, nodes: usize, subnet: u8) -> Net {
        let mut net = Net { prefix: prefix.to_string(), nodes, subnet, owner: false, no_netem: None };
        net.no_netem = net.probe_netem().err();
        net
    }

    /// Adds and removes a netem qdisc on the client namespace's loopback.
    fn probe_netem(&self) -> Result<(), String> {
        let client = self.client();
        tc(&client, &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]).map_err(|e| format!("tc netem is not available: {e}"))?;
        tc(&client, &["qdisc", "del", "dev", "lo", "root"])
    }

    /// `Ok` when latency faults can be made (`tc netem` works in these namespaces), else why not.
    pub fn netem(&self) -> Result<(), &str> {
        self.no_netem.as_deref().map_or(Ok(()), Err)
    }

    /// The client-namespace end of node `i`'s veth pair.
    fn host_end(i: usize) -> String {
        format!("h{i}")
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn subnet(&self) -> u8 {
        self.subnet
    }
    pub fn client(&self) -> String {
        Self::client_name(&self.prefix)
    }
    pub fn node(&self, i: usize) -> String {
        format!("{}-n{}", self.prefix, i + 1)
    }
    pub fn node_ip(&self, i: usize) -> String {
        format!("198.18.{}.{}", self.subnet, i + 1)
    }

    fn iptables(&self, i: usize, rule: &[&str]) -> Result<(), String> {
        let ns = self.node(i);
        let out = Command::new("ip").args(["netns", "exec", &ns, "iptables", "-w"]).args(rule).stdin(Stdio::null()).output().map_err(|e| format!("iptables: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("iptables {} in {ns}: {}", rule.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Cuts node `a` off from the other nodes, both ways.
    pub fn isolate(&self, a: usize) -> Result<(), String> {
        for b in (0..self.nodes).filter(|&b| b != a) {
            self.clog(a, b)?;
            self.clog(b, a)?;
        }
        Ok(())
    }

    /// Drops what node `from` sends to node `to` (one way).
    pub fn clog(&self, from: usize, to: usize) -> Result<(), String> {
        let (src, dst) = (self.node_ip(from), self.node_ip(to));
        self.iptables(from, &["-A", "OUTPUT", "-d", &dst, "-j", "DROP"])?;
        self.iptables(to, &["-A", "INPUT", "-s", &src, "-j", "DROP"])
    }

    /// Drops `percent` % of node `a`'s packets, in and out, at random.
    pub fn loss(&self, a: usize, percent: u32) -> Result<(), String> {
        let p = format!("{:.2}", f64::from(percent) / 100.0);
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            self.iptables(a, &["-A", chain, dir, "eth0", "-m", "statistic", "--mode", "random", "--probability", &p, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Delays node `a`'s packets, in and out, by `ms` ± `jitter_ms` (needs [`Net::netem`]).
    pub fn delay(&self, a: usize, ms: u32, jitter_ms: u32) -> Result<(), String> {
        let (delay, jitter) = (format!("{ms}ms"), format!("{jitter_ms}ms"));
        // Out of the node at its end of the pair, into it at the client namespace's end.
        tc(&self.node(a), &["qdisc", "add", "dev", "eth0", "root", "netem", "delay", &delay, &jitter])?;
        tc(&self.client(), &["qdisc", "add", "dev", &Self::host_end(a), "root", "netem", "delay", &delay, &jitter])
    }

    /// Removes every fault rule and added delay.
    pub fn heal(&self) -> Result<(), String> {
        for i in 0..self.nodes {
            self.iptables(i, &["-F"])?;
            if self.no_netem.is_none() {
                // Fails where no delay was added, which is fine: there is nothing to remove.
                let _ = tc(&self.node(i), &["qdisc", "del", "dev", "eth0", "root"]);
                let _ = tc(&self.client(), &["qdisc", "del", "dev", &Self::host_end(i), "root"]);
            }
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        for i in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.node(i)]);
        }
        let _ = ip(&["netns", "del", &self.client()]);
    }
}
