"""The layer format epoch guards the bytes of every layer: a fixed set of wheels, built into a layer, must give the
sha256 recorded for the current epoch. A change of layer bytes (a file dropped or added, a normalisation, the zip's
order, modes, timestamps or compression) fails here until the epoch is bumped in engine/layer_format.py, which gives
every layer a new asset hash, and the new digest is recorded below (see CHANGELOG.md for the policy)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.layer_format import LAYER_FORMAT_EPOCH
from cdk_pip_layer.engine.options import InstallerName
from cdk_pip_layer.engine.target import LambdaTarget

pytestmark = pytest.mark.usefixtures("offline_env")

# The sha256 of the golden layer (python3.12/x86_64) in each epoch. Add a row when the epoch is bumped.
GOLDEN = {
    2: "f9c69175b40673d6754ddd5e69f298f7ef0d0b4f531da182ad5b4a2416575ed7",
}


@pytest.fixture
def golden_wheels(make_wheel: Callable[..., Path]) -> Path:
    """Wheels whose installation exercises what the format decides: a console script and a script (dropped with
    bin/), C headers (.data/headers), a dependency pulled in, extras, a namespace package, an executable file."""
    make_wheel(
        "golden-app",
        "1.0",
        requires=["golden-helper>=1", 'golden-extra; extra == "more"'],
        extras=["more"],
        files={
            "golden_app/__init__.py": "from golden_helper import VALUE\n",
            "golden_app/cli.py": "def main() -> None:\n    print('golden')\n",
            "golden_app/tool.sh": "#!/bin/sh\necho golden\n",
            "golden_app-1.0.data/scripts/golden-tool": "#!python\nprint('tool')\n",
            "golden_app-1.0.data/headers/golden.h": "#define GOLDEN 1\n",
        },
        entry_points="[console_scripts]\ngolden = golden_app.cli:main\n",
    )
    make_wheel("golden-helper", "1.2", files={"golden_helper.py": "VALUE = 1\n"})
    make_wheel("golden-extra", "0.1", files={"golden_extra.py": "EXTRA = True\n"})
    wheels = make_wheel("golden-ns-part", "2.0", files={"golden_ns/part/__init__.py": "PART = 2\n"})
    return wheels.parent


def _build(tmp_path: Path, wheels: Path, installer: InstallerName) -> str:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("golden-app[more]==1.0\ngolden-ns-part==2.0\n", encoding="utf-8")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / f"out-{installer}",
        runtime="python3.12",
        installer=installer,
        extra_installer_args=("--no-index", "--find-links", str(wheels)),
    ).build()
    assert result.distributions == ("golden-app==1.0", "golden-extra==0.1", "golden-helper==1.2", "golden-ns-part==2.0")
    return hashlib.sha256(result.zip_path.read_bytes()).hexdigest()


def test_the_golden_layer_has_the_bytes_recorded_for_this_epoch(tmp_path: Path, golden_wheels: Path) -> None:
    digest = _build(tmp_path, golden_wheels, "uv")
    assert digest == GOLDEN[LAYER_FORMAT_EPOCH], (
        f"The layer bytes changed ({digest}) without a new layer format epoch: bump LAYER_FORMAT_EPOCH in "
        "src/cdk_pip_layer/engine/layer_format.py, record the digest in GOLDEN and say so in CHANGELOG.md."
    )


def test_pip_gives_the_golden_bytes_too(tmp_path: Path, golden_wheels: Path) -> None:
    if find_interpreter(LambdaTarget.parse("python3.12"))[0] is None:
        pytest.skip("no Python 3.12 for linux/x86_64 here to run pip with")
    assert _build(tmp_path, golden_wheels, "pip") == GOLDEN[LAYER_FORMAT_EPOCH]
