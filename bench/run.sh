#!/usr/bin/env bash
# Side-by-side load benchmark: bare mock upstream, Switchyard, a bare axum + reqwest forwarder,
# LiteLLM proxy and Portkey's gateway, all pointed at the same mock, in alternating rounds.
# See docs/benchmarks.md.
#
#   bench/run.sh [--quick] [--scenarios a,b] [--rounds N] [--peer-rounds N] [--duration S]
#                [--connections 32,4] [--rates 500,2000] [--mock-workers N] [--no-peers]
#                [--quiet-wait S] [--retry-budget S] [--build] [--keep-work]
#
# Scenarios: small stream prompt32k postgres limits cache forwarder rate litellm portkey (default: all).
# Writes bench/results/<timestamp>.md and .json. Every process it starts is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

build=0
peers=1
scenarios=""
pass=()
while (($#)); do
  case "$1" in
    --build) build=1 ;;
    --no-peers) peers=0; pass+=("$1") ;;
    --scenarios) scenarios="${2:-}"; pass+=("$1" "${2:-}"); shift ;;
    --scenarios=*) scenarios="${1#*=}"; pass+=("$1") ;;
    -h|--help) sed -n '2,11p' "$BENCH/run.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift || true
done
selected() { [[ -z "$scenarios" ]] || [[ ",$scenarios," == *",$1,"* ]]; }
wants() { ((peers)) && selected "$1"; }

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The harness stops its own servers; this trap makes sure of it on Ctrl-C and on errors.
harness_pid=""
export BENCH_PIDFILE="$(mktemp -t switchyard-bench-pids.XXXXXX)"
cleanup() {
  if [[ -n "$harness_pid" ]] && kill -0 "$harness_pid" 2>/dev/null; then
    kill -TERM "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  # Servers the harness started, each the leader of its own process group; normally gone by now.
  local pid
  while read -r pid; do
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && kill -TERM -- "-$pid" 2>/dev/null || true
  done <"$BENCH_PIDFILE"
  rm -f "$BENCH_PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# 1. wrk
if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  if ! apt-get install -y wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
fi

# 2. the binaries under test
stale() {  # a source newer than the binary built from it (cargo relinks only what changed)
  local mock="$ROOT/crates/switchyard-mock"
  [[ -n "$(find "$ROOT"/crates/*/src "$ROOT"/crates/*/Cargo.toml "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
            -path "$mock" -prune -o -path "$mock/*" -prune -o \
            -newer "$ROOT/target/release/switchyard" -type f -print -quit 2>/dev/null)" ||
     -n "$(find "$mock/src" "$mock/Cargo.toml" -newer "$ROOT/target/release/switchyard-mock" -type f \
            -print -quit 2>/dev/null)" ]]
}
if ((build)) || [[ ! -x target/release/switchyard || ! -x target/release/switchyard-mock ]]; then
  log "cargo build --release --workspace --bins"
  cargo build --release --workspace --bins
elif stale; then
  log "warning: target/release is older than the sources; benchmarking it as it is (--build rebuilds)"
fi
# The bare forwarder (crates/switchyard-mock/examples/forwarder.rs); a failed build skips it with the reason.
if selected forwarder && { ((build)) || [[ ! -x target/release/examples/forwarder ]]; }; then
  log "cargo build --release -p switchyard-mock --example forwarder"
  fwd_log="$(mktemp -t switchyard-bench-forwarder.XXXXXX)"
  if ! cargo build --release -p switchyard-mock --example forwarder 2>&1 | tee "$fwd_log" >&2; then
    export BENCH_FORWARDER_SKIP="cargo build --release -p switchyard-mock --example forwarder failed: $(grep -m1 '^error' "$fwd_log" || tail -1 "$fwd_log")"
    log "$BENCH_FORWARDER_SKIP"
  fi
  rm -f "$fwd_log"
elif selected forwarder && [[ -n "$(find "$ROOT/crates/switchyard-mock/examples/forwarder.rs" \
                                     -newer "$ROOT/target/release/examples/forwarder" -print -quit 2>/dev/null)" ]]; then
  log "warning: target/release/examples/forwarder is older than its source; benchmarking it as it is (--build rebuilds)"
fi

# 3. peers, each in its own corner of bench/; a failed install skips that peer with the reason.
if wants litellm; then
  if [[ ! -x "$BENCH/.venv-litellm/bin/litellm" ]]; then
    log "installing LiteLLM proxy into bench/.venv-litellm"
    if ! { python3 -m venv "$BENCH/.venv-litellm" &&
           "$BENCH/.venv-litellm/bin/pip" install --quiet -r "$BENCH/requirements-litellm.txt"; } \
         >"$BENCH/.litellm-install.log" 2>&1; then
      export BENCH_LITELLM_SKIP="pip install of $(grep -v '^#' "$BENCH/requirements-litellm.txt" | head -1) failed: $(tail -1 "$BENCH/.litellm-install.log")"
      log "$BENCH_LITELLM_SKIP"
    fi
  fi
fi
if wants portkey; then
  if [[ ! -f "$BENCH/node_modules/@portkey-ai/gateway/build/start-server.js" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
      export BENCH_PORTKEY_SKIP="npm not found (apt-get install nodejs npm)"
      log "$BENCH_PORTKEY_SKIP"
    else
      log "installing Portkey gateway into bench/node_modules"
      if ! npm install --prefix "$BENCH" --no-audit --no-fund >"$BENCH/.portkey-install.log" 2>&1; then
        export BENCH_PORTKEY_SKIP="npm install --prefix bench failed: $(tail -1 "$BENCH/.portkey-install.log")"
        log "$BENCH_PORTKEY_SKIP"
      fi
    fi
  fi
fi

# 4. the run itself (python3 standard library only)
log "running bench/harness.py ${pass[*]:-}"
python3 "$BENCH/harness.py" "${pass[@]}" &
harness_pid=$!
status=0
wait "$harness_pid" || status=$?
harness_pid=""
exit "$status"
