"""A 3-node Gregor cluster of real processes (combined broker+controller roles, a KRaft quorum
over the controller listeners), driven by real Kafka clients.

Checks, as a user of the README's walkthrough would see them: the nodes form a cluster after
`gregor storage format`; a topic created through any node gets its partition leaders spread over
the brokers and every broker's Metadata agrees; confluent-kafka and kafka-python produce to and
consume from every partition through its leader; `kill -9` of the active controller elects
another and topics can be created again; `kill -9` of a broker fences it after
broker.session.timeout.ms (its partitions have no leader) and it comes back leading them with a
bumped leader epoch; aiokafka, kafkajs and kcat use every partition of a topic through its
leader. A cluster of three controller-only and three broker-only nodes works the
same way, and a voter that joins late, after the leader has replaced its log's start with a
snapshot, catches up by fetching that snapshot.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kwire
from conftest import GREGOR_BIN, Broker, free_port, unique

SESSION_TIMEOUT_MS = 3000
CLUSTER_FORM_TIMEOUT_S = 30.0


class Node(Broker):
    """One cluster node, configured by a properties file written next to its data dir."""

    def __init__(self, workdir: Path, node_id: int, port: int, controller_port: int, voters: str, role: str = "broker,controller", extra: tuple[str, ...] = ()):
        # A controller-only node's one listener is its controller listener: the port waited on.
        super().__init__(workdir, port=controller_port if role == "controller" else port)
        self.node_id = node_id
        self.controller_port = controller_port
        self.config_path = workdir / "node.properties"
        listeners = {
            "broker,controller": [f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}", f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}"],
            "controller": [f"listeners=CONTROLLER://127.0.0.1:{controller_port}"],
            "broker": [f"listeners=PLAINTEXT://127.0.0.1:{port}", f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}"],
        }[role]
        self.config_path.write_text(
            "\n".join(
                [
                    f"process.roles={role}",
                    f"node.id={node_id}",
                    *listeners,
                    *extra,
                    "controller.listener.names=CONTROLLER",
                    f"controller.quorum.voters={voters}",
                    f"log.dirs={self.data_dir}",
                    f"broker.session.timeout.ms={SESSION_TIMEOUT_MS}",
                    "broker.heartbeat.interval.ms=500",
                    "controller.quorum.election.timeout.ms=500",
                    "controller.quorum.fetch.timeout.ms=1000",
                    "offsets.topic.num.partitions=3",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )

    def argv(self) -> list[str]:
        return [str(GREGOR_BIN), "server", "--config", str(self.config_path)]


def gregor(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([str(GREGOR_BIN), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_cluster(request, tmp_path, extra: tuple[str, ...] = (), per_node=lambda node_id: ()) -> list[Node]:
    """Three combined broker+controller nodes, formatted and started, with `extra` settings
    and `per_node(node_id)`'s for each."""
    ports = [(free_port(), free_port()) for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
    nodes = [Node(tmp_path / f"node{i + 1}", i + 1, p, c, voters, extra=(*extra, *per_node(i + 1))) for i, (p, c) in enumerate(ports)]
    request.node._gregor_brokers = nodes
    cluster_id = gregor("storage", "random-uuid").stdout.strip()
    for n in nodes:
        r = gregor("storage", "format", "--cluster-id", cluster_id, "--config", str(n.config_path))
        assert r.returncode == 0, r.stderr
    for n in nodes:
        n.start()
    wait_for(lambda: len(live_brokers(nodes[0])) == 3, CLUSTER_FORM_TIMEOUT_S, "three live brokers")
    return nodes


@pytest.fixture
def cluster(request, tmp_path):
    nodes = start_cluster(request, tmp_path)
    yield nodes
    for n in nodes:
        n.stop()


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a node may be down or electing meanwhile
            last = e
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def metadata_v7(bootstrap: str, topic: str) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """Raw Metadata v7: (broker ids, {partition: (leader, leader epoch)})."""
    body = struct.pack(">i", 1) + kwire.string(topic) + b"\x00"
    s = kwire.connect(bootstrap)
    try:
        s.sendall(kwire.frame(kwire.request_header_v1(3, 7, 1) + body))
        r = kwire.Reader(kwire.recv_frame(s)[4:])
    finally:
        s.close()
    r.take(">i")  # throttle
    brokers = []
    for _ in range(r.take(">i")):
        brokers.append(r.take(">i"))
        r.string()
        r.take(">i")
        r.string()
    r.string()  # cluster id
    r.take(">i")  # controller id
    parts = {}
    for _ in range(r.take(">i")):
        r.take(">h")
        r.string()
        r.take(">b")
        for _ in range(r.take(">i")):
            r.take(">h")
            index, leader, epoch = r.take(">i"), r.take(">i"), r.take(">i")
            for _ in range(3):
                for _ in range(r.take(">i")):
                    r.take(">i")
            parts[index] = (leader, epoch)
    return sorted(brokers), parts


def offset_fetch_error(bootstrap: str, group: str) -> int:
    """Raw OffsetFetch v3 for all of `group`'s offsets: the top-level error code."""
    body = kwire.string(group) + struct.pack(">i", -1)
    s = kwire.connect(bootstrap)
    try:
        s.sendall(kwire.frame(kwire.request_header_v1(9, 3, 1) + body))
        r = kwire.Reader(kwire.recv_frame(s)[4:])
    finally:
        s.close()
    r.take(">i")  # throttle
    for _ in range(r.take(">i")):
        r.string()
        for _ in range(r.take(">i")):
            r.take(">i")
            r.take(">q")
            r.string()
            r.take(">h")
    return r.take(">h")


def live_brokers(node: Broker) -> list[int]:
    md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=5)
    return sorted(md.brokers)


def active_controller(node: Broker) -> int:
    r = gregor("cluster", "describe", "--bootstrap-server", node.bootstrap)
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("ActiveController:"))
    value = line.split(":", 1)[1].strip()
    return -1 if value == "none" else int(value)


def create_topic(node: Broker, name: str, partitions: int) -> None:
    """Creates `name`; a retry that finds it created by an earlier attempt counts as done."""
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    fs = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=20)
    try:
        fs[name].result(30)
    except Exception as e:  # noqa: BLE001
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


def test_three_nodes_serve_real_clients_across_controller_and_broker_kills(cluster):
    n1, n2, n3 = cluster
    topic = unique("cluster")
    create_topic(n2, topic, 6)

    # Every broker answers Metadata with all brokers and the same leaders, spread over all three.
    views = [wait_for(lambda n=n: (lambda v: v if len(v[1]) == 6 else None)(metadata_v7(n.bootstrap, topic)), 10, "metadata") for n in cluster]
    assert all(v == views[0] for v in views), views
    brokers, parts = views[0]
    assert brokers == [1, 2, 3]
    assert sorted({leader for leader, _ in parts.values()}) == [1, 2, 3], parts

    # confluent-kafka produces to every partition (each request to its leader) ...
    p = Producer({"bootstrap.servers": n1.bootstrap, "acks": "all", "enable.idempotence": True})
    acked = []
    for i in range(600):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(), partition=i % 6,
                  on_delivery=lambda err, m: acked.append((m.partition(), m.offset())) if err is None else None)
    assert p.flush(30) == 0
    assert len(acked) == 600 and {pt for pt, _ in acked} == set(range(6))

    # ... and kafka-python consumes all of it as a group through another node.
    from kafka import KafkaConsumer

    group = unique("g")
    c = KafkaConsumer(topic, bootstrap_servers=n3.bootstrap, group_id=group, auto_offset_reset="earliest",
                      consumer_timeout_ms=15000, enable_auto_commit=True)
    got = set()
    for m in c:
        got.add((m.partition, m.offset))
        if len(got) == 600:
            break
    c.close()
    assert got == set(acked)
    # Exactly one broker coordinates the group (the leader of its offsets partition); the
    # others answer NOT_COORDINATOR (16).
    # (Brokers apply the same committed metadata a moment apart.)
    wait_for(lambda: sorted(offset_fetch_error(n.bootstrap, group) for n in cluster) == [0, 16, 16], 10,
             "exactly one coordinator for the group")

    # kill -9 the active controller: another voter takes over and topics can be created again.
    leader = wait_for(lambda: (lambda c: c if c > 0 else None)(active_controller(n1)), 20, "an active controller")
    victim = cluster[leader - 1]
    survivors = [n for n in cluster if n is not victim]
    victim_led = {pt: ep for pt, (ld, ep) in metadata_v7(survivors[0].bootstrap, topic)[1].items() if ld == victim.node_id}
    victim.kill9()
    wait_for(lambda: active_controller(survivors[0]) not in (leader, -1), 20, "a new active controller")
    second = unique("after-failover")
    wait_for(lambda: create_topic(survivors[1], second, 3) is None, 20, "a topic created after the failover")
    victim.start()
    # Back as a broker: registered again (fenced, its partitions without a leader), caught up,
    # unfenced, and leading its partitions again.
    # (Leadership went away and came back: the leader epoch grew by at least two.)
    def victim_back():
        parts = metadata_v7(survivors[0].bootstrap, topic)[1]
        return all(parts[pt][0] == victim.node_id and parts[pt][1] >= ep + 2 for pt, ep in victim_led.items())

    wait_for(victim_back, CLUSTER_FORM_TIMEOUT_S, "the old controller back, leading its partitions")

    # kill -9 a broker that is not the active controller: fenced after the session timeout,
    # its partitions have no leader, then it leads them again with a bumped epoch.
    controller = wait_for(lambda: (lambda c: c if c > 0 else None)(active_controller(n1)), 20, "an active controller")
    broker = next(n for n in cluster if n.node_id != controller)
    other = next(n for n in cluster if n is not broker)
    _, before = metadata_v7(other.bootstrap, topic)
    led = {pt: ep for pt, (ld, ep) in before.items() if ld == broker.node_id}
    assert led, before
    broker.kill9()
    wait_for(lambda: all(metadata_v7(other.bootstrap, topic)[1][pt][0] == -1 for pt in led), SESSION_TIMEOUT_MS / 1000 + 15,
             "the killed broker's partitions without a leader")
    # Every broker learns of the fencing (they apply the same committed record, a moment apart).
    for n in cluster:
        if n is not broker:
            wait_for(lambda n=n: broker.node_id not in live_brokers(n), 10, "the fenced broker gone from Metadata")
    broker.start()
    after = wait_for(lambda: (lambda v: v if all(v[pt][0] == broker.node_id for pt in led) else None)(metadata_v7(other.bootstrap, topic)[1]),
                     30, "the restarted broker leading its partitions again")
    assert all(after[pt][1] > led[pt] for pt in led), (led, after)

    # Nothing acknowledged was lost through all of it.
    c = Consumer({"bootstrap.servers": other.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 30
    while len(seen) < 600 and time.monotonic() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            seen.add((m.partition(), m.offset()))
    c.close()
    assert seen == set(acked)

    # Two of three voters down: no metadata change can commit (no split brain), while the
    # partitions the survivor leads keep taking writes. Back up, the cluster carries on.
    survivor, *down = cluster
    for n in down:
        n.kill9()
    mine = [pt for pt, (ld, _) in metadata_v7(survivor.bootstrap, topic)[1].items() if ld == survivor.node_id]
    assert mine
    p = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all", "message.timeout.ms": 10000})
    more = []
    for i in range(50):
        p.produce(topic, value=b"during-outage", partition=mine[i % len(mine)],
                  on_delivery=lambda err, m: more.append(m.offset()) if err is None else None)
    assert p.flush(15) == 0 and len(more) == 50
    admin = AdminClient({"bootstrap.servers": survivor.bootstrap})
    blocked = unique("no-quorum")
    fs = admin.create_topics([NewTopic(blocked, 1, 1)], operation_timeout=3, request_timeout=5)
    with pytest.raises(Exception):
        fs[blocked].result(15)
    assert blocked not in admin.list_topics(timeout=5).topics
    for n in down:
        n.start()
    third = unique("after-outage")
    wait_for(lambda: create_topic(down[0], third, 1) is None, 30, "a topic created once a majority is back")


def test_unformatted_node_of_a_configured_cluster_refuses_to_start(tmp_path):
    n = Node(tmp_path / "n", 1, free_port(), free_port(), f"1@127.0.0.1:{free_port()}")
    r = subprocess.run(n.argv(), capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "gregor storage format" in (r.stdout + r.stderr)


def test_sigterm_leaves_the_cluster_in_order(cluster):
    """A stopped node gives up its partitions and the quorum before it exits (controlled
    shutdown): right after it exits, the others already show its partitions without a leader
    (no session timeout to wait for) and another voter leads the quorum."""
    topic = unique("orderly")
    create_topic(cluster[0], topic, 6)
    controller = wait_for(lambda: (lambda c: c if c > 0 else None)(active_controller(cluster[0])), 20, "an active controller")
    node = cluster[controller - 1]
    other = next(n for n in cluster if n is not node)
    _, parts = wait_for(lambda: (lambda v: v if len(v[1]) == 6 else None)(metadata_v7(other.bootstrap, topic)), 10, "metadata")
    led = [pt for pt, (ld, _) in parts.items() if ld == node.node_id]
    assert led
    assert node.stop() == 0, "a SIGTERM stop exits cleanly"
    _, after = metadata_v7(other.bootstrap, topic)
    assert all(after[pt][0] == -1 for pt in led), after
    wait_for(lambda: active_controller(other) not in (controller, -1), 5, "another active controller")


def metadata_dir_files(node: Node) -> list[str]:
    d = node.data_dir / "__cluster_metadata-0"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_separate_controllers_and_brokers_and_a_late_voter_catches_up_from_a_snapshot(tmp_path):
    cports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(cports))
    small_snapshots = ("metadata.log.max.record.bytes.between.snapshots=512",)
    controllers = [Node(tmp_path / f"c{i + 1}", i + 1, free_port(), cports[i], voters, role="controller", extra=small_snapshots) for i in range(3)]
    brokers = [Node(tmp_path / f"b{i + 4}", i + 4, free_port(), free_port(), voters, role="broker", extra=small_snapshots) for i in range(3)]
    cluster_id = gregor("storage", "random-uuid").stdout.strip()
    try:
        for n in controllers + brokers:
            r = gregor("storage", "format", "--cluster-id", cluster_id, "--config", str(n.config_path))
            assert r.returncode == 0, r.stderr
        # Two of three voters are a quorum; the third starts later.
        for n in controllers[:2] + brokers:
            n.start()
        b4, b5, b6 = brokers
        wait_for(lambda: live_brokers(b4) == [4, 5, 6], CLUSTER_FORM_TIMEOUT_S, "three live brokers, no controller among them")
        topics = [unique("split") for _ in range(8)]
        for i, t in enumerate(topics):
            create_topic(brokers[i % 3], t, 3)
        # Leaders are spread over the three brokers only.
        leaders = {p[0] for t in topics for p in metadata_v7(b5.bootstrap, t)[1].values()}
        assert leaders == {4, 5, 6}, leaders
        p = Producer({"bootstrap.servers": b6.bootstrap, "linger.ms": 5})
        for i in range(30):
            p.produce(topics[0], value=f"v{i}".encode(), partition=i % 3)
        assert p.flush(20) == 0
        # The running voters have written snapshots and dropped the log before them.
        wait_for(lambda: any(any(f.endswith(".checkpoint") for f in metadata_dir_files(c)) for c in controllers[:2]), 20, "a metadata snapshot")

        late = controllers[2]
        late.start()
        wait_for(lambda: any(f.endswith(".checkpoint") for f in metadata_dir_files(late)), 30, "the late voter to install a snapshot from the leader")
        def caught_up():
            out = gregor("cluster", "quorum", "--replication", "--bootstrap-server", b4.bootstrap)
            rows = [l.split() for l in out.stdout.splitlines()[1:] if l.strip()]
            if out.returncode == 0 and any(r[0] == "3" and r[3] == "0" for r in rows):
                return True
            raise AssertionError(out.stdout + out.stderr)
        wait_for(caught_up, 30, "the late voter to reach the leader's log end")
        assert "installed a metadata snapshot" in late.log_text()
        # Every log line (the timestamped ones: the start-up banner is plain) names the node and
        # its roles.
        for n, tag in [(late, "node=3 roles=controller "), (b4, "node=4 roles=broker ")]:
            lines = [l for l in n.log_text().splitlines() if re.search(r"\d{4}-\d\d-\d\dT\d\d:", l)]
            assert lines and all(l.startswith(tag) for l in lines), lines[:3]

        # The late voter counts: with the active controller killed, it and the other survivor
        # elect a leader and topics can be created again.
        status = gregor("cluster", "quorum", "--status", "--bootstrap-server", b4.bootstrap)
        assert status.returncode == 0, status.stderr
        leader = int(next(l for l in status.stdout.splitlines() if l.startswith("LeaderId:")).split(":", 1)[1])
        assert leader in (1, 2), status.stdout
        # cluster describe names the controller-only active controller too.
        assert active_controller(b4) == leader
        victim = controllers[leader - 1]
        victim.kill9()
        after = unique("split-after")
        wait_for(lambda: create_topic(b5, after, 2) is None, 30, "a topic created after the controller kill")
        wait_for(lambda: all(after in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=5).topics for b in brokers), 20, "every broker to see the new topic")
        # Partitions assigned directly: this step checks the data, not the group (groups on a
        # cluster are checked by the other tests of this file).
        c = Consumer({"bootstrap.servers": b4.bootstrap, "group.id": unique("g"), "enable.auto.commit": False})
        c.assign([TopicPartition(topics[0], p, OFFSET_BEGINNING) for p in range(3)])
        got = set()
        deadline = time.monotonic() + 30
        while len(got) < 30 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.add(m.value())
        c.close()
        assert got == {f"v{i}".encode() for i in range(30)}
    finally:
        for n in controllers + brokers:
            n.stop()


def test_aiokafka_kafkajs_and_kcat_use_every_partition_through_its_leader(cluster):
    n1, n2, n3 = cluster
    partitions = 6

    def spread_topic(prefix: str) -> str:
        name = unique(prefix)
        create_topic(n1, name, partitions)
        leaders = wait_for(lambda: (lambda l: l if len(l) == partitions and all(x >= 1 for x, _ in l.values()) else None)(metadata_v7(n3.bootstrap, name)[1]), 20, f"leaders of {name}")
        assert {x for x, _ in leaders.values()} == {1, 2, 3}, leaders
        return name

    # aiokafka: an idempotent acks=all producer and a group consumer.
    topic = spread_topic("aio")

    async def aio():
        producer = AIOKafkaProducer(bootstrap_servers=n2.bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for i in range(partitions * 5):
                await producer.send_and_wait(topic, f"aio-{i}".encode(), partition=i % partitions)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=n3.bootstrap, group_id=unique("aio-g"), auto_offset_reset="earliest")
        await consumer.start()
        got: dict[int, list[bytes]] = {}
        try:
            deadline = time.monotonic() + 30
            while sum(map(len, got.values())) < partitions * 5 and time.monotonic() < deadline:
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    got.setdefault(tp.partition, []).extend(m.value for m in msgs)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(aio())
    assert got == {p: [f"aio-{i}".encode() for i in range(p, partitions * 5, partitions)] for p in range(partitions)}

    # kafkajs (pure JavaScript).
    js_dir = Path(__file__).resolve().parent / "js"
    node = shutil.which("node") or shutil.which("nodejs")
    assert node is not None and (js_dir / "node_modules" / "kafkajs").exists(), "node and kafkajs are installed by tests/run-all.sh"
    topic = spread_topic("kjs")
    r = subprocess.run([node, str(js_dir / "kafkajs_cluster.js"), n1.bootstrap, topic, str(partitions)], cwd=js_dir,
                       env=dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1", TOTAL_TIMEOUT_MS="60000"),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0 and "OK:" in r.stdout, r.stdout + r.stderr

    # kcat (librdkafka 2.0): per-partition produce, then read each partition to its end.
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat is not None, "kcat is installed by tests/run-all.sh"
    topic = spread_topic("kcat")
    for p in range(partitions):
        lines = "".join(f"kcat-{p}-{i}\n" for i in range(4)).encode()
        r = subprocess.run([kcat, "-b", n2.bootstrap, "-P", "-t", topic, "-p", str(p)], input=lines, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    md = json.loads(subprocess.run([kcat, "-b", n3.bootstrap, "-L", "-J", "-t", topic], capture_output=True, timeout=30).stdout)
    assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3], md["brokers"]
    for p in range(partitions):
        r = subprocess.run([kcat, "-b", n3.bootstrap, "-C", "-t", topic, "-p", str(p), "-o", "beginning", "-e", "-f", "%s\n"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().split() == [f"kcat-{p}-{i}" for i in range(4)], (p, r.stdout)
