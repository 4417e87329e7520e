//! Broker metrics: counters, gauges and histograms the request path updates, and the
//! Prometheus endpoint (`metrics.listener`) that serves them with the gauges read off the
//! broker's state at scrape time.
//!
//! Guarantees:
//! * recording is a few relaxed atomic operations: no lock, no allocation, no I/O, so it is
//!   safe on every hot path and changes nothing the simulator could observe;
//! * counters only grow (since the process started), and a [`GaugeGuard`] gives back what it
//!   took when dropped, so a cancelled wait cannot leave a purgatory gauge high;
//! * durations come from the broker's [`Clock`](gregor_core::clock::Clock), so they are
//!   simulated time in the simulator.
//!
//! Names follow Kafka's JMX names (`kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions`)
//! the way Prometheus' JMX exporter writes them (`kafka_server_replicamanager_underreplicatedpartitions`),
//! with Prometheus' suffixes: `_total` for counters, `_seconds` for durations.

pub mod exposition;
pub mod http;
pub mod scrape;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use gregor_core::clock::SharedClock;
use gregor_core::metadata::PartitionRegistration;

/// Upper bounds of the duration histograms' buckets, in microseconds (0.5 ms to 30 s).
pub const DURATION_BUCKETS_US: [u64; 15] =
    [500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000];

/// API keys below this are tracked (Kafka's largest is below 100); larger ones are not counted.
pub const API_KEY_SLOTS: usize = 100;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down: here, how many of something are held right now.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Counts one more until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> GaugeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self.clone())
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One unit of a [`Gauge`], given back on drop.
pub struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A duration histogram with [`DURATION_BUCKETS_US`] (cumulative on output, as Prometheus').
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, us: u64) {
        let i = DURATION_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(DURATION_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `(upper bound in µs or None for +Inf, cumulative count)`, then the sum (µs) and count.
    pub fn snapshot(&self) -> (Vec<(Option<u64>, u64)>, u64, u64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            out.push((DURATION_BUCKETS_US.get(i).copied(), cumulative));
        }
        (out, self.sum_us.load(Ordering::Relaxed), self.count.load(Ordering::Relaxed))
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Requests of one API: how many were answered and how long each took, from its last byte
/// read to its answer's last byte written (Kafka's `TotalTimeMs`).
#[derive(Debug, Default)]
pub struct RequestStats {
    pub count: Counter,
    pub total_time: Histogram,
}

/// Which listener a connection came in on (a label of the connection metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerLabel {
    Broker,
    Controller,
}

/// Every metric the broker records as events happen. Gauges of state (partition counts, ISR
/// sizes, quorum state) are not here: [`scrape`] reads them off the broker when asked.
pub struct Metrics {
    clock: SharedClock,
    /// By API key (see [`API_KEY_SLOTS`]).
    requests: Vec<RequestStats>,
    /// Record bytes appended by produce requests (`BytesInPerSec`).
    pub bytes_in: Counter,
    /// Records appended by produce requests (`MessagesInPerSec`).
    pub messages_in: Counter,
    /// Record bytes sent to consumers (`BytesOutPerSec`).
    pub bytes_out: Counter,
    /// Record bytes appended from a leader by this broker's followers (`ReplicationBytesInPerSec`).
    pub replication_bytes_in: Counter,
    /// Record bytes sent to follower replicas (`ReplicationBytesOutPerSec`).
    pub replication_bytes_out: Counter,
    /// Partition appends or acknowledgements of a produce request that failed (`FailedProduceRequestsPerSec`).
    pub failed_produce: Counter,
    /// Fetch requests answered with an error on some partition (`FailedFetchRequestsPerSec`).
    pub failed_fetch: Counter,
    /// Produce requests waiting for their acknowledgement (Kafka's produce purgatory).
    pub produce_purgatory: Arc<Gauge>,
    /// Fetch requests waiting for data or their `max.wait.ms` (Kafka's fetch purgatory).
    pub fetch_purgatory: Arc<Gauge>,
    /// Shrinks of the ISR of a partition this broker leads, as committed (`IsrShrinksPerSec`).
    pub isr_shrinks: Counter,
    /// Expansions of the ISR of a partition this broker leads, as committed (`IsrExpandsPerSec`).
    pub isr_expands: Counter,
    /// Leader changes of existing partitions in the committed metadata this node applied
    /// (`LeaderElectionRateAndTimeMs`); every node applies the same log, so every node counts
    /// the cluster's elections since it started.
    pub leader_elections: Counter,
    /// Of those, leaders taken from outside the ISR and the eligible replicas (`UncleanLeaderElectionsPerSec`).
    pub unclean_leader_elections: Counter,
    /// fsync of partition data (`LogFlushRateAndTimeMs`).
    pub log_flush: Histogram,
    /// Open connections, by listener.
    pub connections: [Arc<Gauge>; 2],
    /// Connections accepted since start, by listener.
    pub connections_created: [Counter; 2],
}

impl Metrics {
    pub fn new(clock: SharedClock) -> Metrics {
        Metrics {
            clock,
            requests: (0..API_KEY_SLOTS).map(|_| RequestStats::default()).collect(),
            bytes_in: Counter::default(),
            messages_in: Counter::default(),
            bytes_out: Counter::default(),
            replication_bytes_in: Counter::default(),
            replication_bytes_out: Counter::default(),
            failed_produce: Counter::default(),
            failed_fetch: Counter::default(),
            produce_purgatory: Arc::default(),
            fetch_purgatory: Arc::default(),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
            leader_elections: Counter::default(),
            unclean_leader_elections: Counter::default(),
            log_flush: Histogram::default(),
            connections: [Arc::default(), Arc::default()],
            connections_created: [Counter::default(), Counter::default()],
        }
    }

    /// Monotonic microseconds, for timing with [`Metrics::elapsed_us`].
    pub fn now_us(&self) -> u64 {
        self.clock.monotonic_us()
    }

    pub fn elapsed_us(&self, since_us: u64) -> u64 {
        self.now_us().saturating_sub(since_us)
    }

    /// Counts one answered request of `api_key` that took `us` microseconds.
    pub fn request_done(&self, api_key: i16, us: u64) {
        if let Some(s) = usize::try_from(api_key).ok().and_then(|k| self.requests.get(k)) {
            s.count.inc();
            s.total_time.observe_us(us);
        }
    }

    /// The stats of every API key that has answered a request.
    pub fn requests(&self) -> impl Iterator<Item = (i16, &RequestStats)> {
        self.requests.iter().enumerate().filter(|(_, s)| s.count.get() > 0).map(|(k, s)| (k as i16, s))
    }

    fn listener_slot(l: ListenerLabel) -> usize {
        match l {
            ListenerLabel::Broker => 0,
            ListenerLabel::Controller => 1,
        }
    }

    /// Counts a new connection on `listener` until the guard is dropped.
    pub fn connection_opened(&self, listener: ListenerLabel) -> GaugeGuard {
        let i = Self::listener_slot(listener);
        self.connections_created[i].inc();
        self.connections[i].enter()
    }

    /// Counts what a committed change of a partition's registration did, as node `me` applies
    /// it: a leader election (unclean when the new leader was neither in the ISR nor eligible),
    /// or an ISR shrink or expansion of a partition `me` led before and after.
    pub fn registration_changed(&self, me: i32, old: &PartitionRegistration, new: &PartitionRegistration) {
        if new.leader != old.leader && new.leader >= 0 {
            self.leader_elections.inc();
            if !old.isr.contains(&new.leader) && !old.elr.contains(&new.leader) {
                self.unclean_leader_elections.inc();
            }
        }
        if old.leader == me && new.leader == me {
            if old.isr.iter().any(|r| !new.isr.contains(r)) {
                self.isr_shrinks.inc();
            }
            if new.isr.iter().any(|r| !old.isr.contains(r)) {
                self.isr_expands.inc();
            }
        }
    }

    pub fn connection_count(&self, listener: ListenerLabel) -> i64 {
        self.connections[Self::listener_slot(listener)].get()
    }

    pub fn connections_created(&self, listener: ListenerLabel) -> u64 {
        self.connections_created[Self::listener_slot(listener)].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::clock::ManualClock;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded_inclusively() {
        let h = Histogram::default();
        for us in [0, 500, 501, 40_000_000] {
            h.observe_us(us);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 4);
        assert_eq!(sum, 40_001_001);
        assert_eq!(buckets[0], (Some(500), 2), "0 and 500 µs fall in the 0.5 ms bucket");
        assert_eq!(buckets[1], (Some(1_000), 3));
        assert_eq!(buckets[DURATION_BUCKETS_US.len() - 1], (Some(30_000_000), 3));
        assert_eq!(*buckets.last().unwrap(), (None, 4), "+Inf holds every observation");
    }

    #[test]
    fn a_gauge_guard_gives_back_what_it_took() {
        let m = Metrics::new(Arc::new(ManualClock::new(0)));
        let a = m.connection_opened(ListenerLabel::Broker);
        let b = m.connection_opened(ListenerLabel::Broker);
        assert_eq!(m.connection_count(ListenerLabel::Broker), 2);
        drop(a);
        assert_eq!(m.connection_count(ListenerLabel::Broker), 1);
        drop(b);
        assert_eq!(m.connection_count(ListenerLabel::Broker), 0);
        assert_eq!(m.connections_created(ListenerLabel::Broker), 2, "the creation count stays");
        assert_eq!(m.connection_count(ListenerLabel::Controller), 0);
    }

    fn reg(leader: i32, isr: &[i32], elr: &[i32]) -> PartitionRegistration {
        PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
            elr: elr.to_vec(),
            last_known_elr: vec![],
        }
    }

    #[test]
    fn registration_changes_count_elections_and_isr_changes_of_the_leader() {
        let m = Metrics::new(Arc::new(ManualClock::new(0)));
        let counts = |m: &Metrics| (m.leader_elections.get(), m.unclean_leader_elections.get(), m.isr_shrinks.get(), m.isr_expands.get());
        // Node 1 leads; its ISR shrinks, then grows back.
        m.registration_changed(1, &reg(1, &[1, 2, 3], &[]), &reg(1, &[1, 2], &[]));
        m.registration_changed(1, &reg(1, &[1, 2], &[]), &reg(1, &[1, 2, 3], &[]));
        assert_eq!(counts(&m), (0, 0, 1, 1));
        // Seen from node 2 (not the leader), the same changes are not its ISR changes.
        m.registration_changed(2, &reg(1, &[1, 2, 3], &[]), &reg(1, &[1, 2], &[]));
        assert_eq!(counts(&m), (0, 0, 1, 1));
        // A clean election from the ISR, one from the eligible replicas, an unclean one, and a
        // leader lost (no election).
        m.registration_changed(1, &reg(1, &[1, 2], &[]), &reg(2, &[2], &[]));
        m.registration_changed(1, &reg(-1, &[], &[3]), &reg(3, &[3], &[]));
        m.registration_changed(1, &reg(-1, &[2], &[]), &reg(3, &[3], &[]));
        m.registration_changed(1, &reg(3, &[3], &[]), &reg(-1, &[3], &[]));
        assert_eq!(counts(&m), (3, 1, 1, 1));
    }

    #[test]
    fn requests_are_counted_by_api_key_and_out_of_range_keys_are_ignored() {
        let m = Metrics::new(Arc::new(ManualClock::new(0)));
        m.request_done(0, 1_200);
        m.request_done(0, 300);
        m.request_done(-1, 5);
        m.request_done(i16::MAX, 5);
        let seen: Vec<(i16, u64)> = m.requests().map(|(k, s)| (k, s.count.get())).collect();
        assert_eq!(seen, vec![(0, 2)]);
    }
}
