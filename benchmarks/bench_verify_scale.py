"""Benchmark: ``verify`` on layers of many distributions: its time must grow in proportion to their number.

Run (after ``bash scripts/setup.sh``; offline)::

    .venv/bin/python benchmarks/bench_verify_scale.py            # 1,250, 5,000 and 10,000 distributions

Each layer holds N small distributions (two modules, METADATA, WHEEL and a RECORD with hashes; each one depends
on the next), zipped in a temporary directory. Each verification (no smoke import) runs in a child process of its
own; the table gives the seconds and the seconds per 1,000 distributions, which stay about the same when the time
is linear (they grew tenfold from 1,250 to 10,000 distributions when it was quadratic). The ratio of the largest
layer's seconds per 1,000 to the smallest's (1.0 when linear) and the machine's load go to
``benchmarks/results/bench_verify_scale.json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from _bench import machine, write_results

_CHILD = """
import sys, time
from cdk_pip_layer import verify_layer_zip
start = time.perf_counter()
result = verify_layer_zip(sys.argv[1], "python3.12")
assert result.ok, result.summary()
print(time.perf_counter() - start)
"""


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_layer(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(count):
            name = f"pkg{index}"
            dist_info = f"{name}-1.0.dist-info"
            files = {f"{name}/__init__.py": b"X = 1\n", f"{name}/mod.py": b"Y = 2\n"}
            files[f"{dist_info}/METADATA"] = (
                f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nRequires-Dist: pkg{(index + 1) % count}\n\n"
            ).encode()
            files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nTag: py3-none-any\n"
            record = "".join(f"{p},{_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{dist_info}/RECORD,,\n"
            files[f"{dist_info}/RECORD"] = record.encode()
            for member, data in files.items():
                info = zipfile.ZipInfo(f"python/{member}", (2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[1250, 5000, 10000])
    parser.add_argument("--output", type=Path, default=None, help="results file (default: benchmarks/results/)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    print(f"{'distributions':>13}  {'seconds':>8}  {'s per 1,000':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as scratch:
        for count in args.counts:
            layer = make_layer(Path(scratch) / f"layer-{count}.zip", count)
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(layer)], capture_output=True, text=True, check=True
            )
            seconds = float(done.stdout.strip().splitlines()[-1])
            per_1000 = 1000 * seconds / count
            print(f"{count:>13,}  {seconds:>8.1f}  {per_1000:>11.2f}")
            rows.append({"distributions": count, "seconds": round(seconds, 2), "seconds_per_1000": round(per_1000, 3),
                         "load_1min": round(os.getloadavg()[0], 2)})  # fmt: skip
    growth = rows[-1]["seconds_per_1000"] / rows[0]["seconds_per_1000"] if len(rows) > 1 else None
    print(f"seconds per 1,000 at {rows[-1]['distributions']:,} / at {rows[0]['distributions']:,}: {growth:.2f}"
          if growth is not None else "")  # fmt: skip
    report = {
        "benchmark": "bench_verify_scale",
        "rows": rows,
        "per_1000_largest_over_smallest": round(growth, 2) if growth is not None else None,
        "goal": "linear: seconds per 1,000 distributions about the same at every size (ratio near 1)",
        "machine": machine(),
    }
    write_results("bench_verify_scale", report, args.output)


if __name__ == "__main__":
    main()
