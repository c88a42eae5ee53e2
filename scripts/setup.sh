#!/usr/bin/env bash
# Idempotent setup: system packages (when root), .venv, the sdpg package with its extras.
# Usage: scripts/setup.sh [main|test]
#   main  installs what the demo needs; test also installs the Docker engine and test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-main}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System parts (only when root and missing).
want_pkgs=()
command -v bwrap >/dev/null 2>&1 || want_pkgs+=(bubblewrap)
command -v gcc >/dev/null 2>&1 || want_pkgs+=(gcc)
if [ "$mode" = test ]; then
  command -v dockerd >/dev/null 2>&1 || want_pkgs+=(docker.io)
fi
if [ "${#want_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${want_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${want_pkgs[@]}" >/dev/null
  else
    say "missing system packages (${want_pkgs[*]}); not root, continuing without them (sdpg doctor explains)"
  fi
else
  say "system packages present"
fi

# 2. Virtual environment.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
py=.venv/bin/python

# 3. Python packages; a stamp keyed on pyproject.toml keeps the second run fast.
extras="dev"
[ "$mode" = main ] && extras="plot"
stamp=".venv/.stamp-$mode-$(cat pyproject.toml constraints/cpu.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  say "python packages up to date ($stamp)"
else
  constraint=()
  if $py -c 'import torch' >/dev/null 2>&1; then
    say "keeping installed torch $($py -c 'import torch; print(torch.__version__)')"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    say "GPU machine: pip resolves torch itself (install your own CUDA build first to choose it)"
  else
    say "CPU machine: pinning the CPU torch build (constraints/cpu.txt)"
    constraint=(-c constraints/cpu.txt)
  fi
  say "installing sdpg[$extras] into .venv"
  $py -m pip install -q --upgrade pip >/dev/null
  $py -m pip install -q "${constraint[@]}" -e ".[$extras]"
  touch "$stamp"
fi
say "ready: $($py -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)')"
