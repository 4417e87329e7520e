"""Acknowledged (acks=all) records survive kill -9 of the broker at the same offsets, byte for byte."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import ck
from conftest import unique


def record(i: int) -> tuple[bytes, bytes]:
    key = b"key-%06d" % i
    value = hashlib.sha256(key).digest() * (1 + i % 8) + os.urandom(i % 13)
    return key, value


def consume_all(bootstrap: str, name: str, partitions: int) -> dict[tuple[int, int], tuple]:
    out = {}
    for p in range(partitions):
        low, high = ck.watermarks(bootstrap, name, p)
        assert low == 0
        for m in (ck.consume_n(bootstrap, name, high, partition=p, timeout=40) if high else []):
            key = (m.partition(), m.offset())
            assert key not in out, f"offset {key} delivered twice"
            out[key] = (m.key(), m.value(), m.headers(), m.timestamp()[1])
    return out


def test_acked_records_survive_kill9(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, partitions=2)
    n = 3000
    # Small batches: many appends (and fsyncs) rather than a few large ones.
    p = ck.producer(broker.bootstrap, **{"linger.ms": 2, "batch.num.messages": 50})
    msgs = []
    for i in range(n):
        k, v = record(i)
        msgs.append({"key": k, "value": v, "partition": i % 2, "headers": [("i", str(i).encode())],
                     "timestamp": 1_650_000_000_000 + i})
    delivered = ck.produce_all(p, name, msgs, timeout=40)
    acked = {(d.partition(), d.offset()): (d.key(), d.value(), [("i", str(i).encode())], 1_650_000_000_000 + i)
             for i, d in enumerate(delivered)}
    assert len(acked) == n

    broker.restart(kill9=True)

    got = consume_all(broker.bootstrap, name, 2)
    missing = [k for k in acked if k not in got]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    changed = [k for k in acked if got[k] != acked[k]]
    assert not changed, f"{len(changed)} records differ after restart, e.g. {sorted(changed)[:5]}"
    assert len(got) == n
    # The log keeps accepting writes after recovery, at the next offsets.
    after = ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"after", "partition": 0}])
    assert after[0].offset() == n // 2


def test_acked_records_survive_kill9_during_produce(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    p = ck.producer(broker.bootstrap, **{"linger.ms": 1, "message.timeout.ms": 4000, "retries": 0,
                                         "queue.buffering.max.messages": 5000})
    acked: dict[int, bytes] = {}
    acked_twice: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                if msg.offset() in acked:
                    acked_twice.append(msg.offset())
                acked[msg.offset()] = msg.value()

    def produce_loop():
        i = 0
        while not stop.is_set() and i < 2_000_000:
            try:
                p.produce(name, value=b"rec-%08d-" % i + b"x" * (i % 200), on_delivery=on_delivery)
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)

    t = threading.Thread(target=produce_loop, daemon=True)
    t.start()
    ck.wait_for(lambda: len(acked) >= 2000, timeout=30, interval=0.05, what="2000 acknowledged records")
    broker.kill9()
    stop.set()
    t.join(timeout=10)
    p.flush(10)  # the rest fail with timeouts; their fate is unknown
    with lock:
        snapshot = dict(acked)
    assert len(snapshot) >= 2000
    assert not acked_twice, f"offsets acknowledged for two different records: {acked_twice[:5]}"

    broker.start()
    low, high = ck.watermarks(broker.bootstrap, name)
    assert low == 0
    assert high >= max(snapshot) + 1, f"high watermark {high} below acknowledged offset {max(snapshot)}"
    got = {m.offset(): m.value() for m in ck.consume_n(broker.bootstrap, name, high, timeout=40)}
    lost = [o for o in snapshot if o not in got]
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    changed = [o for o in snapshot if got[o] != snapshot[o]]
    assert not changed, f"{len(changed)} acknowledged records changed, e.g. {sorted(changed)[:5]}"


def test_sigterm_restart_keeps_data_and_offsets(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, config={"retention.ms": "999999999"})
    sent = [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(500)]
    ck.produce_all(ck.producer(broker.bootstrap), name, sent)
    t0 = time.monotonic()
    broker.restart(kill9=False)
    assert broker.exit_codes[-1] == 0
    assert time.monotonic() - t0 < 15
    assert ck.watermarks(broker.bootstrap, name) == (0, 500)
    got = ck.consume_n(broker.bootstrap, name, 500)
    assert [(m.key(), m.value()) for m in got] == [(s["key"], s["value"]) for s in sent]
    # Topic configs are durable as well.
    from test_confluent import describe_topic_configs
    assert describe_topic_configs(ck.admin(broker.bootstrap), name)["retention.ms"] == "999999999"


def test_recovery_across_many_segments(broker_factory):
    b = broker_factory({"log.segment.bytes": "1048576"})
    name = unique()
    ck.create_topic(b.bootstrap, name)
    n = 4000
    msgs = [{"key": b"%d" % i, "value": hashlib.sha256(b"%d" % i).digest() * 40} for i in range(n)]  # ~1.3 KB
    delivered = ck.produce_all(ck.producer(b.bootstrap), name, msgs, timeout=40)
    assert [d.offset() for d in delivered] == list(range(n))
    segments = [p for p in b.data_dir.rglob("*.log") if name in str(p)]
    assert len(segments) >= 4, f"expected the log to roll into several segments, found {segments}"
    b.restart(kill9=True)
    assert ck.watermarks(b.bootstrap, name) == (0, n)
    got = ck.consume_n(b.bootstrap, name, n, timeout=40)
    assert [(m.offset(), m.key(), m.value()) for m in got] == [(i, m["key"], m["value"]) for i, m in enumerate(msgs)]
    # Reading from the middle of an older segment works after recovery (index rebuilt or intact).
    mid = ck.consume_n(b.bootstrap, name, 2, offset=1234)
    assert [m.key() for m in mid] == [b"1234", b"1235"]
