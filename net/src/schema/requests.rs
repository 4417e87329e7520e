//! The wire layout of every request Gregor serves, one [`Message`] per API: fields in wire
//! order, the versions each exists in, nullability, and tags of tagged fields. Field names are
//! Kafka's (snake_case), so a refusal can name the field.
//!
//! Versions cover what the codec can decode (sometimes more than the broker advertises); the
//! broker's advertised ranges must lie inside them (tested). A field without an upper version
//! exists in every later version of the message.

use super::{array, array_of, f, fr, strukt, Message, BOOL, BYTES, I16, I32, I64, I8, STRING, U16, UUID};

pub const PRODUCE: Message = Message {
    api_key: 0,
    name: "Produce",
    versions: (3, 13),
    flexible_from: Some(9),
    fields: &[
        f("transactional_id", 3, STRING).nullable(),
        f("acks", 3, I16),
        f("timeout_ms", 3, I32),
        f("topic_data", 3, array(&[
            fr("name", 3, 12, STRING),
            f("topic_id", 13, UUID),
            f("partition_data", 3, array(&[
                f("index", 3, I32),
                f("records", 3, BYTES).nullable(),
            ])),
        ])),
    ],
};

pub const FETCH: Message = Message {
    api_key: 1,
    name: "Fetch",
    versions: (4, 18),
    flexible_from: Some(12),
    fields: &[
        fr("replica_id", 4, 14, I32),
        f("max_wait_ms", 4, I32),
        f("min_bytes", 4, I32),
        f("max_bytes", 4, I32),
        f("isolation_level", 4, I8),
        f("session_id", 7, I32),
        f("session_epoch", 7, I32),
        f("topics", 4, array(&[
            fr("topic", 4, 12, STRING),
            f("topic_id", 13, UUID),
            f("partitions", 4, array(&[
                f("partition", 4, I32),
                f("current_leader_epoch", 9, I32),
                f("fetch_offset", 4, I64),
                f("last_fetched_epoch", 12, I32),
                f("log_start_offset", 5, I64),
                f("partition_max_bytes", 4, I32),
                f("replica_directory_id", 17, UUID).tagged(0),
                f("high_watermark", 18, I64).tagged(1),
            ])),
        ])),
        f("forgotten_topics_data", 7, array(&[
            fr("topic", 7, 12, STRING),
            f("topic_id", 13, UUID),
            f("partitions", 7, array_of(I32)),
        ])),
        f("rack_id", 11, STRING),
        f("cluster_id", 4, STRING).nullable().tagged(0),
        f("replica_state", 15, strukt(&[
            f("replica_id", 15, I32),
            f("replica_epoch", 15, I64),
        ])).tagged(1),
    ],
};

pub const LIST_OFFSETS: Message = Message {
    api_key: 2,
    name: "ListOffsets",
    versions: (1, 10),
    flexible_from: Some(6),
    fields: &[
        f("replica_id", 1, I32),
        f("isolation_level", 2, I8),
        f("topics", 1, array(&[
            f("name", 1, STRING),
            f("partitions", 1, array(&[
                f("partition_index", 1, I32),
                f("current_leader_epoch", 4, I32),
                f("timestamp", 1, I64),
            ])),
        ])),
        f("timeout_ms", 10, I32),
    ],
};

pub const METADATA: Message = Message {
    api_key: 3,
    name: "Metadata",
    versions: (0, 13),
    flexible_from: Some(9),
    fields: &[
        f("topics", 0, array(&[
            f("topic_id", 10, UUID),
            f("name", 0, STRING).nullable(),
        ])).nullable(),
        f("allow_auto_topic_creation", 4, BOOL),
        fr("include_cluster_authorized_operations", 8, 10, BOOL),
        f("include_topic_authorized_operations", 8, BOOL),
    ],
};

pub const OFFSET_COMMIT: Message = Message {
    api_key: 8,
    name: "OffsetCommit",
    versions: (2, 9),
    flexible_from: Some(8),
    fields: &[
        f("group_id", 2, STRING),
        f("generation_id_or_member_epoch", 2, I32),
        f("member_id", 2, STRING),
        f("group_instance_id", 7, STRING).nullable(),
        fr("retention_time_ms", 2, 4, I64),
        f("topics", 2, array(&[
            f("name", 2, STRING),
            f("partitions", 2, array(&[
                f("partition_index", 2, I32),
                f("committed_offset", 2, I64),
                f("committed_leader_epoch", 6, I32),
                f("committed_metadata", 2, STRING).nullable(),
            ])),
        ])),
    ],
};

pub const OFFSET_FETCH: Message = Message {
    api_key: 9,
    name: "OffsetFetch",
    versions: (1, 9),
    flexible_from: Some(6),
    fields: &[
        fr("group_id", 1, 7, STRING),
        fr("topics", 1, 7, array(&[
            fr("name", 1, 7, STRING),
            fr("partition_indexes", 1, 7, array_of(I32)),
        ])).nullable(),
        f("groups", 8, array(&[
            f("group_id", 8, STRING),
            f("member_id", 9, STRING).nullable(),
            f("member_epoch", 9, I32),
            f("topics", 8, array(&[
                f("name", 8, STRING),
                f("partition_indexes", 8, array_of(I32)),
            ])).nullable(),
        ])),
        f("require_stable", 7, BOOL),
    ],
};

pub const FIND_COORDINATOR: Message = Message {
    api_key: 10,
    name: "FindCoordinator",
    versions: (0, 6),
    flexible_from: Some(3),
    fields: &[
        fr("key", 0, 3, STRING),
        f("key_type", 1, I8),
        f("coordinator_keys", 4, array_of(STRING)),
    ],
};

pub const JOIN_GROUP: Message = Message {
    api_key: 11,
    name: "JoinGroup",
    versions: (0, 9),
    flexible_from: Some(6),
    fields: &[
        f("group_id", 0, STRING),
        f("session_timeout_ms", 0, I32),
        f("rebalance_timeout_ms", 1, I32),
        f("member_id", 0, STRING),
        f("group_instance_id", 5, STRING).nullable(),
        f("protocol_type", 0, STRING),
        f("protocols", 0, array(&[
            f("name", 0, STRING),
            f("metadata", 0, BYTES),
        ])),
        f("reason", 8, STRING).nullable(),
    ],
};

pub const HEARTBEAT: Message = Message {
    api_key: 12,
    name: "Heartbeat",
    versions: (0, 4),
    flexible_from: Some(4),
    fields: &[
        f("group_id", 0, STRING),
        f("generation_id", 0, I32),
        f("member_id", 0, STRING),
        f("group_instance_id", 3, STRING).nullable(),
    ],
};

pub const LEAVE_GROUP: Message = Message {
    api_key: 13,
    name: "LeaveGroup",
    versions: (0, 5),
    flexible_from: Some(4),
    fields: &[
        f("group_id", 0, STRING),
        fr("member_id", 0, 2, STRING),
        f("members", 3, array(&[
            f("member_id", 3, STRING),
            f("group_instance_id", 3, STRING).nullable(),
            f("reason", 5, STRING).nullable(),
        ])),
    ],
};

pub const SYNC_GROUP: Message = Message {
    api_key: 14,
    name: "SyncGroup",
    versions: (0, 5),
    flexible_from: Some(4),
    fields: &[
        f("group_id", 0, STRING),
        f("generation_id", 0, I32),
        f("member_id", 0, STRING),
        f("group_instance_id", 3, STRING).nullable(),
        f("protocol_type", 5, STRING).nullable(),
        f("protocol_name", 5, STRING).nullable(),
        f("assignments", 0, array(&[
            f("member_id", 0, STRING),
            f("assignment", 0, BYTES),
        ])),
    ],
};

pub const DESCRIBE_GROUPS: Message = Message {
    api_key: 15,
    name: "DescribeGroups",
    versions: (0, 6),
    flexible_from: Some(5),
    fields: &[
        f("groups", 0, array_of(STRING)),
        f("include_authorized_operations", 3, BOOL),
    ],
};

pub const LIST_GROUPS: Message = Message {
    api_key: 16,
    name: "ListGroups",
    versions: (0, 5),
    flexible_from: Some(3),
    fields: &[
        f("states_filter", 4, array_of(STRING)),
        f("types_filter", 5, array_of(STRING)),
    ],
};

pub const API_VERSIONS: Message = Message {
    api_key: 18,
    name: "ApiVersions",
    versions: (0, 4),
    flexible_from: Some(3),
    fields: &[
        f("client_software_name", 3, STRING),
        f("client_software_version", 3, STRING),
    ],
};

pub const CREATE_TOPICS: Message = Message {
    api_key: 19,
    name: "CreateTopics",
    versions: (2, 7),
    flexible_from: Some(5),
    fields: &[
        f("topics", 2, array(&[
            f("name", 2, STRING),
            f("num_partitions", 2, I32),
            f("replication_factor", 2, I16),
            f("assignments", 2, array(&[
                f("partition_index", 2, I32),
                f("broker_ids", 2, array_of(I32)),
            ])),
            f("configs", 2, array(&[
                f("name", 2, STRING),
                f("value", 2, STRING).nullable(),
            ])),
        ])),
        f("timeout_ms", 2, I32),
        f("validate_only", 2, BOOL),
    ],
};

pub const DELETE_TOPICS: Message = Message {
    api_key: 20,
    name: "DeleteTopics",
    versions: (1, 6),
    flexible_from: Some(4),
    fields: &[
        f("topics", 6, array(&[
            f("name", 6, STRING).nullable(),
            f("topic_id", 6, UUID),
        ])),
        fr("topic_names", 1, 5, array_of(STRING)),
        f("timeout_ms", 1, I32),
    ],
};

pub const DELETE_RECORDS: Message = Message {
    api_key: 21,
    name: "DeleteRecords",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("offset", 0, I64),
            ])),
        ])),
        f("timeout_ms", 0, I32),
    ],
};

pub const INIT_PRODUCER_ID: Message = Message {
    api_key: 22,
    name: "InitProducerId",
    versions: (0, 5),
    flexible_from: Some(2),
    fields: &[
        f("transactional_id", 0, STRING).nullable(),
        f("transaction_timeout_ms", 0, I32),
        f("producer_id", 3, I64),
        f("producer_epoch", 3, I16),
    ],
};

pub const OFFSET_FOR_LEADER_EPOCH: Message = Message {
    api_key: 23,
    name: "OffsetForLeaderEpoch",
    versions: (2, 4),
    flexible_from: Some(4),
    fields: &[
        f("replica_id", 3, I32),
        f("topics", 2, array(&[
            f("topic", 2, STRING),
            f("partitions", 2, array(&[
                f("partition", 2, I32),
                f("current_leader_epoch", 2, I32),
                f("leader_epoch", 2, I32),
            ])),
        ])),
    ],
};

pub const DESCRIBE_CONFIGS: Message = Message {
    api_key: 32,
    name: "DescribeConfigs",
    versions: (1, 4),
    flexible_from: Some(4),
    fields: &[
        f("resources", 1, array(&[
            f("resource_type", 1, I8),
            f("resource_name", 1, STRING),
            f("configuration_keys", 1, array_of(STRING)).nullable(),
        ])),
        f("include_synonyms", 1, BOOL),
        f("include_documentation", 3, BOOL),
    ],
};

pub const ALTER_CONFIGS: Message = Message {
    api_key: 33,
    name: "AlterConfigs",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("resources", 0, array(&[
            f("resource_type", 0, I8),
            f("resource_name", 0, STRING),
            f("configs", 0, array(&[
                f("name", 0, STRING),
                f("value", 0, STRING).nullable(),
            ])),
        ])),
        f("validate_only", 0, BOOL),
    ],
};

pub const CREATE_PARTITIONS: Message = Message {
    api_key: 37,
    name: "CreatePartitions",
    versions: (0, 3),
    flexible_from: Some(2),
    fields: &[
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("count", 0, I32),
            f("assignments", 0, array(&[
                f("broker_ids", 0, array_of(I32)),
            ])).nullable(),
        ])),
        f("timeout_ms", 0, I32),
        f("validate_only", 0, BOOL),
    ],
};

pub const DELETE_GROUPS: Message = Message {
    api_key: 42,
    name: "DeleteGroups",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("groups_names", 0, array_of(STRING)),
    ],
};

pub const INCREMENTAL_ALTER_CONFIGS: Message = Message {
    api_key: 44,
    name: "IncrementalAlterConfigs",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("resources", 0, array(&[
            f("resource_type", 0, I8),
            f("resource_name", 0, STRING),
            f("configs", 0, array(&[
                f("name", 0, STRING),
                f("config_operation", 0, I8),
                f("value", 0, STRING).nullable(),
            ])),
        ])),
        f("validate_only", 0, BOOL),
    ],
};

pub const OFFSET_DELETE: Message = Message {
    api_key: 47,
    name: "OffsetDelete",
    versions: (0, 0),
    flexible_from: None,
    fields: &[
        f("group_id", 0, STRING),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
            ])),
        ])),
    ],
};

pub const ELECT_LEADERS: Message = Message {
    api_key: 43,
    name: "ElectLeaders",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("election_type", 1, I8),
        f("topic_partitions", 0, array(&[
            f("topic", 0, STRING),
            f("partitions", 0, array_of(I32)),
        ])).nullable(),
        f("timeout_ms", 0, I32),
    ],
};

pub const ALTER_PARTITION_REASSIGNMENTS: Message = Message {
    api_key: 45,
    name: "AlterPartitionReassignments",
    versions: (0, 1),
    flexible_from: Some(0),
    fields: &[
        f("timeout_ms", 0, I32),
        f("allow_replication_factor_change", 1, BOOL),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("replicas", 0, array_of(I32)).nullable(),
            ])),
        ])),
    ],
};

pub const LIST_PARTITION_REASSIGNMENTS: Message = Message {
    api_key: 46,
    name: "ListPartitionReassignments",
    versions: (0, 0),
    flexible_from: Some(0),
    fields: &[
        f("timeout_ms", 0, I32),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partition_indexes", 0, array_of(I32)),
        ])).nullable(),
    ],
};

pub const DESCRIBE_CLUSTER: Message = Message {
    api_key: 60,
    name: "DescribeCluster",
    versions: (0, 2),
    flexible_from: Some(0),
    fields: &[
        f("include_cluster_authorized_operations", 0, BOOL),
        f("endpoint_type", 1, I8),
        f("include_fenced_brokers", 2, BOOL),
    ],
};

pub const DESCRIBE_TOPIC_PARTITIONS: Message = Message {
    api_key: 75,
    name: "DescribeTopicPartitions",
    versions: (0, 0),
    flexible_from: Some(0),
    fields: &[
        f("topics", 0, array(&[
            f("name", 0, STRING),
        ])),
        f("response_partition_limit", 0, I32),
        f("cursor", 0, strukt(&[
            f("topic_name", 0, STRING),
            f("partition_index", 0, I32),
        ])).nullable(),
    ],
};

pub const VOTE: Message = Message {
    api_key: 52,
    name: "Vote",
    versions: (0, 2),
    flexible_from: Some(0),
    fields: &[
        f("cluster_id", 0, STRING).nullable(),
        f("voter_id", 1, I32),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("replica_epoch", 0, I32),
                f("replica_id", 0, I32),
                f("replica_directory_id", 1, UUID),
                f("voter_directory_id", 1, UUID),
                f("last_offset_epoch", 0, I32),
                f("last_offset", 0, I64),
                f("pre_vote", 2, BOOL),
            ])),
        ])),
    ],
};

pub const BEGIN_QUORUM_EPOCH: Message = Message {
    api_key: 53,
    name: "BeginQuorumEpoch",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("cluster_id", 0, STRING).nullable(),
        f("voter_id", 1, I32),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("voter_directory_id", 1, UUID),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
            ])),
        ])),
        f("leader_endpoints", 1, array(&[
            f("name", 1, STRING),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])),
    ],
};

pub const END_QUORUM_EPOCH: Message = Message {
    api_key: 54,
    name: "EndQuorumEpoch",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("cluster_id", 0, STRING).nullable(),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
                fr("preferred_successors", 0, 0, array_of(I32)),
                f("preferred_candidates", 1, array(&[
                    f("candidate_id", 1, I32),
                    f("candidate_directory_id", 1, UUID),
                ])),
            ])),
        ])),
        f("leader_endpoints", 1, array(&[
            f("name", 1, STRING),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])),
    ],
};

pub const DESCRIBE_QUORUM: Message = Message {
    api_key: 55,
    name: "DescribeQuorum",
    versions: (0, 2),
    flexible_from: Some(0),
    fields: &[
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
            ])),
        ])),
    ],
};

pub const ALTER_PARTITION: Message = Message {
    api_key: 56,
    name: "AlterPartition",
    versions: (2, 3),
    flexible_from: Some(0),
    fields: &[
        f("broker_id", 2, I32),
        f("broker_epoch", 2, I64),
        f("topics", 2, array(&[
            f("topic_id", 2, UUID),
            f("partitions", 2, array(&[
                f("partition_index", 2, I32),
                f("leader_epoch", 2, I32),
                fr("new_isr", 2, 2, array_of(I32)),
                f("new_isr_with_epochs", 3, array(&[
                    f("broker_id", 3, I32),
                    f("broker_epoch", 3, I64),
                ])),
                f("leader_recovery_state", 2, I8),
                f("partition_epoch", 2, I32),
            ])),
        ])),
    ],
};

pub const FETCH_SNAPSHOT: Message = Message {
    api_key: 59,
    name: "FetchSnapshot",
    versions: (0, 1),
    flexible_from: Some(0),
    fields: &[
        f("replica_id", 0, I32),
        f("max_bytes", 0, I32),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition", 0, I32),
                f("current_leader_epoch", 0, I32),
                f("snapshot_id", 0, strukt(&[
                    f("end_offset", 0, I64),
                    f("epoch", 0, I32),
                ])),
                f("position", 0, I64),
                f("replica_directory_id", 1, UUID).tagged(0),
            ])),
        ])),
        f("cluster_id", 0, STRING).nullable().tagged(0),
    ],
};

pub const BROKER_REGISTRATION: Message = Message {
    api_key: 62,
    name: "BrokerRegistration",
    versions: (0, 4),
    flexible_from: Some(0),
    fields: &[
        f("broker_id", 0, I32),
        f("cluster_id", 0, STRING),
        f("incarnation_id", 0, UUID),
        f("listeners", 0, array(&[
            f("name", 0, STRING),
            f("host", 0, STRING),
            f("port", 0, U16),
            f("security_protocol", 0, I16),
        ])),
        f("features", 0, array(&[
            f("name", 0, STRING),
            f("min_supported_version", 0, I16),
            f("max_supported_version", 0, I16),
        ])),
        f("rack", 0, STRING).nullable(),
        f("is_migrating_zk_broker", 1, BOOL),
        f("log_dirs", 2, array_of(UUID)),
        f("previous_broker_epoch", 3, I64),
    ],
};

pub const BROKER_HEARTBEAT: Message = Message {
    api_key: 63,
    name: "BrokerHeartbeat",
    versions: (0, 1),
    flexible_from: Some(0),
    fields: &[
        f("broker_id", 0, I32),
        f("broker_epoch", 0, I64),
        f("current_metadata_offset", 0, I64),
        f("want_fence", 0, BOOL),
        f("want_shut_down", 0, BOOL),
        f("offline_log_dirs", 1, array_of(UUID)).tagged(0),
    ],
};

pub const ALLOCATE_PRODUCER_IDS: Message = Message {
    api_key: 67,
    name: "AllocateProducerIds",
    versions: (0, 0),
    flexible_from: Some(0),
    fields: &[
        f("broker_id", 0, I32),
        f("broker_epoch", 0, I64),
    ],
};

/// Every request schema, by API key.
pub const ALL: &[&Message] = &[&PRODUCE, &FETCH, &LIST_OFFSETS, &METADATA, &OFFSET_COMMIT, &OFFSET_FETCH, &FIND_COORDINATOR, &JOIN_GROUP, &HEARTBEAT, &LEAVE_GROUP, &SYNC_GROUP, &DESCRIBE_GROUPS, &LIST_GROUPS, &API_VERSIONS, &CREATE_TOPICS, &DELETE_TOPICS, &DELETE_RECORDS, &INIT_PRODUCER_ID, &OFFSET_FOR_LEADER_EPOCH, &DESCRIBE_CONFIGS, &ALTER_CONFIGS, &CREATE_PARTITIONS, &DELETE_GROUPS, &INCREMENTAL_ALTER_CONFIGS, &OFFSET_DELETE, &ELECT_LEADERS, &ALTER_PARTITION_REASSIGNMENTS, &LIST_PARTITION_REASSIGNMENTS, &DESCRIBE_CLUSTER, &DESCRIBE_TOPIC_PARTITIONS, &VOTE, &BEGIN_QUORUM_EPOCH, &END_QUORUM_EPOCH, &DESCRIBE_QUORUM, &ALTER_PARTITION, &FETCH_SNAPSHOT, &BROKER_REGISTRATION, &BROKER_HEARTBEAT, &ALLOCATE_PRODUCER_IDS];
