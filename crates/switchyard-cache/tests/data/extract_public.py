#!/usr/bin/env python3
"""Builds public_pairs.jsonl from the benchmark files shipped in the PyPI package contradish.

Usage: extract_public.py UNPACKED_WHEEL_DIR OUTPUT.jsonl   (fetch_public.sh does both steps)

contradish ships, per domain, cases of one "original" customer question and "adversarial"
rewordings of it that its authors label as asking the same thing (equivalence_confidence).
Positive pairs: the original and two of its rewordings. Negative pairs: the original and the
next case's original, and the original and one rewording of the next case (same file, so
same domain: realistic near-topic questions with different answers). Every choice is made
by hashing the text, so the output is identical on every run.
"""
import glob
import hashlib
import json
import os
import sys


def h(*parts):
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def main(root, out_path):
    files = sorted(glob.glob(os.path.join(root, "contradish", "benchmarks", "**", "*.json"), recursive=True))
    seen_originals = set()
    pairs = []
    seen_pairs = set()

    def add(a, b, same, kind, source):
        a, b = a.strip(), b.strip()
        key = (a, b) if a <= b else (b, a)
        if not a or not b or a == b or key in seen_pairs:
            return
        seen_pairs.add(key)
        pairs.append({"a": a, "b": b, "same": same, "kind": kind, "source": source})

    for path in files:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if not isinstance(doc, dict):
            continue
        cases = [
            c
            for c in doc.get("cases", [])
            if isinstance(c.get("original"), str)
            and isinstance(c.get("adversarial"), list)
            and c.get("contradiction_type") == "adversarial"
            and (c.get("equivalence_confidence") or 0) >= 0.9
            and c["original"] not in seen_originals
        ]
        for c in cases:
            seen_originals.add(c["original"])
        rel = os.path.relpath(path, os.path.join(root, "contradish", "benchmarks"))
        for i, case in enumerate(cases):
            orig = case["original"]
            src = f"{rel}#{case.get('id', i)}"
            variants = sorted(
                (v for v in case["adversarial"] if isinstance(v, str)), key=lambda v: h(orig, v)
            )
            for v in variants[:2]:
                add(orig, v, True, "same_case_rewording", src)
            if len(cases) < 2:
                continue
            other = cases[(i + 1) % len(cases)]
            add(orig, other["original"], False, "other_case_original", src)
            other_variants = sorted(
                (v for v in other["adversarial"] if isinstance(v, str)),
                key=lambda v: h(other["original"], v),
            )
            if other_variants:
                add(orig, other_variants[0], False, "other_case_rewording", src)

    with open(out_path, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    pos = sum(p["same"] for p in pairs)
    print(f"{len(pairs)} pairs ({pos} same, {len(pairs) - pos} different) -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
