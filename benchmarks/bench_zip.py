"""Benchmark: the layer zip, written by one thread (the serial ``zipfile`` writer it replaced) and by the parallel
writer, on real layers; the bytes must be identical.

Run (after ``bash scripts/setup.sh``; needs PyPI once, to install the layers)::

    .venv/bin/python benchmarks/bench_zip.py               # 5 rounds: about 3 minutes

The trees are installed once with uv for python3.12/x86_64: the issue's six native packages (about 120 MB) and a
near-limit layer (numpy + pandas + scipy, about 240 MB). Each zip runs in a child process of its own, which
reports the time of the zip call, the CPU time, the peak resident memory (``VmHWM``) and the zip's sha256.
Variants, interleaved: ``serial`` (the reference: ``zipfile``, entry after entry), ``parallel`` (the writer the
engine uses, all CPUs), ``parallel-1`` (the same with one deflating thread: its overhead alone). Results:
``benchmarks/results/bench_zip.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _bench import SECONDS, UV, interleaved, machine, pypi_only_env, ratio, run, samples_json, summarize, write_results

LAYERS = {
    "six-native-120MB": "numpy==2.1.3\npandas==2.2.3\ncryptography==44.0.0\npydantic==2.10.3\norjson==3.10.12\n"
    "requests==2.32.3\n",
    "near-limit-240MB": "numpy==2.1.3\npandas==2.2.3\nscipy==1.14.1\n",
}

# The child: zip ROOT into DEST with VARIANT, print what it measured. ``serial`` is the writer the engine used
# before (zipfile, one entry after the other, over the same sorted entries), kept here only to compare with.
_CHILD = """
import hashlib, json, os, re, shutil, stat, sys, time, zipfile
from pathlib import Path
from cdk_pip_layer.engine.layer.zip_writer import ZIP_EPOCH, _entries, write_layer_zip

variant, root, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def serial(root, dest):
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for entry in _entries(root):
            info = zipfile.ZipInfo(entry.name, date_time=ZIP_EPOCH)
            info.create_system = 3
            if entry.is_dir:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                info.compress_type = zipfile.ZIP_STORED
                archive.writestr(info, b"")
                continue
            st = entry.path.stat()
            info.external_attr = (stat.S_IFREG | (0o755 if st.st_mode & 0o111 else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = st.st_size
            with entry.path.open("rb") as src, archive.open(info, "w", force_zip64=st.st_size > 2**31) as out:
                shutil.copyfileobj(src, out, 1 << 20)
    digest = hashlib.sha256()  # what publish() then computed, reading the zip again
    with dest.open("rb") as zipped:
        while chunk := zipped.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

cpu, start = time.process_time(), time.perf_counter()
if variant == "serial":
    digest = serial(root, dest)
else:
    digest = write_layer_zip(root, dest, workers=1 if variant == "parallel-1" else None).sha256
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_kib": peak, "sha256": digest,
                  "zip_bytes": dest.stat().st_size}))
"""

VARIANTS = ("serial", "parallel", "parallel-1")


def install(work: Path, name: str, requirements: str) -> Path:
    root = work / name
    req = work / f"{name}.txt"
    req.write_text(requirements, encoding="utf-8")
    argv: list[str | Path] = [UV, "pip", "install", "--python-version", "3.12"]
    argv += ["--python-platform", "x86_64-manylinux_2_34", "--only-binary", ":all:"]
    run([*argv, "-r", req, "--target", root / "python", "-q"], env=pypi_only_env())
    return root


def zip_in_child(variant: str, root: Path, dest: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, variant, str(root), str(dest)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"bench_zip: {variant} failed:\n{done.stdout}\n{done.stderr}")
    dest.unlink()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result[SECONDS] = result["seconds"]  # the zip call alone, not the child's start-up
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "bench_zip", "rounds": args.rounds, "layers": {}}
    all_samples = []
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as tmp:
        work = Path(tmp)
        for name, requirements in LAYERS.items():
            print(f"{name}: installing ...", file=sys.stderr)
            root = install(work, name, requirements)
            variants = {v: functools.partial(zip_in_child, v, root, work / f"{name}-{v}.zip") for v in VARIANTS}
            samples = interleaved(variants, args.rounds)
            all_samples += samples
            digests = {s.facts["sha256"] for s in samples}
            summary = summarize(samples)
            report["layers"][name] = {
                "requirements": requirements.split(),
                "unzipped_bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()),
                "identical_bytes": len(digests) == 1,
                "summary": summary,
                "ratios": {
                    "parallel / serial": ratio(summary, "parallel", "serial"),
                    "parallel-1 / serial": ratio(summary, "parallel-1", "serial"),
                },
                "peak_mib": {v: round(summary[v]["facts"]["peak_kib"] / 1024, 1) for v in VARIANTS},
                "cpu_seconds": {v: round(summary[v]["facts"]["cpu_seconds"], 2) for v in VARIANTS},
            }
            if len(digests) != 1:
                sys.exit(f"bench_zip: the writers gave different zips for {name}: {digests}")
    report["machine"] = machine(all_samples)
    report["runs"] = samples_json(all_samples)
    write_results("bench_zip", report, args.output)
    for name, layer in report["layers"].items():
        print(
            f"{name}: serial {layer['summary']['serial']['median_s']:.2f} s, parallel "
            f"{layer['summary']['parallel']['median_s']:.2f} s ({layer['ratios']['parallel / serial']}x), "
            f"identical bytes: {layer['identical_bytes']}, peak MiB {layer['peak_mib']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
