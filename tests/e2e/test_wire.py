"""Hand-built frames: bad input closes only the offending connection; KIP-511; Fetch long-poll timing."""

from __future__ import annotations

import struct
import time

import pytest

import ck
import kwire
from conftest import unique

UNSUPPORTED_VERSION = 35
OFFSET_OUT_OF_RANGE = 1


def api_versions_ok(bootstrap: str, corr: int = 7) -> dict[int, tuple[int, int]]:
    with kwire.connect(bootstrap) as s:
        s.sendall(kwire.api_versions_request(0, corr))
        got_corr, err, keys = kwire.parse_api_versions_v0(kwire.recv_frame(s))
    assert (got_corr, err) == (corr, 0)
    return keys


def test_api_versions_v0_advertises_implemented_apis(broker):
    keys = api_versions_ok(broker.bootstrap)
    expected = {0: (3, 11), 1: (4, 16), 2: (1, 9), 3: (0, 12), 18: (0, 4), 19: None, 20: None, 32: None,
                33: None, 44: None, 60: None, 21: None, 23: None, 37: None}
    for k, rng in expected.items():
        assert k in keys, f"api key {k} not advertised: {sorted(keys)}"
        lo, hi = keys[k]
        assert lo <= hi
        if rng:
            assert lo <= rng[0] and hi >= rng[1], f"api {k}: advertised {keys[k]}, spec needs {rng}"


@pytest.mark.parametrize("version", [5, 99, 32767])
def test_unknown_api_versions_version_gets_v0_unsupported_version(broker, version):
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(kwire.api_versions_request(version, 4242))
        corr, err, keys = kwire.parse_api_versions_v0(kwire.recv_frame(s))
        assert corr == 4242
        assert err == UNSUPPORTED_VERSION
        # KIP-511: the answer still tells the client which ApiVersions versions to use.
        assert 18 in keys and keys[18][0] == 0 and keys[18][1] >= 3
        # The connection stays usable for a supported version.
        s.sendall(kwire.api_versions_request(0, 4243))
        corr, err, _ = kwire.parse_api_versions_v0(kwire.recv_frame(s))
        assert (corr, err) == (4243, 0)


@pytest.mark.broker_overrides({"socket.request.max.bytes": "1048576"})
def test_oversized_frame_closes_connection_only(broker):
    bystander = kwire.connect(broker.bootstrap)
    try:
        with kwire.connect(broker.bootstrap) as s:
            # Announce 1 MiB + 1 bytes and send only a header's worth: the broker must not wait for
            # (or allocate) the body; it closes the connection.
            s.sendall(struct.pack(">i", 1048577) + kwire.request_header_v1(18, 0, 1))
            assert kwire.wait_closed(s, timeout=5), "connection with oversized frame was not closed"
        with kwire.connect(broker.bootstrap) as s:
            s.sendall(struct.pack(">i", 2_000_000_000))
            assert kwire.wait_closed(s, timeout=5), "connection announcing a 2 GB frame was not closed"
        # Others are still served: an existing connection and a new one.
        bystander.sendall(kwire.api_versions_request(0, 11))
        corr, err, _ = kwire.parse_api_versions_v0(kwire.recv_frame(bystander))
        assert (corr, err) == (11, 0)
        api_versions_ok(broker.bootstrap)
        assert broker.alive()
    finally:
        bystander.close()


def test_frame_at_limit_is_accepted_below_it(broker):
    # A normal request well under the default limit works (guards against an off-by-something limit).
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap, **{"message.max.bytes": 2_000_000}), name,
                   [{"value": b"z" * 900_000}])


@pytest.mark.parametrize("payload", [
    b"\xde\xad\xbe\xef" * 4,                                 # unknown api key
    struct.pack(">hhi", 18, 0, 1) + struct.pack(">h", 100),  # client id longer than the frame
    b"\x00",                                                 # frame shorter than a header
    struct.pack(">hhi", 0, 9, 5) + b"\xff" * 40,             # Produce v9 with a garbage body
    struct.pack(">hhi", 3, 12, 6) + b"\x00\x01",             # Metadata v12, truncated body
], ids=["unknown-api", "bad-client-id", "short-header", "garbage-produce", "truncated-metadata"])
def test_garbage_frame_closes_only_that_connection(broker, payload):
    bystander = kwire.connect(broker.bootstrap)
    try:
        with kwire.connect(broker.bootstrap) as s:
            s.sendall(kwire.frame(payload))
            assert kwire.wait_closed(s, timeout=5), "connection was not closed after a malformed frame"
        bystander.sendall(kwire.api_versions_request(0, 12))
        corr, err, _ = kwire.parse_api_versions_v0(kwire.recv_frame(bystander))
        assert (corr, err) == (12, 0)
        assert broker.alive()
        md = ck.admin(broker.bootstrap).list_topics(timeout=10)
        assert set(md.brokers) == {1}
    finally:
        bystander.close()


def test_fetch_at_log_end_waits_max_wait_ms(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"a"}, {"value": b"b"}])
    with kwire.connect(broker.bootstrap, timeout=10) as s:
        for corr, wait_ms in [(21, 1000), (22, 300)]:
            t0 = time.monotonic()
            s.sendall(kwire.fetch_v4_request(corr, name, 0, offset=2, max_wait_ms=wait_ms))
            got_corr, parts = kwire.parse_fetch_v4(kwire.recv_frame(s))
            elapsed = time.monotonic() - t0
            assert got_corr == corr
            assert [(p["topic"], p["partition"], p["error_code"], p["high_watermark"], p["records_len"])
                    for p in parts] == [(name, 0, 0, 2, 0)]
            assert wait_ms / 1000 * 0.9 <= elapsed <= wait_ms / 1000 + 1.5, \
                f"empty fetch with max_wait_ms={wait_ms} answered after {elapsed:.3f}s"
        # With data available it answers at once.
        t0 = time.monotonic()
        s.sendall(kwire.fetch_v4_request(23, name, 0, offset=0, max_wait_ms=5000))
        _, parts = kwire.parse_fetch_v4(kwire.recv_frame(s))
        assert time.monotonic() - t0 < 1.0
        assert parts[0]["error_code"] == 0 and parts[0]["records_len"] > 0


def test_fetch_past_log_end_is_offset_out_of_range(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)
    ck.produce_all(ck.producer(broker.bootstrap), name, [{"value": b"a"}])
    with kwire.connect(broker.bootstrap) as s:
        t0 = time.monotonic()
        s.sendall(kwire.fetch_v4_request(31, name, 0, offset=5, max_wait_ms=3000))
        _, parts = kwire.parse_fetch_v4(kwire.recv_frame(s))
        assert parts[0]["error_code"] == OFFSET_OUT_OF_RANGE
        assert time.monotonic() - t0 < 2.0, "an error answer must not wait for max_wait_ms"


def test_many_connections_and_half_frames_do_not_hurt(broker):
    # 200 connections: some close at once, some after half a frame, some after a complete request.
    for i in range(200):
        with kwire.connect(broker.bootstrap) as s:
            if i % 3 == 1:
                s.sendall(kwire.api_versions_request(0, i)[:7])
            elif i % 3 == 2:
                s.sendall(kwire.api_versions_request(0, i))
    # Pipelined requests on one connection are answered in order.
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(b"".join(kwire.api_versions_request(0, 1000 + i) for i in range(20)))
        corrs = [kwire.parse_api_versions_v0(kwire.recv_frame(s))[0] for _ in range(20)]
        assert corrs == [1000 + i for i in range(20)]
    assert broker.alive()
    api_versions_ok(broker.bootstrap)
