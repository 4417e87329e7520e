//! Accepting connections and serving Kafka requests on them, within bounds shared by all
//! connections.
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
//!
//! # Request memory: `queued.max.request.bytes`
//!
//! Every request is charged to one budget shared by all connections ([`ConnectionLimits`]) from
//! the moment its size prefix has been read until its response has been produced (the response
//! body can hold slices of the request frame, so the frame's memory lives that long). The charge
//! is taken *before* any byte of the body is read or allocated, and it is the whole declared size
//! (bounded by `socket.request.max.bytes`, which the configuration requires to fit in the budget);
//! the buffer then grows as bytes arrive and never past the declared size. So the bytes held by
//! requests never exceed the budget. When the budget is spent, a connection that has read a size
//! prefix stops reading its socket until enough is released: this is Kafka's "stop reading from
//! sockets when the queued request bytes exceed the limit", applied per frame.
//!
//! Why the whole declared size up front, and why that cannot deadlock: a connection waits for
//! budget only while it holds none for a frame in progress, and a frame that has its charge can
//! always be read to the end. Charging chunk by chunk instead would let every connection hold part
//! of a frame while waiting for more, with nobody able to finish. What a waiting connection may
//! still hold are the charges of its earlier, complete requests; the writer releases them as their
//! responses are produced, independently of the reader. A response can depend on other clients'
//! requests (a JoinGroup on the rest of its group, a long poll on new data), but each such wait
//! ends by a timeout (rebalance timeout, `max_wait_ms`), and a frame being read ends within
//! `connections.max.idle.ms`, so every charge is eventually released. Waiters are
//! served first come, first served (the semaphore is fair), so a large frame is not starved by a
//! stream of small ones. A frame larger than the whole budget could never be served; it is
//! refused like an oversized frame (warning naming both sizes, connection closed).
//!
//! The cost of charging the declared size (Kafka's memory pool does the same): a peer can reserve
//! up to `socket.request.max.bytes` of budget with a four-byte prefix. It holds no memory for it,
//! and it cannot hold the reservation longer than `connections.max.idle.ms` (below); per-IP
//! limits bound how many such reservations one address can make.
//!
//! # Idle and slow connections: `connections.max.idle.ms`
//!
//! A connection is idle when no response is pending and it has not completed a request within
//! `connections.max.idle.ms`; it is then closed. The clock restarts when the connection is
//! accepted, when a request's last byte arrives, when its budget is granted (time spent waiting
//! for budget is the broker's backpressure, not the client's slowness) and when the last pending
//! response has been written. Bytes of an unfinished frame do *not* restart it: a client that
//! trickles a frame one byte a second is closed `connections.max.idle.ms` after its last complete
//! request, releasing its budget and its connection slot. A response whose bytes make no progress
//! into the socket for `connections.max.idle.ms` (a client that stops reading) also closes the
//! connection, since Kafka counts a connection without read or write activity as idle. A negative
//! value disables both, as in Kafka.
//!
//! # Connection counts: `max.connections`, `max.connections.per.ip(.overrides)`
//!
//! A new connection beyond `max.connections` in total, or beyond its address's per-IP limit (the
//! override for that address, else `max.connections.per.ip`), is closed right after accept.
//! Addresses are compared in canonical form (an IPv4-mapped IPv6 peer counts as its IPv4 address).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_net::codec::{decode_request, encode_response, encoded_response_body, DecodeError};
use gregor_net::schema::response_error_codes;
use gregor_net::frame::{FrameError, FrameReader};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::handlers::{self, Reply};
use crate::metrics::{ListenerLabel, Metrics, Stages};

/// Responses that may be pending on one connection.
pub const IN_FLIGHT_MAX: usize = 32;

/// Responses are written in pieces of this size, each of which must make progress within
/// `connections.max.idle.ms`.
const WRITE_PIECE_BYTES: usize = 1 << 20;

/// The limits every connection of a broker shares, and gauges of what connections hold.
///
/// Gauges: *queued* bytes are the declared sizes of requests charged to the budget (read, being
/// read, or awaiting their response); *buffered* bytes are what is actually allocated for them
/// (at most the queued bytes). Both never exceed `queued.max.request.bytes` when it is set.
pub struct ConnectionLimits {
    budget: Option<Arc<Semaphore>>,
    budget_bytes: Option<usize>,
    idle: Option<Duration>,
    per_ip_max: usize,
    per_ip_overrides: BTreeMap<core::net::IpAddr, usize>,
    per_ip: Mutex<BTreeMap<core::net::IpAddr, usize>>,
    queued_bytes: AtomicUsize,
    queued_bytes_peak: AtomicUsize,
    buffered_bytes: AtomicUsize,
    buffered_bytes_peak: AtomicUsize,
}

impl ConnectionLimits {
    pub fn new(config: &BrokerConfig) -> Self {
        // The semaphore cannot count past MAX_PERMITS; a budget that large is unbounded in practice.
        let budget_bytes = config.queued_max_request_bytes.map(|b| b.min(Semaphore::MAX_PERMITS));
        ConnectionLimits {
            budget: budget_bytes.map(|b| Arc::new(Semaphore::new(b))),
            budget_bytes,
            idle: u64::try_from(config.connections_max_idle_ms).ok().map(Duration::from_millis),
            per_ip_max: config.max_connections_per_ip,
            per_ip_overrides: config.max_connections_per_ip_overrides.clone(),
            per_ip: Mutex::new(BTreeMap::new()),
            queued_bytes: AtomicUsize::new(0),
            queued_bytes_peak: AtomicUsize::new(0),
            buffered_bytes: AtomicUsize::new(0),
            buffered_bytes_peak: AtomicUsize::new(0),
        }
    }

    /// Bytes of requests charged to the budget now.
    pub fn queued_request_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::SeqCst)
    }
    /// The most bytes ever charged at once.
    pub fn queued_request_bytes_peak(&self) -> usize {
        self.queued_bytes_peak.load(Ordering::SeqCst)
    }
    /// Bytes allocated for requests now.
    pub fn buffered_request_bytes(&self) -> usize {
        self.buffered_bytes.load(Ordering::SeqCst)
    }
    /// The most bytes ever allocated for requests at once.
    pub fn buffered_request_bytes_peak(&self) -> usize {
        self.buffered_bytes_peak.load(Ordering::SeqCst)
    }
    /// Open connections from `ip`.
    pub fn connections_from(&self, ip: core::net::IpAddr) -> usize {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner()).get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    fn per_ip_limit(&self, ip: &core::net::IpAddr) -> usize {
        self.per_ip_overrides.get(ip).copied().unwrap_or(self.per_ip_max)
    }

    /// Counts a new connection from `ip`, or refuses it when the address is at its limit.
    fn enter_ip(self: &Arc<Self>, ip: core::net::IpAddr) -> Result<IpSlot, usize> {
        let ip = ip.to_canonical();
        let limit = self.per_ip_limit(&ip);
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                counts.remove(&ip);
            }
            return Err(limit);
        }
        *n += 1;
        Ok(IpSlot { limits: self.clone(), ip })
    }
}

/// One connection counted against its address's limit until dropped.
struct IpSlot {
    limits: Arc<ConnectionLimits>,
    ip: core::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// One request's share of the budget, released when dropped (by the writer once the response is
/// produced, or by the reader when the connection closes mid-frame).
struct Charge {
    limits: Arc<ConnectionLimits>,
    queued: usize,
    buffered: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Charge {
    fn new(limits: Arc<ConnectionLimits>, queued: usize, permit: Option<OwnedSemaphorePermit>) -> Charge {
        let now = limits.queued_bytes.fetch_add(queued, Ordering::SeqCst) + queued;
        limits.queued_bytes_peak.fetch_max(now, Ordering::SeqCst);
        Charge { limits, queued, buffered: 0, _permit: permit }
    }

    fn set_buffered(&mut self, bytes: usize) {
        let l = &self.limits;
        if bytes > self.buffered {
            let now = l.buffered_bytes.fetch_add(bytes - self.buffered, Ordering::SeqCst) + (bytes - self.buffered);
            l.buffered_bytes_peak.fetch_max(now, Ordering::SeqCst);
        } else {
            l.buffered_bytes.fetch_sub(self.buffered - bytes, Ordering::SeqCst);
        }
        self.buffered = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.limits.queued_bytes.fetch_sub(self.queued, Ordering::SeqCst);
        self.limits.buffered_bytes.fetch_sub(self.buffered, Ordering::SeqCst);
    }
}

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
/// Which requests a listener serves: clients' (the broker listener), or the quorum's and the
/// brokers' (the controller listener, `controller.listener.names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Client,
    Controller,
}

pub async fn accept_loop(
    broker: Arc<Broker>,
    kind: ListenerKind,
    listener: TcpListener,
    shutdown: Arc<Shutdown>,
    tracker: Arc<ConnectionTracker>,
    limits: Arc<ConnectionLimits>,
) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    if kind == ListenerKind::Client {
        // As Kafka's brokers: clients are served once this broker has caught up with the
        // metadata log and been unfenced (at once for the embedded single node). Until then
        // connections wait in the listen backlog rather than see an empty cluster.
        tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            _ = broker.wait_serving() => {}
        }
    }
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
        let ip_slot = match limits.enter_ip(peer.ip()) {
            Ok(slot) => slot,
            Err(max) => {
                tracing::warn!(%peer, max, "max.connections.per.ip reached for this address; closing new connection");
                drop(stream);
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
        let counted = broker.metrics.connection_opened(match kind {
            ListenerKind::Client => ListenerLabel::Broker,
            ListenerKind::Controller => ListenerLabel::Controller,
        });
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            serve_connection(broker, kind, stream, shutdown, limits).await;
            drop(permit);
            drop(ip_slot);
            drop(counted);
            drop(guard);
        });
    }
}

/// A request accepted by the reader: its API key, version, correlation id, answer, the bytes it
/// holds, and when it was read and handled (for the request metrics; the writer fills in the
/// later stages).
type Pending = (ApiKey, i16, i32, Answer, Charge, Stages);

/// A handler's [`Reply`], with a delayed answer telling when it became ready.
enum Answer {
    Now(ResponseKind),
    /// The answer and the monotonic µs at which it was ready.
    Later(Pin<Box<dyn Future<Output = (ResponseKind, u64)> + Send>>),
    None,
}

impl Answer {
    fn timed(reply: Reply, metrics: &Arc<Metrics>) -> Answer {
        match reply {
            Reply::Now(b) => Answer::Now(b),
            Reply::None => Answer::None,
            Reply::Later(f) => {
                let metrics = metrics.clone();
                Answer::Later(Box::pin(async move {
                    let body = f.await;
                    (body, metrics.now_us())
                }))
            }
        }
    }
}

/// Responses accepted by the reader and not yet written, shared by a connection's two halves.
#[derive(Default)]
struct InFlight {
    pending: AtomicUsize,
    /// Signalled when the last pending response has been written (the idle clock restarts).
    drained: Notify,
}

impl InFlight {
    fn start(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }
    fn finish(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_one();
        }
    }
    fn is_empty(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

/// The `connections.max.idle.ms` clock of one connection (never fires when disabled).
struct IdleTimer {
    period: Option<Duration>,
    sleep: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl IdleTimer {
    fn new(period: Option<Duration>) -> Self {
        let mut t = IdleTimer { period, sleep: Box::pin(std::future::pending()) };
        t.restart();
        t
    }
    fn restart(&mut self) {
        if let Some(p) = self.period {
            self.sleep = Box::pin(tokio::time::sleep(p));
        }
    }
}

/// Why a connection's reader stopped waiting.
enum Stop {
    Shutdown,
    Idle,
    WriterGone,
}

/// Drives one cancel-safe read step until it completes, unless the broker shuts down, the
/// connection's writer has gone, or the connection is idle (see the module docs).
async fn step<T>(
    fut: impl Future<Output = T>,
    shutdown: &Shutdown,
    idle: &mut IdleTimer,
    in_flight: &InFlight,
    tx: &mpsc::Sender<Pending>,
) -> Result<T, Stop> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => return Err(Stop::Shutdown),
            v = &mut fut => return Ok(v),
            _ = tx.closed() => return Err(Stop::WriterGone),
            _ = in_flight.drained.notified() => idle.restart(),
            _ = idle.sleep.as_mut() => {
                if in_flight.is_empty() {
                    return Err(Stop::Idle);
                }
                // A response is pending: not idle. The clock restarts when it has been written.
                idle.restart();
            }
        }
    }
}

async fn serve_connection(broker: Arc<Broker>, kind: ListenerKind, stream: TcpStream, shutdown: Arc<Shutdown>, limits: Arc<ConnectionLimits>) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Pending>(IN_FLIGHT_MAX);
    let in_flight = Arc::new(InFlight::default());
    let writer = tokio::spawn(write_loop(wr, rx, in_flight.clone(), limits.idle, broker.metrics.clone()));
    let mut frames = FrameReader::new(broker.config.socket_request_max_bytes);
    let mut idle = IdleTimer::new(limits.idle);
    let stopped = |stop: Stop, partial: bool| match stop {
        Stop::Shutdown | Stop::WriterGone => {}
        Stop::Idle if partial => tracing::info!(
            %peer,
            idle_ms = broker.config.connections_max_idle_ms,
            "closing connection: request not completed within connections.max.idle.ms"
        ),
        Stop::Idle => tracing::debug!(%peer, idle_ms = broker.config.connections_max_idle_ms, "closing idle connection"),
    };
    loop {
        let size = match step(frames.read_size(&mut rd), &shutdown, &mut idle, &in_flight, &tx).await {
            Ok(Ok(Some(size))) => size,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                frame_error(&peer, &e);
                break;
            }
            Err(stop) => {
                stopped(stop, false);
                break;
            }
        };
        let permit = match (&limits.budget, limits.budget_bytes) {
            (Some(budget), Some(budget_bytes)) => {
                let Some(n) = u32::try_from(size).ok().filter(|_| size <= budget_bytes) else {
                    tracing::warn!(
                        %peer,
                        size,
                        queued_max_request_bytes = budget_bytes,
                        "closing connection: frame of {size} bytes exceeds queued.max.request.bytes ({budget_bytes}) and can never be read"
                    );
                    break;
                };
                // Backpressure: this socket is not read until the budget has room for the frame.
                let acquired = tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    p = budget.clone().acquire_many_owned(n) => p,
                };
                match acquired {
                    Ok(p) => Some(p),
                    Err(_) => break,
                }
            }
            _ => None,
        };
        let mut charge = Charge::new(limits.clone(), size, permit);
        idle.restart();
        let frame = loop {
            let r = step(frames.read_body_step(&mut rd), &shutdown, &mut idle, &in_flight, &tx).await;
            charge.set_buffered(match &r {
                Ok(Ok(Some(frame))) => frame.len(),
                _ => frames.buffer_capacity(),
            });
            match r {
                Ok(Ok(Some(frame))) => break Some(frame),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    frame_error(&peer, &e);
                    break None;
                }
                Err(stop) => {
                    stopped(stop, true);
                    break None;
                }
            }
        };
        let Some(frame) = frame else { break };
        idle.restart();
        let supported = match kind {
            ListenerKind::Client => handlers::supported,
            ListenerKind::Controller => crate::controller_listener::supported,
        };
        let req = match decode_request(frame, supported) {
            Ok(r) => r,
            Err(DecodeError::UnsupportedVersion { api_key: ApiKey::ApiVersions, correlation_id, .. }) => {
                let body = ResponseKind::ApiVersions(match kind {
                    ListenerKind::Client => handlers::unsupported_version_response(),
                    ListenerKind::Controller => crate::controller_listener::unsupported_version_response(),
                });
                in_flight.start();
                let now = broker.metrics.now_us();
                let stages = Stages { read: now, handled: now, ..Stages::default() };
                if tx.send((ApiKey::ApiVersions, 0, correlation_id, Answer::Now(body), charge, stages)).await.is_err() {
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
        let read = broker.metrics.now_us();
        let reply = match kind {
            ListenerKind::Client => handlers::dispatch(&broker, req, &peer).await,
            ListenerKind::Controller => crate::controller_listener::dispatch(&broker, req, &peer).await,
        };
        let Some(reply) = reply else {
            tracing::warn!(%peer, api = ?key, version, "closing connection: API not implemented");
            break;
        };
        let stages = Stages { read, handled: broker.metrics.now_us(), ..Stages::default() };
        let answer = Answer::timed(reply, &broker.metrics);
        in_flight.start();
        if tx.send((key, version, corr, answer, charge, stages)).await.is_err() {
            break;
        }
    }
    // Finish what was accepted: the writer drains every pending response, then closes.
    drop(tx);
    let _ = writer.await;
}

fn frame_error(peer: &str, e: &FrameError) {
    match e {
        FrameError::TooLarge { size, max } => tracing::warn!(
            %peer,
            size,
            socket_request_max_bytes = max,
            "closing connection: frame of {size} bytes exceeds socket.request.max.bytes ({max})"
        ),
        e => tracing::warn!(%peer, error = %e, "closing connection"),
    }
}

async fn write_loop(
    mut wr: tokio::io::WriteHalf<TcpStream>,
    mut rx: mpsc::Receiver<Pending>,
    in_flight: Arc<InFlight>,
    idle: Option<Duration>,
    metrics: Arc<Metrics>,
) {
    while let Some((key, version, corr, answer, charge, mut stages)) = rx.recv().await {
        let body = match answer {
            Answer::Now(b) => {
                stages.ready = stages.handled;
                b
            }
            Answer::Later(f) => {
                let (b, ready) = f.await;
                stages.ready = ready.max(stages.handled);
                b
            }
            Answer::None => {
                // acks=0: done once handled; nothing is written.
                stages.ready = stages.handled;
                stages.writing = stages.handled;
                stages.written = stages.handled;
                metrics.request_done(key as i16, &stages);
                drop(charge);
                in_flight.finish();
                continue;
            }
        };
        let encoded = encode_response(key, version, corr, &body);
        // The response body may hold slices of the request frame; once both are gone the
        // request's bytes are free, so the budget is released before the (possibly slow) write.
        drop(body);
        drop(charge);
        let bytes = match encoded {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(api = ?key, version, error = %e, "cannot encode response; closing connection");
                break;
            }
        };
        if let Some(stats) = metrics.request_stats(key as i16) {
            // Every error code the answer carries; the frame was just encoded from its schema's
            // types, so a walk that stops early would be a schema table missing a field.
            let walked = response_error_codes(key as i16, version, encoded_response_body(key, version, &bytes), &mut |code| stats.error(code));
            if let Err(refusal) = walked {
                tracing::debug!(api = ?key, version, %refusal, "response error codes not counted");
            }
        }
        stages.writing = metrics.now_us().max(stages.ready);
        if let Err(e) = write_response(&mut wr, &bytes, idle).await {
            tracing::debug!(error = %e, "closing connection: cannot write response");
            break;
        }
        stages.written = metrics.now_us().max(stages.writing);
        metrics.request_done(key as i16, &stages);
        in_flight.finish();
    }
    let _ = wr.shutdown().await;
}

/// Writes one response; each piece must make progress within `limit` (see the module docs).
async fn write_response(wr: &mut tokio::io::WriteHalf<TcpStream>, bytes: &[u8], limit: Option<Duration>) -> std::io::Result<()> {
    for piece in bytes.chunks(WRITE_PIECE_BYTES) {
        within(limit, wr.write_all(piece)).await?;
    }
    within(limit, wr.flush()).await
}

async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    match limit {
        None => fut.await,
        Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no progress writing a response within connections.max.idle.ms")
        })?,
    }
}
