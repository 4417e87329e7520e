"""Replicated partitions on a 3-node Gregor cluster of real processes, with real clients.

Checks, as a user of the README's walkthrough would see them: `gregor topics create
--replication-factor 3 --config min.insync.replicas=2` gives every partition three replicas, all
in the ISR; confluent-kafka's idempotent acks=all producer keeps going while the leader of a
partition is `kill -9`ed, and every acknowledged record is consumed afterwards, once, at one
offset, in order; the killed broker comes back and re-joins the ISR; with two of three replicas
down, acks=all is refused with NOT_ENOUGH_REPLICAS while acks=1 still works (readable once the ISR
is back to min.insync.replicas), and a replica that left the ISR below min.insync.replicas is
shown as an eligible leader replica (KIP-966) by `topics describe` and by Kafka's Java admin client
through DescribeTopicPartitions, and is elected cleanly when the last ISR member dies.
"""

from __future__ import annotations

import signal
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import java_admin
from conftest import free_port, unique
from test_cluster import CLUSTER_FORM_TIMEOUT_S, SESSION_TIMEOUT_MS, Node, cluster, gregor, live_brokers, metadata_v7, wait_for  # noqa: F401 - cluster is a fixture


def describe(node, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr), from `gregor topics describe`."""
    r = gregor("topics", "describe", "--bootstrap-server", node.bootstrap, topic)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if "\tPartition: " not in line:
            continue
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t") if ": " in f)
        ids = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        leader = -1 if fields["Leader"] == "none" else int(fields["Leader"])
        out[int(fields["Partition"])] = (leader, ids(fields["Replicas"]), ids(fields["Isr"]))
    return out


def describe_elr(node, topic: str) -> dict[int, tuple[list[int], list[int]]]:
    """partition -> (eligible leader replicas, last known ELR), from `gregor topics describe`."""
    r = gregor("topics", "describe", "--bootstrap-server", node.bootstrap, topic)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if "\tPartition: " in line:
            fields = dict(f.split(": ", 1) if ": " in f else (f.rstrip(":"), "") for f in line.strip().split("\t"))
            ids = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
            out[int(fields["Partition"])] = (ids(fields["Elr"]), ids(fields["LastKnownElr"]))
    return out


def deliveries(partitions: int):
    """A delivery callback and what it records: partition -> [(offset, value)] acknowledged,
    and the errors of failed deliveries."""
    acked: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    errors: list[str] = []

    def delivered(err, m):
        if err is None:
            acked[m.partition()].append((m.offset(), m.value()))
        else:
            errors.append(str(err))

    return acked, errors, delivered


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 40.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition from the start: partition -> [(offset, value)]."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("read"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got[m.partition()].append((m.offset(), m.value()))
    c.close()
    return got


def test_rf3_partitions_survive_a_leader_kill_under_acks_all(cluster):
    n1, n2, n3 = cluster
    topic = unique("orders")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", "6",
               "--replication-factor", "3", "--config", "min.insync.replicas=2")
    assert r.returncode == 0, r.stderr
    # Every partition: three replicas, all in sync, leaders spread over the brokers.
    parts = wait_for(lambda: (lambda d: d if len(d) == 6 and all(len(i) == 3 for _, _, i in d.values()) else None)(describe(n2, topic)),
                     15, "6 partitions with a full ISR")
    assert all(sorted(rep) == [1, 2, 3] for _, rep, _ in parts.values()), parts
    assert sorted({ld for ld, _, _ in parts.values()}) == [1, 2, 3], parts

    acked, errors, delivered = deliveries(6)

    p = Producer({"bootstrap.servers": f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}", "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 60000})
    sent = 0

    def produce(count: int):
        nonlocal sent
        for _ in range(count):
            p.produce(topic, value=f"v{sent}".encode(), partition=sent % 6, on_delivery=delivered)
            sent += 1
            p.poll(0)

    produce(600)
    assert p.flush(30) == 0
    # Kill -9 the leader of partition 0 while producing: its partitions move to ISR members.
    victim_id = describe(n2, topic)[0][0]
    victim = cluster[victim_id - 1]
    others = [n for n in cluster if n is not victim]
    produce(300)
    victim.kill9()
    produce(900)
    assert p.flush(60) == 0, "records not acknowledged after the leader was killed"
    moved = wait_for(lambda: (lambda d: d if all(ld not in (-1, victim_id) for ld, _, _ in d.values()) else None)(describe(others[0], topic)),
                     SESSION_TIMEOUT_MS / 1000 + 15, "every partition led by a live broker")
    assert all(victim_id not in isr for _, _, isr in moved.values()), moved
    assert not errors, errors[:5]

    # The killed broker comes back, catches up and re-joins every ISR.
    victim.start()
    wait_for(lambda: all(len(isr) == 3 for _, _, isr in describe(others[0], topic).values()), 40, "the restarted broker back in every ISR")

    # Every acknowledged record, once, at its acknowledged offset, in order per partition.
    total = sum(len(v) for v in acked.values())
    assert total == sent == 1800
    got = consume_all(others[1].bootstrap, topic, 6, total)
    for part in range(6):
        assert got[part] == sorted(acked[part]), f"partition {part}: read {len(got[part])}, acknowledged {len(acked[part])}"
        offsets = [o for o, _ in got[part]]
        assert offsets == list(range(len(offsets))), f"partition {part}: offsets not dense"


def test_acks_all_needs_min_insync_replicas(tmp_path):
    # Three controllers of their own: with two of the three brokers down the quorum still
    # decides, so the ISR shrinks to the leader (in combined mode it would lose its quorum).
    cports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(cports))
    controllers = [Node(tmp_path / f"c{i + 1}", i + 1, free_port(), cports[i], voters, role="controller") for i in range(3)]
    brokers = [Node(tmp_path / f"b{i + 4}", i + 4, free_port(), free_port(), voters, role="broker", extra=("replica.lag.time.max.ms=4000",)) for i in range(3)]
    cluster_id = gregor("storage", "random-uuid").stdout.strip()
    try:
        for n in controllers + brokers:
            r = gregor("storage", "format", "--cluster-id", cluster_id, "--config", str(n.config_path))
            assert r.returncode == 0, r.stderr
        for n in controllers + brokers:
            n.start()
        b4 = brokers[0]
        wait_for(lambda: live_brokers(b4) == [4, 5, 6], CLUSTER_FORM_TIMEOUT_S, "three live brokers")
        topic = unique("minisr")
        r = gregor("topics", "create", "--bootstrap-server", b4.bootstrap, topic, "--partitions", "1", "--replication-factor", "3",
                   "--config", "min.insync.replicas=2")
        assert r.returncode == 0, r.stderr
        wide = unique("wide")
        r = gregor("topics", "create", "--bootstrap-server", b4.bootstrap, wide, "--partitions", "5", "--replication-factor", "1")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(describe(b4, topic)[0][2]) == 3, 15, "a full ISR")
        leader = describe(b4, topic)[0][0]
        survivor = next(n for n in brokers if n.node_id == leader)
        # Both followers stop: fenced after the session timeout, they leave the ISR.
        for n in brokers:
            if n is not survivor:
                n.kill9()
        wait_for(lambda: describe(survivor, topic)[0][2] == [leader], SESSION_TIMEOUT_MS / 1000 + 20, "the ISR shrunk to the leader")
        # kafka-topics.sh's filters: only the matching partition lines, no topic line.
        def filtered(flag: str) -> list[str]:
            r = gregor("topics", "describe", "--bootstrap-server", survivor.bootstrap, topic, flag)
            assert r.returncode == 0, r.stderr
            return [line for line in r.stdout.splitlines() if line.strip()]
        for flag in ("--under-replicated-partitions", "--under-min-isr-partitions"):
            lines = filtered(flag)
            assert len(lines) == 1 and "\tPartition: 0\t" in lines[0] and f"Isr: {leader}\t" in lines[0], (flag, lines)
        assert filtered("--unavailable-partitions") == []
        assert filtered("--at-min-isr-partitions") == []

        outcomes: list = []
        p = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0,
                      "message.timeout.ms": 10000})
        p.produce(topic, value=b"refused", on_delivery=lambda err, m: outcomes.append(err))
        p.flush(15)
        assert len(outcomes) == 1 and outcomes[0] is not None, outcomes
        assert outcomes[0].code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND), outcomes[0]

        # acks=1 is still acknowledged by the leader alone, but with the ISR below
        # min.insync.replicas the high watermark waits (KIP-966), so no consumer reads it yet.
        ok: list = []
        p1 = Producer({"bootstrap.servers": survivor.bootstrap, "acks": 1, "enable.idempotence": False})
        p1.produce(topic, value=b"accepted", on_delivery=lambda err, m: ok.append((err, m.offset())))
        p1.flush(15)
        assert len(ok) == 1 and ok[0][0] is None, ok
        assert consume_all(survivor.bootstrap, topic, 1, 1, timeout=4)[0] == [], "read above a high watermark that must wait"
        # A follower restarts and re-joins the ISR: the record is committed and read.
        back, third = [n for n in brokers if n is not survivor]
        back.start()
        wait_for(lambda: sorted(describe(survivor, topic)[0][2]) == sorted([leader, back.node_id]), 40, "a second replica back in the ISR")
        got = consume_all(survivor.bootstrap, topic, 1, 1, timeout=15)
        assert [v for _, v in got[0]] == [b"accepted"], got

        # Eligible leader replicas: acknowledged writes, then the ISR shrinks below
        # min.insync.replicas (the follower is paused past its session) and its last member, the
        # leader, dies. The paused replica left the ISR while nothing more could be committed,
        # so when it comes back it is elected cleanly, with every acknowledged record.
        acked: list = []
        p2 = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all"})
        for i in range(10):
            p2.produce(topic, value=f"e{i}".encode(), on_delivery=lambda err, m: acked.append(err))
        assert p2.flush(15) == 0 and acked == [None] * 10, acked
        back.signal(signal.SIGSTOP)
        wait_for(lambda: describe(survivor, topic)[0][2] == [leader], SESSION_TIMEOUT_MS / 1000 + 20, "the ISR shrunk below min.insync.replicas")
        # The paused replica is eligible: `topics describe` and Kafka's Java admin client show it
        # (DescribeTopicPartitions; Metadata carries no ELR), the latter paging two partitions
        # at a time through a second topic.
        elr, last_known = describe_elr(survivor, topic)[0]
        assert back.node_id in elr and leader not in elr, (elr, last_known)
        java = java_admin.describe_topics(survivor.bootstrap, [topic, wide], page_size=2)
        assert java[(topic, 0)]["isr"] == [leader] and (java[(topic, 0)]["elr"], java[(topic, 0)]["last_known_elr"]) == (elr, last_known), java
        assert sorted(p for t, p in java if t == wide) == [0, 1, 2, 3, 4], java
        survivor.kill9()
        back.signal(signal.SIGCONT)
        wait_for(lambda: describe(back, topic)[0][0] == back.node_id, SESSION_TIMEOUT_MS / 1000 + 30, "the eligible replica elected")
        assert describe(back, topic)[0][2] == [back.node_id]
        got = consume_all(back.bootstrap, topic, 1, 11, timeout=20)
        assert [v for _, v in got[0]] == [b"accepted"] + [f"e{i}".encode() for i in range(10)], got
    finally:
        for n in brokers + controllers:
            n.stop()


def test_a_group_survives_the_loss_of_its_coordinator(cluster):
    from confluent_kafka.admin import AdminClient

    n1, n2, n3 = cluster
    topic = unique("grp")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", "3", "--replication-factor", "3")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all(len(i) == 3 for _, _, i in describe(n1, topic).values()), 15, "a full ISR")
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(300):
        p.produce(topic, value=f"m{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0

    group = unique("g")
    # A short session: a member the new coordinator loads but never hears from again expires soon.
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    c = Consumer(conf)
    c.subscribe([topic])
    first: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(first) < 150 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            first.append(m.value())
    assert len(first) >= 150
    c.commit(asynchronous=False)
    c.close()

    # The offsets topic is replicated like any other: the group's coordinator is killed.
    offsets = describe(n1, "__consumer_offsets")
    assert offsets and all(len(rep) == 3 for _, rep, _ in offsets.values()), offsets
    admin = AdminClient({"bootstrap.servers": bootstrap})
    coordinator = admin.describe_consumer_groups([group])[group].result(15).coordinator.id
    victim = cluster[coordinator - 1]
    victim.kill9()

    # A member of the same group resumes at the committed offsets on the new coordinator: it
    # reads the rest, nothing twice, and can commit again.
    c = Consumer(conf)
    c.subscribe([topic])
    rest: list[bytes] = []
    deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000 + 40
    while len(first) + len(rest) < 300 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            rest.append(m.value())
    c.commit(asynchronous=False)
    c.close()
    assert sorted(first + rest, key=lambda v: int(v[1:])) == [f"m{i}".encode() for i in range(300)], (len(first), len(rest))
    # The committed offsets are the new coordinator's: every partition at its end, no lag.
    survivor = next(n for n in cluster if n is not victim)
    r = gregor("groups", "describe", "--bootstrap-server", survivor.bootstrap, group)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:2] == [group, topic]]
    assert len(rows) == 3 and all(row[3] == row[4] == "100" for row in rows), r.stdout


def test_a_rolling_restart_gives_clients_no_errors(cluster):
    """Each node in turn is stopped with SIGTERM and started again, the next one only once every
    ISR is full again (as an operator rolls a cluster), while an idempotent acks=all producer
    keeps sending and a group member keeps reading. Every stop is a confirmed controlled
    shutdown, whose answer waits until the other brokers know the new leaders; the producer sees
    no failed delivery although its message timeout is shorter than a stop and start, the group
    member no error, and it reads every acknowledged record with its acknowledged offset."""
    topic = unique("rolling")
    r = gregor("topics", "create", "--bootstrap-server", cluster[0].bootstrap, topic, "--partitions", "6",
               "--replication-factor", "3", "--config", "min.insync.replicas=2")
    assert r.returncode == 0, r.stderr
    full = lambda: (lambda d: d if len(d) == 6 and all(len(i) == 3 and ld > 0 for ld, _, i in d.values()) else None)(describe(cluster[0], topic))  # noqa: E731
    wait_for(full, 15, "6 partitions with a full ISR")
    bootstrap = ",".join(n.bootstrap for n in cluster)
    acked, errors, delivered = deliveries(6)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 8000})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("roll"), "auto.offset.reset": "earliest", "enable.auto.commit": True})
    c.subscribe([topic])
    read: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(6)}
    poll_errors: list[str] = []
    sent = 0

    def run(seconds: float):
        """Produces 200 records a second (over every partition) and polls the group member."""
        nonlocal sent
        start = time.monotonic()
        end, first = start + seconds, sent
        while time.monotonic() < end:
            while sent < first + 200 * (time.monotonic() - start):
                p.produce(topic, value=f"r{sent}".encode(), partition=sent % 6, on_delivery=delivered)
                sent += 1
            p.poll(0)
            m = c.poll(0.02)
            if m is not None:
                if m.error():
                    poll_errors.append(str(m.error()))
                else:
                    read[m.partition()].append((m.offset(), m.value()))

    run(2)
    for node in cluster:
        assert node.stop() == 0, f"node {node.node_id} did not stop cleanly"
        log = node.log_text()
        assert "controlled shutdown not confirmed" not in log and "moved leadership away" in log, f"node {node.node_id}: no confirmed controlled shutdown"
        for other in cluster:
            if other is not node:
                leaders = metadata_v7(other.bootstrap, topic)[1]
                assert all(ld != node.node_id for ld, _ in leaders.values()), f"node {other.node_id} still names {node.node_id} a leader: {leaders}"
        run(1)
        node.start()
        deadline = time.monotonic() + 40
        while full() is None:
            assert time.monotonic() < deadline, "the restarted node did not re-join every ISR"
            run(0.5)
        run(1)
    assert p.flush(30) == 0
    deadline = time.monotonic() + 30
    while sum(map(len, read.values())) < sent and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            read[m.partition()].append((m.offset(), m.value()))
    c.close()
    assert not errors, errors[:5]
    assert not poll_errors, poll_errors[:5]
    assert sum(map(len, acked.values())) == sent
    for part in range(6):
        # A group member may be handed a partition again after a rebalance and read a few
        # records twice (at-least-once); each offset still has one value and none is missing.
        seen = dict(read[part])
        assert len(seen) == len(set(read[part])), f"partition {part}: one offset read with two values"
        assert sorted(seen.items()) == sorted(acked[part]), f"partition {part}: read {len(seen)} distinct, acknowledged {len(acked[part])}"


def test_a_leaderless_partition_gets_an_unclean_leader_once_its_topic_allows_it(tmp_path):
    # One controller of its own, so the quorum lives on while both brokers are down or paused.
    cport = free_port()
    voters = f"1@127.0.0.1:{cport}"
    interval = ("unclean.leader.election.interval.ms=1000", "replica.lag.time.max.ms=4000")
    controller = Node(tmp_path / "c1", 1, free_port(), cport, voters, role="controller", extra=interval)
    brokers = [Node(tmp_path / f"b{i}", i, free_port(), free_port(), voters, role="broker", extra=interval) for i in (2, 3)]
    cluster_id = gregor("storage", "random-uuid").stdout.strip()
    try:
        for n in [controller, *brokers]:
            r = gregor("storage", "format", "--cluster-id", cluster_id, "--config", str(n.config_path))
            assert r.returncode == 0, r.stderr
            n.start()
        wait_for(lambda: live_brokers(brokers[0]) == [2, 3], CLUSTER_FORM_TIMEOUT_S, "two live brokers")
        topic = unique("unclean")
        r = gregor("topics", "create", "--bootstrap-server", brokers[0].bootstrap, topic, "--partitions", "1", "--replication-factor", "2")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(describe(brokers[0], topic)[0][2]) == 2, 15, "a full ISR")
        acked, errors, delivered = deliveries(1)
        p = Producer({"bootstrap.servers": brokers[0].bootstrap, "acks": "all"})
        for i in range(5):
            p.produce(topic, value=f"before{i}".encode(), on_delivery=delivered)
        assert p.flush(15) == 0 and errors == [], errors
        leader_id = describe(brokers[0], topic)[0][0]
        leader = next(n for n in brokers if n.node_id == leader_id)
        other = next(n for n in brokers if n is not leader)
        # The follower is paused past its session (fenced, out of the ISR; min.insync.replicas 1
        # makes it no eligible replica), then the leader dies: the partition has no leader, and
        # the follower, back, is not elected: unclean elections are off.
        other.signal(signal.SIGSTOP)
        wait_for(lambda: describe(leader, topic)[0][2] == [leader_id], SESSION_TIMEOUT_MS / 1000 + 20, "the ISR shrunk to the leader")
        leader.kill9()
        other.signal(signal.SIGCONT)
        wait_for(lambda: live_brokers(other) == [other.node_id], SESSION_TIMEOUT_MS / 1000 + 20, "the follower unfenced")
        time.sleep(3)  # three rounds of the periodic election
        assert describe(other, topic)[0][0] == -1, describe(other, topic)
        # A real client turns the topic's setting on: within a round the live replica leads.
        from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
        admin = AdminClient({"bootstrap.servers": other.bootstrap})
        res = ConfigResource("topic", topic, incremental_configs=[ConfigEntry("unclean.leader.election.enable", "true", incremental_operation=AlterConfigOpType.SET)])
        for f in admin.incremental_alter_configs([res]).values():
            f.result(timeout=15)
        wait_for(lambda: describe(other, topic)[0][0] == other.node_id, 15, "the live replica elected uncleanly")
        assert describe(other, topic)[0][2] == [other.node_id]
        assert "unclean.leader.election.enable: elected leaders for leaderless partitions" in controller.log_text()
        # It takes writes again; what the follower had replicated is still there.
        p2 = Producer({"bootstrap.servers": other.bootstrap, "acks": "all"})
        after, errors2, delivered2 = deliveries(1)
        p2.produce(topic, value=b"after", on_delivery=delivered2)
        assert p2.flush(15) == 0 and errors2 == [] and len(after[0]) == 1, errors2
        got = consume_all(other.bootstrap, topic, 1, 6, timeout=15)
        assert [v for _, v in got[0]] == [f"before{i}".encode() for i in range(5)] + [b"after"], got
    finally:
        for n in [*brokers, controller]:
            n.stop()
