#!/usr/bin/env bash
# Serves Switchyard. With no argument: the embedded default (local-chat and local-embed run
# in-process, SQLite under ./data, an admin key generated into ./data/admin.key on first run).
# With a config file: that file, plus the workspace's mock upstream when the file points at it.
# Ctrl-C stops everything; the request log is flushed on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-}"
bin=target/release

if [ -z "$config" ]; then
  exec "$bin/switchyard" serve
fi

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
