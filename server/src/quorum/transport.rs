//! Sending the quorum's requests to the other voters over their controller listeners.
//!
//! Each voter gets two lanes, each a task with its own connection: one for Fetch (which the
//! leader may hold for up to its fetch wait) and one for everything else, so a parked Fetch
//! never delays a Vote. A lane sends one request at a time, converts the answer back with
//! [`gregor_net::raft_wire`], and hands it to the driver as a message from that voter. A
//! failed connection or request is dropped and reconnected on the next request: the quorum
//! resends what it still needs after its request timeout, as Kafka's network client leaves
//! retries to the raft client.

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_core::raft::messages::{Envelope, Message};
use gregor_net::client::Client;
use gregor_net::raft_wire as wire;
use tokio::sync::mpsc;

use crate::config::Voter;

/// Most requests queued per lane; beyond it new ones are dropped (the quorum resends).
const LANE_QUEUE_MAX: usize = 64;

pub struct Transport {
    lanes: BTreeMap<i32, (mpsc::Sender<Envelope>, mpsc::Sender<Envelope>)>,
}

impl Transport {
    /// Starts the lanes to every voter but `me`. Answers go to `inbox` as envelopes from the
    /// voter they came from.
    pub fn start(me: i32, voters: &[Voter], request_timeout_ms: u64, inbox: mpsc::Sender<Envelope>) -> Transport {
        let mut lanes = BTreeMap::new();
        for v in voters.iter().filter(|v| v.id != me) {
            let (fetch_tx, fetch_rx) = mpsc::channel(LANE_QUEUE_MAX);
            let (ctl_tx, ctl_rx) = mpsc::channel(LANE_QUEUE_MAX);
            let timeout = Duration::from_millis(request_timeout_ms);
            tokio::spawn(lane(me, v.id, v.addr(), timeout, fetch_rx, inbox.clone()));
            tokio::spawn(lane(me, v.id, v.addr(), timeout, ctl_rx, inbox.clone()));
            lanes.insert(v.id, (fetch_tx, ctl_tx));
        }
        Transport { lanes }
    }

    /// Queues a request to `envelope.peer` (dropped if the peer is unknown or its lane full).
    pub fn send(&self, envelope: Envelope) {
        let Some((fetch, ctl)) = self.lanes.get(&envelope.peer) else {
            tracing::debug!(peer = envelope.peer, "no route to quorum peer");
            return;
        };
        let lane = if matches!(envelope.message, Message::FetchRequest(_)) { fetch } else { ctl };
        if lane.try_send(envelope).is_err() {
            tracing::debug!("quorum lane full; request dropped");
        }
    }
}

async fn lane(me: i32, peer: i32, addr: String, timeout: Duration, mut rx: mpsc::Receiver<Envelope>, inbox: mpsc::Sender<Envelope>) {
    let mut client: Option<Client> = None;
    while let Some(env) = rx.recv().await {
        if client.is_none() {
            match tokio::time::timeout(timeout, Client::connect(&addr, &format!("gregor-quorum-{me}"))).await {
                Ok(Ok(mut c)) => {
                    // A Fetch may be held by the leader for its wait, then travel.
                    c.set_timeout(timeout * 2);
                    client = Some(c);
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer, %addr, error = %e, "cannot reach quorum peer");
                    continue;
                }
                Err(_) => continue,
            }
        }
        let c = client.as_mut().expect("connected above");
        match send(c, &env.message).await {
            Ok(answer) => {
                let reply = Envelope { peer, correlation_id: env.correlation_id, message: answer };
                if inbox.send(reply).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(peer, error = %e, request = env.message.name(), "quorum request failed");
                client = None;
            }
        }
    }
}

async fn send(c: &mut Client, m: &Message) -> Result<Message, String> {
    let err = |e: gregor_net::client::ClientError| e.to_string();
    Ok(match m {
        Message::VoteRequest(r) => Message::VoteResponse(wire::vote_response_from(&c.send_at(&wire::vote_request(r), wire::VOTE_VERSION).await.map_err(err)?)?),
        Message::BeginQuorumEpochRequest(r) => Message::BeginQuorumEpochResponse(wire::begin_response_from(
            &c.send_at(&wire::begin_request(r), wire::BEGIN_QUORUM_EPOCH_VERSION).await.map_err(err)?,
        )?),
        Message::EndQuorumEpochRequest(r) => Message::EndQuorumEpochResponse(wire::end_response_from(
            &c.send_at(&wire::end_request(r), wire::END_QUORUM_EPOCH_VERSION).await.map_err(err)?,
        )?),
        Message::FetchRequest(r) => {
            // The highest version the peer takes: an older Gregor speaks v16 only.
            let version = c.version_for::<kafka_protocol::messages::FetchRequest>().unwrap_or(wire::FETCH_VERSION_MIN).clamp(wire::FETCH_VERSION_MIN, wire::FETCH_VERSION);
            Message::FetchResponse(wire::fetch_response_from(&c.send_at(&wire::fetch_request(r), version).await.map_err(err)?)?)
        }
        Message::FetchSnapshotRequest(r) => Message::FetchSnapshotResponse(wire::fetch_snapshot_response_from(
            &c.send_at(&wire::fetch_snapshot_request(r), wire::FETCH_SNAPSHOT_VERSION).await.map_err(err)?,
        )?),
        other => return Err(format!("{} is not a request", other.name())),
    })
}
