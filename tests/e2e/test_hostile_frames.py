"""Frames whose arrays claim more elements than they hold: the broker refuses them before it
allocates anything, closes that connection only, says which API and field, and keeps serving."""

from __future__ import annotations

import struct

import pytest

import kwire


def header(api_key: int, version: int, corr: int = 9) -> bytes:
    return kwire.request_header_v1(api_key, version, corr)


def flexible_header(api_key: int, version: int, corr: int = 9) -> bytes:
    return kwire.request_header_v1(api_key, version, corr) + b"\x00"  # no header tagged fields


I32_MAX = struct.pack(">i", 2**31 - 1)
UVARINT_MAX = b"\xff\xff\xff\xff\x0f"

CASES = {
    # A Metadata v1 request of a few bytes: it used to abort the broker.
    "metadata-v1-topics": (header(3, 1) + I32_MAX, "Metadata", "topics"),
    "metadata-v12-topics": (flexible_header(3, 12) + UVARINT_MAX, "Metadata", "topics"),
    "produce-v7-topics": (header(0, 7) + struct.pack(">hhi", -1, 1, 1000) + I32_MAX, "Produce", "topic_data"),
    "produce-v7-partitions": (
        header(0, 7) + struct.pack(">hhii", -1, 1, 1000, 1) + kwire.string("t") + I32_MAX,
        "Produce", "topic_data[0].partition_data"),
    "fetch-v4-topics": (header(1, 4) + struct.pack(">iiiib", -1, 500, 1, 1 << 20, 0) + I32_MAX, "Fetch", "topics"),
    "offset-commit-v2-topics": (
        header(8, 2) + kwire.string("g") + struct.pack(">i", 1) + kwire.string("m") + struct.pack(">q", -1) + I32_MAX,
        "OffsetCommit", "topics"),
    "create-topics-v7-configs": (
        flexible_header(19, 7) + b"\x02" + kwire.compact_string("t") + struct.pack(">ih", 1, 1) + b"\x01" + UVARINT_MAX,
        "CreateTopics", "topics[0].configs"),
}


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("case", sorted(CASES))
def test_claimed_counts_are_refused_before_allocation(broker, case):
    payload, api, field = CASES[case]
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(kwire.frame(payload))
        assert kwire.wait_closed(s, timeout=5), "connection was not closed"
    assert broker.alive()
    # Still serving, on a new connection.
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(kwire.api_versions_request(0, 21))
        corr, err, _ = kwire.parse_api_versions_v0(kwire.recv_frame(s))
    assert (corr, err) == (21, 0)
    log = broker.log_text()
    assert f"{api} v" in log and f"field {field}:" in log, log[-2000:]
    assert peak_rss_kib(broker.pid) < 200 * 1024
