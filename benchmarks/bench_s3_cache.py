"""Benchmark: the shared layer store on S3 (a moto server), a fresh machine's synth warm against cold, and what a
lookup that misses costs a build.

Run (after ``bash scripts/setup.sh``; needs PyPI for the synth part)::

    .venv/bin/python benchmarks/bench_s3_cache.py                 # about 10 minutes on 2 CPUs
    .venv/bin/python benchmarks/bench_s3_cache.py --rounds 5 --miss-rounds 21

Part 1, ``synth``: ``cdk synth`` with the real CLI of a ``PipLambdaLayers`` for four targets (python3.12 and
python3.13, x86_64 and arm64; the 13 wheel-only packages of ``bench_targets``) on a fresh machine: a fresh
``cdk.out``, an empty local layer store, empty pip and uv caches. Interleaved:

- ``cold-no-s3``: no cache URL: the four layers are built;
- ``cold``: a cache URL whose prefix is empty: the four layers are looked up (miss), built and written to S3;
- ``warm-s3``: a cache URL whose prefix an earlier (unmeasured) synth filled: the four layers come from S3;
- ``warm-local``: no cache URL, the local layer store that synth filled: the floor (CDK's own work).

Goal (the issue's): a layer served from S3 in at most half the time of building it, per layer (what the bundler
reports) and for the whole synth (``warm-s3`` against ``cold``, where CDK's own work is the floor).

Part 2, ``miss``: what a shared store that never hits costs. ``cdk-pip-layer build`` of a one-wheel layer, offline,
with a fresh local store each run: ``local`` (no cache URL) against ``s3-miss`` (an empty prefix: looked up,
built, written), ``s3-miss-read-only`` (looked up, built, not written) and ``s3-hit`` (served from a prefix written
once: what a hit of the command line costs, its speculative build included). Goal: ``s3-miss`` less than 0.5 s
slower than ``local`` (medians of the interleaved rounds, the whole build as a user waits for it). The store's
work is also measured alone, in a fresh process each time (``store-local`` and ``store-s3``: ``open_store``, a
lookup that misses and the write of the new entry, with the import of boto3 and the session it takes): what the
build would pay if none of it overlapped the build (the lookup runs beside it, see ``build.py``).

Results: ``benchmarks/results/bench_s3_cache.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from _bench import (
    CDK,
    CLI,
    SECONDS,
    VENV_BIN,
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

TARGETS = ["python3.12/x86_64", "python3.12/arm64", "python3.13/x86_64", "python3.13/arm64"]
SYNTH_VARIANTS = ("cold-no-s3", "cold", "warm-s3", "warm-local")
WARM_GOAL = 0.5
MISS_GOAL_SECONDS = 0.5
BUCKET = "bench-layer-cache"

APP = """
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayers

HERE = Path(__file__).resolve().parent
app = cdk.App()
stack = cdk.Stack(app, "Bench")
PipLambdaLayers(stack, "Deps", requirements=HERE / "requirements.txt", targets={targets!r})
app.synth()
"""

# The store alone: open it, look up a key that is not there, write the entry (a fresh process: imports included).
STORE_ONLY = """
import json, sys, time
from pathlib import Path
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.options import BuildSettings
from cdk_pip_layer.store import open_store
requirements, layer, url, key = sys.argv[1:5]
start, cpu = time.perf_counter(), time.process_time()
store = open_store(BuildSettings.parse(cache_url=url or None), read_requirements(Path(requirements)))
fetched = store.fetch(key, Path(layer).with_name("fetched.zip"))
assert fetched.record is None and fetched.problem is None, fetched
store.put(key, Path(layer), {"distributions": ["six==1.16.0"]})
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}))
"""

_BUILT = re.compile(
    r"cdk-pip-layer: (?P<label>\S+): built (?:locally|in \S+) with (?P<installer>.+?) in (?P<seconds>[0-9.]+) s"
)
_REUSED = re.compile(
    r"cdk-pip-layer: (?P<label>\S+): layer \w+ reused from the cache (?P<where>\S+): .*\((?P<seconds>[0-9.]+) s\)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto(log: Path) -> Iterator[str]:
    """A moto server on a free port; its endpoint."""
    import urllib.request

    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        for _ in range(150):
            with contextlib.suppress(OSError), opener.open(f"{endpoint}/moto-api/", timeout=2):
                break
            time.sleep(0.2)
        else:
            sys.exit(f"moto_server did not start:\n{log.read_text()[-2000:]}")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def aws_env(endpoint: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The benchmark's environment (PyPI alone, see pypi_only_env) with the emulator's AWS settings."""
    env = pypi_only_env(extra)
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "CDK_PIP_LAYER_CACHE_"))} | dict(extra or {})
    no_proxy = ",".join(v for v in (env.get("NO_PROXY"), "127.0.0.1,localhost") if v)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
    )
    return env


class SynthBench:
    def __init__(self, work: Path, endpoint: str) -> None:
        self.work = work
        self.endpoint = endpoint
        (work / "requirements.txt").write_text(WHEEL_ONLY_SET, encoding="utf-8")
        (work / "app.py").write_text(APP.format(targets=TARGETS), encoding="utf-8")
        self.warm_url = f"s3://{BUCKET}/warm"
        self._n = 0

    def synth(self, variant: str) -> dict[str, Any]:
        self._n += 1
        run_dir = self.work / f"{self._n:03d}-{variant}"
        caches = run_dir / "caches"
        extra = {
            "CDK_PIP_LAYER_CACHE_DIR": str(caches / "cdk-pip-layer"),
            "PIP_CACHE_DIR": str(caches / "pip"),
            "UV_CACHE_DIR": str(caches / "uv"),
        }
        if variant == "cold":
            extra["CDK_PIP_LAYER_CACHE_URL"] = f"s3://{BUCKET}/cold-{uuid.uuid4().hex}"
        elif variant in ("warm-s3", "fill"):
            extra["CDK_PIP_LAYER_CACHE_URL"] = self.warm_url
        if variant in ("warm-local", "fill"):  # the local store the unmeasured synth filled (only read after)
            extra["CDK_PIP_LAYER_CACHE_DIR"] = str(self.work / "filled-local-store")
        app = f"{shlex.quote(sys.executable)} {shlex.quote(str(self.work / 'app.py'))}"
        start = time.perf_counter()
        stderr = run(
            [CDK, "synth", "-q", "--no-notices", "-o", run_dir / "cdk.out", "--app", app],
            env=aws_env(self.endpoint, extra),
        )
        seconds = time.perf_counter() - start
        built = [m.groupdict() for m in _BUILT.finditer(stderr)]
        reused = [m.groupdict() for m in _REUSED.finditer(stderr)]
        want_reused = variant.startswith("warm")
        if (len(reused), len(built)) != ((4, 0) if want_reused else (0, 4)) or "warning" in stderr:
            sys.exit(f"bench_s3_cache: {variant} built {len(built)} and reused {len(reused)} layers:\n{stderr}")
        where = self.warm_url if variant == "warm-s3" else str(self.work / "filled-local-store")
        if want_reused and not all(r["where"].startswith(where) for r in reused):
            sys.exit(f"bench_s3_cache: {variant} was not served from {where}:\n{stderr}")
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"built": built, "reused": reused, SECONDS: seconds}


class MissBench:
    def __init__(self, work: Path, endpoint: str) -> None:
        self.work = work
        self.endpoint = endpoint
        self.wheels = work / "wheels"
        run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", self.wheels,
             "six==1.16.0"],
            env=pypi_only_env(),
        )  # fmt: skip
        self.requirements = work / "requirements.txt"
        self.requirements.write_text("six==1.16.0\n", encoding="utf-8")
        self.layer = work / "layer.zip"
        with zipfile.ZipFile(self.layer, "w") as archive:
            archive.writestr("python/six.py", "# a layer\n" * 100)
        self.hit_url = f"s3://{BUCKET}/hit"
        self._n = 0

    def fill(self) -> None:
        """Write the entry the ``s3-hit`` variant is served (unmeasured)."""
        env = self._env(self.hit_url)
        run(
            [CLI, "build", "-r", self.requirements, "-o", Path(env["CDK_PIP_LAYER_CACHE_DIR"]).parent / "out",
             "--runtime", "python3.12", "--installer", "uv", "--installer-arg=--no-index",
             f"--installer-arg=--find-links={self.wheels}"],
            env=env,
        )  # fmt: skip

    def _env(self, url: str | None, **extra: str) -> dict[str, str]:
        self._n += 1
        run_dir = self.work / f"{self._n:03d}"
        env = aws_env(self.endpoint, {"CDK_PIP_LAYER_CACHE_DIR": str(run_dir / "cache"), **extra})
        if url:
            env["CDK_PIP_LAYER_CACHE_URL"] = url
        return env

    def build(self, variant: str) -> dict[str, Any]:
        if variant == "local":
            url = None
        elif variant == "s3-hit":  # the prefix fill() wrote: served from S3 to a fresh local store
            url = self.hit_url
        else:
            url = f"s3://{BUCKET}/miss-{uuid.uuid4().hex}"
        extra = {"CDK_PIP_LAYER_CACHE_READ_ONLY": "1"} if variant.endswith("read-only") else {}
        env = self._env(url, **extra)
        out = Path(env["CDK_PIP_LAYER_CACHE_DIR"]).parent / "out"
        start, before = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [str(CLI), "build", "--json", "-r", str(self.requirements), "-o", str(out), "--runtime", "python3.12",
             "--installer", "uv", "--installer-arg=--no-index", f"--installer-arg=--find-links={self.wheels}"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds, cpu = time.perf_counter() - start, _children_cpu() - before
        stderr = done.stderr
        if done.returncode != 0 or "is not used" in stderr or "could not keep" in stderr:
            sys.exit(f"bench_s3_cache: {variant} failed or warned:\n{stderr}")
        reused = json.loads(done.stdout)["reused_from"]
        if (reused is not None and str(reused).startswith(self.hit_url)) != (variant == "s3-hit"):
            sys.exit(f"bench_s3_cache: {variant} was reused from {reused}")
        shutil.rmtree(out.parent, ignore_errors=True)
        return {SECONDS: seconds, "cpu_seconds": round(cpu, 3)}

    def store_only(self, variant: str) -> dict[str, Any]:
        url = f"s3://{BUCKET}/store-{uuid.uuid4().hex}" if variant == "store-s3" else ""
        env = self._env(None)
        done = subprocess.run(
            [sys.executable, "-c", STORE_ONLY, str(self.requirements), str(self.layer), url, uuid.uuid4().hex * 2],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"bench_s3_cache: {variant} failed:\n{done.stderr}")
        shutil.rmtree(Path(env["CDK_PIP_LAYER_CACHE_DIR"]).parent, ignore_errors=True)
        measured = json.loads(done.stdout)
        return {SECONDS: measured["seconds"], "cpu_seconds": round(measured["cpu_seconds"], 3)}


def _children_cpu() -> float:
    """CPU seconds (user and system) of the children this process waited for: a measure of work the machine's
    load does not stretch as it stretches wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_medians(samples: list[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for variant in dict.fromkeys(s.variant for s in samples):
        values = [float(s.facts["cpu_seconds"]) for s in samples if s.variant == variant and "cpu_seconds" in s.facts]
        if values:
            out[variant] = round(statistics.median(values), 3)
    return out


def _difference(summary: Mapping[str, Mapping[str, Any]], a: str, b: str) -> float | None:
    if a not in summary or b not in summary:
        return None
    return round(float(summary[a]["median_s"]) - float(summary[b]["median_s"]), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="synth rounds (default 3)")
    parser.add_argument("--miss-rounds", type=int, default=15, help="rounds of the miss part (default 15)")
    parser.add_argument("--skip-synth", action="store_true", help="only the miss part (no PyPI needed)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if not args.skip_synth and not CDK.exists():
        sys.exit("run 'bash scripts/setup.sh' first (node_modules/.bin/cdk)")
    import boto3

    with tempfile.TemporaryDirectory(prefix="bench-s3-cache-") as tmp, moto(Path(tmp) / "moto.log") as endpoint:
        work = Path(tmp)
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"
        ).create_bucket(Bucket=BUCKET)
        synth_samples = []
        if not args.skip_synth:
            (work / "synth").mkdir()
            synth = SynthBench(work / "synth", endpoint)
            print("filling the warm prefix (unmeasured) ...", file=sys.stderr)
            synth.synth("fill")
            synth_samples = interleaved({v: functools.partial(synth.synth, v) for v in SYNTH_VARIANTS}, args.rounds)
        (work / "miss").mkdir()
        miss = MissBench(work / "miss", endpoint)
        miss.fill()
        builds = ("local", "s3-miss", "s3-miss-read-only", "s3-hit")
        variants = {v: functools.partial(miss.build, v) for v in builds}
        variants |= {v: functools.partial(miss.store_only, v) for v in ("store-local", "store-s3")}
        miss_samples = interleaved(variants, args.miss_rounds)
    synth_summary = summarize(synth_samples)
    miss_summary = summarize(miss_samples)
    warm_over_cold = ratio(synth_summary, "warm-s3", "cold")
    store_cost = _difference(miss_summary, "store-s3", "store-local")
    build_cost = _difference(miss_summary, "s3-miss", "local")
    cpu = _cpu_medians(miss_samples)
    layer_work = _layer_work(synth_samples)
    layer_ratio = (
        round(layer_work["warm-s3"] / layer_work["cold"], 4) if {"warm-s3", "cold"} <= set(layer_work) else None
    )
    report = {
        "benchmark": "bench_s3_cache",
        "targets": TARGETS,
        "requirements": WHEEL_ONLY_SET.split(),
        "rounds": args.rounds,
        "miss_rounds": args.miss_rounds,
        "s3": "moto_server 5.2.5 on 127.0.0.1 (same machine)",
        "machine": machine([*synth_samples, *miss_samples]),
        "synth": {
            "summary": synth_summary,
            "ratios": {
                "warm-s3 / cold": warm_over_cold,
                "warm-local / cold": ratio(synth_summary, "warm-local", "cold"),
                "warm-s3 / warm-local": ratio(synth_summary, "warm-s3", "warm-local"),
                "cold / cold-no-s3": ratio(synth_summary, "cold", "cold-no-s3"),
            },
            "layer_work_medians_s": layer_work,
            "goal": {
                "layer from S3 / layer built": WARM_GOAL,
                "met (per layer)": layer_ratio is not None and layer_ratio <= WARM_GOAL,
                "layer from S3 / layer built, medians": layer_ratio,
                "met (whole synth, warm-s3 / cold)": warm_over_cold is not None and warm_over_cold <= WARM_GOAL,
            },
        },
        "miss": {
            "summary": miss_summary,
            "differences_s": {
                "s3-miss - local (build)": build_cost,
                "s3-miss-read-only - local (build)": _difference(miss_summary, "s3-miss-read-only", "local"),
                "store-s3 - store-local (the store alone)": store_cost,
                "s3-hit - local (build)": _difference(miss_summary, "s3-hit", "local"),
            },
            "ratios": {"s3-hit / local (build)": ratio(miss_summary, "s3-hit", "local")},
            "paired_differences_s": {
                "s3-miss - local, median of the rounds": _paired(miss_samples, "s3-miss", "local"),
                "s3-miss-read-only - local, median of the rounds": _paired(miss_samples, "s3-miss-read-only", "local"),
            },
            "cpu_medians_s": cpu,
            "cpu_differences_s": {
                "s3-miss - local (build)": _cpu_difference(cpu, "s3-miss", "local"),
                "store-s3 - store-local (the store alone)": _cpu_difference(cpu, "store-s3", "store-local"),
            },
            "goal": {
                "seconds": MISS_GOAL_SECONDS,
                "judged on": "s3-miss - local (build)",
                "met": build_cost is not None and build_cost < MISS_GOAL_SECONDS,
            },
        },
        "runs": samples_json([*synth_samples, *miss_samples]),
    }
    write_results("bench_s3_cache", report, args.output)
    print(json.dumps({"synth": report["synth"]["ratios"], "miss": report["miss"]["differences_s"]}), file=sys.stderr)
    return 0


def _paired(samples: list[Any], a: str, b: str) -> float | None:
    """The median of the rounds' differences ``a - b`` (each round runs every variant once, side by side)."""
    times: dict[str, dict[int, float]] = {a: {}, b: {}}
    for sample in samples:
        if sample.variant in times:
            times[sample.variant][sample.round] = float(sample.seconds)
    rounds = sorted(set(times[a]) & set(times[b]))
    return round(statistics.median(times[a][r] - times[b][r] for r in rounds), 3) if rounds else None


def _cpu_difference(cpu: Mapping[str, float], a: str, b: str) -> float | None:
    return round(cpu[a] - cpu[b], 3) if a in cpu and b in cpu else None


def _layer_work(samples: list[Any]) -> dict[str, float]:
    """Per variant, the median of the per-layer times the bundler reported (build, or copy from the store)."""
    out: dict[str, float] = {}
    for variant in SYNTH_VARIANTS:
        times = [
            float(item["seconds"])
            for s in samples
            if s.variant == variant
            for item in (s.facts.get("built") or []) + (s.facts.get("reused") or [])
        ]
        if times:
            out[variant] = round(statistics.median(times), 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
