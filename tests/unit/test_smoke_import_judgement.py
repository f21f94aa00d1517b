"""How the smoke import judges a module that fails: a distribution's optional extra module is a warning when the
distribution's own package imports; a module the runtime provides but the layer ships (and so shadows) is an error
naming the layer's copy. Real imports in the interpreter running the tests, of distributions laid out in tmp_path."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import verify_layer_zip
from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.verify.verifier import LayerVerification


@pytest.fixture
def host_target() -> str:
    """The runtime of the interpreter running the tests (it is the smoke import's interpreter)."""
    if importlib.util.find_spec("pip") is None or os.uname().machine != "x86_64":
        pytest.skip("needs an x86_64 host whose test interpreter has pip")
    return "python{}.{}".format(*sys.version_info[:2])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "layer" / "python"
    path.mkdir(parents=True)
    return path


def verify(site: Path, runtime: str) -> tuple[dict[str, str], dict[str, str]]:
    """The smoke import's errors and warnings, by subject."""
    zip_path = site.parent.parent / "layer.zip"
    write_layer_zip(site.parent, zip_path)
    result: LayerVerification = verify_layer_zip(zip_path, runtime, smoke_import=True)
    assert result.import_ran is not None
    errors = {f.subject: f"{f.problem} | {f.hint}" for f in result.errors if f.check == "import"}
    warnings = {f.subject: f"{f.problem} | {f.hint}" for f in result.warnings if f.check == "import"}
    return errors, warnings


def test_an_optional_module_of_a_distribution_whose_own_package_imports_is_a_warning(
    site: Path, host_target: str, make_dist: Callable[..., Path]
) -> None:
    """duckdb 1.3.2 ships adbc_driver_duckdb beside duckdb; it needs adbc_driver_manager, which duckdb does not
    declare. The layer is good: duckdb imports."""
    make_dist(
        site,
        "duckish",
        files={
            "duckish/__init__.py": "VALUE = 1\n",
            "adbc_driver_duckish/__init__.py": "import adbc_driver_manager\n",
        },
    )
    make_dist(site, "broken", files={"broken/__init__.py": "import not_in_the_layer\n", "broken_extra.py": ""})
    make_dist(site, "loner", files={"other_name/__init__.py": "import not_in_the_layer\n"})
    errors, warnings = verify(site, host_target)
    assert sorted(errors) == ["broken (broken==1.0)", "other_name (loner==1.0)"]  # the own package fails: errors
    warning = warnings["adbc_driver_duckish (duckish==1.0)"]
    assert "adbc_driver_manager" in warning
    assert "duckish" in warning.split("|")[0]  # says that the distribution's own package imports


def test_a_module_the_runtime_provides_but_the_layer_shadows_is_an_error_naming_the_layers_copy(
    site: Path, host_target: str, make_dist: Callable[..., Path]
) -> None:
    """six 1.15 and urllib3 1.26.2 (its vendored six) fail 'six.moves' on Python 3.12: the layer's copies come
    first on sys.path, so the runtime's own six and urllib3 are never used, and boto3 breaks too."""
    make_dist(site, "six", "1.15.0", files={"six.py": "PY3 = True\n"})  # no six.moves on this Python
    make_dist(site, "uses-six", files={"uses_six/__init__.py": "from six.moves import urllib\n"})
    make_dist(
        site,
        "urllib3",
        "1.26.2",
        files={
            "urllib3/__init__.py": "from .packages.six.moves import http_client\n",
            "urllib3/packages/__init__.py": "",
            "urllib3/packages/six.py": "PY3 = True\n",
        },
    )
    errors, warnings = verify(site, host_target)
    assert sorted(errors) == ["urllib3 (urllib3==1.26.2)", "uses_six (uses-six==1.0)"], warnings
    assert "six==1.15.0" in errors["uses_six (uses-six==1.0)"]
    assert "urllib3==1.26.2" in errors["urllib3 (urllib3==1.26.2)"]
    assert "six" in errors["urllib3 (urllib3==1.26.2)"].split("|")[0]
    assert not warnings


def test_a_module_the_runtime_provides_and_the_layer_leaves_out_stays_a_warning(
    site: Path, host_target: str, make_dist: Callable[..., Path]
) -> None:
    make_dist(site, "uses-six", files={"uses_six/__init__.py": "from six.moves import urllib\n"})
    errors, warnings = verify(site, host_target)
    assert not errors
    assert "runtime provides" in warnings["uses_six (uses-six==1.0)"]
