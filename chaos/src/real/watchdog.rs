//! The watchdog: whatever ends the suite (Ctrl-C, SIGTERM, SIGKILL, a panic), nothing it
//! started outlives it.
//!
//! A small shell process, in a process group of its own that every node and workload process of
//! the run joins, waits for the suite's process to end; then it deletes the run's network
//! namespaces (after killing what runs in them) and kills its whole group. It ignores SIGINT,
//! SIGTERM and SIGHUP, and the terminal's Ctrl-C does not reach its group, so it outlives an
//! interrupted suite by at most a second. After a normal end it finds nothing left to do.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set in the environment of the run inside the namespaces, so its processes join the group.
pub const PGID_ENV: &str = "GREGOR_CHAOS_PGID";

static GROUP: OnceLock<u32> = OnceLock::new();

/// The process group the run's processes join, if a watchdog runs.
pub fn group() -> Option<u32> {
    GROUP.get().copied().or_else(|| std::env::var(PGID_ENV).ok()?.parse().ok())
}

/// Starts the watchdog of this process; `namespaces` are deleted when it acts.
pub fn start(namespaces: &[String]) -> Result<u32, String> {
    let suite = std::process::id();
    let mut script = String::from("trap '' INT TERM HUP\n");
    script.push_str(&format!("while kill -0 {suite} 2>/dev/null; do sleep 1; done\n"));
    for ns in namespaces {
        script.push_str(&format!("ip netns pids {ns} 2>/dev/null | xargs -r kill -9 2>/dev/null\nip netns del {ns} 2>/dev/null\n"));
    }
    script.push_str("kill -9 -- -$$\n");
    let child = Command::new("sh")
        .args(["-c", &script])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the watchdog: {e}"))?;
    let pgid = child.id();
    // Never waited for: it ends after this process does.
    drop(child);
    let _ = GROUP.set(pgid);
    Ok(pgid)
}

/// Puts `cmd`'s process into the run's group, if a watchdog runs.
pub fn join(cmd: &mut Command) -> &mut Command {
    if let Some(g) = group() {
        cmd.process_group(g as i32);
    }
    cmd
}
