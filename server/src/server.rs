//! Starting and stopping a broker: open the data directory, listen, serve, shut down cleanly.
//!
//! Shutdown order (SIGINT/SIGTERM or [`Shutdown::trigger`]): stop accepting, stop reading new
//! requests, let every accepted request finish (bounded by [`SHUTDOWN_GRACE_MS`]), then close every
//! partition (fsync, index files, clean-shutdown marker).

use std::sync::Arc;
use std::time::Duration;

use gregor_core::clock::SharedClock;
use gregor_core::disk::SharedDisk;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::listener::{accept_loop, ConnectionLimits, ConnectionTracker, ListenerKind, Shutdown};

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// How long a broker waits at shutdown for the controller to move its leadership away.
const CONTROLLED_SHUTDOWN_MS: u64 = 5_000;

/// How long a resigning quorum leader waits for its EndQuorumEpoch requests to go out.
const RESIGN_GRACE_MS: u64 = 300;

/// How often the page-cache flush policy's `flush.ms` is checked.
const FLUSH_CHECK_MS: u64 = 100;

/// Runs a broker until `shutdown` is triggered. `ready` is called with the bound address once
/// the broker serves requests.
pub async fn run(
    config: BrokerConfig,
    disk: SharedDisk,
    clock: SharedClock,
    seed: u64,
    shutdown: Arc<Shutdown>,
    ready: impl FnOnce(&Broker, &str),
) -> anyhow::Result<()> {
    let limits = Arc::new(ConnectionLimits::new(&config));
    run_with_limits(config, disk, clock, seed, shutdown, limits, ready).await
}

/// [`run`] with the connection limits (and their gauges) supplied by the caller, so tests can
/// observe the bytes and connections held. `limits` should be built from the same `config`.
pub async fn run_with_limits(
    config: BrokerConfig,
    disk: SharedDisk,
    clock: SharedClock,
    seed: u64,
    shutdown: Arc<Shutdown>,
    limits: Arc<ConnectionLimits>,
    ready: impl FnOnce(&Broker, &str),
) -> anyhow::Result<()> {
    // Every data directory must belong to this cluster and node (meta.properties); the embedded
    // single-node quorum formats itself here on first start.
    let mut format_rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed ^ 0x6d65_7461_2e70_726f);
    crate::meta_properties::ensure_formatted(&config, disk.as_ref(), &mut format_rng)?;
    let broker = Broker::open(config, disk, clock, seed).await?;
    let listener = gregor_net::tcp::listen(&broker.config.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", broker.config.listen_addr))?;
    let local = listener.local_addr()?.to_string();
    ready(&broker, &local);

    // A node of a cluster leaves it in order before its listeners close (the quorum still needs
    // them): it gives up partition leadership (controlled shutdown), then quorum leadership.
    let outer = shutdown;
    let shutdown = Arc::new(Shutdown::default());
    {
        let (broker, outer, shutdown) = (broker.clone(), outer.clone(), shutdown.clone());
        tokio::spawn(async move {
            outer.wait().await;
            if !broker.is_embedded() {
                if broker.config.roles.broker {
                    crate::broker::lifecycle::controlled_shutdown(&broker, Duration::from_millis(CONTROLLED_SHUTDOWN_MS)).await;
                }
                if broker.config.roles.controller && broker.controller.quorum.status().leader_id == broker.config.node_id {
                    broker.controller.quorum.resign().await;
                    // Let EndQuorumEpoch reach the voters.
                    tokio::time::sleep(Duration::from_millis(RESIGN_GRACE_MS)).await;
                }
            }
            shutdown.trigger();
        });
    }

    // The Prometheus endpoint, if `metrics.listener` is set; serves until the listeners close.
    let metrics_endpoint = match &broker.config.metrics_listen_addr {
        Some(addr) => {
            let l = gregor_net::tcp::listen(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics.listener): {e}"))?;
            tracing::info!(addr = %l.local_addr()?, "metrics endpoint at http://{}{}", l.local_addr()?, crate::metrics::http::PATH);
            Some(tokio::spawn(crate::metrics::http::serve(broker.clone(), l, shutdown.clone())))
        }
        None => None,
    };

    let retention = {
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(broker.config.log_retention_check_interval_ms);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(period) => {
                        broker.apply_retention();
                        broker.expire_offsets().await;
                    }
                }
            }
        })
    };
    let flusher = {
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(FLUSH_CHECK_MS)) => broker.flush_on_interval(),
                }
            }
        })
    };
    // `replication-offset-checkpoint` every `replica.high.watermark.checkpoint.interval.ms`: a
    // crashed replica restarts from the high watermark it had then (close writes it again).
    let hw_checkpointer = {
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(broker.config.replication.hw_checkpoint_interval_ms);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(period) => broker.checkpoint_high_watermarks(),
                }
            }
        })
    };

    let cleaner = tokio::spawn(crate::broker::cleaner::run(broker.clone(), shutdown.clone()));
    let groups = tokio::spawn(crate::broker::groups::GroupService::run(broker.clone(), shutdown.clone()));
    let tracker = Arc::new(ConnectionTracker::default());
    // The controller listener serves the quorum and the brokers (only voters have one).
    // A controller-only node has no broker listener: its one listener is the controller's.
    let main_kind = if broker.config.roles.broker { ListenerKind::Client } else { ListenerKind::Controller };
    let controller_listener = match (&broker.config.controller_listen_addr, broker.config.roles.controller && broker.config.roles.broker) {
        (Some(addr), true) => {
            let l = gregor_net::tcp::listen(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (controller listener): {e}"))?;
            tracing::info!(addr = %l.local_addr()?, "controller listener");
            let (broker, shutdown, tracker, limits) = (broker.clone(), shutdown.clone(), tracker.clone(), limits.clone());
            Some(tokio::spawn(async move { accept_loop(broker, ListenerKind::Controller, l, shutdown, tracker, limits).await }))
        }
        _ => None,
    };
    accept_loop(broker.clone(), main_kind, listener, shutdown.clone(), tracker.clone(), limits).await;
    if let Some(c) = controller_listener {
        let _ = c.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
    broker.begin_shutdown();
    if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), tracker.wait_idle()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE_MS} ms");
    }
    let _ = retention.await;
    let _ = flusher.await;
    let _ = hw_checkpointer.await;
    let _ = groups.await;
    let _ = cleaner.await;
    if let Some(m) = metrics_endpoint {
        let _ = m.await;
    }
    broker.close();
    tracing::info!("shutdown complete");
    Ok(())
}
