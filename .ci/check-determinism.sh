#!/usr/bin/env bash
# Determinism check: library code must reach time, randomness, threads, files and sockets only through
# the I/O seam (Clock, Disk, Transport, an explicit seeded RNG), so that the same code runs unchanged
# and reproducibly inside the madsim simulator. This greps the library crates for the escapes listed in
# DESIGN.md §2 and fails with file:line for each one.
#
# Usage: .ci/check-determinism.sh [--self-test]
set -euo pipefail

cd "$(dirname "$0")/.."

# Library crates that must be deterministic.
DIRS=(core storage net server sim)

# Adapter files allowed to touch the real world (paths relative to the repo root; a trailing / means the
# whole directory):
ALLOWED=(
  core/src/clock.rs        # SystemClock: the real wall/monotonic clock behind the Clock trait
  storage/src/file_disk.rs # FileDisk: the real std/tokio fs + fsync behind the Disk trait
  net/src/tcp.rs           # TCP transport: the real sockets behind the Transport trait
  server/src/main.rs       # the binary's entry point: owns the runtime, reads the real environment
  server/src/cli/          # CLI tools (topics/produce/consume): binary-only code, never simulated
  server/src/signals.rs    # SIGTERM/SIGINT handling for the real process
  sim/src/lib.rs           # run_seed: measures a seed's wall time, outside the simulated world
)

# Forbidden patterns (extended regex) and why.
PATTERNS=(
  'std::fs([^A-Za-z0-9_]|$)'    # files outside the Disk trait escape the simulation
  'std::net([^A-Za-z0-9_]|$)'   # sockets outside the Transport trait escape the simulation
  'std::[{][^}]*(fs|net)([^A-Za-z0-9_]|$)' # grouped imports: use std::{fs, io}
  'thread::spawn'               # OS threads panic under madsim / break determinism
  'Instant::now'                # time must come from the Clock
  'SystemTime::now'             # time must come from the Clock
  'thread_rng|rand::rng[(]'     # unseeded RNG: use the RNG passed in
  'OsRng'                       # unseeded RNG: use the RNG passed in
  'sync::watch'                 # tokio's watch uses its internal RNG
)

is_allowed() {
  local f=$1 a
  for a in "${ALLOWED[@]}"; do
    if [[ $a == */ ]]; then
      [[ $f == "$a"* ]] && return 0
    else
      [[ $f == "$a" ]] && return 0
    fi
  done
  return 1
}

# Prints "file:line: text" for every violation in the given files; returns 1 if any.
scan() {
  local status=0 f
  for f in "$@"; do
    is_allowed "$f" && continue
    # Strip // comments (full-line and trailing), /* */ on one line, and lines inside /* ... */ blocks,
    # keeping line numbers; string literals are left alone (a pattern in a string is still suspicious).
    if ! PATS="$(IFS=$'\n'; echo "${PATTERNS[*]}")" awk -v file="$f" '
      BEGIN { n = split(ENVIRON["PATS"], P, "\n"); bad = 0; inblock = 0; pending = 0 }
      {
        line = $0
        if (inblock) { if (index(line, "*/")) { line = substr(line, index(line, "*/") + 2); inblock = 0 } else next }
        while (match(line, /\/\*/)) {
          rest = substr(line, RSTART + 2)
          if (index(rest, "*/")) { line = substr(line, 1, RSTART - 1) substr(rest, index(rest, "*/") + 2) }
          else { line = substr(line, 1, RSTART - 1); inblock = 1; break }
        }
        sub(/\/\/.*/, "", line)
        for (i = 1; i <= n; i++) {
          if (P[i] == "") continue
          if (line ~ P[i]) { printf "%s:%d: %s\n", file, NR, $0; bad = 1 }
        }
        # select! must be followed by `biased;` within the next few lines.
        if (pending > 0) {
          if (line ~ /biased[ \t]*;/) pending = 0
          else if (--pending == 0) { printf "%s:%d: select! without biased;\n", file, sel_line; bad = 1 }
        }
        if (line ~ /select![ \t]*[({[]/ || line ~ /select![ \t]*$/) {
          if (line ~ /biased[ \t]*;/) pending = 0
          else { pending = 4; sel_line = NR }
        }
      }
      END { if (pending > 0) { printf "%s:%d: select! without biased;\n", file, sel_line; bad = 1 }
            exit bad }
    ' "$f"; then
      status=1
    fi
  done
  return $status
}

self_test() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/lib/src"
  cat > "$tmp/lib/src/bad.rs" <<'RS'
use std::fs::File;
fn f() { let t = std::time::Instant::now(); }
async fn g() {
    tokio::select! {
        _ = a() => {}
    }
}
fn h() { let r = rand::thread_rng(); }
use std::{io, net::TcpStream};
RS
  cat > "$tmp/lib/src/good.rs" <<'RS'
//! Uses the Clock trait; never std::fs or Instant::now directly.
// std::net is mentioned only in this comment
/* SystemTime::now in a block comment */
async fn g() {
    tokio::select! {
        biased;
        _ = a() => {}
    }
}
RS
  local out
  if out=$(cd "$tmp" && scan lib/src/bad.rs); then
    echo "check-determinism self-test FAILED: violations in bad.rs were not reported" >&2
    return 1
  fi
  for want in "bad.rs:1:" "bad.rs:2:" "bad.rs:4: select! without biased;" "bad.rs:8:" "bad.rs:9:"; do
    if ! grep -qF "$want" <<<"$out"; then
      echo "check-determinism self-test FAILED: expected '$want' in:" >&2
      echo "$out" >&2
      return 1
    fi
  done
  if ! out=$(cd "$tmp" && scan lib/src/good.rs); then
    echo "check-determinism self-test FAILED: false positives in good.rs:" >&2
    echo "$out" >&2
    return 1
  fi
  echo "check-determinism self-test passed"
}

self_test || exit 1
[[ ${1:-} == --self-test ]] && exit 0

# Integration tests, benches and examples of these crates are not library code and may use the real world.
mapfile -t FILES < <(find "${DIRS[@]}" -name '*.rs' -type f \
  -not -path '*/tests/*' -not -path '*/benches/*' -not -path '*/examples/*' 2>/dev/null | sort)
if out=$(scan "${FILES[@]}"); then
  echo "check-determinism: ${#FILES[@]} files in ${DIRS[*]} clean"
else
  echo "check-determinism: nondeterministic I/O outside the adapter files (see .ci/check-determinism.sh):" >&2
  echo "$out" >&2
  exit 1
fi
