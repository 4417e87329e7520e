#!/usr/bin/env bash
# Throughput benchmark of the real `gregor` binary with librdkafka's rdkafka_performance.
# Not part of CI. Usage: tests/bench/perf.sh   (env: COUNT=messages, default 10000000; SIZE=bytes, default 100;
#                                               GREGOR_BIN=path; KEEP_DATA=1 keeps the data dir)
#
# 1. Builds rdkafka_performance once from the librdkafka source vendored in the crates.io `rdkafka-sys`
#    crate (fetched with `cargo fetch` through a throwaway project) and caches it in .build/.
# 2. Starts `gregor server` on a free loopback port with a temporary data dir, timing start-to-serving.
# 3. Produces COUNT messages to partition 0 (acks=all, linger.ms=5), then consumes them from the
#    beginning (catch-up read), sampling the broker's peak RSS (VmHWM).
# 4. Prints msgs/s and MB/s for both and stops the broker by PID.
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

PORT=$(free_port)
DATA=$(mktemp -d /tmp/gregor-perf.XXXXXX)
BROKER_LOG=$DATA.log
BOOT=127.0.0.1:$PORT
TOPIC=perf-$(date +%s)
BROKER_PID=""
SAMPLER_PID=""

cleanup() {
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$BROKER_PID" 2>/dev/null && kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$DATA"
  # The broker log is kept only when something went wrong (or KEEP_DATA=1).
  if [[ ${SUCCESS:-0} == 1 && ${KEEP_DATA:-0} != 1 ]]; then rm -f "$BROKER_LOG"; else echo "broker log: $BROKER_LOG" >&2; fi
}
trap cleanup EXIT

log "starting gregor on $BOOT (data $DATA, log $BROKER_LOG)"
t0=$(now_ms)
"$GREGOR_BIN" server --override "listeners=PLAINTEXT://$BOOT" --override "log.dirs=$DATA" >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 200); do
  port_open "$PORT" && break
  kill -0 "$BROKER_PID" 2>/dev/null || { echo "gregor exited during start-up:" >&2; tail -20 "$BROKER_LOG" >&2; exit 1; }
  sleep 0.05
done
port_open "$PORT" || { echo "gregor did not listen within 10s" >&2; exit 1; }
START_MS=$(( $(now_ms) - t0 ))

# Peak RSS: VmHWM is the high-water mark, read it at the end; also sample VmRSS while running.
RSS_SAMPLES=$DATA.rss
( while kill -0 "$BROKER_PID" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$BROKER_PID/status" 2>/dev/null || true; sleep 0.5
  done ) >"$RSS_SAMPLES" &
SAMPLER_PID=$!

"$GREGOR_BIN" topics create "$TOPIC" --partitions 1 --bootstrap-server "$BOOT" >/dev/null

run_timed() {  # prints elapsed ms; output of the tool goes to $1
  local out=$1; shift
  local s e
  s=$(now_ms)
  "$PERF" "$@" >"$out" 2>&1 || { echo "rdkafka_performance failed: $*" >&2; tail -20 "$out" >&2; exit 1; }
  e=$(now_ms)
  echo $(( e - s ))
}

log "producing $COUNT x $SIZE B (acks=all, linger.ms=5)"
PROD_MS=$(run_timed "$DATA.produce.out" -P -t "$TOPIC" -p 0 -b "$BOOT" -s "$SIZE" -c "$COUNT" -a -1 \
  -X linger.ms=5 -q)
log "consuming $COUNT from the beginning"
CONS_MS=$(run_timed "$DATA.consume.out" -C -t "$TOPIC" -p 0 -b "$BOOT" -o beginning -c "$COUNT" -q)

HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$BROKER_PID/status")
DISK=$(du -sh "$DATA" | cut -f1)

rate() { awk -v n="$COUNT" -v s="$SIZE" -v ms="$1" 'BEGIN {
  sec = ms / 1000.0; if (sec <= 0) sec = 0.001
  printf "%.0f msgs/s  %.1f MB/s  (%.2f s)", n / sec, n * s / sec / 1e6, sec }'; }

echo
echo "gregor perf: $COUNT messages x $SIZE bytes, 1 partition, loopback, $(nproc) cores"
echo "  start-to-serving : ${START_MS} ms"
echo "  produce (acks=all): $(rate "$PROD_MS")   [wall time of the whole client run]"
echo "  consume (catch-up): $(rate "$CONS_MS")   [wall time incl. connect + offset lookup]"
echo "  broker peak RSS   : $(( HWM_KB / 1024 )) MB (VmHWM)"
echo "  data on disk      : $DISK"
echo "  rdkafka_performance summaries:"
grep -hE 'msgs/s|Mb/s|MB/s' "$DATA.produce.out" "$DATA.consume.out" | tail -4 | sed 's/^/    /' || true
rm -f "$RSS_SAMPLES" "$DATA.produce.out" "$DATA.consume.out"
SUCCESS=1
