#!/usr/bin/env bash
# Throughput benchmark of the real `gregor` binary with librdkafka's rdkafka_performance.
# Not part of CI. Usage: tests/bench/perf.sh   (env: COUNT=messages, default 10000000; SIZE=bytes, default 100;
#                                               GREGOR_BIN=path; KEEP_DATA=1 keeps the data dir;
#                                               NODES=3 for a 3-node cluster, default 1)
#
# 1. Builds rdkafka_performance once from the librdkafka source vendored in the crates.io `rdkafka-sys`
#    crate (fetched with `cargo fetch` through a throwaway project) and caches it in .build/.
# 2. Starts `gregor server` on a free loopback port with a temporary data dir, timing start-to-serving.
#    With NODES=3: three combined broker+controller nodes, formatted as one cluster, and the topic
#    has 3 replicas with min.insync.replicas=2 (acks=all then waits for every ISR member's fsync).
# 3. Produces COUNT messages to partition 0 (acks=all, linger.ms=5), then consumes them from the
#    beginning (catch-up read), reading each broker's peak RSS (VmHWM).
# 4. Prints msgs/s and MB/s for both and stops the brokers by PID.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
COUNT=${COUNT:-10000000}
SIZE=${SIZE:-100}
GREGOR_BIN=${GREGOR_BIN:-$ROOT/target/release/gregor}
BUILD_DIR=$ROOT/.build
PERF=$BUILD_DIR/rdkafka_performance
RDKAFKA_SYS_REQ=${RDKAFKA_SYS_REQ:-4}

log() { printf '==> %s\n' "$*" >&2; }

build_perf_tool() {
  [[ -x $PERF ]] && return 0
  log "building rdkafka_performance (once; cached in $PERF)"
  mkdir -p "$BUILD_DIR"
  local fetch_dir=$BUILD_DIR/rdkafka-sys-fetch
  mkdir -p "$fetch_dir/src"
  cat > "$fetch_dir/Cargo.toml" <<EOF
[package]
name = "rdkafka-sys-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
rdkafka-sys = "$RDKAFKA_SYS_REQ"

[workspace]
EOF
  echo 'fn main() {}' > "$fetch_dir/src/main.rs"
  (cd "$fetch_dir" && cargo fetch -q)
  local cargo_home=${CARGO_HOME:-$HOME/.cargo}
  local src
  src=$(ls -d "$cargo_home"/registry/src/*/rdkafka-sys-*/librdkafka 2>/dev/null | sort -V | tail -1)
  [[ -n $src && -f $src/configure ]] || { echo "librdkafka source not found under $cargo_home/registry/src" >&2; exit 1; }
  log "librdkafka source: $src"
  # Build in a private copy: the registry source must stay pristine.
  local work=$BUILD_DIR/librdkafka
  rm -rf "$work"
  cp -a "$src" "$work"
  (
    cd "$work"
    # No TLS/SASL/HTTP (loopback PLAINTEXT only); zlib, builtin lz4 and snappy stay; zstd if libzstd-dev exists.
    ./configure --no-download --disable-ssl --disable-gssapi --disable-curl >../librdkafka-configure.out 2>&1 \
      || { tail -30 ../librdkafka-configure.out >&2; exit 1; }
    make -j"$(nproc)" -C src >make-src.log 2>&1 || { tail -30 make-src.log >&2; exit 1; }
    make -C examples rdkafka_performance >make-examples.log 2>&1 || { tail -30 make-examples.log >&2; exit 1; }
  )
  cp "$work/examples/rdkafka_performance" "$PERF"
  log "built $PERF"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

now_ms() { date +%s%3N; }

build_perf_tool
if [[ ${BUILD_ONLY:-0} == 1 ]]; then exit 0; fi
[[ -x $GREGOR_BIN ]] || { echo "no gregor binary at $GREGOR_BIN (cargo build --release --bin gregor)" >&2; exit 1; }

NODES=${NODES:-1}
[[ $NODES == 1 || $NODES == 3 ]] || { echo "NODES must be 1 or 3" >&2; exit 1; }
DATA=$(mktemp -d /tmp/gregor-perf.XXXXXX)
TOPIC=perf-$(date +%s)
PIDS=()
PORTS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  # Data and broker logs are kept only when something went wrong (or KEEP_DATA=1).
  if [[ ${SUCCESS:-0} == 1 && ${KEEP_DATA:-0} != 1 ]]; then rm -rf "$DATA"; else echo "data and broker logs: $DATA" >&2; fi
}
trap cleanup EXIT

t0=$(now_ms)
if [[ $NODES == 1 ]]; then
  PORTS=("$(free_port)")
  log "starting gregor on 127.0.0.1:${PORTS[0]} (data $DATA/node1)"
  "$GREGOR_BIN" server --override "listeners=PLAINTEXT://127.0.0.1:${PORTS[0]}" --override "log.dirs=$DATA/node1" >"$DATA/node1.out" 2>&1 &
  PIDS+=($!)
else
  CPORTS=()
  for _ in 1 2 3; do PORTS+=("$(free_port)"); CPORTS+=("$(free_port)"); done
  VOTERS="1@127.0.0.1:${CPORTS[0]},2@127.0.0.1:${CPORTS[1]},3@127.0.0.1:${CPORTS[2]}"
  CLUSTER_ID=$("$GREGOR_BIN" storage random-uuid)
  for i in 1 2 3; do
    cat >"$DATA/node$i.properties" <<EOF
process.roles=broker,controller
node.id=$i
listeners=PLAINTEXT://127.0.0.1:${PORTS[$((i - 1))]},CONTROLLER://127.0.0.1:${CPORTS[$((i - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORTS[$((i - 1))]}
controller.listener.names=CONTROLLER
controller.quorum.voters=$VOTERS
log.dirs=$DATA/node$i
EOF
    "$GREGOR_BIN" storage format --cluster-id "$CLUSTER_ID" --config "$DATA/node$i.properties" >/dev/null
  done
  log "starting a 3-node cluster on 127.0.0.1 ports ${PORTS[*]} (data $DATA)"
  for i in 1 2 3; do
    "$GREGOR_BIN" server --config "$DATA/node$i.properties" >"$DATA/node$i.out" 2>&1 &
    PIDS+=($!)
  done
fi
for i in "${!PIDS[@]}"; do
  for _ in $(seq 1 200); do
    port_open "${PORTS[$i]}" && break
    kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "gregor node $((i + 1)) exited during start-up:" >&2; tail -20 "$DATA/node$((i + 1)).out" >&2; exit 1; }
    sleep 0.05
  done
  port_open "${PORTS[$i]}" || { echo "gregor node $((i + 1)) did not listen within 10s" >&2; exit 1; }
done
START_MS=$(( $(now_ms) - t0 ))
BOOT=$(printf '127.0.0.1:%s,' "${PORTS[@]}"); BOOT=${BOOT%,}

if [[ $NODES == 1 ]]; then
  "$GREGOR_BIN" topics create "$TOPIC" --partitions 1 --bootstrap-server "$BOOT" >/dev/null
else
  # Until every broker has registered, a replication factor of 3 is refused: retry for a while.
  created=0
  for _ in $(seq 1 60); do
    if "$GREGOR_BIN" topics create "$TOPIC" --partitions 1 --replication-factor 3 --config min.insync.replicas=2 \
        --bootstrap-server "$BOOT" >/dev/null 2>"$DATA/create.err"; then created=1; break; fi
    sleep 0.5
  done
  [[ $created == 1 ]] || { echo "could not create the RF=3 topic:" >&2; cat "$DATA/create.err" >&2; exit 1; }
  for _ in $(seq 1 60); do
    "$GREGOR_BIN" topics describe "$TOPIC" --bootstrap-server "$BOOT" 2>/dev/null | grep -qE 'Isr: [0-9]+,[0-9]+,[0-9]+' && break
    sleep 0.5
  done
fi

run_timed() {  # prints elapsed ms; output of the tool goes to $1
  local out=$1; shift
  local s e
  s=$(now_ms)
  "$PERF" "$@" >"$out" 2>&1 || { echo "rdkafka_performance failed: $*" >&2; tail -20 "$out" >&2; exit 1; }
  e=$(now_ms)
  echo $(( e - s ))
}

log "producing $COUNT x $SIZE B (acks=all, linger.ms=5)"
PROD_MS=$(run_timed "$DATA/produce.out" -P -t "$TOPIC" -p 0 -b "$BOOT" -s "$SIZE" -c "$COUNT" -a -1 \
  -X linger.ms=5 -q)
log "consuming $COUNT from the beginning"
CONS_MS=$(run_timed "$DATA/consume.out" -C -t "$TOPIC" -p 0 -b "$BOOT" -o beginning -c "$COUNT" -q)

RSS_MB=()
for pid in "${PIDS[@]}"; do RSS_MB+=("$(( $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") / 1024 ))"); done
DISK=$(du -sh "$DATA" | cut -f1)

rate() { awk -v n="$COUNT" -v s="$SIZE" -v ms="$1" 'BEGIN {
  sec = ms / 1000.0; if (sec <= 0) sec = 0.001
  printf "%.0f msgs/s  %.1f MB/s  (%.2f s)", n / sec, n * s / sec / 1e6, sec }'; }

echo
if [[ $NODES == 1 ]]; then SHAPE="1 broker"; else SHAPE="3 brokers, replication factor 3, min.insync.replicas=2"; fi
echo "gregor perf: $COUNT messages x $SIZE bytes, 1 partition, $SHAPE, loopback, $(nproc) cores"
echo "  start-to-serving : ${START_MS} ms"
echo "  produce (acks=all): $(rate "$PROD_MS")   [wall time of the whole client run]"
echo "  consume (catch-up): $(rate "$CONS_MS")   [wall time incl. connect + offset lookup]"
echo "  broker peak RSS   : $(printf '%s MB ' "${RSS_MB[@]}")(VmHWM, per broker)"
echo "  data on disk      : $DISK"
echo "  rdkafka_performance summaries:"
grep -hE 'msgs/s|Mb/s|MB/s' "$DATA/produce.out" "$DATA/consume.out" | tail -4 | sed 's/^/    /' || true
SUCCESS=1
