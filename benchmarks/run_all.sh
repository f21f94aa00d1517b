#!/usr/bin/env bash
# Every benchmark of docs/explanation/benchmarks.md, one after the other, in one run; then its tables from their results.
#   bash scripts/setup.sh --docker && bash benchmarks/setup.sh && bash benchmarks/run_all.sh
# Each benchmark interleaves its own variants; the machine's load is recorded with every result.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
# bench_targets takes 5 rounds: its cold runs go to the network, whose answers vary more than the CPU's.
for bench in bench_zip bench_build bench_scale "bench_targets --rounds 5" bench_container bench_synth bench_slim \
  bench_s3_cache bench_rebuild bench_verify_scale; do
  printf '[run_all] %s (load: %s)\n' "$bench" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
  read -r -a argv <<<"$bench"
  "$py" "benchmarks/${argv[0]}.py" "${argv[@]:1}"
done
"$py" benchmarks/report.py
