#!/usr/bin/env python3
"""Local-engine benchmark: Switchyard's in-process llama.cpp tier against llama.cpp's own
llama-server, same model, same machine, alternating rounds.

    bench/local_engine.sh            # builds nothing; see docs/benchmarks.md for llama-server

Measures, through the OpenAI streaming API of each server:
  prefill tokens/s      a ~1,000-token prompt that no cache holds, max_tokens=1
  decode tokens/s       one stream, tokens after the first / time after the first
  TTFT                  a short question, streamed
  aggregate tokens/s    1, 2, 4, 8 concurrent streams (and the worst TTFT among them)
  shared-prefix TTFT    requests that share a 1,000-token system prompt vs. ones that do not
"""
import argparse
import json
import random
import statistics
import sys
import threading
import time

import httpx

WORDS = ("station platform signal track junction freight carriage timetable conductor ticket "
         "passenger engine brake switch depot route tunnel bridge schedule delay").split()


def filler(seed: int, n_words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


class Server:
    def __init__(self, url: str, key: str, model: str):
        self.url = url.rstrip("/")
        self.model = model
        # No keep-alive: llama-server closes idle connections, which a reused one would hit.
        self.http = httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=300,
                                 limits=httpx.Limits(max_keepalive_connections=0))

    def stream(self, messages, max_tokens: int, temperature: float = 0.0, seed: int = 1):
        """Returns (ttft seconds, completion tokens, total seconds, prompt tokens)."""
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "seed": seed, "stream": True,
                "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        first = None
        chunks = 0
        usage = {}
        with self.http.stream("POST", f"{self.url}/chat/completions", json=body) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        chunks += 1
                        if first is None:
                            first = time.perf_counter() - start
        total = time.perf_counter() - start
        return (first if first is not None else total, usage.get("completion_tokens", chunks),
                total, usage.get("prompt_tokens", 0))


def story(i: int):
    return [{"role": "user", "content": f"Write a long story about a train driver called number {i}."}]


def measure(server: Server, rounds: int) -> dict:
    out = {}
    # Warm-up: page in the weights and let both servers allocate.
    server.stream(story(0), 8)

    rates = []
    for r in range(rounds):
        msgs = [{"role": "user", "content": f"{r} {time.time()} " + filler(1000 + r, 700) + "\nSummarize."}]
        _, _, total, prompt_tokens = server.stream(msgs, 1)
        rates.append(prompt_tokens / total if prompt_tokens else 0)
    out["prefill_tok_s"] = statistics.median(rates)

    decode, ttft = [], []
    for r in range(rounds):
        first, tokens, total, _ = server.stream(story(r), 128, temperature=0.7, seed=r)
        if tokens > 1:
            decode.append((tokens - 1) / (total - first))
        first, _, _, _ = server.stream([{"role": "user", "content": "What is the capital of France?"}], 16)
        ttft.append(first)
    out["decode_tok_s"] = statistics.median(decode)
    out["ttft_ms"] = statistics.median(ttft) * 1000

    for conc in (1, 2, 4, 8):
        aggs, worst = [], []
        for r in range(rounds):
            results = [None] * conc

            def run(i):
                results[i] = server.stream(story(100 * conc + 10 * r + i), 128, temperature=0.7, seed=i + r)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            aggs.append(sum(x[1] for x in results) / wall)
            worst.append(max(x[0] for x in results))
        out[f"agg_{conc}_tok_s"] = statistics.median(aggs)
        out[f"worst_ttft_{conc}_ms"] = statistics.median(worst) * 1000

    system = "You are the assistant of a railway company. Rules: " + filler(7, 650)
    questions = ["When does the first train leave?", "Can I bring a bicycle?", "Is there wifi?",
                 "How do refunds work?", "Where is platform 9?"]
    server.stream([{"role": "system", "content": system}, {"role": "user", "content": "Hello"}], 1)
    shared, unique = [], []
    for r in range(rounds):
        for q in questions:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": q}]
            shared.append(server.stream(msgs, 4)[0])
            # The same length of system prompt, but starting differently: nothing to reuse.
            msgs = [{"role": "system", "content": f"{r}-{q} {time.time()} " + system},
                    {"role": "user", "content": q}]
            unique.append(server.stream(msgs, 4)[0])
    out["ttft_shared_prefix_ms"] = statistics.median(shared) * 1000
    out["ttft_unique_prefix_ms"] = statistics.median(unique) * 1000
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", default="none")
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    result = measure(Server(args.url, args.key, args.model), args.rounds)
    result["label"] = args.label
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
