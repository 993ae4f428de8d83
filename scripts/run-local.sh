#!/usr/bin/env bash
# Serves the embedded default: the gateway with a SQLite store under ./data, in front of the
# workspace's mock upstream (until the in-process llama.cpp engine lands, the mock stands in for
# a local model). Ctrl-C stops both; the request log is flushed on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config/switchyard.toml}"
bin=target/release

mock_pid=""
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true; }
trap cleanup EXIT

if grep -q '127.0.0.1:9100' "$config"; then
  "$bin/switchyard-mock" --listen 127.0.0.1:9100 >/dev/null &
  mock_pid=$!
fi

"$bin/switchyard" check-config --config "$config"
exec_status=0
"$bin/switchyard" serve --config "$config" || exec_status=$?
exit "$exec_status"
