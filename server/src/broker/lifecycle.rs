//! The broker's side of its lifecycle in a cluster: register with the active controller, then
//! heartbeat every `broker.heartbeat.interval.ms`, re-registering when the controller no longer
//! knows this incarnation; and, on the active controller, fence brokers whose sessions expire.
//!
//! The active controller is the quorum leader. When that is this node, requests go to the
//! local controller directly; otherwise over the leader's controller listener, as Kafka's
//! BrokerLifecycleManager does. Failures are retried after `controller.quorum.retry.backoff.ms`
//! (at least 100 ms): a cluster whose controllers are down keeps its brokers retrying, never
//! failing.

use std::sync::Arc;
use std::time::Duration;

use gregor_core::metadata::Endpoint;
use gregor_net::client::Client;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use rand::{Rng, SeedableRng};

use super::Broker;
use crate::controller::brokers::{HeartbeatAnswer, Registration};
use crate::errors;

/// How often the active controller looks for expired broker sessions.
const FENCE_CHECK_MS: u64 = 500;

/// This broker's client endpoints as registered.
pub fn endpoints(broker: &Broker) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: broker.config.advertised_host.clone(),
        port: u16::try_from(broker.config.advertised_port).unwrap_or(0),
        security_protocol: 0,
    }]
}

/// A connection to the active controller's listener, kept while it stays the leader.
struct ControllerLink {
    leader: i32,
    client: Client,
}

async fn link(broker: &Broker, current: &mut Option<ControllerLink>) -> Result<(), String> {
    let leader = broker.controller.quorum.status().leader_id;
    if leader < 0 {
        return Err("no active controller known".into());
    }
    if current.as_ref().is_some_and(|l| l.leader == leader) {
        return Ok(());
    }
    let voter = broker.config.voters.iter().find(|v| v.id == leader).ok_or_else(|| format!("active controller {leader} is not a configured voter"))?;
    let mut client = Client::connect(&voter.addr(), &format!("gregor-broker-{}", broker.config.node_id)).await.map_err(|e| e.to_string())?;
    // Bounded as Kafka's broker-to-controller channel is: a request to a controller that went
    // silent (partitioned, paused, or no longer the leader) must fail in time for the next
    // heartbeat to reach the new active controller before it fences this broker.
    client.set_timeout(Duration::from_millis(broker.config.quorum_request_timeout_ms.max(1)));
    *current = Some(ControllerLink { leader, client });
    Ok(())
}

async fn register(broker: &Arc<Broker>, reg: &Registration, link_slot: &mut Option<ControllerLink>) -> Result<i64, String> {
    let me = broker.config.node_id;
    if broker.controller.quorum.status().leader_id == me && broker.config.roles.controller {
        return broker.controller.register_broker(broker, reg.clone()).await.map_err(|c| format!("error {c}"));
    }
    link(broker, link_slot).await?;
    let mut req = BrokerRegistrationRequest::default();
    req.broker_id = BrokerId(reg.broker_id);
    req.cluster_id = StrBytes::from_string(reg.cluster_id.clone());
    req.incarnation_id = uuid::Uuid::from_u128(reg.incarnation_id);
    req.listeners = reg
        .endpoints
        .iter()
        .map(|e| {
            let mut l = Listener::default();
            l.name = StrBytes::from_string(e.name.clone());
            l.host = StrBytes::from_string(e.host.clone());
            l.port = e.port;
            l.security_protocol = e.security_protocol;
            l
        })
        .collect();
    req.rack = reg.rack.clone().map(StrBytes::from_string);
    req.previous_broker_epoch = reg.previous_broker_epoch;
    let client = &mut link_slot.as_mut().expect("linked").client;
    match client.send(&req).await {
        Ok(r) if r.error_code == errors::NONE => Ok(r.broker_epoch),
        Ok(r) => Err(format!("registration refused with error {}", r.error_code)),
        Err(e) => {
            *link_slot = None;
            Err(e.to_string())
        }
    }
}

async fn heartbeat(broker: &Arc<Broker>, epoch: i64, want_shut_down: bool, link_slot: &mut Option<ControllerLink>) -> Result<HeartbeatAnswer, Result<i16, String>> {
    let me = broker.config.node_id;
    let offset = broker.image().offset;
    if broker.controller.quorum.status().leader_id == me && broker.config.roles.controller {
        return broker.controller.heartbeat(broker, me, epoch, offset, want_shut_down).await.map_err(Ok);
    }
    link(broker, link_slot).await.map_err(Err)?;
    let mut req = BrokerHeartbeatRequest::default();
    req.broker_id = BrokerId(me);
    req.broker_epoch = epoch;
    req.current_metadata_offset = offset;
    req.want_shut_down = want_shut_down;
    let client = &mut link_slot.as_mut().expect("linked").client;
    match client.send(&req).await {
        Ok(r) if r.error_code == errors::NONE => Ok(HeartbeatAnswer { is_caught_up: r.is_caught_up, is_fenced: r.is_fenced, should_shut_down: r.should_shut_down }),
        Ok(r) => Err(Ok(r.error_code)),
        Err(e) => {
            *link_slot = None;
            Err(Err(e.to_string()))
        }
    }
}

/// Registers this broker and keeps its session alive until the broker is dropped.
pub async fn run(broker: Arc<Broker>) {
    let weak = Arc::downgrade(&broker);
    drop(broker);
    let mut rng = {
        let Some(b) = weak.upgrade() else { return };
        rand::rngs::SmallRng::seed_from_u64(b.clock.wall_ms() as u64 ^ (b.config.node_id as u64) << 32)
    };
    let mut link_slot = None;
    'register: loop {
        let (reg, backoff, interval) = {
            let Some(b) = weak.upgrade() else { return };
            let reg = Registration {
                broker_id: b.config.node_id,
                cluster_id: b.cluster_id.clone(),
                incarnation_id: rng.random::<u128>() | 1,
                endpoints: endpoints(&b),
                rack: b.config.rack.clone(),
                // This process's own session, else the one before it if it ended cleanly.
                previous_broker_epoch: Some(b.broker_epoch.load(std::sync::atomic::Ordering::SeqCst)).filter(|e| *e >= 0).unwrap_or(b.previous_broker_epoch),
            };
            let backoff = Duration::from_millis(b.config.quorum_retry_backoff_ms.max(100));
            (reg, backoff, Duration::from_millis(b.config.broker_heartbeat_interval_ms.max(10)))
        };
        let epoch = loop {
            let Some(b) = weak.upgrade().filter(|b| !b.is_closing() && !b.leaving.load(std::sync::atomic::Ordering::SeqCst)) else { return };
            match register(&b, &reg, &mut link_slot).await {
                Ok(epoch) => break epoch,
                Err(e) => tracing::debug!(error = %e, "broker registration failed; retrying"),
            }
            drop(b);
            tokio::time::sleep(backoff).await;
        };
        tracing::info!(epoch, "registered with the active controller");
        if let Some(b) = weak.upgrade() {
            b.broker_epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
        }
        let mut fenced = true;
        loop {
            tokio::time::sleep(if fenced { backoff } else { interval }).await;
            let Some(b) = weak.upgrade().filter(|b| !b.is_closing() && !b.leaving.load(std::sync::atomic::Ordering::SeqCst)) else { return };
            match heartbeat(&b, epoch, false, &mut link_slot).await {
                Ok(a) => {
                    if fenced && !a.is_fenced {
                        tracing::info!("broker unfenced: serving as a cluster member");
                        b.start_serving();
                    }
                    fenced = a.is_fenced;
                }
                Err(Ok(code)) if code == errors::STALE_BROKER_EPOCH || code == errors::BROKER_ID_NOT_REGISTERED => {
                    tracing::warn!(code, "the controller no longer knows this broker's session; registering again");
                    continue 'register;
                }
                Err(e) => tracing::debug!(error = ?e, "heartbeat failed; retrying"),
            }
        }
    }
}

/// Controlled shutdown (as Kafka's): asks the active controller to fence this broker, moving
/// leadership away before the process stops, and waits (up to `timeout`) for its answer that the
/// broker may shut down.
pub async fn controlled_shutdown(broker: &Arc<Broker>, timeout: Duration) {
    broker.leaving.store(true, std::sync::atomic::Ordering::SeqCst);
    let epoch = broker.broker_epoch.load(std::sync::atomic::Ordering::SeqCst);
    if epoch < 0 {
        return;
    }
    let deadline = broker.clock.monotonic_ms() + timeout.as_millis() as u64;
    let mut link_slot = None;
    while broker.clock.monotonic_ms() < deadline {
        match heartbeat(broker, epoch, true, &mut link_slot).await {
            Ok(a) if a.should_shut_down => {
                tracing::info!("controlled shutdown: the controller moved leadership away");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = ?e, "controlled shutdown heartbeat failed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("controlled shutdown not confirmed by the controller; stopping anyway");
}

/// Runs `action` every `period` while the broker is open (the controller's periodic duties;
/// each does nothing unless this node is the active controller).
async fn every<F, Fut>(weak: std::sync::Weak<Broker>, period: Duration, action: F)
where
    F: Fn(Arc<Broker>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::time::sleep(period).await;
        let Some(b) = weak.upgrade() else { return };
        if b.is_closing() {
            return;
        }
        action(b).await;
    }
}

/// On voters: fence expired sessions whenever this node is the active controller.
pub async fn fence_expired_sessions(weak: std::sync::Weak<Broker>) {
    every(weak, Duration::from_millis(FENCE_CHECK_MS), |b| async move { b.controller.fence_expired(&b).await }).await
}

/// On voters with `auto.leader.rebalance.enable`: every `leader.imbalance.check.interval.seconds`,
/// move leadership back to preferred replicas whenever this node is the active controller.
pub async fn balance_leaders(weak: std::sync::Weak<Broker>, period_ms: u64) {
    every(weak, Duration::from_millis(period_ms), |b| async move { b.controller.balance_leaders(&b).await }).await
}

/// On voters: every `unclean.leader.election.interval.ms`, elect leaders for leaderless
/// partitions of topics that allow unclean elections whenever this node is the active
/// controller (a topic switched to `unclean.leader.election.enable=true` after it lost its
/// leader gets one within an interval).
pub async fn elect_unclean_leaders(weak: std::sync::Weak<Broker>, period_ms: u64) {
    every(weak, Duration::from_millis(period_ms), |b| async move { b.controller.elect_unclean_leaders(&b).await }).await
}
