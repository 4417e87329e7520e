//! Every handler, at every version the broker advertises, produces a response the codec can
//! encode at that version. (kafka-protocol refuses to encode a field that a version lacks when it
//! holds a non-default value; a client would see the connection close.) Runs the real broker
//! state over the in-memory disk.

use std::sync::Arc;

use bytes::Bytes;
use gregor_core::clock::ManualClock;
use gregor_net::codec::{encode_response, DecodedRequest};
use gregor_server::broker::Broker;
use gregor_server::config::BrokerConfig;
use gregor_server::handlers::{dispatch, Reply, SUPPORTED};
use gregor_storage::{FaultConfig, MemDisk};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn topic(x: &str) -> TopicName {
    TopicName(s(x))
}

fn sample(key: ApiKey, version: i16, topic_id: uuid::Uuid) -> RequestKind {
    match key {
        ApiKey::Produce => {
            let mut pd = produce_request::PartitionProduceData::default();
            pd.index = 0;
            pd.records = Some(Bytes::from(gregor_core::batch::build_simple(0, 1000 + version as i64, &[(Some(b"k"), Some(b"v"))])));
            let mut td = produce_request::TopicProduceData::default();
            td.name = topic("t");
            td.partition_data = vec![pd];
            let mut r = ProduceRequest::default();
            r.acks = -1;
            r.timeout_ms = 1000;
            r.topic_data = vec![td];
            RequestKind::Produce(r)
        }
        ApiKey::Fetch => {
            let mut fp = fetch_request::FetchPartition::default();
            fp.partition = 0;
            fp.fetch_offset = 0;
            fp.partition_max_bytes = 1 << 20;
            let mut ft = fetch_request::FetchTopic::default();
            ft.topic = if version < 13 { topic("t") } else { TopicName::default() };
            ft.topic_id = if version >= 13 { topic_id } else { uuid::Uuid::nil() };
            ft.partitions = vec![fp];
            let mut r = FetchRequest::default();
            r.max_wait_ms = 0;
            r.min_bytes = 1;
            r.max_bytes = 1 << 20;
            r.session_epoch = -1;
            r.topics = vec![ft];
            RequestKind::Fetch(r)
        }
        ApiKey::ListOffsets => {
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = topic("t");
            t.partitions = [-1i64, -2, -3, 0]
                .iter()
                .map(|&ts| {
                    let mut p = list_offsets_request::ListOffsetsPartition::default();
                    p.partition_index = 0;
                    p.timestamp = ts;
                    p
                })
                .collect();
            let mut r = ListOffsetsRequest::default();
            r.topics = vec![t];
            RequestKind::ListOffsets(r)
        }
        ApiKey::Metadata => {
            let mut r = MetadataRequest::default();
            r.topics = if version == 0 { Some(vec![]) } else { None };
            RequestKind::Metadata(r)
        }
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => {
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = topic(&format!("created-{version}"));
            t.num_partitions = 2;
            t.replication_factor = 1;
            let mut c = create_topics_request::CreatableTopicConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("1000"));
            t.configs = vec![c];
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            RequestKind::CreateTopics(r)
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default();
            if version >= 6 {
                let mut st = delete_topics_request::DeleteTopicState::default();
                st.name = Some(topic("missing"));
                r.topics = vec![st];
            } else {
                r.topic_names = vec![topic("missing")];
            }
            RequestKind::DeleteTopics(r)
        }
        ApiKey::DeleteRecords => {
            let mut p = delete_records_request::DeleteRecordsPartition::default();
            p.partition_index = 0;
            p.offset = 0;
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = topic("t");
            t.partitions = vec![p];
            let mut r = DeleteRecordsRequest::default();
            r.topics = vec![t];
            RequestKind::DeleteRecords(r)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.partition = 0;
            p.leader_epoch = 0;
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = topic("t");
            t.partitions = vec![p];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.topics = vec![t];
            RequestKind::OffsetForLeaderEpoch(r)
        }
        ApiKey::DescribeConfigs => {
            let mut a = describe_configs_request::DescribeConfigsResource::default();
            a.resource_type = 2;
            a.resource_name = s("t");
            let mut b = describe_configs_request::DescribeConfigsResource::default();
            b.resource_type = 4;
            b.resource_name = s("1");
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![a, b];
            RequestKind::DescribeConfigs(r)
        }
        ApiKey::AlterConfigs => {
            let mut c = alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("99999"));
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("t");
            res.configs = vec![c];
            let mut r = AlterConfigsRequest::default();
            r.resources = vec![res];
            RequestKind::AlterConfigs(r)
        }
        ApiKey::IncrementalAlterConfigs => {
            let mut c = incremental_alter_configs_request::AlterableConfig::default();
            c.name = s("log.retention.ms");
            c.config_operation = 0;
            c.value = Some(s("123456"));
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 4;
            res.resource_name = s("1");
            res.configs = vec![c];
            let mut r = IncrementalAlterConfigsRequest::default();
            r.resources = vec![res];
            RequestKind::IncrementalAlterConfigs(r)
        }
        ApiKey::CreatePartitions => {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = topic("t");
            t.count = 1 + version as i32 + 1;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            RequestKind::CreatePartitions(r)
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default();
            r.transaction_timeout_ms = 60_000;
            r.producer_id = ProducerId(-1);
            r.producer_epoch = -1;
            RequestKind::InitProducerId(r)
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => {
            let mut p = describe_quorum_request::PartitionData::default();
            p.partition_index = 0;
            let mut t = describe_quorum_request::TopicData::default();
            t.topic_name = topic("__cluster_metadata");
            t.partitions = vec![p];
            let mut r = DescribeQuorumRequest::default();
            r.topics = vec![t];
            RequestKind::DescribeQuorum(r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version < 4 {
                r.key = s("g");
            } else {
                r.coordinator_keys = vec![s("g"), s("h")];
            }
            RequestKind::FindCoordinator(r)
        }
        ApiKey::OffsetCommit => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.partition_index = 0;
            p.committed_offset = 1;
            p.committed_metadata = Some(s("meta"));
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = topic("t");
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = GroupId(s("standalone"));
            r.generation_id_or_member_epoch = -1;
            r.topics = vec![t];
            RequestKind::OffsetCommit(r)
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if version < 8 {
                r.group_id = GroupId(s("standalone"));
                let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                t.name = topic("t");
                t.partition_indexes = vec![0, 1];
                r.topics = Some(vec![t]);
            } else {
                let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s("standalone"));
                g.topics = None;
                r.groups = vec![g];
            }
            RequestKind::OffsetFetch(r)
        }
        ApiKey::JoinGroup => {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = s("range");
            p.metadata = Bytes::from_static(b"sub");
            let mut r = JoinGroupRequest::default();
            r.group_id = GroupId(s(&format!("join-{version}")));
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = 10_000;
            r.protocol_type = s("consumer");
            r.protocols = vec![p];
            RequestKind::JoinGroup(r)
        }
        ApiKey::SyncGroup => {
            let mut r = SyncGroupRequest::default();
            r.group_id = GroupId(s("nobody"));
            r.generation_id = 3;
            r.member_id = s("m");
            if version >= 5 {
                r.protocol_type = Some(s("consumer"));
                r.protocol_name = Some(s("range"));
            }
            RequestKind::SyncGroup(r)
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default();
            r.group_id = GroupId(s("nobody"));
            r.member_id = s("m");
            RequestKind::Heartbeat(r)
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default();
            r.group_id = GroupId(s("nobody"));
            if version >= 3 {
                let mut m = leave_group_request::MemberIdentity::default();
                m.member_id = s("m");
                r.members = vec![m];
            } else {
                r.member_id = s("m");
            }
            RequestKind::LeaveGroup(r)
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default();
            r.groups = vec![GroupId(s("standalone")), GroupId(s("nobody"))];
            RequestKind::DescribeGroups(r)
        }
        ApiKey::DeleteGroups => {
            let mut r = DeleteGroupsRequest::default();
            r.groups_names = vec![GroupId(s("nobody"))];
            RequestKind::DeleteGroups(r)
        }
        ApiKey::OffsetDelete => {
            let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
            p.partition_index = 0;
            let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
            t.name = topic("t");
            t.partitions = vec![p];
            let mut r = OffsetDeleteRequest::default();
            r.group_id = GroupId(s("nobody"));
            r.topics = vec![t];
            RequestKind::OffsetDelete(r)
        }
        ApiKey::ElectLeaders => {
            let mut tp = elect_leaders_request::TopicPartitions::default();
            tp.topic = topic("t");
            tp.partitions = vec![0];
            let mut r = ElectLeadersRequest::default();
            r.topic_partitions = Some(vec![tp]);
            RequestKind::ElectLeaders(r)
        }
        ApiKey::AlterPartitionReassignments => {
            let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
            p.replicas = Some(vec![BrokerId(1)]);
            let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
            t.name = topic("t");
            t.partitions = vec![p];
            let mut r = AlterPartitionReassignmentsRequest::default();
            r.allow_replication_factor_change = version >= 1;
            r.topics = vec![t];
            RequestKind::AlterPartitionReassignments(r)
        }
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
        ApiKey::DescribeTopicPartitions => {
            let mut t = describe_topic_partitions_request::TopicRequest::default();
            t.name = topic("t");
            let mut c = describe_topic_partitions_request::Cursor::default();
            c.topic_name = topic("t");
            c.partition_index = 1;
            let mut r = DescribeTopicPartitionsRequest::default();
            r.topics = vec![t];
            r.response_partition_limit = 1;
            r.cursor = Some(c);
            RequestKind::DescribeTopicPartitions(r)
        }
        other => panic!("no sample request for {other:?}"),
    }
}

#[test]
fn every_supported_version_encodes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = Arc::new(MemDisk::new(7, FaultConfig::default()));
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = BrokerConfig::from_settings(&[
            ("log.dirs".into(), "/data".into()),
            ("offsets.topic.num.partitions".into(), "3".into()),
            ("group.initial.rebalance.delay.ms".into(), "0".into()),
        ])
        .unwrap();
        let broker = Broker::open(config, disk, clock, 1).await.unwrap();
        let t = broker.create_topic("t", 1, 1, Default::default(), false).await.unwrap();
        let mut checked = 0;
        for &(key, min, max) in SUPPORTED {
            for version in min..=max {
                let mut header = RequestHeader::default();
                header.request_api_key = key as i16;
                header.request_api_version = version;
                header.correlation_id = 9;
                let req = DecodedRequest { header, api_key: key, body: sample(key, version, t.id) };
                let reply = dispatch(&broker, req, "127.0.0.1:5555").await.expect("supported API must be dispatched");
                let body = match reply {
                    Reply::Now(b) => b,
                    Reply::Later(f) => f.await,
                    Reply::None => continue,
                };
                match &body {
                    ResponseKind::Produce(p) => assert_eq!(p.responses[0].partition_responses[0].error_code, 0, "produce v{version}"),
                    ResponseKind::OffsetCommit(p) => assert_eq!(p.topics[0].partitions[0].error_code, 0, "offset commit v{version}"),
                    ResponseKind::JoinGroup(j) if version >= 4 => assert_eq!(j.error_code, 79, "join v{version} needs a member id first"),
                    ResponseKind::JoinGroup(j) => assert_eq!((j.error_code, j.generation_id), (0, 1), "join v{version}"),
                    ResponseKind::AlterPartitionReassignments(a) => {
                        assert_eq!((a.error_code, a.responses[0].partitions[0].error_code), (0, 0), "reassign v{version}: to the current replicas")
                    }
                    ResponseKind::ListPartitionReassignments(l) => assert!(l.topics.is_empty(), "nothing is being reassigned"),
                    ResponseKind::ElectLeaders(e) => {
                        assert_eq!(e.replica_election_results[0].partition_result[0].error_code, 84, "elect v{version}: the only replica leads already")
                    }
                    _ => {}
                }
                encode_response(key, version, 9, &body).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} combinations checked");
        // The standalone commit is visible to OffsetFetch.
        assert_eq!(broker.offsets.get("standalone", "t", 0).map(|c| (c.offset, c.metadata)), Some((1, "meta".to_string())));
    });
}
