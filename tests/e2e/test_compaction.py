"""Log compaction with real clients: `cleanup.policy=compact` topics written and read with
confluent-kafka (librdkafka) and kafka-python, tombstones, keyless produce refused, the policy
switched with alter-config, and a kill -9 after cleaning."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import InvalidRecordError

import ck
from conftest import unique

T = ck.CALL_TIMEOUT_S
# The cleaner looks for dirty logs every 100 ms instead of every 15 s.
FAST_CLEANER = {"log.cleaner.backoff.ms": "100"}
# Small segments so that a few hundred records make many cleanable ones, and a low ratio so that
# any dirty segment is cleaned.
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
KEYS = 12


def small_batches(bootstrap: str):
    # Small batches: many segments, and records of one key spread over many batches.
    return ck.producer(bootstrap, **{"batch.num.messages": 10, "linger.ms": 0})


def produce_updates(bootstrap: str, topic: str, rounds: int, tombstones: set[int] = frozenset(), start: int = 0,
                    prefix: str = "k") -> dict[int, tuple[bytes, bytes | None]]:
    """`rounds` updates of every key (`{prefix}0` ..), then a tombstone for each key in
    `tombstones`; returns offset -> (key, value) from the delivery reports."""
    msgs = [{"key": f"{prefix}{k}".encode(), "value": f"v{start + r}".encode()} for r in range(rounds) for k in range(KEYS)]
    msgs += [{"key": f"{prefix}{k}".encode(), "value": None} for k in sorted(tombstones)]
    delivered = ck.produce_all(small_batches(bootstrap), topic, msgs)
    return {m.offset(): (m.key(), m.value()) for m in delivered}


def roll_past(bootstrap: str, topic: str) -> dict[int, tuple[bytes, bytes | None]]:
    """Writes enough records of other keys that everything written before is out of the active
    segment (which is never cleaned); returns what it wrote."""
    return produce_updates(bootstrap, topic, rounds=30, prefix="filler-")


def watermark_high(c, topic: str) -> int:
    """The high watermark of partition 0, retried while a new leader's is not caught up yet
    (OFFSET_NOT_AVAILABLE, KIP-207) or the leader moves."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)[1]
        except KafkaException as e:
            if time.monotonic() > deadline or not e.args[0].retriable() and e.args[0].code() != KafkaError.OFFSET_NOT_AVAILABLE:
                raise
            time.sleep(0.3)


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record of partition 0 from the log start to the high watermark: (offset, key, value)."""
    c = ck.consumer(bootstrap, **{"enable.partition.eof": True})
    try:
        high = watermark_high(c, topic)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and c.position([TopicPartition(topic, 0)])[0].offset >= high:
                    return out
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            out.append((m.offset(), m.key(), m.value()))
        raise AssertionError(f"did not reach the high watermark {high} in 20 s ({len(out)} records read)")
    finally:
        c.close()


def check_compacted(got: list, written: dict) -> None:
    """What a compacted log may serve: records as written at their offsets, in offset order (so
    never an older value of a key after a newer one), with the latest record of every key."""
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), "offsets go back or repeat"
    for o, k, v in got:
        assert written.get(o) == (k, v), f"offset {o} holds {(k, v)}, written {written.get(o)}"
    latest = {}
    for o in sorted(written):
        latest[written[o][0]] = o
    present = set(offsets)
    missing = {k: o for k, o in latest.items() if o not in present}
    assert not missing, f"the latest record of some keys is gone: {missing}"


def wait_compacted(bootstrap: str, topic: str, below: int, timeout: float = 30) -> list:
    """Reads until the records below offset `below` (all out of the active segment) are down to
    at most one per key, and returns the last read."""
    deadline = time.monotonic() + timeout
    while True:
        got = read_all(bootstrap, topic)
        old = [o for o, _, _ in got if o < below]
        if len(old) <= KEYS:
            return got
        assert time.monotonic() < deadline, f"{len(old)} records below {below} left after {timeout} s, expected at most {KEYS}"
        time.sleep(0.3)


def describe(bootstrap: str, rtype, name: str) -> dict:
    a = ck.admin(bootstrap)
    res = ConfigResource(rtype, name)
    return a.describe_configs([res], request_timeout=T)[res].result(timeout=T)


@pytest.mark.broker_overrides(FAST_CLEANER)
def test_compacted_topic_keeps_the_latest_value_of_every_key_and_its_tombstones(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config=COMPACTED)
    written = produce_updates(broker.bootstrap, name, rounds=60, tombstones={0, 1, 2})
    assert len(written) == 60 * KEYS + 3
    below = max(written) + 1
    written.update(roll_past(broker.bootstrap, name))
    # Cleaned: below `below`, one record per key is left.
    got = wait_compacted(broker.bootstrap, name, below)
    check_compacted(got, written)
    # The tombstones are kept (delete.retention.ms is a day by default).
    tombstoned = {k for _, k, v in got if v is None}
    assert tombstoned == {b"k0", b"k1", b"k2"}, tombstoned
    # Offsets are the original ones, with gaps; the high watermark did not move.
    _, high = ck.consumer(broker.bootstrap).get_watermark_offsets(TopicPartition(name, 0), timeout=T)
    assert high == max(written) + 1
    cfg = describe(broker.bootstrap, ResourceType.TOPIC, name)
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["min.cleanable.dirty.ratio"].value == "0.01"
    assert cfg["delete.retention.ms"].value == "86400000"

    # kill -9 right after cleaning: the log reopens exactly as it was.
    broker.kill9()
    broker.start()
    assert read_all(broker.bootstrap, name) == got


@pytest.mark.broker_overrides(FAST_CLEANER)
def test_tombstones_go_after_delete_retention_ms(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config=dict(COMPACTED, **{"delete.retention.ms": "300"}))
    written = produce_updates(broker.bootstrap, name, rounds=20, tombstones={3, 4})
    deadline = time.monotonic() + 30
    start = 20
    while True:
        # More writes keep the log dirty, so that passes after the tombstones' horizon run.
        written.update(produce_updates(broker.bootstrap, name, rounds=3, start=start))
        start += 3
        got = read_all(broker.bootstrap, name)
        keys = {k for _, k, _ in got}
        # k3 and k4 get new values from the later rounds; their tombstones must go.
        tombstones = [o for o, k, v in got if v is None]
        if not tombstones:
            break
        assert time.monotonic() < deadline, f"tombstones still there after 30 s: {tombstones}"
        time.sleep(0.3)
    assert {b"k3", b"k4"} <= keys
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets))
    for o, k, v in got:
        assert written[o] == (k, v)


@pytest.mark.broker_overrides(FAST_CLEANER)
def test_keyless_records_are_refused_with_invalid_record(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"cleanup.policy": "compact,delete"})
    p = ck.producer(broker.bootstrap)
    reports = []
    p.produce(name, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(T) == 0
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == KafkaError.INVALID_RECORD, reports[0]  # 87
    # Nothing was written; keyed records still go in.
    ck.produce_all(p, name, [{"key": b"k", "value": b"v"}])
    _, high = ck.consumer(broker.bootstrap).get_watermark_offsets(TopicPartition(name, 0), timeout=T)
    assert high == 1
    # kafka-python sees the same error.
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0, request_timeout_ms=15000)
    try:
        with pytest.raises(InvalidRecordError):
            kp.send(name, value=b"no key either").get(timeout=T)
    finally:
        kp.close(timeout=5)


@pytest.mark.broker_overrides(FAST_CLEANER)
def test_switching_a_topic_to_compact_takes_effect_without_a_restart(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"segment.bytes": "2048"})
    written = produce_updates(broker.bootstrap, name, rounds=40)
    below = max(written) + 1
    written.update(roll_past(broker.bootstrap, name))
    time.sleep(1)
    assert len(read_all(broker.bootstrap, name)) == len(written), "a delete topic is not compacted"
    a = ck.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    got = wait_compacted(broker.bootstrap, name, below)
    check_compacted(got, written)
    # And back to delete: keyless records are accepted again.
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"keyless is fine under delete"}])


def test_consumer_offsets_is_compacted_and_cleaner_settings_are_described(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"key": b"k", "value": b"v"}])
    c = ck.consumer(broker.bootstrap, **{"group.id": unique("g")})
    try:
        c.assign([TopicPartition(name, 0, 0)])
        m = c.poll(10)
        assert m is not None and not m.error()
        c.commit(message=m, asynchronous=False)
    finally:
        c.close()
    cfg = describe(broker.bootstrap, ResourceType.TOPIC, "__consumer_offsets")
    assert cfg["cleanup.policy"].value == "compact"
    b = describe(broker.bootstrap, ResourceType.BROKER, "1")
    assert b["log.cleaner.enable"].value == "true"
    assert b["log.cleaner.dedupe.buffer.size"].value == str(128 * 1024 * 1024)
    assert b["log.cleaner.min.cleanable.ratio"].value == "0.5"
    assert b["log.cleaner.io.max.bytes.per.second"].value == "1.7976931348623157E308"


@pytest.mark.broker_overrides(FAST_CLEANER)
def test_kafka_python_compacted_topic_end_to_end(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config=COMPACTED)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", batch_size=256, linger_ms=0,
                      request_timeout_ms=15000, max_block_ms=15000)
    written = {}
    try:
        futures = [(k, r, p.send(name, key=f"k{k}".encode(), value=f"v{r}".encode(), partition=0))
                   for r in range(50) for k in range(KEYS)]
        futures += [(5, None, p.send(name, key=b"k5", value=None, partition=0))]
        for k, r, f in futures:
            md = f.get(timeout=T)
            written[md.offset] = (f"k{k}".encode(), None if r is None else f"v{r}".encode())
    finally:
        p.close(timeout=5)
    below = max(written) + 1
    written.update(roll_past(broker.bootstrap, name))
    wait_compacted(broker.bootstrap, name, below)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000, fetch_max_wait_ms=200)
    try:
        tp = KTopicPartition(name, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 20
        while c.position(tp) < max(written) + 1 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value) for r in recs)
    finally:
        c.close()
    assert got, "kafka-python read nothing"
    check_compacted(got, written)
    assert (max(o for o, k, _ in got if k == b"k5"), None) == (max(o for o, (k, _) in written.items() if k == b"k5"), None)
    assert [v for _, k, v in got if k == b"k5"][-1] is None, "k5 ends with its tombstone"


def test_cleaner_metrics_count_its_passes(broker_factory):
    from test_metrics import scrape, value
    from conftest import free_port
    mport = free_port()
    b = broker_factory(dict(FAST_CLEANER, **{"metrics.listener": f"http://127.0.0.1:{mport}/metrics"}))
    name = unique()
    ck.create_topic(b.bootstrap, name, config=COMPACTED)
    written = produce_updates(b.bootstrap, name, rounds=40)
    below = max(written) + 1
    written.update(roll_past(b.bootstrap, name))
    check_compacted(wait_compacted(b.bootstrap, name, below), written)
    m = scrape(mport)
    assert value(m, "gregor_log_cleaner_passes_total") >= 1
    assert value(m, "gregor_log_cleaner_removed_records_total") > 0
    assert value(m, "gregor_log_cleaner_read_bytes_total") > value(m, "gregor_log_cleaner_written_bytes_total") > 0
    assert 0 < value(m, "kafka_log_logcleaner_max_buffer_utilization_percent") <= 100
    assert value(m, "kafka_log_logcleanermanager_uncleanable_partitions_count") == 0


def test_three_replicas_compact_independently_and_survive_a_leader_kill(request, tmp_path):
    from confluent_kafka.admin import NewTopic
    from test_cluster import start_cluster, wait_for
    nodes = start_cluster(request, tmp_path, extra=("log.cleaner.backoff.ms=100",))
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        name = unique()
        a = ck.admin(bootstrap)
        a.create_topics([NewTopic(name, num_partitions=1, replication_factor=3, config=dict(COMPACTED, **{"min.insync.replicas": "2"}))],
                        request_timeout=T, operation_timeout=T)[name].result(timeout=T)
        written = produce_updates(bootstrap, name, rounds=60, tombstones={0, 1})
        below = max(written) + 1
        written.update(roll_past(bootstrap, name))
        # Every replica cleans its own copy.
        checkpoints = [n.data_dir / f"{name}-0" / "cleaner-offset-checkpoint" for n in nodes]
        wait_for(lambda: all(c.exists() for c in checkpoints), 30, "every replica to have cleaned")
        check_compacted(wait_compacted(bootstrap, name, below), written)

        def partition():
            return ck.admin(bootstrap).list_topics(topic=name, timeout=T).topics[name].partitions[0]

        old_leader = partition().leader
        victim = nodes[old_leader - 1]
        victim.kill9()
        wait_for(lambda: partition().leader not in (-1, old_leader), 30, "a new leader")
        check_compacted(read_all(bootstrap, name), written)
        # Writes go on; the restarted replica catches up from a compacted leader (the fetch answers
        # have gaps) and rejoins the ISR.
        written.update(produce_updates(bootstrap, name, rounds=30, start=60))
        victim.start()
        wait_for(lambda: len(partition().isrs) == 3, 40, "the restarted replica back in the ISR")
        got = read_all(bootstrap, name)
        check_compacted(got, written)
    finally:
        for n in nodes:
            n.stop()
