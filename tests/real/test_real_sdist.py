"""Packages published only as source distributions: pure Python is built here, native code is refused by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cdk_pip_layer import InstallError, LocalBuildUnavailableError, NativeSdistError, PipBasedLambdaLayerLocalBuilder
from layer_inspection import pyenv_python, run_isolated, unzip

from ._layers import BuiltLayer, LayerCache, LayerSpec, assert_no_host_artifacts, cli_path, parse_tags

# termcolor 1.1.0 is a 3.9 kB sdist with no wheel; later versions have wheels, so the installer's first run
# fails with "no matching distribution" and the engine must build it.
PURE_SDIST = "termcolor==1.1.0\norjson==3.10.12\n"
# mmh3 2.5.1 is a 9.8 kB sdist with a C extension and no wheel at all.
NATIVE_SDIST = "orjson==3.10.12\nmmh3==2.5.1\n"


@pytest.fixture(scope="module", params=[("python3.12", "auto"), ("python3.10", "uv")], ids=["pip-3.12", "uv-3.10"])
def pure_layer(request: pytest.FixtureRequest, layers: LayerCache) -> BuiltLayer:
    runtime, installer = request.param
    return layers.get(LayerSpec(PURE_SDIST, runtime, installer=installer))


def test_pure_sdist_is_built_into_the_layer(pure_layer: BuiltLayer) -> None:
    assert pure_layer.result.built_from_source == ("termcolor",)
    assert "termcolor==1.1.0" in pure_layer.result.distributions
    assert "python/termcolor.py" in pure_layer.zip_names()
    (lines,) = [v for k, v in pure_layer.wheel_tags().items() if k.startswith("termcolor-1.1.0")]
    assert all(tag.abi == "none" and tag.platform == "any" for tag in parse_tags(lines)), lines
    assert_no_host_artifacts(pure_layer)


def test_pure_sdist_layer_imports_on_the_target_python(pure_layer: BuiltLayer, tmp_path: Path) -> None:
    python = pyenv_python(pure_layer.target.python_version_str)
    if python is None:
        pytest.skip(f"no Python {pure_layer.target.python_version_str} in pyenv on this machine")
    site = unzip(pure_layer.zip_path, tmp_path)
    done = run_isolated(python, "import termcolor; print(termcolor.colored('ok', 'red'))", site)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_native_sdist_is_refused_by_name(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(NATIVE_SDIST, encoding="utf-8")
    builder = PipBasedLambdaLayerLocalBuilder(requirements=requirements, build_dir=tmp_path / "out")
    with pytest.raises(NativeSdistError) as caught:
        builder.build()
    assert caught.value.package == "mmh3"
    assert "mmh3" in str(caught.value)
    assert "orjson" not in caught.value.what
    assert not (tmp_path / "out" / "layer.zip").exists()
    assert not (tmp_path / "out" / "artifacts").exists()


def test_native_sdist_exits_3_from_the_cli_with_bundling_local(tmp_path: Path) -> None:
    """(--bundling auto, the default, builds it in the Lambda build image instead: tests/container.)"""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(NATIVE_SDIST, encoding="utf-8")
    done = subprocess.run(
        [
            *(str(cli_path()), "build", "-r", str(requirements), "--runtime", "python3.12"),
            *("--installer", "uv", "--bundling", "local", "--output", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "mmh3" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def _pip_23_without_wheel() -> str:
    """pyenv's Python 3.10.13: pip 23.0 and no 'wheel', the host on which pip builds setup.py-only sdists the
    legacy way (setup.py bdist_wheel) unless told --use-pep517."""
    python = pyenv_python("3.10")
    if python is None:
        pytest.skip("no Python 3.10 in pyenv on this machine")
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util, pip; print(pip.__version__, importlib.util.find_spec('wheel'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    version, has_wheel = probe.stdout.split()
    if not version.startswith("23.0") or has_wheel != "None":
        pytest.skip(f"{python} has pip {version} and wheel {has_wheel}: not the host this test is about")
    return str(python)


def test_a_setup_py_only_sdist_builds_on_a_python_whose_pip_has_no_wheel(tmp_path: Path) -> None:
    python = _pip_23_without_wheel()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("docopt==0.6.2\n", encoding="utf-8")  # setup.py only, no wheel on PyPI
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime="python3.10",
        installer="pip",
        python_executable=python,
    ).build()
    assert result.built_from_source == ("docopt",)
    assert result.distributions == ("docopt==0.6.2",)
    site = unzip(result.zip_path, tmp_path / "unzipped")
    done = run_isolated(Path(python), "import docopt; print(docopt.docopt('usage: x [--v]', ['--v']))", site)
    assert done.returncode == 0, done.stderr
    assert "'--v': True" in done.stdout


def test_a_release_that_does_not_build_on_the_runtimes_python_is_explained(tmp_path: Path) -> None:
    python = pyenv_python("3.12")
    if python is None:
        pytest.skip("no Python 3.12 in pyenv on this machine")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("wrapt==1.13.3\n", encoding="utf-8")  # no cp312 wheel; its sdist needs Python < 3.11
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime="python3.12",
        installer="pip",
        python_executable=str(python),
    )
    with pytest.raises(InstallError) as caught:
        builder.build()
    error = caught.value
    assert not isinstance(error, LocalBuildUnavailableError)  # the build image would fail the same way
    assert error.package == "wrapt"
    assert any("cannot import name 'formatargspec'" in line for line in error.details), error.details
    assert not any("See above" in line or "metadata-generation-failed" in line for line in error.details)
    assert "pin a release of 'wrapt' that supports Python 3.12" in str(error)
    assert not (tmp_path / "out" / "layer.zip").exists()
