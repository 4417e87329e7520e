//! The run's event log: one line per state transition of the world (node started, killed,
//! restarted; fault injected or healed; operation invoked and completed), stamped with simulated
//! time and the node it concerns.
//!
//! Every line feeds a 64-bit FNV-1a hash. Two runs of one seed must produce the same hash; CI
//! checks that on a sample of seeds. Lines are printed only when asked (`--trace`), so the hash
//! costs little in a campaign.

use std::sync::{Arc, Mutex};
use std::time::Duration;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

struct Inner {
    hash: u64,
    lines: u64,
    print: bool,
}

/// A shared handle to the run's trace.
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
}

impl Trace {
    /// A trace of the current run; `print` writes every line to stderr.
    pub fn new(print: bool) -> Trace {
        Trace { inner: Arc::new(Mutex::new(Inner { hash: FNV_OFFSET, lines: 0, print })) }
    }

    /// Simulated time since the run (the madsim runtime) began.
    pub fn elapsed(&self) -> Duration {
        madsim::time::TimeHandle::current().elapsed()
    }

    /// Records one event of `node`.
    pub fn event(&self, node: &str, what: impl AsRef<str>) {
        let t = self.elapsed();
        let line = format!("{:>4}.{:06}s {node:<10} {}", t.as_secs(), t.subsec_micros(), what.as_ref());
        // A backtrace (an anyhow error's Debug form under RUST_BACKTRACE) names the caller's
        // source lines, so a hash over it would differ between two runs of one seed.
        assert!(!line.contains("Stack backtrace:"), "trace line with a backtrace (format the error with Display): {line}");
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for b in line.as_bytes().iter().chain(b"\n") {
            inner.hash ^= u64::from(*b);
            inner.hash = inner.hash.wrapping_mul(FNV_PRIME);
        }
        inner.lines += 1;
        if inner.print {
            eprintln!("{line}");
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).hash
    }

    pub fn lines(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).lines
    }
}
