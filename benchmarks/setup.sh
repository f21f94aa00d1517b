#!/usr/bin/env bash
# Sets up what the benchmarks need beyond the project's .venv (bash scripts/setup.sh first), idempotently:
#   - benchmarks/.venv-peers: the peers in benchmarks/peers.txt (SAM CLI), pinned, in a virtual environment of
#     their own, since they pin much of what the dev tools pin;
#   - Debian's zip, for the plain `zip -r` baselines;
#   - Debian's binutils for aarch64 (aarch64-linux-gnu-strip), for bench_slim's arm64 layers.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[bench-setup] %s\n' "$*" >&2; }

[ -x .venv/bin/python ] || { echo "bench-setup: run 'bash scripts/setup.sh' first" >&2; exit 1; }
if ! command -v zip >/dev/null 2>&1; then
  say "installing zip (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zip >/dev/null
fi
if ! command -v aarch64-linux-gnu-strip >/dev/null 2>&1; then
  say "installing binutils-aarch64-linux-gnu (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null
fi
if [ ! -x benchmarks/.venv-peers/bin/python ]; then
  say "creating benchmarks/.venv-peers"
  .venv/bin/python -m venv benchmarks/.venv-peers
fi
if ! benchmarks/.venv-peers/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/peers.txt; then
  echo "bench-setup: installing benchmarks/peers.txt failed" >&2; exit 1
fi
say "peers ready: $(grep -v '^#' benchmarks/peers.txt | xargs)"
