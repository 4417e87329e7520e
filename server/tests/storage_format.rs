//! `gregor storage` and the start-up format check, through the real binary: `random-uuid`
//! prints Kafka UUIDs; `format` writes every directory and refuses a formatted one unless
//! `--ignore-formatted`; a node with `controller.quorum.voters` refuses to start on an
//! unformatted directory, naming the command to run; the embedded default formats itself.
//!
//! Every test works in its own directory under the system temp dir (removed at the end), only
//! binds 127.0.0.1 port 0, and bounds its own time (a process that outlives its bound is killed
//! by its PID).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const GREGOR: &str = env!("CARGO_BIN_EXE_gregor");
/// Bound on any one process run.
const RUN_MAX: Duration = Duration::from_secs(30);

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("gregor-storage-format-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for `child` up to `max`; kills it (by PID) and panics if it is still running.
fn wait_bounded(mut child: Child, max: Duration, what: &str) -> Output {
    let deadline = Instant::now() + max;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} did not exit within {max:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `gregor args…` in `cwd` to completion (bounded).
fn gregor(cwd: &Path, args: &[&str]) -> Output {
    let child = Command::new(GREGOR)
        .args(args)
        .current_dir(cwd)
        .env("GREGOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor");
    wait_bounded(child, RUN_MAX, &format!("gregor {args:?}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_props(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("meta.properties")).unwrap_or_else(|e| panic!("no meta.properties in {}: {e}", dir.display()))
}

fn prop<'a>(props: &'a str, key: &str) -> Option<&'a str> {
    props.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A combined node of a one-voter configured quorum, data under `root`.
fn write_node_config(root: &Path) -> PathBuf {
    let path = root.join("node1.properties");
    let text = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0\n\
         controller.listener.names=CONTROLLER\n\
         controller.quorum.voters=1@127.0.0.1:9093\n\
         log.dirs={a},{b}\nmetadata.log.dir={meta}\n",
        a = root.join("a").display(),
        b = root.join("b").display(),
        meta = root.join("meta").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn random_uuid(cwd: &Path) -> String {
    let out = gregor(cwd, &["storage", "random-uuid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn random_uuid_prints_a_new_kafka_uuid_each_time() {
    let tmp = TempDir::new("uuid");
    let a = random_uuid(tmp.path());
    let b = random_uuid(tmp.path());
    for id in [&a, &b] {
        assert_eq!(id.len(), 22, "{id:?}");
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{id:?}");
        assert!(!id.starts_with('-'));
    }
    assert_ne!(a, b);
}

#[test]
fn format_writes_every_dir_and_refuses_a_formatted_one_unless_ignore_formatted() {
    let tmp = TempDir::new("format");
    let root = tmp.path();
    let config = write_node_config(root);
    let config = config.to_str().unwrap();
    let id = random_uuid(root);

    let out = gregor(root, &["storage", "format", "--cluster-id", &id, "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Formatting metadata directory") && stdout.contains("Formatting data directory"), "{stdout}");
    let mut dir_ids = Vec::new();
    for d in ["a", "b", "meta"] {
        let props = read_props(&root.join(d));
        assert!(props.starts_with('#'), "Kafka's comment header: {props}");
        assert_eq!(prop(&props, "version"), Some("1"));
        assert_eq!(prop(&props, "cluster.id"), Some(id.as_str()));
        assert_eq!(prop(&props, "node.id"), Some("1"));
        dir_ids.push(prop(&props, "directory.id").expect("directory.id").to_string());
    }
    dir_ids.sort();
    dir_ids.dedup();
    assert_eq!(dir_ids.len(), 3, "directory ids are distinct");

    // A second format is refused (short aliases, as kafka-storage.sh), and nothing changes.
    let before = read_props(&root.join("a"));
    let out = gregor(root, &["storage", "format", "-t", &id, "-c", config]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
            root.join("a").display()
        )),
        "{stderr}"
    );
    assert_eq!(read_props(&root.join("a")), before);

    // --ignore-formatted (-g) accepts them and formats only a newly added directory.
    let dirs = format!("log.dirs={},{},{}", root.join("a").display(), root.join("b").display(), root.join("c").display());
    let out = gregor(root, &["storage", "format", "-t", &id, "-c", config, "-g", "--override", &dirs]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read_props(&root.join("a")), before);
    assert_eq!(prop(&read_props(&root.join("c")), "cluster.id"), Some(id.as_str()));
    let out = gregor(root, &["storage", "format", "-t", &id, "-c", config, "--ignore-formatted"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("All of the log directories are already formatted."));

    // ... but never for another cluster.
    let other = random_uuid(root);
    let out = gregor(root, &["storage", "format", "-t", &other, "-c", config, "-g"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Invalid cluster.id in:"), "{}", text(&out.stderr));

    // info lists every directory.
    let out = gregor(root, &["storage", "info", "-c", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches(&format!("cluster.id={id}")).count(), 3, "{stdout}");
    let out = gregor(root, &["storage", "info", "-c", config, "--override", &format!("metadata.log.dir={}", root.join("new").display())]);
    assert!(text(&out.stdout).contains("not formatted"), "{}", text(&out.stdout));
}

#[test]
fn format_refuses_bad_arguments() {
    let tmp = TempDir::new("badargs");
    let root = tmp.path();
    let config = write_node_config(root);
    let config = config.to_str().unwrap();
    let out = gregor(root, &["storage", "format", "-t", "not-a-uuid", "-c", config]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Cluster ID string \"not-a-uuid\" does not appear to be a valid UUID"), "{}", text(&out.stderr));
    assert!(!root.join("a").join("meta.properties").exists());
    // Missing arguments: clap's usage.
    let out = gregor(root, &["storage", "format", "-c", config]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Usage:") && text(&out.stderr).contains("--cluster-id"), "{}", text(&out.stderr));
    // A config that would not start is refused by format too, naming the key.
    let id = random_uuid(root);
    let out = gregor(root, &["storage", "format", "-t", &id, "-c", config, "--override", "node.id=7"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("controller.quorum.voters"), "{}", text(&out.stderr));
}

/// Runs `gregor server args…` in `cwd` with stderr to a file, until `ready` appears in it or the
/// process exits. Returns the child if it is still running, and what it printed.
fn start_server(cwd: &Path, args: &[&str], ready: &str) -> (Option<Child>, String) {
    static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let log = cwd.join(format!("server-{n}.log"));
    let mut child = Command::new(GREGOR)
        .arg("server")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn gregor server");
    let deadline = Instant::now() + RUN_MAX;
    loop {
        let mut printed = String::new();
        if let Ok(mut f) = std::fs::File::open(&log) {
            let _ = f.read_to_string(&mut printed);
        }
        if printed.contains(ready) {
            return (Some(child), printed);
        }
        if child.try_wait().unwrap().is_some() {
            std::thread::sleep(Duration::from_millis(50));
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            return (None, printed);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gregor server {args:?} neither became ready nor exited within {RUN_MAX:?}: {printed}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a server by its PID: SIGTERM, then SIGKILL if it has not exited within the bound.
fn stop(child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let out = wait_bounded(child, RUN_MAX, "gregor server after SIGTERM");
    assert!(out.status.success(), "clean shutdown: {:?}", out.status);
}

#[test]
fn server_with_voters_refuses_an_unformatted_dir_and_starts_once_formatted() {
    let tmp = TempDir::new("unformatted");
    let root = tmp.path();
    let config = write_node_config(root);
    let config = config.to_str().unwrap();
    let (child, printed) = start_server(root, &["--config", config], "listening on");
    if let Some(child) = child {
        stop(child);
        panic!("started on an unformatted directory: {printed}");
    }
    assert!(printed.contains(&format!("No `meta.properties` found in {}", root.join("meta").display())), "{printed}");
    assert!(printed.contains("gregor storage format --cluster-id <id> --config <file>"), "{printed}");
    assert!(printed.contains("gregor storage random-uuid"), "{printed}");
    assert!(!root.join("meta").join("meta.properties").exists(), "a refused start writes no identity");

    let id = random_uuid(root);
    let out = gregor(root, &["storage", "format", "-t", &id, "-c", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (child, printed) = start_server(root, &["--config", config], "listening on");
    let child = child.unwrap_or_else(|| panic!("formatted node did not start: {printed}"));
    stop(child);

    // A node.id that is not the formatted one is refused naming node.id.
    let (child, printed) = start_server(
        root,
        &["--config", config, "--override", "node.id=2", "--override", "controller.quorum.voters=2@127.0.0.1:9193"],
        "listening on",
    );
    if let Some(child) = child {
        stop(child);
        panic!("started with another node.id: {printed}");
    }
    assert!(printed.contains("doesn't match the configured node.id 2"), "{printed}");
}

#[test]
fn default_server_formats_itself_on_first_start_and_keeps_its_identity() {
    let tmp = TempDir::new("embedded");
    let root = tmp.path();
    let (child, printed) = start_server(root, &["--override", "listeners=PLAINTEXT://127.0.0.1:0"], "listening on");
    let child = child.unwrap_or_else(|| panic!("default server did not start: {printed}"));
    let props = read_props(&root.join("gregor-data"));
    stop(child);
    let cluster_id = prop(&props, "cluster.id").expect("cluster.id").to_string();
    assert_eq!(cluster_id.len(), 22);
    assert_eq!(prop(&props, "node.id"), Some("1"));
    assert_eq!(prop(&props, "directory.id").map(str::len), Some(22));

    // A restart keeps the identity; `storage info` shows it.
    let (child, printed) = start_server(root, &["--override", "listeners=PLAINTEXT://127.0.0.1:0"], "listening on");
    let child = child.unwrap_or_else(|| panic!("restart failed: {printed}"));
    stop(child);
    assert_eq!(read_props(&root.join("gregor-data")), props);
    std::fs::write(root.join("empty.properties"), "").unwrap();
    let out = gregor(root, &["storage", "info", "-c", "empty.properties"]);
    assert!(text(&out.stdout).contains(&format!("cluster.id={cluster_id}")), "{}", text(&out.stdout));
}
