//! Accepting connections and serving Kafka requests on them.
//!
//! Per connection: a reader decodes requests and runs handlers in order; a writer sends the
//! responses in the same order, awaiting any deferred part (durability waits, long polls).
//! At most [`IN_FLIGHT_MAX`] responses may be pending, which bounds memory per connection and
//! applies backpressure to a client that pipelines without reading.
//!
//! Bad input affects only its own connection: a frame above `socket.request.max.bytes` is refused
//! before allocation and the connection closed; an undecodable request, an unknown API or a
//! version we do not serve closes the connection (as Kafka does), except ApiVersions, which gets
//! the KIP-511 UNSUPPORTED_VERSION answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use gregor_net::codec::{decode_request, encode_response, DecodeError};
use gregor_net::frame::read_frame;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::broker::Broker;
use crate::handlers::{self, Reply};

/// Responses that may be pending on one connection.
pub const IN_FLIGHT_MAX: usize = 32;

/// A shutdown signal without `tokio::sync::watch` (which is not deterministic under madsim).
#[derive(Default)]
pub struct Shutdown {
    triggered: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }
    /// Resolves once `trigger` has been called (immediately if it already was).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// Counts live connections so shutdown can wait for in-flight requests to finish.
#[derive(Default)]
pub struct ConnectionTracker {
    live: AtomicUsize,
    idle: Notify,
}

impl ConnectionTracker {
    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(self.clone())
    }
    /// Waits until no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnectionGuard(Arc<ConnectionTracker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accepts connections until shutdown.
pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, shutdown: Arc<Shutdown>, tracker: Arc<ConnectionTracker>) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = broker.config.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = tracker.enter();
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(broker, stream, shutdown).await;
            drop(permit);
            drop(guard);
        });
    }
}

type Pending = (ApiKey, i16, i32, Reply);

async fn serve_connection(broker: Arc<Broker>, stream: TcpStream, shutdown: Arc<Shutdown>) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Pending>(IN_FLIGHT_MAX);
    let writer = tokio::spawn(write_loop(wr, rx));
    let max = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            f = read_frame(&mut rd, max) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let req = match decode_request(frame, handlers::supported) {
            Ok(r) => r,
            Err(DecodeError::UnsupportedVersion { api_key: ApiKey::ApiVersions, correlation_id, .. }) => {
                let body = ResponseKind::ApiVersions(handlers::unsupported_version_response());
                if tx.send((ApiKey::ApiVersions, 0, correlation_id, Reply::Now(body))).await.is_err() {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection after a request it cannot serve");
                break;
            }
        };
        let (key, version, corr) = (req.api_key, req.header.request_api_version, req.header.correlation_id);
        let Some(reply) = handlers::dispatch(&broker, req, &peer).await else {
            tracing::warn!(%peer, api = ?key, version, "closing connection: API not implemented");
            break;
        };
        if tx.send((key, version, corr, reply)).await.is_err() {
            break;
        }
    }
    // Finish what was accepted: the writer drains every pending response, then closes.
    drop(tx);
    let _ = writer.await;
}

async fn write_loop(mut wr: tokio::io::WriteHalf<TcpStream>, mut rx: mpsc::Receiver<Pending>) {
    while let Some((key, version, corr, reply)) = rx.recv().await {
        let body = match reply {
            Reply::Now(b) => b,
            Reply::Later(f) => f.await,
            Reply::None => continue,
        };
        let bytes = match encode_response(key, version, corr, &body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(api = ?key, version, error = %e, "cannot encode response; closing connection");
                break;
            }
        };
        if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}
