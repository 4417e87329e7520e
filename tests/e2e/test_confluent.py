"""confluent-kafka (librdkafka 2.x) against the real broker: admin, produce, consume, offsets, long poll."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from confluent_kafka import (OFFSET_END, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError,
                             KafkaException, TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                   OffsetSpec, ResourceType)

import ck
from conftest import unique

T = ck.CALL_TIMEOUT_S


def error_code(exc: BaseException) -> int:
    assert isinstance(exc, KafkaException), f"expected KafkaException, got {type(exc).__name__}: {exc}"
    return exc.args[0].code()


def create_result(a, topic: NewTopic, validate_only: bool = False):
    fut = a.create_topics([topic], validate_only=validate_only, request_timeout=T, operation_timeout=T)[topic.topic]
    return fut.exception(timeout=T)


def topic_names(bootstrap: str) -> set[str]:
    return set(ck.admin(bootstrap).list_topics(timeout=T).topics)


# --- admin ------------------------------------------------------------------------------------------

def test_list_topics_shows_broker_1(broker):
    md = ck.admin(broker.bootstrap).list_topics(timeout=T)
    assert set(md.brokers) == {1}
    b = md.brokers[1]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == 1


def test_create_topic_and_list(broker):
    name = unique()
    a = ck.admin(broker.bootstrap)
    assert create_result(a, NewTopic(name, num_partitions=3, replication_factor=1)) is None
    md = a.list_topics(timeout=T)
    assert name in md.topics
    t = md.topics[name]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.leader == 1 and list(p.replicas) == [1] and list(p.isrs) == [1]


def test_create_topic_validate_only_does_not_create(broker):
    name = unique()
    a = ck.admin(broker.bootstrap)
    assert create_result(a, NewTopic(name, num_partitions=2, replication_factor=1), validate_only=True) is None
    time.sleep(0.5)
    md = a.list_topics(topic=None, timeout=T)
    assert name not in md.topics
    # ...and the name is still free afterwards.
    assert create_result(a, NewTopic(name, num_partitions=2, replication_factor=1)) is None


def test_create_topic_duplicate_is_topic_already_exists(broker):
    name = unique()
    a = ck.admin(broker.bootstrap)
    assert create_result(a, NewTopic(name, num_partitions=1, replication_factor=1)) is None
    exc = create_result(a, NewTopic(name, num_partitions=1, replication_factor=1))
    assert exc is not None and error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS  # 36


@pytest.mark.parametrize("bad", ["bad/name", "with space", "..", "x" * 250, "quote'"])
def test_create_topic_bad_name_is_invalid_topic(broker, bad):
    exc = create_result(ck.admin(broker.bootstrap), NewTopic(bad, num_partitions=1, replication_factor=1))
    assert exc is not None and error_code(exc) == KafkaError.TOPIC_EXCEPTION  # 17 INVALID_TOPIC_EXCEPTION


def test_create_topic_replication_factor_3_is_invalid_replication_factor(broker):
    name = unique()
    a = ck.admin(broker.bootstrap)
    exc = create_result(a, NewTopic(name, num_partitions=1, replication_factor=3))
    assert exc is not None and error_code(exc) == KafkaError.INVALID_REPLICATION_FACTOR  # 38
    assert name not in a.list_topics(timeout=T).topics


def test_create_topic_with_an_unknown_cleanup_policy_is_invalid_config(broker):
    exc = create_result(ck.admin(broker.bootstrap),
                        NewTopic(unique(), num_partitions=1, replication_factor=1,
                                 config={"cleanup.policy": "compact,shred"}))
    assert exc is not None and error_code(exc) == KafkaError.INVALID_CONFIG  # 40


def describe_topic_configs(a, name: str) -> dict[str, str]:
    res = ConfigResource(ResourceType.TOPIC, name)
    entries = a.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    return {k: e.value for k, e in entries.items()}


def test_describe_configs_reports_topic_overrides_and_defaults(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"retention.ms": "123456", "segment.bytes": "1048576"})
    cfg = describe_topic_configs(ck.admin(broker.bootstrap), name)
    assert cfg["retention.ms"] == "123456"
    assert cfg["segment.bytes"] == "1048576"
    assert cfg["max.message.bytes"] == "1048588"  # broker default message.max.bytes
    assert cfg["cleanup.policy"] == "delete"
    assert cfg["message.timestamp.type"] == "CreateTime"


def test_alter_configs(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"retention.ms": "1000000"})
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, set_config={"segment.ms": "3600000"})
    a.alter_configs([res], request_timeout=T)[res].result(timeout=T)
    cfg = describe_topic_configs(a, name)
    assert cfg["segment.ms"] == "3600000"
    # AlterConfigs (non-incremental) replaces the whole set: retention.ms is back at its default.
    assert cfg["retention.ms"] == "604800000"


def test_incremental_alter_configs(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"retention.ms": "1000000"})
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    cfg = describe_topic_configs(a, name)
    assert cfg["max.message.bytes"] == "20000"
    assert cfg["retention.ms"] == "604800000"


def test_incremental_alter_configs_rejects_bad_value(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "not-a-number", incremental_operation=AlterConfigOpType.SET)])
    exc = a.incremental_alter_configs([res], request_timeout=T)[res].exception(timeout=T)
    assert exc is not None and error_code(exc) == KafkaError.INVALID_CONFIG


def test_create_partitions(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, partitions=1)
    a = ck.admin(broker.bootstrap)
    a.create_partitions([NewPartitions(name, 3)], request_timeout=T, operation_timeout=T)[name].result(timeout=T)
    ck.wait_for(lambda: len(a.list_topics(topic=name, timeout=T).topics[name].partitions) == 3,
                what="3 partitions in metadata")
    p = ck.producer(broker.bootstrap)
    msgs = ck.produce_all(p, name, [{"value": b"to-p2", "partition": 2}])
    assert (msgs[0].partition(), msgs[0].offset()) == (2, 0)
    # Shrinking is refused.
    exc = a.create_partitions([NewPartitions(name, 2)], request_timeout=T)[name].exception(timeout=T)
    assert exc is not None and error_code(exc) == KafkaError.INVALID_PARTITIONS


def test_delete_topics(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    a = ck.admin(broker.bootstrap)
    a.delete_topics([name], request_timeout=T, operation_timeout=T)[name].result(timeout=T)
    ck.wait_for(lambda: name not in a.list_topics(timeout=T).topics, what="topic gone from metadata")
    exc = a.delete_topics([name], request_timeout=T)[name].exception(timeout=T)
    assert exc is not None and error_code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_records(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"v%d" % i} for i in range(10)])
    a = ck.admin(broker.bootstrap)
    tp = TopicPartition(name, 0, 6)
    res = a.delete_records([tp], request_timeout=T)
    (fut,) = res.values()
    assert fut.result(timeout=T).low_watermark == 6
    assert ck.watermarks(broker.bootstrap, name) == (6, 10)
    msgs = ck.consume_n(broker.bootstrap, name, 4)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, b"v%d" % i) for i in range(6, 10)]


def test_describe_cluster(broker):
    a = ck.admin(broker.bootstrap)
    res = a.describe_cluster(request_timeout=T).result(timeout=T)
    assert [n.id for n in res.nodes] == [1]
    assert res.controller is not None and res.controller.id == 1
    assert res.cluster_id


# --- produce / consume ------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_roundtrip_exact(broker, codec):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    base_ts = 1_700_000_000_000
    sent = [{"key": f"k{i}".encode(), "value": (f"value-{i}-" * (i % 7 + 1)).encode(),
             "headers": [("h1", f"a{i}".encode()), ("h2", b""), ("h1", b"dup")],
             "timestamp": base_ts + i * 10} for i in range(200)]
    sent.append({"key": None, "value": None, "timestamp": base_ts + 5000})  # null key and tombstone-like value
    p = ck.producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 20})
    delivered = ck.produce_all(p, name, sent)
    assert [d.offset() for d in delivered] == list(range(len(sent)))
    got = ck.consume_n(broker.bootstrap, name, len(sent))
    for i, (s, m) in enumerate(zip(sent, got)):
        assert m.offset() == i
        assert m.partition() == 0
        assert m.key() == s["key"]
        assert m.value() == s["value"]
        assert (m.headers() or []) == s.get("headers", [])
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, s["timestamp"])
    assert ck.watermarks(broker.bootstrap, name) == (0, len(sent))


def test_log_append_time_topic_uses_broker_timestamps(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    delivered = ck.produce_all(ck.producer(broker.bootstrap), name,
                               [{"value": b"x", "timestamp": 1000}, {"value": b"y", "timestamp": 2000}])
    after = int(time.time() * 1000)
    # The produce response carries the log append time back to the producer too.
    for d in delivered:
        ts_type, ts = d.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, d.timestamp()
        assert before - 1000 <= ts <= after + 1000
    for m in ck.consume_n(broker.bootstrap, name, 2):
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000, (before, ts, after)


def test_auto_create_topic_on_produce(broker):
    name = unique("auto")
    assert name not in topic_names(broker.bootstrap)
    delivered = ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"hello"}])
    assert delivered[0].offset() == 0
    md = ck.admin(broker.bootstrap).list_topics(timeout=T)
    assert name in md.topics
    assert len(md.topics[name].partitions) == 1  # num.partitions default
    assert [m.value() for m in ck.consume_n(broker.bootstrap, name, 1)] == [b"hello"]


@pytest.mark.broker_overrides({"auto.create.topics.enable": "false"})
def test_auto_create_disabled(broker):
    name = unique("noauto")
    p = ck.producer(broker.bootstrap, **{"message.timeout.ms": 3000})
    errs = []
    p.produce(name, value=b"x", on_delivery=lambda err, msg: errs.append(err))
    p.flush(10)
    assert len(errs) == 1 and errs[0] is not None
    assert name not in topic_names(broker.bootstrap)


def test_one_megabyte_message(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    value = os.urandom(1_000_000)
    p = ck.producer(broker.bootstrap, **{"message.max.bytes": 2_000_000, "compression.type": "none"})
    delivered = ck.produce_all(p, name, [{"value": value}, {"value": b"after"}])
    assert [d.offset() for d in delivered] == [0, 1]
    got = ck.consume_n(broker.bootstrap, name, 2, **{"fetch.message.max.bytes": 1048576})
    assert got[0].value() == value
    assert got[1].value() == b"after"


def test_message_above_topic_max_message_bytes_is_message_too_large(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"max.message.bytes": "10000"})
    p = ck.producer(broker.bootstrap, **{"compression.type": "none", "retries": 0})
    reports = []
    p.produce(name, value=os.urandom(20_000), on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(T) == 0
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports[0]  # 10
    # Smaller records still go in, and nothing of the rejected one is visible.
    delivered = ck.produce_all(p, name, [{"value": b"small"}])
    assert delivered[0].offset() == 0
    assert ck.watermarks(broker.bootstrap, name) == (0, 1)


# --- offsets ----------------------------------------------------------------------------------------

def produce_one_batch_with_timestamps(bootstrap: str, name: str, timestamps: list[int]) -> None:
    p = ck.producer(bootstrap, **{"linger.ms": 200, "batch.num.messages": 10000})
    ck.produce_all(p, name, [{"value": b"v%d" % i, "timestamp": ts} for i, ts in enumerate(timestamps)])


def test_offsets_for_times_exact_offset_inside_batch(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ts = [1_000_000 + i * 1000 for i in range(10)]  # 1000000, 1001000, ..., 1009000
    produce_one_batch_with_timestamps(broker.bootstrap, name, ts)
    c = ck.consumer(broker.bootstrap)
    try:
        def lookup(t):
            (r,) = c.offsets_for_times([TopicPartition(name, 0, t)], timeout=T)
            assert r.error is None, r.error
            return r.offset
        assert lookup(0) == 0
        assert lookup(ts[0]) == 0
        assert lookup(ts[4]) == 4
        assert lookup(ts[4] - 500) == 4
        assert lookup(ts[9]) == 9
        assert lookup(ts[9] + 1) == OFFSET_END  # -1: nothing at or after that time
    finally:
        c.close()


def test_list_offsets_earliest_latest_max_timestamp(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ts = [5000, 9000, 7000, 8000]
    produce_one_batch_with_timestamps(broker.bootstrap, name, ts)
    a = ck.admin(broker.bootstrap)
    tp = TopicPartition(name, 0)

    def one(spec):
        (fut,) = a.list_offsets({tp: spec}, request_timeout=T).values()
        return fut.result(timeout=T)

    assert one(OffsetSpec.earliest()).offset == 0
    assert one(OffsetSpec.latest()).offset == 4  # log end, not the last batch's base offset
    mx = one(OffsetSpec.max_timestamp())
    assert (mx.offset, mx.timestamp) == (1, 9000)
    assert one(OffsetSpec.for_timestamp(7500)).offset == 1  # first offset with timestamp >= 7500


def test_watermarks_are_log_end(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    assert ck.watermarks(broker.bootstrap, name) == (0, 0)
    produce_one_batch_with_timestamps(broker.bootstrap, name, [1000 + i for i in range(10)])
    assert ck.watermarks(broker.bootstrap, name) == (0, 10)


def test_consume_from_offset_in_middle_of_batch(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    produce_one_batch_with_timestamps(broker.bootstrap, name, [1000 + i for i in range(10)])
    msgs = ck.consume_n(broker.bootstrap, name, 3, offset=7)
    assert [(m.offset(), m.value()) for m in msgs] == [(7, b"v7"), (8, b"v8"), (9, b"v9")]


def test_out_of_range_offset_resets_per_auto_offset_reset(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"a"}, {"value": b"b"}])
    msgs = ck.consume_n(broker.bootstrap, name, 2, offset=1000, **{"auto.offset.reset": "earliest"})
    assert [m.offset() for m in msgs] == [0, 1]


# --- long poll --------------------------------------------------------------------------------------

def test_long_poll_wakes_on_new_data(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"first"}])
    c = ck.consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000})
    p = ck.producer(broker.bootstrap, **{"linger.ms": 0})
    try:
        c.assign([TopicPartition(name, 0, 1)])
        # Let the consumer settle into a waiting fetch at the end of the log.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            m = c.poll(0.25)
            assert m is None or m.error() is not None, f"unexpected message {m.value() if m else None}"
        t0 = time.monotonic()
        ck.produce_all(p, name, [{"value": b"later"}])
        got = None
        while time.monotonic() - t0 < 6:
            m = c.poll(0.05)
            if m is not None and not m.error():
                got = m
                break
        elapsed = time.monotonic() - t0
        assert got is not None and got.value() == b"later" and got.offset() == 1
        # fetch.wait.max.ms is 5 s: only a broker that wakes waiting fetches delivers within ~1 s.
        assert elapsed < 1.5, f"waiting fetch was not woken by new data: {elapsed:.2f}s"
    finally:
        c.close()


def test_idle_consumer_does_not_busy_loop(broker):
    """With nothing to read, each Fetch must wait ~fetch.wait.max.ms at the broker, so an idle consumer
    sends only a handful of Fetch requests (counted by librdkafka's statistics)."""
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    stats: list[dict] = []
    c = ck.consumer(broker.bootstrap, **{"fetch.wait.max.ms": 500, "statistics.interval.ms": 1000,
                                         "stats_cb": lambda s: stats.append(json.loads(s))})
    try:
        c.assign([TopicPartition(name, 0, 0)])
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            assert m is None or m.error() is not None
    finally:
        c.close()
    assert len(stats) >= 3, "no librdkafka statistics collected"

    def fetches(s):
        return sum(b.get("req", {}).get("Fetch", 0) for b in s["brokers"].values() if b.get("nodeid", -1) >= 0)

    # Fetches sent between the first and the last statistics sample.
    span_s = (stats[-1]["ts"] - stats[0]["ts"]) / 1e6
    n = fetches(stats[-1]) - fetches(stats[0])
    assert span_s >= 1.5
    # ~2 per second at 500 ms wait; a broker that answers empty at once allows hundreds.
    assert 0 < n <= 6 * span_s, f"{n} Fetch requests in {span_s:.1f}s idle: broker answers without waiting"


def test_concurrent_producers_get_distinct_offsets(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    results: list[list] = [[], [], []]

    def run(i):
        p = ck.producer(broker.bootstrap)
        results[i] = ck.produce_all(p, name, [{"value": f"p{i}-{j}".encode()} for j in range(300)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    assert all(len(r) == 300 for r in results)
    offsets = sorted(m.offset() for r in results for m in r)
    assert offsets == list(range(900))
    by_offset = {m.offset(): m.value() for r in results for m in r}
    got = ck.consume_n(broker.bootstrap, name, 900)
    assert {m.offset(): m.value() for m in got} == by_offset


@pytest.mark.broker_overrides({"message.max.bytes": "5000", "num.partitions": "2"})
def test_broker_defaults_apply_to_new_topics(broker):
    name = unique("dflt")
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"small", "partition": 1}])
    a = ck.admin(broker.bootstrap)
    assert len(a.list_topics(topic=name, timeout=T).topics[name].partitions) == 2
    assert describe_topic_configs(a, name)["max.message.bytes"] == "5000"
    p = ck.producer(broker.bootstrap, **{"compression.type": "none", "retries": 0})
    errs = []
    p.produce(name, value=os.urandom(10_000), partition=0, on_delivery=lambda err, msg: errs.append(err))
    assert p.flush(T) == 0
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs


def test_create_topic_with_invalid_config_value(broker):
    a = ck.admin(broker.bootstrap)
    name = unique()
    exc = create_result(a, NewTopic(name, num_partitions=1, replication_factor=1,
                                    config={"retention.ms": "forever"}))
    assert exc is not None and error_code(exc) == KafkaError.INVALID_CONFIG
    assert name not in a.list_topics(timeout=T).topics


def test_describe_broker_configs(broker):
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = a.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    assert entries["message.max.bytes"].value == "1048588"
    assert entries["num.partitions"].value == "1"


def test_incremental_alter_broker_config_sets_topic_defaults(broker):
    """A dynamic broker setting (log.retention.ms) becomes the default of topics without an override,
    is reported as DYNAMIC_BROKER_CONFIG, survives a restart, and a static-only key is refused."""
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1",
                         incremental_configs=[ConfigEntry("log.retention.ms", "3600000",
                                                          incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    topic_res = ConfigResource(ResourceType.TOPIC, name)
    entries = a.describe_configs([topic_res], request_timeout=T)[topic_res].result(timeout=T)
    assert entries["retention.ms"].value == "3600000"
    broker.restart(kill9=False)
    a = ck.admin(broker.bootstrap)
    bres = ConfigResource(ResourceType.BROKER, "1")
    entries = a.describe_configs([bres], request_timeout=T)[bres].result(timeout=T)
    assert entries["log.retention.ms"].value == "3600000"
    entries = a.describe_configs([topic_res], request_timeout=T)[topic_res].result(timeout=T)
    assert entries["retention.ms"].value == "3600000"
    bad = ConfigResource(ResourceType.BROKER, "1",
                         incremental_configs=[ConfigEntry("listeners", "PLAINTEXT://127.0.0.1:1",
                                                          incremental_operation=AlterConfigOpType.SET)])
    exc = a.incremental_alter_configs([bad], request_timeout=T)[bad].exception(timeout=T)
    assert exc is not None and error_code(exc) == KafkaError.INVALID_CONFIG


@pytest.mark.parametrize("acks", ["0", "1"])
def test_produce_with_acks_0_and_1(broker, acks):
    """acks=0 gets no Produce response at all (a response would desync the client's correlation ids)."""
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    p = ck.producer(broker.bootstrap, acks=acks)
    ck.produce_all(p, name, [{"value": b"a%d" % i} for i in range(50)])
    # A second round on the same connection still works.
    ck.produce_all(p, name, [{"value": b"b%d" % i} for i in range(50)])
    got = ck.consume_n(broker.bootstrap, name, 100)
    assert [m.value() for m in got] == [b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)]
    assert ck.watermarks(broker.bootstrap, name) == (0, 100)


def test_delete_records_to_high_watermark_and_beyond(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"v%d" % i} for i in range(5)])
    a = ck.admin(broker.bootstrap)
    (fut,) = a.delete_records([TopicPartition(name, 0, 50)], request_timeout=T).values()
    exc = fut.exception(timeout=T)
    assert exc is not None and error_code(exc) == KafkaError.OFFSET_OUT_OF_RANGE
    (fut,) = a.delete_records([TopicPartition(name, 0, OFFSET_END)], request_timeout=T).values()  # -1: up to HW
    assert fut.result(timeout=T).low_watermark == 5
    assert ck.watermarks(broker.bootstrap, name) == (5, 5)
    delivered = ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"next"}])
    assert delivered[0].offset() == 5
