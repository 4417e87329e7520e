//! The leader's view of a replicated partition: where each follower is, who is in sync, and the
//! high watermark — Kafka's `Partition` leader state, sans-IO.
//!
//! Guarantees:
//! * The high watermark is the minimum, over the *maximal* ISR (the committed ISR plus any
//!   replica an in-flight ISR change adds), of each member's durable log end: the leader's own
//!   durable end as the broker reports it, and each follower's last fetch offset (a follower
//!   fetches past an offset only once everything below it is durable on its disk). It never
//!   moves back and never passes the leader's durable end.
//! * It does not advance while the committed ISR is smaller than `min.insync.replicas` (made
//!   effective for the replica count: `gregor_core::metadata::effective_min_insync`), as
//!   KIP-966 requires: a replica that left the ISR then is an eligible leader replica the
//!   controller may elect, and it must hold every committed record.
//! * A follower counts as caught up at a fetch that reaches the leader's log end, or that
//!   reaches what the leader's log end was at its previous fetch (then as of that fetch), as
//!   Kafka's `isCaughtUp`; an ISR member not caught up for `replica.lag.time.max.ms` is proposed
//!   for removal.
//! * A replica joins the ISR only when its log end has reached both the high watermark and the
//!   offset this leadership began at, so a new member holds every committed record.
//! * At most one ISR change is in flight ([`Leadership::propose_isr`]); until the metadata shows
//!   the controller's decision, a shrink still counts the leaving replica toward the high
//!   watermark (the old, larger ISR), and an expansion already counts the joining one. A failed
//!   request drops the change only when the controller's answer proves it was not applied
//!   ([`IsrFailure::NotApplied`]); after any other failure the change may have been committed
//!   (a lost answer, a controller that moved, a stale partition epoch), so it keeps counting
//!   until the metadata says — as Kafka's `Partition` does. Forgetting it there would let the
//!   leader acknowledge records a committed ISR member lacks.

use std::collections::{BTreeMap, BTreeSet};

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's last fetch offset: its durable log end (-1 until it fetches).
    pub log_end: i64,
    /// When the follower was last caught up with the leader (monotonic ms).
    pub last_caught_up_ms: u64,
    /// When it last fetched, and the leader's log end at that moment.
    pub last_fetch_ms: u64,
    pub last_fetch_leader_end: i64,
    /// The broker epoch its last fetch carried (KIP-903; -1: none given). An ISR expansion
    /// names it, so the controller refuses one that a previous incarnation's fetches earned.
    pub broker_epoch: i64,
}

/// A partition this broker leads, at one leader epoch.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub me: i32,
    pub leader_epoch: i32,
    /// The partition epoch of the registration the ISR below comes from.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The committed ISR (as the metadata image says).
    isr: BTreeSet<i32>,
    /// An ISR change sent to the controller whose outcome the metadata does not show yet.
    pending: Option<BTreeSet<i32>>,
    /// Whether `pending` is to be sent again (its request failed on the way).
    resend: bool,
    followers: BTreeMap<i32, FollowerState>,
    high_watermark: i64,
    /// The leader's log end when this leadership began: the first offset of its epoch.
    pub epoch_start_offset: i64,
    /// The topic's `min.insync.replicas` as configured.
    min_insync: usize,
}

/// Why a follower's fetch is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRefused {
    /// The fetching broker is not a replica of this partition.
    NotAReplica,
}

impl Leadership {
    /// A new leadership. `high_watermark` is what this replica knew before (never more than its
    /// log end); followers in the ISR start as caught up now, as Kafka's do.
    pub fn new(me: i32, leader_epoch: i32, partition_epoch: i32, replicas: &[i32], isr: &[i32], log_end: i64, high_watermark: i64, now_ms: u64) -> Leadership {
        let isr: BTreeSet<i32> = isr.iter().copied().collect();
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                (*r, FollowerState { log_end: -1, last_caught_up_ms: caught_up, last_fetch_ms: 0, last_fetch_leader_end: -1, broker_epoch: -1 })
            })
            .collect();
        Leadership {
            me,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr,
            pending: None,
            resend: false,
            followers,
            high_watermark: high_watermark.min(log_end),
            epoch_start_offset: log_end,
            min_insync: 1,
        }
    }

    /// Takes the topic's `min.insync.replicas` (at the start of a leadership and whenever the
    /// config changes).
    pub fn set_min_insync(&mut self, configured: usize) {
        self.min_insync = if crate::bugs::active(crate::bugs::Bug::AckBelowMinIsr) { 1 } else { configured };
    }

    /// Takes a newer registration of the same leadership (an ISR or replica change committed by
    /// the controller). An older or equal partition epoch is ignored.
    pub fn update(&mut self, partition_epoch: i32, replicas: &[i32], isr: &[i32], now_ms: u64) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.replicas = replicas.to_vec();
        let new_isr: BTreeSet<i32> = isr.iter().copied().collect();
        self.followers.retain(|id, _| replicas.contains(id));
        for r in replicas.iter().filter(|r| **r != self.me) {
            self.followers.entry(*r).or_insert(FollowerState { log_end: -1, last_caught_up_ms: 0, last_fetch_ms: 0, last_fetch_leader_end: -1, broker_epoch: -1 });
        }
        // A replica that has just joined starts its lag clock now.
        for id in new_isr.difference(&self.isr) {
            if let Some(f) = self.followers.get_mut(id) {
                f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
            }
        }
        self.isr = new_isr;
        // The controller has decided: whatever was in flight is answered by this registration.
        self.pending = None;
        self.resend = false;
    }

    /// The committed ISR.
    pub fn isr(&self) -> Vec<i32> {
        self.isr.iter().copied().collect()
    }

    /// The ISR that counts for the high watermark: committed, plus replicas being added.
    pub fn maximal_isr(&self) -> BTreeSet<i32> {
        match &self.pending {
            Some(p) => self.isr.union(p).copied().collect(),
            None => self.isr.clone(),
        }
    }

    pub fn pending_isr(&self) -> Option<Vec<i32>> {
        self.pending.as_ref().map(|p| p.iter().copied().collect())
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerState> {
        self.followers.get(&id)
    }

    /// Records a follower's fetch at `fetch_offset`, sent by its incarnation of `broker_epoch`,
    /// while the leader's log ends at `leader_end`.
    pub fn on_fetch(&mut self, follower: i32, broker_epoch: i64, fetch_offset: i64, leader_end: i64, now_ms: u64) -> Result<(), FetchRefused> {
        let f = self.followers.get_mut(&follower).ok_or(FetchRefused::NotAReplica)?;
        f.broker_epoch = broker_epoch;
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end && f.last_fetch_leader_end >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
        Ok(())
    }

    /// Recomputes the high watermark from the leader's durable log end; returns the new value
    /// when it moved.
    pub fn advance_high_watermark(&mut self, leader_durable_end: i64) -> Option<i64> {
        let under_min = self.isr.len() < crate::metadata::effective_min_insync(self.min_insync, self.replicas.len());
        if under_min && !crate::bugs::active(crate::bugs::Bug::HwUnderMinIsr) {
            return None;
        }
        let mut hw = leader_durable_end;
        for id in self.maximal_isr() {
            if id == self.me {
                continue;
            }
            // An ISR member the leader has not heard from yet holds the high watermark where it is.
            let end = self.followers.get(&id).map_or(-1, |f| f.log_end);
            hw = hw.min(end);
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
            Some(hw)
        } else {
            None
        }
    }

    /// The ISR change the leader should ask for now, if any: followers lagging for longer than
    /// `lag_time_max_ms` leave; caught-up replicas (see the module docs) that `eligible` allows
    /// (registered and unfenced) join. `None` while a change is in flight or nothing changes.
    pub fn wanted_isr(&self, now_ms: u64, lag_time_max_ms: u64, eligible: impl Fn(i32) -> bool) -> Option<Vec<i32>> {
        if let Some(p) = &self.pending {
            return self.resend.then(|| p.iter().copied().collect());
        }
        let mut next = self.isr.clone();
        next.insert(self.me);
        for (id, f) in &self.followers {
            let lagging = now_ms.saturating_sub(f.last_caught_up_ms) > lag_time_max_ms;
            if self.isr.contains(id) {
                if lagging {
                    next.remove(id);
                }
            } else if eligible(*id) && f.log_end >= self.high_watermark && f.log_end >= self.epoch_start_offset {
                next.insert(*id);
            }
        }
        (next != self.isr).then(|| next.into_iter().collect())
    }

    /// Marks an ISR change as sent to the controller (a new one, or the one in flight again).
    pub fn propose_isr(&mut self, isr: &[i32]) {
        let proposed: BTreeSet<i32> = isr.iter().copied().collect();
        assert!(self.pending.as_ref().is_none_or(|p| self.resend && *p == proposed), "one ISR change in flight at a time");
        assert!(isr.contains(&self.me), "the leader stays in its own ISR");
        self.pending = Some(proposed);
        self.resend = false;
    }

    /// The ISR change in flight failed; `why` says what may be assumed about it.
    pub fn isr_change_failed(&mut self, why: IsrFailure) {
        match why {
            IsrFailure::NotApplied => {
                self.pending = None;
                self.resend = false;
            }
            IsrFailure::Retry => self.resend = true,
            IsrFailure::AwaitMetadata => self.resend = false,
        }
    }
}

/// What a failed ISR change request leaves the leader knowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrFailure {
    /// The controller checked the request at the current partition epoch and refused it: it was
    /// not applied, and another change may be proposed.
    NotApplied,
    /// The request or its answer was lost, or the controller could not act: it may have been
    /// applied. The same change is sent again.
    Retry,
    /// The controller has newer state (another partition or leader epoch): the change may have
    /// been applied; the metadata will tell.
    AwaitMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(isr: &[i32]) -> Leadership {
        Leadership::new(1, 5, 7, &[1, 2, 3], isr, 100, 90, 1_000)
    }

    #[test]
    fn a_follower_keeps_the_broker_epoch_of_its_last_fetch() {
        let mut l = three(&[1, 2]);
        assert_eq!(l.follower(3).map(|f| f.broker_epoch), Some(-1));
        l.on_fetch(3, 41, 90, 100, 1_100).unwrap();
        l.on_fetch(3, 57, 95, 100, 1_200).unwrap();
        // Its broker restarted: an expansion must name the new incarnation, not the old one.
        assert_eq!(l.follower(3).map(|f| (f.broker_epoch, f.log_end)), Some((57, 95)));
    }

    #[test]
    fn high_watermark_waits_while_the_committed_isr_is_below_min_insync() {
        let mut l = three(&[1, 2]);
        l.set_min_insync(2);
        l.on_fetch(2, -1, 100, 100, 1_100).unwrap();
        assert_eq!(l.advance_high_watermark(100), Some(100), "two in sync: the watermark moves");
        l.update(8, &[1, 2, 3], &[1], 1_200);
        assert_eq!(l.advance_high_watermark(120), None, "the leader alone is below min.insync.replicas");
        // A shrink in flight still counts the old ISR, which meets min.insync.replicas.
        let mut l = three(&[1, 2]);
        l.set_min_insync(2);
        l.propose_isr(&[1]);
        l.on_fetch(2, -1, 110, 110, 1_100).unwrap();
        assert_eq!(l.advance_high_watermark(110), Some(110));
        // Never more than the replicas: min.insync.replicas 5 on three replicas counts as 3.
        let mut l = three(&[1, 2, 3]);
        l.set_min_insync(5);
        l.on_fetch(2, -1, 100, 100, 1_100).unwrap();
        l.on_fetch(3, -1, 100, 100, 1_100).unwrap();
        assert_eq!(l.advance_high_watermark(100), Some(100));
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr_and_never_goes_back() {
        let mut l = three(&[1, 2, 3]);
        assert_eq!(l.high_watermark(), 90);
        // Nothing moves until every ISR member has fetched.
        assert_eq!(l.advance_high_watermark(100), None);
        l.on_fetch(2, -1, 100, 100, 1_010).unwrap();
        assert_eq!(l.advance_high_watermark(100), None, "follower 3 has not fetched");
        l.on_fetch(3, -1, 95, 100, 1_010).unwrap();
        assert_eq!(l.advance_high_watermark(100), Some(95));
        // The leader's own durable end bounds it.
        l.on_fetch(3, -1, 100, 100, 1_020).unwrap();
        assert_eq!(l.advance_high_watermark(98), Some(98));
        // A follower reporting less (it truncated) never takes the high watermark back.
        l.on_fetch(2, -1, 97, 120, 1_030).unwrap();
        assert_eq!(l.advance_high_watermark(120), None);
        assert_eq!(l.high_watermark(), 98);
    }

    #[test]
    fn single_replica_follows_the_durable_end() {
        let mut l = Leadership::new(1, 0, 0, &[1], &[1], 10, 0, 0);
        assert_eq!(l.advance_high_watermark(10), Some(10));
        assert_eq!(l.wanted_isr(1_000_000, 30_000, |_| true), None);
    }

    #[test]
    fn lagging_follower_is_proposed_for_removal_after_the_lag_time() {
        let mut l = three(&[1, 2, 3]);
        l.on_fetch(2, -1, 100, 100, 1_000).unwrap();
        l.on_fetch(3, -1, 100, 100, 1_000).unwrap();
        // 3 keeps fetching but never catches up with a growing log.
        l.on_fetch(3, -1, 100, 150, 20_000).unwrap();
        l.on_fetch(2, -1, 150, 150, 20_000).unwrap();
        l.on_fetch(3, -1, 120, 200, 25_000).unwrap();
        l.on_fetch(2, -1, 200, 200, 25_000).unwrap();
        assert_eq!(l.wanted_isr(30_000, 30_000, |_| true), None);
        // 3 was last caught up at 1_000 (its fetch at 20_000 reached the end of its previous one).
        assert_eq!(l.wanted_isr(31_001, 30_000, |_| true), Some(vec![1, 2]));
    }

    #[test]
    fn a_fetch_reaching_the_previous_leader_end_counts_as_caught_up_then() {
        let mut l = three(&[1, 2, 3]);
        l.on_fetch(3, -1, 100, 150, 10_000).unwrap();
        l.on_fetch(3, -1, 150, 200, 20_000).unwrap();
        assert_eq!(l.follower(3).unwrap().last_caught_up_ms, 10_000);
    }

    #[test]
    fn shrink_keeps_counting_the_leaving_replica_until_committed() {
        let mut l = three(&[1, 2, 3]);
        l.on_fetch(2, -1, 100, 100, 39_000).unwrap();
        l.on_fetch(3, -1, 50, 100, 1_000).unwrap();
        assert_eq!(l.advance_high_watermark(100), None);
        let want = l.wanted_isr(40_000, 30_000, |_| true).unwrap();
        assert_eq!(want, vec![1, 2]);
        l.propose_isr(&want);
        assert_eq!(l.wanted_isr(40_000, 30_000, |_| true), None, "one change in flight");
        assert_eq!(l.advance_high_watermark(100), None, "3 still counts while the shrink is in flight");
        l.update(8, &[1, 2, 3], &[1, 2], 40_001);
        assert_eq!(l.advance_high_watermark(100), Some(100));
    }

    #[test]
    fn expansion_needs_the_high_watermark_and_the_epoch_start() {
        let mut l = three(&[1, 2]);
        l.on_fetch(2, -1, 100, 100, 1_000).unwrap();
        assert_eq!(l.advance_high_watermark(100), Some(100));
        l.on_fetch(3, -1, 99, 100, 1_000).unwrap();
        assert_eq!(l.wanted_isr(1_000, 30_000, |_| true), None);
        l.on_fetch(3, -1, 100, 100, 1_001).unwrap();
        assert_eq!(l.wanted_isr(1_001, 30_000, |_| false), None, "a fenced broker does not join");
        let want = l.wanted_isr(1_001, 30_000, |_| true).unwrap();
        assert_eq!(want, vec![1, 2, 3]);
        l.propose_isr(&want);
        assert!(l.maximal_isr().contains(&3), "a joining replica counts at once");
        // A lost answer: the change may be committed, so 3 still counts, and it is sent again.
        l.isr_change_failed(IsrFailure::Retry);
        assert!(l.maximal_isr().contains(&3));
        assert_eq!(l.wanted_isr(1_002, 30_000, |_| true), Some(vec![1, 2, 3]));
        l.propose_isr(&want);
        // A stale partition epoch: still counted, not sent again, until the metadata decides.
        l.isr_change_failed(IsrFailure::AwaitMetadata);
        assert!(l.maximal_isr().contains(&3));
        assert_eq!(l.wanted_isr(1_003, 30_000, |_| true), None);
        l.update(8, &[1, 2, 3], &[1, 2, 3], 1_004);
        assert_eq!((l.isr(), l.pending_isr()), (vec![1, 2, 3], None));
        // Refused at the current epoch: dropped.
        let mut l = three(&[1, 2]);
        l.propose_isr(&[1, 2, 3]);
        l.isr_change_failed(IsrFailure::NotApplied);
        assert!(!l.maximal_isr().contains(&3));
    }

    #[test]
    fn older_registrations_are_ignored_and_unknown_fetchers_refused() {
        let mut l = three(&[1, 2, 3]);
        l.update(7, &[1, 2], &[1], 0);
        assert_eq!(l.isr(), vec![1, 2, 3]);
        assert_eq!(l.on_fetch(9, -1, 0, 100, 0), Err(FetchRefused::NotAReplica));
        l.update(8, &[1, 2], &[1, 2], 0);
        assert_eq!(l.on_fetch(3, -1, 0, 100, 0), Err(FetchRefused::NotAReplica), "a removed replica");
    }
}
