//! The log cleaner's throughput and memory on real files: writes a dirty keyed log (1 GB by
//! default) into a fresh partition directory, cleans it in one pass, and prints MB/s and the
//! process's peak resident memory before and after cleaning.
//!
//! ```text
//! cargo run --release -p gregor-storage --example cleaner_bench -- [MB] [KEYS] [DIR]
//! ```
//! Defaults: 1024 MB of 200-byte values over 1,000,000 keys (so most records are superseded),
//! batches of 100 records, 128 MiB segments (plus one active segment beyond the dirty MB, which
//! the cleaner never touches), a 128 MiB dedupe buffer (Kafka's `log.cleaner.dedupe.buffer.size`),
//! in a directory under the system's temp directory that it deletes at the end.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use gregor_core::batch;
use gregor_core::disk::SharedDisk;
use gregor_storage::{CleanOptions, FileDisk, LogConfig, PartitionLog};

/// The process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mb: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let keys: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let root = args.get(2).map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join(format!("gregor-cleaner-bench-{}", std::process::id())));
    let dir = root.join("bench-0");
    let disk: SharedDisk = Arc::new(FileDisk::new());
    let segment_bytes: u64 = 128 << 20;
    let config = LogConfig { segment_bytes, ..LogConfig::default() };
    let (mut log, _) = PartitionLog::open(disk.clone(), dir.clone(), config, 0).expect("open");

    let value = vec![b'v'; 200];
    let start = Instant::now();
    let mut n = 0u64;
    while log.size_bytes() < (mb << 20) + segment_bytes {
        let ks: Vec<String> = (0..100).map(|i| format!("key-{:08}", (n + i) * 7_919 % keys)).collect();
        let records: Vec<(Option<&[u8]>, Option<&[u8]>)> = ks.iter().map(|k| (Some(k.as_bytes()), Some(&value[..]))).collect();
        let mut b = batch::build_simple(0, 1_000, &records);
        log.append(&mut b, 0, 1_000).expect("append");
        n += 100;
    }
    // Leave the last segment active so that everything before it can be cleaned.
    log.flush().expect("flush");
    let written_s = start.elapsed().as_secs_f64();
    let size = log.size_bytes();
    let rss_before = peak_rss_mb();
    println!("wrote {n} records, {:.0} MB in {} segments ({written_s:.1} s); peak RSS {rss_before:.0} MB", size as f64 / 1e6, log.segment_count());
    let opts = CleanOptions { dedupe_buffer_bytes: 128 << 20, delete_retention_ms: 86_400_000, decompressed_bytes_max: 64 << 20 };
    let start = Instant::now();
    let report = log.clean(log.log_end_offset(), 2_000, &opts).expect("clean");
    let secs = start.elapsed().as_secs_f64();
    match report {
        None => println!("nothing cleanable"),
        Some(r) => {
            println!(
                "cleaned [{}, {}): {:.0} MB dirty, read {:.0} MB, wrote {:.0} MB, removed {} records, segments {} -> {}, map {:.0}% full",
                r.first_dirty,
                r.cleaned_to,
                r.dirty_bytes as f64 / 1e6,
                r.bytes_read as f64 / 1e6,
                r.bytes_written as f64 / 1e6,
                r.removed.records,
                r.segments_before,
                r.segments_after,
                r.map_utilization * 100.0
            );
            println!(
                "cleaner: {secs:.1} s, {:.0} MB/s of dirty log ({:.0} MB/s read); peak RSS {:.0} MB (was {rss_before:.0} MB before cleaning)",
                r.dirty_bytes as f64 / 1e6 / secs,
                r.bytes_read as f64 / 1e6 / secs,
                peak_rss_mb()
            );
        }
    }
    drop(log);
    let _ = std::fs::remove_dir_all(&root);
}
