"""The Prometheus endpoint (`metrics.listener`), read with the Prometheus project's own Python
client parser (prometheus_client), as a scraper would.

Checks: the page parses and carries Kafka's metrics under their Prometheus names; on a single
broker, produce and fetch are counted (requests, bytes, records, fsyncs), a waiting consumer
fetch is in the fetch purgatory (and its wait is remote time), each request's stages and its
answer's error codes are counted, and the endpoint refuses what it does not serve; on a 3-node
cluster, exactly one node is the active controller, leaders and replicas add up, followers
count replication bytes, and pausing one broker shows up as ISR shrinks, under-replicated
partitions, a waiting acks=all produce and leader elections, then as ISR expansions once it
is back.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, unique
from test_cluster import SESSION_TIMEOUT_MS, start_cluster, wait_for

PREFIX_REQUESTS = "kafka_network_requestmetrics_requests"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of the page: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def http_status(port: int, raw: bytes) -> int:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(raw)
        line = s.makefile("rb").readline().decode()
    finally:
        s.close()
    return int(line.split()[1])


def test_a_single_broker_counts_what_it_serves(broker_factory):
    mport = free_port()
    b = broker_factory({"metrics.listener": f"http://127.0.0.1:{mport}/metrics"})
    assert f"metrics endpoint at http://127.0.0.1:{mport}/metrics" in b.log_text()
    topic = unique("metrics")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(20)

    before = scrape(mport)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(100):
        p.produce(topic, value=b"x" * 50)
        p.poll(0)
    assert p.flush(20) == 0
    after = scrape(mport)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total") - value(before, "kafka_server_brokertopicmetrics_messagesin_total") == 100
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total") - value(before, "kafka_server_brokertopicmetrics_bytesin_total") >= 100 * 50
    assert value(after, f"{PREFIX_REQUESTS}_total", request="Produce") >= 1
    assert value(after, "kafka_network_requestmetrics_totaltime_seconds_count", request="Produce") == value(after, f"{PREFIX_REQUESTS}_total", request="Produce")
    assert value(after, "kafka_log_logflushstats_logflush_seconds_count") >= 1, "acks=all waited for an fsync"
    # Each request's stages are timed, and every partition's answer counted its error code.
    for stage in ("localtime", "remotetime", "responsequeuetime", "responsesendtime"):
        assert value(after, f"kafka_network_requestmetrics_{stage}_seconds_count", request="Produce") == value(after, f"{PREFIX_REQUESTS}_total", request="Produce"), stage
    assert value(after, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") == value(after, f"{PREFIX_REQUESTS}_total", request="Produce")
    assert ("kafka_network_requestmetrics_errors_total", (("error", "UNKNOWN_TOPIC_OR_PARTITION"), ("request", "DeleteTopics"))) not in after
    missing = unique("missing")
    with pytest.raises(Exception, match="UNKNOWN_TOPIC_OR_PART"):
        admin.delete_topics([missing], operation_timeout=5)[missing].result(20)
    assert value(scrape(mport), "kafka_network_requestmetrics_errors_total", request="DeleteTopics", error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert value(after, "kafka_server_replicamanager_partitioncount") == 1
    assert value(after, "kafka_server_replicamanager_leadercount") == 1
    assert value(after, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value(after, "kafka_server_socketservermetrics_connection_count", listener="broker") >= 1

    # A consumer reads it all (bytes out), then long-polls at the end: its fetch waits in the
    # fetch purgatory meanwhile.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5000, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.monotonic() + 20
    while got < 100 and time.monotonic() < deadline:
        got += len(c.consume(100, timeout=1))
    assert got == 100
    waiting = threading.Thread(target=lambda: c.poll(3), daemon=True)
    waiting.start()
    wait_for(lambda: value(scrape(mport), "kafka_server_delayedoperationpurgatory_purgatorysize", delayedoperation="Fetch") >= 1, 10, "a fetch in the purgatory")
    # An empty fetch waits out its fetch.wait.max.ms in the purgatory: remote time.
    wait_for(lambda: value(scrape(mport), "kafka_network_requestmetrics_remotetime_seconds_sum", request="Fetch") >= 2.0, 15, "a fetch's time in the purgatory")
    waiting.join(10)
    c.close()
    out = scrape(mport)
    assert value(out, "kafka_server_brokertopicmetrics_bytesout_total") >= 100 * 50
    assert value(out, "kafka_server_groupcoordinatormetrics_classic_group_count", state="Stable") == 0

    # What the endpoint does not serve.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=5)
    assert e.value.code == 404
    assert http_status(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 405
    assert http_status(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n") == 400
    # The endpoint goes on serving scrapes (the consumer group's offsets topic added its partitions).
    assert value(scrape(mport), "kafka_server_replicamanager_leadercount") == 1 + 50


def test_a_cluster_shows_replication_isr_changes_and_elections(request, tmp_path):
    mports = {n: free_port() for n in (1, 2, 3)}
    nodes = start_cluster(
        request,
        tmp_path,
        extra=("replica.lag.time.max.ms=2000", "default.replication.factor=3"),
        per_node=lambda n: (f"metrics.listener=http://127.0.0.1:{mports[n]}/metrics",),
    )
    try:
        topic = unique("mcluster")
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(20)
        p = Producer({"bootstrap.servers": nodes[0].bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(300):
            p.produce(topic, value=f"v{i}".encode(), partition=i % 3)
        assert p.flush(30) == 0

        def settled():
            pages = {n: scrape(mports[n]) for n in mports}
            active = [n for n, s in pages.items() if value(s, "kafka_controller_kafkacontroller_activecontrollercount") == 1]
            if len(active) != 1:
                return None
            ctl = pages[active[0]]
            total = value(ctl, "kafka_controller_kafkacontroller_globalpartitioncount")
            leaders = sum(value(s, "kafka_server_replicamanager_leadercount") for s in pages.values())
            replicas = sum(value(s, "kafka_server_replicamanager_partitioncount") for s in pages.values())
            urp = sum(value(s, "kafka_server_replicamanager_underreplicatedpartitions") for s in pages.values())
            if leaders == total and replicas == 3 * total and urp == 0 and value(ctl, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0:
                return pages
            return None

        pages = wait_for(settled, 20, "leaders and replicas adding up over the cluster")
        assert sum(value(s, "kafka_controller_kafkacontroller_activebrokercount") for s in pages.values()) == 3
        assert sum(value(s, "kafka_server_brokertopicmetrics_messagesin_total") for s in pages.values()) >= 300
        # Each record was fetched by two followers: replication bytes in on the followers, out on leaders.
        rep_in = sum(value(s, "kafka_server_brokertopicmetrics_replicationbytesin_total") for s in pages.values())
        rep_out = sum(value(s, "kafka_server_brokertopicmetrics_replicationbytesout_total") for s in pages.values())
        assert rep_in > 0 and rep_out >= rep_in, (rep_in, rep_out)
        assert all(value(s, f"{PREFIX_REQUESTS}_total", request="Fetch") > 0 for s in pages.values())

        # Pause one broker: acks=all produce waits for it (the produce purgatory) until the
        # leaders drop it from their ISRs; its session expires and its leaderships move.
        victim = nodes[2]
        live = [n for n in nodes if n is not victim]
        shrinks_before = sum(value(pages[n.node_id], "kafka_server_replicamanager_isrshrinks_total") for n in live)
        elections_before = value(pages[1], "kafka_controller_controllerstats_leaderelections_total")
        victim.signal(signal.SIGSTOP)
        try:
            waiting_seen = []
            p2 = Producer({"bootstrap.servers": nodes[0].bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
            for i in range(30):
                p2.produce(topic, value=f"w{i}".encode(), partition=i % 3)
            p2.poll(0)
            deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000 + 10
            while time.monotonic() < deadline and not waiting_seen:
                if any(value(scrape(mports[n.node_id]), "kafka_server_delayedoperationpurgatory_purgatorysize", delayedoperation="Produce") >= 1 for n in live):
                    waiting_seen.append(True)
                time.sleep(0.1)
            assert waiting_seen, "an acks=all produce waiting for the paused replica"
            assert p2.flush(30) == 0

            def shrunk():
                pages = {n.node_id: scrape(mports[n.node_id]) for n in live}
                shrinks = sum(value(s, "kafka_server_replicamanager_isrshrinks_total") for s in pages.values())
                urp = sum(value(s, "kafka_server_replicamanager_underreplicatedpartitions") for s in pages.values())
                elections = value(pages[1], "kafka_controller_controllerstats_leaderelections_total")
                return shrinks > shrinks_before and urp == 3 and elections > elections_before

            wait_for(shrunk, SESSION_TIMEOUT_MS / 1000 + 20, "ISR shrinks, three under-replicated partitions and leader elections")
        finally:
            victim.signal(signal.SIGCONT)

        def expanded():
            pages = {n: scrape(mports[n]) for n in mports}
            return sum(value(s, "kafka_server_replicamanager_isrexpands_total") for s in pages.values()) > 0 and sum(
                value(s, "kafka_server_replicamanager_underreplicatedpartitions") for s in pages.values()
            ) == 0

        wait_for(expanded, 30, "the ISRs expanded again")
        # No election here was unclean.
        assert all(value(scrape(mports[n]), "kafka_controller_controllerstats_uncleanleaderelections_total") == 0 for n in mports)
    finally:
        for n in nodes:
            n.stop()
