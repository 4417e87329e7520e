"""Consumer groups with real clients: partitions split among members, rebalances on join/leave,
resume from the last committed offset, eager and cooperative assignors, static membership, and
the `gregor groups` tool."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import ck
from conftest import GREGOR_BIN, unique
from test_cli import gregor

FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


def group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    base = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100,
            "enable.auto.commit": False, "socket.timeout.ms": 10000}
    base.update(conf)
    return Consumer(base)


def poll_until(consumers: list[Consumer], want: int, timeout: float = 30) -> dict:
    """Poll every consumer round-robin until `want` messages arrived in total.
    Returns {consumer index: [messages]}."""
    got: dict[int, list] = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < want and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                got[i].append(m)
    return got


def assignment_now(c: Consumer, rounds: int = 5) -> set[tuple[str, int]]:
    for _ in range(rounds):
        c.poll(0.05)
    return {(tp.topic, tp.partition) for tp in c.assignment()}


def wait_assigned(consumers: list[Consumer], total: int, timeout: float = 30) -> list[set]:
    """Poll until the consumers' assignments are disjoint and cover `total` partitions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sets = [assignment_now(c, 2) for c in consumers]
        union = set().union(*sets)
        if len(union) == total and sum(len(s) for s in sets) == total and all(sets):
            return sets
    raise AssertionError(f"assignments never settled: {[assignment_now(c, 1) for c in consumers]}")


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_group_splits_partitions_and_rebalances(broker, assignor):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=6)
    p = ck.producer(broker.bootstrap)
    ck.produce_all(p, topic, [{"value": b"a%d" % i, "partition": i % 6} for i in range(60)])

    c1 = group_consumer(broker.bootstrap, group, **{"partition.assignment.strategy": assignor})
    c1.subscribe([topic])
    first = poll_until([c1], 60)
    assert sorted(m.value() for m in first[0]) == sorted(b"a%d" % i for i in range(60))
    c1.commit(asynchronous=False)

    c2 = group_consumer(broker.bootstrap, group, **{"partition.assignment.strategy": assignor})
    c2.subscribe([topic])
    sets = wait_assigned([c1, c2], 6)
    assert sets[0].isdisjoint(sets[1])

    ck.produce_all(p, topic, [{"value": b"b%d" % i, "partition": i % 6} for i in range(60)])
    got = poll_until([c1, c2], 60)
    values = sorted(m.value() for v in got.values() for m in v)
    assert values == sorted(b"b%d" % i for i in range(60)), "each record consumed exactly once"
    # Each consumer only received records from its own partitions.
    for i, s in enumerate(sets):
        assert {(m.topic(), m.partition()) for m in got[i]} <= s

    # A member leaving hands its partitions back.
    c2.close()
    assert wait_assigned([c1], 6)[0] == {(topic, i) for i in range(6)}
    c1.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_restarted_consumer_resumes_after_last_commit(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    p = ck.producer(broker.bootstrap)
    ck.produce_all(p, topic, [{"value": b"%d" % i, "partition": i % 2} for i in range(20)])
    c = group_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    got = poll_until([c], 20)[0]
    assert len(got) == 20
    c.commit(asynchronous=False)
    c.close()

    ck.produce_all(p, topic, [{"value": b"late%d" % i, "partition": i % 2} for i in range(10)])
    # Broker restart (kill -9) in between: commits must survive.
    broker.restart(kill9=True)
    c = group_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    got = poll_until([c], 10)[0]
    assert sorted(m.value() for m in got) == sorted(b"late%d" % i for i in range(10))
    committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    assert sorted(tp.offset for tp in committed) == [10, 10]
    c.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_commit_metadata_round_trips(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic)
    c = group_consumer(broker.bootstrap, group)
    tp = TopicPartition(topic, 0, 5, metadata="checkpoint-7")
    c.commit(offsets=[tp], asynchronous=False)
    (got,) = c.committed([TopicPartition(topic, 0)], timeout=10)
    assert (got.offset, got.metadata) == (5, "checkpoint-7")
    c.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_static_member_rejoins_without_rebalance(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=4)
    conf = {"group.instance.id": "instance-a", "session.timeout.ms": 10000}
    c1 = group_consumer(broker.bootstrap, group, **conf)
    c2 = group_consumer(broker.bootstrap, group, **{"group.instance.id": "instance-b", "session.timeout.ms": 10000})
    c1.subscribe([topic])
    c2.subscribe([topic])
    before = wait_assigned([c1, c2], 4)
    # Static members do not send LeaveGroup on close: the group keeps their assignment.
    c1.close()
    c1 = group_consumer(broker.bootstrap, group, **conf)
    c1.subscribe([topic])
    after = wait_assigned([c1, c2], 4)
    assert after == before, "a static member gets its old partitions back"
    c1.close()
    c2.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_kafka_python_group(broker):
    from kafka import KafkaConsumer
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=3)
    ck.produce_all(ck.producer(broker.bootstrap), topic, [{"value": b"k%d" % i, "partition": i % 3} for i in range(30)])
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=15000, session_timeout_ms=6000,
                      heartbeat_interval_ms=500)
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == 30:
            break
    assert sorted(got) == sorted(b"k%d" % i for i in range(30))
    c.commit()
    c.close()
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    offsets = a.list_group_offsets(group)
    # kafka-python 3 maps group id -> {TopicPartition: OffsetAndMetadata}.
    per_group = offsets.get(group, offsets)
    assert sorted(v.offset for v in per_group.values()) == [10, 10, 10]
    a.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_offset_delete_refuses_only_subscribed_topics(broker):
    """OffsetDelete (kafka-python's delete_group_offsets) as Kafka: while the group has members,
    partitions of topics a member subscribes to are refused with GROUP_SUBSCRIBED_TO_TOPIC and
    others are deleted; once the group is empty everything can be deleted."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from kafka.errors import GroupIdNotFoundError, GroupSubscribedToTopicError, NoError
    subscribed, other, group = unique(), unique(), unique("g")
    ck.create_topic(broker.bootstrap, subscribed)
    ck.create_topic(broker.bootstrap, other)
    c = group_consumer(broker.bootstrap, group)
    c.subscribe([subscribed])
    wait_assigned([c], 1)
    c.commit(offsets=[TopicPartition(subscribed, 0, 3), TopicPartition(other, 0, 5)], asynchronous=False)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        def committed() -> dict:
            offsets = a.list_group_offsets(group)
            return {(tp.topic, tp.partition): v.offset for tp, v in offsets.get(group, offsets).items()}

        assert committed() == {(subscribed, 0): 3, (other, 0): 5}
        res = a.delete_group_offsets(group, [KTP(subscribed, 0), KTP(other, 0)])
        assert res == {KTP(subscribed, 0): GroupSubscribedToTopicError, KTP(other, 0): NoError}
        assert committed() == {(subscribed, 0): 3}
        c.close()
        wait_for_state(a, group, "Empty")
        assert a.delete_group_offsets(group, [KTP(subscribed, 0)]) == {KTP(subscribed, 0): NoError}
        assert committed() == {}
        with pytest.raises(GroupIdNotFoundError):
            a.delete_group_offsets(unique("never"), [KTP(subscribed, 0)])
    finally:
        a.close()


def wait_for_state(a, group: str, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.describe_groups([group])[group]["group_state"] == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"group {group} never reached {state}")


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_groups_cli_describe_reset_delete(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    ck.produce_all(ck.producer(broker.bootstrap), topic, [{"value": b"%d" % i, "partition": i % 2} for i in range(10)])
    c = group_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    assert len(poll_until([c], 10)[0]) == 10
    c.commit(asynchronous=False)

    assert group in gregor(broker, "groups", "list").stdout.decode().split()
    out = gregor(broker, "groups", "describe", group).stdout.decode()
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(group)]
    assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows) == [(topic, "0", "5", "5", "0"), (topic, "1", "5", "5", "0")]
    assert "Stable" in out

    # Resetting an active group is refused; after the consumer leaves it works.
    r = gregor(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", check=False)
    assert r.returncode != 0 and b"inactive" in r.stderr
    c.close()
    dry = gregor(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-offset", "2").stdout.decode()
    assert "dry run" in dry
    assert sorted(tp.offset for tp in ck.consumer(broker.bootstrap, **{"group.id": group}).committed(
        [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)) == [5, 5]
    gregor(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-offset", "2", "--execute")
    out = gregor(broker, "groups", "describe", group).stdout.decode()
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(group)]
    assert sorted((r[2], r[3], r[5]) for r in rows) == [("0", "2", "3"), ("1", "2", "3")]

    gregor(broker, "groups", "delete", group)
    assert group not in gregor(broker, "groups", "list").stdout.decode().split()
    r = gregor(broker, "groups", "delete", group, check=False)
    assert r.returncode != 0 and b"GROUP_ID_NOT_FOUND" in r.stderr


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_gregor_consume_with_group_resumes_and_splits(broker):
    import subprocess
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=4)
    p = ck.producer(broker.bootstrap)
    ck.produce_all(p, topic, [{"value": b"v%d" % i, "partition": i % 4} for i in range(20)])
    out = gregor(broker, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "20").stdout.split()
    assert sorted(out) == sorted(b"v%d" % i for i in range(20))

    # The group's commits make the next member start right after them.
    ck.produce_all(p, topic, [{"value": b"w%d" % i, "partition": i % 4} for i in range(8)])
    out = gregor(broker, "consume", topic, "--group", group, "--from-beginning", "--timeout-ms", "3000").stdout.split()
    assert sorted(out) == sorted(b"w%d" % i for i in range(8))
    rows = [ln.split() for ln in gregor(broker, "groups", "describe", group).stdout.decode().splitlines() if ln.startswith(group)]
    assert sorted(r[5] for r in rows) == ["0"] * 4, rows

    # Two members at once: every new event is printed by exactly one of them.
    ck.produce_all(p, topic, [{"value": b"x%d" % i, "partition": i % 4} for i in range(40)])
    cmd = [str(GREGOR_BIN), "consume", topic, "--group", group, "--timeout-ms", "4000", "--bootstrap-server", broker.bootstrap]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = []
    for pr in procs:
        o, e = pr.communicate(timeout=60)
        assert pr.returncode == 0, e.decode(errors="replace")
        outs.append(o.split())
    assert sorted(outs[0] + outs[1]) == sorted(b"x%d" % i for i in range(40))
