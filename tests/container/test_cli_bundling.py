"""``cdk-pip-layer build --bundling auto|local|docker``: the real console script in a subprocess, a real Docker
engine and the stand-in build image. ``auto`` builds in the image exactly when this host cannot build the layer
(here: a source-only package with native code), and says so; ``local`` then exits 3; ``docker`` always uses the
image, with the container builder's options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from layer_inspection import zip_names

from ._docker_tier import IMAGE_311, NATIVE_SDIST

CDK_PIP_LAYER = Path(sys.executable).parent / "cdk-pip-layer"
SMALL = "six==1.16.0\n"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("cdk-pip-layer: error:")]


def _build(tmp_path: Path, requirements: str, *args: str, env: dict[str, str] | None = None) -> Run:
    """``cdk-pip-layer build`` for python3.11/x86_64 into tmp_path/out (this machine's pip configuration off)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    req = tmp_path / "requirements.txt"
    req.write_text(requirements, encoding="utf-8")
    done = subprocess.run(
        [str(CDK_PIP_LAYER), "build", "-r", str(req), "-o", str(tmp_path / "out"), "--runtime", "python3.11", *args],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_auto_builds_in_the_image_when_the_host_cannot_and_says_why(tmp_path: Path) -> None:
    run = _build(tmp_path, NATIVE_SDIST, "--json", "-v")  # the phases (-v) say why the image is used, too
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["bundling"], result["built_in"], result["image"]) == ("auto", "docker", IMAGE_311)
    assert result["built_reason"].startswith(
        "bundling=auto: a local build is impossible: mmh3 is published only as a source distribution"
    )
    assert result["distributions"] == ["mmh3==2.5.1"]
    assert "python/mmh3.cpython-311-x86_64-linux-gnu.so" in zip_names(tmp_path / "out" / "layer.zip")
    assert "a local build is impossible" in run.stderr and f"building in {IMAGE_311}" in run.stderr


def test_auto_summary_names_the_image(tmp_path: Path) -> None:
    run = _build(tmp_path, NATIVE_SDIST, "-q")
    assert run.returncode == 0, run.stderr
    [built] = [line for line in run.stdout.splitlines() if line.startswith("built: ")]
    assert built.startswith(f"built: in {IMAGE_311} (linux/amd64): --bundling auto: a local build is impossible: mmh3")


def test_local_exits_3_where_auto_would_use_the_image(tmp_path: Path) -> None:
    run = _build(tmp_path, NATIVE_SDIST, "-q", "--bundling", "local")
    assert run.returncode == 3, run.stderr
    assert len(run.errors) == 1
    assert run.errors[0].startswith("cdk-pip-layer: error: mmh3 is published only as a source distribution")
    assert run.stdout == ""
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_docker_always_uses_the_image_with_its_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "pip-cache"
    run = _build(tmp_path, SMALL, "--bundling", "docker", "--cache-dir", str(cache), "--docker-network", "host")
    assert run.returncode == 0, run.stderr
    assert f"built: in {IMAGE_311} (linux/amd64): --bundling docker" in run.stdout
    # The image has no ELF reader: the host ran those checks on the zip, so every check ran (none "not run").
    report = json.loads((tmp_path / "out" / "layer.report.json").read_text(encoding="utf-8"))["verification"]
    assert set(report["skipped"]) <= {"import"}  # the host's word for the import the image ran
    assert "\nverified: 17 checks, 0 warnings\n" in run.stdout, run.stdout
    assert "python/six.py" in zip_names(tmp_path / "out" / "layer.zip")
    # uv (the host's, in the image) keeps what it downloaded in --cache-dir, unpacked
    assert any((cache / "pip" / "uv").rglob("six.py")), "the container build's downloads are kept in --cache-dir/pip"


def test_docker_with_no_cache_leaves_no_cache_behind(tmp_path: Path) -> None:
    root = tmp_path / "cache-root"  # the default cache directory is <root>/pip
    env = {**os.environ, "CDK_PIP_LAYER_CACHE_DIR": str(root)}
    run = _build(tmp_path, SMALL, "-q", "--bundling", "docker", "--no-cache", env=env)
    assert run.returncode == 0, run.stderr
    assert not root.exists()
    # A cache directory named beside --no-cache is one of two mistakes: said, not ignored.
    named = tmp_path / "pip-cache"
    refused = _build(tmp_path / "again", SMALL, "--bundling", "docker", "--no-cache", "--cache-dir", str(named))
    assert refused.returncode == 2
    assert "with the cache turned off" in refused.stderr
    assert not named.exists() and not (tmp_path / "again" / "out").exists()


def test_auto_without_docker_says_why_local_was_impossible_too(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}
    run = _build(tmp_path, NATIVE_SDIST, "-q", env=env)
    assert run.returncode == 1, run.stderr
    assert len(run.errors) == 1
    assert "the container build needs it" in run.errors[0]
    assert "it ran because a local build is impossible: mmh3 is published only as a source distribution" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_the_same_bytes_from_the_host_and_from_the_image(tmp_path: Path) -> None:
    local = _build(tmp_path / "local", SMALL, "-q", "--json", "--bundling", "local")
    image = _build(tmp_path / "image", SMALL, "-q", "--json", "--bundling", "docker")
    assert local.returncode == 0 and image.returncode == 0, local.stderr + image.stderr
    assert json.loads(local.stdout)["sha256"] == json.loads(image.stdout)["sha256"]
