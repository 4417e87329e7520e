"""The gregor CLI tools (topics / produce / consume) against a running broker."""

from __future__ import annotations

import re
import subprocess

import ck
from conftest import GREGOR_BIN, unique


def gregor(broker, *args, input: bytes | None = None, timeout: float = 30, check: bool = True):
    cmd = [str(GREGOR_BIN), *args, "--bootstrap-server", broker.bootstrap]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check:
        assert r.returncode == 0, (f"{cmd} exited {r.returncode}:\nstdout={r.stdout.decode(errors='replace')}\n"
                                   f"stderr={r.stderr.decode(errors='replace')}")
    return r


DESCRIBE_TOPIC = re.compile(
    r"^Topic: (?P<name>\S+)\tTopicId: (?P<id>\S+)\tPartitionCount: (?P<count>\d+)\t"
    r"ReplicationFactor: (?P<rf>\d+)\tConfigs: ?(?P<configs>\S*)$")
DESCRIBE_PARTITION = re.compile(
    r"^\tTopic: (?P<name>\S+)\tPartition: (?P<p>\d+)\tLeader: (?P<leader>\d+)\tReplicas: (?P<replicas>\S+)"
    r"\tIsr: (?P<isr>\S+)")


def describe(broker, name: str) -> tuple[dict, list[dict]]:
    lines = [ln for ln in gregor(broker, "topics", "describe", name).stdout.decode().splitlines() if ln.strip()]
    head = DESCRIBE_TOPIC.match(lines[0])
    assert head, f"describe header line not in kafka-topics format: {lines[0]!r}"
    parts = []
    for ln in lines[1:]:
        m = DESCRIBE_PARTITION.match(ln)
        assert m, f"describe partition line not in kafka-topics format: {ln!r}"
        parts.append(m.groupdict())
    configs = dict(kv.split("=", 1) for kv in head["configs"].split(",") if kv)
    return {**head.groupdict(), "configs": configs}, parts


def test_topics_create_list_describe_alter_delete(broker):
    name = unique()
    gregor(broker, "topics", "create", name, "--partitions", "3", "--replication-factor", "1",
           "--config", "retention.ms=86400000")
    assert name in gregor(broker, "topics", "list").stdout.decode().split()

    head, parts = describe(broker, name)
    assert head["name"] == name
    assert head["count"] == "3" and head["rf"] == "1"
    assert head["configs"].get("retention.ms") == "86400000"
    assert [(p["name"], p["p"], p["leader"], p["replicas"], p["isr"]) for p in parts] == [
        (name, str(i), "1", "1", "1") for i in range(3)]
    # The same topic id is reported to real clients.
    assert len(head["id"]) >= 22

    gregor(broker, "topics", "alter-config", name, "--add-config", "segment.ms=600000")
    head, _ = describe(broker, name)
    assert head["configs"].get("segment.ms") == "600000"
    assert head["configs"].get("retention.ms") == "86400000"
    gregor(broker, "topics", "alter-config", name, "--delete-config", "retention.ms")
    head, _ = describe(broker, name)
    assert "retention.ms" not in head["configs"]

    gregor(broker, "topics", "delete", name)
    ck.wait_for(lambda: name not in gregor(broker, "topics", "list").stdout.decode().split(),
                what="topic gone from `topics list`")


def test_topics_create_errors_exit_nonzero(broker):
    name = unique()
    gregor(broker, "topics", "create", name)
    dup = gregor(broker, "topics", "create", name, check=False)
    assert dup.returncode != 0
    assert b"exist" in (dup.stderr + dup.stdout).lower()
    rf = gregor(broker, "topics", "create", unique(), "--replication-factor", "3", check=False)
    assert rf.returncode != 0
    assert b"replication" in (rf.stderr + rf.stdout).lower()
    bad = gregor(broker, "topics", "create", "bad/name", check=False)
    assert bad.returncode != 0


def test_describe_all_lists_every_topic(broker):
    a, b = unique(), unique()
    gregor(broker, "topics", "create", a)
    gregor(broker, "topics", "create", b, "--partitions", "2")
    out = gregor(broker, "topics", "describe").stdout.decode()
    assert re.search(rf"^Topic: {a}\t.*PartitionCount: 1\t", out, re.M)
    assert re.search(rf"^Topic: {b}\t.*PartitionCount: 2\t", out, re.M)


def test_produce_then_consume_with_keys_headers_and_metadata(broker):
    name = unique()
    gregor(broker, "topics", "create", name)
    gregor(broker, "produce", name, "--property", "parse.key=true", "--property", "key.separator=:",
           "--header", "h1=x", "--header", "h2=y", "--acks", "all",
           input=b"k1:hello\nk2:world with spaces\nk3:a:b\n")
    r = gregor(broker, "consume", name, "--from-beginning", "--max-messages", "3", "--timeout-ms", "10000",
               "--property", "print.key=true", "--property", "print.partition=true",
               "--property", "print.offset=true", "--property", "print.timestamp=true",
               "--property", "print.headers=true")
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 3, lines
    expected = [("k1", "hello"), ("k2", "world with spaces"), ("k3", "a:b")]
    for i, (line, (key, value)) in enumerate(zip(lines, expected)):
        fields = line.split("\t")
        assert fields[-2:] == [key, value], line
        meta = fields[:-2]
        assert re.fullmatch(r"CreateTime:\d{13}", meta[0]), line
        assert f"Partition:0" in meta, line
        assert f"Offset:{i}" in meta, line
        assert any(f in ("h1:x,h2:y",) for f in meta), f"headers missing in {line!r}"
    # The same records as a real client sees them.
    msgs = ck.consume_n(broker.bootstrap, name, 3)
    assert [(m.key(), m.value(), m.headers()) for m in msgs] == [
        (k.encode(), v.encode(), [("h1", b"x"), ("h2", b"y")]) for k, v in expected]


def test_consume_plain_values_and_partition_offset(broker):
    name = unique()
    gregor(broker, "topics", "create", name, "--partitions", "2")
    gregor(broker, "produce", name, "--partition", "1", input=b"".join(b"line %d\n" % i for i in range(10)))
    r = gregor(broker, "consume", name, "--partition", "1", "--offset", "7", "--max-messages", "3",
               "--timeout-ms", "10000")
    assert r.stdout.decode().splitlines() == ["line 7", "line 8", "line 9"]
    # Exits after --timeout-ms with nothing new, printing what it had.
    r = gregor(broker, "consume", name, "--partition", "1", "--from-beginning", "--timeout-ms", "1500",
               timeout=20)
    assert r.stdout.decode().splitlines() == [f"line {i}" for i in range(10)]
    assert ck.watermarks(broker.bootstrap, name, 0) == (0, 0)


def test_consume_custom_key_separator(broker):
    name = unique()
    gregor(broker, "produce", name, "--property", "parse.key=true", "--property", "key.separator=:",
           input=b"a:1\nb:2\n")
    r = gregor(broker, "consume", name, "--from-beginning", "--max-messages", "2", "--timeout-ms", "10000",
               "--property", "print.key=true", "--property", "key.separator=|")
    assert r.stdout.decode().splitlines() == ["a|1", "b|2"]
