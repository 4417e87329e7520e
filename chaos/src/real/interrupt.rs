//! Ctrl-C during a run: the first one ends the run early but still judges it, the second stops
//! at once.
//!
//! After the first SIGINT the fault in progress heals, no further fault starts, the workload is
//! asked to stop (SIGTERM: its sends still end in operations), and the run goes on as at its
//! end: settling, the final read, the checkers and the report, all within their own limits. A
//! second SIGINT exits with status 130; the [watchdog](super::watchdog) then stops every process
//! and deletes every namespace. The terminal's Ctrl-C does not reach the nodes or the workload
//! (they are in the watchdog's process group), so only the suite decides what they see.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU32 = AtomicU32::new(0);

/// Whether the run has been asked to end early.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Counts one SIGINT: the first asks the run to end early (saying `first` on standard error),
/// the second exits.
fn on_sigint(first: &str) {
    if COUNT.fetch_add(1, Ordering::Relaxed) == 0 {
        INTERRUPTED.store(true, Ordering::Relaxed);
        if !first.is_empty() {
            eprintln!("\n{first}");
        }
    } else {
        eprintln!("\ngregor-chaos real: interrupted again; stopping at once (the watchdog stops what the run started)");
        std::process::exit(130);
    }
}

/// Replaces SIGINT's default (exit) with [`on_sigint`] for the rest of the process. `first` is
/// what the first Ctrl-C prints (nothing when empty). Called once per process: a second call
/// is refused (two watchers would count one Ctrl-C twice).
#[cfg(not(madsim))]
pub fn install(first: &'static str) -> Result<(), String> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::Relaxed) {
        return Err("the Ctrl-C watcher is already installed".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    // Registered before returning, so no Ctrl-C after this call takes the default action.
    let mut sigint = rt
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) })
        .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    std::thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            rt.block_on(async move {
                while sigint.recv().await.is_some() {
                    on_sigint(first);
                }
            })
        })
        .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    Ok(())
}

/// The simulator build has no real signals; Ctrl-C keeps its default there.
#[cfg(madsim)]
pub fn install(_first: &'static str) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_interrupt_is_remembered() {
        assert!(!interrupted());
        on_sigint("test: first interrupt");
        assert!(interrupted());
    }
}
