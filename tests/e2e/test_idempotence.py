"""Idempotent producers: InitProducerId, broker-side deduplication of retried batches (also after a
kill -9), Kafka's sequence/epoch errors, and real clients producing with idempotence on, also
through a proxy that loses the broker's answers so the clients retry what was already written."""

from __future__ import annotations

import struct
import time

from confluent_kafka import TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.record.default_records import DefaultRecordBatchBuilder

import ck
import kwire
from conftest import unique
from lossy_proxy import LossyProxy

API_INIT_PRODUCER_ID = 22
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def init_producer_id(sock, corr: int, transactional_id: str | None = None) -> tuple[int, int, int]:
    """InitProducerId v0; returns (error_code, producer_id, producer_epoch)."""
    body = kwire.string(transactional_id) + struct.pack(">i", 60000)
    sock.sendall(kwire.frame(kwire.request_header_v1(API_INIT_PRODUCER_ID, 0, corr) + body))
    r = kwire.Reader(kwire.recv_frame(sock))
    assert r.take(">i") == corr
    r.take(">i")  # throttle_time_ms
    return r.take(">h"), r.take(">q"), r.take(">h")


def idem_batch(pid: int, epoch: int, seq: int, values: list[bytes]) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1_700_000_000_000 + i, key=None, value=v, headers=[])
    return bytes(b.build())


def produce_v3(sock, corr: int, topic: str, records: bytes) -> tuple[int, int]:
    """Produce v3, acks=-1, one partition; returns (error_code, base_offset)."""
    body = kwire.string(None) + struct.pack(">hi", -1, 10000)
    body += struct.pack(">i", 1) + kwire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(records)) + records
    sock.sendall(kwire.frame(kwire.request_header_v1(kwire.API_PRODUCE, 3, corr) + body))
    r = kwire.Reader(kwire.recv_frame(sock))
    assert r.take(">i") == corr
    assert r.take(">i") == 1
    assert r.string() == topic
    assert r.take(">i") == 1
    part, err, base, _append_time = r.take(">ihqq")
    assert part == 0
    return err, base


def high_watermark(bootstrap: str, topic: str) -> int:
    s = kwire.connect(bootstrap)
    try:
        s.sendall(kwire.fetch_v4_request(99, topic, 0, 0, max_wait_ms=0))
        _, parts = kwire.parse_fetch_v4(kwire.recv_frame(s))
        assert parts[0]["error_code"] == 0
        return parts[0]["high_watermark"]
    finally:
        s.close()


def consume_values(bootstrap: str, topic: str, n: int, timeout: float = 30) -> list[bytes]:
    c = ck.consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            out.append(m.value())
        # Nothing beyond the expected records.
        extra = c.poll(1.0)
        assert extra is None or extra.error() is not None, f"unexpected extra record at offset {extra.offset()}"
        return out
    finally:
        c.close()


def test_confluent_idempotent_producer_exactly_once_in_order(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    p = ck.producer(broker.bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 2,
                                         "batch.num.messages": 50})
    n = 3000
    msgs = ck.produce_all(p, name, [{"value": b"m%06d" % i, "partition": 0} for i in range(n)])
    assert [m.offset() for m in msgs] == list(range(n))
    assert consume_values(broker.bootstrap, name, n) == [b"m%06d" % i for i in range(n)]


def test_wire_duplicates_gaps_and_fencing(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    s = kwire.connect(broker.bootstrap)
    try:
        err, pid, epoch = init_producer_id(s, 1)
        assert (err, epoch) == (0, 0) and pid >= 0
        err2, pid2, _ = init_producer_id(s, 2)
        assert err2 == 0 and pid2 != pid
        assert init_producer_id(s, 3, "my-txn")[0] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED

        first = idem_batch(pid, 0, 0, [b"a", b"b", b"c"])
        assert produce_v3(s, 10, name, first) == (0, 0)
        assert produce_v3(s, 11, name, first) == (0, 0)  # retry: same offset, not stored again
        assert produce_v3(s, 12, name, idem_batch(pid, 0, 3, [b"d"])) == (0, 3)
        assert produce_v3(s, 13, name, first) == (0, 0)  # still inside the window of 5 batches
        assert high_watermark(broker.bootstrap, name) == 4

        assert produce_v3(s, 14, name, idem_batch(pid, 0, 9, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce_v3(s, 15, name, idem_batch(pid, 1, 0, [b"e"])) == (0, 4)  # new epoch from 0
        assert produce_v3(s, 16, name, idem_batch(pid, 0, 4, [b"old"]))[0] == INVALID_PRODUCER_EPOCH
        assert produce_v3(s, 17, name, idem_batch(pid, 2, 3, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert high_watermark(broker.bootstrap, name) == 5
    finally:
        s.close()
    assert consume_values(broker.bootstrap, name, 5) == [b"a", b"b", b"c", b"d", b"e"]


def test_dedup_survives_kill9(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    s = kwire.connect(broker.bootstrap)
    err, pid, _ = init_producer_id(s, 1)
    assert err == 0
    batches = [idem_batch(pid, 0, i, [b"v%d" % i]) for i in range(3)]
    for i, b in enumerate(batches):
        assert produce_v3(s, 10 + i, name, b) == (0, i)
    s.close()

    broker.restart(kill9=True)
    s = kwire.connect(broker.bootstrap)
    try:
        # Retries of acknowledged batches are recognised from the rebuilt state.
        assert produce_v3(s, 20, name, batches[2]) == (0, 2)
        assert produce_v3(s, 21, name, batches[1]) == (0, 1)
        assert produce_v3(s, 22, name, idem_batch(pid, 0, 3, [b"v3"])) == (0, 3)
        assert produce_v3(s, 23, name, idem_batch(pid, 0, 5, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        # Producer ids are never handed out twice, even across a crash.
        err, pid_after, _ = init_producer_id(s, 24)
        assert err == 0 and pid_after > pid
    finally:
        s.close()

    broker.restart(kill9=False)  # clean shutdown: state from the snapshot
    s = kwire.connect(broker.bootstrap)
    try:
        assert produce_v3(s, 30, name, idem_batch(pid, 0, 3, [b"v3"])) == (0, 3)
        assert produce_v3(s, 31, name, idem_batch(pid, 0, 4, [b"v4"])) == (0, 4)
    finally:
        s.close()
    assert consume_values(broker.bootstrap, name, 5) == [b"v0", b"v1", b"v2", b"v3", b"v4"]


def test_kafka_python_default_idempotent_producer(broker):
    name = unique()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000, max_block_ms=15000,
                      linger_ms=5)  # kafka-python 3 defaults: acks=all, idempotence on
    futs = [p.send(name, value=b"k%d" % i, partition=0) for i in range(500)]
    p.flush(timeout=20)
    assert [f.get(timeout=20).offset for f in futs] == list(range(500))
    p.close(timeout=5)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000, fetch_max_wait_ms=200)
    try:
        from kafka import TopicPartition as KTP
        tp = KTP(name, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + 20
        while len(out) < 500 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(r.value for r in recs)
        assert out == [b"k%d" % i for i in range(500)]
    finally:
        c.close()


def lossy_broker(broker_factory, seed: int, drop_probability: float = 0.15):
    """A broker that clients reach only through a proxy that loses Produce answers (the broker
    advertises the proxy's address), so clients retry batches the broker already wrote."""
    b = broker_factory(start=False)
    proxy = LossyProxy(b.bootstrap, drop_api_key=kwire.API_PRODUCE, drop_probability=drop_probability, drops_max=25,
                       seed=seed)
    b.overrides["advertised.listeners"] = f"PLAINTEXT://{proxy.address}"
    b.start()
    return b, proxy


def assert_exactly_once_in_order(bootstrap: str, topic: str, partitions: int, expected: dict[int, list[bytes]]) -> None:
    for p in range(partitions):
        got = ck.consume_n(bootstrap, topic, len(expected[p]), partition=p, timeout=20)
        assert [m.value() for m in got] == expected[p], f"partition {p}: duplicates, gaps or reordering"
        assert ck.watermarks(bootstrap, topic, p)[1] == len(expected[p])


def test_confluent_idempotent_producer_with_lost_answers(broker_factory):
    """librdkafka retries every batch whose answer was lost; the broker must hand back the
    original offsets, so each record is written once, in order, with dense offsets."""
    b, proxy = lossy_broker(broker_factory, seed=7)
    try:
        name = unique()
        ck.create_topic(b.bootstrap, name, partitions=3)
        p = ck.producer(proxy.address, **{"enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 40,
                                          "message.timeout.ms": 60000, "retry.backoff.ms": 20,
                                          "reconnect.backoff.ms": 20, "socket.timeout.ms": 10000})
        n = 3000
        msgs = ck.produce_all(p, name, [{"value": b"m%05d" % i, "partition": i % 3} for i in range(n)], timeout=90)
        assert proxy.dropped >= 5, f"only {proxy.dropped} answers were lost: the test forced no retries"
        for part in range(3):
            offsets = [m.offset() for m in msgs if m.partition() == part]
            assert offsets == list(range(n // 3)), f"partition {part}: offsets not dense and in order"
        # Read back through the proxy too: the broker advertises only its address.
        expected = {part: [b"m%05d" % i for i in range(part, n, 3)] for part in range(3)}
        assert_exactly_once_in_order(proxy.address, name, 3, expected)
    finally:
        proxy.close()


def test_kafka_python_idempotent_producer_with_lost_answers(broker_factory):
    b, proxy = lossy_broker(broker_factory, seed=11, drop_probability=0.3)
    try:
        name = unique()
        ck.create_topic(b.bootstrap, name)
        p = KafkaProducer(bootstrap_servers=proxy.address, enable_idempotence=True, acks="all", linger_ms=2,
                          batch_size=512, request_timeout_ms=10000, max_block_ms=30000, retry_backoff_ms=20,
                          reconnect_backoff_ms=20, delivery_timeout_ms=90000)
        n = 2000
        futs = [p.send(name, value=b"k%05d" % i, partition=0) for i in range(n)]
        p.flush(timeout=90)
        assert [f.get(timeout=30).offset for f in futs] == list(range(n))
        p.close(timeout=5)
        assert proxy.dropped >= 5, f"only {proxy.dropped} answers were lost: the test forced no retries"
        assert_exactly_once_in_order(proxy.address, name, 1, {0: [b"k%05d" % i for i in range(n)]})
    finally:
        proxy.close()
