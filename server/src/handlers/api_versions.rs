//! ApiVersions (key 18): which APIs and versions this broker serves.
//!
//! The ranges follow Apache Kafka 4.0 wherever Gregor implements the whole version range, so
//! clients that infer a broker release from the advertised maxima pick a consistent one. A request
//! at a version above ours is answered per KIP-511: a v0 response carrying UNSUPPORTED_VERSION and
//! our ApiVersions range, so the client can retry at a version we speak.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::errors;

/// (API, min version, max version) served by this broker.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
];

/// Whether `version` of `key` is served.
pub fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect()
}

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = errors::NONE;
    resp.api_keys = api_keys();
    resp
}

/// KIP-511 answer to an ApiVersions request at a version we do not speak (encode at v0).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = errors::UNSUPPORTED_VERSION;
    resp.api_keys = api_keys().into_iter().filter(|k| k.api_key == ApiKey::ApiVersions as i16).collect();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_ranges_are_within_the_codec() {
        for &(k, min, max) in SUPPORTED {
            let r = k.valid_versions();
            assert!(r.min <= min && max <= r.max, "{k:?} {min}-{max} outside codec range {}-{}", r.min, r.max);
            assert!(min <= max);
        }
        assert!(supported(ApiKey::Fetch, 11));
        assert!(!supported(ApiKey::Fetch, 3));
        assert!(supported(ApiKey::JoinGroup, 0));
        assert!(!supported(ApiKey::EndTxn, 0));
    }

    /// Every request the broker serves passes the bounds check first, so every advertised
    /// version needs its schema: an API added without one fails here.
    #[test]
    fn every_served_version_has_a_request_schema() {
        for &(k, min, max) in SUPPORTED {
            let schema = gregor_net::schema::request_schema(k as i16)
                .unwrap_or_else(|| panic!("{k:?} is served but has no request schema"));
            assert!(schema.covers(min) && schema.covers(max), "{k:?} {min}-{max}: schema covers {:?}", schema.versions);
        }
    }
}
