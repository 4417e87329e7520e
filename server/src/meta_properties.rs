//! Kafka's `meta.properties`: which cluster and which node a data directory belongs to.
//!
//! Every log directory and the metadata log directory hold one, in Kafka's version 1 format:
//!
//! ```text
//! #
//! #Written by gregor
//! version=1
//! cluster.id=q1Sh-9_ISia_zwGINzRvyQ
//! node.id=1
//! directory.id=Vqr7eRvzQk2w0Pnh2zV8Yg
//! ```
//!
//! Cluster and directory ids are Kafka UUIDs: 16 random bytes written as URL-safe base64 without
//! padding (22 characters), drawn from the RNG the caller passes in.
//!
//! What this guarantees, as `kafka-storage.sh format` and a starting Kafka node do:
//! * [`format`] refuses a directory that is already formatted unless `ignore_formatted`, and even
//!   then refuses one formatted for another cluster or node. Files are written with
//!   [`write_atomic`]: a crash leaves the old file or the new one, never half of one.
//! * [`load`] treats a file it cannot parse as an error naming the file, never as absent: an
//!   unreadable identity must stop the node, not be silently replaced by a new cluster.
//! * [`ensure_formatted`] (at every start) requires all of a node's directories to agree on the
//!   cluster id and to carry the configured `node.id`. The embedded single-node quorum formats
//!   itself on first start; a node of a configured quorum must be formatted first
//!   (`gregor storage format`), because every node must share one cluster id that no node can
//!   invent alone. As Kafka does, a node whose metadata log directory is formatted formats any
//!   new, empty log directory added to `log.dirs`, and gives a directory id to a file that lacks
//!   one (files written by Gregor before directory ids existed).
//!
//! All file access goes through the [`Disk`] passed in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gregor_core::disk::{read_all, write_atomic, Disk};
use rand::Rng;

use crate::config::{BrokerConfig, QuorumMode};

/// The file's name in each directory.
pub const META_PROPERTIES: &str = "meta.properties";

/// The only `version` written and read.
pub const VERSION: u32 = 1;

/// Where the file is in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(META_PROPERTIES)
}

/// The contents of one `meta.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `cluster.id`: the same in every directory of every node of a cluster.
    pub cluster_id: String,
    /// `node.id`: the node the directory belongs to.
    pub node_id: i32,
    /// `directory.id`: this directory's own id, distinct among the node's directories. `None`
    /// only in a file written before directory ids (never written by this module).
    pub directory_id: Option<String>,
}

/// Why a directory's identity could not be read, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("malformed {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("Cluster ID string {id:?} does not appear to be a valid UUID: {reason}")]
    InvalidClusterId { id: String, reason: String },
    #[error("Log directory {dir} is already formatted. Use --ignore-formatted to ignore this directory and format the others.")]
    AlreadyFormatted { dir: String },
    #[error(
        "No `meta.properties` found in {dir} (have you run `gregor storage format` to format the directory?). \
         A node of a configured quorum (controller.quorum.voters) must be formatted before its first start, \
         with the same cluster id on every node: `gregor storage format --cluster-id <id> --config <file>` \
         (`gregor storage random-uuid` makes a new cluster id)"
    )]
    NotFormatted { dir: String },
    #[error(
        "Stored node id {stored} doesn't match the configured node.id {configured} in {path}. If you moved your data, \
         make sure your configured node.id matches. If you intend to create a new node, remove all data in its data directories."
    )]
    NodeIdMismatch { path: String, stored: i32, configured: i32 },
    #[error("Invalid cluster.id in: {path}. Expected {expected}, but read {found}")]
    ClusterIdMismatch { path: String, expected: String, found: String },
    #[error("Duplicate directory.id {id}: it is the id of {first} but also of {second}")]
    DuplicateDirectoryId { id: String, first: String, second: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.display().to_string(), source }
}

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's text form of a UUID: URL-safe base64 without padding (22 characters).
pub fn encode_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(BASE64_URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Parses a UUID's text form as Kafka's `Uuid.fromString` does: URL-safe base64 (padding
/// optional) that decodes to exactly 16 bytes.
pub fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    if s.len() > 24 {
        let prefix: String = s.chars().take(24).collect();
        return Err(format!("Input string with prefix `{prefix}` is too long to be decoded as a base64 UUID"));
    }
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return Err(format!("Input string `{s}` has too much padding"));
    }
    let mut bytes = Vec::with_capacity(18);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = BASE64_URL
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| format!("Illegal base64 character {:?} in `{s}`", c as char))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits == 6 {
        return Err(format!("Input string `{s}` ends with a unit that does not have enough valid bits"));
    }
    <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| {
        format!("Input string `{s}` decoded as {} bytes, which is not equal to the expected 16 bytes of a base64-encoded UUID", bytes.len())
    })
}

/// A new random Kafka UUID, as Kafka's `Uuid.randomUuid` makes them: a version-4 UUID that is
/// none of the reserved ids (all-zero high half and a low half below 100: Kafka reserves the zero
/// id, the metadata topic's id and directory-id sentinels there) and whose text does not start
/// with `-` (it would read as a command-line flag).
pub fn random_uuid<R: Rng + ?Sized>(rng: &mut R) -> String {
    loop {
        let mut b = [0u8; 16];
        rng.fill(&mut b[..]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let reserved = b[..8].iter().all(|x| *x == 0) && u64::from_be_bytes(b[8..].try_into().unwrap_or_default()) < 100;
        let text = encode_uuid(&b);
        if !reserved && !text.starts_with('-') {
            return text;
        }
    }
}

impl MetaProperties {
    /// The file's text, with a comment header in the style of Java's `Properties.store`.
    pub fn to_file_text(&self) -> String {
        let mut s = format!("#\n#Written by gregor\nversion={VERSION}\ncluster.id={}\nnode.id={}\n", self.cluster_id, self.node_id);
        if let Some(d) = &self.directory_id {
            s.push_str(&format!("directory.id={d}\n"));
        }
        s
    }

    /// Parses a file's text (`path` names it in errors). Comments (`#`, `!`) and unknown keys
    /// are skipped, as Java's `Properties` does; a line without `=` or `:`, a repeated key, a
    /// version other than 1, or a missing or invalid `cluster.id`, `node.id` or `directory.id`
    /// is an error.
    pub fn parse(text: &str, path: &Path) -> Result<MetaProperties, MetaError> {
        let bad = |reason: String| MetaError::Malformed { path: path.display().to_string(), reason };
        let mut props: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            if line.contains('\\') {
                return Err(bad(format!("line {}: escapes are not supported: {raw:?}", i + 1)));
            }
            let split = line.find(['=', ':']).ok_or_else(|| bad(format!("line {}: expected key=value, got {raw:?}", i + 1)))?;
            let (k, v) = (line[..split].trim(), line[split + 1..].trim());
            if props.insert(k, v).is_some() {
                return Err(bad(format!("{k} appears more than once")));
            }
        }
        match props.get("version") {
            Some(v) if v.parse::<u32>() == Ok(VERSION) => {}
            Some(v) => return Err(bad(format!("unsupported version {v:?} (only version=1, KRaft, is supported)"))),
            None => return Err(bad("version was not found (a version 0 file belongs to a ZooKeeper-era broker)".into())),
        }
        let cluster_id = match props.get("cluster.id") {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => return Err(bad("cluster.id was not found".into())),
        };
        let node_id = props
            .get("node.id")
            .ok_or_else(|| bad("node.id was not found".into()))?
            .parse::<i32>()
            .map_err(|_| bad("unable to read node.id as a base-10 number".into()))?;
        let directory_id = match props.get("directory.id") {
            Some(d) => {
                parse_uuid(d).map_err(|e| bad(format!("unable to read directory.id as a Uuid: {e}")))?;
                Some(d.to_string())
            }
            None => None,
        };
        Ok(MetaProperties { cluster_id, node_id, directory_id })
    }
}

/// Reads `dir/meta.properties`: `None` if there is none; an unreadable or malformed file is an
/// error naming it.
pub fn load(disk: &dyn Disk, dir: &Path) -> Result<Option<MetaProperties>, MetaError> {
    let path = path_in(dir);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let bytes = read_all(disk, &path).map_err(io_err(&path))?;
    let text = String::from_utf8(bytes).map_err(|_| MetaError::Malformed { path: path.display().to_string(), reason: "not UTF-8 text".into() })?;
    MetaProperties::parse(&text, &path).map(Some)
}

/// Writes `dir/meta.properties` atomically and durably, creating `dir` if needed.
pub fn store(disk: &dyn Disk, dir: &Path, props: &MetaProperties) -> Result<(), MetaError> {
    disk.create_dir_all(dir).map_err(io_err(dir))?;
    let path = path_in(dir);
    write_atomic(disk, &path, props.to_file_text().as_bytes()).map_err(io_err(&path))
}

/// What [`format`] did to one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatOutcome {
    /// Newly formatted with these properties.
    Formatted(MetaProperties),
    /// Already formatted for this cluster and node; left alone (`ignore_formatted`).
    AlreadyFormatted(MetaProperties),
}

/// Checks that every loaded directory has `cluster_id` (the first one found if `None`) and
/// `node_id`, and distinct directory ids. Returns the cluster id found, if any.
fn verify(loaded: &[(PathBuf, Option<MetaProperties>)], mut cluster_id: Option<String>, node_id: i32) -> Result<Option<String>, MetaError> {
    let mut dir_ids: BTreeMap<&str, &Path> = BTreeMap::new();
    for (dir, props) in loaded {
        let Some(p) = props else { continue };
        let path = path_in(dir).display().to_string();
        match &cluster_id {
            Some(expected) if *expected != p.cluster_id => {
                return Err(MetaError::ClusterIdMismatch { path, expected: expected.clone(), found: p.cluster_id.clone() })
            }
            Some(_) => {}
            None => cluster_id = Some(p.cluster_id.clone()),
        }
        if p.node_id != node_id {
            return Err(MetaError::NodeIdMismatch { path, stored: p.node_id, configured: node_id });
        }
        if let Some(d) = &p.directory_id {
            if let Some(first) = dir_ids.insert(d, dir) {
                return Err(MetaError::DuplicateDirectoryId { id: d.clone(), first: first.display().to_string(), second: dir.display().to_string() });
            }
        }
    }
    Ok(cluster_id)
}

/// A directory id distinct from those already used by the node's directories.
fn new_directory_id<R: Rng + ?Sized>(rng: &mut R, used: &[String]) -> String {
    loop {
        let id = random_uuid(rng);
        if !used.contains(&id) {
            return id;
        }
    }
}

fn load_all(disk: &dyn Disk, dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Option<MetaProperties>)>, MetaError> {
    dirs.iter().map(|d| Ok((d.clone(), load(disk, d)?))).collect()
}

/// Writes a new `meta.properties` into every unformatted directory of `loaded` (and a directory
/// id into formatted ones that lack it). Returns the outcome per directory, in order.
fn write_missing<R: Rng + ?Sized>(
    disk: &dyn Disk,
    loaded: Vec<(PathBuf, Option<MetaProperties>)>,
    cluster_id: &str,
    node_id: i32,
    rng: &mut R,
) -> Result<Vec<(PathBuf, FormatOutcome)>, MetaError> {
    let mut used: Vec<String> = loaded.iter().filter_map(|(_, p)| p.as_ref()?.directory_id.clone()).collect();
    let mut out = Vec::with_capacity(loaded.len());
    for (dir, props) in loaded {
        let outcome = match props {
            Some(p) if p.directory_id.is_some() => FormatOutcome::AlreadyFormatted(p),
            Some(mut p) => {
                let id = new_directory_id(rng, &used);
                used.push(id.clone());
                p.directory_id = Some(id);
                store(disk, &dir, &p)?;
                FormatOutcome::AlreadyFormatted(p)
            }
            None => {
                let id = new_directory_id(rng, &used);
                used.push(id.clone());
                let p = MetaProperties { cluster_id: cluster_id.to_string(), node_id, directory_id: Some(id) };
                store(disk, &dir, &p)?;
                FormatOutcome::Formatted(p)
            }
        };
        out.push((dir, outcome));
    }
    Ok(out)
}

/// `gregor storage format`: writes `meta.properties` with `cluster_id` and `node_id` (and a new
/// directory id each) into every directory of `dirs` (a node's log dirs and metadata log dir).
///
/// Refuses an invalid cluster id, and, before writing anything, a directory already formatted
/// (unless `ignore_formatted`, which skips it) and one formatted for another cluster or node
/// (always).
pub fn format<R: Rng + ?Sized>(
    disk: &dyn Disk,
    dirs: &[PathBuf],
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
    rng: &mut R,
) -> Result<Vec<(PathBuf, FormatOutcome)>, MetaError> {
    parse_uuid(cluster_id).map_err(|reason| MetaError::InvalidClusterId { id: cluster_id.to_string(), reason })?;
    let loaded = load_all(disk, dirs)?;
    verify(&loaded, Some(cluster_id.to_string()), node_id)?;
    if !ignore_formatted {
        if let Some((dir, _)) = loaded.iter().find(|(_, p)| p.is_some()) {
            return Err(MetaError::AlreadyFormatted { dir: dir.display().to_string() });
        }
    }
    write_missing(disk, loaded, cluster_id, node_id, rng)
}

/// The start-up check (called before the broker opens its data): every directory of
/// [`BrokerConfig::storage_dirs`] belongs to one cluster and to `config.node_id`.
///
/// Embedded single-node quorum: unformatted directories are formatted (with the cluster id
/// already present in another directory, else a new random one). Configured quorum: the metadata
/// log directory must have been formatted by `gregor storage format`; other empty log directories
/// are then formatted with its cluster id. Returns the properties of the first log directory.
pub fn ensure_formatted<R: Rng + ?Sized>(config: &BrokerConfig, disk: &dyn Disk, rng: &mut R) -> Result<MetaProperties, MetaError> {
    let dirs = config.storage_dirs();
    let loaded = load_all(disk, &dirs)?;
    let found = verify(&loaded, None, config.node_id)?;
    let cluster_id = match (config.quorum(), found) {
        (_, Some(id)) if loaded.iter().any(|(d, p)| *d == config.metadata_log_dir && p.is_some()) => id,
        (QuorumMode::Embedded, Some(id)) => id,
        (QuorumMode::Embedded, None) => random_uuid(rng),
        (QuorumMode::Voters(_), _) => return Err(MetaError::NotFormatted { dir: config.metadata_log_dir.display().to_string() }),
    };
    for (dir, _) in loaded.iter().filter(|(_, p)| p.is_none()) {
        tracing::info!(dir = %dir.display(), cluster_id = %cluster_id, node_id = config.node_id, "formatting data directory");
    }
    let outcomes = write_missing(disk, loaded, &cluster_id, config.node_id, rng)?;
    let first = outcomes.into_iter().next().map(|(_, o)| match o {
        FormatOutcome::Formatted(p) | FormatOutcome::AlreadyFormatted(p) => p,
    });
    first.ok_or_else(|| MetaError::NotFormatted { dir: config.log_dir.display().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_storage::{FaultConfig, MemDisk};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        let settings: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BrokerConfig::from_settings(&settings).unwrap()
    }

    fn voters_config(extra: &[(&str, &str)]) -> BrokerConfig {
        let mut all = vec![
            ("node.id", "1"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("log.dirs", "/d/a,/d/b"),
            ("metadata.log.dir", "/d/meta"),
        ];
        all.extend_from_slice(extra);
        config(&all)
    }

    fn disk() -> MemDisk {
        MemDisk::new(1, FaultConfig::default())
    }

    #[test]
    fn uuid_text_round_trips_and_is_validated_as_kafka_does() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..200 {
            let id = random_uuid(&mut rng);
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert_eq!(encode_uuid(&parse_uuid(&id).unwrap()), id);
        }
        let b: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(parse_uuid(&format!("{}==", encode_uuid(&b))).unwrap(), b);
        // Kafka's own example ids decode; an all-zero id is "AAAAAAAAAAAAAAAAAAAAAA".
        assert_eq!(parse_uuid("AAAAAAAAAAAAAAAAAAAAAA").unwrap(), [0u8; 16]);
        assert!(parse_uuid("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
        assert!(parse_uuid("shortish").unwrap_err().contains("decoded as 6 bytes, which is not equal to the expected 16 bytes"));
        assert!(parse_uuid("short").unwrap_err().contains("enough valid bits"));
        assert!(parse_uuid("AAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap_err().contains("too long"));
        assert!(parse_uuid("AAAAAAAAAAAAAAAAAAAA+A").unwrap_err().contains("Illegal base64 character"));
    }

    #[test]
    fn file_text_round_trips_and_malformed_files_are_errors() {
        let p = MetaProperties { cluster_id: "q1Sh-9_ISia_zwGINzRvyQ".into(), node_id: 3, directory_id: Some("Vqr7eRvzQk2w0Pnh2zV8Yg".into()) };
        let text = p.to_file_text();
        assert!(text.starts_with("#\n#"));
        assert!(text.contains("\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n"), "the broker reads this line");
        let path = Path::new("/d/meta.properties");
        assert_eq!(MetaProperties::parse(&text, path).unwrap(), p);
        // A file as Kafka writes it (Java Properties order, a date comment) reads the same.
        let kafka = "#\n#Tue Mar 05 10:00:00 UTC 2024\nnode.id=3\ndirectory.id=Vqr7eRvzQk2w0Pnh2zV8Yg\nversion=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n";
        assert_eq!(MetaProperties::parse(kafka, path).unwrap(), p);
        for (text, why) in [
            ("version=1\nnode.id=1\n", "cluster.id was not found"),
            ("version=1\ncluster.id=x\n", "node.id was not found"),
            ("version=1\ncluster.id=x\nnode.id=one\n", "node.id as a base-10 number"),
            ("version=0\nbroker.id=1\n", "unsupported version"),
            ("cluster.id=x\nnode.id=1\n", "version was not found"),
            ("version=1\ncluster.id=x\nnode.id=1\ndirectory.id=nope\n", "directory.id as a Uuid"),
            ("version=1\ncluster.id=x\ncluster.id=y\nnode.id=1\n", "appears more than once"),
            ("garbage\n", "expected key=value"),
        ] {
            let e = MetaProperties::parse(text, path).unwrap_err().to_string();
            assert!(e.contains("/d/meta.properties") && e.contains(why), "{e} (expected {why})");
        }
        let d = disk();
        d.create_dir_all(Path::new("/d")).unwrap();
        write_atomic(&d, path, b"\xff\xfe").unwrap();
        assert!(load(&d, Path::new("/d")).unwrap_err().to_string().contains("not UTF-8"));
        assert_eq!(load(&d, Path::new("/nowhere")).unwrap(), None);
    }

    #[test]
    fn format_writes_every_dir_and_refuses_formatted_ones() {
        let d = disk();
        let mut rng = SmallRng::seed_from_u64(1);
        let dirs = vec![PathBuf::from("/d/a"), PathBuf::from("/d/meta")];
        let cluster = random_uuid(&mut rng);
        let out = format(&d, &dirs, &cluster, 1, false, &mut rng).unwrap();
        assert!(out.iter().all(|(_, o)| matches!(o, FormatOutcome::Formatted(p) if p.cluster_id == cluster && p.node_id == 1)));
        let a = load(&d, &dirs[0]).unwrap().unwrap();
        let m = load(&d, &dirs[1]).unwrap().unwrap();
        assert_ne!(a.directory_id, m.directory_id);

        let e = format(&d, &dirs, &cluster, 1, false, &mut rng).unwrap_err().to_string();
        assert_eq!(e, "Log directory /d/a is already formatted. Use --ignore-formatted to ignore this directory and format the others.");
        // --ignore-formatted formats only the new directory.
        let more = vec![dirs[0].clone(), dirs[1].clone(), PathBuf::from("/d/b")];
        let out = format(&d, &more, &cluster, 1, true, &mut rng).unwrap();
        assert!(matches!(out[0].1, FormatOutcome::AlreadyFormatted(_)));
        assert!(matches!(out[2].1, FormatOutcome::Formatted(_)));
        assert_eq!(load(&d, &dirs[0]).unwrap().unwrap(), a, "a formatted directory is left alone");
        // ... but never adopts a directory of another cluster or node.
        let other = random_uuid(&mut rng);
        assert!(matches!(format(&d, &more, &other, 1, true, &mut rng), Err(MetaError::ClusterIdMismatch { .. })));
        assert!(matches!(format(&d, &more, &cluster, 2, true, &mut rng), Err(MetaError::NodeIdMismatch { .. })));
        let e = format(&d, &more, "not-a-uuid", 1, true, &mut rng).unwrap_err().to_string();
        assert!(e.starts_with("Cluster ID string \"not-a-uuid\" does not appear to be a valid UUID"), "{e}");
    }

    #[test]
    fn embedded_mode_formats_on_first_start_and_keeps_its_identity() {
        let d = disk();
        let mut rng = SmallRng::seed_from_u64(2);
        let c = config(&[("node.id", "0"), ("log.dirs", "/data")]);
        let first = ensure_formatted(&c, &d, &mut rng).unwrap();
        assert_eq!(first.node_id, 0);
        assert!(parse_uuid(&first.cluster_id).is_ok() && first.directory_id.is_some());
        assert_eq!(ensure_formatted(&c, &d, &mut rng).unwrap(), first, "restart keeps the identity");
        // A file without a directory id (older Gregor) keeps its cluster id and gains one.
        write_atomic(&d, &path_in(Path::new("/data")), b"version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAB\nnode.id=0\n").unwrap();
        let p = ensure_formatted(&c, &d, &mut rng).unwrap();
        assert_eq!(p.cluster_id, "AAAAAAAAAAAAAAAAAAAAAB");
        assert!(p.directory_id.is_some());
        assert_eq!(load(&d, Path::new("/data")).unwrap().unwrap(), p);
        // A different node.id is refused naming node.id.
        let e = ensure_formatted(&config(&[("node.id", "5"), ("log.dirs", "/data")]), &d, &mut rng).unwrap_err().to_string();
        assert!(e.contains("configured node.id 5") && e.contains("/data/meta.properties"), "{e}");
    }

    #[test]
    fn configured_quorum_requires_format_and_agreement() {
        let d = disk();
        let mut rng = SmallRng::seed_from_u64(3);
        let c = voters_config(&[]);
        let e = ensure_formatted(&c, &d, &mut rng).unwrap_err().to_string();
        assert!(e.contains("No `meta.properties` found in /d/meta") && e.contains("gregor storage format --cluster-id") && e.contains("gregor storage random-uuid"), "{e}");
        assert!(!d.exists(&path_in(Path::new("/d/a"))), "nothing is written when refusing");

        let cluster = random_uuid(&mut rng);
        format(&d, &c.storage_dirs(), &cluster, 1, false, &mut rng).unwrap();
        let p = ensure_formatted(&c, &d, &mut rng).unwrap();
        assert_eq!((p.cluster_id.as_str(), p.node_id), (cluster.as_str(), 1));
        assert_eq!(load(&d, Path::new("/d/a")).unwrap().unwrap(), p, "the first log dir's properties");

        // A log dir added later is formatted with the metadata dir's cluster id.
        let c2 = voters_config(&[("log.dirs", "/d/a,/d/b,/d/c")]);
        ensure_formatted(&c2, &d, &mut rng).unwrap();
        assert_eq!(load(&d, Path::new("/d/c")).unwrap().unwrap().cluster_id, cluster);

        // A directory of another cluster is refused naming cluster.id and the file.
        let stranger = MetaProperties { cluster_id: random_uuid(&mut rng), node_id: 1, directory_id: Some(random_uuid(&mut rng)) };
        store(&d, Path::new("/d/b"), &stranger).unwrap();
        let e = ensure_formatted(&c, &d, &mut rng).unwrap_err().to_string();
        assert!(e.contains("Invalid cluster.id in: /d/b/meta.properties"), "{e}");
        // Two directories with one directory id (a copied directory) are refused.
        let mut copy = load(&d, Path::new("/d/a")).unwrap().unwrap();
        store(&d, Path::new("/d/b"), &copy).unwrap();
        assert!(matches!(ensure_formatted(&c, &d, &mut rng), Err(MetaError::DuplicateDirectoryId { .. })));
        copy.directory_id = Some(random_uuid(&mut rng));
        store(&d, Path::new("/d/b"), &copy).unwrap();
        ensure_formatted(&c, &d, &mut rng).unwrap();
        // A malformed file is an error, never treated as absent.
        write_atomic(&d, &path_in(Path::new("/d/meta")), b"version=1\n").unwrap();
        let e = ensure_formatted(&c, &d, &mut rng).unwrap_err().to_string();
        assert!(e.contains("malformed /d/meta/meta.properties"), "{e}");
    }
}
