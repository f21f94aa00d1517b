"""Benchmark: rebuilds with the distribution cache (per-distribution reuse), against a cold build and against bare
``uv pip install --target`` + ``zip -r``.

Run (after ``bash scripts/setup.sh`` and ``bash benchmarks/setup.sh``; needs PyPI and pyenv's Pythons 3.12 and
3.13)::

    .venv/bin/python benchmarks/bench_rebuild.py                 # every part, 5 rounds: about 20 minutes
    .venv/bin/python benchmarks/bench_rebuild.py --parts a --rounds 3

Three parts, each with its variants interleaved (see ``_bench.py``), python3.12/x86_64 unless said:

- **a, one pin changed**: the 40-distribution set of ``bench_scale.py`` with ``rich`` pinned to a release this
  machine never built a layer of (another one each round: a new layer, whose smoke import must run), everything
  else as built before:

  - ``rebuild``: ``cdk-pip-layer build`` with its defaults, caches warm: uv's (every wheel there), the
    distribution cache (the other 39 distributions built before, twice, so that their byte-code is kept); the
    layer store emptied before each run (it would serve an unchanged layer without a build);
  - ``cold``: the same build with empty caches (uv's, the distribution cache: everything downloaded and made);
  - ``bare``: ``uv pip install --target python`` (uv's cache warm) + ``zip -r``, of the same changed set.

- **b, the native set**: the six-package set of ``bench_build.py`` (117 MiB), the same set every round:

  - ``ours``: the default build, caches warm (the layer store emptied before each run): the same bytes as before,
    so the smoke import's outcome is taken from the cache;
  - ``ours-new-bytes``: the same, but the kept smoke import outcomes removed before each run (the import runs,
    with the byte-code kept): what a layer of these distributions costs whose bytes were never imported;
  - ``ours-first``: the distribution cache emptied before each run (uv's warm): the first build of these bytes;
  - ``bare``: ``uv pip install --target`` + ``zip -r``.

- **c, four targets after one pin changed**: ``cdk synth`` of ``PipLambdaLayers`` for python3.12 and python3.13,
  x86_64 and arm64, with the 13-package set of ``bench_targets.py``, ``orjson`` pinned to another release each
  round; caches warm (uv's, the distribution cache and the layer store from two earlier synths of the set):

  - ``four``: that synth; ``one``: ``PipLambdaLayer`` for python3.12/x86_64 alone, likewise (caches of its own);
  - ``four-cold``: the four-target synth with empty caches (as ``bench_targets.py`` measures it).

- **d, when the installers write the layer's files** (whether a zip could start while they still install): the
  40-distribution set installed by ``uv pip install --target`` (cache warm, and cold) and by ``pip install
  --target`` (Python 3.12, its cache warm), each line of their output timed: uv writes every file in its last
  step ("Installed N packages"), pip into a temporary directory that it moves into ``--target`` at its very end.

Every build of ours runs in a child process of its own, which reports our phases and the peak memory of the build
process (``VmHWM``) and of the installer it ran (``ru_maxrss`` of its children); the bare variant reports the peak
of uv and of zip. The zips of ``rebuild`` and ``cold`` (a), and of the three builds of ours (b), are compared: the
same bytes every time, or the benchmark fails. Results: ``benchmarks/results/bench_rebuild.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _bench import (
    CDK,
    SECONDS,
    UV,
    WHEEL_ONLY_SET,
    interleaved,
    machine,
    measure_tree,
    our_phases,
    pyenv_python,
    pypi_only_env,
    ratio,
    samples_json,
    summarize,
    write_results,
)
from bench_build import REQUIREMENTS as NATIVE_SET
from bench_scale import FORTY

GOALS = {"a: rebuild / cold": 0.3, "a: rebuild / bare": 0.8, "b: ours / bare": 1.0}
# Releases of rich never built before in a run, one per round (the first for the warm-up round); 13.9.4 is the set's.
RICH = ["13.9.3", "13.9.2", "13.9.1", "13.9.0", "13.8.1", "13.8.0", "13.7.1", "13.7.0", "13.6.0", "13.5.3", "13.5.2"]
# Releases of orjson with wheels for every target (3.10.12 is the set's); the two variants of part c take turns.
ORJSON = ["3.10.11", "3.10.13", "3.10.14", "3.10.15", "3.10.16", "3.10.17", "3.10.18", "3.10.10", "3.11.0", "3.11.1"]
ORJSON += ["3.11.2", "3.11.3", "3.11.4", "3.11.5"]
TARGETS = ["python3.12/x86_64", "python3.12/arm64", "python3.13/x86_64", "python3.13/arm64"]
_PLATFORMS = {"x86_64": "x86_64-manylinux_2_34", "arm64": "aarch64-manylinux_2_34"}
_REUSED = re.compile(r"zip: (\d+) of (\d+) entries reused")

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

APP = """
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayer, PipLambdaLayers

TARGETS = {targets!r}
app = cdk.App()
stack = cdk.Stack(app, "Bench")
if sys.argv[1] == "four":
    PipLambdaLayers(stack, "Deps", requirements=Path(sys.argv[2]), targets=TARGETS)
else:
    PipLambdaLayer(stack, "Deps", requirements=Path(sys.argv[2]))
app.synth()
"""
_BUILT = re.compile(
    r"cdk-pip-layer: (?P<label>\S+): built (?:locally|in \S+) with (?P<installer>.+?) in (?P<seconds>[0-9.]+) s"
)


def _pinned(base: Sequence[str], name: str, version: str) -> str:
    return "\n".join(f"{name}=={version}" if line.lower().startswith(f"{name}==") else line for line in base) + "\n"


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.python = pyenv_python("3.12")
        self.zip = shutil.which("zip") or sys.exit("Debian's zip is missing: bash benchmarks/setup.sh")
        self.uv_cache = work / "uv-cache"  # warm, shared by the warm variants and bare uv
        self._n = 0
        self.rounds: dict[str, int] = {}

    def _dir(self, name: str) -> Path:
        self._n += 1
        path = self.work / f"{self._n:03d}-{name}"
        path.mkdir()
        return path

    def _env(self, cache: Path, uv_cache: Path | None = None) -> dict[str, str]:
        return pypi_only_env({"UV_CACHE_DIR": str(uv_cache or self.uv_cache), "CDK_PIP_LAYER_CACHE_DIR": str(cache)})

    # --- one build of ours, one of bare uv + zip -------------------------------------------------------------------

    def ours(self, requirements: str, cache: Path, *, uv_cache: Path | None = None) -> dict[str, Any]:
        run_dir = self._dir("ours")
        req = run_dir / "requirements.txt"
        req.write_text(requirements, encoding="utf-8")
        argv = ["build", "-r", str(req), "--runtime", "python3.12", "-o", str(run_dir / "out"), "--json", "-v"]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
            env=self._env(cache, uv_cache),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            sys.exit(f"bench_rebuild: our build failed:\n{done.stdout}\n{done.stderr}")
        peaks = json.loads(lines[-1])
        summary = json.loads("\n".join(lines[:-1]))
        reused = _REUSED.search(done.stderr)
        facts = {
            "sha256": summary["sha256"],
            "unzipped_mib": round(summary["unzipped_bytes"] / 2**20, 1),
            "installer": summary["installer"],
            "entries_reused": f"{reused.group(1)} of {reused.group(2)}" if reused else None,
            "import_reused": "smoke import: not run again" in done.stderr,
            "engine_peak_mib": round(peaks["engine_peak_kib"] / 1024, 1),
            "installer_peak_mib": round(peaks["installer_peak_kib"] / 1024, 1),
            "steps_s": {k: round(v, 3) for k, v in our_phases(done.stderr).items()},
            SECONDS: seconds,
        }
        shutil.rmtree(run_dir, ignore_errors=True)
        return facts

    def bare(self, requirements: str) -> dict[str, Any]:
        run_dir = self._dir("bare")
        req = run_dir / "requirements.txt"
        req.write_text(requirements, encoding="utf-8")
        env = self._env(self.work / "unused")
        uv = measure_tree(
            [UV, "pip", "install", "--python", self.python, "-r", req, "--target", run_dir / "python"],
            env=env,
            log=run_dir / "uv.log",
        )
        zipped = measure_tree(
            [self.zip, "-r", "-q", "layer.zip", "python"], env=env, log=run_dir / "zip.log", cwd=run_dir
        )
        facts = {
            "steps_s": {"install": round(uv["seconds"], 3), "zip -r": round(zipped["seconds"], 3)},
            "peak_mib": round(max(uv["peak_kib"], zipped["peak_kib"]) / 1024, 1),
            SECONDS: uv["seconds"] + zipped["seconds"],
        }
        shutil.rmtree(run_dir, ignore_errors=True)
        return facts

    def prefill(self, requirements: str, *, version: str = "3.12", platform: str | None = None) -> None:
        """Put the wheels of ``requirements`` into uv's warm cache (nothing of ours sees them)."""
        target = self.work / "prefill"
        argv: list[str | Path] = [UV, "pip", "install", "-q", "--target", target, "-r", "-"]
        argv += ["--python-version", version, "--only-binary", ":all:"]
        argv += ["--python-platform", platform] if platform else ["--python", self.python]
        done = subprocess.run(
            [str(a) for a in argv], input=requirements, env=self._env(self.work / "unused"), text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(f"bench_rebuild: filling uv's cache failed for {version} {platform}")
        shutil.rmtree(target, ignore_errors=True)

    def next_version(self, part: str, versions: Sequence[str]) -> str:
        """A release never used before in this part: one per round."""
        number = self.rounds.get(part, 0)
        self.rounds[part] = number + 1
        if number >= len(versions):
            sys.exit(f"bench_rebuild: part {part} has releases for {len(versions) - 1} rounds")
        return versions[number]


# --- part a ----------------------------------------------------------------------------------------------------------


def part_a(bench: Bench, rounds: int) -> dict[str, Any]:
    base = FORTY.split()
    warm = bench.work / "a-cache"
    print("[a] filling uv's cache and the distribution cache", file=sys.stderr)
    for version in ["13.9.4", *RICH[: rounds + 1]]:
        bench.prefill(_pinned(base, "rich", version))
    for _ in range(2):  # the second build compiles the byte-code of what the first one's import loaded
        bench.ours(_pinned(base, "rich", "13.9.4"), warm)
    current: dict[str, str] = {}
    shas: dict[str, dict[str, str]] = {}

    def requirements(variant: str) -> str:
        # Each round's three variants build the same changed set: the first of them picks it.
        if not current or variant in current:
            current.clear()
            current["version"] = bench.next_version("a", RICH)
        current[variant] = current["version"]
        return _pinned(base, "rich", current["version"])

    def rebuild() -> dict[str, Any]:
        shutil.rmtree(warm / "layers", ignore_errors=True)
        facts = bench.ours(requirements("rebuild"), warm)
        shas.setdefault(current["version"], {})["rebuild"] = facts["sha256"]
        return facts

    def cold() -> dict[str, Any]:
        fresh = bench._dir("cold-caches")
        facts = bench.ours(requirements("cold"), fresh / "cdk-pip-layer", uv_cache=fresh / "uv")
        shas.setdefault(current["version"], {})["cold"] = facts["sha256"]
        shutil.rmtree(fresh, ignore_errors=True)
        return facts

    def bare() -> dict[str, Any]:
        return bench.bare(requirements("bare"))

    samples = interleaved({"rebuild": rebuild, "cold": cold, "bare": bare}, rounds)
    same = all(len(set(by.values())) == 1 for by in shas.values() if len(by) == 2)
    if not same:
        sys.exit(f"bench_rebuild: a rebuild's bytes differ from a cold build's: {shas}")
    summary = summarize(samples)
    return {
        "set": "bench_scale's 40 distributions, rich pinned to a release never built before each round",
        "releases": RICH[: rounds + 1],
        "summary": summary,
        "ratios": {
            "rebuild / cold": ratio(summary, "rebuild", "cold"),
            "rebuild / bare": ratio(summary, "rebuild", "bare"),
        },
        "same_bytes_as_a_cold_build": same,
        "sha256_by_release": shas,
        "machine": machine(samples),
        "runs": samples_json(samples),
    }


# --- part b ----------------------------------------------------------------------------------------------------------


def part_b(bench: Bench, rounds: int) -> dict[str, Any]:
    warm = bench.work / "b-cache"
    print("[b] filling uv's cache", file=sys.stderr)
    bench.prefill(NATIVE_SET)
    shas: set[str] = set()

    def ours(forget: Sequence[str]) -> dict[str, Any]:
        for name in ("layers", *forget):
            shutil.rmtree(warm / name, ignore_errors=True)
        facts = bench.ours(NATIVE_SET, warm)
        shas.add(facts["sha256"])
        return facts

    variants: dict[str, Callable[[], dict[str, Any]]] = {
        "ours": functools.partial(ours, ()),
        "ours-new-bytes": functools.partial(ours, ("dists/import",)),
        "ours-first": functools.partial(ours, ("dists",)),
        "bare": functools.partial(bench.bare, NATIVE_SET),
    }
    samples = interleaved(variants, rounds)
    if len(shas) != 1:
        sys.exit(f"bench_rebuild: the native set's builds gave different bytes: {shas}")
    summary = summarize(samples)
    return {
        "set": NATIVE_SET.split(),
        "summary": summary,
        "ratios": {f"{v} / bare": ratio(summary, v, "bare") for v in variants if v != "bare"},
        "same_bytes_every_build": True,
        "machine": machine(samples),
        "runs": samples_json(samples),
    }


# --- part c ----------------------------------------------------------------------------------------------------------


def part_c(bench: Bench, rounds: int) -> dict[str, Any]:
    base = WHEEL_ONLY_SET.split()
    app = bench.work / "app.py"
    app.write_text(APP.format(targets=TARGETS), encoding="utf-8")
    print("[c] filling uv's cache for four targets", file=sys.stderr)
    versions = ["3.10.12", *ORJSON[: 2 * (rounds + 1)]]
    for target in TARGETS:
        runtime, architecture = target.split("/")
        for version in versions:
            bench.prefill(_pinned(base, "orjson", version), version=runtime[6:], platform=_PLATFORMS[architecture])
    caches = {"four": bench.work / "c-four", "one": bench.work / "c-one"}
    for variant, cache in caches.items():
        for _ in range(2):
            synth(bench, variant, _pinned(base, "orjson", "3.10.12"), cache, bench.uv_cache)

    def after_pin(variant: str) -> dict[str, Any]:
        version = bench.next_version(f"c-{variant}", ORJSON[::2] if variant == "four" else ORJSON[1::2])
        return synth(bench, variant, _pinned(base, "orjson", version), caches[variant], bench.uv_cache)

    def four_cold() -> dict[str, Any]:
        fresh = bench._dir("cold-caches")
        facts = synth(bench, "four", _pinned(base, "orjson", "3.10.12"), fresh / "cdk-pip-layer", fresh / "uv")
        shutil.rmtree(fresh, ignore_errors=True)
        return facts

    variants = {"four": functools.partial(after_pin, "four"), "one": functools.partial(after_pin, "one")}
    samples = interleaved({**variants, "four-cold": four_cold}, rounds)
    summary = summarize(samples)
    return {
        "set": "bench_targets' 13 packages, orjson pinned to another release each round",
        "targets": TARGETS,
        "summary": summary,
        "ratios": {
            "four / one": ratio(summary, "four", "one"),
            "four / four-cold": ratio(summary, "four", "four-cold"),
        },
        "machine": machine(samples),
        "runs": samples_json(samples),
    }


def synth(bench: Bench, variant: str, requirements: str, cache: Path, uv_cache: Path) -> dict[str, Any]:
    run_dir = bench._dir(f"synth-{variant}")
    req = run_dir / "requirements.txt"
    req.write_text(requirements, encoding="utf-8")
    env = bench._env(cache, uv_cache)
    app = f"{shlex.quote(sys.executable)} {shlex.quote(str(bench.work / 'app.py'))} {variant} {shlex.quote(str(req))}"
    result = measure_tree(
        [CDK, "synth", "-q", "--no-notices", "-o", run_dir / "cdk.out", "--app", app], env=env, log=run_dir / "log"
    )
    log = (run_dir / "log").read_text(encoding="utf-8", errors="replace")
    builds = [m.groupdict() for m in _BUILT.finditer(log)]
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"builds": builds, "peak_mib": round(result["peak_kib"] / 1024, 1), SECONDS: result["seconds"]}


# --- part d -------------------------------------------------------------------------------------------------------

_UV_STEP = re.compile(r"^(Resolved|Prepared|Installed|Audited) \d+ packages? in (?P<value>[\d.]+)(?P<unit>ms|s)$")


def part_d(bench: Bench, rounds: int) -> dict[str, Any]:
    requirements = "\n".join(FORTY.split()) + "\n"
    pip_cache = bench.work / "d-pip-cache"

    def timed(argv: Sequence[str | Path], env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(a) for a in argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        lines = [(round(time.perf_counter() - start, 3), line.rstrip()) for line in process.stdout]
        if process.wait() != 0:
            sys.exit(f"bench_rebuild: {argv} failed:\n" + "\n".join(text for _, text in lines[-20:]))
        return time.perf_counter() - start, lines

    def uv(cold: bool) -> dict[str, Any]:
        run_dir = bench._dir("uv")
        (run_dir / "requirements.txt").write_text(requirements, encoding="utf-8")
        cache = run_dir / "uv-cache" if cold else bench.uv_cache
        argv: list[str | Path] = [UV, "pip", "install", "--python", bench.python, "-r", run_dir / "requirements.txt"]
        seconds, lines = timed([*argv, "--target", run_dir / "python"], bench._env(bench.work / "unused", cache))
        steps = {}
        for _, line in lines:
            match = _UV_STEP.match(line.strip())
            if match:
                value = float(match["value"]) / (1000 if match["unit"] == "ms" else 1)
                steps[line.split()[0].lower()] = round(value, 3)
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"steps_s": steps, "writes_files_s": steps.get("installed"), SECONDS: seconds}

    def pip() -> dict[str, Any]:
        run_dir = bench._dir("pip")
        (run_dir / "requirements.txt").write_text(requirements, encoding="utf-8")
        argv: list[str | Path] = [bench.python, "-m", "pip", "install", "--no-compile", "--cache-dir", pip_cache, "-r"]
        argv += [run_dir / "requirements.txt", "--target", run_dir / "python"]
        seconds, lines = timed(argv, bench._env(bench.work / "unused"))
        installing = next((t for t, line in lines if line.startswith("Installing collected packages")), seconds)
        shutil.rmtree(run_dir, ignore_errors=True)
        # pip installs into a temporary directory, moved into --target after the last package.
        return {"installing_from_s": installing, "writes_files_s": None, SECONDS: seconds}

    variants: dict[str, Callable[[], dict[str, Any]]] = {
        "uv-warm": functools.partial(uv, False),
        "uv-cold": functools.partial(uv, True),
        "pip-warm": pip,
    }
    samples = interleaved(variants, rounds)
    summary = summarize(samples)
    return {
        "set": "bench_scale's 40 distributions",
        "summary": summary,
        "ratios": {},
        "machine": machine(samples),
        "runs": samples_json(samples),
    }


PARTS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parts", default="a,b,c,d")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    chosen = [p for p in args.parts.split(",") if p]
    if "c" in chosen and not CDK.exists():
        sys.exit("run 'bash scripts/setup.sh' first (node_modules/.bin/cdk)")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        bench = Bench(Path(tmp))
        for part in chosen:
            print(f"[bench_rebuild] part {part}", file=sys.stderr)
            results[part] = PARTS[part](bench, args.rounds)
    report = {
        "benchmark": "bench_rebuild",
        "target": "python3.12/x86_64 (a, b); four targets (c)",
        "rounds": args.rounds,
        "machine": machine(),
        "goals": GOALS,
        "parts": results,
    }
    write_results("bench_rebuild", report, args.output)
    for part, data in results.items():
        medians = {v: s["median_s"] for v, s in data["summary"].items()}
        print(f"{part}: medians {medians}; ratios {data['ratios']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
