//! `replication-offset-checkpoint`: the high watermark of every hosted partition, in Kafka's
//! text format (a version line `0`, a count line, then `topic partition offset` lines), written
//! atomically every `replica.high.watermark.checkpoint.interval.ms` and at clean shutdown.
//!
//! A restarted replica starts with the checkpointed high watermark (never more than its log
//! end), so records beyond it — appended but perhaps never committed — stay invisible to
//! consumers until the ISR has them again. A missing or damaged file is not fatal: every
//! partition then starts at its log start and learns its high watermark from its leader or its
//! ISR, as a new replica does.

use std::collections::BTreeMap;
use std::path::Path;

use gregor_core::disk::{read_all, write_atomic, Disk};

use super::replica_manager::TopicPartition;

pub const FILE_NAME: &str = "replication-offset-checkpoint";

/// Most lines read from a checkpoint (bounds memory on a damaged file).
const ENTRIES_MAX: usize = 1_000_000;

pub fn encode(hws: &BTreeMap<TopicPartition, i64>) -> String {
    let mut s = format!("0\n{}\n", hws.len());
    for ((t, p), hw) in hws {
        s.push_str(&format!("{t} {p} {hw}\n"));
    }
    s
}

/// Parses a checkpoint; `None` if it is not exactly a valid one.
pub fn decode(text: &str) -> Option<BTreeMap<TopicPartition, i64>> {
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    if count > ENTRIES_MAX {
        return None;
    }
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let mut parts = lines.next()?.split(' ');
        let (t, p, hw) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse::<i64>().ok()?);
        if parts.next().is_some() || t.is_empty() || hw < 0 {
            return None;
        }
        out.insert((t.to_string(), p), hw);
    }
    lines.next().is_none().then_some(out)
}

/// Reads the checkpoint in `dir` (empty if missing or damaged, with a warning for damage).
pub fn read(disk: &dyn Disk, dir: &Path) -> BTreeMap<TopicPartition, i64> {
    let path = dir.join(FILE_NAME);
    if !disk.exists(&path) {
        return BTreeMap::new();
    }
    match read_all(disk, &path).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|t| decode(&t)) {
        Some(m) => m,
        None => {
            tracing::warn!(path = %path.display(), "ignoring a damaged high watermark checkpoint");
            BTreeMap::new()
        }
    }
}

pub fn write(disk: &dyn Disk, dir: &Path, hws: &BTreeMap<TopicPartition, i64>) -> std::io::Result<()> {
    write_atomic(disk, &dir.join(FILE_NAME), encode(hws).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_refused() {
        let m: BTreeMap<TopicPartition, i64> = [(("a".to_string(), 0), 5), (("b-c".to_string(), 3), 0)].into_iter().collect();
        let text = encode(&m);
        assert_eq!(decode(&text), Some(m));
        for cut in 0..text.len() - 1 {
            assert_eq!(decode(&text[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode("1\n0\n"), None);
        assert_eq!(decode("0\n1\na 0 -3\n"), None);
        assert_eq!(decode("0\n99999999999\n"), None);
        assert_eq!(decode("0\n0\n"), Some(BTreeMap::new()));
    }
}
