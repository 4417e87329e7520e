"""The `gregor server` process: start-up output, configuration, signals, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import ck
import kwire
from conftest import GREGOR_BIN, Broker, free_port, port_accepts, unique


def test_startup_prints_listener_and_data_dir(broker):
    ck.wait_for(lambda: str(broker.port) in broker.log_text() and str(broker.data_dir) in broker.log_text(),
                timeout=5, what="start-up output naming the port and the data dir")


def test_starts_quickly(broker_factory):
    b = broker_factory(start=False)
    took = b.start()
    assert took < 5.0, f"took {took:.2f}s to accept connections"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly(broker, sig):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"v%d" % i} for i in range(50)])
    # Open client connections, one with a long-polling Fetch in flight, must not hold up shutdown.
    idle = kwire.connect(broker.bootstrap)
    waiting = kwire.connect(broker.bootstrap)
    try:
        waiting.sendall(kwire.fetch_v4_request(1, name, 0, offset=50, max_wait_ms=30000))
        time.sleep(0.3)
        t0 = time.monotonic()
        broker.signal(sig)
        code = broker.wait_exit(timeout=10)
        took = time.monotonic() - t0
    finally:
        idle.close()
        waiting.close()
    assert code == 0, f"exit code {code} after {sig.name}"
    assert took < 5, f"{sig.name} shutdown took {took:.1f}s"
    assert not port_accepts("127.0.0.1", broker.port)
    assert "panicked" not in broker.log_text()
    broker.start()
    assert ck.watermarks(broker.bootstrap, name) == (0, 50)
    assert [m.value() for m in ck.consume_n(broker.bootstrap, name, 50)] == [b"v%d" % i for i in range(50)]
    assert "panicked" not in broker.log_text()


def test_config_file_and_override_precedence(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    props = tmp_path / "server.properties"
    props.write_text(
        "# a comment\n"
        f"listeners=PLAINTEXT://127.0.0.1:{free_port()}\n"
        f"log.dirs={data}\n"
        "num.partitions=3\n"
        "node.id=1\n")
    b = Broker(tmp_path)
    b.port = port
    # --override wins over the file.
    b.argv = lambda: [str(GREGOR_BIN), "server", "--config", str(props),
                      "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}"]
    b.start()
    try:
        name = unique("cfg")
        ck.produce_all(ck.producer(b.bootstrap), name, [{"value": b"x"}])
        md = ck.admin(b.bootstrap).list_topics(timeout=10)
        assert len(md.topics[name].partitions) == 3
        assert any(data.rglob("*")), "nothing written under log.dirs from the config file"
    finally:
        assert b.stop() == 0


@pytest.mark.parametrize("key,value", [("num.partitions", "abc"), ("num.partitions", "0"),
                                       ("log.retention.ms", "soon"), ("listeners", "nonsense"),
                                       ("message.max.bytes", "-5")])
def test_invalid_config_refuses_to_start(tmp_path, key, value):
    port = free_port()
    r = subprocess.run([str(GREGOR_BIN), "server", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                        "--override", f"log.dirs={tmp_path / 'data'}", "--override", f"{key}={value}"],
                       capture_output=True, timeout=15, cwd=tmp_path)
    assert r.returncode != 0
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert key in out, f"error message does not name {key}: {out!r}"


def test_unknown_key_warns_and_starts(broker_factory):
    b = broker_factory({"no.such.setting": "1"})
    assert b.alive()
    ck.wait_for(lambda: "no.such.setting" in b.log_text(), timeout=5, what="a warning naming the unknown key")


def test_defaults_without_flags(tmp_path):
    if port_accepts("127.0.0.1", 9092):
        pytest.skip("port 9092 is in use on this machine")
    proc = subprocess.Popen([str(GREGOR_BIN), "server"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ck.wait_for(lambda: port_accepts("127.0.0.1", 9092) or proc.poll() is not None, timeout=10,
                    what="default listener 127.0.0.1:9092")
        assert proc.poll() is None, "gregor server exited"
        ck.produce_all(ck.producer("127.0.0.1:9092"), unique("dflt"), [{"value": b"x"}])
        assert (tmp_path / "gregor-data").is_dir()
        md = ck.admin("127.0.0.1:9092").list_topics(timeout=10)
        assert set(md.brokers) == {1}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out = proc.stdout.read().decode(errors="replace")
        proc.stdout.close()
    assert "9092" in out and "gregor-data" in out, out
    assert proc.returncode == 0


def test_second_broker_on_same_port_fails(broker, tmp_path):
    r = subprocess.run([str(GREGOR_BIN), "server", "--override", f"listeners=PLAINTEXT://127.0.0.1:{broker.port}",
                        "--override", f"log.dirs={tmp_path / 'other'}"],
                       capture_output=True, timeout=15, cwd=tmp_path)
    assert r.returncode != 0
    assert broker.alive()
