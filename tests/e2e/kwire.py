"""Hand-built Kafka wire frames (struct only), for tests that must not trust any client library."""

from __future__ import annotations

import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_VERSIONS = 18


def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request_header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str = "e2e-raw") -> bytes:
    return struct.pack(">hhi", api_key, api_version, correlation_id) + string(client_id)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect(bootstrap: str, timeout: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 0 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(s, size)


def wait_closed(s: socket.socket, timeout: float = 5.0) -> bool:
    """True if the peer closes (EOF or reset) within `timeout` without sending anything."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(4096)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
        # Unexpected bytes: keep reading until close or timeout, but report them.
        raise AssertionError(f"broker sent {data[:64]!r} instead of closing the connection")
    return False


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes_(self) -> bytes | None:
        n = self.take(">i")
        if n < 0:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b


def compact_string(s: str) -> bytes:
    b = s.encode()
    assert len(b) + 1 < 128
    return bytes([len(b) + 1]) + b


def api_versions_request(api_version: int, correlation_id: int) -> bytes:
    """ApiVersions request. v0-v2: header v1, empty body. v3 and above (including versions the broker
    does not know, as a newer client would send): header v2 (+ empty tagged fields) and the v3 body
    (client_software_name, client_software_version, tagged fields). KIP-511: for an unknown version
    the broker answers in v0 format with UNSUPPORTED_VERSION and its supported ApiVersions range."""
    if api_version <= 2:
        return frame(request_header_v1(API_VERSIONS, api_version, correlation_id))
    header = request_header_v1(API_VERSIONS, api_version, correlation_id) + b"\x00"
    body = compact_string("gregor-e2e") + compact_string("1.0") + b"\x00"
    return frame(header + body)


def parse_api_versions_v0(resp: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """Returns (correlation_id, error_code, {api_key: (min, max)})."""
    r = Reader(resp)
    corr = r.take(">i")
    err = r.take(">h")
    n = r.take(">i")
    keys = {}
    for _ in range(max(n, 0)):
        k, lo, hi = r.take(">hhh")
        keys[k] = (lo, hi)
    return corr, err, keys


def fetch_v4_request(correlation_id: int, topic: str, partition: int, offset: int,
                     max_wait_ms: int, min_bytes: int = 1, max_bytes: int = 1 << 20) -> bytes:
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
    body += struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    return frame(request_header_v1(API_FETCH, 4, correlation_id) + body)


def parse_fetch_v4(resp: bytes) -> tuple[int, list[dict]]:
    """Returns (correlation_id, [{topic, partition, error_code, high_watermark, records_len}])."""
    r = Reader(resp)
    corr = r.take(">i")
    r.take(">i")  # throttle_time_ms
    out = []
    for _ in range(r.take(">i")):
        topic = r.string()
        for _ in range(r.take(">i")):
            part, err, hw, lso = r.take(">ihqq")
            n_aborted = r.take(">i")
            for _ in range(max(n_aborted, 0)):
                r.take(">qq")
            records = r.bytes_()
            out.append({"topic": topic, "partition": part, "error_code": err,
                        "high_watermark": hw, "records_len": len(records or b"")})
    return corr, out
