"""The smoke import's judgement on real distributions from PyPI: a layer whose own six and urllib3 fail on the
target's Python fails the build, naming them (the runtime's copies are shadowed by the layer's)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder, VerificationError
from layer_inspection import pyenv_python


def test_a_layers_old_six_and_urllib3_that_fail_on_python_3_12_fail_the_build(tmp_path: Path) -> None:
    """six 1.15.0 and urllib3 1.26.2 (with its vendored six) have no 'six.moves' on Python 3.12: a function that
    imports boto3 with this layer breaks, though the runtime has working copies of both."""
    if platform.machine() != "x86_64" or pyenv_python("3.12") is None:
        pytest.skip("needs an x86_64 host with a Python 3.12 in pyenv for the smoke import")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.15.0\nurllib3==1.26.2\n", encoding="utf-8")
    with pytest.raises(VerificationError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=tmp_path / "out",
            runtime="python3.12",
            python_executable=str(pyenv_python("3.12")),
        ).build()
    message = str(caught.value)
    assert "urllib3==1.26.2: 1 error" in message  # findings are grouped under the distribution they are about
    assert "six.moves" in message
    assert not (tmp_path / "out" / "layer.zip").exists()
