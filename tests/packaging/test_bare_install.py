"""``pip install cdk-pip-layer`` alone, on a machine with no other Python than the one it runs on, builds for an
architecture and runtimes that machine cannot run pip for: uv comes with the package.

The wheel of this checkout goes into a fresh virtual environment of the oldest supported Python (with the old pip
it came with), no extras, dependencies from PyPI at the versions the tests were written against. The build then runs
with that environment alone on PATH and an empty pyenv: no interpreter of the target's version anywhere.
"""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dev_tools import dev_pins
from layer_inspection import pyenv_python

REPO = Path(__file__).resolve().parents[2]


def pypi_env(**extra: str) -> dict[str, str]:
    """This environment without the host's pip and uv configuration (local indexes, find-links): PyPI only, as on a
    user's machine; the CA bundle stays (a TLS-inspecting proxy)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1", **extra)
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def run(argv: Sequence[str | Path], env: Mapping[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(map(str, argv))}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _dev_pins_of_dependencies(wheel: Path) -> list[str]:
    """The dev group's pins of the package's own dependencies (the versions the tests were written against)."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.BytesParser().parsebytes(archive.read(name))
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    runtime = {r.name for r in requires if r.marker is None}
    assert "uv" in runtime, "uv is a dependency, not an extra"
    return dev_pins(runtime)


@dataclass(frozen=True)
class FreshInstall:
    root: Path
    home: Path

    def env(self) -> dict[str, str]:
        """Only the environment's bin and the system's on PATH, an empty pyenv and home: no other Python."""
        return pypi_env(
            PATH=os.pathsep.join([str(self.root / "bin"), "/usr/bin", "/bin"]),
            HOME=str(self.home),
            PYENV_ROOT=str(self.home / "no-pyenv"),
            XDG_CACHE_HOME=str(self.home / "cache"),
        )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    work = tmp_path_factory.mktemp("bare")
    python = pyenv_python("3.10")
    if python is None:
        pytest.skip("no Python 3.10 in pyenv for the fresh environment")
    run(
        [REPO / ".venv" / "bin" / "python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", REPO],
        pypi_env(),
    )
    [wheel] = (work / "dist").glob("cdk_pip_layer-*.whl")
    pins = _dev_pins_of_dependencies(wheel)
    (work / "constraints.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    run([python, "-m", "venv", work / "venv"], pypi_env())
    run(
        [work / "venv" / "bin" / "python", "-m", "pip", "install", "-q", wheel, "-c", work / "constraints.txt"],
        pypi_env(),
    )
    home = work / "home"
    home.mkdir()
    return FreshInstall(work / "venv", home)


@pytest.mark.parametrize(("runtime", "architecture"), [("python3.12", "arm64"), ("python3.13", "x86_64")])
def test_a_bare_install_builds_what_this_machine_cannot_run(
    fresh: FreshInstall, tmp_path: Path, runtime: str, architecture: str
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n", encoding="utf-8")
    argv: list[str | Path] = [fresh.root / "bin" / "cdk-pip-layer", "build", "-r", requirements, "-o", tmp_path / "out"]
    done = run([*argv, "--runtime", runtime, "--architecture", architecture, "--json", "-q"], fresh.env())
    summary = json.loads(done.stdout)
    assert summary["target"] == f"{runtime}/{architecture}"
    assert summary["installer"].startswith("uv "), summary["installer"]
    assert str(fresh.root) in summary["installer"]  # the uv that came with the package
    with zipfile.ZipFile(tmp_path / "out" / "layer.zip") as archive:
        assert "python/six.py" in archive.namelist()
