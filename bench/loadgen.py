#!/usr/bin/env python3
"""Load generators wrk cannot stand in for (standard library only).

  loadgen.py stream --url URL --body FILE [--header 'K: V' ...] --connections 4 --duration 5
      Closed loop over keep-alive connections, streaming requests. Per request: time to the
      first response byte (status line), time to the first SSE `data:` event, the gaps between
      successive events as they arrive, and the total time.

  loadgen.py rate --url URL --body FILE [--header ...] --rate 1000 --duration 10
      Open loop: requests are *scheduled* at a fixed rate whether or not earlier ones have
      finished (new connections are opened up to --max-connections), so a slow server cannot
      slow the generator down (no coordinated omission). Latency is reported both from the
      actual send and from the scheduled start.

Prints one JSON object on stdout. Latencies are in microseconds.
"""
import argparse
import asyncio
import json
import socket
import sys
import time
from urllib.parse import urlsplit


def percentiles(values, points=(50, 90, 99, 99.9)):
    if not values:
        return {f"p{p:g}": None for p in points}
    ordered = sorted(values)
    out = {}
    for p in points:
        # Nearest rank, like wrk's HDR histogram percentile.
        rank = max(1, min(len(ordered), int(round(p / 100.0 * len(ordered) + 0.5))))
        out[f"p{p:g}"] = ordered[rank - 1]
    return out


class Response:
    __slots__ = ("status", "t_first_byte", "t_first_event", "event_times", "nbytes", "close")

    def __init__(self):
        self.status = 0
        self.t_first_byte = None
        self.t_first_event = None
        self.event_times = []
        self.nbytes = 0
        self.close = False


class Conn:
    """One HTTP/1.1 keep-alive connection; enough of the protocol for these answers."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, raw, clock=time.perf_counter):
        if self.writer is None:
            await self.open()
        self.writer.write(raw)
        resp = Response()
        reader = self.reader
        line = await reader.readuntil(b"\r\n")
        resp.t_first_byte = clock()
        parts = line.split(b" ", 2)
        resp.status = int(parts[1])
        length = None
        chunked = False
        while True:
            h = await reader.readuntil(b"\r\n")
            if h == b"\r\n":
                break
            name, _, value = h.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.lower() == b"close":
                resp.close = True

        def on_data(data):
            now = clock()
            resp.nbytes += len(data)
            n = data.count(b"data:")
            if n:
                if resp.t_first_event is None:
                    resp.t_first_event = now
                resp.event_times.extend([now] * n)

        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                data = await reader.readexactly(size + 2)
                on_data(data[:-2])
        elif length is not None:
            if length:
                on_data(await reader.readexactly(length))
        else:
            on_data(await reader.read())
            resp.close = True
        if resp.close:
            self.close()
        return resp


def build_request(url, body, headers):
    u = urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    lines = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, u.hostname, u.port


async def run_stream(args, raw, host, port):
    clock = time.perf_counter
    stats = {"ok": 0, "errors": 0, "non2xx": 0, "ttfb": [], "first_event": [], "gaps": [], "total": [],
             "events": 0}
    stop_at = clock() + args.duration

    async def worker():
        conn = Conn(host, port)
        while clock() < stop_at:
            t0 = clock()
            try:
                resp = await asyncio.wait_for(conn.request(raw), args.timeout)
            except Exception:  # noqa: BLE001 - any failure is one counted error
                stats["errors"] += 1
                conn.close()
                conn = Conn(host, port)
                continue
            t_end = clock()
            if not 200 <= resp.status < 300:
                stats["non2xx"] += 1
                continue
            stats["ok"] += 1
            stats["ttfb"].append((resp.t_first_byte - t0) * 1e6)
            if resp.t_first_event is not None:
                stats["first_event"].append((resp.t_first_event - t0) * 1e6)
            ev = resp.event_times
            stats["events"] += len(ev)
            stats["gaps"].extend((b - a) * 1e6 for a, b in zip(ev, ev[1:]))
            stats["total"].append((t_end - t0) * 1e6)
        conn.close()

    t_start = clock()
    await asyncio.gather(*(worker() for _ in range(args.connections)))
    elapsed = clock() - t_start
    return {
        "mode": "stream",
        "connections": args.connections,
        "duration_s": elapsed,
        "requests": stats["ok"] + stats["non2xx"],
        "ok": stats["ok"],
        "errors": stats["errors"],
        "non2xx": stats["non2xx"],
        "events": stats["events"],
        "rps": (stats["ok"] + stats["non2xx"]) / elapsed if elapsed else 0.0,
        "ttfb_us": percentiles(stats["ttfb"]),
        "first_event_us": percentiles(stats["first_event"]),
        "gap_us": percentiles(stats["gaps"]),
        "total_us": percentiles(stats["total"]),
    }


async def run_rate(args, raw, host, port):
    clock = time.perf_counter
    idle = []
    opened = 0
    waiters = []
    stats = {"ok": 0, "errors": 0, "non2xx": 0, "service": [], "sched": [], "late": []}

    async def get_conn():
        nonlocal opened
        if idle:
            return idle.pop()
        if opened < args.max_connections:
            opened += 1
            return Conn(host, port)
        fut = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        return await fut

    def put_conn(conn):
        # A connection closed by the server or after an error reconnects on its next request.
        while waiters:
            fut = waiters.pop(0)
            if not fut.done():
                fut.set_result(conn)
                return
        idle.append(conn)

    async def one(t_sched):
        conn = await get_conn()
        t_send = clock()
        stats["late"].append((t_send - t_sched) * 1e6)
        try:
            resp = await asyncio.wait_for(conn.request(raw), args.timeout)
        except Exception:  # noqa: BLE001
            stats["errors"] += 1
            conn.close()
            put_conn(conn)
            return
        t_end = clock()
        put_conn(conn)
        if not 200 <= resp.status < 300:
            stats["non2xx"] += 1
        else:
            stats["ok"] += 1
        stats["service"].append((t_end - t_send) * 1e6)
        stats["sched"].append((t_end - t_sched) * 1e6)

    total = int(args.rate * args.duration)
    interval = 1.0 / args.rate
    tasks = []
    t0 = clock() + 0.01
    for i in range(total):
        t_sched = t0 + i * interval
        delay = t_sched - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(t_sched)))
    sent_elapsed = clock() - t0
    await asyncio.gather(*tasks)
    elapsed = clock() - t0
    for conn in idle:
        conn.close()
    done = stats["ok"] + stats["non2xx"]
    return {
        "mode": "rate",
        "target_rate": args.rate,
        "scheduled": total,
        "duration_s": elapsed,
        "send_window_s": sent_elapsed,
        "achieved_rps": done / sent_elapsed if sent_elapsed else 0.0,
        "requests": done,
        "ok": stats["ok"],
        "errors": stats["errors"],
        "non2xx": stats["non2xx"],
        "connections_opened": opened,
        "latency_us": percentiles(stats["service"]),
        "latency_from_schedule_us": percentiles(stats["sched"]),
        "send_lag_us": percentiles(stats["late"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["stream", "rate"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="file holding the JSON body")
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--max-connections", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    with open(args.body, "rb") as f:
        body = f.read()
    raw, host, port = build_request(args.url, body, args.header)
    runner = run_stream if args.mode == "stream" else run_rate
    result = asyncio.run(runner(args, raw, host, port))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
