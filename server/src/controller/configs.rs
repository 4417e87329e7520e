//! Config changes: a full replacement of a resource's overrides becomes one `Config` record per
//! key set or removed.

use std::collections::BTreeMap;

use gregor_core::metadata::{MetadataImage, MetadataRecord, RESOURCE_BROKER, RESOURCE_TOPIC};
use gregor_storage::LogConfig;

use crate::broker::log_configs::{check_config_values, config_error, effective_log_defaults, log_config_for, DYNAMIC_BROKER_KEYS};
use crate::broker::AdminError;
use crate::config::BrokerConfig;
use crate::errors;

/// The records that turn `old` into `new` for one resource.
fn diff(resource_type: i8, resource_name: &str, old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(MetadataRecord::Config { resource_type, resource_name: resource_name.to_string(), name: k.clone(), value: None });
    }
    for (k, v) in new.iter().filter(|(k, v)| old.get(*k) != Some(*v)) {
        out.push(MetadataRecord::Config { resource_type, resource_name: resource_name.to_string(), name: k.clone(), value: Some(v.clone()) });
    }
    out
}

pub fn plan_topic_configs(image: &MetadataImage, defaults: &LogConfig, name: &str, configs: &BTreeMap<String, String>) -> Result<Vec<MetadataRecord>, AdminError> {
    if image.topic(name).is_none() {
        return Err(AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."));
    }
    check_config_values(configs)?;
    log_config_for(defaults, configs).map_err(config_error)?;
    Ok(diff(RESOURCE_TOPIC, name, &image.topic_configs(name), configs))
}

/// Dynamic broker configs: the cluster-wide defaults (the broker resource named "") or one
/// broker's own (named by its id), which win over the defaults on that broker. Only
/// [`DYNAMIC_BROKER_KEYS`] may be set; every topic's effective config must stay valid.
pub fn plan_broker_configs(image: &MetadataImage, config: &BrokerConfig, name: &str, overrides: &BTreeMap<String, String>) -> Result<Vec<MetadataRecord>, AdminError> {
    if let Some(k) = overrides.keys().find(|k| !DYNAMIC_BROKER_KEYS.contains(&k.as_str())) {
        return Err(AdminError::new(errors::INVALID_CONFIG, format!("Cannot update these configs dynamically: {k}")));
    }
    check_config_values(overrides)?;
    let mut effective = image.cluster_broker_configs();
    if name.is_empty() {
        effective = overrides.clone();
    } else {
        effective.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let defaults = effective_log_defaults(config, &effective).map_err(|e| AdminError::new(errors::INVALID_CONFIG, e.to_string()))?;
    for t in image.topics.values() {
        log_config_for(&defaults, &image.topic_configs(&t.name)).map_err(config_error)?;
    }
    Ok(diff(RESOURCE_BROKER, name, &image.resource_configs(RESOURCE_BROKER, name), overrides))
}
