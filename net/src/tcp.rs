//! The transport adapter: TCP via `tokio::net`.
//!
//! `tokio` here is madsim-tokio: plain tokio in production, madsim's simulated TCP under
//! `--cfg madsim`, so the broker's connection code is the same in both worlds. This module is the
//! one place that resolves addresses and configures sockets.

use std::io;
use tokio::net::{TcpListener, TcpStream};

/// Binds a listener on `addr` (`host:port`).
pub async fn listen(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Connects to `addr` (`host:port`) with `TCP_NODELAY` set, since Kafka traffic is request/response.
pub async fn connect(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
