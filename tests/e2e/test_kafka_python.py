"""kafka-python 3.x (pure Python; ApiVersions v4, Metadata v13, Produce v9, Fetch v12, ListOffsets v10,
CreateTopics v7, DeleteTopics v6; fetch sessions on by default, which the broker declines)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

from conftest import unique

TIMEOUT_MS = 15000


def admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_MS,
                            client_id="e2e-kafka-python")


def producer(broker, **conf) -> KafkaProducer:
    # acks=all and idempotence are the 3.x defaults; both are left on.
    base = dict(bootstrap_servers=broker.bootstrap, acks="all",
                request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS, linger_ms=5)
    base.update(conf)
    return KafkaProducer(**base)


def consumer(broker) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                         request_timeout_ms=TIMEOUT_MS, fetch_max_wait_ms=200)


def read_n(c: KafkaConsumer, n: int, timeout: float = 20) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            out.extend(recs)
    assert len(out) == n, f"read {len(out)} of {n} records in {timeout}s"
    return out


def test_admin_create_list_delete(broker):
    name = unique()
    a = admin(broker)
    try:
        a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)], timeout_ms=TIMEOUT_MS)
        assert name in a.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)], timeout_ms=TIMEOUT_MS,
                            raise_errors=True)
        with pytest.raises(InvalidReplicationFactorError):
            a.create_topics([NewTopic(unique(), num_partitions=1, replication_factor=3)], timeout_ms=TIMEOUT_MS,
                            raise_errors=True)
        # Field names follow the Metadata schema of the version kafka-python picked (v13: name/partition_index).
        desc = {t.get("name", t.get("topic")): t for t in a.describe_topics([name])}
        assert sorted(p.get("partition_index", p.get("partition")) for p in desc[name]["partitions"]) == [0, 1]
        assert all(p["error_code"] == 0 and p["leader_id" if "leader_id" in p else "leader"] == 1
                   for p in desc[name]["partitions"])
        a.delete_topics([name], timeout_ms=TIMEOUT_MS)
        deadline = time.monotonic() + 10
        while name in a.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert name not in a.list_topics()
    finally:
        a.close()


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_produce_and_consume_with_assign(broker, codec):
    name = unique()
    a = admin(broker)
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], timeout_ms=TIMEOUT_MS)
    a.close()
    p = producer(broker, compression_type=codec)
    futs = [p.send(name, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
                   headers=[("h", f"{i}".encode())], timestamp_ms=1_600_000_000_000 + i) for i in range(100)]
    p.flush(timeout=20)
    metas = [f.get(timeout=20) for f in futs]
    p.close(timeout=5)
    assert [m.offset for m in metas] == list(range(100))
    c = consumer(broker)
    try:
        tp = TopicPartition(name, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        recs = read_n(c, 100)
        assert [(r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in recs] == [
            (i, f"k{i}".encode(), f"v{i}".encode(), [("h", f"{i}".encode())], 1_600_000_000_000 + i)
            for i in range(100)]
    finally:
        c.close()


def test_list_offsets(broker):
    name = unique()
    a = admin(broker)
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], timeout_ms=TIMEOUT_MS)
    a.close()
    p = producer(broker, linger_ms=100)
    for i in range(10):
        p.send(name, value=b"x%d" % i, partition=0, timestamp_ms=50_000 + i * 1000)
    p.flush(timeout=20)
    p.close(timeout=5)
    c = consumer(broker)
    try:
        tp = TopicPartition(name, 0)
        assert c.beginning_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 10}
        r = c.offsets_for_times({tp: 53_500}, timeout_ms=TIMEOUT_MS)[tp]
        assert r is not None and (r.offset, r.timestamp) == (4, 54_000)
        assert c.offsets_for_times({tp: 50_000}, timeout_ms=TIMEOUT_MS)[tp].offset == 0
        assert c.offsets_for_times({tp: 10_000_000}, timeout_ms=TIMEOUT_MS)[tp] is None  # past the end
    finally:
        c.close()


def test_consumer_seek_and_end(broker):
    name = unique()
    p = producer(broker)
    for i in range(5):
        p.send(name, value=b"m%d" % i)  # auto-creates the topic
    p.flush(timeout=20)
    p.close(timeout=5)
    c = consumer(broker)
    try:
        tp = TopicPartition(name, 0)
        c.assign([tp])
        c.seek(tp, 3)
        recs = read_n(c, 2)
        assert [(r.offset, r.value) for r in recs] == [(3, b"m3"), (4, b"m4")]
        assert c.position(tp) == 5
    finally:
        c.close()
