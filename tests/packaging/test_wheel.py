"""The package as PyPI gets it and a user installs it.

`python -m build` makes an sdist and, from it, a wheel; `twine check --strict` accepts both; the wheel holds the package
(every module of every subpackage) and `py.typed`, nothing else; the metadata names the supported Pythons, classifiers
PyPI knows, project URLs and keywords. A fresh virtual environment of the oldest supported Python (with the pip it
came with) gets only the wheel, no extras and not editable, and then runs the command line, builds a layer, and
synthesizes a one-layer app made by `cdk init app --language python` with the real CDK CLI on the Node of setup.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trove_classifiers
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from dev_tools import dev_pins

REPO = Path(__file__).resolve().parents[2]
DEV_BIN = REPO / ".venv" / "bin"
CDK_CLI = REPO / "node_modules" / "aws-cdk" / "bin" / "cdk"
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# The backend that builds the distributions, pinned here (pyproject.toml keeps a range, for those who rebuild).
BUILD_BACKEND = "setuptools==84.2.1"
TINY_REQUIREMENT = "six==1.17.0\n"


def run(
    argv: Sequence[str | Path], *, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pypi_env(**extra: str) -> dict[str, str]:
    """This environment without the host's pip configuration (its local indexes, find-links, constraints): pip sees
    PyPI only, as on a user's machine. PIP_CERT stays: the network here passes a TLS-inspecting proxy. Nothing of the
    test session's jsii or CDK settings (the construct tier's fake Docker) leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("PIP_", "UV_", "JSII_", "CDK_")) and k != "PIP_CERT") and k != "VIRTUAL_ENV"
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path

    def wheel_file(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name)

    @property
    def metadata(self) -> email.message.Message:
        dist_info = self.wheel.name.split("-")[0] + "-" + self.wheel.name.split("-")[1] + ".dist-info"
        return email.parser.BytesParser().parsebytes(self.wheel_file(f"{dist_info}/METADATA"))


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """`python -m build` of the checkout, as a release would run it: isolated, the sdist first, the wheel from it."""
    out = tmp_path_factory.mktemp("dist")
    constraints = out.parent / "build-constraints.txt"
    constraints.write_text(BUILD_BACKEND + "\n", encoding="utf-8")
    run([DEV_BIN / "python", "-m", "build", "--outdir", out, REPO], env=pypi_env(PIP_CONSTRAINT=str(constraints)))
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return Dists(sdist, wheel)


def test_twine_accepts_both_distributions(dists: Dists) -> None:
    output = run([DEV_BIN / "twine", "check", "--strict", dists.sdist, dists.wheel], env=pypi_env()).stdout
    assert output.count("PASSED") == 2


def test_the_wheel_holds_the_package_and_py_typed_only(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        names = archive.namelist()
    payload = sorted(n for n in names if not n.split("/")[0].endswith(".dist-info"))
    src = REPO / "src"
    expected = sorted(
        p.relative_to(src).as_posix()
        for p in (src / "cdk_pip_layer").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and (p.suffix == ".py" or p.name == "py.typed")
    )
    assert payload == expected
    assert "cdk_pip_layer/py.typed" in payload


def test_the_metadata_is_ready_for_pypi(dists: Dists) -> None:
    meta = dists.metadata
    classifiers = meta.get_all("Classifier") or []
    assert classifiers and sorted(set(classifiers) - trove_classifiers.classifiers) == []
    python_classifiers = [c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert [c.rsplit(" ", 1)[1] for c in python_classifiers] == list(SUPPORTED_PYTHONS)
    requires_python = SpecifierSet(meta["Requires-Python"])
    assert all(Version(f"{v}.0") in requires_python for v in SUPPORTED_PYTHONS)
    assert Version("3.9.0") not in requires_python
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert "lambda" in meta["Keywords"].split(",")
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta["Summary"]


def test_the_metadata_declares_what_the_package_needs_and_nothing_more(dists: Dists) -> None:
    """No dev extra of exact pins in the published metadata (they are a dependency group), every dependency with a
    floor, and the libraries whose next major release may break us capped below it."""
    meta = dists.metadata
    assert sorted(meta.get_all("Provides-Extra") or []) == ["publish", "uv"]
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    assert not [r for r in requires if any(s.operator == "==" for s in r.specifier)]
    for requirement in requires:
        assert any(s.operator == ">=" for s in requirement.specifier), requirement
    capped = {r.name: r.specifier for r in requires if any(s.operator == "<" for s in r.specifier)}
    assert {"aws-cdk-lib", "constructs", "cyclonedx-python-lib", "uv"} <= set(capped)


def _oldest_supported_python() -> Path:
    """pyenv's newest patch release of the oldest supported Python (a user's old pip with it), else this one."""
    pyenv = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "versions"
    for minor in SUPPORTED_PYTHONS:
        found = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"), key=lambda p: Version(p.parent.parent.name))
        if found:
            return found[-1]
    return Path(sys.executable)


@dataclass(frozen=True)
class UserVenv:
    """A fresh virtual environment holding only the wheel and what it depends on."""

    root: Path
    python_version: str
    node_dir: Path  # a directory holding only `node` (setup's), to put on PATH without setup's Python

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def runtime(self) -> str:
        return f"python{self.python_version}"

    def env(self, **extra: str) -> dict[str, str]:
        """An activated venv in a user's shell: its bin first on PATH, then a supported Node."""
        return pypi_env(
            PATH=os.pathsep.join([str(self.bin), str(self.node_dir), os.environ.get("PATH", "")]),
            VIRTUAL_ENV=str(self.root),
            CDK_DISABLE_VERSION_CHECK="1",
            **extra,
        )


def _dependency_pins(meta: email.message.Message) -> list[str]:
    """The dev group's pins of the package's own dependencies: the versions the tests were written against."""
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    return dev_pins({r.name for r in requires if r.marker is None or "extra" not in str(r.marker)})


@pytest.fixture(scope="session")
def user_venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> UserVenv:
    root = tmp_path_factory.mktemp("user") / "venv"
    python = _oldest_supported_python()
    run([python, "-m", "venv", root], env=pypi_env())
    pins = _dependency_pins(dists.metadata)
    assert any(p.startswith("aws-cdk-lib==") for p in pins), pins
    constraints = root.parent / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
    run([root / "bin" / "python", "-m", "pip", "install", "--quiet", dists.wheel, "-c", constraints], env=pypi_env())
    version = run(
        [root / "bin" / "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], env=pypi_env()
    ).stdout
    node_dir = root.parent / "node"
    node_dir.mkdir()
    (node_dir / "node").symlink_to((DEV_BIN / "node").resolve())
    return UserVenv(root, version.strip(), node_dir)


def test_the_installed_wheel_is_not_the_checkout(user_venv: UserVenv) -> None:
    code = "import cdk_pip_layer, importlib.metadata as m; print(cdk_pip_layer.__file__); print(m.version('uv'))"
    proc = subprocess.run(
        [str(user_venv.bin / "python"), "-c", code], env=user_venv.env(), capture_output=True, text=True, check=False
    )
    where, uv_version = proc.stdout.split()
    assert where.startswith(str(user_venv.root))  # site-packages, not src/
    assert uv_version  # uv is a required dependency: a bare install can build for any target


def test_the_command_line_runs_and_builds_a_layer(user_venv: UserVenv, tmp_path: Path) -> None:
    assert "build" in run([user_venv.bin / "cdk-pip-layer", "--help"], env=user_venv.env()).stdout
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(TINY_REQUIREMENT, encoding="utf-8")
    out = tmp_path / "out"
    cache = {"CDK_PIP_LAYER_CACHE_DIR": str(tmp_path / "cache")}
    argv: list[str | Path] = ["build", "-r", requirements, "--runtime", user_venv.runtime, "-o", out, "--json"]
    summary = json.loads(run([user_venv.bin / "cdk-pip-layer", *argv], env=user_venv.env(**cache)).stdout)
    assert summary["distributions"] == ["six==1.17.0"]
    with zipfile.ZipFile(out / "layer.zip") as archive:
        assert "python/six.py" in archive.namelist()


@pytest.fixture
def cdk_init_app(user_venv: UserVenv, tmp_path: Path) -> Iterator[Path]:
    """`cdk init app --language python` (the generated files only), with one PipLambdaLayer added to its stack."""
    app = tmp_path / "hello"
    app.mkdir()
    run(
        [DEV_BIN / "node", CDK_CLI, "init", "app", "--language", "python", "--generate-only"],
        env=user_venv.env(),
        cwd=app,
    )
    stack = app / "hello" / "hello_stack.py"
    source = stack.read_text(encoding="utf-8")
    anchor = "        super().__init__(scope, construct_id, **kwargs)\n"
    assert anchor in source, source
    layer = (
        f"{anchor}\n"
        "        PipLambdaLayer(\n"
        '            self, "Deps",\n'
        '            requirements=str(Path(__file__).resolve().parent.parent / "layer" / "requirements.txt"),\n'
        f'            runtime="{user_venv.runtime}",\n'
        "        )\n"
    )
    imports = "from pathlib import Path\n\nfrom cdk_pip_layer import PipLambdaLayer\n"
    stack.write_text(imports + source.replace(anchor, layer), encoding="utf-8")
    (app / "layer").mkdir()
    (app / "layer" / "requirements.txt").write_text(TINY_REQUIREMENT, encoding="utf-8")
    yield app


def test_a_cdk_init_app_with_one_layer_synthesizes(user_venv: UserVenv, cdk_init_app: Path, tmp_path: Path) -> None:
    # cdk.json says `python3 app.py`: the venv's python3, first on PATH as in an activated venv.
    out = tmp_path / "cdk.out"
    env = user_venv.env(CDK_PIP_LAYER_CACHE_DIR=str(tmp_path / "cache"))
    synth = run([DEV_BIN / "node", CDK_CLI, "synth", "--no-notices", "-q", "-o", out], env=env, cwd=cdk_init_app)
    output = synth.stdout + synth.stderr
    assert ": built locally with " in output and "feature flags" not in output
    assert not [line for line in output.splitlines() if line.startswith(("b'", 'b"'))]  # no jsii banner
    template = json.loads((out / "HelloStack.template.json").read_text(encoding="utf-8"))
    [layer] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layer["Properties"]["CompatibleRuntimes"] == [user_venv.runtime]
    asset = out / f"asset.{layer['Properties']['Content']['S3Key']}"
    with zipfile.ZipFile(asset) as archive:
        assert "python/six.py" in archive.namelist()
