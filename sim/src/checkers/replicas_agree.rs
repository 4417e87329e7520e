//! Replicas agree: once the faults are healed and every replica has caught up, every replica of
//! every `events` partition holds, below the leader's high watermark, exactly the leader's
//! batches — the same offsets, leader epochs and bytes. A follower that kept a diverging tail
//! (the KIP-101 bug class: truncation by high watermark instead of by leader epoch), appended
//! at the wrong offset or re-stamped a batch shows up here even when no client read it.
//! A replica that has not reached the high watermark within the liveness bound is reported
//! too: with the faults healed every replica must rejoin. On a compacted topic every replica
//! cleans its own copy, so bytes differ by design; there, every batch of a replica must have the
//! leader epoch of each leader batch whose offsets it overlaps (a diverging tail keeps its old
//! epoch), and what the cleaner kept is checked by `compacted-latest`.

use super::{CheckContext, Findings, Violation};
use crate::history::{HistoryData, ReplicaBatch};

fn below(batches: &[ReplicaBatch], hw: i64) -> Vec<ReplicaBatch> {
    batches.iter().copied().filter(|b| b.0 < hw).collect()
}

pub fn check(h: &HistoryData, _ctx: &CheckContext) -> Option<Violation> {
    let c = h.cluster.as_ref()?;
    let mut f = Findings::new("replicas-agree", "replica logs that differ from their leader's below the high watermark");
    for (partition, replicas) in &c.final_replicas {
        let Some(&hw) = h.final_read.high_watermark.get(partition) else { continue };
        let Some(leader) = c.final_leaders.get(partition) else { continue };
        let Some((_, Ok(leader_log))) = replicas.iter().find(|(id, _)| id == leader) else { continue };
        let expected = below(leader_log, hw);
        for (id, log) in replicas {
            match log {
                Err(e) => f.add(format!("partition {partition}: replica {id}'s log cannot be read: {e}")),
                Ok(batches) if h.compaction.is_some() => {
                    let got = below(batches, hw);
                    for b in &got {
                        if let Some(l) = expected.iter().find(|l| l.0 <= b.1 && b.0 <= l.1 && l.2 != b.2) {
                            f.add(format!("partition {partition}: replica {id}'s batch {b:?} overlaps leader {leader}'s batch {l:?} of another leader epoch, below high watermark {hw}"));
                            break;
                        }
                    }
                }
                Ok(batches) => {
                    let got = below(batches, hw);
                    if got == expected {
                        continue;
                    }
                    let first = got.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
                    f.add(format!(
                        "partition {partition}: replica {id} differs from leader {leader} below high watermark {hw} at batch {first}: {:?} vs {:?} ({} vs {} batches)",
                        got.get(first),
                        expected.get(first),
                        got.len(),
                        expected.len()
                    ));
                }
            }
        }
    }
    f.into_violation()
}
