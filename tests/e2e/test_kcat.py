"""kcat (Debian's build, librdkafka 2.0.x: ApiVersions v3, Metadata v4, Produce v7, Fetch v11, ListOffsets v2)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

import ck
from conftest import unique

KCAT = shutil.which("kcat") or shutil.which("kafkacat")  # missing kcat fails the tests (run-all.sh installs it)


def kcat(broker, *args, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    assert KCAT is not None, "kcat is not installed (apt-get install kcat)"
    cmd = [KCAT, "-b", broker.bootstrap, "-X", "socket.timeout.ms=10000", *args]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\nstdout={r.stdout[-2000:]!r}\nstderr={r.stderr[-4000:]!r}"
    return r


def test_metadata_lists_broker_and_topics(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name, partitions=2)
    md = json.loads(kcat(broker, "-L", "-J").stdout)
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, f"127.0.0.1:{broker.port}")]
    topics = {t["topic"]: t for t in md["topics"]}
    assert name in topics
    parts = sorted(topics[name]["partitions"], key=lambda p: p["partition"])
    assert [(p["partition"], p["leader"]) for p in parts] == [(0, 1), (1, 1)]

    text = kcat(broker, "-L").stdout.decode()
    assert f"broker 1 at 127.0.0.1:{broker.port}" in text
    assert f'topic "{name}" with 2 partitions' in text


def test_produce_keys_headers_and_read_back(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    lines = b"k1:v1\nk2:value two\nk3:\n"
    kcat(broker, "-P", "-t", name, "-p", "0", "-K:", "-H", "h1=x", "-H", "h2=yy", input=lines)
    out = kcat(broker, "-C", "-t", name, "-e", "-o", "beginning",
               "-f", "P%p O%o K%k V%s H%h\n").stdout.decode()
    assert out.splitlines() == [
        "P0 O0 Kk1 Vv1 Hh1=x,h2=yy",
        "P0 O1 Kk2 Vvalue two Hh1=x,h2=yy",
        "P0 O2 Kk3 V Hh1=x,h2=yy",
    ]


def test_auto_create_via_kcat_produce(broker):
    name = unique("kauto")
    kcat(broker, "-P", "-t", name, input=b"a\nb\n")
    out = kcat(broker, "-C", "-t", name, "-e", "-o", "beginning", "-f", "%o=%s\n").stdout.decode()
    assert out.splitlines() == ["0=a", "1=b"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_roundtrip(broker, codec):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    values = [f"{codec}-line-{i}-" + "abc" * (i % 50) for i in range(500)]
    kcat(broker, "-P", "-t", name, "-p", "0", "-z", codec, "-X", "linger.ms=50",
         input=("\n".join(values) + "\n").encode())
    out = kcat(broker, "-C", "-t", name, "-e", "-o", "beginning", "-f", "%o %s\n").stdout.decode()
    assert out.splitlines() == [f"{i} {v}" for i, v in enumerate(values)]
    # A librdkafka 2.x consumer reads the same batches.
    got = ck.consume_n(broker.bootstrap, name, len(values))
    assert [m.value().decode() for m in got] == values


def test_consume_from_offset_and_count(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    kcat(broker, "-P", "-t", name, "-p", "0", input=b"".join(b"m%d\n" % i for i in range(20)))
    out = kcat(broker, "-C", "-t", name, "-p", "0", "-o", "15", "-c", "3", "-f", "%o:%s\n").stdout.decode()
    assert out.splitlines() == ["15:m15", "16:m16", "17:m17"]
    out = kcat(broker, "-C", "-t", name, "-p", "0", "-o", "-2", "-e", "-f", "%o:%s\n").stdout.decode()
    assert out.splitlines() == ["18:m18", "19:m19"]


def test_query_offset_by_timestamp(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap, **{"linger.ms": 100}), name, [{"value": b"x", "timestamp": 10_000 + i * 100} for i in range(5)])
    out = kcat(broker, "-Q", "-t", f"{name}:0:10250").stdout.decode()
    assert re.search(r"\boffset 3\b", out), out
