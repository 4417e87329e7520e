//! Reading the metadata file of data directories written before the metadata log existed
//! (`__gregor_metadata`: tab-separated lines ending in a CRC32C line), converted into the
//! records that describe the same topics, configs and producer-id block.

use std::collections::BTreeMap;
use std::path::Path;

use gregor_core::disk::{read_all, Disk};
use gregor_core::metadata::{MetadataRecord, RESOURCE_BROKER, RESOURCE_TOPIC};
use uuid::Uuid;

use crate::broker::StartError;

/// Name of the legacy metadata file inside the data directory.
pub const FILE_NAME: &str = "__gregor_metadata";

/// The records equivalent to the legacy file in `dir`, if there is one. Every partition gets
/// `node_id` as its only replica and leader, at leader epoch 0 (what the file implied).
pub fn read(disk: &dyn Disk, dir: &Path, node_id: i32) -> Result<Option<Vec<MetadataRecord>>, StartError> {
    let path = dir.join(FILE_NAME);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let what = path.display().to_string();
    let corrupt = |why: &str| StartError::LegacyMetadata(what.clone(), why.to_string());
    let bytes = read_all(disk, &path).map_err(|e| corrupt(&e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt("not UTF-8"))?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1).unwrap_or(0);
    let (body, last) = text.split_at(body_end);
    let crc: u32 = last.trim_end().strip_prefix("crc\t").and_then(|c| c.parse().ok()).ok_or_else(|| corrupt("missing crc line"))?;
    if crc32c::crc32c(body.as_bytes()) != crc {
        return Err(corrupt("crc mismatch"));
    }
    let mut topics: BTreeMap<String, (u128, i32)> = BTreeMap::new();
    let mut configs = Vec::new();
    let mut producer_ids = None;
    for line in body.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["topic", name, id, parts] => {
                let id = Uuid::parse_str(id).map_err(|_| corrupt("bad topic id"))?.as_u128();
                let partitions: i32 = parts.parse().map_err(|_| corrupt("bad partition count"))?;
                topics.insert(name.to_string(), (id, partitions));
            }
            ["config", name, k, v] => {
                if !topics.contains_key(*name) {
                    return Err(corrupt("config for unknown topic"));
                }
                configs.push(MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: name.to_string(), name: k.to_string(), value: Some(v.to_string()) });
            }
            ["broker-config", k, v] => {
                configs.push(MetadataRecord::Config { resource_type: RESOURCE_BROKER, resource_name: String::new(), name: k.to_string(), value: Some(v.to_string()) });
            }
            ["producer-id-block", end] => {
                producer_ids = Some(end.parse().ok().filter(|&e: &i64| e > 0).ok_or_else(|| corrupt("bad producer id block"))?);
            }
            _ => return Err(corrupt("unknown record")),
        }
    }
    let mut out = Vec::new();
    for (name, (topic_id, partitions)) in topics {
        out.push(MetadataRecord::Topic { name, topic_id });
        for partition_id in 0..partitions {
            out.push(MetadataRecord::Partition { topic_id, partition_id, replicas: vec![node_id], isr: vec![node_id], leader: node_id, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] });
        }
    }
    out.extend(configs);
    if let Some(next_producer_id) = producer_ids {
        out.push(MetadataRecord::ProducerIds { broker_id: node_id, broker_epoch: -1, next_producer_id });
    }
    Ok(Some(out))
}

/// Removes the legacy file once its records are in the metadata log.
pub fn remove(disk: &dyn Disk, dir: &Path) {
    if let Err(e) = disk.remove_file(&dir.join(FILE_NAME)) {
        tracing::warn!(error = %e, "could not remove the converted metadata file; it is ignored from now on");
    }
}
