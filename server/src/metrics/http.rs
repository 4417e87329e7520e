//! The Prometheus endpoint: `GET /metrics` over HTTP/1.1 on `metrics.listener`.
//!
//! Guarantees: a request head larger than [`HEAD_MAX`] bytes, or not complete within
//! [`READ_TIMEOUT_MS`], is answered 400 or dropped without growing any buffer beyond that
//! bound; at most [`CONNECTIONS_MAX`] scrapes are served at once (more are closed at accept);
//! every answer closes its connection; the endpoint stops accepting at shutdown. Nothing a
//! client sends can make it panic or touch the broker beyond reading its gauges.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::exposition::CONTENT_TYPE;
use crate::broker::Broker;
use crate::listener::Shutdown;

/// Largest request head (request line and headers) read.
pub const HEAD_MAX: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const READ_TIMEOUT_MS: u64 = 5_000;
/// Scrapes served at once.
pub const CONNECTIONS_MAX: usize = 16;
/// The one path served.
pub const PATH: &str = "/metrics";

/// Serves scrapes on `listener` until `shutdown`.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: Arc<Shutdown>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics listener: too many scrapes at once; closing");
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            answer(&broker, stream).await;
            drop(slot);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads the request line of a complete head.
pub fn parse_head(head: &[u8]) -> Ask {
    let Ok(text) = std::str::from_utf8(head) else { return Ask::BadRequest };
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Ask::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Ask::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match method {
        "GET" | "HEAD" if path == PATH => Ask::Metrics { head_only: method == "HEAD" },
        "GET" | "HEAD" => Ask::NotFound,
        _ => Ask::MethodNotAllowed,
    }
}

/// The end of the head (`\r\n\r\n`) in `buf`, if there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

async fn read_head(stream: &mut TcpStream) -> Option<Result<Vec<u8>, ()>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Some(Ok(buf));
        }
        if buf.len() >= HEAD_MAX {
            return Some(Err(()));
        }
    }
}

async fn answer(broker: &Broker, mut stream: TcpStream) {
    let head = match tokio::time::timeout(Duration::from_millis(READ_TIMEOUT_MS), read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        Ok(None) | Err(_) => return,
    };
    let ask = match head {
        Ok(h) => parse_head(&h),
        Err(()) => Ask::BadRequest,
    };
    let (status, content_type, body, head_only) = match ask {
        Ask::Metrics { head_only } => ("200 OK", CONTENT_TYPE, super::scrape::page(broker), head_only),
        Ask::NotFound => ("404 Not Found", "text/plain; charset=utf-8", format!("not found: metrics are at {PATH}\n"), false),
        Ask::MethodNotAllowed => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n".to_string(), false),
        Ask::BadRequest => ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n".to_string(), false),
    };
    let allow = if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" };
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n", body.len()).into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_millis(READ_TIMEOUT_MS), write).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_read_strictly() {
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Ask::Metrics { head_only: false });
        assert_eq!(parse_head(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"), Ask::Metrics { head_only: false });
        assert_eq!(parse_head(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Ask::Metrics { head_only: true });
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n"), Ask::NotFound);
        assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"), Ask::MethodNotAllowed);
        for bad in [&b"GET /metrics\r\n\r\n"[..], b"GET /metrics SPDY/3\r\n\r\n", b"GET  /metrics HTTP/1.1\r\n\r\n", b"\xff\xfe\r\n\r\n", b"\r\n\r\n"] {
            assert_eq!(parse_head(bad), Ask::BadRequest, "{bad:?}");
        }
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
