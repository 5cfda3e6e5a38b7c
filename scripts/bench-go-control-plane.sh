#!/usr/bin/env bash
# Benchmarks Bosun's push path against go-control-plane (DESIGN.md §9) on this machine.
#
# Usage: scripts/bench-go-control-plane.sh [bosun-bench arguments...]
#   e.g. scripts/bench-go-control-plane.sh --clients 1000
#        RUNS=3 scripts/bench-go-control-plane.sh --clients 1000 --clusters 1000 --change cluster --delta
#
# It builds the reference server bench/go-control-plane (our own program on go-control-plane's
# SnapshotCache) into target/gcp-bench-server and bosun-bench in release, then runs the same
# bosun-bench arguments against Bosun's built-in server and against the reference server,
# alternating, RUNS times (default 1), and prints every report.
#
# Environment:
#   RUNS               runs of each server (alternating), default 1
#   GCP_BENCH_SERVER   a reference server already built: skips Go
#   GO                 a Go command (1.23 or newer) to build with
#   BOSUN_CACHE_DIR    where a downloaded Go toolchain is kept, default ~/.cache/bosun
#
# Go: go-control-plane v0.14 needs Go 1.23. The script uses $GO, `go`, or a Debian
# /usr/lib/go-1.NN/bin/go when one of them is new enough; otherwise it downloads Go 1.27.3 as the
# module golang.org/toolchain from the Go module proxy (the way the go command switches
# toolchains) into the cache. Building the server also needs the Go module proxy (for
# go-control-plane and its dependencies). Not part of .ci/run: timing is no test, and CI must not
# need the proxy; `cargo test -p bosun-bench` checks `bosun-bench --server-cmd` without Go.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${BOSUN_CACHE_DIR:-$HOME/.cache/bosun}
target=${CARGO_TARGET_DIR:-$root/target}
toolchain_version=1.27.3
export GOTOOLCHAIN=local

# Prints the minor version of the Go command $1 (e.g. 23 for go1.23.5), or nothing.
go_minor() {
  "$1" version 2>/dev/null | sed -n 's/^go version go1\.\([0-9]*\).*/\1/p'
}

find_go() {
  local candidate minor
  for candidate in "${GO:-}" go /usr/lib/go-1.*/bin/go "$cache/go-toolchain/go$toolchain_version/bin/go"; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
    minor=$(go_minor "$candidate")
    if [ -n "$minor" ] && [ "$minor" -ge 23 ]; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

download_go() {
  local bootstrap module dir
  bootstrap=$(command -v go) || { echo "no Go command to download Go $toolchain_version with" >&2; return 1; }
  module="golang.org/toolchain@v0.0.1-go$toolchain_version.linux-amd64"
  echo "== downloading Go $toolchain_version ($module) into $cache/go-toolchain" >&2
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-modcacherw GOMODCACHE="$cache/go-toolchain/modcache" \
    "$bootstrap" mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "downloading $module failed" >&2; return 1; }
  rm -rf "$cache/go-toolchain/go$toolchain_version"
  cp -r "$dir" "$cache/go-toolchain/go$toolchain_version"
  # Module zips keep no file modes: the go command marks the toolchain's programs itself.
  chmod +x "$cache/go-toolchain/go$toolchain_version"/bin/* "$cache/go-toolchain/go$toolchain_version"/pkg/tool/*/*
  rm -rf "$cache/go-toolchain/modcache"
  echo "$cache/go-toolchain/go$toolchain_version/bin/go"
}

server=${GCP_BENCH_SERVER:-}
if [ -z "$server" ]; then
  go_cmd=$(find_go || download_go)
  echo "== building bench/go-control-plane with $("$go_cmd" version)"
  src="$target/gcp-bench-server-src"
  rm -rf "$src" && mkdir -p "$src"
  cp bench/go-control-plane/main.go bench/go-control-plane/go.mod "$src/"
  [ -f bench/go-control-plane/go.sum ] && cp bench/go-control-plane/go.sum "$src/"
  if ! (cd "$src" && "$go_cmd" mod tidy && "$go_cmd" build -o "$target/gcp-bench-server" .); then
    echo "building the reference server failed: it needs the Go module proxy for go-control-plane;" \
      "or set GCP_BENCH_SERVER to one built elsewhere" >&2
    exit 1
  fi
  server="$target/gcp-bench-server"
fi
[ -x "$server" ] || { echo "GCP_BENCH_SERVER=$server is not an executable" >&2; exit 1; }

echo "== building bosun-bench (release)"
cargo build --release --quiet -p bosun-bench
bench="$target/release/bosun-bench"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for run in $(seq 1 "${RUNS:-1}"); do
  for name in Bosun go-control-plane; do
    echo "== run $run: $name" | tee -a "$log"
    server_args=()
    [ "$name" = Bosun ] || server_args=(--server-cmd "$server")
    # A failed run (a client that did not converge) is reported, and the others still run.
    { "$bench" "${server_args[@]}" "$@" || echo "  (bosun-bench exited with status $?)"; } | tee -a "$log"
  done
done

# Medians over the runs of each server, and Bosun's figure over go-control-plane's.
python3 - "$log" <<'PY'
import re, statistics, sys
patterns = {
    "convergence p50 ms": r"convergence +p50 ([\d.]+) ms",
    "convergence p99 ms": r"convergence +p50 [\d.]+ ms +p99 ([\d.]+) ms",
    "fan-out p50 ms": r"update fan-out +p50 ([\d.]+) ms",
    "fan-out p99 ms": r"update fan-out +p50 [\d.]+ ms +p99 ([\d.]+) ms",
    "update bytes per client": r"update per client +p50 (\d+) bytes",
    "RSS KiB per client": r"server RSS .* ([\d.]+) KiB per client",
    "CPU convergence s": r"server CPU +convergence ([\d.]+) s",
    "CPU fan-out s": r"server CPU .*fan-out ([\d.]+) s",
}
values = {}
server = None
for line in open(sys.argv[1]):
    m = re.match(r"== run \d+: (.+)", line)
    if m:
        server = m.group(1).strip()
        continue
    for name, pattern in patterns.items():
        m = re.search(pattern, line)
        if m and server:
            values.setdefault((server, name), []).append(float(m.group(1)))
print("== medians (Bosun / go-control-plane = ratio)")
for name in patterns:
    b, g = values.get(("Bosun", name)), values.get(("go-control-plane", name))
    if not b or not g:
        continue
    mb, mg = statistics.median(b), statistics.median(g)
    ratio = f"{mb / mg:.2f}" if mg else "-"
    print(f"  {name:<24} {mb:>10.6g} / {mg:>10.6g} = {ratio}  (runs: {len(b)}, {len(g)})")
PY
