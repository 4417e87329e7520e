//! The clock seam. Library code asks a [`Clock`] for the time instead of calling
//! `SystemTime::now`/`Instant::now`, so the simulator can substitute simulated time.
//!
//! Sleeping and timeouts go through `tokio::time` (provided by madsim-tokio, which is simulated
//! under `--cfg madsim`), so they need no method here.

use std::sync::Arc;

/// Source of time for the broker.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (record timestamps, retention).
    fn wall_ms(&self) -> i64;
    /// Monotonic milliseconds since an arbitrary fixed origin (timeouts, segment age).
    fn monotonic_ms(&self) -> u64;
    /// The monotonic clock in microseconds (request and fsync timings); no finer than
    /// milliseconds unless the clock says so.
    fn monotonic_us(&self) -> u64 {
        self.monotonic_ms().saturating_mul(1000)
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The production clock: the operating system's wall clock and monotonic clock.
///
/// This is an I/O adapter and one of the few places allowed to read the real clocks. Under
/// `--cfg madsim`, `std::time` is intercepted by madsim, so it is deterministic there too.
#[derive(Debug)]
pub struct SystemClock {
    origin: std::time::Instant,
}

// The adapter itself: the one place outside the simulator allowed to read the real clocks.
#[allow(clippy::disallowed_methods)]
impl SystemClock {
    pub fn new() -> Self {
        SystemClock { origin: std::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(clippy::disallowed_methods)]
impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(_) => 0,
        }
    }
    fn monotonic_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
    fn monotonic_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
}

/// A clock set by hand, for unit tests of time-dependent logic (retention, segment age).
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: std::sync::atomic::AtomicI64,
    monotonic_ms: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(wall_ms: i64) -> Self {
        let c = ManualClock::default();
        c.wall_ms.store(wall_ms, std::sync::atomic::Ordering::SeqCst);
        c
    }
    /// Moves both clocks forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.wall_ms.fetch_add(ms as i64, std::sync::atomic::Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn monotonic_ms(&self) -> u64 {
        self.monotonic_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
