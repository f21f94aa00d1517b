"""Benchmark: our layer build beside what users write by hand and the peers: plain pip, SAM CLI, bare uv.

Run (after ``bash scripts/setup.sh`` and ``bash benchmarks/setup.sh``; needs PyPI and pyenv's Python 3.12)::

    .venv/bin/python benchmarks/bench_build.py              # warm caches, 3 rounds: about 10 minutes
    .venv/bin/python benchmarks/bench_build.py --cold --rounds 3

The same fully pinned set for python3.12/x86_64 (six native packages, numpy + pandas + cryptography + pydantic +
orjson + requests, about 120 MB installed), each variant zipped the way it is shipped:

- ``pip``: ``python3.12 -m pip install -r REQ --target python`` then ``zip -r layer.zip python`` (what users write);
- ``sam``: ``sam build`` of an ``AWS::Serverless::LayerVersion`` (``BuildMethod: python3.12``, Python 3.12 on
  PATH), then ``zip -r`` of what it built;
- ``ours``: ``cdk-pip-layer build`` with its defaults (whichever installer it picks here; the summary says which);
- ``ours-pip`` / ``ours-uv``: the same with ``--installer pip`` / ``--installer uv``;
- ``uv``: ``uv pip install --python python3.12 -r REQ --target python`` then ``zip -r``: nothing else, the
  practical limit.

Caches: "warm" (the default) gives each variant its own pip and uv cache, filled by the unmeasured warm-up round;
``--cold`` gives every run empty ones (everything is downloaded). Every variant sees PyPI alone (this machine's
pip configuration is switched off). Results: a table on stderr and ``benchmarks/results/bench_build.json``, with
our phases per run and the machine's load.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

from _bench import (
    CLI,
    REPO,
    SECONDS,
    UV,
    interleaved,
    machine,
    our_phases,
    pyenv_python,
    pypi_only_env,
    ratio,
    run,
    samples_json,
    summarize,
    tree_stats,
    write_results,
)

SAM = REPO / "benchmarks" / ".venv-peers" / "bin" / "sam"

# The set: six pinned native packages and everything they pull in, pinned (resolved for python3.12).
REQUIREMENTS = """\
numpy==2.1.3
pandas==2.2.3
cryptography==44.0.0
pydantic==2.10.3
orjson==3.10.12
requests==2.32.3
annotated-types==0.8.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
idna==3.20
pycparser==3.12
pydantic-core==2.27.1
python-dateutil==4.0.0
pytz==2026.6
typing-extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
"""

SAM_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Deps:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
      CompatibleRuntimes: [python3.12]
    Metadata:
      BuildMethod: python3.12
      BuildArchitecture: x86_64
"""

VARIANTS = ("pip", "sam", "ours", "ours-pip", "ours-uv", "uv")
GOALS = {"ours / pip": 0.30, "ours / uv": 1.10}


class Bench:
    def __init__(self, work: Path, *, cold: bool) -> None:
        self.work = work
        self.cold = cold
        self.python = pyenv_python("3.12")
        self.zip = shutil.which("zip") or sys.exit("Debian's zip is missing: bash benchmarks/setup.sh")
        self.project = work / "project"
        (self.project / "layer").mkdir(parents=True)
        self.requirements = self.project / "layer" / "requirements.txt"
        self.requirements.write_text(REQUIREMENTS, encoding="utf-8")
        (self.project / "template.yaml").write_text(SAM_TEMPLATE, encoding="utf-8")
        self._n = 0

    def _fresh(self, name: str) -> Path:
        self._n += 1
        path = self.work / f"{self._n:03d}-{name}"
        path.mkdir()
        return path

    def env(self, variant: str, run_dir: Path) -> dict[str, str]:
        caches = run_dir / "caches" if self.cold else self.work / "caches" / variant
        env = pypi_only_env({"PIP_CACHE_DIR": str(caches / "pip"), "UV_CACHE_DIR": str(caches / "uv")})
        # SAM's python3.12 workflow runs the python3.12 it finds on PATH.
        env["PATH"] = f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _zip(self, parent: Path, env: dict[str, str]) -> float:
        start = perf_counter()
        run([self.zip, "-r", "-q", "layer.zip", "python"], env=env, cwd=parent)
        return perf_counter() - start

    def variant(self, name: str) -> dict[str, Any]:
        out = self._fresh(name)
        env = self.env(name, out)
        steps: dict[str, float]
        begin = perf_counter()

        if name in ("pip", "uv"):
            target = out / "python"
            if name == "pip":
                argv: list[str | Path] = [self.python, "-m", "pip", "install", "-r", self.requirements]
            else:
                argv = [UV, "pip", "install", "--python", self.python, "-r", self.requirements]
            start = perf_counter()
            run([*argv, "--target", target], env=env)
            steps = {"install": perf_counter() - start, "zip -r": self._zip(out, env)}
            seconds = perf_counter() - begin
            stats: dict[str, Any] = dict(tree_stats(target))
        elif name == "sam":
            start = perf_counter()
            build = out / "build"
            run([SAM, "build", "--template-file", self.project / "template.yaml", "--build-dir", build], env=env)
            steps = {"sam build": perf_counter() - start, "zip -r": self._zip(build / "Deps", env)}
            seconds = perf_counter() - begin
            stats = dict(tree_stats(build / "Deps" / "python"))
            out = build / "Deps"
        else:
            installer = {"ours": [], "ours-pip": ["--installer", "pip"], "ours-uv": ["--installer", "uv"]}[name]
            stderr = run(
                [CLI, "build", "-r", self.requirements, "--runtime", "python3.12", "-o", out, "-v", *installer], env=env
            )
            seconds = perf_counter() - begin
            steps = our_phases(stderr)
            stats = dict(tree_stats(out / "artifacts"))
            installer_line = [line for line in stderr.splitlines() if "] installer: " in line]
            stats["installer"] = installer_line[0].split("] installer: ", 1)[1] if installer_line else "?"
        facts: dict[str, Any] = {**stats, "zipped_bytes": (out / "layer.zip").stat().st_size}
        facts["steps_s"] = {k: round(v, 3) for k, v in steps.items()}
        facts[SECONDS] = seconds
        shutil.rmtree(self.work / f"{self._n:03d}-{name}", ignore_errors=True)
        return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="empty pip and uv caches for every run")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"a subset of {','.join(VARIANTS)}")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    chosen = [v for v in args.variants.split(",") if v]
    if "sam" in chosen and not SAM.exists():
        sys.exit(f"{SAM} is missing: bash benchmarks/setup.sh")
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        bench = Bench(Path(tmp), cold=args.cold)
        samples = interleaved({v: functools.partial(bench.variant, v) for v in chosen}, args.rounds)
    summary = summarize(samples)
    ratios = {f"{v} / pip": ratio(summary, v, "pip") for v in chosen if v != "pip"}
    ratios |= {"ours / uv": ratio(summary, "ours", "uv"), "ours-uv / uv": ratio(summary, "ours-uv", "uv")}
    report = {
        "benchmark": "bench_build",
        "caches": "cold" if args.cold else "warm",
        "target": "python3.12/x86_64",
        "requirements": REQUIREMENTS.split(),
        "rounds": args.rounds,
        "machine": machine(samples),
        "summary": summary,
        "ratios": ratios,
        "goals": GOALS,
        "runs": samples_json(samples),
    }
    default = "bench_build_cold" if args.cold else "bench_build"
    write_results(default, report, args.output)
    print(f"\n{'variant':10} {'median':>8} {'vs pip':>7}  unzipped   zipped  installer", file=sys.stderr)
    for v in chosen:
        s = summary[v]
        facts = s["facts"]
        print(
            f"{v:10} {s['median_s']:7.1f}s {ratio(summary, v, 'pip') or 1.0:7.2f}  "
            f"{facts['unzipped_bytes'] / 2**20:6.1f}MiB {facts['zipped_bytes'] / 2**20:5.1f}MiB  "
            f"{facts.get('installer', '')}",
            file=sys.stderr,
        )
    print(f"ratios: {ratios}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
