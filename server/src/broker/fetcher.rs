//! Follower fetching: the partitions this broker follows, grouped by their leader, each group
//! fetched by one task over the Kafka wire (Fetch with this broker's replica id), as Kafka's
//! `ReplicaFetcherThread`s (`num.replica.fetchers` per source broker).
//!
//! Guarantees:
//! * A partition is fetched only at the leader epoch the image gave it; an answer for an older
//!   epoch is dropped (the partition refuses it), so a deposed leader's data never lands.
//! * A diverging-epoch answer truncates before anything else is fetched (KIP-320), an
//!   out-of-range answer below the leader's log start restarts the log there.
//! * Under fsync-before-ack, a fetch reports an offset only after everything below it is
//!   fsynced on this broker (the wait is where the request is built): the leader counts it as
//!   durable here.
//! * Replication throttles (`super::throttle`): a partition throttled on this follower and not
//!   in the ISR is left out of the request while the follower quota is used up; the bytes
//!   fetched for throttled partitions count against it.
//! * Every wait is bounded: connecting, each request (`replica.fetch.wait.max.ms` plus the
//!   request timeout), and the backoff after a failure (`replica.fetch.backoff.ms`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gregor_net::client::Client;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use uuid::Uuid;

use super::replica_manager::TopicPartition;
use super::{Broker, Partition, PartitionError};
use crate::errors;

/// How long a follower fetch may take beyond its long-poll wait before the connection is
/// considered dead.
const FETCH_TIMEOUT_SLACK_MS: u64 = 5_000;

/// One followed partition.
#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    topic_id: Uuid,
    leader_epoch: i32,
    /// Skip this partition until then (monotonic ms), after an error for it.
    backoff_until_ms: u64,
}

/// The partitions one fetcher task fetches from one leader.
struct FetcherShared {
    leader: i32,
    partitions: Mutex<BTreeMap<TopicPartition, Followed>>,
    changed: Notify,
    /// Set when the fetcher is removed: its task ends.
    stopped: AtomicBool,
}

/// The broker's fetchers, keyed by (leader, fetcher index).
#[derive(Default)]
pub struct Fetchers {
    fetchers: Mutex<BTreeMap<(i32, usize), Arc<FetcherShared>>>,
}

fn fetcher_index(topic: &str, partition: i32, n: usize) -> usize {
    // Kafka spreads partitions over fetchers by a hash of the topic-partition.
    let h = topic.bytes().fold(partition as u32 as u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % n.max(1) as u64) as usize
}

impl Fetchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(i32, usize), Arc<FetcherShared>>> {
        self.fetchers.lock().expect("fetchers lock")
    }

    /// Starts following `partition` from `leader` at `leader_epoch` (moving it from any other
    /// fetcher). A leader of -1 stops fetching it until the image names a leader.
    pub fn follow(&self, broker: &Arc<Broker>, partition: &Arc<Partition>, topic_id: Uuid, leader: i32, leader_epoch: i32) {
        self.unfollow(&partition.topic, partition.index);
        if leader < 0 || leader == broker.config.node_id {
            return;
        }
        let idx = fetcher_index(&partition.topic, partition.index, broker.config.replication.num_fetchers);
        let mut fetchers = self.lock();
        let shared = fetchers.entry((leader, idx)).or_insert_with(|| {
            let shared = Arc::new(FetcherShared { leader, partitions: Mutex::new(BTreeMap::new()), changed: Notify::new(), stopped: AtomicBool::new(false) });
            tokio::spawn(run(Arc::downgrade(broker), shared.clone()));
            shared
        });
        shared
            .partitions
            .lock()
            .expect("fetcher partitions lock")
            .insert((partition.topic.clone(), partition.index), Followed { partition: partition.clone(), topic_id, leader_epoch, backoff_until_ms: 0 });
        shared.changed.notify_one();
    }

    /// Stops following a partition (it leads now, or is no longer hosted).
    pub fn unfollow(&self, topic: &str, index: i32) {
        let key = (topic.to_string(), index);
        let mut fetchers = self.lock();
        let mut emptied = Vec::new();
        for (k, f) in fetchers.iter() {
            let mut parts = f.partitions.lock().expect("fetcher partitions lock");
            if parts.remove(&key).is_some() && parts.is_empty() {
                emptied.push(*k);
            }
        }
        for k in emptied {
            if let Some(f) = fetchers.remove(&k) {
                f.stopped.store(true, Ordering::SeqCst);
                f.changed.notify_one();
            }
        }
    }

    /// Stops every fetcher (shutdown).
    pub fn stop_all(&self) {
        for (_, f) in std::mem::take(&mut *self.lock()) {
            f.stopped.store(true, Ordering::SeqCst);
            f.changed.notify_one();
        }
    }

    /// The partitions followed, with their leader (for tests and tools).
    pub fn followed(&self) -> BTreeMap<TopicPartition, i32> {
        let mut out = BTreeMap::new();
        for f in self.lock().values() {
            for k in f.partitions.lock().expect("fetcher partitions lock").keys() {
                out.insert(k.clone(), f.leader);
            }
        }
        out
    }
}

/// The leader's client address (its inter-broker listener), from the image.
fn leader_addr(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.image();
    let b = image.brokers.get(&leader)?;
    let e = b.endpoints.iter().find(|e| e.name == broker.config.inter_broker_listener_name).or_else(|| b.endpoints.first())?;
    Some(format!("{}:{}", e.host, e.port))
}

async fn run(weak: Weak<Broker>, shared: Arc<FetcherShared>) {
    let mut client: Option<Client> = None;
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Some(broker) = weak.upgrade().filter(|b| !b.is_closing()) else { return };
        let backoff = Duration::from_millis(broker.config.replication.fetch_backoff_ms.max(10));
        if client.is_none() {
            let Some(addr) = leader_addr(&broker, shared.leader) else {
                drop(broker);
                wait_or_change(&shared, backoff).await;
                continue;
            };
            let name = format!("gregor-replica-fetcher-{}-{}", broker.config.node_id, shared.leader);
            match tokio::time::timeout(Duration::from_millis(FETCH_TIMEOUT_SLACK_MS), Client::connect(&addr, &name)).await {
                Ok(Ok(mut c)) => {
                    let wait = broker.config.replication.fetch_wait_max_ms;
                    c.set_timeout(Duration::from_millis(wait + FETCH_TIMEOUT_SLACK_MS));
                    client = Some(c);
                }
                Ok(Err(e)) => {
                    tracing::debug!(leader = shared.leader, error = %e, "cannot connect to the leader to fetch");
                    drop(broker);
                    wait_or_change(&shared, backoff).await;
                    continue;
                }
                Err(_) => {
                    drop(broker);
                    wait_or_change(&shared, backoff).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().expect("connected above");
        match fetch_once(&broker, &shared, c).await {
            Ok(true) => {}
            Ok(false) => {
                // Nothing to fetch now (every partition backing off, or none followed).
                drop(broker);
                wait_or_change(&shared, Duration::from_millis(100)).await;
            }
            Err(e) => {
                tracing::warn!(leader = shared.leader, error = %e, "follower fetch failed; retrying after replica.fetch.backoff.ms");
                client = None;
                drop(broker);
                wait_or_change(&shared, backoff).await;
            }
        }
    }
}

async fn wait_or_change(shared: &FetcherShared, d: Duration) {
    let _ = tokio::time::timeout(d, shared.changed.notified()).await;
}

/// One fetch round: request every partition not backing off (each at a position that is durable
/// here), apply the answers. Ok(false) when there was nothing to request.
async fn fetch_once(broker: &Arc<Broker>, shared: &FetcherShared, client: &mut Client) -> Result<bool, String> {
    let now = broker.clock.monotonic_ms();
    let followed: Vec<(TopicPartition, Followed)> =
        shared.partitions.lock().expect("fetcher partitions lock").iter().filter(|(_, f)| f.backoff_until_ms <= now).map(|(k, f)| (k.clone(), f.clone())).collect();
    if followed.is_empty() {
        return Ok(false);
    }
    let rc = &broker.config.replication;
    let version = client.version_for::<FetchRequest>().ok_or("the leader does not support Fetch")?;
    if version < 12 {
        return Err(format!("the leader offers Fetch up to v{version}; replication needs v12+ (diverging epochs)"));
    }
    let mut req = FetchRequest::default();
    if version >= 15 {
        let mut state = ReplicaState::default();
        state.replica_id = BrokerId(broker.config.node_id);
        state.replica_epoch = broker.broker_epoch.load(Ordering::SeqCst);
        req.replica_state = state;
    } else {
        req.replica_id = BrokerId(broker.config.node_id);
    }
    req.max_wait_ms = rc.fetch_wait_max_ms.min(i32::MAX as u64) as i32;
    req.min_bytes = rc.fetch_min_bytes;
    req.max_bytes = rc.fetch_response_max_bytes;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    let mut topics: BTreeMap<String, FetchTopic> = BTreeMap::new();
    let mut asked: BTreeMap<TopicPartition, (Followed, i64)> = BTreeMap::new();
    let image = broker.image();
    let me = broker.config.node_id;
    let quota_used_up = broker.throttles.follower_exceeded(now);
    let mut positions = Vec::new();
    for ((topic, index), f) in followed {
        let in_isr = image.partition(&topic, index).is_some_and(|r| r.isr.contains(&me));
        if quota_used_up && !in_isr && broker.throttles.follower_marked(&topic, index) {
            continue;
        }
        positions.push(((topic, index), f));
    }
    drop(image);
    for ((topic, index), f) in positions {
        // Report nothing to the leader that is not durable here.
        let pos = match f.partition.durable_fetch_position().await {
            Ok(p) => p,
            Err(_) => continue,
        };
        let t = topics.entry(topic.clone()).or_insert_with(|| {
            let mut t = FetchTopic::default();
            t.topic = TopicName(StrBytes::from_string(topic.clone()));
            t.topic_id = f.topic_id;
            t
        });
        let mut p = FetchPartition::default();
        p.partition = index;
        p.current_leader_epoch = f.leader_epoch;
        p.fetch_offset = pos.fetch_offset;
        p.last_fetched_epoch = pos.last_fetched_epoch;
        p.log_start_offset = pos.log_start;
        p.partition_max_bytes = rc.fetch_max_bytes;
        t.partitions.push(p);
        asked.insert((topic, index), (f, pos.fetch_offset));
    }
    if asked.is_empty() {
        return Ok(false);
    }
    req.topics = topics.into_values().collect();
    let resp = client.send(&req).await.map_err(|e| e.to_string())?;
    if resp.error_code != errors::NONE {
        return Err(format!("fetch refused with error {}", resp.error_code));
    }
    let mut failed: Vec<TopicPartition> = Vec::new();
    for tr in resp.responses {
        for pd in tr.partitions {
            // Find the partition asked for: by topic id (v13+) or by name.
            let key = asked
                .iter()
                .find(|((t, i), (f, _))| *i == pd.partition_index && if version >= 13 { f.topic_id == tr.topic_id } else { t.as_str() == tr.topic.0.as_str() })
                .map(|(k, _)| k.clone());
            let Some(key) = key else { continue };
            let (f, fetch_offset) = asked.get(&key).expect("found above").clone();
            let p = &f.partition;
            let result = match pd.error_code {
                errors::NONE if pd.diverging_epoch.end_offset >= 0 || pd.diverging_epoch.epoch >= 0 => {
                    p.truncate_diverging(f.leader_epoch, (pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset)).map(|_| ())
                }
                errors::NONE => {
                    let mut data = pd.records.map(|r| r.to_vec()).unwrap_or_default();
                    if broker.throttles.follower_marked(&key.0, key.1) {
                        broker.throttles.record_follower(broker.clock.monotonic_ms(), data.len() as u64);
                    }
                    broker.metrics.replication_bytes_in.add(data.len() as u64);
                    p.append_from_leader(f.leader_epoch, &mut data, pd.high_watermark, pd.log_start_offset, broker.clock.wall_ms()).map(|_| ())
                }
                errors::OFFSET_OUT_OF_RANGE if pd.log_start_offset > fetch_offset => p.restart_at(f.leader_epoch, pd.log_start_offset),
                code => {
                    tracing::debug!(topic = %key.0, partition = key.1, code, leader = shared.leader, "follower fetch error");
                    failed.push(key.clone());
                    Ok(())
                }
            };
            if let Err(e) = result {
                if !matches!(e, PartitionError::NotFollower) {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot apply the leader's fetch answer");
                }
                failed.push(key);
            }
        }
    }
    if !failed.is_empty() {
        let until = broker.clock.monotonic_ms() + rc.fetch_backoff_ms;
        let mut parts = shared.partitions.lock().expect("fetcher partitions lock");
        for k in failed {
            if let Some(f) = parts.get_mut(&k) {
                f.backoff_until_ms = until;
            }
        }
    }
    // The next round reports these appends only once they are durable (`durable_fetch_position`).
    Ok(true)
}
