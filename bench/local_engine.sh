#!/usr/bin/env bash
# The local-engine benchmark: Switchyard's embedded default (in-process llama.cpp) and llama.cpp's
# own llama-server on the same model, alternating rounds; prints one JSON line per run and a
# markdown table of the medians. Needs `make setup build`; builds llama-server on first use
# (bench/build_llama_server.sh). Usage: bench/local_engine.sh [rounds, default 2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rounds="${1:-2}"
model="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
py="$ROOT/.venv/bin/python"
server_bin="${LLAMA_SERVER:-$(bench/build_llama_server.sh)}"
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
key="sk-bench-local-0123456789"

wait_up() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not start" >&2; exit 1; }

run_switchyard() {
  SWITCHYARD_DATA_DIR="$work/sy" SWITCHYARD_ADMIN_KEY="$key" RUST_LOG=warn \
    target/release/switchyard serve --listen 127.0.0.1:18411 >/dev/null 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_up http://127.0.0.1:18411/healthz
  "$py" bench/local_engine.py --url http://127.0.0.1:18411/v1 --key "$key" --model local-chat --label switchyard
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_llama_server() {
  # The same shape as Switchyard's default: 8 parallel sequences, 8,192 tokens of KV cache shared
  # by them (--kv-unified), every core.
  "$server_bin" -m "$model" -np 8 -c 8192 --kv-unified -t "$(nproc)" --port 18412 --host 127.0.0.1 >/dev/null 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_up http://127.0.0.1:18412/health
  "$py" bench/local_engine.py --url http://127.0.0.1:18412/v1 --model smollm2 --label llama-server
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  run_switchyard | tee -a "$work/results.jsonl"
  run_llama_server | tee -a "$work/results.jsonl"
done

"$py" - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = sorted({r["label"] for r in rows}, key=lambda l: l != "switchyard")
keys = [k for k in rows[0] if k != "label"]
print("\n| metric | " + " | ".join(labels) + " |")
print("|---|" + "---|" * len(labels))
for k in keys:
    vals = [statistics.median(r[k] for r in rows if r["label"] == l) for l in labels]
    print(f"| {k} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
PY
