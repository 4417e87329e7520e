//! AlterConfigs (key 33, replaces a resource's whole override set) and IncrementalAlterConfigs
//! (key 44, SET / DELETE / APPEND / SUBTRACT per key), for topics and the broker.
//!
//! Broker resources accept only the settings in `DYNAMIC_BROKER_KEYS` (topic defaults and the
//! replication throttle rates); others are INVALID_CONFIG ("cannot be updated dynamically"), as
//! in Kafka. The resource named "" holds the cluster-wide defaults, one named by a broker id that
//! broker's own settings (which win there). Any broker takes either: the change is the
//! controller's to make.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{alter_configs_response, incremental_alter_configs_response};
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::sb;
use crate::broker::{AdminError, Broker};
use crate::errors;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn current(broker: &Broker, resource_type: i8, name: &str) -> Result<BTreeMap<String, String>, AdminError> {
    match resource_type {
        RESOURCE_TOPIC => broker
            .topic(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, format!("Topic '{name}' does not exist."))),
        RESOURCE_BROKER => {
            if name.is_empty() || name.parse::<i32>().is_ok_and(|id| id >= 0) {
                Ok(broker.image().resource_configs(RESOURCE_BROKER, name))
            } else {
                Err(AdminError::new(errors::INVALID_REQUEST, format!("Invalid broker name {name}")))
            }
        }
        other => Err(AdminError::new(errors::INVALID_REQUEST, format!("Unsupported resource type {other}"))),
    }
}

async fn apply(broker: &Broker, resource_type: i8, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
    if resource_type == RESOURCE_TOPIC {
        broker.set_topic_configs(name, configs, validate_only).await
    } else {
        broker.set_broker_configs(name, configs, validate_only).await
    }
}

pub async fn handle_alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let result = async {
            current(broker, r.resource_type, &name)?;
            let mut configs = BTreeMap::new();
            for c in &r.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            apply(broker, r.resource_type, &name, configs, req.validate_only).await
        }
        .await;
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        if let Err(e) = result {
            out.error_code = e.code;
            out.error_message = Some(sb(e.message));
        }
        resp.responses.push(out);
    }
    resp
}

fn list_values(v: Option<&String>) -> Vec<String> {
    v.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
}

pub async fn handle_incremental(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let result = async {
            let mut configs = current(broker, r.resource_type, &name)?;
            for c in &r.configs {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string());
                match c.config_operation {
                    OP_SET => {
                        let v = value.ok_or_else(|| AdminError::new(errors::INVALID_REQUEST, format!("Null value not supported for {key}")))?;
                        configs.insert(key, v);
                    }
                    OP_DELETE => {
                        configs.remove(&key);
                    }
                    OP_APPEND | OP_SUBTRACT => {
                        if key != "cleanup.policy" && key != "log.cleanup.policy" {
                            return Err(AdminError::new(errors::INVALID_CONFIG, format!("Config value append/subtract is not allowed for config key {key}")));
                        }
                        let mut items = list_values(configs.get(&key));
                        if items.is_empty() {
                            items = vec!["delete".to_string()];
                        }
                        for v in list_values(value.as_ref()) {
                            if c.config_operation == OP_APPEND {
                                if !items.contains(&v) {
                                    items.push(v);
                                }
                            } else {
                                items.retain(|x| x != &v);
                            }
                        }
                        configs.insert(key, items.join(","));
                    }
                    other => return Err(AdminError::new(errors::INVALID_REQUEST, format!("Unknown config operation {other}"))),
                }
            }
            apply(broker, r.resource_type, &name, configs, req.validate_only).await
        }
        .await;
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        if let Err(e) = result {
            out.error_code = e.code;
            out.error_message = Some(sb(e.message));
        }
        resp.responses.push(out);
    }
    resp
}
