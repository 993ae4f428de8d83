#!/usr/bin/env python3
"""Switchyard side-by-side load harness (standard library only). Start it with bench/run.sh.

One invocation starts the bare mock upstream once, then, workload by workload, the gateways
under test (Switchyard in several configurations, a bare axum + reqwest forwarder, LiteLLM
proxy, Portkey's gateway), all pointed at that same mock, and measures them in ALTERNATING rounds: within a round the bare
mock runs first at each load, then every gateway at the same load, so each gateway's added
latency and throughput ratio are computed against a mock run taken minutes, not hours, apart.

Per run it records wrk's (or bench/loadgen.py's) throughput, latency percentiles and error
counts, the server's CPU time (utime+stime of its whole process tree from /proc/PID/stat,
before and after) and its peak RSS (VmHWM from /proc/PID/status, reset per run through
/proc/PID/clear_refs), plus the CPU used by everything else on the machine, so a run disturbed
by a foreign process can be recognised. Results go to bench/results/<timestamp>.{md,json}.
"""
import argparse
import atexit
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = ROOT / "target" / "release"
FORWARDER_BIN = BIN / "examples" / "forwarder"
FORWARDER_SRC = ROOT / "crates" / "switchyard-mock" / "examples" / "forwarder.rs"
FORWARDER_BUILD = "cargo build --release -p switchyard-mock --example forwarder"
RESULTS = BENCH / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DISTURBED_CORES = 0.25  # foreign CPU during a run, on average, above which the run is redone

TENANT_KEY = "sk-bench-tenant-0123456789abcdef"
ADMIN_KEY = "sk-bench-admin-0123456789abcdef"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_KEY = "sk-bench-litellm-0123456789"
PG_URL = "postgres://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "bench"
MODEL = "gpt-4o-mini"
PACED_MODEL = "gpt-4o-mini+chunk-delay-5"  # the mock sleeps 5 ms between stream events

SCENARIOS = {
    "small": "non-streaming small chat completion: bare mock vs Switchyard (SQLite request log)",
    "stream": "streaming chat completion (wrk throughput + TTFB / inter-event gaps with loadgen.py)",
    "prompt32k": "non-streaming chat completion with a 32 KiB prompt",
    "postgres": "Switchyard with the request log in PostgreSQL (small body)",
    "limits": "Switchyard with a tenant rpm/tpm limit that never triggers (small body)",
    "cache": "Switchyard with the exact response cache on: after the first request every one is a hit "
             "(small body, temperature 0)",
    "forwarder": "bare forwarder (axum + reqwest, JSON parsed, no features) in the small rounds: "
                 "the ceiling for any gateway on this machine",
    "rate": "fixed request rates (open loop, bench/loadgen.py), small body",
    "litellm": "LiteLLM proxy, small body (peer)",
    "portkey": "Portkey gateway, small body (peer)",
}
NOT_APPLICABLE = {}

# --------------------------------------------------------------------------------------------
# process management


class Server:
    """A server process in its own session, so its whole tree can be signalled at once."""

    registry = []

    def __init__(self, name, argv, log_path, ready_url, env=None, ready_timeout=60.0, cwd=None, ready_codes=(200,)):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.ready_url, self.env, self.ready_timeout, self.cwd = ready_url, env, ready_timeout, cwd
        self.ready_codes = ready_codes  # HTTP statuses of ready_url that mean "up" (a GET on a POST route: 405)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=self.cwd, start_new_session=True)
        log.close()
        if self not in Server.registry:
            Server.registry.append(self)
        write_pidfile()  # run.sh stops these process groups too, should this process die first
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} during start-up; "
                                   f"last log lines:\n{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                    if r.status in self.ready_codes:
                        return self
            except urllib.error.HTTPError as e:
                e.close()
                if e.code in self.ready_codes:
                    return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready at {self.ready_url} after {self.ready_timeout:.0f}s; "
                           f"last log lines:\n{tail(self.log_path)}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            if self in Server.registry:
                Server.registry.remove(self)
                write_pidfile()
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self in Server.registry:
            Server.registry.remove(self)
        write_pidfile()


def write_pidfile():
    pidfile = os.environ.get("BENCH_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as f:
            f.writelines(f"{s.proc.pid}\n" for s in Server.registry)


def stop_all():
    for server in list(reversed(Server.registry)):
        try:
            server.stop()
        except Exception as e:  # noqa: BLE001 - clean up the rest regardless
            print(f"warning: stopping {server.name}: {e}", file=sys.stderr)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def tail(path, n=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# /proc accounting


def proc_tree(pid):
    """pid and all its living descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except OSError:
            continue
    return total / CLK_TCK


def status_kib(pids, key):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def reset_peak_rss(pids):
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
    ok = True
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def machine_busy_seconds():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / CLK_TCK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------
# targets


class Target:
    """Something to load: its URL, the headers it needs, the model names it serves, its process."""

    def __init__(self, name, label, server, url, headers, paced_model=PACED_MODEL, kind="gateway"):
        self.name, self.label, self.server, self.url = name, label, server, url
        self.headers, self.paced_model, self.kind = headers, paced_model, kind


def switchyard_config(port, mock_port, workdir, store_url, limits, cache=False):
    tenant_limits = "rpm = 100000000\ntpm = 100000000000\n" if limits else ""
    # Exact layer only: identical requests (the harness sends one body) are answered from memory.
    cache_section = "\n[cache]\nenabled = true\nsemantic = false\n" if cache else ""
    return f"""# generated by bench/harness.py
listen = "127.0.0.1:{port}"

[store]
url = "{store_url}"

[admin]
key = "{ADMIN_KEY}"

[server]
data_dir = "{workdir}"
{cache_section}
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"
api_key = "{UPSTREAM_KEY}"

[[models]]
name = "{MODEL}"
provider = "mock"
upstream = "{MODEL}"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[[models]]
name = "{PACED_MODEL}"
provider = "mock"
upstream = "{PACED_MODEL}"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[[tenants]]
name = "bench"
keys = ["{TENANT_KEY}"]
{tenant_limits}"""


def start_switchyard(variant, ctx):
    workdir = ctx.workdir / f"gateway-{variant}"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if variant == "postgres":
        store = f"{PG_URL}?options=-c%20search_path%3D{PG_SCHEMA}"
    else:
        store = f"sqlite://{workdir}/requests.db"
    cfg = workdir / "gateway.toml"
    cfg.write_text(switchyard_config(port, ctx.mock_port, workdir, store, limits=(variant == "limits"),
                                     cache=(variant == "cache")))
    server = Server(f"switchyard-{variant}", [str(ctx.gateway_exe), "serve", "--config", str(cfg)],
                    workdir / "gateway.log", f"http://127.0.0.1:{port}/healthz",
                    env={"RUST_LOG": "warn"}).start()
    label = {"sqlite": "Switchyard (SQLite log)", "postgres": "Switchyard (PostgreSQL log)",
             "limits": "Switchyard (SQLite log + tenant rpm/tpm limit)",
             "cache": "Switchyard (SQLite log, exact cache hits)"}[variant]
    return Target(f"switchyard-{variant}", label, server, f"http://127.0.0.1:{port}/v1/chat/completions",
                  [f"Authorization: Bearer {TENANT_KEY}"])


def start_forwarder(ctx):
    """crates/switchyard-mock/examples/forwarder.rs: axum in front, reqwest behind, both bodies
    parsed as JSON, nothing else. No auth; it sends no key upstream and the mock asks for none."""
    if ctx.forwarder_exe is None:
        raise RuntimeError(ctx.forwarder_skip)
    workdir = ctx.workdir / "forwarder"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # It has no health route; a GET on its only (POST) route answering 405 means it is serving.
    server = Server("forwarder", [str(ctx.forwarder_exe), f"127.0.0.1:{port}", f"http://127.0.0.1:{ctx.mock_port}/v1"],
                    workdir / "forwarder.log", f"http://127.0.0.1:{port}/v1/chat/completions",
                    ready_codes=(200, 405)).start()
    return Target("forwarder", "bare forwarder (axum + reqwest, no features)", server,
                  f"http://127.0.0.1:{port}/v1/chat/completions", [], kind="forwarder")


def start_litellm(ctx):
    exe = BENCH / ".venv-litellm" / "bin" / "litellm"
    if not exe.exists():
        raise RuntimeError(ctx.peer_skip.get("litellm") or f"{exe} not found (bench/run.sh installs it)")
    workdir = ctx.workdir / "litellm"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: http://127.0.0.1:{ctx.mock_port}/v1
      api_key: x
general_settings:
  master_key: {LITELLM_KEY}
litellm_settings:
  telemetry: false
""")
    # LITELLM_LOCAL_MODEL_COST_MAP: use the bundled price map instead of fetching it at start-up.
    server = Server("litellm", [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                                "--num_workers", "1"],
                    workdir / "litellm.log", f"http://127.0.0.1:{port}/health/liveliness",
                    env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                         "NO_DOCS": "True"},
                    ready_timeout=180, cwd=str(workdir)).start()
    return Target("litellm", f"LiteLLM proxy {ctx.versions.get('litellm', '')}".strip(), server,
                  f"http://127.0.0.1:{port}/v1/chat/completions", [f"Authorization: Bearer {LITELLM_KEY}"])


def start_portkey(ctx):
    script = BENCH / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not script.exists():
        raise RuntimeError(ctx.peer_skip.get("portkey") or f"{script} not found (bench/run.sh installs it)")
    workdir = ctx.workdir / "portkey"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # loopback.cjs makes the server bind 127.0.0.1 instead of every interface.
    server = Server("portkey", ["node", "--require", str(BENCH / "loopback.cjs"), str(script),
                                f"--port={port}", "--headless"],
                    workdir / "portkey.log", f"http://127.0.0.1:{port}/", env={"NODE_ENV": "production"},
                    ready_timeout=60, cwd=str(workdir)).start()
    return Target("portkey", f"Portkey gateway {ctx.versions.get('portkey', '')}".strip(), server,
                  f"http://127.0.0.1:{port}/v1/chat/completions",
                  [f"Authorization: Bearer {UPSTREAM_KEY}", "x-portkey-provider: openai",
                   f"x-portkey-custom-host: http://127.0.0.1:{ctx.mock_port}/v1"])


# --------------------------------------------------------------------------------------------
# bodies


def chat_body(model, stream=False, prompt_bytes=0):
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    if prompt_bytes:
        words = ("switchyard gateway benchmark payload carrying a long document that the model "
                 "is asked to summarise in one sentence ").split()
        text, i = [], 0
        size = 0
        while size < prompt_bytes:
            w = words[i % len(words)]
            text.append(w)
            size += len(w) + 1
            i += 1
        messages = [{"role": "system", "content": " ".join(text)[:prompt_bytes]}]
        user = "Summarize the document above in one sentence."
    else:
        user = "Say hello in one short sentence."
    messages.append({"role": "user", "content": user})
    body = {"model": model, "messages": messages, "max_tokens": 64, "temperature": 0}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# runs


class Context:
    pass


def check_target(target, body, stream):
    """One request before measuring: a target that cannot answer correctly is not measured. The
    cache target answers a second time, and that answer must be an exact cache hit."""
    problem, headers = post_once(target, body, stream)
    if problem is None and target.name == "switchyard-cache":
        problem, headers = post_once(target, body, stream)
        if problem is None and headers.get("x-switchyard-cache") != "hit-exact":
            problem = f"second identical request was not an exact cache hit: x-switchyard-cache={headers.get('x-switchyard-cache')}"
    return problem


def post_once(target, body, stream):
    req = urllib.request.Request(target.url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    for h in target.headers:
        k, _, v = h.partition(":")
        req.add_header(k.strip(), v.strip())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode(errors="replace")
            status = r.status
            headers = {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}: {e.read()[:300].decode(errors='replace')}", {}
    except (urllib.error.URLError, OSError) as e:
        return f"request failed: {e}", {}
    if status != 200:
        return f"HTTP {status}: {text[:300]}", headers
    if stream and "data:" not in text:
        return f"not an SSE stream: {text[:300]}", headers
    if not stream and '"choices"' not in text:
        return f"not a chat completion: {text[:300]}", headers
    return None, headers


def wait_quiet(ctx):
    """Before a run nothing of ours is loaded, so CPU use now is someone else's: give a foreign
    burst (a compiler, another benchmark) a little time to pass, within a bounded budget."""
    waited = 0.0
    while True:
        b0 = machine_busy_seconds()
        time.sleep(0.3)
        busy = (machine_busy_seconds() - b0) / 0.3
        if busy < ctx.quiet_cores or waited >= ctx.quiet_wait or ctx.quiet_budget <= 0:
            return waited, busy
        time.sleep(1.0)
        waited += 1.3
        ctx.quiet_budget -= 1.3


def ensure_alive(ctx, server):
    """A server that died between runs (crash, or someone's `pkill` on a shared machine) is
    started again on the same port, and the event goes into the results."""
    if server.proc.poll() is None:
        return
    rc = server.proc.returncode
    how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    ctx.restarts.append({"server": server.name, "how": how, "after_run": ctx.seq,
                         "log_tail": tail(server.log_path, 5)})
    print(f"warning: {server.name} {how}; restarting it", file=sys.stderr)
    server.start()


def measure(ctx, target, fn):
    """Runs fn() (the load) while accounting the target's and everyone else's CPU and memory."""
    ensure_alive(ctx, ctx.mock)
    ensure_alive(ctx, target.server)
    waited, busy_before = wait_quiet(ctx)
    server_pids = proc_tree(target.server.pid)
    mock_pids = [] if target.kind == "mock" else proc_tree(ctx.mock.pid)
    hwm_reset = reset_peak_rss(server_pids)
    cpu0, mock0, gen0, busy0 = (cpu_seconds(server_pids), cpu_seconds(mock_pids), children_cpu(),
                                machine_busy_seconds())
    t0 = time.monotonic()
    result = fn()
    wall = time.monotonic() - t0
    server_pids = proc_tree(target.server.pid)
    cpu1, mock1, gen1, busy1 = (cpu_seconds(server_pids), cpu_seconds(mock_pids), children_cpu(),
                                machine_busy_seconds())
    cpu, mock_cpu, gen_cpu = cpu1 - cpu0, mock1 - mock0, gen1 - gen0
    other = max(0.0, (busy1 - busy0) - cpu - mock_cpu - gen_cpu)
    result.update({
        "wall_s": wall,
        "server_cpu_s": cpu,
        "upstream_mock_cpu_s": mock_cpu if mock_pids else None,
        "loadgen_cpu_s": gen_cpu,
        "other_cpu_s": other,
        "peak_rss_kib": status_kib(server_pids, "VmHWM"),
        "peak_rss_scope": "run" if hwm_reset else "process lifetime",
        "rss_after_kib": status_kib(server_pids, "VmRSS"),
        "alive": target.server.proc.poll() is None,
        "waited_for_quiet_s": waited,
        "foreign_cores_before": busy_before,
    })
    req = result.get("requests") or 0
    result["cpu_s_per_1k"] = cpu / req * 1000 if req else None
    return result


def wrk_load(ctx, target, body_path, conns, duration):
    env = dict(os.environ, BENCH_BODY=str(body_path), BENCH_HEADERS="\n".join(target.headers))
    argv = [ctx.wrk, "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s", "-s",
            str(BENCH / "lua" / "chat.lua"), target.url]

    def run():
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
        m = re.search(r"^BENCH_RESULT (\{.*\})$", p.stdout, re.M)
        if not m:
            raise RuntimeError(f"wrk failed (exit {p.returncode}): {p.stdout[-500:]} {p.stderr[-500:]}")
        raw = json.loads(m.group(1))
        lat = raw["latency_us"]
        errors = raw["errors"]
        return {
            "tool": "wrk",
            "requests": raw["requests"],
            "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "latency_ms": {k: lat[k] / 1000 for k in ("p50", "p90", "p99", "p99.9")},
            "latency_mean_ms": lat["mean"] / 1000,
            "latency_max_ms": lat["max"] / 1000,
            "errors": errors,
            "error_count": sum(errors.values()),
            "non2xx": errors["status"],
            "bytes": raw["bytes"],
        }

    return measure(ctx, target, run)


def loadgen(ctx, target, body_path, args):
    argv = [sys.executable, str(BENCH / "loadgen.py")] + args + ["--url", target.url, "--body", str(body_path)]
    for h in target.headers:
        argv += ["--header", h]

    def run():
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"loadgen failed: {p.stderr[-800:]}")
        raw = json.loads(p.stdout)
        out = {"tool": "loadgen", "raw": raw, "requests": raw["requests"],
               "error_count": raw["errors"] + raw["non2xx"], "non2xx": raw["non2xx"],
               "errors": {"socket_or_timeout": raw["errors"], "status": raw["non2xx"]}}
        if raw["mode"] == "rate":
            out["rps"] = raw["achieved_rps"]
            out["latency_ms"] = {k: (v / 1000 if v is not None else None) for k, v in raw["latency_us"].items()}
        else:
            out["rps"] = raw["rps"]
            out["latency_ms"] = {k: (v / 1000 if v is not None else None) for k, v in raw["total_us"].items()}
        return out

    return measure(ctx, target, run)


def disturbed(result):
    return result["other_cpu_s"] > DISTURBED_CORES * result["wall_s"]


def undisturbed(ctx, what, fn):
    """Runs fn(); a run during which foreign processes used more than DISTURBED_CORES on average
    is set aside (kept in the JSON as discarded) and run again, within a bounded time budget."""
    while True:
        result = fn()
        if not disturbed(result) or ctx.retry_budget <= 0:
            return result
        ctx.retry_budget -= result["wall_s"]
        result["discarded"] = f"foreign load {result['other_cpu_s'] / result['wall_s']:.2f} cores"
        ctx.discarded.append(dict(result, what=what))
        print(f"  {what}: disturbed ({result['discarded']}), running it again", file=sys.stderr, flush=True)


def warm_up(ctx, target, body_path):
    if ctx.warmup > 0:
        wrk_load(ctx, target, body_path, 32, ctx.warmup)


# --------------------------------------------------------------------------------------------
# workloads


def record(ctx, group, scenario, target, rnd, load, result):
    ctx.seq += 1
    result.update({"seq": ctx.seq, "group": group, "scenario": scenario, "target": target.name,
                   "target_label": target.label, "round": rnd, "load": load,
                   "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    ctx.runs.append(result)
    flag = " ERRORS" if result.get("error_count") else ""
    lat = result.get("latency_ms") or {}
    p50 = lat.get("p50")
    p50s = f"{p50:.3f}ms" if p50 is not None else "-"
    elapsed = time.monotonic() - ctx.t_start
    print(f"[{elapsed:6.0f}s] {group:<9} r{rnd} {load:<14} {target.name:<20} {result['rps']:>9.0f} req/s "
          f"p50 {p50s:>9}  cpu {result['server_cpu_s']:.2f}s  other {result['other_cpu_s']:.2f}s{flag}",
          file=sys.stderr, flush=True)


def run_group(ctx, group, members, body_fn, loads, rounds, extra=None):
    """members: [(scenario, target)] with the bare mock first. Alternates within every round."""
    bodies = {}
    live = []
    for scenario, target in members:
        body = body_fn(target)
        path = ctx.workdir / f"body-{group}-{target.name}.json"
        path.write_bytes(body)
        bodies[target.name] = path
        problem = check_target(target, body, stream=b'"stream":true' in body)
        if problem:
            ctx.skipped.append({"scenario": scenario, "target": target.name, "reason": problem})
            print(f"skipping {target.name} in {group}: {problem}", file=sys.stderr)
            continue
        try:
            warm_up(ctx, target, path)
        except Exception as e:  # noqa: BLE001
            ctx.skipped.append({"scenario": scenario, "target": target.name, "reason": f"warm-up failed: {e}"})
            print(f"skipping {target.name} in {group}: warm-up failed: {e}", file=sys.stderr)
            continue
        live.append((scenario, target))
    if not live or live[0][1].kind != "mock":
        return
    for rnd in range(1, rounds + 1):
        for conns in loads:
            for scenario, target in live:
                try:
                    res = undisturbed(ctx, f"{group} r{rnd} c{conns} {target.name}",
                                      lambda: wrk_load(ctx, target, bodies[target.name], conns, ctx.duration))
                except Exception as e:  # noqa: BLE001 - one failed run must not lose the others
                    ctx.failures.append({"group": group, "target": target.name, "round": rnd,
                                         "load": f"c{conns}", "error": str(e)})
                    continue
                record(ctx, group, scenario, target, rnd, f"c{conns}", res)
        if extra:
            extra(rnd, live, bodies)


def group_small(ctx, scenarios):
    members = [("small", ctx.mock_target)]
    starters = [("small", "sqlite"), ("postgres", "postgres"), ("limits", "limits"), ("cache", "cache")]
    for scenario, variant in starters:
        if scenario not in scenarios:
            continue
        if variant == "postgres" and not ctx.pg_ok:
            ctx.skipped.append({"scenario": "postgres", "target": "switchyard-postgres", "reason": ctx.pg_error})
            continue
        try:
            members.append((scenario, start_switchyard(variant, ctx)))
        except Exception as e:  # noqa: BLE001
            ctx.skipped.append({"scenario": scenario, "target": f"switchyard-{variant}", "reason": str(e)})
    if "forwarder" in scenarios:
        try:
            members.append(("forwarder", start_forwarder(ctx)))
        except Exception as e:  # noqa: BLE001
            ctx.skipped.append({"scenario": "forwarder", "target": "forwarder", "reason": str(e)})
            print(f"skipping forwarder: {e}", file=sys.stderr)
    if len(members) > 1:
        run_group(ctx, "small", members, lambda t: chat_body(MODEL), ctx.conns, ctx.rounds)
    for _, t in members[1:]:
        t.server.stop()


def group_peers(ctx, scenarios):
    members = [("small", ctx.mock_target)]
    for name, starter in (("litellm", start_litellm), ("portkey", start_portkey)):
        if name not in scenarios:
            continue
        try:
            members.append((name, starter(ctx)))
        except Exception as e:  # noqa: BLE001
            ctx.skipped.append({"scenario": name, "target": name, "reason": str(e)})
            print(f"skipping {name}: {e}", file=sys.stderr)
    if len(members) > 1:
        run_group(ctx, "peers", members, lambda t: chat_body(MODEL), ctx.conns, ctx.peer_rounds)
    for _, t in members[1:]:
        t.server.stop()


def group_stream(ctx):
    sy = start_switchyard("sqlite", ctx)
    members = [("stream", ctx.mock_target), ("stream", sy)]
    paced = {}
    for _, t in members:
        p = ctx.workdir / f"body-paced-{t.name}.json"
        p.write_bytes(chat_body(t.paced_model, stream=True))
        paced[t.name] = p

    def ttfb(rnd, live, bodies):
        for mode, body_map in (("unpaced", bodies), ("paced-5ms", paced)):
            for scenario, target in live:
                try:
                    res = undisturbed(ctx, f"stream r{rnd} ttfb-{mode} {target.name}", lambda: loadgen(
                        ctx, target, body_map[target.name],
                        ["stream", "--connections", str(ctx.ttfb_conns), "--duration", str(ctx.ttfb_duration)]))
                except Exception as e:  # noqa: BLE001
                    ctx.failures.append({"group": "stream", "target": target.name, "round": rnd,
                                         "load": f"ttfb-{mode}", "error": str(e)})
                    continue
                record(ctx, "stream", scenario, target, rnd, f"ttfb-{mode}-c{ctx.ttfb_conns}", res)

    run_group(ctx, "stream", members, lambda t: chat_body(MODEL, stream=True), ctx.conns, ctx.rounds, extra=ttfb)
    sy.server.stop()


def group_prompt32k(ctx):
    sy = start_switchyard("sqlite", ctx)
    members = [("prompt32k", ctx.mock_target), ("prompt32k", sy)]
    run_group(ctx, "prompt32k", members, lambda t: chat_body(MODEL, prompt_bytes=32768), ctx.conns, ctx.rounds)
    sy.server.stop()


def group_rate(ctx):
    sy = start_switchyard("sqlite", ctx)
    members = [("rate", ctx.mock_target), ("rate", sy)]

    def rates(rnd, live, bodies):
        for rate in ctx.rates:
            for scenario, target in live:
                try:
                    res = undisturbed(ctx, f"rate r{rnd} {rate} {target.name}", lambda: loadgen(
                        ctx, target, bodies[target.name],
                        ["rate", "--rate", str(rate), "--duration", str(ctx.rate_duration)]))
                except Exception as e:  # noqa: BLE001
                    ctx.failures.append({"group": "rate", "target": target.name, "round": rnd,
                                         "load": f"rate{rate}", "error": str(e)})
                    continue
                record(ctx, "rate", scenario, target, rnd, f"rate{rate}", res)

    # No closed-loop loads in this group: only the open-loop rates, every round.
    run_group(ctx, "rate", members, lambda t: chat_body(MODEL), [], ctx.rate_rounds, extra=rates)
    sy.server.stop()


# --------------------------------------------------------------------------------------------
# aggregation and report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def aggregate(ctx):
    """Rows keyed by (group, scenario, target, load) with medians and same-round comparisons."""
    baseline = {}
    for r in ctx.runs:
        if r["target"] == "mock":
            baseline[(r["group"], r["round"], r["load"])] = r
    rows = {}
    order = []
    for r in ctx.runs:
        key = (r["group"], r["scenario"], r["target"], r["load"])
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append(r)
    out = []
    for key in order:
        runs = rows[key]
        group, scenario, target, load = key
        added50, added99, ratio, ttfb_added = [], [], [], []
        for r in runs:
            b = baseline.get((group, r["round"], load))
            if b is None or r["target"] == "mock":
                continue
            if r["latency_ms"].get("p50") is not None and b["latency_ms"].get("p50") is not None:
                added50.append(r["latency_ms"]["p50"] - b["latency_ms"]["p50"])
                added99.append(r["latency_ms"]["p99"] - b["latency_ms"]["p99"])
            if b["rps"]:
                ratio.append(r["rps"] / b["rps"])
            if r["tool"] == "loadgen" and r["raw"]["mode"] == "stream":
                ttfb_added.append(r["raw"]["first_event_us"]["p50"] / 1000 - b["raw"]["first_event_us"]["p50"] / 1000)
        row = {
            "group": group, "scenario": scenario, "target": target, "target_label": runs[0]["target_label"],
            "load": load, "runs": len(runs),
            "rps": med([r["rps"] for r in runs]),
            "latency_ms": {p: med([r["latency_ms"].get(p) for r in runs]) for p in ("p50", "p90", "p99", "p99.9")},
            "added_p50_ms": med(added50), "added_p99_ms": med(added99),
            "rps_ratio_to_mock": med(ratio),
            "cpu_s_per_1k": med([r["cpu_s_per_1k"] for r in runs]),
            "peak_rss_mib": max(r["peak_rss_kib"] for r in runs) / 1024,
            "requests": sum(r["requests"] for r in runs),
            "error_count": sum(r["error_count"] for r in runs),
            "other_cpu_s_max": max(r["other_cpu_s"] for r in runs),
            "wall_s_max": max(r["wall_s"] for r in runs),
            "upstream_mock_cpu_s_per_1k": med([(r["upstream_mock_cpu_s"] / r["requests"] * 1000)
                                               if r.get("upstream_mock_cpu_s") is not None and r["requests"] else None
                                               for r in runs]),
        }
        if runs[0]["tool"] == "loadgen":
            raw = [r["raw"] for r in runs]
            if raw[0]["mode"] == "stream":
                for k in ("ttfb_us", "first_event_us", "gap_us", "total_us"):
                    row[k.replace("_us", "_ms")] = {p: med([(x[k][p] / 1000 if x[k][p] is not None else None)
                                                            for x in raw]) for p in ("p50", "p90", "p99", "p99.9")}
                row["added_first_event_p50_ms"] = med(ttfb_added)
                row["events"] = sum(x["events"] for x in raw)
            else:
                row["target_rate"] = raw[0]["target_rate"]
                row["from_schedule_ms"] = {p: med([(x["latency_from_schedule_us"][p] / 1000
                                                    if x["latency_from_schedule_us"][p] is not None else None)
                                                   for x in raw]) for p in ("p50", "p90", "p99", "p99.9")}
                row["send_lag_p99_ms"] = med([x["send_lag_us"]["p99"] / 1000 for x in raw])
        out.append(row)
    return out


def fmt(x, digits=3):
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def fmt_signed(x, digits=3):
    if x is None:
        return "–"
    return f"{x:+.{digits}f}"


def fmt_ratio(x):
    if x is None:
        return "–"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.4f}"


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def pick(rows, group, target, load):
    for r in rows:
        if r["group"] == group and r["target"] == target and r["load"] == load:
            return r
    return None


def evaluate_targets(rows):
    checks = []

    def add(name, goal, value, ok, detail, info=False):
        status = ("not measured" if value is None else "informational") if info else \
            ("not measured" if ok is None else ("met" if ok else "missed"))
        checks.append({"target": name, "goal": goal, "measured": value, "status": status, "detail": detail})

    r = pick(rows, "small", "switchyard-sqlite", "c32")
    add("throughput at 32 connections vs bare mock", ">= 30%",
        None if not r or r["rps_ratio_to_mock"] is None else f"{r['rps_ratio_to_mock'] * 100:.1f}%",
        None if not r or r["rps_ratio_to_mock"] is None else r["rps_ratio_to_mock"] >= 0.30,
        "median over rounds of Switchyard (SQLite) req/s divided by the bare mock's req/s in the same round")
    r = pick(rows, "small", "switchyard-sqlite", "c4")
    add("added p50 latency at 4 connections", "<= 0.25 ms",
        None if not r or r["added_p50_ms"] is None else f"{r['added_p50_ms']:.3f} ms",
        None if not r or r["added_p50_ms"] is None else r["added_p50_ms"] <= 0.25,
        "median over rounds of (Switchyard p50 - bare mock p50) in the same round")
    sy_rows = [x for x in rows if x["target"].startswith("switchyard")]
    if sy_rows:
        worst = max(sy_rows, key=lambda x: x["peak_rss_mib"])
        add("peak RSS", "<= 64 MiB", f"{worst['peak_rss_mib']:.1f} MiB", worst["peak_rss_mib"] <= 64,
            f"largest VmHWM of any Switchyard run (worst: {worst['group']} {worst['target']} {worst['load']})")
    else:
        add("peak RSS", "<= 64 MiB", None, None, "no Switchyard run")
    for peer, goal in (("litellm", 100), ("portkey", 20)):
        for load in ("c32", "c4"):
            sy = pick(rows, "small", "switchyard-sqlite", load)
            pr = pick(rows, "peers", peer, load)
            if not sy or not pr or not pr["rps"]:
                add(f"throughput vs {peer} ({load})", f">= {goal}x", None, None, "not measured (see skipped)")
                continue
            ratio = sy["rps"] / pr["rps"]
            norm = (sy["rps_ratio_to_mock"] / pr["rps_ratio_to_mock"]
                    if sy["rps_ratio_to_mock"] and pr["rps_ratio_to_mock"] else None)
            add(f"throughput vs {peer} ({load})", f">= {goal}x", f"{ratio:.1f}x", ratio >= goal,
                f"Switchyard {sy['rps']:,.0f} req/s / {peer} {pr['rps']:,.0f} req/s; normalised by the "
                f"bare mock of each one's rounds: {fmt(norm, 1)}x")
    # Informational: how far Switchyard is from bare forwarding (same group, same rounds, same mock).
    def against_forwarder(name, goal, load, usable, measured, detail):
        sy, fw = pick(rows, "small", "switchyard-sqlite", load), pick(rows, "small", "forwarder", load)
        if sy and fw and usable(sy) and usable(fw):
            add(name, goal, measured(sy, fw), None, detail(sy, fw), info=True)
        else:
            add(name, goal, None, None, "not measured (needs small and forwarder; see skipped)", info=True)

    against_forwarder(
        "Switchyard / forwarder throughput at 32 connections", "as close to 1 as possible", "c32",
        lambda r: r["rps_ratio_to_mock"],
        lambda sy, fw: f"{sy['rps_ratio_to_mock'] / fw['rps_ratio_to_mock']:.2f}x",
        lambda sy, fw: f"Switchyard (SQLite) {fmt_ratio(sy['rps_ratio_to_mock'])} × mock ({sy['rps']:,.0f} req/s) / "
                       f"bare forwarder {fmt_ratio(fw['rps_ratio_to_mock'])} × mock ({fw['rps']:,.0f} req/s), same rounds")
    against_forwarder(
        "added p50 at 4 connections, Switchyard vs forwarder", "as close as possible", "c4",
        lambda r: r["added_p50_ms"] is not None,
        lambda sy, fw: f"{sy['added_p50_ms']:+.3f} ms vs {fw['added_p50_ms']:+.3f} ms",
        lambda sy, fw: f"+p50 over the bare mock in the same rounds; Switchyard adds "
                       f"{sy['added_p50_ms'] - fw['added_p50_ms']:+.3f} ms beyond bare forwarding")
    return checks


def markdown(ctx, rows, checks):
    L = []
    w = L.append
    w(f"# Switchyard benchmark — {ctx.meta['started_at']}")
    w("")
    m = ctx.meta
    w(f"- commit `{m['commit']}`{' (work tree has uncommitted changes in crates/)' if m['dirty'] else ''}; "
      f"`target/release/switchyard` built {m['binary_mtime']} (sha256 `{m['binary_sha256']}…`)"
      f"{' — OLDER than the newest source file' if m['stale'] else ''}")
    w(f"- machine: {m['nproc']} cores, {m['cpu_model']}, kernel {m['kernel']}, {m['mem_gib']:.0f} GiB RAM")
    w(f"- load: wrk {m['wrk_version']} `-t1` at {', '.join('-c' + str(c) for c in ctx.conns)}, {ctx.duration}s per run, "
      f"{ctx.rounds} alternating rounds ({ctx.peer_rounds} for peers); loadgen.py (Python {m['python']}) for "
      f"streaming TTFB ({ctx.ttfb_conns} connections, {ctx.ttfb_duration}s) and fixed rates "
      f"({', '.join(str(r) for r in ctx.rates)} req/s, {ctx.rate_duration}s)")
    w(f"- bare mock: `switchyard-mock --listen 127.0.0.1:PORT`"
      f"{' --workers ' + str(ctx.mock_workers) if ctx.mock_workers else ''}; Switchyard with `RUST_LOG=warn`; "
      f"peers: {', '.join(f'{k} {v}' for k, v in m['peer_versions'].items()) or 'none'}")
    if m.get("forwarder"):
        f = m["forwarder"]
        w(f"- bare forwarder: `target/release/examples/forwarder` ({FORWARDER_SRC.relative_to(ROOT)}) built "
          f"{f['binary_mtime']}{' — OLDER than its source' if f['stale'] else ''}")
    w(f"- everything (load generator, mock, gateway) shares the {m['nproc']} cores; total wall time "
      f"{m['elapsed_s'] / 60:.1f} min; command: `{m['command']}`")
    w("")
    w("Latencies in ms. *+p50/+p99*: median over rounds of (target − bare mock in the same round). "
      "*× mock*: median of target req/s ÷ bare-mock req/s in the same round. *CPU*: server process "
      "tree utime+stime per 1,000 requests. *RSS*: peak VmHWM during a run (MiB). *errors*: socket errors, "
      "timeouts and answers ≥ 400 over all runs of the row; ⚠ marks a row with any.")
    w("")
    w("## Closed loop (wrk)")
    w("")
    w("| scenario | target | conns | runs | req/s | p50 | p90 | p99 | p99.9 | +p50 | +p99 | × mock | CPU s/1k req | RSS MiB | errors |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        if not r["load"].startswith("c"):
            continue
        lat = r["latency_ms"]
        err = f"⚠ {r['error_count']}" if r["error_count"] else "0"
        name = r["scenario"] + (" (peer rounds)" if r["group"] == "peers" and r["target"] == "mock" else "")
        w(f"| {name} | {r['target_label'] if r['target'] != 'mock' else 'bare mock'} | {r['load'][1:]} | {r['runs']} | "
          f"{fmt_int(r['rps'])} | {fmt(lat['p50'])} | {fmt(lat['p90'])} | {fmt(lat['p99'])} | {fmt(lat['p99.9'])} | "
          f"{fmt_signed(r['added_p50_ms'])} | {fmt_signed(r['added_p99_ms'])} | "
          f"{fmt_ratio(r['rps_ratio_to_mock']) if r['target'] != 'mock' else '1'} | "
          f"{fmt(r['cpu_s_per_1k'], 4)} | {fmt(r['peak_rss_mib'], 1)} | {err} |")
    stream_rows = [r for r in rows if r["load"].startswith("ttfb")]
    if stream_rows:
        w("")
        w("## Streaming: time to first byte / first event (loadgen.py stream)")
        w("")
        w("`unpaced`: the mock writes the whole stream at once; `paced-5ms`: the mock sleeps 5 ms between events "
          "(upstream `gpt-4o-mini+chunk-delay-5`), so the gaps show how the gateway relays events as they come.")
        w("")
        w("| target | mode | streams | first byte p50 / p99 | first event p50 / p99 | +first event p50 | "
          "event gap p50 / p99 | whole stream p50 / p99 | CPU s/1k | RSS MiB | errors |")
        w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in stream_rows:
            err = f"⚠ {r['error_count']}" if r["error_count"] else "0"
            mode = r["load"].split("-c")[0].removeprefix("ttfb-") + f" c{r['load'].rsplit('-c', 1)[1]}"
            w(f"| {r['target_label'] if r['target'] != 'mock' else 'bare mock'} | {mode} | {fmt_int(r['requests'])} | "
              f"{fmt(r['ttfb_ms']['p50'])} / {fmt(r['ttfb_ms']['p99'])} | "
              f"{fmt(r['first_event_ms']['p50'])} / {fmt(r['first_event_ms']['p99'])} | "
              f"{fmt_signed(r.get('added_first_event_p50_ms'))} | "
              f"{fmt(r['gap_ms']['p50'])} / {fmt(r['gap_ms']['p99'])} | "
              f"{fmt(r['total_ms']['p50'])} / {fmt(r['total_ms']['p99'])} | {fmt(r['cpu_s_per_1k'], 4)} | "
              f"{fmt(r['peak_rss_mib'], 1)} | {err} |")
    rate_rows = [r for r in rows if r["load"].startswith("rate")]
    if rate_rows:
        w("")
        w("## Fixed request rate (open loop, loadgen.py rate)")
        w("")
        w("Latency from the actual send; *from schedule* adds the time the request waited for its "
          "scheduled slot (Python's ~1 ms timer granularity shows here, for mock and gateway alike).")
        w("")
        w("| target | rate | runs | achieved req/s | p50 | p90 | p99 | p99.9 | p99 from schedule | +p50 | +p99 | "
          "CPU s/1k req | RSS MiB | errors |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in rate_rows:
            lat = r["latency_ms"]
            err = f"⚠ {r['error_count']}" if r["error_count"] else "0"
            w(f"| {r['target_label'] if r['target'] != 'mock' else 'bare mock'} | {r['target_rate']:.0f} | {r['runs']} | "
              f"{fmt_int(r['rps'])} | {fmt(lat['p50'])} | {fmt(lat['p90'])} | {fmt(lat['p99'])} | {fmt(lat['p99.9'])} | "
              f"{fmt(r['from_schedule_ms']['p99'])} | {fmt_signed(r['added_p50_ms'])} | {fmt_signed(r['added_p99_ms'])} | "
              f"{fmt(r['cpu_s_per_1k'], 4)} | {fmt(r['peak_rss_mib'], 1)} | {err} |")
    w("")
    w("## Targets")
    w("")
    w("| target | goal | measured | status | how |")
    w("|---|---|---|---|---|")
    for c in checks:
        w(f"| {c['target']} | {c['goal']} | {c['measured'] or '–'} | **{c['status']}** | {c['detail']} |")
    w("")
    w("## Not measured")
    w("")
    for name, why in NOT_APPLICABLE.items():
        w(f"- `{name}`: {why}")
    for s in ctx.skipped:
        w(f"- `{s['scenario']}` / {s['target']}: {s['reason'].splitlines()[0] if s['reason'] else ''}")
    for f in ctx.failures:
        w(f"- failed run: {f['group']} {f['target']} round {f['round']} {f['load']}: {f['error'][:200]}")
    if ctx.not_selected:
        w(f"- not selected this time: {', '.join(ctx.not_selected)}")
    for r in ctx.restarts:
        w(f"- restart: {r['server']} {r['how']} after run #{r['after_run']}; started again on the same port")
    noisy = [r for r in ctx.runs if disturbed(r)]
    noisy_list = " (runs " + ", ".join(f"#{r['seq']}" for r in noisy[:30]) + ")" if noisy else ""
    worst_other = max((r["other_cpu_s"] for r in ctx.runs), default=0.0)
    w("")
    w("## Disturbance check")
    w("")
    w(f"CPU used by processes other than the load generator, the mock and the target during a run "
      f"(whole machine, from /proc/stat): at most {worst_other:.2f} s in one run; {len(noisy)} of "
      f"{len(ctx.runs)} runs above a quarter of a core on average{noisy_list}. Before each run the harness "
      f"waited for foreign load under {ctx.quiet_cores} cores (at most {ctx.quiet_wait:.0f} s per run): "
      f"{sum(r.get('waited_for_quiet_s', 0) for r in ctx.runs):.0f} s waited in all; "
      f"{sum(1 for r in ctx.runs if r.get('foreign_cores_before', 0) >= ctx.quiet_cores)} runs started busy anyway. "
      f"{len(ctx.discarded)} disturbed runs were set aside and run again "
      f"(retry budget {ctx.retry_budget_total:.0f} s; the discarded runs are in the JSON).")
    w("")
    w("## All runs, in order")
    w("")
    w("| # | group | round | load | target | req/s | p50 | p99 | errors | server CPU s | mock CPU s | loadgen CPU s | other CPU s | RSS MiB |")
    w("|--:|---|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in ctx.runs:
        lat = r["latency_ms"]
        w(f"| {r['seq']} | {r['group']} | {r['round']} | {r['load']} | {r['target']} | {fmt_int(r['rps'])} | "
          f"{fmt(lat.get('p50'))} | {fmt(lat.get('p99'))} | {r['error_count']} | {fmt(r['server_cpu_s'], 2)} | "
          f"{fmt(r['upstream_mock_cpu_s'], 2)} | {fmt(r['loadgen_cpu_s'], 2)} | {fmt(r['other_cpu_s'], 2)} | "
          f"{fmt(r['peak_rss_kib'] / 1024, 1)} |")
    w("")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# metadata


def sh(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def collect_meta(ctx, argv):
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    def newest(paths):
        return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)

    mock_dir = ROOT / "crates" / "switchyard-mock"
    # What the binaries are built from: every crate's src/ and manifest (not tests/, examples/).
    sources = [p for c in (ROOT / "crates").iterdir() if c.is_dir()
               for p in [c / "Cargo.toml", *(c / "src").rglob("*.rs")]]
    gw_sources = [p for p in sources if mock_dir not in p.parents] + [ROOT / "Cargo.toml", ROOT / "Cargo.lock"]
    mock_sources = [p for p in sources if mock_dir in p.parents]
    bin_mtime = (BIN / "switchyard").stat().st_mtime
    # cargo relinks a binary only when something it depends on changed, hence one check per binary.
    stale = newest(gw_sources) > bin_mtime or newest(mock_sources) > (BIN / "switchyard-mock").stat().st_mtime
    wrk_v = sh([ctx.wrk, "-v"]) or ""
    m = re.search(r"wrk ([^\s]+)", wrk_v)
    return {
        "started_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown",
        "dirty": bool(sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                          "crates", "Cargo.toml", "Cargo.lock"])),
        "binary_mtime": dt.datetime.fromtimestamp(bin_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "binary_sha256": sha256_file(BIN / "switchyard")[:16],
        "stale": stale,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "mem_gib": mem_kib / 1024 / 1024,
        "wrk_version": m.group(1) if m else wrk_v.split("\n")[0],
        "python": platform.python_version(),
        "node": sh(["node", "--version"]),
        "command": " ".join(["bench/run.sh"] + argv),
        "peer_versions": {},
    }


def peer_versions(ctx):
    out = {}
    py = BENCH / ".venv-litellm" / "bin" / "python"
    if py.exists():
        v = sh([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
        if v:
            out["litellm"] = v
    pkg = BENCH / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    if pkg.exists():
        out["portkey"] = json.loads(pkg.read_text()).get("version", "")
    return out


def prepare_postgres(ctx):
    psql = shutil.which("psql")
    if not psql:
        return False, "psql not found (apt-get install postgresql-client)"
    p = subprocess.run([psql, PG_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                        f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA};"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return False, f"PostgreSQL at {PG_URL} not usable: {p.stderr.strip()[:300]}"
    return True, None


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="Switchyard side-by-side benchmark (use bench/run.sh)")
    ap.add_argument("--quick", action="store_true", help="short runs, 2 rounds, 1 peer round (~3 min)")
    ap.add_argument("--scenarios", default="", help=f"comma list of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--rounds", type=int, help="alternating rounds per workload (default 3, quick 2)")
    ap.add_argument("--peer-rounds", type=int, help="rounds for LiteLLM / Portkey (default 2, quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 10, quick 3)")
    ap.add_argument("--connections", default="32,4", help="wrk connection counts (default 32,4)")
    ap.add_argument("--rates", default="500,2000", help="fixed rates for the rate scenario, req/s")
    ap.add_argument("--mock-workers", type=int, default=0, help="switchyard-mock --workers (default: its own)")
    ap.add_argument("--no-peers", action="store_true", help="leave out litellm and portkey")
    ap.add_argument("--quiet-wait", type=float, default=10.0,
                    help="before each run, wait up to this many seconds for foreign CPU load to pass "
                         "(total budget 6x this; 0 disables)")
    ap.add_argument("--retry-budget", type=float, default=90.0,
                    help="seconds of runs that may be redone because foreign load disturbed them (0 disables)")
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary folder (configs, logs, DBs)")
    args, _ = ap.parse_known_args()
    argv = sys.argv[1:]

    unknown = [s for s in args.scenarios.split(",") if s and s not in SCENARIOS and s not in NOT_APPLICABLE]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    chosen = [s for s in args.scenarios.split(",") if s in SCENARIOS] or list(SCENARIOS)
    if args.no_peers:
        chosen = [s for s in chosen if s not in ("litellm", "portkey")]

    ctx = Context()
    ctx.quick = args.quick
    ctx.rounds = args.rounds or (2 if args.quick else 3)
    ctx.peer_rounds = args.peer_rounds or (1 if args.quick else 2)
    ctx.duration = args.duration or (3 if args.quick else 10)
    ctx.warmup = 1 if args.quick else 2
    ctx.conns = [int(c) for c in args.connections.split(",") if c]
    ctx.rates = [int(r) for r in args.rates.split(",") if r]
    ctx.rate_rounds = 1 if args.quick else 2
    ctx.rate_duration = 3 if args.quick else 8
    ctx.ttfb_conns = 4
    ctx.ttfb_duration = 2 if args.quick else 4
    ctx.mock_workers = args.mock_workers
    ctx.quiet_cores = 0.3
    ctx.quiet_wait = args.quiet_wait
    ctx.quiet_budget = 6 * args.quiet_wait
    ctx.retry_budget = ctx.retry_budget_total = args.retry_budget
    ctx.runs, ctx.skipped, ctx.failures, ctx.restarts, ctx.discarded, ctx.seq = [], [], [], [], [], 0
    ctx.not_selected = [s for s in SCENARIOS if s not in chosen]
    ctx.peer_skip = {}
    for peer in ("litellm", "portkey"):
        reason = os.environ.get(f"BENCH_{peer.upper()}_SKIP")
        if reason:
            ctx.peer_skip[peer] = reason
    ctx.wrk = shutil.which("wrk") or "/usr/bin/wrk"
    ctx.t_start = time.monotonic()

    for b in ("switchyard", "switchyard-mock"):
        if not (BIN / b).exists():
            sys.exit(f"{BIN / b} missing: build with `cargo build --release --workspace --bins` (bench/run.sh does)")

    ctx.meta = collect_meta(ctx, argv)
    ctx.versions = peer_versions(ctx)
    ctx.meta["peer_versions"] = {k: v for k, v in ctx.versions.items() if k in chosen}
    if ctx.meta["stale"]:
        print("warning: target/release binaries are older than the newest source file; "
              "results describe the binaries, not the work tree (bench/run.sh --build rebuilds)", file=sys.stderr)

    # The binaries are copied once, so a rebuild during the run cannot mix two versions in one
    # result, and run under neutral names from a neutrally named folder, so that someone else's
    # `pkill -f switchyard` on a shared machine does not take them down mid-run.
    ctx.workdir = Path(tempfile.mkdtemp(prefix="gwbench-"))
    (ctx.workdir / "bin").mkdir()
    ctx.gateway_exe = ctx.workdir / "bin" / "gateway-under-test"
    ctx.mock_exe = ctx.workdir / "bin" / "mock-upstream"
    shutil.copy2(BIN / "switchyard", ctx.gateway_exe)
    shutil.copy2(BIN / "switchyard-mock", ctx.mock_exe)
    ctx.meta["binary_sha256"] = sha256_file(ctx.gateway_exe)[:16]
    ctx.forwarder_exe, ctx.forwarder_skip = None, None
    if "forwarder" in chosen:
        if os.environ.get("BENCH_FORWARDER_SKIP"):
            ctx.forwarder_skip = os.environ["BENCH_FORWARDER_SKIP"]
        elif not FORWARDER_BIN.exists():
            ctx.forwarder_skip = f"{FORWARDER_BIN.relative_to(ROOT)} missing: build with `{FORWARDER_BUILD}` (bench/run.sh does)"
        else:
            ctx.forwarder_exe = ctx.workdir / "bin" / "forwarder-under-test"
            shutil.copy2(FORWARDER_BIN, ctx.forwarder_exe)
            fw_mtime = FORWARDER_BIN.stat().st_mtime
            ctx.meta["forwarder"] = {
                "binary_mtime": dt.datetime.fromtimestamp(fw_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                "binary_sha256": sha256_file(ctx.forwarder_exe)[:16],
                "stale": FORWARDER_SRC.exists() and FORWARDER_SRC.stat().st_mtime > fw_mtime,
            }
        if ctx.forwarder_skip:
            print(f"skipping forwarder: {ctx.forwarder_skip}", file=sys.stderr)
    atexit.register(stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    ctx.pg_ok, ctx.pg_error = (prepare_postgres(ctx) if "postgres" in chosen else (False, "not selected"))

    print(f"scenarios: {', '.join(chosen)}; {ctx.rounds} rounds x {ctx.duration}s; work dir {ctx.workdir}",
          file=sys.stderr)
    ok = False
    try:
        ctx.mock_port = free_port()
        mock_argv = [str(ctx.mock_exe), "--listen", f"127.0.0.1:{ctx.mock_port}"]
        if ctx.mock_workers:
            mock_argv += ["--workers", str(ctx.mock_workers)]
        ctx.mock = Server("switchyard-mock", mock_argv, ctx.workdir / "mock.log",
                          f"http://127.0.0.1:{ctx.mock_port}/healthz").start()
        ctx.mock_target = Target("mock", "bare mock", ctx.mock,
                                 f"http://127.0.0.1:{ctx.mock_port}/v1/chat/completions",
                                 [f"Authorization: Bearer {UPSTREAM_KEY}"], kind="mock")
        if any(s in chosen for s in ("small", "postgres", "limits", "cache", "forwarder")):
            group_small(ctx, chosen)
        if "stream" in chosen:
            group_stream(ctx)
        if "prompt32k" in chosen:
            group_prompt32k(ctx)
        if "rate" in chosen:
            group_rate(ctx)
        if any(s in chosen for s in ("litellm", "portkey")):
            group_peers(ctx, chosen)
        ok = True
    finally:
        stop_all()
        ctx.meta["elapsed_s"] = time.monotonic() - ctx.t_start
        if ctx.runs:
            rows = aggregate(ctx)
            checks = evaluate_targets(rows)
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
            md_path, json_path = out / f"{stamp}.md", out / f"{stamp}.json"
            md_path.write_text(markdown(ctx, rows, checks))
            json_path.write_text(json.dumps({
                "meta": ctx.meta, "settings": {
                    "scenarios": chosen, "rounds": ctx.rounds, "peer_rounds": ctx.peer_rounds,
                    "duration_s": ctx.duration, "connections": ctx.conns, "rates": ctx.rates,
                    "rate_rounds": ctx.rate_rounds, "rate_duration_s": ctx.rate_duration,
                    "ttfb_connections": ctx.ttfb_conns, "ttfb_duration_s": ctx.ttfb_duration,
                    "mock_workers": ctx.mock_workers or None, "quick": ctx.quick},
                "rows": rows, "targets": checks, "runs": ctx.runs, "skipped": ctx.skipped,
                "restarts": ctx.restarts, "discarded_runs": ctx.discarded,
                "failures": ctx.failures, "not_applicable": NOT_APPLICABLE}, indent=1))
            print(f"\nresults: {md_path.relative_to(ROOT) if md_path.is_relative_to(ROOT) else md_path}\n"
                  f"         {json_path.name}", file=sys.stderr)
            print(md_path)
        if ok and not args.keep_work:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {ctx.workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
