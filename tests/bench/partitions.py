"""Benchmark: many topics and partitions. Not part of CI; prints figures.

1. Starts `gregor server` on a free loopback port with a fresh data directory.
2. Creates TOPICS topics in one CreateTopics request (confluent-kafka's AdminClient sends the whole
   list at once) and times the answer.
3. Creates more topics (also in single requests) until the broker holds PARTITIONS partitions.
4. Stops the broker cleanly (SIGTERM) and times start-to-serving with all partitions; then kills it
   with SIGKILL and times the restart after a crash (recovery of what was not cleanly shut down).
5. Writes one record to every partition (acks=all), and times both restarts again: now every
   partition has data to recover after the crash.

Usage: .venv/bin/python tests/bench/partitions.py   (env: GREGOR_BIN, TOPICS=1000, PARTITIONS=10000)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("GREGOR_BIN", str(ROOT / "target/release/gregor"))
TOPICS = int(os.environ.get("TOPICS", "1000"))
PARTITIONS = int(os.environ.get("PARTITIONS", "10000"))
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start(data: Path, port: int) -> tuple[subprocess.Popen, float]:
    log = open(data.parent / "broker.log", "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [BIN, "server", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}"],
        stdout=log, stderr=subprocess.STDOUT)
    while not serving(port):
        if proc.poll() is not None:
            sys.exit(f"broker exited with {proc.returncode}; see {data.parent / 'broker.log'}")
        if time.monotonic() - t0 > START_TIMEOUT_S:
            proc.kill()
            sys.exit("broker did not start in time")
        time.sleep(0.01)
    return proc, time.monotonic() - t0


def create(admin: AdminClient, names: list[str], partitions: int) -> float:
    t0 = time.monotonic()
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
                                  request_timeout=600, operation_timeout=600)
    for f in futures.values():
        f.result()
    return time.monotonic() - t0


def produce_one_each(port: int, names: list[str]) -> None:
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all", "linger.ms": 20, "log_level": 0})
    for name in names:
        p.produce(name, b"x" * 100, partition=0)
        p.poll(0)
    left = p.flush(300)
    if left:
        sys.exit(f"{left} records were not acknowledged")


def stop(proc: subprocess.Popen, sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=120)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gregor-bench-partitions-"))
    data = work / "data"
    port = free_port()
    proc = None
    try:
        proc, t_start = start(data, port)
        # log_level 0: the reconnect noise while the broker restarts is expected.
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
        t_create = create(admin, [f"bench-{i}" for i in range(TOPICS)], 1)
        print(f"create {TOPICS} topics in one request: {t_create:.2f} s")
        total, batch = TOPICS, 0
        while total < PARTITIONS:
            n = min(1000, PARTITIONS - total)
            create(admin, [f"more-{batch}-{i}" for i in range(n)], 1)
            total, batch = total + n, batch + 1
        names = [f"bench-{i}" for i in range(TOPICS)] + [
            f"more-{b}-{i}" for b in range(batch) for i in range(min(1000, PARTITIONS - TOPICS - 1000 * b))]
        for label in ("empty partitions", "one record in every partition"):
            if label != "empty partitions":
                t0 = time.monotonic()
                produce_one_each(port, names)
                print(f"produce one record to each of {len(names)} partitions: {time.monotonic() - t0:.2f} s")
            t0 = time.monotonic()
            stop(proc, signal.SIGTERM)
            print(f"[{label}] clean shutdown: {time.monotonic() - t0:.2f} s")
            proc, t_clean = start(data, port)
            print(f"[{label}] start to serving with {total} partitions after a clean shutdown: {t_clean:.2f} s")
            stop(proc, signal.SIGKILL)
            proc, t_crash = start(data, port)
            print(f"[{label}] start to serving with {total} partitions after kill -9: {t_crash:.2f} s")
        stop(proc, signal.SIGTERM)
        proc = None
        print(f"(empty broker start: {t_start:.2f} s)")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
