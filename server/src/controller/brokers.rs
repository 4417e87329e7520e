//! Broker lifecycle on the active controller: registration, heartbeats, fencing and the
//! leader elections they cause (Kafka's BrokerRegistration / BrokerHeartbeat semantics).
//!
//! * A broker registers fenced, with a new broker epoch; it is unfenced by the heartbeat that
//!   shows it has caught up with the metadata log up to its registration.
//! * A broker that sends no heartbeat for `broker.session.timeout.ms` is fenced; so is one that
//!   asks to shut down (controlled shutdown, `want_shut_down`). That one learns it may stop only
//!   once every other unfenced broker has reported (in its heartbeats' metadata offset) that it
//!   applied the change: as Kafka's controller, so that the new leaders know they lead before
//!   the old one goes and clients find them at once.
//! * Fencing a broker takes it out of every ISR and moves its leaderships to live ISR members
//!   (see [`super::partitions`]); a partition whose only ISR member it was has no leader until
//!   it comes back. Unfencing elects it there again (leader epoch bumped once more).
//! * Heartbeat times live only in the active controller's memory: a new active controller gives
//!   every broker a full session before fencing it, as Kafka's does.

use std::collections::BTreeMap;

use gregor_core::metadata::{Endpoint, MetadataImage, MetadataRecord};

use super::elr;
use super::partitions::{leaders_away, leaders_back, unclean_allowed};

use super::Controller;
use crate::broker::Broker;
use crate::errors;

/// A BrokerRegistration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub broker_id: i32,
    pub cluster_id: String,
    pub incarnation_id: u128,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The broker epoch of the session that ended in a clean shutdown before this one, else -1
    /// (Kafka's `PreviousBrokerEpoch`).
    pub previous_broker_epoch: i64,
}

/// A BrokerHeartbeat answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// Heartbeat bookkeeping of the active controller.
#[derive(Default)]
pub struct Sessions {
    /// Last heartbeat (monotonic ms) per broker.
    last_heartbeat_ms: BTreeMap<i32, u64>,
    /// The metadata offset each broker's last heartbeat said it had applied.
    metadata_offset: BTreeMap<i32, i64>,
    /// Brokers in controlled shutdown: the metadata offset by which their fencing (and the
    /// leadership moves with it) had been applied here.
    shutdown_offset: BTreeMap<i32, i64>,
    /// The quorum epoch these times belong to (a new leader starts over).
    epoch: i32,
}

/// The lowest metadata offset the unfenced brokers other than `leaving` reported having applied
/// (-1 for one that has not reported to this controller yet; `i64::MAX` when there is none).
fn lowest_active_offset(image: &MetadataImage, leaving: i32, reported: &BTreeMap<i32, i64>) -> i64 {
    image.brokers.values().filter(|b| !b.fenced && b.id != leaving).map(|b| reported.get(&b.id).copied().unwrap_or(-1)).min().unwrap_or(i64::MAX)
}

/// This controller's unclean-election rule for the topics of `image`.
fn unclean<'a>(broker: &'a Broker, image: &'a MetadataImage) -> impl Fn(&str) -> bool + 'a {
    move |topic| unclean_allowed(image, topic, broker.config.replication.unclean_leader_election)
}

impl Controller {
    fn sessions(&self, broker: &Broker) -> std::sync::MutexGuard<'_, Sessions> {
        let mut s = self.sessions.lock().expect("sessions lock");
        let epoch = self.quorum.status().leader_epoch;
        if s.epoch != epoch {
            // A new leadership: every registered broker gets a full session from now.
            s.epoch = epoch;
            let now = broker.clock.monotonic_ms();
            s.last_heartbeat_ms = broker.image().brokers.keys().map(|id| (*id, now)).collect();
            s.metadata_offset.clear();
            s.shutdown_offset.clear();
        }
        s
    }

    /// BrokerRegistration: returns the new broker epoch. A retry of the same incarnation gets
    /// the epoch it was given.
    pub async fn register_broker(&self, broker: &Broker, r: Registration) -> Result<i64, i16> {
        if r.cluster_id != broker.cluster_id {
            return Err(errors::INCONSISTENT_CLUSTER_ID);
        }
        if r.endpoints.iter().any(|e| e.host.len() > 1024 || e.name.len() > 1024) || r.rack.as_ref().is_some_and(|x| x.len() > 1024) {
            return Err(errors::INVALID_REQUEST);
        }
        let mut state = self.active().await.map_err(|e| e.code)?;
        let image = broker.image();
        if let Some(b) = image.brokers.get(&r.broker_id) {
            if b.incarnation_id == r.incarnation_id {
                return Ok(b.epoch);
            }
        }
        let epoch = image.brokers.get(&r.broker_id).map_or(image.offset + 1, |b| (b.epoch + 1).max(image.offset + 1));
        let mut records = vec![MetadataRecord::RegisterBroker {
            broker_id: r.broker_id,
            incarnation_id: r.incarnation_id,
            broker_epoch: epoch,
            endpoints: r.endpoints,
            rack: r.rack,
            fenced: true,
        }];
        // A broker that comes back with a new incarnation leads nothing until it is unfenced
        // again. Unless it proves its last session ended cleanly, its replicas may lack records
        // they held: they are no longer eligible leader replicas.
        records.extend(leaders_away(&image, r.broker_id, &unclean(broker, &image)));
        let clean = image.brokers.get(&r.broker_id).is_none_or(|b| b.epoch == r.previous_broker_epoch);
        let unclean_shutdown: &[i32] = if clean { &[] } else { &[r.broker_id] };
        if !clean {
            records.extend(elr::recheck_broker(&image, r.broker_id));
        }
        self.commit_after_unclean_shutdown(broker, &mut state, records, unclean_shutdown).await.map_err(|e| e.code)?;
        {
            let mut s = self.sessions(broker);
            s.last_heartbeat_ms.insert(r.broker_id, broker.clock.monotonic_ms());
            s.shutdown_offset.remove(&r.broker_id);
        }
        tracing::info!(broker = r.broker_id, epoch, "registered broker");
        Ok(epoch)
    }

    /// BrokerHeartbeat.
    pub async fn heartbeat(&self, broker: &Broker, id: i32, epoch: i64, metadata_offset: i64, want_shut_down: bool) -> Result<HeartbeatAnswer, i16> {
        let mut state = self.active().await.map_err(|e| e.code)?;
        let image = broker.image();
        let reg = image.brokers.get(&id).ok_or(errors::BROKER_ID_NOT_REGISTERED)?;
        if reg.epoch != epoch {
            return Err(errors::STALE_BROKER_EPOCH);
        }
        {
            let mut s = self.sessions(broker);
            s.last_heartbeat_ms.insert(id, broker.clock.monotonic_ms());
            s.metadata_offset.insert(id, metadata_offset);
            if !want_shut_down {
                s.shutdown_offset.remove(&id);
            }
        }
        let is_caught_up = metadata_offset >= reg.epoch;
        let mut fenced = reg.fenced;
        if want_shut_down && !fenced {
            let mut records = vec![MetadataRecord::FenceBroker { broker_id: id, broker_epoch: epoch }];
            records.extend(leaders_away(&image, id, &unclean(broker, &image)));
            self.commit(broker, &mut state, records).await.map_err(|e| e.code)?;
            tracing::info!(broker = id, "controlled shutdown: broker fenced");
            fenced = true;
        } else if !want_shut_down && fenced && is_caught_up {
            let mut records = vec![MetadataRecord::UnfenceBroker { broker_id: id, broker_epoch: epoch }];
            records.extend(leaders_back(&image, id, &unclean(broker, &image)));
            self.commit(broker, &mut state, records).await.map_err(|e| e.code)?;
            tracing::info!(broker = id, "broker unfenced");
            fenced = false;
        }
        let should_shut_down = want_shut_down && fenced && {
            // Read after the commit above: the offset includes the fencing (a controller that
            // did not fence it itself takes its whole image, later still).
            let image = broker.image();
            let mut s = self.sessions(broker);
            let target = *s.shutdown_offset.entry(id).or_insert(image.offset);
            let lowest = lowest_active_offset(&image, id, &s.metadata_offset);
            if lowest < target {
                tracing::debug!(broker = id, target, lowest, "controlled shutdown: waiting for the other brokers to apply the leadership moves");
            }
            lowest >= target
        };
        Ok(HeartbeatAnswer { is_caught_up, is_fenced: fenced, should_shut_down })
    }

    /// Fences every unfenced broker whose session expired. Only the active controller acts.
    pub async fn fence_expired(&self, broker: &Broker) {
        let status = self.quorum.status();
        if status.leader_id != broker.config.node_id {
            return;
        }
        let now = broker.clock.monotonic_ms();
        let timeout = broker.config.broker_session_timeout_ms;
        let expired: Vec<(i32, i64)> = {
            let mut sessions = self.sessions(broker);
            let image = broker.image();
            // A broker this leader has not seen yet (its registration reached this node's image
            // after the leadership began) gets a full session from now, like the others did.
            for id in image.brokers.keys() {
                sessions.last_heartbeat_ms.entry(*id).or_insert(now);
            }
            image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| sessions.last_heartbeat_ms.get(&b.id).is_some_and(|t| now.saturating_sub(*t) > timeout))
                .map(|b| (b.id, b.epoch))
                .collect()
        };
        for (id, epoch) in expired {
            let Ok(mut state) = self.active().await else { return };
            let image = broker.image();
            if image.brokers.get(&id).is_none_or(|b| b.fenced || b.epoch != epoch) {
                continue;
            }
            let mut records = vec![MetadataRecord::FenceBroker { broker_id: id, broker_epoch: epoch }];
            records.extend(leaders_away(&image, id, &unclean(broker, &image)));
            match self.commit(broker, &mut state, records).await {
                Ok(()) => tracing::warn!(broker = id, timeout_ms = timeout, "broker fenced: no heartbeat within broker.session.timeout.ms"),
                Err(e) => tracing::debug!(broker = id, error = %e.message, "could not fence broker"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gregor_core::metadata::BrokerRegistration;

    use super::*;

    fn image(brokers: &[(i32, bool)]) -> MetadataImage {
        let mut img = MetadataImage::new();
        for &(id, fenced) in brokers {
            img.brokers.insert(id, BrokerRegistration { id, incarnation_id: id as u128, epoch: 10, endpoints: Vec::new(), rack: None, fenced });
        }
        img
    }

    #[test]
    fn a_leaving_broker_waits_for_every_other_unfenced_broker() {
        let img = image(&[(1, true), (2, false), (3, false), (4, true)]);
        let reported = BTreeMap::from([(1, 3), (2, 40), (3, 35), (4, 0)]);
        // Broker 1 leaves: 2 and 3 count (4 is fenced, 1 is the one leaving).
        assert_eq!(lowest_active_offset(&img, 1, &reported), 35);
        // A broker that has not reported to this controller holds it back.
        assert_eq!(lowest_active_offset(&img, 1, &BTreeMap::from([(2, 40)])), -1);
        // With nobody else live there is nobody to wait for.
        assert_eq!(lowest_active_offset(&image(&[(1, true), (2, true)]), 1, &reported), i64::MAX);
    }
}
