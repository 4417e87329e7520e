//! The metrics page: the recorded [`Metrics`](super::Metrics) plus gauges read off the broker's
//! state when the page is asked for (partition and leader counts, ISR health, controller and
//! quorum state, groups), as Kafka computes its gauges on read.
//!
//! Guarantees: the page is built from one metadata image, so its partition gauges agree with
//! each other; controller gauges other than `ActiveControllerCount` are those of the active
//! controller and 0 elsewhere (as Kafka's), so summing a metric over the cluster's nodes counts
//! each partition once.

use kafka_protocol::messages::ApiKey;

use super::exposition::{Kind, Page};
use crate::broker::Broker;

/// Partition health as this broker sees it (Kafka's ReplicaManager gauges).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplicaGauges {
    pub partitions: u64,
    pub leaders: u64,
    pub under_replicated: u64,
    pub under_min_isr: u64,
    pub at_min_isr: u64,
}

/// The active controller's view of the cluster (Kafka's KafkaController gauges).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ControllerGauges {
    pub active: bool,
    pub offline_partitions: u64,
    pub topics: u64,
    pub partitions: u64,
    pub fenced_brokers: u64,
    pub active_brokers: u64,
}

pub fn replica_gauges(broker: &Broker) -> ReplicaGauges {
    let me = broker.config.node_id;
    let image = broker.image();
    let mut g = ReplicaGauges::default();
    for t in image.topics.values() {
        for (index, reg) in &t.partitions {
            if !broker.replicas.contains(&t.name, *index) {
                continue;
            }
            g.partitions += 1;
            if reg.leader != me {
                continue;
            }
            g.leaders += 1;
            // A reassignment's removed replicas do not count towards the replication factor.
            let factor = reg.replicas.len().saturating_sub(reg.removing.len());
            if reg.isr.len() < factor {
                g.under_replicated += 1;
            }
            let min_insync = image.min_insync_replicas(&t.name, broker.config.replication.min_insync_replicas, reg.replicas.len());
            if reg.isr.len() < min_insync {
                g.under_min_isr += 1;
            } else if reg.isr.len() == min_insync {
                g.at_min_isr += 1;
            }
        }
    }
    g
}

pub fn controller_gauges(broker: &Broker) -> ControllerGauges {
    let active = broker.config.roles.controller && broker.controller.quorum.status().leader_id == broker.config.node_id;
    if !active {
        return ControllerGauges::default();
    }
    let image = broker.image();
    let mut g = ControllerGauges { active, topics: image.topics.len() as u64, ..ControllerGauges::default() };
    for t in image.topics.values() {
        g.partitions += t.partitions.len() as u64;
        g.offline_partitions += t.partitions.values().filter(|r| r.leader < 0).count() as u64;
    }
    g.fenced_brokers = image.brokers.values().filter(|b| b.fenced).count() as u64;
    g.active_brokers = image.brokers.len() as u64 - g.fenced_brokers;
    g
}

fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(()) => format!("ApiKey{key}"),
    }
}

/// The whole page.
pub fn page(broker: &Broker) -> String {
    let m = &broker.metrics;
    let mut p = Page::default();
    p.family("gregor_build_info", Kind::Gauge, "The running version (the value is always 1).");
    p.sample("gregor_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

    p.family("kafka_network_requestmetrics_requests_total", Kind::Counter, "Requests answered, by API (RequestsPerSec).");
    let requests: Vec<(String, &super::RequestStats)> = m.requests().map(|(k, s)| (api_name(k), s)).collect();
    for (name, s) in &requests {
        p.sample("kafka_network_requestmetrics_requests_total", &[("request", name)], s.count.get());
    }
    p.family(
        "kafka_network_requestmetrics_totaltime_seconds",
        Kind::Histogram,
        "Time from a request's last byte read to its answer's last byte written, by API (TotalTimeMs).",
    );
    for (name, s) in &requests {
        p.histogram("kafka_network_requestmetrics_totaltime_seconds", &[("request", name)], &s.total_time);
    }
    type Stage = fn(&super::RequestStats) -> &super::Histogram;
    let stages: [(&str, &str, Stage); 4] = [
        ("kafka_network_requestmetrics_localtime_seconds", "Time from a request's last byte read to its handler's return, by API (LocalTimeMs).", |s| &s.local_time),
        (
            "kafka_network_requestmetrics_remotetime_seconds",
            "Time a request's answer waited in a purgatory (acks=all replication, a fetch's max.wait.ms), by API (RemoteTimeMs).",
            |s| &s.remote_time,
        ),
        (
            "kafka_network_requestmetrics_responsequeuetime_seconds",
            "Time a ready answer waited for the answers before it on its connection, by API (ResponseQueueTimeMs).",
            |s| &s.response_queue_time,
        ),
        ("kafka_network_requestmetrics_responsesendtime_seconds", "Time writing an answer to its socket, by API (ResponseSendTimeMs).", |s| &s.response_send_time),
    ];
    for (family, help, stage) in stages {
        p.family(family, Kind::Histogram, help);
        for (name, s) in &requests {
            p.histogram(family, &[("request", name)], stage(s));
        }
    }
    p.family(
        "kafka_network_requestmetrics_errors_total",
        Kind::Counter,
        "Error codes in answers, by API and error, NONE included: every error_code field of the answer (ErrorsPerSec).",
    );
    for (name, s) in &requests {
        for (code, n) in s.errors() {
            // A code outside Gregor's table keeps its number, so no two samples share labels.
            let error = match crate::errors::name(code) {
                "UNKNOWN_ERROR_CODE" => format!("UNKNOWN_ERROR_CODE_{code}"),
                known => known.to_string(),
            };
            p.sample("kafka_network_requestmetrics_errors_total", &[("request", name), ("error", &error)], n);
        }
    }

    let counters: [(&'static str, &str, u64); 7] = [
        ("kafka_server_brokertopicmetrics_bytesin_total", "Record bytes appended by produce requests (BytesInPerSec).", m.bytes_in.get()),
        ("kafka_server_brokertopicmetrics_messagesin_total", "Records appended by produce requests (MessagesInPerSec).", m.messages_in.get()),
        ("kafka_server_brokertopicmetrics_bytesout_total", "Record bytes sent to consumers (BytesOutPerSec).", m.bytes_out.get()),
        (
            "kafka_server_brokertopicmetrics_replicationbytesin_total",
            "Record bytes this broker's followers appended from leaders (ReplicationBytesInPerSec).",
            m.replication_bytes_in.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesout_total",
            "Record bytes sent to follower replicas (ReplicationBytesOutPerSec).",
            m.replication_bytes_out.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            "Partitions of produce requests refused or not acknowledged (FailedProduceRequestsPerSec).",
            m.failed_produce.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_failedfetchrequests_total",
            "Fetch requests answered with an error on some partition (FailedFetchRequestsPerSec).",
            m.failed_fetch.get(),
        ),
    ];
    for (name, help, v) in counters {
        p.single(name, Kind::Counter, help, v);
    }
    p.family("kafka_server_delayedoperationpurgatory_purgatorysize", Kind::Gauge, "Requests waiting: produce for acknowledgement, fetch for data (PurgatorySize).");
    p.sample("kafka_server_delayedoperationpurgatory_purgatorysize", &[("delayedoperation", "Produce")], m.produce_purgatory.get());
    p.sample("kafka_server_delayedoperationpurgatory_purgatorysize", &[("delayedoperation", "Fetch")], m.fetch_purgatory.get());

    let r = replica_gauges(broker);
    p.single("kafka_server_replicamanager_partitioncount", Kind::Gauge, "Partitions this broker hosts a replica of (PartitionCount).", r.partitions);
    p.single("kafka_server_replicamanager_leadercount", Kind::Gauge, "Partitions this broker leads (LeaderCount).", r.leaders);
    p.single(
        "kafka_server_replicamanager_underreplicatedpartitions",
        Kind::Gauge,
        "Partitions led here whose ISR is smaller than their replica set (UnderReplicatedPartitions).",
        r.under_replicated,
    );
    p.single(
        "kafka_server_replicamanager_underminisrpartitioncount",
        Kind::Gauge,
        "Partitions led here whose ISR is below min.insync.replicas (UnderMinIsrPartitionCount).",
        r.under_min_isr,
    );
    p.single(
        "kafka_server_replicamanager_atminisrpartitioncount",
        Kind::Gauge,
        "Partitions led here whose ISR is exactly min.insync.replicas (AtMinIsrPartitionCount).",
        r.at_min_isr,
    );
    p.single("kafka_server_replicamanager_isrshrinks_total", Kind::Counter, "ISR shrinks of partitions led here (IsrShrinksPerSec).", m.isr_shrinks.get());
    p.single("kafka_server_replicamanager_isrexpands_total", Kind::Counter, "ISR expansions of partitions led here (IsrExpandsPerSec).", m.isr_expands.get());
    p.family("kafka_log_logflushstats_logflush_seconds", Kind::Histogram, "fsync of partition data (LogFlushRateAndTimeMs).");
    p.histogram("kafka_log_logflushstats_logflush_seconds", &[], &m.log_flush);

    let cs = broker.cleaner.stats.lock().expect("cleaner lock").clone();
    p.single(
        "kafka_log_logcleaner_max_buffer_utilization_percent",
        Kind::Gauge,
        "How full the offset map got in the last cleaning pass, in percent (max-buffer-utilization-percent).",
        cs.last_map_utilization * 100.0,
    );
    p.single("kafka_log_logcleaner_max_clean_time_secs", Kind::Gauge, "Wall time of the last cleaning pass (max-clean-time-secs).", cs.last_pass_seconds);
    p.single(
        "kafka_log_logcleanermanager_max_dirty_percent",
        Kind::Gauge,
        "The largest dirty share among compacted partitions at the cleaner's last look, in percent (max-dirty-percent).",
        cs.max_dirty_ratio * 100.0,
    );
    p.single(
        "kafka_log_logcleanermanager_uncleanable_partitions_count",
        Kind::Gauge,
        "Compacted partitions the cleaner left alone because their data does not decode (uncleanable-partitions-count).",
        broker.cleaner.uncleanable_count(),
    );
    p.single("gregor_log_cleaner_passes_total", Kind::Counter, "Cleaning passes completed since start.", cs.passes);
    p.single("gregor_log_cleaner_read_bytes_total", Kind::Counter, "Log bytes the cleaner read since start.", cs.bytes_read);
    p.single("gregor_log_cleaner_written_bytes_total", Kind::Counter, "Bytes the cleaner wrote into cleaned segments since start.", cs.bytes_written);
    p.single("gregor_log_cleaner_removed_records_total", Kind::Counter, "Records the cleaner removed since start.", cs.records_removed);

    let c = controller_gauges(broker);
    p.single("kafka_controller_kafkacontroller_activecontrollercount", Kind::Gauge, "1 on the active controller, else 0 (ActiveControllerCount).", u8::from(c.active));
    p.single(
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        Kind::Gauge,
        "Partitions without a leader (OfflinePartitionsCount; active controller only).",
        c.offline_partitions,
    );
    p.single("kafka_controller_kafkacontroller_globaltopiccount", Kind::Gauge, "Topics in the cluster (GlobalTopicCount; active controller only).", c.topics);
    p.single("kafka_controller_kafkacontroller_globalpartitioncount", Kind::Gauge, "Partitions in the cluster (GlobalPartitionCount; active controller only).", c.partitions);
    p.single("kafka_controller_kafkacontroller_fencedbrokercount", Kind::Gauge, "Registered brokers that are fenced (FencedBrokerCount; active controller only).", c.fenced_brokers);
    p.single("kafka_controller_kafkacontroller_activebrokercount", Kind::Gauge, "Registered brokers that are not fenced (ActiveBrokerCount; active controller only).", c.active_brokers);
    p.single(
        "kafka_controller_controllerstats_leaderelections_total",
        Kind::Counter,
        "Leader changes in the committed metadata applied since start (LeaderElectionRateAndTimeMs).",
        m.leader_elections.get(),
    );
    p.single(
        "kafka_controller_controllerstats_uncleanleaderelections_total",
        Kind::Counter,
        "Leaders elected from outside the ISR and the eligible replicas (UncleanLeaderElectionsPerSec).",
        m.unclean_leader_elections.get(),
    );

    let q = broker.controller.quorum.status();
    p.single("kafka_server_raftmetrics_current_leader", Kind::Gauge, "The metadata quorum's leader id, -1 when unknown (current-leader).", q.leader_id);
    p.single("kafka_server_raftmetrics_current_epoch", Kind::Gauge, "The metadata quorum's epoch (current-epoch).", q.leader_epoch);
    p.single("kafka_server_raftmetrics_high_watermark", Kind::Gauge, "The metadata log's high watermark (high-watermark).", q.high_watermark);
    p.single("kafka_server_raftmetrics_applied_offset", Kind::Gauge, "Offset of the last metadata record this node applied.", broker.image().offset);

    let (listings, rebalances) = broker.groups.with(|c| ((c.list(&[]), c.completed_rebalances()), Vec::new()));
    p.family("kafka_server_groupcoordinatormetrics_classic_group_count", Kind::Gauge, "Classic groups this broker coordinates, by state (classic-group-count).");
    for state in ["PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"] {
        let n = listings.iter().filter(|l| l.state.as_str() == state).count();
        p.sample("kafka_server_groupcoordinatormetrics_classic_group_count", &[("state", state)], n);
    }
    p.single(
        "kafka_server_groupcoordinatormetrics_group_completed_rebalance_total",
        Kind::Counter,
        "Join phases completed in groups coordinated here since start (group-completed-rebalance-count).",
        rebalances,
    );

    p.family("kafka_server_socketservermetrics_connection_count", Kind::Gauge, "Open connections, by listener (connection-count).");
    let listeners = [("broker", super::ListenerLabel::Broker), ("controller", super::ListenerLabel::Controller)];
    for (label, l) in listeners {
        p.sample("kafka_server_socketservermetrics_connection_count", &[("listener", label)], m.connection_count(l));
    }
    p.family("kafka_server_socketservermetrics_connection_creation_total", Kind::Counter, "Connections accepted since start, by listener (connection-creation-total).");
    for (label, l) in listeners {
        p.sample("kafka_server_socketservermetrics_connection_creation_total", &[("listener", label)], m.connections_created(l));
    }
    p.finish()
}
