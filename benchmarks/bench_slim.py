"""Benchmark: what slimming saves and what it breaks, beside serverless-python-requirements' ``slim: true``.

Run (after ``bash scripts/setup.sh`` and ``bash benchmarks/setup.sh``; needs PyPI, pyenv's Python 3.12)::

    .venv/bin/python benchmarks/bench_slim.py               # about 15 minutes

Three dependency sets (data: pandas, numpy, scipy; ML: scikit-learn; web: fastapi, pydantic, sqlalchemy), each
for python3.12 on x86_64 and arm64, built once without slim by our engine (verification off), then measured as
three trees:

- ``none``: the layer as built;
- ``ours``: the engine's slim (``slim_layer``) on a copy, its proof import included where an interpreter of the
  target runs here;
- ``spr``: serverless-python-requirements' default slim rules on a copy of the same tree: its patterns
  ``**/*.py[c|o]``, ``**/__pycache__*`` and ``**/*.dist-info*`` deleted, then ``strip`` (its default: every
  symbol) on every ``*.so``, as its ``find … -name "*.so" -exec strip {} ;`` does, with binutils for the target's
  machine.

For each tree: the unzipped bytes, the zipped bytes (the engine's zip writer), how many of the modules that import
from ``none`` fail to import from it (every distribution's top-level modules and their public subpackages and
submodules), and how many ``importlib.metadata.version()`` calls fail (one per distribution of ``none``). Imports
run with pyenv's Python 3.12 where it runs on the target's machine (x86_64 here); the arm64 trees are measured for
size only and the results say so. Sizes are deterministic: one run, no rounds. Results:
``benchmarks/results/bench_slim.json``; ``report.py`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import machine, pyenv_python, pypi_only_env, tree_stats, write_results
from cdk_pip_layer.engine.distribution import importable_modules
from cdk_pip_layer.engine.layer.slim import slim_layer
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import LayerBuildOptions
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.smoke_import import LocalImporter, smoke_import

SETS = {
    "data": "pandas==2.2.3\nnumpy==2.1.3\nscipy==1.14.1\n",
    "ml": "scikit-learn==1.5.2\n",
    "web": "fastapi==0.115.6\npydantic==2.10.3\nsqlalchemy==2.0.36\n",
}
ARCHITECTURES = ("x86_64", "arm64")
VARIANTS = ("none", "ours", "spr")
_NOT_PUBLIC = ("_", "tests", "test", "testing", "conftest", "docs", "examples", "benchmarks")

# Run as ``python -I -S -c SCRIPT SITE NAMES_JSON``: prints how many versions cannot be read, and which.
_METADATA = r"""
import importlib.metadata as m, json, sys
sys.path.insert(0, sys.argv[1])
failed = []
for name in json.loads(sys.argv[2]):
    try:
        m.version(name)
    except Exception as exc:
        failed.append("%s: %s" % (name, type(exc).__name__))
print(json.dumps(failed))
"""


def _distributions(site: Path) -> dict[str, list[str]]:
    """Distribution name -> the files its RECORD lists (relative to ``site``)."""
    out: dict[str, list[str]] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        name = next(
            line.split(":", 1)[1].strip()
            for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines()
            if line.startswith("Name:")
        )
        record = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
        out[name] = [line.rsplit(",", 2)[0] for line in record if line]
    return out


def _modules(site: Path, dists: dict[str, list[str]]) -> list[str]:
    """Every distribution's top-level modules and their public subpackages and submodules."""
    out: set[str] = set()
    for recorded in dists.values():
        for top in importable_modules(recorded):
            out.add(top)
            directory = site / top.replace(".", "/")
            if not directory.is_dir():
                continue
            files = [p for pattern in ("*.py", "*.so") for p in directory.rglob(pattern)]
            children = importable_modules(p.relative_to(directory).as_posix() for p in files)
            out.update(f"{top}.{c}" for c in children if "." not in c and not c.startswith(_NOT_PUBLIC))
    return sorted(out)


def _failing_imports(importer: LocalImporter, layer: Path, modules: list[str], work: Path) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    findings = smoke_import(layer, {"all": modules}, importer, workdir=work, timeout=600)
    return sorted({f.subject.split(" (")[0] for f in findings})


def _failing_metadata(python: Path, site: Path, names: list[str]) -> list[str]:
    done = subprocess.run(
        [str(python), "-I", "-S", "-c", _METADATA, str(site), json.dumps(names)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"benchmark: the metadata check did not run:\n{done.stderr}")
    failed: list[str] = json.loads(done.stdout)
    return failed


def _spr_slim(site: Path, strip: str | None) -> dict[str, Any]:
    """serverless-python-requirements' default slim rules (lib/slim.js), applied to ``site``."""
    removed = 0
    for pattern in ("**/*.py[c|o]", "**/__pycache__*", "**/*.dist-info*"):
        for path in sorted(site.glob(pattern), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed += 1
            elif path.exists() or path.is_symlink():
                path.unlink()
                removed += 1
    stripped = failed = 0
    for path in sorted(site.rglob("*.so")) if strip is not None else []:
        done = subprocess.run([str(strip), str(path)], capture_output=True, check=False)
        stripped += done.returncode == 0
        failed += done.returncode != 0
    return {"removed_entries": removed, "stripped": stripped, "strip_failed": failed, "strip": strip}


def _strip_for(arch: str) -> str | None:
    machine_name = LambdaTarget.parse("python3.12", arch).machine
    return shutil.which(f"{machine_name}-linux-gnu-strip") or (
        shutil.which("strip") if machine_name == platform.machine() else None
    )


def _zip(artifacts: Path, dest: Path) -> int:
    write_layer_zip(artifacts, dest)
    size = dest.stat().st_size
    dest.unlink()
    return size


def _measure(
    artifacts: Path, base: dict[str, Any], python: Path | None, importer: LocalImporter | None, work: Path
) -> dict[str, Any]:
    site = artifacts / "python"
    work.mkdir(parents=True, exist_ok=True)
    facts: dict[str, Any] = {**tree_stats(artifacts), "zipped_bytes": _zip(artifacts, work / "layer.zip")}
    if importer is None or python is None:
        facts["imports"] = "not run: no Python 3.12 for this machine here"
        return facts
    failing = _failing_imports(importer, artifacts, base["modules"], work / "imports")
    facts["import_failures"] = sorted(set(failing) - set(base.get("baseline_failures", [])))
    facts["metadata_failures"] = _failing_metadata(python, site, base["distributions"])
    return facts


def _one(name: str, requirements: str, arch: str, root: Path) -> dict[str, Any]:
    target = LambdaTarget.parse("python3.12", arch)
    req = root / "requirements.txt"
    root.mkdir(parents=True, exist_ok=True)
    req.write_text(requirements, encoding="utf-8")
    options = LayerBuildOptions.parse(requirements=req, runtime="python3.12", architecture=arch, verify=False)
    print(f"[bench_slim] {name} {arch}: build", file=sys.stderr, flush=True)
    built = PipBasedLambdaLayerLocalBuilder.from_options(options, root / "none").build()
    python = pyenv_python("3.12") if target.machine == platform.machine() else None
    importer = LocalImporter(str(python)) if python else None
    if importer is not None and importer.unavailable(target):
        importer = python = None
    none = built.artifacts_dir
    dists = _distributions(none / "python")
    base: dict[str, Any] = {"distributions": sorted(dists), "modules": _modules(none / "python", dists)}
    if importer is not None:
        base["baseline_failures"] = _failing_imports(importer, none, base["modules"], root / "baseline")
    out: dict[str, Any] = {
        "distributions": list(built.distributions),
        "modules_checked": len(base["modules"]) - len(base.get("baseline_failures", [])),
        "modules_failing_without_slim": base.get("baseline_failures", []),
        "variants": {},
    }
    trees = {variant: root / variant / "artifacts" for variant in ("ours", "spr")}
    for tree in trees.values():
        shutil.copytree(none, tree, symlinks=True)
    print(f"[bench_slim] {name} {arch}: ours", file=sys.stderr, flush=True)
    start = time.perf_counter()
    slimmed = slim_layer(
        trees["ours"] / "python", target=target, scratch=root / "ours-scratch", python=str(python) if python else None
    )
    ours_facts = {"slim_seconds": round(time.perf_counter() - start, 2), "report": slimmed.report.to_dict()}
    ours_facts["warnings"] = list(slimmed.warnings)
    print(f"[bench_slim] {name} {arch}: spr", file=sys.stderr, flush=True)
    spr_facts = _spr_slim(trees["spr"] / "python", _strip_for(arch))
    for variant, tree, extra in (
        ("none", none, {}),
        ("ours", trees["ours"], ours_facts),
        ("spr", trees["spr"], spr_facts),
    ):
        print(f"[bench_slim] {name} {arch}: measure {variant}", file=sys.stderr, flush=True)
        out["variants"][variant] = {**_measure(tree, base, python, importer, root / f"measure-{variant}"), **extra}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--architectures", nargs="*", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args()
    env = pypi_only_env()  # this machine's pip and uv configuration off: PyPI alone
    os.environ.clear()
    os.environ.update(env)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-slim-") as tmp:
        for name in args.sets:
            for arch in args.architectures:
                results.setdefault(name, {})[arch] = _one(name, SETS[name], arch, Path(tmp) / name / arch)
    write_results("bench_slim", {"machine": machine(), "sets": results, "requirements": SETS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
