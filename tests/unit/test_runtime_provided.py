"""``exclude=[':runtime:']``: what the target's Lambda runtime provides leaves the layer (boto3 and its companions,
not boto3 alone), by version: a requirement the runtime's version does not meet keeps the distribution, and the
build says what it left out or kept, and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cdk_pip_layer import InvalidInputError, LayerBuildOptions, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.lambda_os import RUNTIME_PROVIDED
from cdk_pip_layer.engine.layer.runtime_provided import runtime_provided
from cdk_pip_layer.engine.options import Runtime
from cdk_pip_layer.engine.result import REPORT_FILE
from cdk_pip_layer.engine.target import SUPPORTED_RUNTIMES, LambdaTarget

PY312 = LambdaTarget.parse("python3.12")
SDK = "1.38.36"  # what the table says python3.12 ships


def sdk(make: Callable[..., Path], site: Path, boto3: str = "1.40.0", botocore: str | None = None) -> None:
    """boto3 and its companions as pip installs them, with their real requirements."""
    minor = ".".join(boto3.split(".")[:2])
    make(site, "boto3", boto3, requires=[f"botocore<{minor}.999,>={minor}.0", "jmespath<2,>=0.7.1", "s3transfer<0.14"])
    make(site, "botocore", botocore or boto3, requires=["jmespath<2,>=0.7.1", "python-dateutil<3,>=2.1", "urllib3<3"])
    make(site, "s3transfer", "0.13.1", requires=[f"botocore<2,>={minor}.0"])
    make(site, "jmespath", "1.0.1")
    make(site, "python-dateutil", "2.9.0.post0", requires=["six>=1.5"], files={"dateutil/__init__.py": ""})
    make(site, "six", "1.17.0", files={"six.py": ""})
    make(site, "urllib3", "2.5.0")


def test_every_runtime_has_a_table_of_what_it_provides() -> None:
    assert set(RUNTIME_PROVIDED) == set(SUPPORTED_RUNTIMES)
    for provided in RUNTIME_PROVIDED.values():
        assert {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"} <= set(provided)


def test_an_unpinned_boto3_goes_with_its_companions(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    sdk(make_dist, tmp_path)
    decided = runtime_provided(tmp_path, PY312, [Requirement("boto3")])
    assert decided.excluded == ("boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six", "urllib3")
    assert f"excluded boto3==1.40.0: the python3.12 runtime provides boto3 {SDK}" in decided.lines
    assert "excluded urllib3==2.5.0: the python3.12 runtime provides urllib3 (AWS publishes no version for it)" in (
        decided.lines
    )


def test_a_pin_to_another_version_stays_and_keeps_what_it_needs(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    sdk(make_dist, tmp_path)
    decided = runtime_provided(tmp_path, PY312, [Requirement("boto3==1.40.0")])
    assert decided.excluded == ()  # boto3 1.40 needs botocore 1.40, which needs the rest: none is the runtime's
    assert (
        f"kept boto3==1.40.0 although the python3.12 runtime provides boto3: the requirements file requires "
        f"boto3==1.40.0, and the runtime has {SDK}" in decided.lines
    )
    assert any(
        line.startswith("kept botocore==1.40.0") and "boto3==1.40.0 requires botocore" in line
        for line in (decided.lines)
    )


def test_a_pin_to_the_runtimes_version_goes(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    sdk(make_dist, tmp_path, boto3=SDK)
    decided = runtime_provided(tmp_path, PY312, [Requirement(f"boto3=={SDK}")])
    assert "boto3" in decided.excluded and "botocore" in decided.excluded


def test_a_companion_another_distribution_needs_stays(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    """requests needs urllib3 in a range; AWS publishes no urllib3 version for the runtime, so it cannot be shown
    to fit: urllib3 stays (with a line saying why), the rest goes."""
    sdk(make_dist, tmp_path)
    make_dist(tmp_path, "requests", "2.32.3", requires=["urllib3<3,>=1.21.1"])
    decided = runtime_provided(tmp_path, PY312, [Requirement("boto3"), Requirement("requests")])
    assert "urllib3" not in decided.excluded and "boto3" in decided.excluded
    assert any(
        line.startswith("kept urllib3==2.5.0") and "requests==2.32.3 requires" in line for line in (decided.lines)
    )


def test_the_preset_is_an_exclude_value_and_nothing_like_it_is() -> None:
    assert LayerBuildOptions.parse(requirements="r.txt", exclude=[":runtime:", "Boto3"]).exclude == (
        ":runtime:",
        "boto3",
    )
    with pytest.raises(InvalidInputError) as info:
        LayerBuildOptions.parse(requirements="r.txt", exclude=[":runtim:"])
    assert ":runtime:" in (info.value.hint or "")


def test_a_build_with_the_preset_leaves_the_sdk_out_and_says_why(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, offline_env: None
) -> None:
    """A real pip install (offline, from wheels made here) of an app that needs boto3: ``exclude=boto3`` alone
    leaves botocore, s3transfer, jmespath, python-dateutil, six and urllib3; the preset leaves none of them."""
    wheel = make_wheel("app", "1.0", requires=["boto3"])
    make_wheel("boto3", "1.40.0", requires=["botocore<1.41.0,>=1.40.0", "jmespath<2,>=0.7.1", "s3transfer<0.14"])
    make_wheel("botocore", "1.40.0", requires=["jmespath<2,>=0.7.1", "python-dateutil<3,>=2.1", "urllib3<3"])
    make_wheel("s3transfer", "0.13.1", requires=["botocore<2,>=1.37.4"])
    make_wheel("jmespath", "1.0.1")
    make_wheel("python-dateutil", "2.9.0.post0", requires=["six>=1.5"], files={"dateutil/__init__.py": ""})
    make_wheel("six", "1.17.0", files={"six.py": ""})
    make_wheel("urllib3", "2.5.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("app==1.0\n", encoding="utf-8")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime=host_runtime,
        exclude=[":runtime:"],
        extra_installer_args=("--no-index", "--find-links", str(wheel.parent)),
    ).build()
    assert result.distributions == ("app==1.0",)
    assert {pin.split("==")[0] for pin in result.excluded} == {
        "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3",
    }  # fmt: skip
    summary = result.summary()
    assert f"runtime: excluded boto3==1.40.0: the {host_runtime} runtime provides boto3" in summary
    assert not [w for w in result.warnings if ":runtime:" in w]
    assert result.runtime_provided == type(result).from_dict(result.to_dict()).runtime_provided
    # The layer report says it too: what was left out, and why.
    report = json.loads((result.zip_path.parent / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["left_out"] == {"distributions": list(result.excluded), "runtime": list(result.runtime_provided)}
