"""Leadership on a 3-node cluster of real processes: preferred leader elections asked for by hand
(`gregor leader-election`, shaped like kafka-leader-election.sh, and kafka-python's
`elect_leaders`, the ElectLeaders API) and made by the controller itself
(`auto.leader.rebalance.enable`).

A broker that stops (SIGTERM: controlled shutdown) hands its leaderships to other ISR members;
when it comes back it re-joins the ISRs as a follower and leads nothing until a preferred election
moves its partitions back. No acknowledged record is lost on the way.
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from kafka import KafkaAdminClient

from conftest import unique
from test_cluster import SESSION_TIMEOUT_MS, cluster, gregor, start_cluster, wait_for  # noqa: F401 - cluster is a fixture
from test_replication import consume_all, describe

PARTITIONS = 6


def preferred_led(d: dict) -> bool:
    return all(leader == replicas[0] for leader, replicas, _ in d.values())


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(start, start + count):
        p.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0


def knock_leadership_off(nodes, topic: str) -> int:
    """Stops and restarts the preferred leader of partition 0; returns its id once it is back in
    every ISR. Its partitions are then led by other brokers."""
    victim_id = describe(nodes[0], topic)[0][1][0]
    victim = nodes[victim_id - 1]
    other = next(n for n in nodes if n is not victim)
    victim.stop()
    wait_for(lambda: all(ld not in (-1, victim_id) for ld, _, _ in describe(other, topic).values()),
             SESSION_TIMEOUT_MS / 1000 + 15, "every partition led by a live broker")
    victim.start()
    wait_for(lambda: all(len(isr) == 3 for _, _, isr in describe(other, topic).values()), 40, "the restarted broker back in every ISR")
    return victim_id


def create(node, topic: str) -> None:
    r = gregor("topics", "create", "--bootstrap-server", node.bootstrap, topic, "--partitions", str(PARTITIONS), "--replication-factor", "3")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: (lambda d: len(d) == PARTITIONS and all(len(i) == 3 for _, _, i in d.values()))(describe(node, topic)), 15, "a full ISR")


def test_preferred_election_moves_leadership_back_by_hand(cluster):
    n1, n2, n3 = cluster
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    topic = unique("pref")
    create(n1, topic)
    assert preferred_led(describe(n1, topic))
    produce(bootstrap, topic, 0, 600)

    victim = knock_leadership_off(cluster, topic)
    d = describe(n1, topic)
    away = sorted(p for p, (ld, rep, _) in d.items() if ld != rep[0])
    assert away and all(d[p][1][0] == victim for p in away), d
    time.sleep(2)
    assert describe(n1, topic) == d, "leadership moved back without an election (auto.leader.rebalance is at its 300 s default)"

    # A partition whose preferred replica leads already: nothing to do.
    home = next(p for p in range(PARTITIONS) if p not in away)
    r = gregor("leader-election", "--bootstrap-server", n2.bootstrap, "--election-type", "preferred", "--topic", topic, "--partition", str(home))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Valid replica already elected for partitions {topic}-{home}", r.stdout

    # kafka-python's ElectLeaders for one of the moved partitions.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        resp = admin.elect_leaders(0, {topic: [away[0]]})
        results = [(t, p, code) for t, parts in resp.replica_election_results for p, code, *_ in parts]
        assert results == [(topic, away[0], 0)], results
    finally:
        admin.close()
    wait_for(lambda: describe(n3, topic)[away[0]][0] == victim, 10, "the preferred replica leading again")

    # The CLI for every other partition: only those that moved are reported, as Kafka does.
    r = gregor("leader-election", "--bootstrap-server", n3.bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert r.returncode == 0, r.stderr
    rest = away[1:]
    if rest:
        line = r.stdout.strip()
        prefix = "Successfully completed leader election (PREFERRED) for partitions "
        assert line.startswith(prefix) and sorted(line[len(prefix):].split(", ")) == sorted(f"{topic}-{p}" for p in rest), r.stdout
    else:
        assert r.stdout.strip() == "", r.stdout
    wait_for(lambda: preferred_led(describe(n1, topic)), 10, "every partition led by its preferred replica")

    # Bad input: a usage error, and a named failure for a partition that does not exist.
    r = gregor("leader-election", "--bootstrap-server", n1.bootstrap, "--election-type", "preferred")
    assert r.returncode != 0 and "--all-topic-partitions" in r.stderr, r.stderr
    r = gregor("leader-election", "--bootstrap-server", n1.bootstrap, "--election-type", "preferred", "--topic", topic, "--partition", "99")
    assert r.returncode != 0 and f"for partition: {topic}-99: UNKNOWN_TOPIC_OR_PARTITION" in r.stdout, (r.stdout, r.stderr)

    # Nothing acknowledged was lost; the new leaders take writes.
    produce(bootstrap, topic, 600, 600)
    got = consume_all(n2.bootstrap, topic, PARTITIONS, 1200)
    for p in range(PARTITIONS):
        values = [v for _, v in got[p]]
        assert values == [f"v{i}".encode() for i in range(p, 1200, PARTITIONS)], f"partition {p}: {len(values)} records"


def test_the_controller_moves_leadership_back_by_itself(request, tmp_path):
    nodes = start_cluster(request, tmp_path, extra=("leader.imbalance.check.interval.seconds=1",))
    try:
        topic = unique("auto")
        create(nodes[0], topic)
        produce(",".join(n.bootstrap for n in nodes), topic, 0, 300)
        knock_leadership_off(nodes, topic)
        wait_for(lambda: preferred_led(describe(nodes[1], topic)), 15, "leadership back at the preferred replicas")
        got = consume_all(nodes[2].bootstrap, topic, PARTITIONS, 300)
        assert sum(len(v) for v in got.values()) == 300
    finally:
        for n in nodes:
            n.stop()


def test_unclean_leader_election_trades_lost_records_for_availability(cluster):
    """As Kafka: with `unclean.leader.election.enable=true` a partition whose whole ISR is down
    takes a live out-of-sync replica as leader, and what only the ISR had is gone; with the
    default it waits, leaderless, for an ISR member to return."""
    n1, n2, n3 = cluster
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    risky, safe = unique("unclean"), unique("clean")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, risky, "--partitions", "1", "--replication-factor", "2",
               "--config", "unclean.leader.election.enable=true")
    assert r.returncode == 0, r.stderr
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, safe, "--partitions", "1", "--replication-factor", "2")
    assert r.returncode == 0, r.stderr
    replicas = wait_for(lambda: (lambda d: d[0][1] if len(d[0][2]) == 2 else None)(describe(n1, risky)), 15, "a full ISR")
    # Both topics on the same two brokers.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        from kafka import TopicPartition
        admin.alter_partition_reassignments({TopicPartition(safe, 0): replicas})
    finally:
        admin.close()
    wait_for(lambda: describe(n1, safe)[0][1] == replicas and len(describe(n1, safe)[0][2]) == 2, 20, "the clean topic on the same replicas")
    r = gregor("topics", "alter-config", "--bootstrap-server", n1.bootstrap, safe, "--add-config", "unclean.leader.election.enable=maybe")
    assert r.returncode != 0 and "true or false" in r.stderr, r.stderr

    leader_id, follower_id = describe(n1, risky)[0][0], next(b for b in replicas if b != describe(n1, risky)[0][0])
    leader, follower = cluster[leader_id - 1], cluster[follower_id - 1]
    third = next(n for n in cluster if n.node_id not in replicas)
    for t in (risky, safe):
        wait_for(lambda: describe(third, t)[0][0] in replicas, 10, "the third node knowing both topics")

    def produce(topic: str, values: list[bytes], acks) -> None:
        p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False})
        for v in values:
            p.produce(topic, value=v, partition=0)
        assert p.flush(30) == 0

    def read(topic: str, expected: int) -> list[bytes]:
        """Without a group: two brokers are too few for the offsets topic's three replicas."""
        from kafka import KafkaConsumer, TopicPartition as TP
        c = KafkaConsumer(bootstrap_servers=third.bootstrap, group_id=None, enable_auto_commit=False, consumer_timeout_ms=2000)
        c.assign([TP(topic, 0)])
        c.seek_to_beginning()
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500).values():
                got.extend(m.value for m in batch)
        # Anything beyond what is expected would arrive now.
        for batch in c.poll(timeout_ms=1000).values():
            got.extend(m.value for m in batch)
        c.close()
        return got

    for t in (risky, safe):
        produce(t, [b"both-have-it"] * 10, "all")
    # The follower goes; once fenced it leaves the ISR and the leader alone takes more records.
    follower.kill9()
    wait_for(lambda: all(describe(third, t)[0][2] == [leader_id] for t in (risky, safe)), SESSION_TIMEOUT_MS / 1000 + 15, "the ISR shrunk to the leader")
    for t in (risky, safe):
        produce(t, [b"only-the-leader-has-it"] * 5, 1)
    # Then the leader goes too, and the follower comes back.
    leader.kill9()
    follower.start()
    d = wait_for(lambda: (lambda d: d if d[0][0] == follower_id else None)(describe(third, risky)), SESSION_TIMEOUT_MS / 1000 + 30, "the out-of-sync replica elected")
    assert d[0][2] == [follower_id], d
    assert describe(third, safe)[0][0] == -1, "a topic without unclean elections waits for its ISR"
    assert read(risky, 10) == [b"both-have-it"] * 10, "what only the lost ISR had is gone, as in Kafka"
    leader.start()
    wait_for(lambda: describe(third, safe)[0][0] == leader_id, SESSION_TIMEOUT_MS / 1000 + 30, "the clean topic led again by its ISR member")
    assert read(safe, 15) == [b"both-have-it"] * 10 + [b"only-the-leader-has-it"] * 5, "the clean topic kept every record"


def test_a_rolling_restart_gives_clients_no_errors(cluster):
    """Each broker in turn is stopped with SIGTERM (controlled shutdown: its leaderships move to
    other ISR members first) and started again, and the next one waits until it is back in every
    ISR. An idempotent acks=all producer writing the whole time gets no failed delivery, a
    consumer group reading the whole time sees every acknowledged record, and nothing is lost."""
    import threading

    from confluent_kafka import Consumer

    n1, n2, n3 = cluster
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    topic = unique("roll")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", str(PARTITIONS), "--replication-factor", "3",
               "--config", "min.insync.replicas=2")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: (lambda d: len(d) == PARTITIONS and all(len(i) == 3 for _, _, i in d.values()))(describe(n1, topic)), 15, "a full ISR")
    for n in (n2, n3):
        wait_for(lambda: len(describe(n, topic)) == PARTITIONS, 10, f"node {n.node_id} knowing the topic")

    acked: list[bytes] = []
    failed: list[str] = []
    seen: set[bytes] = set()
    consumer_errors: list[str] = []
    stop = threading.Event()
    stop_reading = threading.Event()

    def on_delivery(err, m):
        if err is None:
            acked.append(m.value())
        else:
            failed.append(str(err))

    def produce():
        # A delivery timeout a leader failover by session expiry (kill -9) would exceed: the
        # leaderships must have moved before each broker stops.
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 2500})
        i = 0
        while not stop.is_set():
            # Every partition in turn (a keyless producer would avoid a partition whose leader
            # is unreachable and hide a slow failover).
            p.produce(topic, value=f"r{i}".encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
            p.poll(0)
            i += 1
            time.sleep(0.002)
        if p.flush(30) != 0:
            failed.append("undelivered at the end")

    def consume():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("roll-group"), "auto.offset.reset": "earliest",
                      "session.timeout.ms": 10000})
        c.subscribe([topic])
        while not stop_reading.is_set():
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                consumer_errors.append(str(m.error()))
            else:
                seen.add(m.value())
        c.close()

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        for node in cluster:
            assert node.stop() == 0, f"node {node.node_id} exits cleanly on SIGTERM"
            # A restart takes a while (a new binary, a config change): longer than the
            # producer's delivery timeout, so nothing may wait for this broker.
            time.sleep(3)
            node.start()
            others = [n for n in cluster if n is not node]
            wait_for(lambda: all(len(isr) == 3 for _, _, isr in describe(others[0], topic).values()), 40,
                     f"node {node.node_id} back in every ISR")
            time.sleep(1)
    finally:
        stop.set()
        threads[0].join(90)
        # The group reads on until it has everything acknowledged (or the wait ends).
        deadline = time.monotonic() + 30
        while not set(acked) <= seen and time.monotonic() < deadline:
            time.sleep(0.2)
        stop_reading.set()
        threads[1].join(30)
    assert not failed, f"{len(failed)} failed deliveries, e.g. {failed[:3]}"
    assert not consumer_errors, consumer_errors[:5]
    assert len(acked) > 500, f"only {len(acked)} records acknowledged"
    missing = set(acked) - seen
    assert not missing, f"the group missed {len(missing)} acknowledged records while it ran"
    got = consume_all(n1.bootstrap, topic, PARTITIONS, len(acked))
    values = [v for part in got.values() for _, v in part]
    assert len(values) == len(set(values)), "a record stored twice"
    assert set(values) == set(acked)
