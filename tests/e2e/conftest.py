"""Fixtures that run the real `gregor` binary for end-to-end tests.

Every broker a test starts listens on a free loopback port with its own data
directory, logs to a file next to that directory, and is stopped by PID
(SIGTERM, then SIGKILL) when the test ends. When a test fails, the tail of
each broker log it started is attached to the failure report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GREGOR_BIN = Path(os.environ.get("GREGOR_BIN", REPO_ROOT / "target" / "release" / "gregor")).resolve()

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_BYTES = 20_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unique(prefix: str = "t") -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Broker:
    """One `gregor server` process on loopback, restartable on the same data dir."""

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, port: int | None = None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(overrides or {})
        self.proc: subprocess.Popen | None = None
        self.log_paths: list[Path] = []
        self.exit_codes: list[int] = []
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.log_paths[-1]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def argv(self) -> list[str]:
        args = [
            str(GREGOR_BIN),
            "server",
            "--override",
            f"listeners=PLAINTEXT://{self.host}:{self.port}",
            "--override",
            f"log.dirs={self.data_dir}",
        ]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        return args

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Start the process and wait until the port accepts; returns seconds taken."""
        if not GREGOR_BIN.exists():
            pytest.fail(f"gregor binary not found at {GREGOR_BIN} (build it: cargo build --release --bin gregor)")
        self.starts += 1
        log_path = self.workdir / f"broker-{self.starts}.log"
        self.log_paths.append(log_path)
        log = open(log_path, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.exit_codes.append(code)
                self.proc = None
                pytest.fail(f"gregor exited with code {code} during start-up:\n{self.log_text()[-LOG_TAIL_BYTES:]}")
            if port_accepts(self.host, self.port):
                return time.monotonic() - t0
            time.sleep(0.05)
        self.kill9()
        pytest.fail(f"gregor did not accept connections on {self.bootstrap} within {timeout}s:\n"
                    f"{self.log_text()[-LOG_TAIL_BYTES:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit; returns its code or None on timeout."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_codes.append(code)
        self.proc = None
        return code

    def kill9(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.wait_exit(STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the SIGTERM exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.wait_exit(1)
        os.kill(self.pid, signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            self.kill9()
        return code

    def restart(self, kill9: bool = True) -> float:
        """Stop (kill -9 or SIGTERM) and start again on the same port and data dir."""
        if kill9:
            self.kill9()
        else:
            self.stop()
        return self.start()

    def logs_tail(self) -> str:
        parts = []
        for p in self.log_paths:
            try:
                data = p.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
            except OSError as e:
                data = f"<cannot read: {e}>"
            parts.append(f"--- {p} ---\n{data}")
        return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "_gregor_brokers", []):
            rep.sections.append((f"gregor broker {b.bootstrap} log ({rep.when})", b.logs_tail()))


@pytest.fixture
def broker_factory(request, tmp_path):
    """Start brokers with custom overrides: `broker_factory(overrides={...})`."""
    brokers: list[Broker] = []
    request.node._gregor_brokers = brokers

    def make(overrides: dict[str, str] | None = None, start: bool = True) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", overrides)
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory, request) -> Broker:
    """A fresh single-node broker; `@pytest.mark.broker_overrides({...})` passes --override options."""
    marker = request.node.get_closest_marker("broker_overrides")
    overrides = marker.args[0] if marker else None
    return broker_factory(overrides)


def pytest_configure(config):
    config.addinivalue_line("markers", "broker_overrides(dict): --override key=value options for the broker fixture")
