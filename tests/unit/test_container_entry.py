"""The build inside the image and its wheel cache: fully pinned requirements whose wheels an earlier build fetched
are installed from the cache without asking any index; anything else asks the index first (real pip, offline)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import InstallError, LayerBuildOptions, LayerBuildResult
from cdk_pip_layer.container.entry import _build, _pinned_record


def _options(requirements: Path, *args: str) -> LayerBuildOptions:
    runtime = "python{}.{}".format(*sys.version_info[:2])
    return LayerBuildOptions.parse(requirements=requirements, runtime=runtime, extra_installer_args=args)


class Recorder:
    """Stands in for the engine's build: records the options of each call, fails while ``failures`` is positive."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[LayerBuildOptions] = []
        self.failures = failures

    def __call__(self, options: LayerBuildOptions) -> LayerBuildResult:
        self.calls.append(options)
        if self.failures:
            self.failures -= 1
            raise InstallError("No matching distribution found for helper==1.0 in the wheel cache")
        return object()  # type: ignore[return-value]  # the caller only passes it on


def _offline(options: LayerBuildOptions) -> bool:
    return "--no-index" in options.extra_installer_args


@pytest.mark.usefixtures("offline_env")
def test_pinned_requirements_skip_the_index_once_their_wheels_are_cached(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str
) -> None:
    wheels = make_wheel("helper", "1.0").parent
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("helper==1.0\n", encoding="utf-8")
    options = _options(requirements, "--find-links", str(wheels))
    wheelhouse = tmp_path / "wheelhouse"

    first = Recorder()
    _build(options, wheelhouse, first)
    assert [p.name for p in wheelhouse.glob("*.whl")] == ["helper-1.0-py3-none-any.whl"]  # pip download fetched it
    [record] = (wheelhouse / ".pinned").iterdir()
    assert record == _pinned_record(wheelhouse, options)

    second = Recorder()
    _build(options, wheelhouse, second)
    [only] = second.calls
    assert _offline(only) and str(wheelhouse) in only.extra_installer_args


@pytest.mark.usefixtures("offline_env")
def test_a_failing_build_from_the_cache_alone_asks_the_index_again(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: str
) -> None:
    wheels = make_wheel("helper", "1.0").parent
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("helper==1.0\n", encoding="utf-8")
    options = _options(requirements, "--find-links", str(wheels))
    wheelhouse = tmp_path / "wheelhouse"
    _build(options, wheelhouse, Recorder())
    record = _pinned_record(wheelhouse, options)
    assert record is not None and record.is_file()

    build = Recorder(failures=1)
    _build(options, wheelhouse, build)
    assert len(build.calls) == 2  # from the cache alone (failed), then after pip download
    assert record.is_file()  # written again by the build that succeeded


def test_the_record_is_per_requirements_target_and_arguments(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("helper==1.0\n", encoding="utf-8")
    wheelhouse = tmp_path / "wheelhouse"
    base = _pinned_record(wheelhouse, _options(requirements))
    assert base is not None and base.parent == wheelhouse / ".pinned"
    other_args = _pinned_record(wheelhouse, _options(requirements, "--pre"))
    other_target = _pinned_record(
        wheelhouse, LayerBuildOptions.parse(requirements=requirements, runtime="python3.12", architecture="arm64")
    )
    requirements.write_text("helper==1.1\n", encoding="utf-8")
    other_pins = _pinned_record(wheelhouse, _options(requirements))
    assert len({base, other_args, other_target, other_pins}) == 4
    requirements.write_text("helper>=1.0\n", encoding="utf-8")
    assert _pinned_record(wheelhouse, _options(requirements)) is None  # tomorrow's index may resolve it otherwise
