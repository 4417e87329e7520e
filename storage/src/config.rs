//! Topic-level log configuration, with Kafka's key names, defaults and validation.
//!
//! Guarantees: a [`LogConfig`] produced by [`LogConfig::with_overrides`] has every value inside the
//! range Kafka accepts, so the log never has to re-check it. Values print back (via
//! [`LogConfig::get`]) exactly as Kafka prints them for DescribeConfigs.
//!
//! `flush.messages` and `flush.ms` default to `i64::MAX`, Kafka's own sentinel for "not set": the
//! log does not act on them itself; the server's durability policy reads them.

use std::collections::BTreeMap;

/// `message.timestamp.type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    pub fn as_str(&self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// `cleanup.policy`: what happens to old segments. At least one of the two is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: time and size retention remove whole old segments.
    pub delete: bool,
    /// `compact`: the cleaner keeps the latest record of every key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy { delete: true, compact: false };

    /// Parses Kafka's list form (`delete`, `compact`, `compact,delete`, spaces allowed).
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut p = CleanupPolicy { delete: false, compact: false };
        for item in value.split(',').map(str::trim) {
            match item {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                _ => return None,
            }
        }
        (p.delete || p.compact).then_some(p)
    }

    pub fn as_str(&self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }
}

/// Prints a double as Java's `Double.toString` does (`0.5`, `1.0`, `1.7976931348623157E308`), as
/// Kafka's DescribeConfigs shows it.
pub fn java_double(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        let sci = format!("{v:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// The configuration of one partition log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`: delete old segments while the log is bigger than this; -1 = unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: usize,
    /// `flush.messages`: `i64::MAX` (the default) means "not set".
    pub flush_messages: i64,
    /// `flush.ms`: `i64::MAX` (the default) means "not set".
    pub flush_ms: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: the cleaner takes a log once its dirty share is above this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose dirty section holds a record older than this is
    /// cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: a tombstone is kept at least this long after the cleaner first
    /// reaches it.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            cleanup_policy: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

/// A topic configuration that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

const CLEANUP_POLICY: &str = "cleanup.policy";
const SEGMENT_BYTES: &str = "segment.bytes";
const SEGMENT_MS: &str = "segment.ms";
const RETENTION_MS: &str = "retention.ms";
const RETENTION_BYTES: &str = "retention.bytes";
const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
const TIMESTAMP_TYPE: &str = "message.timestamp.type";
const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
const FLUSH_MESSAGES: &str = "flush.messages";
const FLUSH_MS: &str = "flush.ms";
const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
const DELETE_RETENTION_MS: &str = "delete.retention.ms";

/// Kafka's minimum `segment.bytes` (a segment must hold at least a log overhead).
pub const SEGMENT_BYTES_MIN: u64 = 14;

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), reason: reason.to_string() }
}

fn parse_long(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v: i64 = value.trim().parse().map_err(|_| invalid(key, value, "Not a number of type LONG"))?;
    if v < min {
        return Err(invalid(key, value, &format!("Value must be at least {min}")));
    }
    if v > max {
        return Err(invalid(key, value, &format!("Value must be no more than {max}")));
    }
    Ok(v)
}

/// A double in `[min, max]` (`min.cleanable.dirty.ratio`).
pub fn parse_double(key: &str, value: &str, min: f64, max: f64) -> Result<f64, ConfigError> {
    let v: f64 = value.trim().parse().map_err(|_| invalid(key, value, "Not a number of type DOUBLE"))?;
    if v.is_nan() || v < min {
        return Err(invalid(key, value, &format!("Value must be at least {}", java_double(min))));
    }
    if v > max {
        return Err(invalid(key, value, &format!("Value must be no more than {}", java_double(max))));
    }
    Ok(v)
}

fn parse_int(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let v: i32 = value.trim().parse().map_err(|_| invalid(key, value, "Not a number of type INT"))?;
    let v = i64::from(v);
    if v < min {
        return Err(invalid(key, value, &format!("Value must be at least {min}")));
    }
    Ok(v)
}

impl LogConfig {
    /// Known topic config keys (for DescribeConfigs), sorted.
    pub const KEYS: &'static [&'static str] = &[
        CLEANUP_POLICY,
        DELETE_RETENTION_MS,
        FLUSH_MESSAGES,
        FLUSH_MS,
        INDEX_INTERVAL_BYTES,
        MAX_COMPACTION_LAG_MS,
        MAX_MESSAGE_BYTES,
        TIMESTAMP_TYPE,
        MIN_CLEANABLE_DIRTY_RATIO,
        MIN_COMPACTION_LAG_MS,
        RETENTION_BYTES,
        RETENTION_MS,
        SEGMENT_BYTES,
        SEGMENT_MS,
    ];

    /// Applies topic-level overrides (Kafka key -> string value) on top of `base`; an unknown key or
    /// a bad value is an error and nothing is applied.
    pub fn with_overrides(base: &LogConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig, ConfigError> {
        let mut c = base.clone();
        for (key, value) in overrides {
            let v = value.as_str();
            match key.as_str() {
                CLEANUP_POLICY => {
                    c.cleanup_policy = CleanupPolicy::parse(v).ok_or_else(|| invalid(key, v, "String must be one of: compact, delete"))?;
                }
                MIN_CLEANABLE_DIRTY_RATIO => c.min_cleanable_dirty_ratio = parse_double(key, v, 0.0, 1.0)?,
                MIN_COMPACTION_LAG_MS => c.min_compaction_lag_ms = parse_long(key, v, 0, i64::MAX)?,
                MAX_COMPACTION_LAG_MS => c.max_compaction_lag_ms = parse_long(key, v, 1, i64::MAX)?,
                DELETE_RETENTION_MS => c.delete_retention_ms = parse_long(key, v, 0, i64::MAX)?,
                SEGMENT_BYTES => {
                    c.segment_bytes = parse_int(key, v, SEGMENT_BYTES_MIN as i64)? as u64;
                }
                SEGMENT_MS => c.segment_ms = parse_long(key, v, 1, i64::MAX)?,
                RETENTION_MS => c.retention_ms = parse_long(key, v, -1, i64::MAX)?,
                RETENTION_BYTES => c.retention_bytes = parse_long(key, v, -1, i64::MAX)?,
                MAX_MESSAGE_BYTES => c.max_message_bytes = parse_int(key, v, 0)? as usize,
                TIMESTAMP_TYPE => {
                    c.timestamp_type = match v.trim() {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(invalid(key, v, "String must be one of: CreateTime, LogAppendTime")),
                    }
                }
                INDEX_INTERVAL_BYTES => c.index_interval_bytes = parse_int(key, v, 0)? as usize,
                FLUSH_MESSAGES => c.flush_messages = parse_long(key, v, 1, i64::MAX)?,
                FLUSH_MS => c.flush_ms = parse_long(key, v, 0, i64::MAX)?,
                _ => return Err(ConfigError::Unknown(key.clone())),
            }
        }
        Ok(c)
    }

    /// The age at which the active segment rolls (at the next append): `segment.ms`, or on a
    /// compacted topic the smaller of it and `max.compaction.lag.ms` (Kafka's `maxSegmentMs`,
    /// KIP-354), since the active segment is never cleaned.
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// The value of a key as Kafka prints it (for DescribeConfigs), or None for an unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            CLEANUP_POLICY => self.cleanup_policy.as_str().to_string(),
            MIN_CLEANABLE_DIRTY_RATIO => java_double(self.min_cleanable_dirty_ratio),
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms.to_string(),
            MAX_COMPACTION_LAG_MS => self.max_compaction_lag_ms.to_string(),
            DELETE_RETENTION_MS => self.delete_retention_ms.to_string(),
            SEGMENT_BYTES => self.segment_bytes.to_string(),
            SEGMENT_MS => self.segment_ms.to_string(),
            RETENTION_MS => self.retention_ms.to_string(),
            RETENTION_BYTES => self.retention_bytes.to_string(),
            MAX_MESSAGE_BYTES => self.max_message_bytes.to_string(),
            TIMESTAMP_TYPE => self.timestamp_type.as_str().to_string(),
            INDEX_INTERVAL_BYTES => self.index_interval_bytes.to_string(),
            FLUSH_MESSAGES => self.flush_messages.to_string(),
            FLUSH_MS => self.flush_ms.to_string(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_apply_and_print_back() {
        let c = LogConfig::with_overrides(
            &LogConfig::default(),
            &ov(&[("segment.bytes", "1024"), ("retention.ms", "-1"), ("message.timestamp.type", "LogAppendTime")]),
        )
        .unwrap();
        assert_eq!(c.segment_bytes, 1024);
        assert_eq!(c.get("retention.ms").unwrap(), "-1");
        assert_eq!(c.get("message.timestamp.type").unwrap(), "LogAppendTime");
        assert_eq!(c.get("cleanup.policy").unwrap(), "delete");
        for k in LogConfig::KEYS {
            assert!(c.get(k).is_some(), "{k} has no value");
        }
        assert_eq!(LogConfig::default().get("segment.ms").unwrap(), "604800000");
    }

    #[test]
    fn bad_values_are_refused() {
        let d = LogConfig::default();
        assert_eq!(
            LogConfig::with_overrides(&d, &ov(&[("nope", "1")])),
            Err(ConfigError::Unknown("nope".into()))
        );
        let e = LogConfig::with_overrides(&d, &ov(&[("segment.bytes", "13")])).unwrap_err();
        assert!(e.to_string().starts_with("Invalid value 13 for configuration segment.bytes"), "{e}");
        let e = LogConfig::with_overrides(&d, &ov(&[("cleanup.policy", "compact,nope")])).unwrap_err();
        assert!(e.to_string().contains("String must be one of: compact, delete"), "{e}");
        assert!(LogConfig::with_overrides(&d, &ov(&[("cleanup.policy", "")])).is_err());
        let e = LogConfig::with_overrides(&d, &ov(&[("min.cleanable.dirty.ratio", "1.5")])).unwrap_err();
        assert!(e.to_string().contains("Value must be no more than 1.0"), "{e}");
        assert!(LogConfig::with_overrides(&d, &ov(&[("min.cleanable.dirty.ratio", "NaN")])).is_err());
        assert!(LogConfig::with_overrides(&d, &ov(&[("max.compaction.lag.ms", "0")])).is_err());
        assert!(LogConfig::with_overrides(&d, &ov(&[("delete.retention.ms", "-1")])).is_err());
        assert!(LogConfig::with_overrides(&d, &ov(&[("segment.ms", "x")])).is_err());
        assert!(LogConfig::with_overrides(&d, &ov(&[("segment.bytes", "4294967296")])).is_err());
        assert!(LogConfig::with_overrides(&d, &ov(&[("cleanup.policy", "delete")])).is_ok());
    }

    #[test]
    fn compaction_settings_apply_and_print_as_kafka() {
        let d = LogConfig::default();
        assert_eq!(d.get("min.cleanable.dirty.ratio").unwrap(), "0.5");
        assert_eq!(java_double(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(d.get("delete.retention.ms").unwrap(), "86400000");
        assert_eq!(d.get("max.compaction.lag.ms").unwrap(), i64::MAX.to_string());
        let c = LogConfig::with_overrides(
            &d,
            &ov(&[("cleanup.policy", "delete, compact"), ("min.cleanable.dirty.ratio", "1"), ("min.compaction.lag.ms", "5000")]),
        )
        .unwrap();
        assert_eq!(c.cleanup_policy, CleanupPolicy { delete: true, compact: true });
        assert_eq!(c.get("cleanup.policy").unwrap(), "compact,delete");
        assert_eq!(c.get("min.cleanable.dirty.ratio").unwrap(), "1.0");
        assert_eq!(c.min_compaction_lag_ms, 5000);
        let c = LogConfig::with_overrides(&d, &ov(&[("cleanup.policy", "compact")])).unwrap();
        assert!(c.cleanup_policy.compact && !c.cleanup_policy.delete);
        assert_eq!(c.max_segment_ms(), c.segment_ms);
        let lag = ov(&[("cleanup.policy", "compact"), ("max.compaction.lag.ms", "60000")]);
        assert_eq!(LogConfig::with_overrides(&d, &lag).unwrap().max_segment_ms(), 60_000, "a compacted topic rolls within the lag");
        let lag = ov(&[("max.compaction.lag.ms", "60000")]);
        assert_eq!(LogConfig::with_overrides(&d, &lag).unwrap().max_segment_ms(), d.segment_ms, "only when compacted");
    }
}
