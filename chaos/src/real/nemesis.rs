//! The nemesis: a schedule of faults drawn from the run's seed, so the same seed and options
//! give the same schedule (the processes' timing, of course, varies run to run).
//!
//! Guarantees: faults never overlap (each heals before the next starts), every fault heals
//! before the run's end minus [`QUIET_MS`], and a pause outlasts the brokers' session timeout
//! so it is seen as a failure, not as a hiccup.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Time without faults at the start (the workload warms up) and at the end (it recovers).
pub const WARMUP_MS: u64 = 5_000;
pub const QUIET_MS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kill -9` one node, start it again after the fault's length.
    Kill,
    /// SIGSTOP one node, SIGCONT after the fault's length.
    Pause,
    /// SIGTERM one node (a clean shutdown), start it again at once.
    Restart,
    /// SIGTERM every node, start them all again after the fault's length.
    RestartAll,
    /// `kill -9` every node at once, start them all again after the fault's length.
    KillAll,
    /// Pause every follower of one partition's leader for [`LAG_MS`] (too short to leave the
    /// ISR), `kill -9` the leader meanwhile, resume the followers, start the leader again after
    /// the fault's length. What the leader acknowledged alone in that window is on no other
    /// replica: acks=1 loses it (as Kafka), acks=all never acknowledged it.
    LaggingKill,
    /// Cut one node off from the other nodes, both ways (clients still reach it).
    Partition,
    /// Drop what one node sends to another, one way.
    Clog,
    /// Drop a fifth of one node's packets, in and out, at random.
    Loss,
    /// Delay one node's packets, in and out, by [`LATENCY_MS`] ± [`JITTER_MS`] (`tc netem`,
    /// where the kernel has it).
    Latency,
}

/// The delay [`Kind::Latency`] adds each way, and its jitter.
pub const LATENCY_MS: u32 = 100;
pub const JITTER_MS: u32 = 50;

/// How long [`Kind::LaggingKill`] lets the followers lag before the leader dies.
pub const LAG_MS: u64 = 1_500;

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Restart => "restart",
            Kind::RestartAll => "restart-all",
            Kind::KillAll => "kill-all",
            Kind::LaggingKill => "lagging-kill",
            Kind::Partition => "partition",
            Kind::Clog => "clog",
            Kind::Loss => "loss",
            Kind::Latency => "latency",
        }
    }

    /// Parses `--nemesis`: the faults by name, each once.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
        let mut kinds = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let k = match name {
                "kill" => Kind::Kill,
                "pause" => Kind::Pause,
                "restart" => Kind::Restart,
                "restart-all" => Kind::RestartAll,
                "kill-all" => Kind::KillAll,
                "lagging-kill" => Kind::LaggingKill,
                "partition" => Kind::Partition,
                "clog" => Kind::Clog,
                "loss" => Kind::Loss,
                "latency" => Kind::Latency,
                other => return Err(format!("unknown nemesis {other:?} (kill, pause, restart, restart-all, kill-all, lagging-kill, partition, clog, loss, latency)")),
            };
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        Ok(kinds)
    }

    /// Whether the fault is made in the network (needs [`super::netns`]).
    pub fn needs_network(self) -> bool {
        matches!(self, Kind::Partition | Kind::Clog | Kind::Loss | Kind::Latency)
    }

    /// Whether the fault needs traffic control's `netem` qdisc (see [`super::netns::Net::netem`]).
    pub fn needs_netem(self) -> bool {
        self == Kind::Latency
    }

    fn all_nodes(self) -> bool {
        matches!(self, Kind::RestartAll | Kind::KillAll)
    }

    /// Whether the node is chosen when the fault starts (a partition's leader at that moment).
    pub fn targets_leader(self) -> bool {
        self == Kind::LaggingKill
    }
}

/// One fault: `kind` on `nodes` (indices; empty when chosen at the start, see
/// [`Kind::targets_leader`]) from `at_ms` for `for_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at_ms: u64,
    pub for_ms: u64,
    pub kind: Kind,
    pub nodes: Vec<usize>,
}

/// The faults of a run of `duration_ms` over `nodes` nodes whose session timeout is
/// `session_ms`.
pub fn schedule(seed: u64, kinds: &[Kind], nodes: usize, duration_ms: u64, session_ms: u64) -> Vec<Fault> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return out;
    }
    let mut t = WARMUP_MS;
    loop {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let for_ms = match kind {
            Kind::Pause => rng.random_range(session_ms + 1_000..=session_ms + 6_000),
            Kind::Restart => 0,
            _ => rng.random_range(1_000..=6_000),
        };
        if t + for_ms + QUIET_MS > duration_ms {
            return out;
        }
        let targets = if kind.all_nodes() {
            (0..nodes).collect()
        } else if kind.targets_leader() {
            Vec::new()
        } else if kind == Kind::Clog && nodes > 1 {
            let from = rng.random_range(0..nodes);
            let to = (from + rng.random_range(1..nodes)) % nodes;
            vec![from, to]
        } else {
            vec![rng.random_range(0..nodes)]
        };
        out.push(Fault { at_ms: t, for_ms, kind, nodes: targets });
        // Time to recover before the next fault (a restarted node rejoins, the ISR refills).
        t += for_ms + rng.random_range(3_000..=8_000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_that_heals_in_time() {
        let kinds = [Kind::Kill, Kind::Pause, Kind::Restart, Kind::RestartAll, Kind::KillAll, Kind::LaggingKill, Kind::Partition, Kind::Clog, Kind::Loss, Kind::Latency];
        let a = schedule(7, &kinds, 3, 120_000, 3_000);
        assert_eq!(a, schedule(7, &kinds, 3, 120_000, 3_000));
        assert_ne!(a, schedule(8, &kinds, 3, 120_000, 3_000));
        assert!(a.len() >= 5, "{a:?}");
        for w in a.windows(2) {
            assert!(w[0].at_ms + w[0].for_ms < w[1].at_ms, "overlap: {w:?}");
        }
        for f in &a {
            assert!(f.at_ms >= WARMUP_MS && f.at_ms + f.for_ms + QUIET_MS <= 120_000, "{f:?}");
            assert!(f.nodes.iter().all(|&n| n < 3));
            if f.kind == Kind::Pause {
                assert!(f.for_ms > 3_000, "a pause outlasts the session: {f:?}");
            }
            let expected = match f.kind {
                k if k.all_nodes() => 3,
                k if k.targets_leader() => 0,
                Kind::Clog => 2,
                _ => 1,
            };
            assert_eq!(f.nodes.len(), expected, "{f:?}");
            if f.kind == Kind::Clog {
                assert_ne!(f.nodes[0], f.nodes[1], "a clog is between two nodes");
            }
        }
    }

    #[test]
    fn the_nemesis_list_is_parsed() {
        let kinds = Kind::parse_list("kill,pause,partition,kill,latency,clog").unwrap();
        assert_eq!(kinds, vec![Kind::Kill, Kind::Pause, Kind::Partition, Kind::Latency, Kind::Clog]);
        assert!(Kind::Partition.needs_network() && Kind::Latency.needs_network() && !Kind::Kill.needs_network());
        assert!(Kind::Latency.needs_netem() && !Kind::Loss.needs_netem());
        for k in kinds {
            assert_eq!(Kind::parse_list(k.name()).unwrap(), vec![k], "a name parses back to its fault");
        }
        assert!(Kind::parse_list("kill,explode").unwrap_err().contains("explode"));
        assert!(schedule(1, &[], 3, 60_000, 3_000).is_empty());
    }
}
