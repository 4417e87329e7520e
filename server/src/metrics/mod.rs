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

/// Error codes `-1 ..= ERROR_SLOTS - 2` are counted per API (Kafka 4's largest is below 140);
/// a larger one is not counted.
pub const ERROR_SLOTS: usize = 160;

/// When one request passed each stage of its life, in the clock's monotonic microseconds.
/// Every stage is at or after the one before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    /// Its last byte was read.
    pub read: u64,
    /// Its handler returned: the answer, or the wait for one (an acks=all produce, a long poll).
    pub handled: u64,
    /// The answer was ready (the same as `handled` unless it waited in a purgatory).
    pub ready: u64,
    /// Writing the answer began (after the answers before it on its connection).
    pub writing: u64,
    /// Its last byte was written (or, with nothing to write, the same as `ready`).
    pub written: u64,
}

/// Requests of one API: how many were answered, how long each took in all and in each stage
/// (Kafka's `TotalTimeMs`, `LocalTimeMs`, `RemoteTimeMs`, `ResponseQueueTimeMs`,
/// `ResponseSendTimeMs`; a connection's reader runs the handler itself, so there is no
/// `RequestQueueTimeMs` to measure), and the error codes their answers carried (`ErrorsPerSec`:
/// every `error_code` of the answer, `NONE` included, as Kafka counts them).
#[derive(Debug)]
pub struct RequestStats {
    pub count: Counter,
    pub total_time: Histogram,
    pub local_time: Histogram,
    pub remote_time: Histogram,
    pub response_queue_time: Histogram,
    pub response_send_time: Histogram,
    /// By error code + 1 (see [`ERROR_SLOTS`]).
    errors: Box<[Counter]>,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            count: Counter::default(),
            total_time: Histogram::default(),
            local_time: Histogram::default(),
            remote_time: Histogram::default(),
            response_queue_time: Histogram::default(),
            response_send_time: Histogram::default(),
            errors: (0..ERROR_SLOTS).map(|_| Counter::default()).collect(),
        }
    }
}

impl RequestStats {
    /// Counts one `error_code` of an answer.
    pub fn error(&self, code: i16) {
        if let Some(c) = usize::try_from(i32::from(code) + 1).ok().and_then(|i| self.errors.get(i)) {
            c.inc();
        }
    }

    /// `(error code, count)` of every code seen, in code order.
    pub fn errors(&self) -> impl Iterator<Item = (i16, u64)> + '_ {
        self.errors.iter().enumerate().map(|(i, c)| (i as i16 - 1, c.get())).filter(|(_, n)| *n > 0)
    }
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

    /// The stats of `api_key`, if it is tracked (see [`API_KEY_SLOTS`]).
    pub fn request_stats(&self, api_key: i16) -> Option<&RequestStats> {
        usize::try_from(api_key).ok().and_then(|k| self.requests.get(k))
    }

    /// Counts one answered request of `api_key` that went through `stages`.
    pub fn request_done(&self, api_key: i16, stages: &Stages) {
        debug_assert!(
            stages.read <= stages.handled && stages.handled <= stages.ready && stages.ready <= stages.writing && stages.writing <= stages.written,
            "stages out of order: {stages:?}"
        );
        if let Some(s) = self.request_stats(api_key) {
            let d = |from: u64, to: u64| to.saturating_sub(from);
            s.count.inc();
            s.total_time.observe_us(d(stages.read, stages.written));
            s.local_time.observe_us(d(stages.read, stages.handled));
            s.remote_time.observe_us(d(stages.handled, stages.ready));
            s.response_queue_time.observe_us(d(stages.ready, stages.writing));
            s.response_send_time.observe_us(d(stages.writing, stages.written));
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
        let stages = Stages { read: 100, handled: 300, ready: 1_300, writing: 1_700, written: 1_750 };
        m.request_done(0, &stages);
        m.request_done(0, &Stages { read: 5, handled: 10, ready: 10, writing: 10, written: 10 });
        m.request_done(-1, &stages);
        m.request_done(i16::MAX, &stages);
        let seen: Vec<(i16, u64)> = m.requests().map(|(k, s)| (k, s.count.get())).collect();
        assert_eq!(seen, vec![(0, 2)]);
        // Each stage's histogram got its own share of the first request.
        let s = m.request_stats(0).unwrap();
        let sum = |h: &Histogram| h.snapshot().1;
        assert_eq!(
            [sum(&s.total_time), sum(&s.local_time), sum(&s.remote_time), sum(&s.response_queue_time), sum(&s.response_send_time)],
            [1_650 + 5, 200 + 5, 1_000, 400, 50]
        );
    }

    #[test]
    fn error_codes_are_counted_by_code_and_out_of_range_codes_are_ignored() {
        let m = Metrics::new(Arc::new(ManualClock::new(0)));
        let s = m.request_stats(0).unwrap();
        for code in [0, 0, 6, -1, 6, 0, i16::MAX, -2, (ERROR_SLOTS - 2) as i16, (ERROR_SLOTS - 1) as i16] {
            s.error(code);
        }
        assert_eq!(s.errors().collect::<Vec<_>>(), vec![(-1, 1), (0, 3), (6, 2), ((ERROR_SLOTS - 2) as i16, 1)]);
        assert!(m.request_stats(1).unwrap().errors().next().is_none());
    }
}
