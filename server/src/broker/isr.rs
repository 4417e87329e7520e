//! ISR management on a partition leader: every few hundred milliseconds the broker asks each
//! partition it leads whether its ISR should change ([`gregor_core::replica::leader`]: a
//! follower lagging past `replica.lag.time.max.ms` leaves, a caught-up replica joins) and sends
//! the changes to the active controller in one AlterPartition request (v3, with the broker
//! epochs of joining replicas), as Kafka's `AlterPartitionManager` does.
//!
//! A change stays in flight (and no other is proposed for that partition) until the metadata
//! image shows the controller's decision. A failed request drops it only when the answer proves
//! it was not applied; a lost or unanswered one is sent again, and one refused for stale state
//! waits for the metadata (see [`gregor_core::replica::leader::IsrFailure`]).

use std::sync::Weak;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, BrokerId};
use gregor_core::replica::leader::IsrFailure;
use uuid::Uuid;

use super::{forward, Broker, Partition};
use crate::controller::partitions::IsrChange;
use crate::errors;

/// Longest pause between two ISR checks.
const CHECK_INTERVAL_MS_MAX: u64 = 250;

/// One proposed change and the partition it is for.
struct Proposed {
    partition: std::sync::Arc<Partition>,
    change: IsrChange,
}

/// Runs the ISR checks until the broker is dropped or closes.
pub async fn run(weak: Weak<Broker>) {
    loop {
        let interval = {
            let Some(b) = weak.upgrade() else { return };
            (b.config.replication.lag_time_max_ms / 2).clamp(10, CHECK_INTERVAL_MS_MAX)
        };
        tokio::time::sleep(Duration::from_millis(interval)).await;
        let Some(b) = weak.upgrade().filter(|b| !b.is_closing()) else { return };
        let proposed = propose(&b);
        if !proposed.is_empty() {
            send(&b, proposed).await;
        }
    }
}

/// Collects the ISR changes the led partitions want, marking each as in flight.
fn propose(broker: &Broker) -> Vec<Proposed> {
    let image = broker.image();
    let now = broker.clock.monotonic_ms();
    let lag = broker.config.replication.lag_time_max_ms;
    let eligible = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
    let mut out = Vec::new();
    for p in broker.replicas.all() {
        let Some(topic_id) = image.topic_ids.get(&p.topic).copied() else { continue };
        let epoch = p.leader_epoch();
        let change = p.with_leadership(epoch, |l| {
            let want = l.wanted_isr(now, lag, eligible)?;
            l.propose_isr(&want);
            // KIP-903: each follower with the broker epoch its fetches carried, so the controller
            // refuses a replica whose broker restarted since (its catching up was another
            // incarnation's); the leader with its own.
            let me = broker.broker_epoch.load(std::sync::atomic::Ordering::SeqCst);
            let new_isr = want.iter().map(|id| (*id, if *id == l.me { me } else { l.follower(*id).map_or(-1, |f| f.broker_epoch) })).collect();
            Some(IsrChange { topic_id, partition: p.index, leader_epoch: l.leader_epoch, partition_epoch: l.partition_epoch, new_isr })
        });
        if let Some(Some(change)) = change {
            tracing::info!(topic = %p.topic, partition = p.index, isr = ?change.new_isr.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "proposing an ISR change");
            out.push(Proposed { partition: p, change });
        }
    }
    out
}

/// What an AlterPartition error says about the change (Kafka's `handleAlterPartitionError`).
fn failure(code: i16) -> IsrFailure {
    if gregor_core::bugs::active(gregor_core::bugs::Bug::ForgetPendingIsr) {
        // Only under the injected bug: every failure forgets the change.
        return IsrFailure::NotApplied;
    }
    match code {
        // Checked at the current partition epoch and refused.
        errors::INELIGIBLE_REPLICA | errors::INVALID_REQUEST => IsrFailure::NotApplied,
        // The controller knows newer partition, leader or broker state: the metadata will show it.
        errors::INVALID_UPDATE_VERSION
        | errors::FENCED_LEADER_EPOCH
        | errors::NOT_LEADER_OR_FOLLOWER
        | errors::UNKNOWN_TOPIC_OR_PARTITION
        | errors::UNKNOWN_TOPIC_ID
        | errors::STALE_BROKER_EPOCH => IsrFailure::AwaitMetadata,
        // Lost, timed out, no controller: perhaps applied; send it again.
        _ => IsrFailure::Retry,
    }
}

fn failed(p: &Proposed, code: i16) {
    tracing::info!(topic = %p.partition.topic, partition = p.partition.index, error = errors::name(code), "ISR change not made");
    p.partition.with_leadership(p.change.leader_epoch, |l| l.isr_change_failed(failure(code)));
}

async fn send(broker: &std::sync::Arc<Broker>, proposed: Vec<Proposed>) {
    let me = broker.config.node_id;
    let epoch = broker.broker_epoch.load(std::sync::atomic::Ordering::SeqCst);
    let changes: Vec<IsrChange> = proposed.iter().map(|p| p.change.clone()).collect();
    let mut results: Result<Vec<i16>, i16> = if broker.controls() {
        match broker.controller.alter_partition(broker, me, epoch, changes).await {
            Ok(rs) => Ok(rs.into_iter().map(|r| r.err().unwrap_or(errors::NONE)).collect()),
            Err(code) => Err(code),
        }
    } else {
        remote(broker, epoch, &changes).await
    };
    if results.is_ok() && gregor_core::probe::fault_point(gregor_core::probe::FaultPoint::AlterPartitionAnswer) {
        // Simulator only: the controller decided, but its answer is lost on the way.
        results = Err(errors::REQUEST_TIMED_OUT);
    }
    match results {
        Ok(codes) => {
            for (p, code) in proposed.iter().zip(codes) {
                if code != errors::NONE {
                    failed(p, code);
                }
            }
        }
        Err(code) => {
            for p in &proposed {
                failed(p, code);
            }
        }
    }
}

/// Sends the changes to the active controller's listener; one code per change, in order.
async fn remote(broker: &Broker, epoch: i64, changes: &[IsrChange]) -> Result<Vec<i16>, i16> {
    let mut client = forward::connect(broker).await.map_err(|e| {
        tracing::debug!(error = %e.message, "cannot reach the active controller for AlterPartition");
        e.code
    })?;
    let mut req = AlterPartitionRequest::default();
    req.broker_id = BrokerId(broker.config.node_id);
    req.broker_epoch = epoch;
    for c in changes {
        let id = Uuid::from_u128(c.topic_id);
        let mut p = PartitionData::default();
        p.partition_index = c.partition;
        p.leader_epoch = c.leader_epoch;
        p.partition_epoch = c.partition_epoch;
        p.new_isr_with_epochs = c
            .new_isr
            .iter()
            .map(|(b, e)| {
                let mut s = BrokerState::default();
                s.broker_id = BrokerId(*b);
                s.broker_epoch = *e;
                s
            })
            .collect();
        match req.topics.iter_mut().find(|t| t.topic_id == id) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = TopicData::default();
                t.topic_id = id;
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    let resp = client.send(&req).await.map_err(|e| {
        tracing::debug!(error = %e, "AlterPartition to the active controller failed");
        errors::NOT_CONTROLLER
    })?;
    if resp.error_code != errors::NONE {
        return Err(resp.error_code);
    }
    Ok(changes
        .iter()
        .map(|c| {
            let id = Uuid::from_u128(c.topic_id);
            resp.topics
                .iter()
                .find(|t| t.topic_id == id)
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == c.partition))
                .map_or(errors::UNKNOWN_SERVER_ERROR, |p| p.error_code)
        })
        .collect())
}
