"""A loopback TCP proxy between Kafka clients and one broker that loses answers.

It reads the Kafka frames in both directions, remembers the API key of every request by its
correlation id, and for a chosen API drops some answers after the broker has acted on the
request: the connection is cut instead of the answer being forwarded. The client then sees a
broken connection with requests in flight and must retry them, which is exactly when a broker
that does not deduplicate writes a record twice.

Which answers are lost is drawn from a seeded RNG, so a failure reproduces with the same seed
(up to the clients' own timing). Every connection and thread ends when `close()` is called.
"""

from __future__ import annotations

import random
import socket
import struct
import threading


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes | None:
    """One whole Kafka frame (size prefix included), or None when the peer closed."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    if size < 0 or size > 200 * 1024 * 1024:
        return None
    body = _recv_exact(sock, size)
    return None if body is None else head + body


class LossyProxy:
    """Listens on 127.0.0.1 and forwards to `upstream` ("host:port")."""

    def __init__(self, upstream: str, drop_api_key: int, drop_probability: float, drops_max: int, seed: int):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.drop_api_key = drop_api_key
        self.drop_probability = drop_probability
        self.drops_max = drops_max
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.dropped = 0
        self.forwarded = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            in_flight: dict[int, int] = {}
            self._spawn(self._requests, client, server, in_flight)
            self._spawn(self._responses, server, client, in_flight)

    @staticmethod
    def _cut(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _requests(self, client: socket.socket, server: socket.socket, in_flight: dict[int, int]) -> None:
        try:
            while True:
                frame = _recv_frame(client)
                if frame is None or len(frame) < 12:
                    break
                api_key, _version, correlation_id = struct.unpack(">hhi", frame[4:12])
                with self.lock:
                    in_flight[correlation_id] = api_key
                server.sendall(frame)
        except OSError:
            pass
        self._cut(client, server)

    def _responses(self, server: socket.socket, client: socket.socket, in_flight: dict[int, int]) -> None:
        try:
            while True:
                frame = _recv_frame(server)
                if frame is None or len(frame) < 8:
                    break
                (correlation_id,) = struct.unpack(">i", frame[4:8])
                with self.lock:
                    api_key = in_flight.pop(correlation_id, None)
                    drop = (api_key == self.drop_api_key and self.dropped < self.drops_max
                            and self.rng.random() < self.drop_probability)
                    if drop:
                        self.dropped += 1
                    else:
                        self.forwarded += 1
                if drop:
                    break  # the broker acted on the request; the client never hears of it
                client.sendall(frame)
        except OSError:
            pass
        self._cut(client, server)

    def close(self) -> None:
        self.closed.set()
        self._cut(self.listener)
        with self.lock:
            socks = list(self.sockets)
        self._cut(*socks)
        for t in self.threads:
            t.join(timeout=5)
