"""Layers from lock files, built from PyPI for python3.10 and python3.12 on both architectures: each lock gives the
same distributions as the requirements.txt its tool exported from the same lock; the layer imports on the target's
Python; a tampered hash fails the build; an out-of-date uv.lock is refused; a locked source distribution builds."""

from __future__ import annotations

import hashlib
import platform
import shutil
import zipfile
from pathlib import Path

import pytest

from cdk_pip_layer import InstallError, LayerBuildResult, PipBasedLambdaLayerLocalBuilder, RequirementsFileError
from cdk_pip_layer.engine.options import ArchitectureName, Runtime
from layer_inspection import pyenv_python, run_isolated, unzip

LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"
LOCK_FILES = {
    "uv.lock": LOCKS / "uv" / "uv.lock",
    "pylock.toml": LOCKS / "uv" / "pylock.toml",
    "pylock.toml (URLs)": LOCKS / "uv-pip-compile" / "pylock.toml",
    "poetry.lock": LOCKS / "poetry" / "poetry.lock",
    "poetry.lock (Poetry 1)": LOCKS / "poetry1" / "poetry.lock",
    "Pipfile.lock": LOCKS / "pipenv" / "Pipfile.lock",
}
# What each lock is compared with: its tool's own export of the same lock (Pipfile.lock was written from uv.lock).
EXPORTS = {
    "uv.lock": LOCKS / "uv" / "requirements.txt",
    "pylock.toml": LOCKS / "uv" / "requirements.txt",
    "pylock.toml (URLs)": LOCKS / "uv-pip-compile" / "requirements.txt",
    "poetry.lock": LOCKS / "poetry" / "requirements.txt",
    "poetry.lock (Poetry 1)": LOCKS / "poetry1" / "requirements.txt",
    "Pipfile.lock": LOCKS / "uv" / "requirements.txt",
}
TARGETS = [(runtime, arch) for runtime in ("python3.10", "python3.12") for arch in ("x86_64", "arm64")]


@pytest.fixture(autouse=True)
def _no_uv_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_NO_CONFIG", "1")


class Builds:
    """Each (input, target) built once for the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple[Path, str, str], LayerBuildResult] = {}

    def get(self, requirements: Path, runtime: Runtime, architecture: ArchitectureName) -> LayerBuildResult:
        key = (requirements, runtime, architecture)
        if key not in self.done:
            out = (
                self.root
                / f"{len(self.done):02d}-{requirements.parent.name}-{requirements.name}-{runtime}-{architecture}"
            )
            self.done[key] = PipBasedLambdaLayerLocalBuilder(
                requirements=requirements, build_dir=out, runtime=runtime, architecture=architecture
            ).build()
        return self.done[key]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return Builds(tmp_path_factory.mktemp("lock-builds"))


@pytest.mark.parametrize(("runtime", "architecture"), TARGETS, ids=["-".join(t) for t in TARGETS])
@pytest.mark.parametrize("fmt", list(LOCK_FILES))
def test_a_lock_gives_the_distributions_of_its_tools_export(
    fmt: str, runtime: Runtime, architecture: ArchitectureName, builds: Builds
) -> None:
    locked = builds.get(LOCK_FILES[fmt], runtime, architecture)
    exported = builds.get(EXPORTS[fmt], runtime, architecture)
    assert sorted(locked.distributions) == sorted(exported.distributions)
    names = {pin.split("==")[0].lower().replace("_", "-") for pin in locked.distributions}
    assert ("exceptiongroup" in names) is (runtime == "python3.10")
    assert ("tomli" in names) is (runtime == "python3.10")
    assert "orjson==3.10.12" in locked.distributions
    with zipfile.ZipFile(locked.zip_path) as archive:
        native = [n for n in archive.namelist() if n.startswith("python/orjson/") and ".so" in n]
    assert native, "the native wheel's shared object is in the layer"
    machine = "x86_64" if architecture == "x86_64" else "aarch64"
    assert all(machine in n for n in native), native


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12"])
def test_a_layer_from_a_lock_imports_on_the_target_python(runtime: Runtime, builds: Builds, tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the x86_64 layer cannot load on this host")
    python = pyenv_python(runtime.removeprefix("python"))
    if python is None:
        pytest.skip(f"no {runtime} in pyenv")
    result = builds.get(LOCK_FILES["uv.lock"], runtime, "x86_64")
    site = unzip(result.zip_path, tmp_path / "opt")
    code = (
        "import sys, anyio, orjson\n"
        "assert orjson.loads(orjson.dumps([1])) == [1]\n"
        "if sys.version_info < (3, 11):\n    import tomli, exceptiongroup\n"
        "print('ok')\n"
    )
    done = run_isolated(python, code, site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def sha256s_of(lock_text: str, distribution: str) -> list[str]:
    """The sha256 digests of a distribution's wheels in a uv.lock."""
    out: list[str] = []
    for line in lock_text.splitlines():
        if f"/{distribution}-" in line and ".whl" in line and "sha256:" in line:
            out.append(line.split("sha256:", 1)[1][:64])
    return out


@pytest.mark.parametrize(("runtime", "architecture"), [("python3.12", "x86_64"), ("python3.12", "arm64")])
def test_a_tampered_hash_in_the_lock_fails_the_build(
    runtime: Runtime, architecture: ArchitectureName, tmp_path: Path
) -> None:
    project = Path(shutil.copytree(LOCKS / "uv", tmp_path / "project"))
    lock = project / "uv.lock"
    text = lock.read_text(encoding="utf-8")
    digests = sha256s_of(text, "orjson")
    assert len(digests) > 10
    for digest in digests:
        text = text.replace(digest, hashlib.sha256(digest.encode()).hexdigest())
    lock.write_text(text, encoding="utf-8")
    with pytest.raises(InstallError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=lock, build_dir=tmp_path / "out", runtime=runtime, architecture=architecture
        ).build()
    assert "hash" in str(caught.value).lower()
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_an_out_of_date_uv_lock_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    project = Path(shutil.copytree(LOCKS / "uv", tmp_path / "project"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("orjson==3.10.12", "orjson==3.10.11"))
    with pytest.raises(RequirementsFileError, match="out of date") as caught:
        PipBasedLambdaLayerLocalBuilder(requirements=project / "uv.lock", build_dir=tmp_path / "out").build()
    assert "uv lock" in str(caught.value.hint)
    assert not (tmp_path / "out").exists()


def test_a_locked_source_distribution_is_verified_and_built(tmp_path: Path) -> None:
    """docopt 0.6.2 is published only as an sdist (setup.py, pure Python): the layer gets the wheel built from the
    sdist the lock's hash verifies (hash-checking mode end to end, the sdist path included)."""
    project = Path(shutil.copytree(LOCKS / "uv-sdist", tmp_path / "project"))
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=project / "uv.lock", build_dir=tmp_path / "out", runtime="python3.12"
    ).build()
    assert sorted(result.distributions) == ["docopt==0.6.2", "six==1.17.0"]
    assert result.built_from_source == ("docopt",)
