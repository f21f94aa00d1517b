"""Benchmark: `cdk synth` of the example app (PipLambdaLayer) against the same app with a plain prebuilt layer.

Run it after ``bash scripts/setup.sh`` (needs the CDK CLI in node_modules, pyenv's Python 3.12 and PyPI):

    .venv/bin/python benchmarks/bench_synth.py              # about 2 minutes
    .venv/bin/python benchmarks/bench_synth.py --rounds 11

Three measurements, all through the real CLI (``node_modules/.bin/cdk synth -q``), each with its own empty layer
cache (``CDK_PIP_LAYER_CACHE_DIR``) so that nothing on this machine is reused by accident:

- cold:  a fresh ``cdk.out`` and an empty layer cache: the layer is built (pip, verify, zip). pip's own download
         cache is switched off (``PIP_NO_CACHE_DIR=1``): every wheel is downloaded.
- fresh: a fresh ``cdk.out`` with the layer cache warm (as in CI with a persisted cache): no build. Reported: the
         whole synth, and the build work = what our bundler reports for serving the layer (its stderr line).
- warm:  nothing changed, ``cdk.out`` kept: CDK skips bundling. Interleaved rounds against the plain app
         (``example_app/bench_plain_app.py``: ``LayerVersion(code=Code.from_asset(<the same layer.zip>))``), with
         the medians and their ratio (goal: at most 1.2).

Results: a table on stdout and ``benchmarks/results/bench_synth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CDK = REPO / "node_modules" / ".bin" / "cdk"
PYTHON = REPO / ".venv" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results" / "bench_synth.json"
PLAIN_APP = f"{PYTHON} example_app/bench_plain_app.py"
STACK = "CdkPipLayerExample"
WARM_GOAL = 1.2
FRESH_GOAL_SECONDS = 2.0
_BUILT = re.compile(r"built (?:locally|in \S+) with (?P<installer>.+?) in (?P<seconds>[0-9.]+) s")
_CACHED = re.compile(r"reused from the cache .+ \((?P<seconds>[0-9.]+) s\)")


@dataclass
class Run:
    seconds: float
    stderr: str

    @property
    def bundled(self) -> bool:
        return f"Bundling asset {STACK}/HttpJsonLayer" in self.stderr


def synth(outdir: Path, env: dict[str, str], app: str | None = None) -> Run:
    argv = [str(CDK), "synth", "-q", "--no-notices", "-o", str(outdir)]
    if app is not None:
        argv += ["--app", app]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"cdk synth failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return Run(seconds, proc.stderr)


def layer_zip(outdir: Path) -> Path:
    template = json.loads((outdir / f"{STACK}.template.json").read_text())
    [layer] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    return outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="warm rounds per app (default 7)")
    parser.add_argument("--fresh-rounds", type=int, default=3, help="fresh cdk.out rounds (default 3)")
    args = parser.parse_args()
    if not CDK.exists() or not PYTHON.exists():
        sys.exit("run 'bash scripts/setup.sh' first (needs .venv and node_modules/.bin/cdk)")

    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        env = dict(os.environ)
        env.update(
            {
                "CDK_PIP_LAYER_CACHE_DIR": str(work / "layer-cache"),
                "CDK_DISABLE_VERSION_CHECK": "1",
            }
        )
        env.pop("CDK_DOCKER", None)

        print("cold: fresh cdk.out, empty layer cache, no pip cache ...", file=sys.stderr)
        cold = synth(work / "cold" / "cdk.out", {**env, "PIP_NO_CACHE_DIR": "1"})
        built = _BUILT.search(cold.stderr)
        if built is None:
            sys.exit(f"the cold synth did not build the layer:\n{cold.stderr}")
        prebuilt = work / "prebuilt" / "layer.zip"
        prebuilt.parent.mkdir()
        shutil.copyfile(layer_zip(work / "cold" / "cdk.out"), prebuilt)
        zip_bytes = prebuilt.stat().st_size
        env["CDK_PIP_LAYER_BENCH_LAYER_ZIP"] = str(prebuilt)

        print("fresh: fresh cdk.out, layer cache warm ...", file=sys.stderr)
        fresh: list[tuple[float, float]] = []
        for i in range(args.fresh_rounds):
            run = synth(work / f"fresh-{i}" / "cdk.out", env)
            cached = _CACHED.search(run.stderr)
            if cached is None:
                sys.exit(f"a fresh synth did not reuse the layer cache:\n{run.stderr}")
            fresh.append((run.seconds, float(cached.group("seconds"))))

        print(f"warm: {args.rounds} interleaved rounds per app ...", file=sys.stderr)
        ours_out, plain_out = work / "warm-ours" / "cdk.out", work / "warm-plain" / "cdk.out"
        synth(ours_out, env)  # fill each cdk.out once, unmeasured
        synth(plain_out, env, PLAIN_APP)
        ours: list[float] = []
        plain: list[float] = []
        for i in range(args.rounds):
            pair = [("ours", ours_out, None), ("plain", plain_out, PLAIN_APP)]
            for name, outdir, app in pair if i % 2 == 0 else pair[::-1]:
                run = synth(outdir, env, app)
                if name == "ours" and run.bundled:
                    sys.exit(f"a warm synth bundled the layer again:\n{run.stderr}")
                (ours if name == "ours" else plain).append(run.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours_median, plain_median = statistics.median(ours), statistics.median(plain)
    fresh_median = statistics.median(s for s, _ in fresh)
    fresh_work = statistics.median(w for _, w in fresh)
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "cdk_cli": subprocess.run(
                [str(CDK), "--version"], capture_output=True, text=True, check=False, env=env
            ).stdout.strip(),
        },
        "cold": {
            "synth_seconds": round(cold.seconds, 3),
            "build_seconds": float(built.group("seconds")),
            "installer": built.group("installer"),
            "layer_zip_bytes": zip_bytes,
        },
        "fresh_cdk_out_cache_warm": {
            "rounds": [{"synth_seconds": round(s, 3), "build_work_seconds": w} for s, w in fresh],
            "synth_seconds_median": round(fresh_median, 3),
            "build_work_seconds_median": fresh_work,
            "extra_synth_seconds_vs_warm": round(fresh_median - ours_median, 3),
            "goal_build_work_seconds": FRESH_GOAL_SECONDS,
            "meets_goal": fresh_work < FRESH_GOAL_SECONDS,
        },
        "warm": {
            "rounds": args.rounds,
            "ours_seconds": [round(s, 3) for s in ours],
            "plain_seconds": [round(s, 3) for s in plain],
            "ours_median": round(ours_median, 3),
            "plain_median": round(plain_median, 3),
            "ratio": round(ours_median / plain_median, 3),
            "goal_ratio": WARM_GOAL,
            "meets_goal": ours_median / plain_median <= WARM_GOAL,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"cold build:            synth {cold.seconds:6.2f} s, of which the layer build {built.group('seconds')} s")
    print(
        f"fresh cdk.out, cached: synth {fresh_median:6.2f} s (median), build work {fresh_work:.3f} s, "
        f"{fresh_median - ours_median:+.2f} s against a warm synth"
    )
    print(
        f"warm synth:            ours {ours_median:6.2f} s, plain {plain_median:6.2f} s (medians of {args.rounds}), "
        f"ratio {ours_median / plain_median:.3f} (goal <= {WARM_GOAL})"
    )
    print(f"results: {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
