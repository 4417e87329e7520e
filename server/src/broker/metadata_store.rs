//! The durable record of which topics exist: names, ids, partition counts and config overrides,
//! plus dynamic broker config overrides.
//!
//! Stored as one small text file replaced atomically (`write_atomic`: temp file, fsync, rename,
//! directory fsync), ending in a CRC32C line so a damaged file is detected instead of trusted.
//! A single-node broker has no metadata log yet; the controller quorum will replace this file.
//!
//! Format, one record per line, fields separated by tabs:
//! `topic <name> <topic-id-hex> <partitions>` · `config <name> <key> <value>` ·
//! `broker-config <key> <value>` · `producer-id-block <end>` (omitted while 0) ·
//! last line `crc <crc32c of everything before it>`.
//!
//! Producer ids are handed out in blocks: the broker stores the end of a new block here *before*
//! it hands out any id from the block, and starts from the stored end after a restart, so an id
//! is never given to two producers (the unused rest of a block is skipped, as in Kafka).

use std::collections::BTreeMap;
use std::path::Path;

use gregor_core::disk::{read_all, write_atomic, Disk};
use uuid::Uuid;

/// What is persisted about one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// The whole persisted metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicRecord>,
    pub broker_configs: BTreeMap<String, String>,
    /// Every producer id below this may have been handed out; the next block starts here.
    pub producer_id_block_end: i64,
}

/// Why the metadata file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("metadata I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Name of the metadata file inside the data directory.
pub const FILE_NAME: &str = "__gregor_metadata";

impl MetadataImage {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::new();
        for (name, t) in &self.topics {
            s.push_str(&format!("topic\t{name}\t{}\t{}\n", t.id.simple(), t.partitions));
            for (k, v) in &t.configs {
                s.push_str(&format!("config\t{name}\t{k}\t{v}\n"));
            }
        }
        for (k, v) in &self.broker_configs {
            s.push_str(&format!("broker-config\t{k}\t{v}\n"));
        }
        if self.producer_id_block_end != 0 {
            s.push_str(&format!("producer-id-block\t{}\n", self.producer_id_block_end));
        }
        let crc = crc32c::crc32c(s.as_bytes());
        s.push_str(&format!("crc\t{crc}\n"));
        s.into_bytes()
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<MetadataImage, MetadataError> {
        let corrupt = |why: &str| MetadataError::Corrupt(what.to_string(), why.to_string());
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
        let body_end = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1).unwrap_or(0);
        let (body, last) = text.split_at(body_end);
        let crc: u32 = last
            .trim_end()
            .strip_prefix("crc\t")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| corrupt("missing crc line"))?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return Err(corrupt("crc mismatch"));
        }
        let mut image = MetadataImage::default();
        for line in body.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["topic", name, id, parts] => {
                    let id = Uuid::parse_str(id).map_err(|_| corrupt("bad topic id"))?;
                    let partitions = parts.parse().map_err(|_| corrupt("bad partition count"))?;
                    image.topics.insert(name.to_string(), TopicRecord { id, partitions, configs: BTreeMap::new() });
                }
                ["config", name, k, v] => {
                    image
                        .topics
                        .get_mut(*name)
                        .ok_or_else(|| corrupt("config for unknown topic"))?
                        .configs
                        .insert(k.to_string(), v.to_string());
                }
                ["broker-config", k, v] => {
                    image.broker_configs.insert(k.to_string(), v.to_string());
                }
                ["producer-id-block", end] => {
                    image.producer_id_block_end = end.parse().ok().filter(|&e: &i64| e >= 0).ok_or_else(|| corrupt("bad producer id block"))?;
                }
                _ => return Err(corrupt("unknown record")),
            }
        }
        Ok(image)
    }

    /// Loads the image from `dir`, or an empty one if the file does not exist yet.
    pub fn load(disk: &dyn Disk, dir: &Path) -> Result<MetadataImage, MetadataError> {
        let path = dir.join(FILE_NAME);
        if !disk.exists(&path) {
            return Ok(MetadataImage::default());
        }
        let bytes = read_all(disk, &path)?;
        MetadataImage::decode(&bytes, &path.display().to_string())
    }

    /// Replaces the stored image atomically and durably.
    pub fn store(&self, disk: &dyn Disk, dir: &Path) -> std::io::Result<()> {
        write_atomic(disk, &dir.join(FILE_NAME), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut img = MetadataImage::default();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        img.topics.insert("t".into(), TopicRecord { id: Uuid::from_u128(7), partitions: 3, configs });
        img.broker_configs.insert("log.retention.ms".into(), "5".into());
        img.producer_id_block_end = 3000;
        let bytes = img.encode();
        assert_eq!(MetadataImage::decode(&bytes, "x").unwrap(), img);
        for i in 0..bytes.len() - 1 {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(MetadataImage::decode(&b, "x").map(|d| d != img).unwrap_or(true), "flip at {i} undetected");
        }
    }
}
