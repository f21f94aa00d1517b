"""Benchmark: one dependency set for four targets (``PipLambdaLayers``) against the same set for one target, cold.

Run (after ``bash scripts/setup.sh``; needs PyPI, pyenv's Pythons 3.12 and 3.13, uv)::

    .venv/bin/python benchmarks/bench_targets.py            # 3 rounds: about 5 minutes

Each run is a ``cdk synth`` with the real CLI into a fresh ``cdk.out``, with an empty layer cache and empty pip
and uv caches (everything downloaded): cold. Variants, interleaved:

- ``one``: ``PipLambdaLayer`` for python3.12/x86_64;
- ``four``: ``PipLambdaLayers`` for python3.12 and python3.13, x86_64 and arm64 (builds started together);
- ``four-one-by-one``: four ``PipLambdaLayer`` constructs, as one had to write before (CDK builds them in turn).

Goal: ``four`` within 1.5x of ``one``. Results: ``benchmarks/results/bench_targets.json`` (with each layer's build
time and installer as our bundler reported them).
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import (
    CDK,
    SECONDS,
    WHEEL_ONLY_SET,
    interleaved,
    machine,
    pypi_only_env,
    ratio,
    run,
    samples_json,
    summarize,
    write_results,
)

GOAL = 1.5
TARGETS = ["python3.12/x86_64", "python3.12/arm64", "python3.13/x86_64", "python3.13/arm64"]
REQUIREMENTS = WHEEL_ONLY_SET

APP = """
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayer, PipLambdaLayers

HERE = Path(__file__).resolve().parent
REQ = HERE / "requirements.txt"
TARGETS = {targets!r}
app = cdk.App()
stack = cdk.Stack(app, "Bench")
variant = sys.argv[1]
if variant == "one":
    PipLambdaLayer(stack, "Deps", requirements=REQ)
elif variant == "four":
    PipLambdaLayers(stack, "Deps", requirements=REQ, targets=TARGETS)
else:
    for target in TARGETS:
        runtime, architecture = target.split("/")
        PipLambdaLayer(stack, target.replace("/", "-"), requirements=REQ, runtime=runtime, architecture=architecture)
app.synth()
"""

_BUILT = re.compile(
    r"cdk-pip-layer: (?P<label>\S+): built (?:locally|in \S+) with (?P<installer>.+?) in (?P<seconds>[0-9.]+) s"
)
VARIANTS = ("one", "four", "four-one-by-one")


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
        (work / "app.py").write_text(APP.format(targets=TARGETS), encoding="utf-8")
        self._n = 0

    def synth(self, variant: str) -> dict[str, Any]:
        self._n += 1
        run_dir = self.work / f"{self._n:03d}-{variant}"
        caches = run_dir / "caches"
        env = pypi_only_env(
            {
                "CDK_PIP_LAYER_CACHE_DIR": str(caches / "cdk-pip-layer"),
                "PIP_CACHE_DIR": str(caches / "pip"),
                "UV_CACHE_DIR": str(caches / "uv"),
            }
        )
        app = f"{shlex.quote(sys.executable)} {shlex.quote(str(self.work / 'app.py'))} {variant}"
        start = time.perf_counter()
        stderr = run([CDK, "synth", "-q", "--no-notices", "-o", run_dir / "cdk.out", "--app", app], env=env)
        seconds = time.perf_counter() - start
        builds = [m.groupdict() for m in _BUILT.finditer(stderr)]
        expected = 1 if variant == "one" else 4
        if len(builds) != expected:
            sys.exit(f"bench_targets: {variant} built {len(builds)} layers, not {expected}:\n{stderr}")
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"builds": builds, SECONDS: seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if not CDK.exists():
        sys.exit("run 'bash scripts/setup.sh' first (node_modules/.bin/cdk)")
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        bench = Bench(Path(tmp))
        samples = interleaved({v: functools.partial(bench.synth, v) for v in VARIANTS}, args.rounds)
    summary = summarize(samples)
    four_over_one = ratio(summary, "four", "one")
    report = {
        "benchmark": "bench_targets",
        "targets": TARGETS,
        "requirements": REQUIREMENTS.split(),
        "rounds": args.rounds,
        "caches": "cold: fresh cdk.out, empty layer, pip and uv caches for every run",
        "machine": machine(samples),
        "summary": summary,
        "ratios": {
            "four / one": four_over_one,
            "four-one-by-one / one": ratio(summary, "four-one-by-one", "one"),
            "four / four-one-by-one": ratio(summary, "four", "four-one-by-one"),
        },
        "goal": {"four / one": GOAL, "met": four_over_one is not None and four_over_one <= GOAL},
        "runs": samples_json(samples),
    }
    write_results("bench_targets", report, args.output)
    print(f"medians: { {v: summary[v]['median_s'] for v in VARIANTS} }; ratios {report['ratios']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
