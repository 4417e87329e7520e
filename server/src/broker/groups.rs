//! Drives the sans-IO group coordinator (`gregor_core::group::Coordinator`) from async handlers.
//!
//! Requests that must wait (JoinGroup until the rebalance completes, SyncGroup until the leader
//! assigns) register a token with a one-shot channel; the coordinator answers through effects,
//! from the same call or a later one, or from the timer task that calls `tick` at the
//! coordinator's next deadline. Persist effects go through one ordered queue to
//! `__consumer_offsets`, so a group's metadata records are written in the order they happened.
//!
//! A SyncGroup answer is held back while its group has a metadata write in flight, and fails
//! with that write's error if it fails (the coordinator then rebalances, as Kafka does): an
//! assignment is never handed out for a generation that is not durable, so a coordinator that
//! restarts can never hand the same generation to different members.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_core::group::{Coordinator, Effect, GroupConfig, GroupSnapshot, JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use tokio::sync::{mpsc, oneshot, Notify};

use super::Broker;
use crate::listener::Shutdown;

/// Group metadata writes that may queue up before the writer catches up.
const PERSIST_QUEUE_MAX: usize = 1024;
/// Longest sleep of the timer task when nothing is scheduled.
const IDLE_TICK_MS: u64 = 1000;

enum Waiter {
    Join(oneshot::Sender<JoinResponse>),
    Sync(oneshot::Sender<SyncResponse>, String),
}

/// A group's metadata writes in flight and the SyncGroup answers waiting for them.
#[derive(Default)]
struct InFlight {
    writes: usize,
    failed: Option<i16>,
    held: Vec<(oneshot::Sender<SyncResponse>, SyncResponse)>,
}

/// The coordinator plus the plumbing to wait for its answers.
pub struct GroupService {
    coordinator: Mutex<Coordinator>,
    waiters: Mutex<BTreeMap<u64, Waiter>>,
    next_token: AtomicU64,
    /// Wakes the timer task when a new deadline may be earlier than the one it sleeps for.
    rearm: Notify,
    persist_tx: mpsc::Sender<(String, GroupSnapshot)>,
    persist_rx: Mutex<Option<mpsc::Receiver<(String, GroupSnapshot)>>>,
    in_flight: Mutex<BTreeMap<String, InFlight>>,
}

impl GroupService {
    pub fn new(config: GroupConfig) -> GroupService {
        let (persist_tx, persist_rx) = mpsc::channel(PERSIST_QUEUE_MAX);
        GroupService {
            coordinator: Mutex::new(Coordinator::new(config)),
            waiters: Mutex::new(BTreeMap::new()),
            next_token: AtomicU64::new(1),
            rearm: Notify::new(),
            persist_tx,
            persist_rx: Mutex::new(Some(persist_rx)),
            in_flight: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs `f` on the coordinator and dispatches the effects it emits.
    pub fn with<T>(&self, f: impl FnOnce(&mut Coordinator) -> (T, Vec<Effect>)) -> T {
        let (out, effects) = {
            let mut c = self.coordinator.lock().expect("coordinator lock");
            f(&mut c)
        };
        self.dispatch(effects);
        self.rearm.notify_one();
        out
    }

    fn dispatch(&self, effects: Vec<Effect>) {
        // Writes first: a SyncGroup answer emitted with the write of its generation must wait.
        for e in &effects {
            if let Effect::Persist { group_id, snapshot } = e {
                if self.persist_tx.try_send((group_id.clone(), snapshot.clone())).is_err() {
                    tracing::error!(group = %group_id, "group metadata queue full; metadata not persisted");
                    continue;
                }
                self.in_flight.lock().expect("in-flight lock").entry(group_id.clone()).or_default().writes += 1;
            }
        }
        for e in effects {
            match e {
                Effect::Join { token, response } => {
                    if let Some(Waiter::Join(tx)) = self.waiters.lock().expect("waiters lock").remove(&token) {
                        let _ = tx.send(response);
                    }
                }
                Effect::Sync { token, response } => {
                    if let Some(Waiter::Sync(tx, group)) = self.waiters.lock().expect("waiters lock").remove(&token) {
                        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
                        match in_flight.get_mut(&group) {
                            Some(f) if f.writes > 0 => f.held.push((tx, response)),
                            _ => {
                                let _ = tx.send(response);
                            }
                        }
                    }
                }
                Effect::Persist { .. } => {}
            }
        }
    }

    /// A metadata write of `group` finished: once none is left in flight, release the held
    /// SyncGroup answers, or fail them and rebalance if any write failed.
    fn persisted(&self, now_ms: i64, group: &str, result: Result<(), i16>) {
        let done = {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let Some(f) = in_flight.get_mut(group) else { return };
            f.writes = f.writes.saturating_sub(1);
            if let Err(code) = result {
                f.failed = Some(code);
            }
            if f.writes > 0 {
                return;
            }
            in_flight.remove(group)
        };
        let Some(done) = done else { return };
        for (tx, response) in done.held {
            let _ = tx.send(match done.failed {
                Some(code) => SyncResponse::error(code),
                None => response,
            });
        }
        if done.failed.is_some() {
            self.with(|c| ((), c.persist_failed(now_ms, group)));
        }
    }

    /// JoinGroup: resolves when the coordinator answers.
    pub async fn join(&self, now_ms: i64, req: JoinRequest) -> JoinResponse {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters lock").insert(token, Waiter::Join(tx));
        let member = req.member_id.clone();
        self.with(|c| ((), c.join(now_ms, token, req)));
        rx.await.unwrap_or_else(|_| JoinResponse::error(&member, crate::errors::COORDINATOR_NOT_AVAILABLE))
    }

    /// SyncGroup: resolves when the coordinator answers.
    pub async fn sync(&self, now_ms: i64, req: SyncRequest) -> SyncResponse {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters lock").insert(token, Waiter::Sync(tx, req.group_id.clone()));
        self.with(|c| ((), c.sync(now_ms, token, req)));
        rx.await.unwrap_or_else(|_| SyncResponse::error(crate::errors::COORDINATOR_NOT_AVAILABLE))
    }

    /// Restores groups from their persisted metadata (their offsets partition was loaded).
    /// `member_id_epoch` makes member ids issued by this process differ from those of earlier
    /// runs.
    pub fn load(&self, now_ms: i64, member_id_epoch: i64, stored: BTreeMap<String, bytes::Bytes>) -> usize {
        self.with(|c| {
            c.set_member_id_epoch(member_id_epoch);
            ((), Vec::new())
        });
        let mut n = 0;
        for (group, value) in stored {
            match GroupSnapshot::decode(&value) {
                Ok(s) => {
                    self.with(|c| ((), c.load(now_ms, &group, s)));
                    n += 1;
                }
                Err(e) => tracing::warn!(group = %group, error = ?e, "ignoring unreadable group metadata"),
            }
        }
        n
    }

    /// The timer (tick at the coordinator's deadlines) and the metadata writer. Run once per broker.
    pub async fn run(broker: Arc<Broker>, shutdown: Arc<Shutdown>) {
        let Some(mut rx) = broker.groups.persist_rx.lock().expect("persist rx lock").take() else { return };
        let writer = {
            let broker = broker.clone();
            tokio::spawn(async move {
                while let Some((group, snapshot)) = rx.recv().await {
                    let result = broker.store_group_metadata(&group, Some(snapshot.encode())).await;
                    if let Err(code) = result {
                        tracing::warn!(group = %group, code, "cannot persist group metadata; rebalancing");
                    }
                    broker.groups.persisted(broker.clock.monotonic_ms() as i64, &group, result);
                }
            })
        };
        loop {
            let now = broker.clock.monotonic_ms() as i64;
            let next = broker.groups.coordinator.lock().expect("coordinator lock").next_deadline();
            let sleep_ms = match next {
                Some(d) if d <= now => 0,
                Some(d) => ((d - now) as u64).min(IDLE_TICK_MS),
                None => IDLE_TICK_MS,
            };
            if sleep_ms > 0 {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    _ = broker.groups.rearm.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                }
            }
            let now = broker.clock.monotonic_ms() as i64;
            broker.groups.with(|c| ((), c.tick(now)));
        }
        writer.abort();
    }
}
