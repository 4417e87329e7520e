//! The history of a real-process chaos run: every operation the workload's clients made and
//! every fault the nemesis injected, one JSON object per line (`history.jsonl`).
//!
//! Guarantees: a history reads back exactly as written ([`History::parse`] of
//! [`History::to_jsonl`]); a line that is not an operation is refused with its line number,
//! never skipped, since a checker over a silently shortened history could miss a loss.

use serde::{Deserialize, Serialize};

/// What a producer learned of one send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SendOutcome {
    /// Acknowledged at this offset.
    Acked { offset: i64 },
    /// Definitely not written (the client says so: a non-retriable error before any attempt).
    Failed { error: String },
    /// Maybe written (timed out, or the client gave up after retries).
    Unknown { error: String },
}

/// One operation or event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A producer `process` sent `value` (unique in the run) to `partition` at `sent_ms` and
    /// learned its outcome at `time_ms`.
    Send {
        time_ms: u64,
        #[serde(default)]
        sent_ms: u64,
        process: u32,
        partition: i32,
        value: u64,
        #[serde(flatten)]
        outcome: SendOutcome,
    },
    /// A consumer `process` polled `partition` and got `records` (offset, value) in order.
    /// `epoch` counts the consumer's assignments: records of different epochs may go back (a
    /// rebalance or a restart re-reads from the committed offset).
    Poll { time_ms: u64, process: u32, epoch: u32, partition: i32, records: Vec<(i64, u64)> },
    /// A consumer of `group` committed `offset` (the next to read) for `partition`, acknowledged.
    Commit { time_ms: u64, process: u32, group: String, partition: i32, offset: i64 },
    /// The final read: everything in `partition` from its start, after the faults healed.
    FinalRead { time_ms: u64, partition: i32, records: Vec<(i64, u64)> },
    /// A fault starts (`phase` "start") or ends ("stop") on `nodes`.
    Fault { time_ms: u64, kind: String, phase: String, nodes: Vec<u32> },
    /// What the cluster said of a partition when asked (for the report; no checker reads it):
    /// its leader (-1: none) and ISR.
    PartitionState { time_ms: u64, partition: i32, leader: i32, isr: Vec<i32> },
    /// A node's Prometheus metrics when scraped (for the report): under-replicated partitions it
    /// leads, partitions it leads, and the leader elections it has applied since it started.
    NodeMetrics { time_ms: u64, node: u32, under_replicated: u64, leaders: u64, elections: u64 },
}

impl Op {
    pub fn time_ms(&self) -> u64 {
        match self {
            Op::Send { time_ms, .. }
            | Op::Poll { time_ms, .. }
            | Op::Commit { time_ms, .. }
            | Op::FinalRead { time_ms, .. }
            | Op::Fault { time_ms, .. }
            | Op::PartitionState { time_ms, .. }
            | Op::NodeMetrics { time_ms, .. } => *time_ms,
        }
    }
}

/// A whole run's operations, in the order they completed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn parse(text: &str) -> Result<History, String> {
        let mut ops = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            ops.push(serde_json::from_str(line).map_err(|e| format!("history line {}: {e}", i + 1))?);
        }
        Ok(History { ops })
    }

    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&serde_json::to_string(op).expect("an op always serializes"));
            out.push('\n');
        }
        out
    }

    /// Every acknowledged send: (partition, offset, value, time).
    pub fn acked(&self) -> impl Iterator<Item = (i32, i64, u64, u64)> + '_ {
        self.ops.iter().filter_map(|op| match op {
            Op::Send { partition, value, outcome: SendOutcome::Acked { offset }, time_ms, .. } => Some((*partition, *offset, *value, *time_ms)),
            _ => None,
        })
    }

    /// Every record read, by polls and the final read: (partition, offset, value).
    pub fn reads(&self) -> impl Iterator<Item = (i32, i64, u64)> + '_ {
        self.ops.iter().flat_map(|op| {
            let (partition, records) = match op {
                Op::Poll { partition, records, .. } | Op::FinalRead { partition, records, .. } => (*partition, records.as_slice()),
                _ => (0, &[][..]),
            };
            records.iter().map(move |(o, v)| (partition, *o, *v))
        })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn ack(process: u32, partition: i32, value: u64, offset: i64) -> Op {
        Op::Send { time_ms: value, sent_ms: value, process, partition, value, outcome: SendOutcome::Acked { offset } }
    }
    pub fn poll(process: u32, epoch: u32, partition: i32, records: &[(i64, u64)]) -> Op {
        Op::Poll { time_ms: 0, process, epoch, partition, records: records.to_vec() }
    }
    pub fn final_read(partition: i32, records: &[(i64, u64)]) -> Op {
        Op::FinalRead { time_ms: 0, partition, records: records.to_vec() }
    }

    #[test]
    fn a_history_reads_back_as_written() {
        let h = History {
            ops: vec![
                ack(1, 0, 7, 3),
                Op::Send { time_ms: 2, sent_ms: 1, process: 1, partition: 1, value: 8, outcome: SendOutcome::Unknown { error: "timed out".into() } },
                Op::PartitionState { time_ms: 3, partition: 0, leader: -1, isr: vec![2] },
                Op::NodeMetrics { time_ms: 3, node: 2, under_replicated: 1, leaders: 2, elections: 4 },
                poll(2, 0, 0, &[(3, 7)]),
                Op::Commit { time_ms: 3, process: 2, group: "g".into(), partition: 0, offset: 4 },
                Op::Fault { time_ms: 4, kind: "kill".into(), phase: "start".into(), nodes: vec![2] },
                final_read(0, &[(3, 7)]),
            ],
        };
        let text = h.to_jsonl();
        assert_eq!(History::parse(&text).unwrap(), h);
        assert!(text.lines().next().unwrap().contains("\"outcome\":\"acked\""), "{text}");
    }

    #[test]
    fn a_line_that_is_not_an_operation_is_refused_with_its_number() {
        let e = History::parse("{\"op\":\"final-read\",\"time_ms\":0,\"partition\":0,\"records\":[]}\n{\"op\":\"nope\"}\n").unwrap_err();
        assert!(e.starts_with("history line 2:"), "{e}");
    }
}
