"""Environment markers are evaluated for the target runtime, not for the interpreter running the tests (3.11).

Both installers: pip (run by a pyenv interpreter of the runtime's version) and uv (told the target's version).
Two kinds of marker: in a dependency's metadata (anyio -> exceptiongroup; python_version < "3.11") and on a line
of the requirements file (tomli; python_version < "3.11").
"""

from __future__ import annotations

import sys

import pytest

from layer_inspection import pyenv_python

from ._layers import BuiltLayer, LayerCache, LayerSpec, assert_no_host_artifacts

REQUIREMENTS = """\
anyio==4.6.2.post1
idna==3.10
sniffio==1.3.1
typing-extensions==4.12.2
tomli==2.2.1 ; python_version < "3.11"
"""

CASES = [
    ("python3.10", "pip"),
    ("python3.10", "uv"),
    ("python3.12", "pip"),
    ("python3.12", "uv"),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def layer(request: pytest.FixtureRequest, layers: LayerCache) -> BuiltLayer:
    runtime, installer = request.param
    if installer == "pip" and pyenv_python(runtime.removeprefix("python")) is None:
        pytest.skip(f"no {runtime} interpreter in pyenv for the pip path")
    return layers.get(LayerSpec(REQUIREMENTS, runtime, "x86_64", installer=installer))


def test_host_is_another_python_version() -> None:
    # The point of this module: markers must not be evaluated for this interpreter.
    assert sys.version_info[:2] not in {(3, 10), (3, 12)}


def test_installer_is_the_one_asked_for(layer: BuiltLayer) -> None:
    assert layer.result.installer.startswith(f"{layer.spec.installer} ")
    if layer.spec.installer == "pip":
        assert f"on Python {layer.target.python_version_str}." in layer.result.installer


def test_marker_dependencies_follow_the_target_python(layer: BuiltLayer) -> None:
    dists = layer.dist_names()
    assert {"anyio", "idna", "sniffio"} <= dists
    below_311 = layer.target.python_version < (3, 11)
    assert ("exceptiongroup" in dists) is below_311, sorted(dists)
    assert ("tomli" in dists) is below_311, sorted(dists)
    names = layer.zip_names()
    assert any(n.startswith("python/exceptiongroup/") for n in names) is below_311


def test_no_host_artifacts(layer: BuiltLayer) -> None:
    assert_no_host_artifacts(layer)


def test_no_installer_leftovers(layer: BuiltLayer) -> None:
    names = layer.zip_names()
    assert "python/.lock" not in names
    assert not [n for n in names if n.endswith("/") and not any(m.startswith(n) and m != n for m in names)]
