use proptest::prelude::*;

use super::*;

fn ep(port: u16) -> Endpoint {
    Endpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port, security_protocol: 0 }
}

fn sample_records() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::FeatureLevel { name: "metadata.version".into(), level: 1 },
        MetadataRecord::RegisterBroker { broker_id: 1, incarnation_id: 11, broker_epoch: 1, endpoints: vec![ep(9092)], rack: None, fenced: true },
        MetadataRecord::RegisterBroker { broker_id: 2, incarnation_id: 22, broker_epoch: 2, endpoints: vec![ep(9192)], rack: Some("r1".into()), fenced: true },
        MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: 1 },
        MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 2 },
        MetadataRecord::Topic { name: "t".into(), topic_id: 7 },
        MetadataRecord::Partition { topic_id: 7, partition_id: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Partition { topic_id: 7, partition_id: 1, replicas: vec![2], isr: vec![2], leader: 2, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: "t".into(), name: "retention.ms".into(), value: Some("1000".into()) },
        MetadataRecord::Config { resource_type: RESOURCE_BROKER, resource_name: String::new(), name: "log.retention.ms".into(), value: Some("5".into()) },
        MetadataRecord::ProducerIds { broker_id: 1, broker_epoch: 1, next_producer_id: 1000 },
        MetadataRecord::FenceBroker { broker_id: 2, broker_epoch: 2 },
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 1, leader: LeaderChange::Set(NO_LEADER), isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None },
        MetadataRecord::UnregisterBroker { broker_id: 2, broker_epoch: 2 },
        MetadataRecord::Topic { name: "gone".into(), topic_id: 9 },
        MetadataRecord::Partition { topic_id: 9, partition_id: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::RemoveTopic { topic_id: 9 },
        // A reassignment from [1] to [2] under way, then completed.
        MetadataRecord::Partition { topic_id: 7, partition_id: 2, replicas: vec![2, 1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![2], removing: vec![1], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 2, leader: LeaderChange::Set(2), isr: Some(vec![2]), replicas: Some(vec![2]), adding: Some(vec![]), removing: Some(vec![]), elr: None, last_known_elr: None },
        // Eligible leader replicas: a partition created with them, and a change that sets them.
        MetadataRecord::Partition { topic_id: 7, partition_id: 3, replicas: vec![1, 2], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![2], last_known_elr: vec![] },
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 3, leader: LeaderChange::Keep, isr: None, replicas: None, adding: None, removing: None, elr: Some(vec![]), last_known_elr: Some(vec![2]) },
    ]
}

fn build(records: &[MetadataRecord]) -> (MetadataImage, MetadataDelta) {
    let mut image = MetadataImage::new();
    let mut delta = MetadataDelta::default();
    for (i, r) in records.iter().enumerate() {
        image.apply(i as i64, r, &mut delta).unwrap_or_else(|e| panic!("record {i} {r:?}: {e}"));
    }
    image.check_invariants();
    (image, delta)
}

#[test]
fn every_record_round_trips_and_damage_is_refused() {
    for r in sample_records() {
        let bytes = r.encode();
        assert_eq!(MetadataRecord::decode(&bytes), Ok(r.clone()));
        for cut in 0..bytes.len() {
            assert!(MetadataRecord::decode(&bytes[..cut]).is_err(), "{r:?} cut at {cut} decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(MetadataRecord::decode(&longer).is_err(), "trailing byte accepted");
        let mut future = bytes.clone();
        future[1] = 9;
        assert!(matches!(MetadataRecord::decode(&future), Err(DecodeError::UnknownVersion { .. })));
    }
    assert_eq!(MetadataRecord::decode(&[200, 0]), Err(DecodeError::UnknownType(200)));
}

#[test]
fn reassignment_and_elr_fields_are_written_only_when_set() {
    // Logs written before reassignments existed hold version-0 partition records, and before
    // eligible leader replicas at most version 1; a partition without them is still written
    // that way, and every version decodes.
    for r in sample_records() {
        let bytes = r.encode();
        let reassigning = matches!(&r, MetadataRecord::Partition { adding, removing, .. } if !adding.is_empty() || !removing.is_empty())
            || matches!(&r, MetadataRecord::PartitionChange { adding, removing, .. } if adding.is_some() || removing.is_some());
        let with_elr = matches!(&r, MetadataRecord::Partition { elr, last_known_elr, .. } if !elr.is_empty() || !last_known_elr.is_empty())
            || matches!(&r, MetadataRecord::PartitionChange { elr, last_known_elr, .. } if elr.is_some() || last_known_elr.is_some());
        assert_eq!(bytes[1], if with_elr { 2 } else { u8::from(reassigning) }, "{r:?}");
    }
    let (image, _) = build(&sample_records());
    let p = &image.topic("t").unwrap().partitions[&2];
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.is_reassigning()), (vec![2], vec![2], 2, false));
    let p = PartitionRegistration { replicas: vec![3, 1, 2], isr: vec![1, 2], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![3], removing: vec![2], elr: vec![], last_known_elr: vec![] };
    assert_eq!(p.target_replicas(), vec![3, 1]);
}

#[test]
fn entries_round_trip_and_damage_is_refused() {
    let records = sample_records();
    let bytes = encode_entry(&records);
    assert_eq!(decode_entry(&bytes), Ok(records));
    for cut in 0..bytes.len() {
        assert!(decode_entry(&bytes[..cut]).is_err(), "entry cut at {cut} decoded");
    }
    assert_eq!(decode_entry(&encode_entry(&[])), Ok(vec![]));
    // A count claiming more records than the bytes can hold is refused before allocating.
    assert!(decode_entry(&[0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn applying_records_builds_the_image() {
    let (image, delta) = build(&sample_records());
    assert_eq!(image.brokers.len(), 1);
    assert!(!image.brokers[&1].fenced);
    let t = image.topic("t").unwrap();
    assert_eq!(t.partitions[&1].leader, NO_LEADER);
    assert_eq!(t.partitions[&1].leader_epoch, 1);
    assert_eq!(t.partitions[&1].partition_epoch, 1);
    assert!(image.topic("gone").is_none());
    assert_eq!(image.topic_configs("t")["retention.ms"], "1000");
    assert_eq!(image.cluster_broker_configs()["log.retention.ms"], "5");
    assert_eq!(image.next_producer_id, 1000);
    assert_eq!(delta.removed_topics[&9].1, vec![0]);
    assert!(!delta.changed_partitions.contains_key(&(9, 0)), "a removed topic's partitions are not reported as changed");
    assert_eq!(delta.changed_partitions[&(7, 1)].leader, NO_LEADER);
}

#[test]
fn snapshot_records_rebuild_an_equal_image() {
    let (image, _) = build(&sample_records());
    let (rebuilt, _) = build(&image.to_records());
    let mut expected = image.clone();
    expected.offset = rebuilt.offset;
    assert_eq!(rebuilt, expected);
}

#[test]
fn an_image_from_a_snapshot_and_its_diff_from_an_older_one() {
    let records = sample_records();
    let (older, _) = build(&records[..9]);
    let (newer, _) = build(&records);
    let loaded = MetadataImage::from_snapshot(40, &newer.to_records()).unwrap();
    assert_eq!(loaded.offset, 39);
    let mut expected = newer.clone();
    expected.offset = 39;
    assert_eq!(loaded, expected);
    assert!(newer.diff(&newer).is_empty());
    let d = older.diff(&newer);
    // Partition 7-1 lost its leader, 7-2 and 7-3 were created; 7-0 is unchanged; broker 2
    // went; configs and producer ids changed; topic 9 never existed in either.
    assert_eq!(d.changed_partitions.keys().copied().collect::<Vec<_>>(), vec![(7, 1), (7, 2), (7, 3)]);
    assert_eq!(d.changed_brokers.iter().copied().collect::<Vec<_>>(), vec![2]);
    assert!(d.producer_ids_changed);
    assert!(d.changed_configs.contains(&(RESOURCE_BROKER, String::new())));
    assert!(d.removed_topics.is_empty());
    let back = newer.diff(&MetadataImage::new());
    assert_eq!(back.removed_topics[&7], ("t".to_string(), vec![0, 1, 2, 3]));
    // A snapshot whose records do not fit is refused, not half-loaded.
    assert!(MetadataImage::from_snapshot(5, &records[6..7]).is_err());
}

#[test]
fn records_that_do_not_fit_are_refused_and_change_nothing() {
    let (image, _) = build(&sample_records());
    let bad = [
        MetadataRecord::Topic { name: "t".into(), topic_id: 99 },
        MetadataRecord::Topic { name: "x".into(), topic_id: 7 },
        MetadataRecord::Partition { topic_id: 7, partition_id: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Partition { topic_id: 7, partition_id: 5, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Partition { topic_id: 8, partition_id: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Partition { topic_id: 7, partition_id: 2, replicas: vec![1, 1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::Partition { topic_id: 7, partition_id: 2, replicas: vec![1], isr: vec![1], leader: 3, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] },
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 0, leader: LeaderChange::Set(4), isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None },
        MetadataRecord::PartitionChange { topic_id: 7, partition_id: 9, leader: LeaderChange::Keep, isr: None, replicas: None, adding: None, removing: None, elr: None, last_known_elr: None },
        MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 0 },
        MetadataRecord::UnfenceBroker { broker_id: 5, broker_epoch: 1 },
        MetadataRecord::RegisterBroker { broker_id: 1, incarnation_id: 1, broker_epoch: 1, endpoints: vec![], rack: None, fenced: false },
        MetadataRecord::ProducerIds { broker_id: 1, broker_epoch: 1, next_producer_id: 1000 },
        MetadataRecord::RemoveTopic { topic_id: 12345 },
    ];
    for (i, r) in bad.iter().enumerate() {
        let mut img = image.clone();
        let mut delta = MetadataDelta::default();
        assert!(img.apply(100 + i as i64, r, &mut delta).is_err(), "{r:?} applied");
        img.offset = image.offset;
        assert_eq!(img, image, "{r:?} changed the image");
        assert!(delta.is_empty(), "{r:?} reported a change");
    }
}

fn arb_record() -> impl Strategy<Value = MetadataRecord> {
    let ids = prop::collection::vec(-1i32..5, 0..4);
    prop_oneof![
        (0i32..4, any::<u128>(), 0i64..4, any::<bool>(), prop::option::of("[a-z]{0,3}"), 0u16..3)
            .prop_map(|(broker_id, incarnation_id, broker_epoch, fenced, rack, port)| MetadataRecord::RegisterBroker { broker_id, incarnation_id, broker_epoch, endpoints: vec![ep(port)], rack, fenced }),
        (0i32..4, 0i64..4).prop_map(|(broker_id, broker_epoch)| MetadataRecord::FenceBroker { broker_id, broker_epoch }),
        (0i32..4, 0i64..4).prop_map(|(broker_id, broker_epoch)| MetadataRecord::UnfenceBroker { broker_id, broker_epoch }),
        (0i32..4, 0i64..4).prop_map(|(broker_id, broker_epoch)| MetadataRecord::UnregisterBroker { broker_id, broker_epoch }),
        ("[a-c]", 0u128..4).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        (0u128..4, 0i32..3, ids.clone(), ids.clone(), -1i32..4, 0i32..3, ids.clone(), ids.clone()).prop_map(
            |(topic_id, partition_id, replicas, isr, leader, leader_epoch, adding, removing)| MetadataRecord::Partition { topic_id, partition_id, replicas, isr, leader, leader_epoch, partition_epoch: 0, adding, removing, elr: vec![], last_known_elr: vec![] }
        ),
        (0u128..4, 0i32..3, prop::option::of(-1i32..4), prop::option::of(ids.clone()), prop::option::of(ids.clone()), prop::option::of(ids.clone()), prop::option::of(ids))
            .prop_map(|(topic_id, partition_id, leader, isr, replicas, adding, removing)| {
                MetadataRecord::PartitionChange { topic_id, partition_id, leader: leader.map_or(LeaderChange::Keep, LeaderChange::Set), isr, replicas, adding, removing, elr: None, last_known_elr: None }
            }),
        ("[a-c]", "[xy]", prop::option::of("[0-9]{1,2}"))
            .prop_map(|(resource_name, name, value)| MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name, name, value }),
        (0i64..3000).prop_map(|next_producer_id| MetadataRecord::ProducerIds { broker_id: 1, broker_epoch: 1, next_producer_id }),
        (0u128..4).prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
    ]
}

proptest! {
    /// Any sequence of records, valid or not: the image stays consistent, epochs never go back,
    /// and the snapshot of the result rebuilds it.
    #[test]
    fn any_record_sequence_keeps_the_image_consistent(records in prop::collection::vec(arb_record(), 0..60)) {
        let mut image = MetadataImage::new();
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(MetadataRecord::decode(&r.encode()), Ok(r.clone()));
            let before = image.clone();
            let mut delta = MetadataDelta::default();
            let _ = image.apply(i as i64, r, &mut delta);
            image.check_invariants();
            for (id, t) in &image.topics {
                if let Some(old) = before.topics.get(id) {
                    for (p, reg) in &t.partitions {
                        if let Some(o) = old.partitions.get(p) {
                            prop_assert!(reg.leader_epoch >= o.leader_epoch && reg.partition_epoch >= o.partition_epoch);
                        }
                    }
                }
            }
        }
        let mut rebuilt = MetadataImage::new();
        let mut delta = MetadataDelta::default();
        for (i, r) in image.to_records().iter().enumerate() {
            prop_assert!(rebuilt.apply(i as i64, r, &mut delta).is_ok(), "snapshot record {:?} refused", r);
        }
        rebuilt.offset = image.offset;
        prop_assert_eq!(rebuilt, image);
    }
}
