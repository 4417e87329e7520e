"""kafkajs 2.2.4 (npm; pure JavaScript): `js/kafkajs_check.js` runs admin (describe cluster,
create/list/delete topics, configs, partitions, delete records, offsets, groups), an idempotent
producer, gzip and acks=0 produce, a group consumer that resumes after its commits (and at the log
start when its commit fell below it), two consumers splitting a 6-partition topic, a takeover when
one leaves and a new member resuming after the commits. The script exits non-zero on the first
mismatch; its output is attached.

`tests/run-all.sh` installs the script's dependencies (`npm ci` in tests/e2e/js)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "kafkajs_check.js"
# The script's own watchdog (TOTAL_TIMEOUT_MS) fires first; this is the backstop.
SCRIPT_TIMEOUT_S = 110


def node() -> str:
    exe = shutil.which("node") or shutil.which("nodejs")
    if exe is None:
        pytest.fail("node is not installed (tests/run-all.sh installs it: apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "kafkajs" / "package.json").exists():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {JS_DIR} (tests/run-all.sh does)")
    return exe


@pytest.mark.timeout(SCRIPT_TIMEOUT_S + 10)
@pytest.mark.broker_overrides({"group.initial.rebalance.delay.ms": "0"})
def test_kafkajs_admin_producer_and_consumer_group(broker):
    env = dict(os.environ, TOTAL_TIMEOUT_MS=str((SCRIPT_TIMEOUT_S - 10) * 1000), KAFKAJS_NO_PARTITIONER_WARNING="1")
    try:
        r = subprocess.run([node(), str(SCRIPT), broker.bootstrap], cwd=JS_DIR, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        pytest.fail(f"kafkajs_check.js did not exit within {SCRIPT_TIMEOUT_S}s:\n{out}")
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"kafkajs_check.js exited {r.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    assert "OK: every kafkajs check passed" in out, out
