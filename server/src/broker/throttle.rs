//! Replication throttles, as Kafka's (KIP-73): a cap on the bytes per second that catching-up
//! replicas move, so a reassignment does not starve producers and consumers.
//!
//! * Which replicas: the topic configs `leader.replication.throttled.replicas` and
//!   `follower.replication.throttled.replicas`, each `*` or a list of `partition:broker`. A broker
//!   keeps the entries naming itself: as a leader it throttles what it sends for those
//!   partitions, as a follower what it fetches.
//! * How much: the broker configs `leader.replication.throttled.rate` and
//!   `follower.replication.throttled.rate` (bytes/s, per broker or as the cluster default),
//!   measured over `replication.quota.window.num` samples of
//!   `replication.quota.window.size.seconds`, as Kafka's sampled rate.
//! * A replica in the ISR is never throttled (it would fall out of it); the bytes sent to it for a
//!   throttled partition still count against the quota, as in Kafka, so in-sync traffic leaves
//!   less room for catching up.
//! * Throttling only withholds data: a throttled follower's fetch still reports its position, and
//!   nothing about the log or the high watermark changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use gregor_core::metadata::{MetadataImage, RESOURCE_TOPIC};

use crate::config::{ReplicationConfig, THROTTLE_RATE_UNLIMITED};

pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";
pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";

/// A byte rate measured over a window of samples, as Kafka's `Rate` over a `SampledStat`.
#[derive(Debug)]
pub struct Quota {
    limit: u64,
    samples_max: usize,
    sample_ms: u64,
    /// (start of the sample in monotonic ms, bytes recorded in it), oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl Quota {
    pub fn new(limit: u64, samples_max: u32, sample_ms: u64) -> Quota {
        assert!(samples_max >= 1 && sample_ms >= 1, "a quota window has at least one sample of at least 1 ms");
        Quota { limit, samples_max: samples_max as usize, sample_ms, samples: VecDeque::new() }
    }

    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Drops samples older than the window and starts a new one when the current one is full.
    fn roll(&mut self, now: u64) {
        let window = self.sample_ms * self.samples_max as u64;
        while self.samples.front().is_some_and(|(start, _)| now.saturating_sub(*start) >= window) {
            self.samples.pop_front();
        }
        if self.samples.back().is_none_or(|(start, _)| now.saturating_sub(*start) >= self.sample_ms) {
            self.samples.push_back((now, 0));
        }
        while self.samples.len() > self.samples_max {
            self.samples.pop_front();
        }
    }

    pub fn record(&mut self, now: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.roll(now);
        let last = self.samples.back_mut().expect("roll leaves a current sample");
        last.1 = last.1.saturating_add(bytes);
    }

    /// Bytes per second over the window. The elapsed time counts at least all but one sample,
    /// as Kafka's: a quota starting from nothing allows that much burst, not an unbounded rate.
    pub fn rate(&mut self, now: u64) -> f64 {
        self.roll(now);
        let total: u64 = self.samples.iter().map(|(_, b)| *b).sum();
        let oldest = self.samples.front().map_or(now, |(s, _)| *s);
        let mut elapsed = now.saturating_sub(oldest);
        let full = elapsed / self.sample_ms;
        let min_full = self.samples_max as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.sample_ms;
        }
        total as f64 * 1000.0 / elapsed.max(1) as f64
    }

    /// Whether the measured rate is above the limit (never, when unlimited).
    pub fn exceeded(&mut self, now: u64) -> bool {
        self.limit < THROTTLE_RATE_UNLIMITED && self.rate(now) > self.limit as f64
    }
}

/// The partitions of one topic that a broker throttles in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    All,
    Partitions(BTreeSet<i32>),
}

impl Throttled {
    fn contains(&self, partition: i32) -> bool {
        match self {
            Throttled::All => true,
            Throttled::Partitions(p) => p.contains(&partition),
        }
    }
}

/// Parses a `*.replication.throttled.replicas` value: `None` for "nothing throttled" (empty),
/// `All` for `*`, otherwise the `(partition, broker)` pairs. The error is Kafka's message.
pub fn parse_throttled_replicas(key: &str, value: &str) -> Result<Option<Vec<(i32, i32)>>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(Some(Vec::new()));
    }
    if v == "*" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "Invalid value {value} for configuration {key}: {key} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
        )
    };
    let mut out = Vec::new();
    for entry in v.split(',') {
        let (p, b) = entry.trim().split_once(':').ok_or_else(bad)?;
        let p: i32 = p.trim().parse().map_err(|_| bad())?;
        let b: i32 = b.trim().parse().map_err(|_| bad())?;
        if p < 0 || b < 0 {
            return Err(bad());
        }
        out.push((p, b));
    }
    Ok(Some(out))
}

/// What a value throttles on broker `me`; `None` when nothing.
fn throttled_on(key: &str, value: Option<&String>, me: i32) -> Option<Throttled> {
    match parse_throttled_replicas(key, value?) {
        Ok(None) => Some(Throttled::All),
        Ok(Some(pairs)) => {
            let mine: BTreeSet<i32> = pairs.into_iter().filter(|(_, b)| *b == me).map(|(p, _)| p).collect();
            (!mine.is_empty()).then_some(Throttled::Partitions(mine))
        }
        // Refused before commit; a bad committed value throttles nothing.
        Err(_) => None,
    }
}

/// One broker's throttle state: the two quotas and the throttled partitions of each topic.
pub struct Throttles {
    leader: Mutex<Quota>,
    follower: Mutex<Quota>,
    /// topic → (leader side, follower side).
    topics: Mutex<BTreeMap<String, (Option<Throttled>, Option<Throttled>)>>,
}

impl Throttles {
    pub fn new(rc: &ReplicationConfig) -> Throttles {
        Throttles {
            leader: Mutex::new(Quota::new(rc.leader_throttled_rate, rc.quota_window_num, rc.quota_window_ms)),
            follower: Mutex::new(Quota::new(rc.follower_throttled_rate, rc.quota_window_num, rc.quota_window_ms)),
            topics: Mutex::new(BTreeMap::new()),
        }
    }

    /// Follows the image's topic configs and this broker's effective rates.
    pub fn update(&self, image: &MetadataImage, me: i32, rc: &ReplicationConfig) {
        self.leader.lock().expect("leader quota lock").set_limit(rc.leader_throttled_rate);
        self.follower.lock().expect("follower quota lock").set_limit(rc.follower_throttled_rate);
        let mut topics = BTreeMap::new();
        for ((kind, name), configs) in &image.configs {
            if *kind != RESOURCE_TOPIC || image.topic(name).is_none() {
                continue;
            }
            let leader = throttled_on(LEADER_THROTTLED_REPLICAS, configs.get(LEADER_THROTTLED_REPLICAS), me);
            let follower = throttled_on(FOLLOWER_THROTTLED_REPLICAS, configs.get(FOLLOWER_THROTTLED_REPLICAS), me);
            if leader.is_some() || follower.is_some() {
                topics.insert(name.clone(), (leader, follower));
            }
        }
        *self.topics.lock().expect("throttled topics lock") = topics;
    }

    fn marked(&self, topic: &str, partition: i32, leader_side: bool) -> bool {
        let topics = self.topics.lock().expect("throttled topics lock");
        let Some((l, f)) = topics.get(topic) else { return false };
        let side = if leader_side { l } else { f };
        side.as_ref().is_some_and(|t| t.contains(partition))
    }

    /// Leader side: whether `partition` of `topic` is throttled here.
    pub fn leader_marked(&self, topic: &str, partition: i32) -> bool {
        self.marked(topic, partition, true)
    }

    /// Follower side: whether `partition` of `topic` is throttled here.
    pub fn follower_marked(&self, topic: &str, partition: i32) -> bool {
        self.marked(topic, partition, false)
    }

    pub fn leader_exceeded(&self, now: u64) -> bool {
        self.leader.lock().expect("leader quota lock").exceeded(now)
    }

    pub fn follower_exceeded(&self, now: u64) -> bool {
        self.follower.lock().expect("follower quota lock").exceeded(now)
    }

    pub fn record_leader(&self, now: u64, bytes: u64) {
        self.leader.lock().expect("leader quota lock").record(now, bytes);
    }

    pub fn record_follower(&self, now: u64, bytes: u64) {
        self.follower.lock().expect("follower quota lock").record(now, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_allows_its_rate_over_the_window_and_refuses_more() {
        // 1,000 B/s over 11 samples of 1 s: the first 10 s count as elapsed from the start.
        let mut q = Quota::new(1_000, 11, 1_000);
        q.record(0, 9_000);
        assert!(!q.exceeded(0), "9,000 B over the minimum 10 s is 900 B/s");
        q.record(0, 2_000);
        assert!(q.exceeded(0), "11,000 B over 10 s is 1,100 B/s");
        // Once the samples age out of the window, the rate falls and the quota opens again.
        assert!(!q.exceeded(11_000));
        // A steady 1,000 B/s stays at the limit, not above it.
        let mut q = Quota::new(1_000, 11, 1_000);
        for t in 0..60u64 {
            assert!(!q.exceeded(t * 1_000), "at {t} s");
            q.record(t * 1_000, 1_000);
        }
        assert!((q.rate(60_000) - 1_000.0).abs() < 101.0, "{}", q.rate(60_000));
    }

    #[test]
    fn an_unlimited_quota_is_never_exceeded() {
        let mut q = Quota::new(THROTTLE_RATE_UNLIMITED, 11, 1_000);
        q.record(0, u64::MAX / 2);
        assert!(!q.exceeded(0));
        q.set_limit(10);
        assert!(q.exceeded(0));
    }

    #[test]
    fn throttled_replica_lists_parse_like_kafkas() {
        let k = LEADER_THROTTLED_REPLICAS;
        assert_eq!(parse_throttled_replicas(k, "*"), Ok(None));
        assert_eq!(parse_throttled_replicas(k, ""), Ok(Some(vec![])));
        assert_eq!(parse_throttled_replicas(k, "0:1, 1:2 ,2:3"), Ok(Some(vec![(0, 1), (1, 2), (2, 3)])));
        for bad in ["0", "a:1", "0:1,", "1:-2", "*,0:1", "0:1:2"] {
            let e = parse_throttled_replicas(k, bad).unwrap_err();
            assert!(e.contains("must be the literal '*'"), "{bad}: {e}");
        }
        let v = "0:1,1:2,3:1".to_string();
        assert_eq!(throttled_on(k, Some(&v), 1), Some(Throttled::Partitions([0, 3].into())));
        assert_eq!(throttled_on(k, Some(&v), 5), None);
        assert_eq!(throttled_on(k, Some(&"*".to_string()), 5), Some(Throttled::All));
        assert_eq!(throttled_on(k, None, 1), None);
    }
}
