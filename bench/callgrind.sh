#!/usr/bin/env bash
# Instructions per request: the gateway runs under valgrind's callgrind against the mock, and the
# instructions it executes while wrk sends it requests are divided by the requests answered.
# Unlike req/s on this shared 2-core machine (±15% from run to run), the count repeats within
# about 1% for one binary, so it tells a small change in CPU per request from noise. It counts
# user space only (not the kernel's socket work) and, under valgrind, runs at a few hundred
# requests a second, where the request log writes small batches. See docs/benchmarks.md.
#
#   bench/callgrind.sh [BINARY ...]   (default: target/release/switchyard; several are compared)
#
# Environment: BODY=small|prompt32k (default small), SECONDS_MEASURED (default 10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y valgrind wrk)" >&2; exit 1; }
done
binaries=("$@")
((${#binaries[@]})) || binaries=("$ROOT/target/release/switchyard")
work="$(mktemp -d -t switchyard-callgrind.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done; echo "no answer from $1" >&2; exit 1; }

mock_port="$(free_port)"
"$ROOT/target/release/switchyard-mock" --listen "127.0.0.1:$mock_port" >"$work/mock.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$mock_port/v1/models"

# The harness's own config and request bodies, so both measure the same gateway.
read -r tenant_key < <(cd "$BENCH" && python3 - "$work" "$mock_port" "${BODY:-small}" <<'EOF'
import pathlib, sys
import harness
work, mock_port, body = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
(work / "body.json").write_bytes(harness.chat_body(harness.MODEL, prompt_bytes=32768 if body == "prompt32k" else 0))
(work / "port").write_text(str(harness.free_port()))
port = int((work / "port").read_text())
(work / "gateway.toml").write_text(harness.switchyard_config(port, mock_port, work, f"sqlite://{work}/requests.db", limits=False))
print(harness.TENANT_KEY)
EOF
)
port="$(cat "$work/port")"
url="http://127.0.0.1:$port/v1/chat/completions"
load() {  # seconds -> requests answered
  BENCH_BODY="$work/body.json" BENCH_HEADERS="Authorization: Bearer $tenant_key" \
    wrk -t1 -c4 -d"$1s" -s "$BENCH/lua/chat.lua" "$url" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p'
}

for bin in "${binaries[@]}"; do
  rm -f "$work"/requests.db* "$work"/cg.out*
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$bin" serve --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
  gw=$!
  pids+=("$gw")
  wait_http "http://127.0.0.1:$port/healthz"
  load 3 >/dev/null                 # warm-up: connections, pools, caches
  sleep 1
  callgrind_control -z "$gw" >/dev/null 2>&1
  requests="$(load "${SECONDS_MEASURED:-10}")"
  sleep 1.5                         # the request log stores the last batch
  callgrind_control -d "$gw" >/dev/null 2>&1
  sleep 0.5
  kill "$gw"; wait "$gw" 2>/dev/null || true
  instructions="$(grep -h '^summary:' "$work"/cg.out.* | head -1 | awk '{print $2}')"
  echo "$bin: $requests requests, $((instructions / requests)) instructions per request"
done
