#!/usr/bin/env bash
# Regenerates public_pairs.jsonl from the PyPI package contradish (MIT). Deterministic: the same
# package version gives the same file. Needs pip and python3; the committed file makes running
# this unnecessary for the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="1.34.0"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip download "contradish==${version}" --no-deps -d "$tmp" -q
python3 -m zipfile -e "$tmp"/contradish-"${version}"-py3-none-any.whl "$tmp/unpacked"
python3 "$here/extract_public.py" "$tmp/unpacked" "$here/public_pairs.jsonl"
