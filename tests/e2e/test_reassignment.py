"""Partition reassignment on a 3-node cluster of real processes (KIP-455): `gregor partitions
reassign` (shaped like kafka-reassign-partitions.sh) and kafka-python's
`alter_partition_reassignments` / `list_partition_reassignments` move replicas between brokers while
an acks=all producer keeps writing; every acknowledged record is still there afterwards, once, in
order, and a replica that was moved away deletes its copy. A reassignment that cannot finish (its
new replica is stopped) is listed, reported in progress, and cancelled back to the old replicas.
A throttled reassignment (`--throttle`) copies at the throttle's rate until the throttle is lifted,
and `--verify` removes the throttles once it is complete.
"""

from __future__ import annotations

import json
import signal

import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, ResourceType
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic as KpNewTopic

from conftest import unique
from test_cluster import SESSION_TIMEOUT_MS, active_controller, cluster, gregor, wait_for  # noqa: F401 - cluster is a fixture
from test_replication import consume_all, describe


def write_plan(tmp_path, name: str, topic: str, targets: dict[int, list[int]]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": p, "replicas": r} for p, r in targets.items()]}))
    return str(path)


def reassign(node, *args: str):
    return gregor("partitions", "reassign", "--bootstrap-server", node.bootstrap, *args)


def test_replicas_move_between_brokers_with_no_data_loss(cluster, tmp_path):
    n1, n2, n3 = cluster
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    topic = unique("mv")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", "2", "--replication-factor", "2")
    assert r.returncode == 0, r.stderr
    before = wait_for(lambda: (lambda d: d if len(d) == 2 and all(len(i) == 2 for _, _, i in d.values()) else None)(describe(n1, topic)), 15, "a full ISR")
    # A quorum follower learns of a commit on its next fetch, up to the fetch wait later.
    for n in (n2, n3):
        wait_for(lambda: describe(n, topic) == before, 10, f"node {n.node_id} knowing the topic")

    acked: dict[int, list[bytes]] = {0: [], 1: []}
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})

    def produce(start: int, count: int):
        for i in range(start, start + count):
            p.produce(topic, value=f"v{i}".encode(), partition=i % 2, on_delivery=lambda err, m: err is None and acked[m.partition()].append(m.value()))
            p.poll(0)

    produce(0, 400)
    # Partition 0 moves wholly off one broker (its leader among them); partition 1 grows to three.
    old0 = before[0][1]
    spare = next(b for b in (1, 2, 3) if b not in old0)
    gone = old0[0]
    targets = {0: [spare, old0[1]], 1: [1, 2, 3]}
    plan = write_plan(tmp_path, "plan.json", topic, targets)
    r = reassign(n2, "--execute", "--reassignment-json-file", plan)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment" and lines[-2] == "Save this to use as the --reassignment-json-file option during rollback", lines
    rollback = json.loads(lines[2])
    assert rollback == {"version": 1, "partitions": [{"topic": topic, "partition": q, "replicas": before[q][1], "log_dirs": ["any"] * 2} for q in (0, 1)]}
    assert lines[-1] == f"Successfully started partition reassignments for {topic}-0,{topic}-1", lines
    produce(400, 400)

    def verified():
        v = reassign(n3, "--verify", "--reassignment-json-file", plan)
        return v if v.returncode == 0 else None
    v = wait_for(verified, 40, "the reassignments completed")
    assert v.stdout.splitlines() == ["Status of partition reassignment:", f"Reassignment of partition {topic}-0 is completed.", f"Reassignment of partition {topic}-1 is completed.",
                                     "", "Clearing broker-level throttles on brokers 1,2,3", f"Clearing topic-level throttles on topic {topic}"], v.stdout
    after = wait_for(lambda: (lambda d: d if all(sorted(i) == sorted(targets[q]) for q, (_, _, i) in d.items()) else None)(describe(n1, topic)), 20, "full ISRs of the targets")
    assert {q: rep for q, (_, rep, _) in after.items()} == targets, after
    assert after[0][0] in targets[0], "the leader is a target replica"
    # The replica moved away deletes its copy.
    wait_for(lambda: not (cluster[gone - 1].data_dir / f"{topic}-0").exists(), 10, f"broker {gone} deleting its copy of {topic}-0")
    assert (cluster[spare - 1].data_dir / f"{topic}-0").exists()

    # kafka-python moves partition 0 back; it is listed until it completes.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        result = admin.alter_partition_reassignments({TopicPartition(topic, 0): old0})
        assert result == {TopicPartition(topic, 0): None}, result
        wait_for(lambda: admin.list_partition_reassignments() == {}, 40, "no reassignment listed")
        bad = admin.alter_partition_reassignments({TopicPartition(topic, 1): [1, 1]})
        assert bad[TopicPartition(topic, 1)].__name__ == "InvalidReplicationAssignmentError", bad
    finally:
        admin.close()
    wait_for(lambda: describe(n1, topic)[0][1] == old0 and len(describe(n1, topic)[0][2]) == 2, 20, "partition 0 back on its old replicas")

    produce(800, 200)
    assert p.flush(30) == 0
    got = consume_all(n3.bootstrap, topic, 2, 1000)
    for q in (0, 1):
        assert [v for _, v in got[q]] == [f"v{i}".encode() for i in range(q, 1000, 2)], f"partition {q}"
        assert sorted(acked[q]) == sorted(v for _, v in got[q])

    # Bad input: an unknown broker, and a file that is not a plan.
    r = reassign(n1, "--execute", "--reassignment-json-file", write_plan(tmp_path, "bad.json", topic, {0: [1, 9]}))
    assert r.returncode != 0 and "Unknown broker id 9" in r.stderr, r.stderr
    (tmp_path / "junk.json").write_text("{")
    r = reassign(n1, "--verify", "--reassignment-json-file", str(tmp_path / "junk.json"))
    assert r.returncode != 0 and "not JSON" in r.stderr, r.stderr


def test_a_reassignment_that_cannot_finish_is_listed_and_cancelled(cluster, tmp_path):
    n1, n2, n3 = cluster
    topic = unique("stuck")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", "1", "--replication-factor", "2")
    assert r.returncode == 0, r.stderr
    old = wait_for(lambda: (lambda d: d[0][1] if len(d[0][2]) == 2 else None)(describe(n1, topic)), 15, "a full ISR")
    spare = next(b for b in (1, 2, 3) if b not in old)
    others = [n for n in cluster if n.node_id != spare]
    for n in others:
        wait_for(lambda: describe(n, topic)[0][1] == old, 10, f"node {n.node_id} knowing the topic")
    # The new replica is stopped: it cannot catch up, so the reassignment cannot complete.
    cluster[spare - 1].signal(signal.SIGSTOP)
    try:
        # If it was the active controller, the other two elect one of themselves.
        wait_for(lambda: active_controller(others[0]) in (others[0].node_id, others[1].node_id), 15, "an active controller that runs")
        plan = write_plan(tmp_path, "plan.json", topic, {0: [spare, old[1]]})
        r = reassign(others[0], "--execute", "--reassignment-json-file", plan)
        assert r.returncode == 0, r.stdout + r.stderr
        r = reassign(others[1], "--execute", "--reassignment-json-file", plan)
        assert r.returncode != 0 and "Cannot execute because there is an existing partition assignment" in r.stderr, r.stderr
        r = reassign(others[0], "--list")
        assert r.stdout.splitlines() == ["Current partition reassignments:", f"{topic}-0: replicas: {spare},{old[1]},{old[0]}. adding: {spare}. removing: {old[0]}."], r.stdout
        r = reassign(others[1], "--verify", "--reassignment-json-file", plan)
        assert r.returncode != 0 and f"Reassignment of partition {topic}-0 is still in progress." in r.stdout, r.stdout
        r = reassign(others[0], "--cancel", "--reassignment-json-file", plan)
        assert r.returncode == 0 and r.stdout.strip() == f"Successfully cancelled partition reassignment for: {topic}-0", r.stdout + r.stderr
        # The old replicas again (in the order the reassignment left them, as Kafka's revert does).
        assert sorted(describe(others[1], topic)[0][1]) == sorted(old)
        r = reassign(others[0], "--cancel", "--reassignment-json-file", plan)
        assert r.stdout.strip() == "None of the specified partition reassignments are active.", r.stdout
        assert reassign(others[0], "--list").stdout.strip() == "No partition reassignments found."
    finally:
        cluster[spare - 1].signal(signal.SIGCONT)
    # The stopped broker comes back and drops the replica it no longer hosts.
    wait_for(lambda: not (cluster[spare - 1].data_dir / f"{topic}-0").exists(), SESSION_TIMEOUT_MS / 1000 + 20, "the cancelled replica's copy deleted")


RATE_UNLIMITED = str(2**63 - 1)


def broker_config(admin: AdminClient, broker: int, key: str) -> tuple[str, int]:
    res = ConfigResource(ResourceType.BROKER, str(broker))
    e = admin.describe_configs([res], request_timeout=20)[res].result(timeout=20)[key]
    return e.value, e.source


def test_a_throttled_reassignment_copies_at_the_throttle_rate(cluster, tmp_path):
    n1, n2, n3 = cluster
    bootstrap = f"{n1.bootstrap},{n2.bootstrap},{n3.bootstrap}"
    topic = unique("thr")
    r = gregor("topics", "create", "--bootstrap-server", n1.bootstrap, topic, "--partitions", "1", "--replication-factor", "1")
    assert r.returncode == 0, r.stderr
    leader = wait_for(lambda: (lambda d: d[0][0] if d and d[0][0] > 0 else None)(describe(n1, topic)), 15, "a leader")
    for n in cluster:
        wait_for(lambda: describe(n, topic).get(0, (0,))[0] == leader, 10, f"node {n.node_id} knowing the topic")
    # 3 MB: unthrottled, a new replica copies it in well under a second.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    values = [b"%06d" % i + b"x" * 994 for i in range(3000)]
    for v in values:
        p.produce(topic, value=v, partition=0)
        p.poll(0)
    assert p.flush(30) == 0
    new = next(b for b in (1, 2, 3) if b != leader)
    plan = write_plan(tmp_path, "plan.json", topic, {0: [leader, new]})
    rate = 100_000
    r = reassign(n1, "--execute", "--reassignment-json-file", plan, "--throttle", str(rate))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed." in lines, lines
    assert f"The inter-broker throttle limit was set to {rate} B/s" in lines, lines
    assert lines[-1] == f"Successfully started partition reassignment for {topic}-0", lines

    admin = AdminClient({"bootstrap.servers": bootstrap})
    tres = ConfigResource(ResourceType.TOPIC, topic)
    tconf = admin.describe_configs([tres], request_timeout=20)[tres].result(timeout=20)
    assert tconf["leader.replication.throttled.replicas"].value == f"0:{leader}"
    assert tconf["follower.replication.throttled.replicas"].value == f"0:{new}"
    for b in (leader, new):
        value, source = broker_config(admin, b, "leader.replication.throttled.rate")
        assert value == str(rate) and source == 2, (b, value, source)  # DYNAMIC_BROKER_CONFIG
        assert broker_config(admin, b, "follower.replication.throttled.rate")[0] == str(rate)
    third = next(b for b in (1, 2, 3) if b not in (leader, new))
    assert broker_config(admin, third, "leader.replication.throttled.rate")[0] == RATE_UNLIMITED

    # At 100 kB/s (after the burst Kafka's rate window allows) 3 MB takes tens of seconds.
    time.sleep(4)
    v = reassign(n2, "--verify", "--reassignment-json-file", plan)
    assert v.returncode != 0 and f"Reassignment of partition {topic}-0 is still in progress." in v.stdout, v.stdout + v.stderr
    assert "Clearing" not in v.stdout, "throttles stay while the reassignment runs"
    copied = sum(f.stat().st_size for f in (cluster[new - 1].data_dir / f"{topic}-0").glob("*.log"))
    assert copied < 2_500_000, f"the throttled replica already holds {copied} bytes"

    # Lifting the throttle (on the brokers: the cluster default stays unlimited) lets it finish.
    for b in (leader, new):
        res = ConfigResource(ResourceType.BROKER, str(b), incremental_configs=[
            ConfigEntry("leader.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("follower.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE)])
        admin.incremental_alter_configs([res], request_timeout=20)[res].result(timeout=20)
    v = wait_for(lambda: (lambda x: x if x.returncode == 0 else None)(reassign(n3, "--verify", "--reassignment-json-file", plan)), 30, "the reassignment completed")
    assert v.stdout.splitlines()[-2:] == ["Clearing broker-level throttles on brokers 1,2,3", f"Clearing topic-level throttles on topic {topic}"], v.stdout
    tconf = admin.describe_configs([tres], request_timeout=20)[tres].result(timeout=20)
    assert "leader.replication.throttled.replicas" not in tconf or tconf["leader.replication.throttled.replicas"].value in (None, ""), tconf
    assert broker_config(admin, new, "follower.replication.throttled.rate")[0] == RATE_UNLIMITED
    got = consume_all(cluster[new - 1].bootstrap, topic, 1, len(values))
    assert [v for _, v in got[0]] == values


def test_explicit_replica_assignments_of_topics_and_new_partitions(cluster):
    """kafka-python's admin client creates a topic and confluent-kafka's adds partitions on replica
    lists they name (CreateTopics / CreatePartitions assignments, asked of any node):
    the partitions live there, led by the first replica; lists Kafka refuses are refused with its
    error and message, and a refused request changes nothing."""
    n1, n2, n3 = cluster
    admin = AdminClient({"bootstrap.servers": n2.bootstrap})
    topic = unique("manual")
    # (confluent-kafka's NewTopic refuses replica_assignment locally, whatever the counts.)
    kp = KafkaAdminClient(bootstrap_servers=n3.bootstrap)
    kp.create_topics([KpNewTopic(topic, num_partitions=-1, replication_factor=-1, replica_assignments={0: [1, 2], 1: [2, 3], 2: [3, 1]})])
    kp.close()
    wait_for(lambda: len(describe(n1, topic)) == 3 and all(len(i) == 2 for _, _, i in describe(n1, topic).values()), 15, "the topic on its lists")
    d = describe(n3, topic)
    assert {p: (ld, r) for p, (ld, r, _) in d.items()} == {0: (1, [1, 2]), 1: (2, [2, 3]), 2: (3, [3, 1])}, d

    def refused(new_parts: list[NewPartitions]) -> str:
        fs = admin.create_partitions(new_parts)
        try:
            fs[topic].result(15)
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
            return e.args[0].str()
        raise AssertionError(f"{new_parts} was accepted")

    assert "includes the broker 3 more than once" in refused([NewPartitions(topic, 4, [[3, 3]])])
    assert "includes broker 9, but no such broker is registered" in refused([NewPartitions(topic, 4, [[1, 9]])])
    assert "a partition with 3 replica(s), but this is not consistent with previous partitions, which have 2" in refused([NewPartitions(topic, 4, [[1, 2, 3]])])
    assert "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified" in refused([NewPartitions(topic, 5, [[1, 2]])])
    assert len(describe(n1, topic)) == 3

    admin.create_partitions([NewPartitions(topic, 5, [[3, 2], [1, 3]])])[topic].result(15)
    wait_for(lambda: len(describe(n1, topic)) == 5, 15, "five partitions")
    d = describe(n1, topic)
    assert {p: (ld, r) for p, (ld, r, _) in d.items() if p >= 3} == {3: (3, [3, 2]), 4: (1, [1, 3])}, d

    p = Producer({"bootstrap.servers": n1.bootstrap, "acks": "all"})
    for i in range(50):
        p.produce(topic, value=f"m{i}".encode(), partition=i % 5)
    assert p.flush(30) == 0
    got = consume_all(n1.bootstrap, topic, 5, 50)
    assert sorted(v for recs in got.values() for _, v in recs) == sorted(f"m{i}".encode() for i in range(50))
