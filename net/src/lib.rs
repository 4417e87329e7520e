//! gregor-net: everything that crosses the wire.
//!
//! * [`batch_encode`]: one partition's records as exactly one record batch, for the producers.
//! * [`frame`]: length-prefixed Kafka frames, with sizes checked before any allocation.
//! * [`codec`]: request/response header handling over the `kafka-protocol` message types.
//! * [`schema`]: Gregor's table of the request formats and the bounds check every request frame
//!   passes before it is decoded.
//! * [`tcp`]: the transport adapter (tokio TCP, which is madsim's simulated TCP under `--cfg madsim`).
//! * [`client`]: a small async Kafka client used by the CLI tools and, later, the simulator.

pub mod batch_encode;
pub mod client;
pub mod codec;
pub mod frame;
pub mod raft_wire;
pub mod schema;
// The transport adapter: the one net module allowed to touch real sockets (see clippy.toml).
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod tcp;

pub use kafka_protocol;
