"""What the benchmarks share: the machine and its load, interleaved rounds, medians and ratios, peak memory of a
child process, the environment every variant gets, and where results go.

Every benchmark measures its variants interleaved in one run (round 1: A B C, round 2: B C A, ...), after an
unmeasured warm-up round, so that a slow minute of the shared machine or the network hits all of them; only the
ratios of medians taken side by side mean something here. The machine's load average is sampled before every
measurement and reported with the results.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent
CLI = VENV_BIN / "cdk-pip-layer"
UV = VENV_BIN / "uv"
CDK = REPO / "node_modules" / ".bin" / "cdk"

_PHASE = re.compile(r"^\[cdk-pip-layer +[\d.]+s\] (?P<phase>.+): done in (?P<seconds>[\d.]+) s$")


@dataclass
class Sample:
    """One measured run of one variant."""

    variant: str
    round: int
    seconds: float
    load_1min: float  # the machine's 1-minute load average just before the run
    facts: dict[str, Any] = field(default_factory=dict)  # sizes, phases, peak memory: whatever the variant reports


Variant = Callable[[], dict[str, Any]]
SECONDS = "_seconds"  # a variant's own measure of the work, when the call also does bookkeeping


# 13 pinned wheel-only packages (five with native code) with wheels for python3.11 to 3.13 on both architectures:
# the set of the many-targets and the Docker benchmarks.
WHEEL_ONLY_SET = """\
requests==2.32.3
urllib3==2.2.3
idna==3.10
charset-normalizer==3.4.0
certifi==2024.8.30
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
orjson==3.10.12
PyYAML==6.0.2
python-dateutil==2.9.0.post0
six==1.16.0
"""


def interleaved(variants: Mapping[str, Variant], rounds: int, *, warm_up: bool = True) -> list[Sample]:
    """Run every variant once per round, rotating the order each round; round 0 (when ``warm_up``) is not kept.
    A variant returns what it wants recorded; its time is measured here, around the call, unless it returns its
    own under :data:`SECONDS`."""
    names = list(variants)
    samples: list[Sample] = []
    for round_no in range(0 if warm_up else 1, rounds + 1):
        shift = (round_no - 1) % len(names) if round_no else 0
        for name in names[shift:] + names[:shift]:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            facts = variants[name]()
            # A variant that times itself (to leave out its own bookkeeping: sizes, clean-up) says so.
            seconds = float(facts.pop(SECONDS, time.perf_counter() - start))
            label = "warm-up" if round_no == 0 else f"round {round_no}"
            print(f"  {label:8} {name:24} {seconds:7.2f} s  (load {load:.1f})", file=sys.stderr, flush=True)
            if round_no:
                samples.append(Sample(name, round_no, round(seconds, 3), round(load, 2), facts))
    return samples


def summarize(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    """Per variant: the median, min and max seconds, every run, and the first run's facts."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(s.variant for s in samples):
        mine = [s for s in samples if s.variant == name]
        times = [s.seconds for s in mine]
        out[name] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "runs_s": times,
            "facts": mine[0].facts,
        }
    return out


def ratio(summary: Mapping[str, Mapping[str, Any]], a: str, b: str) -> float | None:
    if a not in summary or b not in summary:
        return None
    return round(float(summary[a]["median_s"]) / float(summary[b]["median_s"]), 3)


def machine(samples: Sequence[Sample] = ()) -> dict[str, Any]:
    loads = [s.load_1min for s in samples]
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_now": [round(x, 2) for x in os.getloadavg()],
    }
    if loads:
        info["load_1min_during_runs"] = {
            "min": min(loads),
            "median": round(statistics.median(loads), 2),
            "max": max(loads),
        }
    return info


def write_results(name: str, data: Mapping[str, Any], path: Path | None = None) -> Path:
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"results: {path}", file=sys.stderr)
    return path


def samples_json(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]


def pypi_only_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with this machine's pip and uv configuration switched off (find-links, extra
    file indexes, constraints): every variant sees PyPI alone. Proxies and the CA bundle stay."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_NO_CACHE_DIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"}
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "UV_NO_CONFIG": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20",
            "CDK_DISABLE_VERSION_CHECK": "1",
            "SAM_CLI_TELEMETRY": "0",
        }
    )
    env.pop("CDK_DOCKER", None)
    if extra:
        env.update(extra)
    return env


def pyenv_python(version: str) -> Path:
    root = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    found = sorted(root.glob(f"versions/{version}.*/bin/python{version}"))
    if not found:
        sys.exit(f"no Python {version} under {root}/versions (pyenv install {version})")
    return found[-1]


def run(argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run a command; exit the benchmark with its output when it fails. Returns its stderr."""
    done = subprocess.run([str(a) for a in argv], env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"benchmark: {' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stderr


def our_phases(stderr: str) -> dict[str, float]:
    """The phases our CLI reports on stderr (``install for …`` is named ``install``)."""
    steps: dict[str, float] = {}
    for line in stderr.splitlines():
        match = _PHASE.match(line)
        if match:
            phase = match.group("phase")
            phase = "install" if phase.startswith("install for ") else phase
            steps[phase] = steps.get(phase, 0.0) + float(match.group("seconds"))
    return steps


def tree_stats(root: Path) -> dict[str, int]:
    size = files = pyc = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            size += (Path(dirpath) / name).lstat().st_size
            files += 1
            pyc += name.endswith(".pyc")
    return {"unzipped_bytes": size, "files": files, "pyc_files": pyc}


# Runs a command (the arguments after the log file) as its child and prints, as JSON, the wall time and the peak
# resident memory of the process tree (ru_maxrss of RUSAGE_CHILDREN: the largest of the command and the
# descendants it waited for). This launcher is small, so what a child keeps of its parent's peak at exec is too.
_TREE_PEAK = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    start = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=log)
    seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "seconds": seconds, "peak_kib": peak}))
"""


def measure_tree(
    argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> dict[str, Any]:
    """Run ``argv`` (in ``cwd``) under the small launcher: its time and the peak memory of its process tree (stderr
    to ``log``)."""
    done = subprocess.run(
        [sys.executable, "-c", _TREE_PEAK, str(log), *map(str, argv)],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        sys.exit(f"benchmark: the launcher failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        sys.exit(f"benchmark: {' '.join(map(str, argv))} failed ({result['code']}):\n{log.read_text()[-3000:]}")
    return result
