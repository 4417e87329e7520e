//! The wire layout of every response the Gregor client reads (the same APIs the broker serves),
//! in the same form as [`super::requests`]: what a client, and later a broker reading another
//! broker's answers, checks before decoding input from another node.

use super::{array, array_of, f, fr, strukt, Message, BOOL, BYTES, I16, I32, I64, I8, STRING, U16, UUID};

pub const PRODUCE: Message = Message {
    api_key: 0,
    name: "Produce",
    versions: (3, 13),
    flexible_from: Some(9),
    fields: &[
        f("responses", 3, array(&[
            fr("name", 3, 12, STRING),
            f("topic_id", 13, UUID),
            f("partition_responses", 3, array(&[
                f("index", 3, I32),
                f("error_code", 3, I16),
                f("base_offset", 3, I64),
                f("log_append_time_ms", 3, I64),
                f("log_start_offset", 5, I64),
                f("record_errors", 8, array(&[
                    f("batch_index", 8, I32),
                    f("batch_index_error_message", 8, STRING).nullable(),
                ])),
                f("error_message", 8, STRING).nullable(),
                f("current_leader", 10, strukt(&[
                    f("leader_id", 10, I32),
                    f("leader_epoch", 10, I32),
                ])).tagged(0),
            ])),
        ])),
        f("throttle_time_ms", 3, I32),
        f("node_endpoints", 10, array(&[
            f("node_id", 10, I32),
            f("host", 10, STRING),
            f("port", 10, I32),
            f("rack", 10, STRING).nullable(),
        ])).tagged(0),
    ],
};

pub const FETCH: Message = Message {
    api_key: 1,
    name: "Fetch",
    versions: (4, 18),
    flexible_from: Some(12),
    fields: &[
        f("throttle_time_ms", 4, I32),
        f("error_code", 7, I16),
        f("session_id", 7, I32),
        f("responses", 4, array(&[
            fr("topic", 4, 12, STRING),
            f("topic_id", 13, UUID),
            f("partitions", 4, array(&[
                f("partition_index", 4, I32),
                f("error_code", 4, I16),
                f("high_watermark", 4, I64),
                f("last_stable_offset", 4, I64),
                f("log_start_offset", 5, I64),
                f("aborted_transactions", 4, array(&[
                    f("producer_id", 4, I64),
                    f("first_offset", 4, I64),
                ])).nullable(),
                f("preferred_read_replica", 11, I32),
                f("records", 4, BYTES).nullable(),
                f("diverging_epoch", 4, strukt(&[
                    f("epoch", 12, I32),
                    f("end_offset", 12, I64),
                ])).tagged(0),
                f("current_leader", 4, strukt(&[
                    f("leader_id", 12, I32),
                    f("leader_epoch", 12, I32),
                ])).tagged(1),
                f("snapshot_id", 4, strukt(&[
                    f("end_offset", 4, I64),
                    f("epoch", 4, I32),
                ])).tagged(2),
            ])),
        ])),
        f("node_endpoints", 16, array(&[
            f("node_id", 16, I32),
            f("host", 16, STRING),
            f("port", 16, I32),
            f("rack", 16, STRING).nullable(),
        ])).tagged(0),
    ],
};

pub const LIST_OFFSETS: Message = Message {
    api_key: 2,
    name: "ListOffsets",
    versions: (1, 10),
    flexible_from: Some(6),
    fields: &[
        f("throttle_time_ms", 2, I32),
        f("topics", 1, array(&[
            f("name", 1, STRING),
            f("partitions", 1, array(&[
                f("partition_index", 1, I32),
                f("error_code", 1, I16),
                f("timestamp", 1, I64),
                f("offset", 1, I64),
                f("leader_epoch", 4, I32),
            ])),
        ])),
    ],
};

pub const METADATA: Message = Message {
    api_key: 3,
    name: "Metadata",
    versions: (0, 13),
    flexible_from: Some(9),
    fields: &[
        f("throttle_time_ms", 3, I32),
        f("brokers", 0, array(&[
            f("node_id", 0, I32),
            f("host", 0, STRING),
            f("port", 0, I32),
            f("rack", 1, STRING).nullable(),
        ])),
        f("cluster_id", 2, STRING).nullable(),
        f("controller_id", 1, I32),
        f("topics", 0, array(&[
            f("error_code", 0, I16),
            f("name", 0, STRING).nullable(),
            f("topic_id", 10, UUID),
            f("is_internal", 1, BOOL),
            f("partitions", 0, array(&[
                f("error_code", 0, I16),
                f("partition_index", 0, I32),
                f("leader_id", 0, I32),
                f("leader_epoch", 7, I32),
                f("replica_nodes", 0, array_of(I32)),
                f("isr_nodes", 0, array_of(I32)),
                f("offline_replicas", 5, array_of(I32)),
            ])),
            f("topic_authorized_operations", 8, I32),
        ])),
        fr("cluster_authorized_operations", 8, 10, I32),
        f("error_code", 13, I16),
    ],
};

pub const OFFSET_COMMIT: Message = Message {
    api_key: 8,
    name: "OffsetCommit",
    versions: (2, 10),
    flexible_from: Some(8),
    fields: &[
        f("throttle_time_ms", 3, I32),
        f("topics", 2, array(&[
            fr("name", 2, 9, STRING),
            f("topic_id", 10, UUID),
            f("partitions", 2, array(&[
                f("partition_index", 2, I32),
                f("error_code", 2, I16),
            ])),
        ])),
    ],
};

pub const OFFSET_FETCH: Message = Message {
    api_key: 9,
    name: "OffsetFetch",
    versions: (1, 10),
    flexible_from: Some(6),
    fields: &[
        f("throttle_time_ms", 3, I32),
        fr("topics", 1, 7, array(&[
            fr("name", 1, 7, STRING),
            fr("partitions", 1, 7, array(&[
                fr("partition_index", 1, 7, I32),
                fr("committed_offset", 1, 7, I64),
                fr("committed_leader_epoch", 5, 7, I32),
                fr("metadata", 1, 7, STRING).nullable(),
                fr("error_code", 1, 7, I16),
            ])),
        ])),
        fr("error_code", 2, 7, I16),
        f("groups", 8, array(&[
            f("group_id", 8, STRING),
            f("topics", 8, array(&[
                fr("name", 8, 9, STRING),
                f("topic_id", 10, UUID),
                f("partitions", 8, array(&[
                    f("partition_index", 8, I32),
                    f("committed_offset", 8, I64),
                    f("committed_leader_epoch", 8, I32),
                    f("metadata", 8, STRING).nullable(),
                    f("error_code", 8, I16),
                ])),
            ])),
            f("error_code", 8, I16),
        ])),
    ],
};

pub const FIND_COORDINATOR: Message = Message {
    api_key: 10,
    name: "FindCoordinator",
    versions: (0, 6),
    flexible_from: Some(3),
    fields: &[
        f("throttle_time_ms", 1, I32),
        fr("error_code", 0, 3, I16),
        fr("error_message", 1, 3, STRING).nullable(),
        fr("node_id", 0, 3, I32),
        fr("host", 0, 3, STRING),
        fr("port", 0, 3, I32),
        f("coordinators", 4, array(&[
            f("key", 4, STRING),
            f("node_id", 4, I32),
            f("host", 4, STRING),
            f("port", 4, I32),
            f("error_code", 4, I16),
            f("error_message", 4, STRING).nullable(),
        ])),
    ],
};

pub const JOIN_GROUP: Message = Message {
    api_key: 11,
    name: "JoinGroup",
    versions: (0, 9),
    flexible_from: Some(6),
    fields: &[
        f("throttle_time_ms", 2, I32),
        f("error_code", 0, I16),
        f("generation_id", 0, I32),
        f("protocol_type", 7, STRING).nullable(),
        f("protocol_name", 0, STRING).nullable(),
        f("leader", 0, STRING),
        f("skip_assignment", 9, BOOL),
        f("member_id", 0, STRING),
        f("members", 0, array(&[
            f("member_id", 0, STRING),
            f("group_instance_id", 5, STRING).nullable(),
            f("metadata", 0, BYTES),
        ])),
    ],
};

pub const HEARTBEAT: Message = Message {
    api_key: 12,
    name: "Heartbeat",
    versions: (0, 4),
    flexible_from: Some(4),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("error_code", 0, I16),
    ],
};

pub const LEAVE_GROUP: Message = Message {
    api_key: 13,
    name: "LeaveGroup",
    versions: (0, 5),
    flexible_from: Some(4),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("error_code", 0, I16),
        f("members", 3, array(&[
            f("member_id", 3, STRING),
            f("group_instance_id", 3, STRING).nullable(),
            f("error_code", 3, I16),
        ])),
    ],
};

pub const SYNC_GROUP: Message = Message {
    api_key: 14,
    name: "SyncGroup",
    versions: (0, 5),
    flexible_from: Some(4),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("error_code", 0, I16),
        f("protocol_type", 5, STRING).nullable(),
        f("protocol_name", 5, STRING).nullable(),
        f("assignment", 0, BYTES),
    ],
};

pub const DESCRIBE_GROUPS: Message = Message {
    api_key: 15,
    name: "DescribeGroups",
    versions: (0, 6),
    flexible_from: Some(5),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("groups", 0, array(&[
            f("error_code", 0, I16),
            f("error_message", 6, STRING).nullable(),
            f("group_id", 0, STRING),
            f("group_state", 0, STRING),
            f("protocol_type", 0, STRING),
            f("protocol_data", 0, STRING),
            f("members", 0, array(&[
                f("member_id", 0, STRING),
                f("group_instance_id", 4, STRING).nullable(),
                f("client_id", 0, STRING),
                f("client_host", 0, STRING),
                f("member_metadata", 0, BYTES),
                f("member_assignment", 0, BYTES),
            ])),
            f("authorized_operations", 3, I32),
        ])),
    ],
};

pub const LIST_GROUPS: Message = Message {
    api_key: 16,
    name: "ListGroups",
    versions: (0, 5),
    flexible_from: Some(3),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("error_code", 0, I16),
        f("groups", 0, array(&[
            f("group_id", 0, STRING),
            f("protocol_type", 0, STRING),
            f("group_state", 4, STRING),
            f("group_type", 5, STRING),
        ])),
    ],
};

pub const API_VERSIONS: Message = Message {
    api_key: 18,
    name: "ApiVersions",
    versions: (0, 4),
    flexible_from: Some(3),
    fields: &[
        f("error_code", 0, I16),
        f("api_keys", 0, array(&[
            f("api_key", 0, I16),
            f("min_version", 0, I16),
            f("max_version", 0, I16),
        ])),
        f("throttle_time_ms", 1, I32),
        f("supported_features", 0, array(&[
            f("name", 3, STRING),
            f("min_version", 3, I16),
            f("max_version", 3, I16),
        ])).tagged(0),
        f("finalized_features_epoch", 0, I64).tagged(1),
        f("finalized_features", 0, array(&[
            f("name", 3, STRING),
            f("max_version_level", 3, I16),
            f("min_version_level", 3, I16),
        ])).tagged(2),
        f("zk_migration_ready", 0, BOOL).tagged(3),
    ],
};

pub const CREATE_TOPICS: Message = Message {
    api_key: 19,
    name: "CreateTopics",
    versions: (2, 7),
    flexible_from: Some(5),
    fields: &[
        f("throttle_time_ms", 2, I32),
        f("topics", 2, array(&[
            f("name", 2, STRING),
            f("topic_id", 7, UUID),
            f("error_code", 2, I16),
            f("error_message", 2, STRING).nullable(),
            f("num_partitions", 5, I32),
            f("replication_factor", 5, I16),
            f("configs", 5, array(&[
                f("name", 5, STRING),
                f("value", 5, STRING).nullable(),
                f("read_only", 5, BOOL),
                f("config_source", 5, I8),
                f("is_sensitive", 5, BOOL),
            ])).nullable(),
            f("topic_config_error_code", 2, I16).tagged(0),
        ])),
    ],
};

pub const DELETE_TOPICS: Message = Message {
    api_key: 20,
    name: "DeleteTopics",
    versions: (1, 6),
    flexible_from: Some(4),
    fields: &[
        f("throttle_time_ms", 1, I32),
        f("responses", 1, array(&[
            f("name", 1, STRING).nullable(),
            f("topic_id", 6, UUID),
            f("error_code", 1, I16),
            f("error_message", 5, STRING).nullable(),
        ])),
    ],
};

pub const DELETE_RECORDS: Message = Message {
    api_key: 21,
    name: "DeleteRecords",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("low_watermark", 0, I64),
                f("error_code", 0, I16),
            ])),
        ])),
    ],
};

pub const INIT_PRODUCER_ID: Message = Message {
    api_key: 22,
    name: "InitProducerId",
    versions: (0, 6),
    flexible_from: Some(2),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("producer_id", 0, I64),
        f("producer_epoch", 0, I16),
        f("ongoing_txn_producer_id", 6, I64),
        f("ongoing_txn_producer_epoch", 6, I16),
    ],
};

pub const OFFSET_FOR_LEADER_EPOCH: Message = Message {
    api_key: 23,
    name: "OffsetForLeaderEpoch",
    versions: (2, 4),
    flexible_from: Some(4),
    fields: &[
        f("throttle_time_ms", 2, I32),
        f("topics", 2, array(&[
            f("topic", 2, STRING),
            f("partitions", 2, array(&[
                f("error_code", 2, I16),
                f("partition", 2, I32),
                f("leader_epoch", 2, I32),
                f("end_offset", 2, I64),
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
        f("throttle_time_ms", 1, I32),
        f("results", 1, array(&[
            f("error_code", 1, I16),
            f("error_message", 1, STRING).nullable(),
            f("resource_type", 1, I8),
            f("resource_name", 1, STRING),
            f("configs", 1, array(&[
                f("name", 1, STRING),
                f("value", 1, STRING).nullable(),
                f("read_only", 1, BOOL),
                f("config_source", 1, I8),
                f("is_sensitive", 1, BOOL),
                f("synonyms", 1, array(&[
                    f("name", 1, STRING),
                    f("value", 1, STRING).nullable(),
                    f("source", 1, I8),
                ])),
                f("config_type", 3, I8),
                f("documentation", 3, STRING).nullable(),
            ])),
        ])),
    ],
};

pub const ALTER_CONFIGS: Message = Message {
    api_key: 33,
    name: "AlterConfigs",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("responses", 0, array(&[
            f("error_code", 0, I16),
            f("error_message", 0, STRING).nullable(),
            f("resource_type", 0, I8),
            f("resource_name", 0, STRING),
        ])),
    ],
};

pub const CREATE_PARTITIONS: Message = Message {
    api_key: 37,
    name: "CreatePartitions",
    versions: (0, 3),
    flexible_from: Some(2),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("results", 0, array(&[
            f("name", 0, STRING),
            f("error_code", 0, I16),
            f("error_message", 0, STRING).nullable(),
        ])),
    ],
};

pub const DELETE_GROUPS: Message = Message {
    api_key: 42,
    name: "DeleteGroups",
    versions: (0, 2),
    flexible_from: Some(2),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("results", 0, array(&[
            f("group_id", 0, STRING),
            f("error_code", 0, I16),
        ])),
    ],
};

pub const INCREMENTAL_ALTER_CONFIGS: Message = Message {
    api_key: 44,
    name: "IncrementalAlterConfigs",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("responses", 0, array(&[
            f("error_code", 0, I16),
            f("error_message", 0, STRING).nullable(),
            f("resource_type", 0, I8),
            f("resource_name", 0, STRING),
        ])),
    ],
};

pub const OFFSET_DELETE: Message = Message {
    api_key: 47,
    name: "OffsetDelete",
    versions: (0, 0),
    flexible_from: None,
    fields: &[
        f("error_code", 0, I16),
        f("throttle_time_ms", 0, I32),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
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
        f("throttle_time_ms", 0, I32),
        f("error_code", 1, I16),
        f("replica_election_results", 0, array(&[
            f("topic", 0, STRING),
            f("partition_result", 0, array(&[
                f("partition_id", 0, I32),
                f("error_code", 0, I16),
                f("error_message", 0, STRING).nullable(),
            ])),
        ])),
    ],
};

pub const ALTER_PARTITION_REASSIGNMENTS: Message = Message {
    api_key: 45,
    name: "AlterPartitionReassignments",
    versions: (0, 1),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("allow_replication_factor_change", 1, BOOL),
        f("error_code", 0, I16),
        f("error_message", 0, STRING).nullable(),
        f("responses", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
                f("error_message", 0, STRING).nullable(),
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
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("error_message", 0, STRING).nullable(),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("replicas", 0, array_of(I32)),
                f("adding_replicas", 0, array_of(I32)),
                f("removing_replicas", 0, array_of(I32)),
            ])),
        ])),
    ],
};

pub const DESCRIBE_CLUSTER: Message = Message {
    api_key: 60,
    name: "DescribeCluster",
    versions: (0, 2),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("error_message", 0, STRING).nullable(),
        f("endpoint_type", 1, I8),
        f("cluster_id", 0, STRING),
        f("controller_id", 0, I32),
        f("brokers", 0, array(&[
            f("broker_id", 0, I32),
            f("host", 0, STRING),
            f("port", 0, I32),
            f("rack", 0, STRING).nullable(),
            f("is_fenced", 2, BOOL),
        ])),
        f("cluster_authorized_operations", 0, I32),
    ],
};

pub const DESCRIBE_TOPIC_PARTITIONS: Message = Message {
    api_key: 75,
    name: "DescribeTopicPartitions",
    versions: (0, 0),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("topics", 0, array(&[
            f("error_code", 0, I16),
            f("name", 0, STRING).nullable(),
            f("topic_id", 0, UUID),
            f("is_internal", 0, BOOL),
            f("partitions", 0, array(&[
                f("error_code", 0, I16),
                f("partition_index", 0, I32),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
                f("replica_nodes", 0, array_of(I32)),
                f("isr_nodes", 0, array_of(I32)),
                f("eligible_leader_replicas", 0, array_of(I32)).nullable(),
                f("last_known_elr", 0, array_of(I32)).nullable(),
                f("offline_replicas", 0, array_of(I32)),
            ])),
            f("topic_authorized_operations", 0, I32),
        ])),
        f("next_cursor", 0, strukt(&[
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
        f("error_code", 0, I16),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
                f("vote_granted", 0, BOOL),
            ])),
        ])),
        f("node_endpoints", 1, array(&[
            f("node_id", 1, I32),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])).tagged(0),
    ],
};

pub const BEGIN_QUORUM_EPOCH: Message = Message {
    api_key: 53,
    name: "BeginQuorumEpoch",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("error_code", 0, I16),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
            ])),
        ])),
        f("node_endpoints", 0, array(&[
            f("node_id", 1, I32),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])).tagged(0),
    ],
};

pub const END_QUORUM_EPOCH: Message = Message {
    api_key: 54,
    name: "EndQuorumEpoch",
    versions: (0, 1),
    flexible_from: Some(1),
    fields: &[
        f("error_code", 0, I16),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
            ])),
        ])),
        f("node_endpoints", 0, array(&[
            f("node_id", 1, I32),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])).tagged(0),
    ],
};

pub const DESCRIBE_QUORUM: Message = Message {
    api_key: 55,
    name: "DescribeQuorum",
    versions: (0, 2),
    flexible_from: Some(0),
    fields: &[
        f("error_code", 0, I16),
        f("error_message", 2, STRING).nullable(),
        f("topics", 0, array(&[
            f("topic_name", 0, STRING),
            f("partitions", 0, array(&[
                f("partition_index", 0, I32),
                f("error_code", 0, I16),
                f("error_message", 2, STRING).nullable(),
                f("leader_id", 0, I32),
                f("leader_epoch", 0, I32),
                f("high_watermark", 0, I64),
                f("current_voters", 0, array(&[
                    f("replica_id", 0, I32),
                    f("replica_directory_id", 2, UUID),
                    f("log_end_offset", 0, I64),
                    f("last_fetch_timestamp", 1, I64),
                    f("last_caught_up_timestamp", 1, I64),
                ])),
                f("observers", 0, array(&[
                    f("replica_id", 0, I32),
                    f("replica_directory_id", 2, UUID),
                    f("log_end_offset", 0, I64),
                    f("last_fetch_timestamp", 1, I64),
                    f("last_caught_up_timestamp", 1, I64),
                ])),
            ])),
        ])),
        f("nodes", 2, array(&[
            f("node_id", 2, I32),
            f("listeners", 2, array(&[
                f("name", 2, STRING),
                f("host", 2, STRING),
                f("port", 2, U16),
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
        f("throttle_time_ms", 2, I32),
        f("error_code", 2, I16),
        f("topics", 2, array(&[
            f("topic_id", 2, UUID),
            f("partitions", 2, array(&[
                f("partition_index", 2, I32),
                f("error_code", 2, I16),
                f("leader_id", 2, I32),
                f("leader_epoch", 2, I32),
                f("isr", 2, array_of(I32)),
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
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("topics", 0, array(&[
            f("name", 0, STRING),
            f("partitions", 0, array(&[
                f("index", 0, I32),
                f("error_code", 0, I16),
                f("snapshot_id", 0, strukt(&[
                    f("end_offset", 0, I64),
                    f("epoch", 0, I32),
                ])),
                f("size", 0, I64),
                f("position", 0, I64),
                f("unaligned_records", 0, BYTES),
                f("current_leader", 0, strukt(&[
                    f("leader_id", 0, I32),
                    f("leader_epoch", 0, I32),
                ])).tagged(0),
            ])),
        ])),
        f("node_endpoints", 1, array(&[
            f("node_id", 1, I32),
            f("host", 1, STRING),
            f("port", 1, U16),
        ])).tagged(0),
    ],
};

pub const BROKER_REGISTRATION: Message = Message {
    api_key: 62,
    name: "BrokerRegistration",
    versions: (0, 4),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("broker_epoch", 0, I64),
    ],
};

pub const BROKER_HEARTBEAT: Message = Message {
    api_key: 63,
    name: "BrokerHeartbeat",
    versions: (0, 1),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("is_caught_up", 0, BOOL),
        f("is_fenced", 0, BOOL),
        f("should_shut_down", 0, BOOL),
    ],
};

pub const ALLOCATE_PRODUCER_IDS: Message = Message {
    api_key: 67,
    name: "AllocateProducerIds",
    versions: (0, 0),
    flexible_from: Some(0),
    fields: &[
        f("throttle_time_ms", 0, I32),
        f("error_code", 0, I16),
        f("producer_id_start", 0, I64),
        f("producer_id_len", 0, I32),
    ],
};

/// Every response schema, by API key.
pub const ALL: &[&Message] = &[&PRODUCE, &FETCH, &LIST_OFFSETS, &METADATA, &OFFSET_COMMIT, &OFFSET_FETCH, &FIND_COORDINATOR, &JOIN_GROUP, &HEARTBEAT, &LEAVE_GROUP, &SYNC_GROUP, &DESCRIBE_GROUPS, &LIST_GROUPS, &API_VERSIONS, &CREATE_TOPICS, &DELETE_TOPICS, &DELETE_RECORDS, &INIT_PRODUCER_ID, &OFFSET_FOR_LEADER_EPOCH, &DESCRIBE_CONFIGS, &ALTER_CONFIGS, &CREATE_PARTITIONS, &DELETE_GROUPS, &INCREMENTAL_ALTER_CONFIGS, &OFFSET_DELETE, &ELECT_LEADERS, &ALTER_PARTITION_REASSIGNMENTS, &LIST_PARTITION_REASSIGNMENTS, &DESCRIBE_CLUSTER, &DESCRIBE_TOPIC_PARTITIONS, &VOTE, &BEGIN_QUORUM_EPOCH, &END_QUORUM_EPOCH, &DESCRIBE_QUORUM, &ALTER_PARTITION, &FETCH_SNAPSHOT, &BROKER_REGISTRATION, &BROKER_HEARTBEAT, &ALLOCATE_PRODUCER_IDS];
