//! `gregor storage`: prepare and inspect a node's data directories, as `kafka-storage.sh` does.
//!
//! * `random-uuid` prints a new cluster id.
//! * `format` writes `meta.properties` (cluster id, node id, a new directory id) into every log
//!   directory and the metadata log directory of a node's config. Every node of a cluster is
//!   formatted with the same cluster id before its first start.
//! * `info` prints each directory's `meta.properties`, or that it is not formatted.
//!
//! Unlike the other tools these read the data directories (never while a broker writes them:
//! `format` only creates files that do not exist yet).

use std::path::Path;

use gregor_core::disk::Disk;
use gregor_storage::FileDisk;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::config::BrokerConfig;
use crate::meta_properties::{self, FormatOutcome, MetaProperties};

/// A new Kafka UUID for `--cluster-id`, from an RNG seeded with `seed`.
pub fn random_uuid(seed: u64) -> String {
    meta_properties::random_uuid(&mut SmallRng::seed_from_u64(seed))
}

/// Kafka's name for the kind of directory.
fn kind(config: &BrokerConfig, dir: &Path) -> &'static str {
    if dir == config.metadata_log_dir {
        "metadata directory"
    } else {
        "data directory"
    }
}

fn describe(p: &MetaProperties) -> String {
    format!(
        "version={} cluster.id={} node.id={} directory.id={}",
        meta_properties::VERSION,
        p.cluster_id,
        p.node_id,
        p.directory_id.as_deref().unwrap_or("(none)")
    )
}

/// `gregor storage format`: formats every directory of `config` for `cluster_id`; `seed` draws
/// the directory ids.
pub fn format(config: &BrokerConfig, cluster_id: &str, ignore_formatted: bool, seed: u64) -> anyhow::Result<()> {
    let disk = FileDisk::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let outcomes = meta_properties::format(&disk, &config.storage_dirs(), cluster_id, config.node_id, ignore_formatted, &mut rng)?;
    let mut formatted = 0;
    for (dir, outcome) in &outcomes {
        match outcome {
            FormatOutcome::Formatted(p) => {
                formatted += 1;
                println!("Formatting {} {} with {}.", kind(config, dir), dir.display(), describe(p));
            }
            FormatOutcome::AlreadyFormatted(_) => println!("Log directory {} is already formatted; left as it is.", dir.display()),
        }
    }
    if formatted == 0 {
        println!("All of the log directories are already formatted.");
    }
    Ok(())
}

/// `gregor storage info`: prints each directory's `meta.properties`. Fails if a file cannot be
/// read or the directories disagree (the node would refuse to start).
pub fn info(config: &BrokerConfig) -> anyhow::Result<()> {
    let disk = FileDisk::new();
    let mut problems = Vec::new();
    let mut seen: Option<(String, std::path::PathBuf)> = None;
    for dir in config.storage_dirs() {
        let label = kind(config, &dir);
        match meta_properties::load(&disk, &dir) {
            Ok(Some(p)) => {
                println!("{label} {}: {}", dir.display(), describe(&p));
                if p.node_id != config.node_id {
                    problems.push(format!("{} has node.id {} but the config has node.id {}", dir.display(), p.node_id, config.node_id));
                }
                match &seen {
                    Some((id, first)) if *id != p.cluster_id => {
                        problems.push(format!("{} has cluster.id {} but {} has {}", dir.display(), p.cluster_id, first.display(), id))
                    }
                    Some(_) => {}
                    None => seen = Some((p.cluster_id.clone(), dir.clone())),
                }
            }
            Ok(None) if disk.exists(&dir) => println!("{label} {}: not formatted", dir.display()),
            Ok(None) => println!("{label} {}: not formatted (does not exist)", dir.display()),
            Err(e) => {
                println!("{label} {}: error: {e}", dir.display());
                problems.push(e.to_string());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", problems.join("; "))
    }
}
