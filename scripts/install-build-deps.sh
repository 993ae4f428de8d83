#!/usr/bin/env bash
# Installs the system packages the build needs when they are missing: cmake and a C/C++
# toolchain for llama.cpp, libclang for its bindgen bindings, pkg-config, and python3-venv.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v c++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
# libclang itself (bindgen loads it), not libclang-cpp, which plain clang installs pull in.
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || need+=(libclang-dev)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing build packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}"
