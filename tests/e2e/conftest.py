"""End-to-end tests: the real CDK CLI (node_modules/.bin/cdk, aws-cdk@2) synthesizes the example app, building the
layer with the real engine and real pip. Each test session has its own layer cache; ``cdk.out`` goes to tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams: with CI=true the CDK CLI writes its messages to stdout, otherwise to stderr."""
        return self.stdout + self.stderr

    @property
    def bundled(self) -> bool:
        """Whether CDK asked for the layer's bundle at all (it says so before calling our bundler)."""
        return "Bundling asset CdkPipLayerExample/HttpJsonLayer" in self.output

    @property
    def built_locally(self) -> bool:
        return ": built locally with " in self.output


@dataclass(frozen=True)
class Cli:
    env: dict[str, str]
    cache: Path

    def __call__(
        self, *args: str, cwd: Path = REPO, check: bool = True, app: str | None = None, timeout: float = 900
    ) -> CliRun:
        argv: Sequence[str] = [str(CDK), *args, "--no-notices"]
        if app is not None:
            argv = [*argv, "--app", app]
        proc = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        run = CliRun(proc.returncode, proc.stdout, proc.stderr)
        if check and run.returncode != 0:
            pytest.fail(f"cdk {' '.join(args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
        return run


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    if not CDK.exists() or not VENV_PYTHON.exists():
        pytest.fail(f"{CDK} or {VENV_PYTHON} is missing: run 'bash scripts/setup.sh' first")
    cache = tmp_path_factory.mktemp("layer-cache")
    env = dict(os.environ)
    env.update(
        {
            "CDK_PIP_LAYER_CACHE_DIR": str(cache),
            "CDK_DISABLE_VERSION_CHECK": "1",
        }
    )
    env.pop("CDK_DOCKER", None)  # the construct tests' fake Docker must not leak in
    return Cli(env=env, cache=cache)


def python_for(version: str) -> str | None:
    """An interpreter of ``version`` (pyenv's, or on PATH), to import-test a layer."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*"), reverse=True):
        exe = candidate / "bin" / f"python{version}"
        if exe.exists():
            return str(exe)
    for name in (f"python{version}",):
        try:
            out = subprocess.run(
                [name, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=False
            )
        except OSError:
            continue
        if out.returncode == 0:
            return out.stdout.strip()
    return sys.executable if f"{sys.version_info[0]}.{sys.version_info[1]}" == version else None
