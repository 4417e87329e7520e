"""Small helpers around confluent-kafka (librdkafka) with every call bounded in time."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CALL_TIMEOUT_S = 15


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None) -> None:
    a = admin(bootstrap)  # must outlive the future: a destroyed handle fails it with _DESTROY
    futs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=CALL_TIMEOUT_S, operation_timeout=CALL_TIMEOUT_S)
    futs[name].result(timeout=CALL_TIMEOUT_S)


def producer(bootstrap: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 15000, "enable.idempotence": False}
    base.update(conf)
    return Producer(base)


def produce_all(p: Producer, topic: str, messages: list[dict], timeout: float = 20) -> list:
    """Produce each message dict (kwargs to Producer.produce) and wait for every delivery report.
    Returns the delivered Message objects in produce order; raises on any delivery error."""
    reports: list = [None] * len(messages)

    def cb_for(i):
        def cb(err, msg):
            reports[i] = (err, msg)
        return cb

    for i, m in enumerate(messages):
        p.produce(topic, on_delivery=cb_for(i), **m)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    errors = [(i, r[0]) for i, r in enumerate(reports) if r is None or r[0] is not None]
    assert not errors, f"delivery failed: {errors[:5]}"
    return [r[1] for r in reports]


def consumer(bootstrap: str, **conf) -> Consumer:
    # No group coordinator in the broker yet: assign partitions by hand, never commit.
    base = {"bootstrap.servers": bootstrap, "group.id": "e2e-manual-assign",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "socket.timeout.ms": 10000,
            "fetch.wait.max.ms": 100}
    base.update(conf)
    return Consumer(base)


def consume_n(bootstrap: str, topic: str, n: int, partition: int = 0, offset: int = OFFSET_BEGINNING,
              timeout: float = 20, **conf) -> list:
    """Read exactly `n` messages (or fail after `timeout` s) from one partition via assign()."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append(msg)
        assert len(out) == n, f"consumed {len(out)} of {n} messages from {topic}[{partition}] in {timeout}s"
        return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=CALL_TIMEOUT_S, cached=False)
    finally:
        c.close()


def wait_for(pred, timeout: float = 10, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")
