//! The real binary locks its log directory: a second broker on the same `log.dirs` refuses to
//! start with a message naming the directory, and starts once the first is gone, also when the
//! first was killed with SIGKILL (the OS releases the lock with the process).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["server", "--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override"])
        .arg(format!("log.dirs={}", dir.display()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor")
}

/// Waits for the broker's "listening on" line on stderr; panics with what it printed otherwise.
fn wait_serving(child: &mut Child) {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains("listening on");
            let _ = tx.send(line);
            if done {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("listening on") => return,
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    panic!("broker did not start serving; stderr: {seen:#?}");
}

/// The child's exit status; a child still running after `limit` is killed and fails the test.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the second broker is still running after {limit:?}: it started on a directory in use");
}

/// Kills the broker when the test ends, also when it fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_broker_on_the_same_log_dir_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("gregor-lock-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let mut first = Running(start(&dir));
    wait_serving(&mut first.0);

    let mut second = start(&dir);
    let status = exit_within(&mut second, Duration::from_secs(20));
    let mut err = String::new();
    second.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "the second broker ran: {err}");
    assert!(err.contains(&dir.display().to_string()) && err.contains("in use"), "message does not name the directory: {err}");
    assert!(first.0.try_wait().unwrap().is_none(), "the first broker died");

    // SIGKILL: no clean shutdown, yet the lock goes with the process.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let mut third = Running(start(&dir));
    wait_serving(&mut third.0);
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}
