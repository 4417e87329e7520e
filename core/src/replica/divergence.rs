//! Log divergence between a follower and its leader (KIP-101, KIP-279, KIP-320): both sides of
//! the check a follower's Fetch carries.
//!
//! A follower fetches at its log end with the epoch of its last batch. The leader looks up where
//! that epoch ends in *its* log (its leader epoch cache); if the leader never had that epoch, or
//! its epoch ends before the follower's fetch offset, the follower holds records the leader does
//! not — they were never committed — and the leader answers with the diverging epoch and its end
//! offset instead of records. The follower truncates ([`truncation_offset`]) and fetches again;
//! every round moves it to an earlier epoch, so it ends at the longest prefix it shares with the
//! leader. This is what makes the KIP-101 anomaly (a follower truncating to its high watermark
//! and then diverging, or keeping records the new leader overwrote) impossible: truncation is
//! decided by epochs, never by a high watermark.

/// An epoch and the offset it ends at (exclusive), as [`super::epoch_cache`] answers
/// `end_offset_for`; `(-1, -1)` when unknown.
pub type EpochEnd = (i32, i64);

/// The leader's check of a follower's fetch at `fetch_offset` whose last batch has epoch
/// `last_fetched_epoch` (-1: the follower's log is empty, nothing to check). `leader_end` is the
/// leader's `end_offset_for(last_fetched_epoch)`. Returns the diverging epoch to answer with.
pub fn diverging_epoch(last_fetched_epoch: i32, fetch_offset: i64, leader_end: EpochEnd) -> Option<EpochEnd> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = leader_end;
    (epoch < last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
}

/// Where a follower truncates when the leader answered `diverging` (the leader's epoch and its
/// end). `local` is the follower's own `end_offset_for(diverging.0)`; `log_start`/`log_end`
/// bound the follower's log. A result below `log_start` means the follower keeps nothing and
/// restarts its log at that offset.
pub fn truncation_offset(diverging: EpochEnd, local: EpochEnd, log_start: i64, log_end: i64) -> i64 {
    let (leader_epoch, leader_end) = diverging;
    let (local_epoch, local_end) = local;
    let to = if leader_epoch < 0 || local_epoch < 0 {
        // No epoch at or below the leader's is known on one side: every local record is from a
        // later epoch than the leader's answer covers, so none of them is known to be shared.
        leader_end.max(0).min(log_start)
    } else if local_epoch == leader_epoch {
        // Both have the epoch: the shared prefix ends where the shorter of the two ends.
        leader_end.min(local_end)
    } else {
        // The follower's largest epoch below the leader's ends at `local_end`: truncate there
        // (or at the leader's end, if earlier) and let the next fetch check the earlier epoch.
        local_end.min(leader_end)
    };
    to.min(log_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_reports_divergence_only_when_its_epoch_differs_or_ends_earlier() {
        assert_eq!(diverging_epoch(-1, 0, (-1, -1)), None, "an empty follower log is not checked");
        assert_eq!(diverging_epoch(3, 50, (3, 80)), None, "same epoch, the leader's goes further");
        assert_eq!(diverging_epoch(3, 50, (3, 50)), None);
        assert_eq!(diverging_epoch(3, 50, (3, 40)), Some((3, 40)));
        assert_eq!(diverging_epoch(4, 50, (3, 60)), Some((3, 60)), "the leader never had epoch 4");
        assert_eq!(diverging_epoch(4, 50, (-1, -1)), Some((-1, -1)));
    }

    /// The KIP-101 scenario: A (leader, epoch 1) and B both hold offsets 0..2 of epoch 1; A
    /// appends offset 2 (epoch 1) that B never gets; A dies, B leads epoch 2 and writes offset
    /// 2 (epoch 2). A comes back as a follower: it must drop its offset 2.
    #[test]
    fn kip_101_the_old_leader_drops_its_uncommitted_tail() {
        // A fetches at 3 with last epoch 1; the new leader's epoch 1 ends at 2.
        let d = diverging_epoch(1, 3, (1, 2)).unwrap();
        // A's own epoch 1 ends at its log end, 3.
        assert_eq!(truncation_offset(d, (1, 3), 0, 3), 2);
        // After truncating, A fetches at 2 with last epoch 1: no divergence.
        assert_eq!(diverging_epoch(1, 2, (1, 2)), None);
    }

    #[test]
    fn a_follower_with_an_epoch_the_leader_lacks_walks_back_one_epoch_at_a_time() {
        // Follower: epoch 1 at 0..10, epoch 3 at 10..20. Leader: epoch 1 at 0..12, epoch 4 from 12.
        let d = diverging_epoch(3, 20, (1, 12)).unwrap();
        assert_eq!(d, (1, 12));
        // Follower's end_offset_for(1) is (1, 10): truncate to 10.
        assert_eq!(truncation_offset(d, (1, 10), 0, 20), 10);
        assert_eq!(diverging_epoch(1, 10, (1, 12)), None);
    }

    #[test]
    fn a_follower_whose_epoch_is_below_the_leaders_answer_truncates_to_its_own_end() {
        // Leader answers epoch 2 ends at 30; the follower only has epoch 1 up to 25 below that.
        assert_eq!(truncation_offset((2, 30), (1, 25), 0, 40), 25);
        assert_eq!(truncation_offset((2, 30), (1, 35), 0, 40), 30);
    }

    #[test]
    fn nothing_shared_means_the_log_restarts() {
        assert_eq!(truncation_offset((-1, -1), (-1, -1), 5, 40), 0);
        assert_eq!(truncation_offset((2, 30), (-1, -1), 5, 40), 5);
        assert_eq!(truncation_offset((2, 3), (-1, -1), 5, 40), 3, "below the log start: restart at 3");
    }

    #[test]
    fn never_above_the_log_end() {
        assert_eq!(truncation_offset((3, 100), (3, 100), 0, 40), 40);
    }
}
