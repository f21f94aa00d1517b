"""Slimming inside the Lambda build image: the engine staged as a container build stages it (standard library and
pip's vendored packaging only, no pyelftools), on a tree with a test suite, stubs and a native library with debug
information. Where the image has binutils the library is stripped (checked by its program headers and loaded
bytes alone); where it has none (the arm64 stand-in), that is said once and the rest is slimmed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cdk_pip_layer.container.protocol import stage_engine
from cdk_pip_layer.engine.layer.record import record_hash

from ._docker_tier import IMAGE_311, IMAGE_311_ARM64, unavailable

SCRIPT = """
import importlib, json, sys
from pathlib import Path
sys.path.insert(0, "/ctx")
try:
    import packaging.tags
except ImportError:
    for name in ("", ".version", ".specifiers", ".markers", ".requirements", ".tags", ".utils"):
        sys.modules["packaging" + name] = importlib.import_module("pip._vendor.packaging" + name)
from cdk_pip_layer.engine.layer.slim import slim_layer
from cdk_pip_layer.engine.target import LambdaTarget
outcome = slim_layer(Path("/ctx/site/python"), target=LambdaTarget.parse("python3.11", sys.argv[1]),
                     scratch=Path("/ctx/scratch"), python=sys.executable)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("elftools", "docker", "aws_cdk", "boto3"))
print(json.dumps({"report": outcome.report.to_dict(), "warnings": list(outcome.warnings), "loaded": loaded}))
"""


def _install(site: Path, files: dict[str, bytes]) -> None:
    """demo 1.0 laid out as an installer leaves it (its RECORD with hashes)."""
    dist_info = site / "demo-1.0.dist-info"
    dist_info.mkdir(parents=True)
    files = {**files, "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"}
    for path, data in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_bytes(data)
    rows = [f"{path},{record_hash(data)},{len(data)}" for path, data in sorted(files.items())]
    (dist_info / "RECORD").write_text("\n".join([*rows, "demo-1.0.dist-info/RECORD,,"]) + "\n", encoding="utf-8")


def _library(tmp_path: Path) -> bytes:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:  # pragma: no cover - every development machine has one
        pytest.skip("no C compiler")
    (tmp_path / "helper.c").write_text("int helper(int x) { return x + 1; }\n", encoding="utf-8")
    subprocess.run([compiler, "-g", "-shared", "-fPIC", "helper.c", "-o", "libhelper.so"], cwd=tmp_path, check=True)
    return (tmp_path / "libhelper.so").read_bytes()


@pytest.mark.parametrize(("image", "architecture"), [(IMAGE_311, "x86_64"), (IMAGE_311_ARM64, "arm64")])
def test_slim_runs_in_the_build_image(tmp_path: Path, image: str, architecture: str) -> None:
    if shutil.which("docker") is None:
        unavailable("no docker on this machine")
    context = tmp_path / "ctx"
    stage_engine(context)
    site = context / "site" / "python"
    _install(
        site,
        {
            "demo/__init__.py": b"VALUE = 1\n",
            "demo/__init__.pyi": b"VALUE: int\n",
            "demo/tests/test_demo.py": b"def test_it():\n    pass\n",
            "demo/libhelper.so": _library(tmp_path),
        },
    )
    platform = "linux/arm64" if architecture == "arm64" else "linux/amd64"
    done = subprocess.run(
        ["docker", "run", "--rm", "--platform", platform, "-v", f"{context}:/ctx", image, "python3", "-I", "-c", SCRIPT,
         architecture],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    by_rule = {c["rule"]: c["files"] for c in out["report"]["counts"]}
    assert by_rule.get("tests") == 1 and by_rule.get("stubs") == 1
    assert out["loaded"] == []  # the engine took nothing but the standard library and packaging
    left = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert "demo/tests/test_demo.py" not in left and "demo/libhelper.so" in left
    strip_said = [w for w in out["warnings"] if "strip" in w]
    if architecture == "x86_64":  # the x86_64 image has binutils; an x86_64 library there is stripped
        assert by_rule.get("debug-info") == 1 and not strip_said
        assert out["report"]["proof"] and "nothing fails" in out["report"]["proof"]
    else:  # no strip for aarch64 in the arm64 stand-in: said once, the rest slimmed
        assert len(strip_said) == 1 and "no strip for aarch64" in strip_said[0]
