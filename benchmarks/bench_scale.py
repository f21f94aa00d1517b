"""Benchmark: how the cost of a build grows with the layer: 1, 10 and 40 distributions, and a layer near Lambda's
size limit (about 240 MB unzipped); time and peak memory against the installed size.

Run (after ``bash scripts/setup.sh``; needs PyPI)::

    .venv/bin/python benchmarks/bench_scale.py              # 3 rounds: about 5 minutes

Each build is ``cdk-pip-layer build`` for python3.12/x86_64 with its defaults, run in a child process of its own
(warm pip and uv caches, filled by the unmeasured warm-up round), which reports:

- the wall time and our phases (install, verify, zip, ...);
- ``engine_peak_mib``: the peak resident memory of the build process itself (``VmHWM``): reading, pruning,
  verifying and zipping the layer. It must stay flat as the layer grows (the zip is streamed);
- ``installer_peak_mib``: the peak of the installer it ran (pip or uv; ``ru_maxrss`` of its children, which
  counts what a child inherits from the build process at fork, so an upper bound).

The sets are fully pinned (transitive dependencies included). Results: ``benchmarks/results/bench_scale.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import SECONDS, interleaved, machine, our_phases, pypi_only_env, samples_json, summarize, write_results

FORTY = """
annotated-types==0.8.0 attrs==24.2.0 boto3==1.35.76 botocore==1.35.99 cachetools==5.5.0 certifi==2026.10.19.post1
charset-normalizer==3.5.3 click==8.1.7 greenlet==3.5.6 idna==3.20 jinja2==3.1.4 jmespath==1.1.0 jsonschema==4.23.0
jsonschema-specifications==2025.9.1 lxml==5.3.0 markdown-it-py==4.3.0 markupsafe==3.0.4 mdurl==0.1.2 msgpack==1.1.0
orjson==3.10.12 packaging==24.2 pydantic==2.10.3 pydantic-core==2.27.1 pygments==2.21.0 python-dateutil==2.9.0.post0
pytz==2024.2 pyyaml==6.0.2 referencing==0.37.0 requests==2.32.3 rich==13.9.4 rpds-py==2026.9.1 s3transfer==0.10.4
simplejson==3.19.3 six==1.17.0 sqlalchemy==2.0.36 structlog==24.4.0 tabulate==0.9.0 tenacity==9.0.0
typing-extensions==4.16.0 urllib3==2.8.0
"""
SETS = {
    "1 distribution": ["orjson==3.10.12"],
    "10 distributions": [
        "annotated-types==0.8.0",
        "certifi==2026.10.19.post1",
        "charset-normalizer==3.5.3",
        "idna==3.20",
        "orjson==3.10.12",
        "pydantic==2.10.3",
        "pydantic-core==2.27.1",
        "requests==2.32.3",
        "typing-extensions==4.16.0",
        "urllib3==2.8.0",
    ],
    "40 distributions": FORTY.split(),
    "near the limit": [
        "numpy==2.1.3",
        "pandas==2.2.3",
        "python-dateutil==4.0.0",
        "pytz==2026.6",
        "scipy==1.14.1",
        "tzdata==2026.6",
    ],
}

# Runs our CLI in this (small) process and reports its own peak (VmHWM) and its children's (the installer).
_CHILD = """
import json, re, resource, sys
from pathlib import Path
from cdk_pip_layer.cli import main
code = main(sys.argv[1:])
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "engine_peak_kib": peak, "installer_peak_kib": children}))
"""


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.caches = work / "caches"
        self._n = 0

    def build(self, name: str) -> dict[str, Any]:
        self._n += 1
        run_dir = self.work / f"{self._n:03d}"
        run_dir.mkdir()
        req = run_dir / "requirements.txt"
        req.write_text("\n".join(SETS[name]) + "\n", encoding="utf-8")
        env = pypi_only_env({"PIP_CACHE_DIR": str(self.caches / "pip"), "UV_CACHE_DIR": str(self.caches / "uv")})
        argv = ["build", "-r", str(req), "--runtime", "python3.12", "-o", str(run_dir / "out"), "--json", "-v"]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv], env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            sys.exit(f"bench_scale: {name} failed:\n{done.stdout}\n{done.stderr}")
        peaks = json.loads(lines[-1])
        summary = json.loads("\n".join(lines[:-1]))
        shutil.rmtree(run_dir, ignore_errors=True)
        return {
            "distributions": len(summary["distributions"]),
            "installer": summary["installer"],
            "unzipped_mib": round(summary["unzipped_bytes"] / 2**20, 1),
            "zipped_mib": round(summary["zipped_bytes"] / 2**20, 1),
            "engine_peak_mib": round(peaks["engine_peak_kib"] / 1024, 1),
            "installer_peak_mib": round(peaks["installer_peak_kib"] / 1024, 1),
            "steps_s": {k: round(v, 3) for k, v in our_phases(done.stderr).items()},
            SECONDS: seconds,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        bench = Bench(Path(tmp))
        samples = interleaved({name: functools.partial(bench.build, name) for name in SETS}, args.rounds)
    summary = summarize(samples)
    table = []
    for name in SETS:
        runs = [s for s in samples if s.variant == name]
        table.append(
            {
                "set": name,
                **{k: runs[0].facts[k] for k in ("distributions", "installer", "unzipped_mib", "zipped_mib")},
                "median_s": summary[name]["median_s"],
                "zip_median_s": sorted(s.facts["steps_s"].get("zip", 0.0) for s in runs)[len(runs) // 2],
                "engine_peak_mib_max": max(s.facts["engine_peak_mib"] for s in runs),
                "installer_peak_mib_max": max(s.facts["installer_peak_mib"] for s in runs),
            }
        )
    report = {
        "benchmark": "bench_scale",
        "target": "python3.12/x86_64",
        "rounds": args.rounds,
        "sets": SETS,
        "machine": machine(samples),
        "table": table,
        "summary": summary,
        "runs": samples_json(samples),
    }
    write_results("bench_scale", report, args.output)
    for row in table:
        print(json.dumps(row), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
