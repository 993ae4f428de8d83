#!/usr/bin/env bash
# Builds llama.cpp's own server (the comparison peer of bench/local_engine.sh) from the llama.cpp
# source that the llama-cpp-python sdist on PyPI vendors, with nothing downloaded at build time.
# Output: bench/.work/llama-server/bin/llama-server
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/bench/.work/llama-server"
[ -x "$WORK/bin/llama-server" ] && { echo "$WORK/bin/llama-server"; exit 0; }
mkdir -p "$WORK/src"
cd "$WORK/src"
python3 -m pip download --quiet --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d .
tar xzf llama_cpp_python-0.3.36.tar.gz
cd llama_cpp_python-0.3.36/vendor/llama.cpp
cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build build --target llama-server -j"$(nproc)" >/dev/null
mkdir -p "$WORK/bin"
cp build/bin/llama-server "$WORK/bin/"
echo "$WORK/bin/llama-server"
