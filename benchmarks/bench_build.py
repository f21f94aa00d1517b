"""Benchmark: our layer build against a plain ``pip install --target`` + ``zip -r`` of the same pinned set.

Run it with the project's venv (needs network access to PyPI, pyenv's Python 3.12 and Debian's ``zip``):

    .venv/bin/python benchmarks/bench_build.py            # 3 cold + 3 warm rounds, about 5 minutes
    .venv/bin/python benchmarks/bench_build.py --rounds 5 --no-warm

``zip`` missing?  ``apt-get install -y zip``.

What is compared, for python3.12 / x86_64, with the same interpreter (pyenv's 3.12) on both sides:

- ours:     ``cdk-pip-layer build -r REQ --runtime python3.12 --python PY312 --output DIR`` (pip path)
- baseline: ``PY312 -m pip install -r REQ --target DIR/python`` then ``zip -r layer.zip python`` in DIR
- ours-uv:  the same CLI with ``--installer uv`` (information only)
- base-nc:  the baseline with ``pip install --no-compile`` (information only: plain pip writes a .pyc for every
            module, which our build skips on purpose; this variant shows our overhead over pip's own work)

"Cold" gives every single run a fresh, empty ``PIP_CACHE_DIR`` and ``UV_CACHE_DIR``: everything is downloaded.
"Warm" gives each side its own cache, filled by one unmeasured run first, so downloads come from disk. Both sides
run with this machine's pip configuration files switched off (``PIP_CONFIG_FILE=/dev/null``, no
``PIP_FIND_LINKS``) so that they see the same index. The variants run interleaved, in a rotating order, and the
medians are reported with the ratio ours/baseline (goal: at most 1.15). Our CLI's phase timings (stderr) are
kept per run to show where the time goes.

Results: a table on stdout and ``benchmarks/results/bench_build.json``.
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_build.json"
GOAL = 1.15

# About 105 MB installed for python3.12/x86_64: ten distributions with native wheels (numpy, lxml, cryptography,
# cffi, pydantic-core, orjson, PyYAML, pillow, charset-normalizer, msgpack), every version pinned.
REQUIREMENTS = """\
numpy==2.1.3
lxml==5.3.0
cryptography==44.0.0
cffi==1.17.1
pycparser==2.22
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
orjson==3.10.12
PyYAML==6.0.2
pillow==11.0.0
charset-normalizer==3.4.0
msgpack==1.1.0
"""

VARIANTS = ("ours", "baseline", "ours-uv", "base-nc")
_PHASE = re.compile(r"^\[cdk-pip-layer +[\d.]+s\] (?P<phase>.+): done in (?P<seconds>[\d.]+) s$")


@dataclass
class Run:
    variant: str
    cache: str  # "cold" or "warm"
    round: int
    seconds: float
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    pyc_files: int
    steps: dict[str, float] = field(default_factory=dict)  # our phases, or the baseline's pip / zip


def find_python(version: str) -> Path:
    root = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    found = sorted(root.glob(f"versions/{version}.*/bin/python{version}"))
    if not found:
        sys.exit(f"bench_build: no Python {version} under {root}/versions (pyenv install {version})")
    return found[-1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_NO_CACHE_DIR"}}
    env.update({"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return env


def run_checked(argv: Sequence[str], *, env: dict[str, str], cwd: Path | None = None) -> str:
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench_build: {' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stderr


def tree_stats(root: Path) -> tuple[int, int, int]:
    """Bytes, file count and .pyc count below ``root``."""
    size = files = pyc = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            size += (Path(dirpath) / name).lstat().st_size
            files += 1
            pyc += name.endswith(".pyc")
    return size, files, pyc


class Bench:
    def __init__(self, python: Path, zip_exe: str, work: Path) -> None:
        self.python = python
        self.zip = zip_exe
        self.work = work
        self.cli = Path(sys.executable).parent / "cdk-pip-layer"
        self.requirements = work / "requirements.txt"
        self.requirements.write_text(REQUIREMENTS, encoding="utf-8")
        self.warm_caches = {name: work / f"warm-cache-{name}" for name in VARIANTS}

    def env_for(self, variant: str, cache: str, out: Path) -> dict[str, str]:
        cache_dir = out.parent / "cache" if cache == "cold" else self.warm_caches[variant]
        env = base_env()
        env.update({"PIP_CACHE_DIR": str(cache_dir / "pip"), "UV_CACHE_DIR": str(cache_dir / "uv")})
        return env

    def ours(self, out: Path, env: dict[str, str], installer: str) -> dict[str, float]:
        stderr = run_checked(
            [
                str(self.cli),
                "build",
                "--requirements",
                str(self.requirements),
                "--runtime",
                "python3.12",
                "--architecture",
                "x86_64",
                "--python",
                str(self.python),
                "--installer",
                installer,
                "--output",
                str(out),
            ],
            env=env,
        )
        steps: dict[str, float] = {}
        for line in stderr.splitlines():
            match = _PHASE.match(line)
            if match:
                phase = match.group("phase")
                phase = "install" if phase.startswith("install for ") else phase
                steps[phase] = float(match.group("seconds"))
        return steps

    def baseline(self, out: Path, env: dict[str, str], *, no_compile: bool = False) -> dict[str, float]:
        out.mkdir(parents=True)
        start = time.perf_counter()
        run_checked(
            [str(self.python), "-m", "pip", "install", "-r", str(self.requirements), "--target", str(out / "python")]
            + (["--no-compile"] if no_compile else []),
            env=env,
        )
        pip_done = time.perf_counter()
        run_checked([self.zip, "-r", "-q", "layer.zip", "python"], env=env, cwd=out)
        return {"pip install --target": pip_done - start, "zip -r": time.perf_counter() - pip_done}

    def measure(self, variant: str, cache: str, round_no: int) -> Run:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{variant}-{cache}-", dir=self.work))
        out = run_dir / "out"
        env = self.env_for(variant, cache, out)
        actions: dict[str, Callable[[], dict[str, float]]] = {
            "ours": lambda: self.ours(out, env, "pip"),
            "ours-uv": lambda: self.ours(out, env, "uv"),
            "baseline": lambda: self.baseline(out, env),
            "base-nc": lambda: self.baseline(out, env, no_compile=True),
        }
        start = time.perf_counter()
        steps = actions[variant]()
        seconds = time.perf_counter() - start
        size, files, pyc = tree_stats(out / ("python" if variant.startswith("base") else "artifacts"))
        result = Run(variant, cache, round_no, seconds, (out / "layer.zip").stat().st_size, size, files, pyc, steps)
        shutil.rmtree(run_dir)
        print(
            f"  {cache:4} round {round_no} {variant:8} {seconds:6.1f} s  "
            f"{size / 2**20:6.1f} MiB unzipped  {result.zipped_bytes / 2**20:5.1f} MiB zipped",
            flush=True,
        )
        return result

    def prime(self, variant: str) -> None:
        """Fill the variant's warm cache with one unmeasured run."""
        run_dir = Path(tempfile.mkdtemp(prefix=f"prime-{variant}-", dir=self.work))
        out = run_dir / "out"
        env = self.env_for(variant, "warm", out)
        if variant.startswith("base"):
            self.baseline(out, env, no_compile=variant == "base-nc")
        else:
            self.ours(out, env, "uv" if variant == "ours-uv" else "pip")
        shutil.rmtree(run_dir)


def summarize(runs: list[Run], variants: Sequence[str], cache: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for variant in variants:
        times = [r.seconds for r in runs if r.variant == variant and r.cache == cache]
        if not times:
            continue
        steps: dict[str, list[float]] = {}
        for run in runs:
            if run.variant == variant and run.cache == cache:
                for name, seconds in run.steps.items():
                    steps.setdefault(name, []).append(seconds)
        sample = next(r for r in runs if r.variant == variant and r.cache == cache)
        out[variant] = {
            "median_s": round(statistics.median(times), 2),
            "min_s": round(min(times), 2),
            "max_s": round(max(times), 2),
            "runs_s": [round(t, 2) for t in times],
            "step_medians_s": {name: round(statistics.median(v), 2) for name, v in steps.items()},
            "unzipped_mib": round(sample.unzipped_bytes / 2**20, 1),
            "zipped_mib": round(sample.zipped_bytes / 2**20, 1),
            "files": sample.files,
            "pyc_files": sample.pyc_files,
        }
    medians = {v: s["median_s"] for v, s in out.items() if isinstance(s, dict)}
    if "ours" in medians and "baseline" in medians:
        out["ratio_ours_to_baseline"] = round(medians["ours"] / medians["baseline"], 3)
    for other, key in (("ours-uv", "ratio_ours_uv_to_baseline"), ("base-nc", "ratio_base_nc_to_baseline")):
        if other in medians and "baseline" in medians:
            out[key] = round(medians[other] / medians["baseline"], 3)
    if "ours" in medians and "base-nc" in medians:
        out["ratio_ours_to_base_nc"] = round(medians["ours"] / medians["base-nc"], 3)
    return out


def tool_version(argv: Sequence[str], marker: str = "") -> str:
    """The first line of a tool's version output that contains ``marker``."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, env=base_env())
    lines = [line.strip() for line in (done.stdout or done.stderr).splitlines() if marker in line]
    return lines[0] if done.returncode == 0 and lines else "?"


def main(argv: Sequence[str] | None = None) -> int:  # noqa: C901 - the cases of one run, in sequence
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per cache mode (default 3)")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-cache rounds")
    parser.add_argument("--no-uv", action="store_true", help="skip the --installer uv variant")
    parser.add_argument("--no-nocompile", action="store_true", help="skip the pip --no-compile baseline variant")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    args = parser.parse_args(argv)

    python = find_python("3.12")
    zip_exe = shutil.which("zip")
    if zip_exe is None:
        sys.exit("bench_build: Debian's zip is missing: apt-get install -y zip")
    variants = ["ours", "baseline"] + ([] if args.no_uv else ["ours-uv"]) + ([] if args.no_nocompile else ["base-nc"])
    modes = ["cold"] + ([] if args.no_warm else ["warm"])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-bench-") as tmp:
        bench = Bench(python, zip_exe, Path(tmp))
        print(f"python: {python}; {len(REQUIREMENTS.splitlines())} pinned requirements; rounds: {args.rounds}")
        for mode in modes:
            if mode == "warm":
                print("  priming the warm caches ...", flush=True)
                for variant in variants:
                    bench.prime(variant)
            for round_no in range(1, args.rounds + 1):
                shift = (round_no - 1) % len(variants)  # rotate the order so no variant always runs first
                for variant in variants[shift:] + variants[:shift]:
                    runs.append(bench.measure(variant, mode, round_no))

    summary = {mode: summarize(runs, variants, mode) for mode in modes}
    print()
    print(f"{'cache':6} {'variant':9} {'median':>8} {'min':>7} {'max':>7} {'unzipped':>10} {'zipped':>8} {'.pyc':>6}")
    for mode in modes:
        for variant in variants:
            stats = summary[mode].get(variant)
            if not isinstance(stats, dict):
                continue
            print(
                f"{mode:6} {variant:9} {stats['median_s']:7.1f}s {stats['min_s']:6.1f}s {stats['max_s']:6.1f}s "
                f"{stats['unzipped_mib']:7.1f}MiB {stats['zipped_mib']:5.1f}MiB {stats['pyc_files']:6}"
            )
        ratio = summary[mode].get("ratio_ours_to_baseline")
        uv_ratio = summary[mode].get("ratio_ours_uv_to_baseline")
        nc_ratio = summary[mode].get("ratio_ours_to_base_nc")
        verdict = "meets" if isinstance(ratio, float) and ratio <= GOAL else "MISSES"
        print(
            f"{mode:6} ours/baseline = {ratio} ({verdict} the {GOAL}x goal); ours-uv/baseline = {uv_ratio}; "
            f"ours/base-nc = {nc_ratio}"
        )
        ours = summary[mode].get("ours")
        if isinstance(ours, dict):
            phases = ", ".join(f"{k} {v:.2f}s" for k, v in ours["step_medians_s"].items())
            print(f"{mode:6} our phases (medians): {phases}")
        base = summary[mode].get("baseline")
        if isinstance(base, dict):
            steps = ", ".join(f"{k} {v:.2f}s" for k, v in base["step_medians_s"].items())
            print(f"{mode:6} baseline steps (medians): {steps}")
        base_nc = summary[mode].get("base-nc")
        if isinstance(base_nc, dict):
            steps = ", ".join(f"{k} {v:.2f}s" for k, v in base_nc["step_medians_s"].items())
            print(f"{mode:6} base-nc steps (medians): {steps}")

    report = {
        "benchmark": "cold/warm build of a pinned ~100 MB set for python3.12/x86_64: ours vs pip --target + zip -r",
        "goal_ratio": GOAL,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": str(python),
            "pip": tool_version([str(python), "-m", "pip", "--version"]),
            "uv": tool_version([str(Path(sys.executable).parent / "uv"), "--version"]),
            "zip": tool_version([zip_exe, "-v"], "This is Zip"),
        },
        "requirements": REQUIREMENTS.splitlines(),
        "rounds": args.rounds,
        "summary": summary,
        "runs": [asdict(run) for run in runs],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
