//! Limits across connections, against a real broker on a loopback port: the request-byte budget
//! (`queued.max.request.bytes`) bounds what partial frames hold and applies backpressure, idle and
//! slow-loris connections are closed after `connections.max.idle.ms`, and
//! `max.connections.per.ip(.overrides)` refuse connections beyond the limit.
//!
//! Every wait is bounded (a few seconds), so a broken limit fails the test instead of hanging it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor_core::clock::SystemClock;
use gregor_server::config::BrokerConfig;
use gregor_server::listener::{ConnectionLimits, Shutdown};
use gregor_storage::{FaultConfig, MemDisk};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;
const LOCALHOST: core::net::IpAddr = core::net::IpAddr::V4(core::net::Ipv4Addr::LOCALHOST);

struct TestBroker {
    addr: String,
    limits: Arc<ConnectionLimits>,
    shutdown: Arc<Shutdown>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestBroker {
    async fn start(settings: &[(&str, &str)]) -> TestBroker {
        let mut all = vec![("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string()), ("log.dirs".into(), "/data".into())];
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = BrokerConfig::from_settings(&all).unwrap();
        let limits = Arc::new(ConnectionLimits::new(&config));
        let shutdown = Arc::new(Shutdown::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(gregor_server::server::run_with_limits(
            config,
            Arc::new(MemDisk::new(7, FaultConfig::default())),
            Arc::new(SystemClock::new()),
            7,
            shutdown.clone(),
            limits.clone(),
            move |_, addr| {
                let _ = tx.send(addr.to_string());
            },
        ));
        let addr = tokio::time::timeout(Duration::from_secs(10), rx).await.expect("broker starts").expect("broker ready");
        TestBroker { addr, limits, shutdown, task }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.addr).await.unwrap()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(15), self.task).await.expect("broker stops").unwrap().unwrap();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An ApiVersions v0 request frame (header v1, no client id).
fn api_versions_request(correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Sends ApiVersions and waits up to `wait` for its answer: `Ok(true)` answered, `Ok(false)` not
/// within `wait`, `Err` the connection was closed.
async fn api_versions(stream: &mut TcpStream, correlation_id: i32, wait: Duration) -> Result<bool, String> {
    stream.write_all(&api_versions_request(correlation_id)).await.map_err(|e| e.to_string())?;
    read_response(stream, correlation_id, wait).await
}

async fn read_response(stream: &mut TcpStream, correlation_id: i32, wait: Duration) -> Result<bool, String> {
    let mut size = [0u8; 4];
    match tokio::time::timeout(wait, stream.read_exact(&mut size)).await {
        Err(_) => return Ok(false),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    assert_eq!(i32::from_be_bytes(body[..4].try_into().unwrap()), correlation_id);
    assert_eq!(i16::from_be_bytes(body[4..6].try_into().unwrap()), 0, "ApiVersions error code");
    Ok(true)
}

/// Waits up to `wait` for the broker to close `stream`; returns how long that took.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(wait.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Polls `cond` every 10 ms for up to `wait`.
async fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < wait {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Opens `n` connections that each announce a `declared`-byte frame and send `sent` bytes of it,
/// then keep the connection open (until the task is aborted).
async fn partial_frames(b: &TestBroker, n: usize, declared: usize, sent: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut s = b.connect().await;
        tasks.push(tokio::spawn(async move {
            let _ = s.write_all(&(declared as i32).to_be_bytes()).await;
            // Writes to a connection the broker is not reading block once the socket buffers are
            // full: that is the backpressure under test.
            let _ = s.write_all(&vec![0u8; sent]).await;
            std::future::pending::<()>().await;
        }));
    }
    tasks
}

#[test]
fn request_budget_bounds_partial_frames_and_frees_for_new_requests() {
    rt().block_on(async {
        let budget = 8 * MIB;
        let b = TestBroker::start(&[("queued.max.request.bytes", "8388608"), ("socket.request.max.bytes", "4194304")]).await;
        // Ten connections each hold 3 MiB of an unfinished 4 MiB frame: 40 MiB declared, 30 MiB sent.
        let tasks = partial_frames(&b, 10, 4 * MIB, 3 * MIB).await;
        assert!(eventually(Duration::from_secs(5), || b.limits.connections_from(LOCALHOST) == 10).await, "all ten accepted");
        assert!(
            eventually(Duration::from_secs(5), || b.limits.queued_request_bytes() == budget
                && b.limits.buffered_request_bytes() >= 6 * MIB)
            .await,
            "two frames admitted and read: queued {} buffered {}",
            b.limits.queued_request_bytes(),
            b.limits.buffered_request_bytes()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(b.limits.queued_request_bytes_peak() <= budget, "queued peak {}", b.limits.queued_request_bytes_peak());
        assert!(b.limits.buffered_request_bytes_peak() <= budget, "buffered peak {}", b.limits.buffered_request_bytes_peak());

        // The budget is spent: a request on a fresh connection waits (its socket is not read)...
        let mut fresh = b.connect().await;
        assert_eq!(api_versions(&mut fresh, 1, Duration::from_millis(500)).await, Ok(false), "served past a spent budget");
        // ...and is served once the partial frames go away and release their budget.
        for t in &tasks {
            t.abort();
        }
        assert_eq!(read_response(&mut fresh, 1, Duration::from_secs(5)).await, Ok(true), "served after the budget freed");
        assert!(eventually(Duration::from_secs(5), || b.limits.queued_request_bytes() == 0 && b.limits.buffered_request_bytes() == 0).await);
        assert!(b.limits.buffered_request_bytes_peak() <= budget, "buffered peak {}", b.limits.buffered_request_bytes_peak());
        b.stop().await;
    });
}

/// The control for the test above: with the budget off (`-1`, Kafka's unbounded), the same
/// connections hold far more than 8 MiB, so the gauge does measure what partial frames hold.
#[test]
fn without_a_budget_partial_frames_hold_everything_they_sent() {
    rt().block_on(async {
        let b = TestBroker::start(&[("queued.max.request.bytes", "-1"), ("socket.request.max.bytes", "4194304")]).await;
        let tasks = partial_frames(&b, 10, 4 * MIB, 3 * MIB).await;
        assert!(
            eventually(Duration::from_secs(5), || b.limits.buffered_request_bytes() >= 30 * MIB).await,
            "buffered {}",
            b.limits.buffered_request_bytes()
        );
        assert!(b.limits.buffered_request_bytes() <= 40 * MIB, "never past the declared sizes");
        for t in &tasks {
            t.abort();
        }
        b.stop().await;
    });
}

/// A frame larger than the whole budget can never be read: it is refused, not waited for.
#[test]
fn frame_larger_than_the_budget_is_refused() {
    rt().block_on(async {
        // The configuration refuses a budget below socket.request.max.bytes (as Kafka does)...
        let e = BrokerConfig::from_settings(&[("queued.max.request.bytes".into(), "1000".into())]).unwrap_err();
        assert!(e.to_string().contains("queued.max.request.bytes"), "{e}");
        // ...so an oversized frame is refused by socket.request.max.bytes before any budget is taken.
        let b = TestBroker::start(&[("queued.max.request.bytes", "2097152"), ("socket.request.max.bytes", "1048576")]).await;
        let mut s = b.connect().await;
        s.write_all(&(2 * MIB as i32).to_be_bytes()).await.unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(3)).await.is_some(), "oversized frame not refused");
        assert_eq!(b.limits.queued_request_bytes_peak(), 0);
        let mut ok = b.connect().await;
        assert_eq!(api_versions(&mut ok, 2, Duration::from_secs(3)).await, Ok(true));
        b.stop().await;
    });
}

#[test]
fn idle_connection_is_closed_and_an_active_one_is_not() {
    rt().block_on(async {
        let b = TestBroker::start(&[("connections.max.idle.ms", "300")]).await;
        let mut silent = b.connect().await;
        let mut active = b.connect().await;
        let silent_closed = tokio::spawn(async move {
            let start = Instant::now();
            closed_within(&mut silent, Duration::from_secs(3)).await.map(|_| start.elapsed())
        });
        // One request every 100 ms for a second: well past the idle time, but never idle.
        for corr in 0..10 {
            assert_eq!(api_versions(&mut active, corr, Duration::from_secs(3)).await, Ok(true), "active connection closed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed_after = silent_closed.await.unwrap().expect("idle connection not closed");
        assert!(closed_after >= Duration::from_millis(250) && closed_after < Duration::from_secs(2), "closed after {closed_after:?}");
        // The silent one is gone and counted out; the active one still works.
        assert!(eventually(Duration::from_secs(2), || b.limits.connections_from(LOCALHOST) == 1).await);
        assert_eq!(api_versions(&mut active, 99, Duration::from_secs(3)).await, Ok(true));

        // Not closed before the idle time: a fresh connection survives 150 ms of silence.
        let mut fresh = b.connect().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(api_versions(&mut fresh, 100, Duration::from_secs(3)).await, Ok(true));
        b.stop().await;
    });
}

#[test]
fn slow_loris_is_closed_and_releases_its_budget() {
    rt().block_on(async {
        let b = TestBroker::start(&[("connections.max.idle.ms", "500")]).await;
        let s = b.connect().await;
        let (mut rd, mut wr) = s.into_split();
        // Announce a 1000-byte frame, then trickle one byte every 20 ms (it would take 20 s).
        let trickle = tokio::spawn(async move {
            let _ = wr.write_all(&1000i32.to_be_bytes()).await;
            for _ in 0..1000 {
                if wr.write_all(&[0]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(eventually(Duration::from_secs(2), || b.limits.queued_request_bytes() == 1000).await, "frame charged");
        let start = Instant::now();
        let mut buf = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(3), rd.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "slow-loris connection not closed: {closed:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(eventually(Duration::from_secs(2), || b.limits.queued_request_bytes() == 0
            && b.limits.connections_from(LOCALHOST) == 0)
        .await);
        trickle.abort();
        b.stop().await;
    });
}

/// A client that pipelines requests and never reads the responses: once the socket buffers are
/// full the responses make no progress, and the connection is closed after the idle time
/// instead of holding its slot (and the requests queued behind the stalled write) forever.
#[test]
fn connection_whose_responses_stall_is_closed() {
    rt().block_on(async {
        let b = TestBroker::start(&[("connections.max.idle.ms", "500")]).await;
        let s = b.connect().await;
        let (_rd, mut wr) = s.into_split();
        let flood = tokio::spawn(async move {
            let mut batch = Vec::new();
            for corr in 0..1000 {
                batch.extend_from_slice(&api_versions_request(corr));
            }
            // About 14 MB of responses would come back: far more than loopback buffers hold.
            for _ in 0..100 {
                if wr.write_all(&batch).await.is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await;
        });
        assert!(eventually(Duration::from_secs(2), || b.limits.connections_from(LOCALHOST) == 1).await);
        assert!(
            eventually(Duration::from_secs(5), || b.limits.connections_from(LOCALHOST) == 0).await,
            "a connection whose responses cannot be written is never closed"
        );
        assert_eq!(b.limits.queued_request_bytes(), 0, "its queued requests released their budget");
        flood.abort();
        b.stop().await;
    });
}

#[test]
fn per_ip_limit_refuses_the_next_connection_and_an_override_raises_it() {
    rt().block_on(async {
        let b = TestBroker::start(&[("max.connections.per.ip", "2")]).await;
        let mut first = b.connect().await;
        let mut second = b.connect().await;
        assert_eq!(api_versions(&mut first, 1, Duration::from_secs(3)).await, Ok(true));
        assert_eq!(api_versions(&mut second, 2, Duration::from_secs(3)).await, Ok(true));
        let mut third = b.connect().await;
        assert!(api_versions(&mut third, 3, Duration::from_secs(3)).await.is_err(), "third connection from one address served");
        // A slot frees when a connection closes.
        drop(first);
        assert!(eventually(Duration::from_secs(2), || b.limits.connections_from(LOCALHOST) == 1).await);
        let mut again = b.connect().await;
        assert_eq!(api_versions(&mut again, 4, Duration::from_secs(3)).await, Ok(true));
        b.stop().await;

        let b = TestBroker::start(&[("max.connections.per.ip", "1"), ("max.connections.per.ip.overrides", "127.0.0.1:3, 10.0.0.1:0")])
            .await;
        let mut conns = Vec::new();
        for corr in 0..3 {
            let mut s = b.connect().await;
            assert_eq!(api_versions(&mut s, corr, Duration::from_secs(3)).await, Ok(true), "connection {corr} within the override");
            conns.push(s);
        }
        let mut fourth = b.connect().await;
        assert!(api_versions(&mut fourth, 9, Duration::from_secs(3)).await.is_err(), "fourth connection past the override served");
        b.stop().await;
    });
}

#[test]
fn limit_settings_are_validated_naming_the_key() {
    let bad: &[&[(&str, &str)]] = &[
        &[("max.connections.per.ip", "-1")],
        &[("max.connections.per.ip", "0")],
        &[("max.connections.per.ip.overrides", "localhost:5")],
        &[("max.connections.per.ip.overrides", "127.0.0.1")],
        &[("max.connections.per.ip.overrides", "127.0.0.1:-2")],
        &[("connections.max.idle.ms", "soon")],
        &[("queued.max.request.bytes", "1048576")],
        &[("queued.max.request.bytes", "x")],
    ];
    for settings in bad {
        let s: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let e = BrokerConfig::from_settings(&s).unwrap_err();
        assert!(e.to_string().contains(settings[0].0), "{settings:?}: {e}");
    }
    let c = BrokerConfig::from_settings(&[]).unwrap();
    assert_eq!((c.queued_max_request_bytes, c.connections_max_idle_ms, c.max_connections_per_ip), (Some(256 * MIB), 600_000, i32::MAX as usize));
    let c = BrokerConfig::from_settings(&[
        ("max.connections.per.ip".into(), "0".into()),
        ("max.connections.per.ip.overrides".into(), "[::1]:4,::ffff:10.1.2.3:2".into()),
        ("queued.max.request.bytes".into(), "0".into()),
    ])
    .unwrap();
    assert_eq!(c.queued_max_request_bytes, None, "0 is unbounded, as in Kafka");
    assert_eq!(c.max_connections_per_ip_overrides.get(&"::1".parse().unwrap()), Some(&4));
    assert_eq!(c.max_connections_per_ip_overrides.get(&"10.1.2.3".parse().unwrap()), Some(&2), "IPv4-mapped is canonical");
}
