"""PipLambdaLayers: one dependency set declared once for several targets, one layer each, built at the same time."""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda
from aws_cdk.assertions import Template

from cdk_pip_layer import (
    InstallError,
    InvalidInputError,
    LayerBuildResult,
    PipLambdaLayer,
    PipLambdaLayers,
    UnsupportedTargetError,
)
from cdk_pip_layer.cdk import targets
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder

from ._helpers import layer_asset_hash, make_app, synth_template
from .conftest import FakeBuild, FakeDocker
from .test_bundling import IMPOSSIBLE

FOUR: list[str | tuple[str, str]] = [
    "python3.12/x86_64",
    "python3.12/arm64",
    ("python3.13", "x86_64"),
    ("python3.13", "arm64"),
]


def _layers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's layer versions by their (runtime, architecture)."""
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            props = resource["Properties"]
            [runtime] = props["CompatibleRuntimes"]
            [architecture] = props["CompatibleArchitectures"]
            out[f"{runtime}/{architecture}"] = props
    return out


def _asset_zip(outdir: Path, props: dict[str, Any]) -> Path:
    return outdir / f"asset.{props['Content']['S3Key'].removesuffix('.zip')}.zip"


def _synth(outdir: Path, requirements: Path, **props: Any) -> dict[str, dict[str, Any]]:
    app, stack = make_app(outdir)
    PipLambdaLayers(stack, "Deps", requirements=requirements, **props)
    return _layers(synth_template(app))


def test_one_layer_per_target_each_with_the_hash_it_has_alone(tmp_path: Path, requirements: Path) -> None:
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    group = PipLambdaLayers(stack, "Deps", requirements=requirements, targets=FOUR, exclude=["boto3"])
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Lambda::LayerVersion", 4)
    layers = _layers(synth_template(app))
    assert sorted(layers) == ["python3.12/arm64", "python3.12/x86_64", "python3.13/arm64", "python3.13/x86_64"]
    keys = {props["Content"]["S3Key"] for props in layers.values()}
    assert len(keys) == 4
    for name, props in layers.items():
        runtime, architecture = name.split("/")
        alone_app, alone_stack = make_app(tmp_path / f"alone-{runtime}-{architecture}", bundling=False)
        PipLambdaLayer(
            alone_stack,
            "Alone",
            requirements=requirements,
            runtime=cast(Any, runtime),
            architecture=cast(Any, architecture),
            exclude=["boto3"],
        )
        assert props["Content"]["S3Key"] == f"{layer_asset_hash(synth_template(alone_app))}.zip"
    member = group.layer("python3.13", aws_lambda.Architecture.ARM_64)
    assert isinstance(member, PipLambdaLayer) and isinstance(member, aws_lambda.LayerVersion)
    assert str(member.target) == "python3.13/arm64"
    assert member.node.id == "python3.13-arm64"
    assert list(group.layers) == ["python3.12/x86_64", "python3.12/arm64", "python3.13/x86_64", "python3.13/arm64"]


def test_names_and_sharing_per_target(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    PipLambdaLayers(
        stack,
        "Deps",
        requirements=requirements,
        targets=["python3.12/x86_64", "python3.12/arm64"],
        layer_version_name="deps",
        ssm_parameter_name="/platform/layers/deps",
        grant_account_ids=["111122223333"],
        description="shared deps",
    )
    template = Template.from_stack(stack)
    for architecture in ("x86_64", "arm64"):
        template.has_resource_properties(
            "AWS::Lambda::LayerVersion",
            {
                "LayerName": f"deps-python312-{architecture}",
                "Description": "shared deps",
                "CompatibleArchitectures": [architecture],
            },
        )
        template.has_resource_properties(
            "AWS::SSM::Parameter", {"Name": f"/platform/layers/deps/python3.12/{architecture}"}
        )
    template.resource_count_is("AWS::Lambda::LayerVersionPermission", 2)


@pytest.mark.parametrize(
    ("targets", "error", "words"),
    [
        ([], InvalidInputError, "No target given"),
        (["python3.12/x86_64", ("python3.12", "x86_64")], InvalidInputError, "given twice"),
        (["python3.12"], InvalidInputError, "Invalid target 'python3.12'"),
        (["python3.9/x86_64"], UnsupportedTargetError, "Unsupported runtime 'python3.9'"),
        ([("python3.12", "sparc")], UnsupportedTargetError, "Unsupported architecture 'sparc'"),
        ([42], InvalidInputError, "Invalid target 42"),
    ],
)
def test_bad_targets_get_one_clear_error_and_leave_nothing(
    tmp_path: Path, requirements: Path, targets: list[Any], error: type[Exception], words: str
) -> None:
    _app, stack = make_app(tmp_path / "cdk.out")
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        PipLambdaLayers(stack, "Deps", requirements=requirements, targets=targets)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_prop_a_target_cannot_take_is_refused_before_anything_is_staged(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out")
    with pytest.raises(InvalidInputError, match="Invalid layer name"):
        PipLambdaLayers(stack, "Deps", requirements=requirements, targets=FOUR, layer_version_name="x" * 130)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_layer_for_a_target_not_in_the_group_is_an_error(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    group = PipLambdaLayers(stack, "Deps", requirements=requirements, targets=["python3.12/x86_64"])
    with pytest.raises(InvalidInputError, match=r"No layer for python3\.12/arm64"):
        group.layer("python3.12", "arm64")


# --- the builds: all at once, and only when CDK needs them ----------------------------------------------------------


# Builds at once: as many as this process has CPUs (more only contend), up to the four targets.
AT_ONCE = min(4, len(os.sched_getaffinity(0)))


@pytest.fixture
def meeting_builds(monkeypatch: pytest.MonkeyPatch, fake_build: FakeBuild) -> threading.Barrier:
    """Fake builds that return only once AT_ONCE of them are running at the same time (and never more): builds made
    one after the other never meet, and break the barrier."""
    barrier = threading.Barrier(AT_ONCE, timeout=60)
    running = [0]
    guard = threading.Lock()

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        with guard:
            running[0] += 1
            if running[0] > AT_ONCE:
                barrier.abort()
        try:
            barrier.wait()
        finally:
            with guard:
                running[0] -= 1
        return fake_build.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    return barrier


def test_the_four_builds_run_together_as_many_at_once_as_there_are_cpus(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    meeting_builds: threading.Barrier,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layers = _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert not meeting_builds.broken
    assert sorted(str(options.target) for options in fake_build.calls) == sorted(layers)
    for target, props in layers.items():
        with zipfile.ZipFile(_asset_zip(tmp_path / "cdk.out", props)) as archive:
            assert archive.read("python/fake_pkg/__init__.py").decode() == f"TARGET = {target!r}\n"
    err = capsys.readouterr().err
    assert err.count(": built locally with fake in ") == 4  # one line for each
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "cdk.out").glob(".cdk-pip-layer-build-*")) == []


def test_the_builds_of_a_group_install_one_at_a_time(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four installs of one dependency set at the same moment only compete for the index (and lose lookups to a
    resolver that drops a burst); one after the other, a later one finds the pure wheels an earlier one fetched."""
    locks: list[object] = []

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        locks.append(builder.install_lock)
        return fake_build.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert len(locks) == 4
    assert locks[0] is not None
    assert all(lock is locks[0] for lock in locks)


def test_after_a_failure_the_builds_still_waiting_to_install_give_up(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One dependency set usually fails the same way for every target (no such version, an unreachable index): the
    synth must not run the other installs one after another before it reports the first failure."""
    first = "python3.12/x86_64"
    failure = InstallError("pip failed: no matching distribution", subject=f"requirements for {first}")
    abandoned = threading.Event()
    installed: list[str] = []
    abandon = targets._InstallTurns.abandon

    def abandon_and_tell(turns: targets._InstallTurns) -> None:
        abandon(turns)
        abandoned.set()

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        target = str(builder.options.target)
        if target == first:
            raise failure
        abandoned.wait(timeout=10)  # the others reach their install only once the group gave up
        assert builder.install_lock is not None
        with builder.install_lock:
            installed.append(target)
        raise AssertionError("unreachable: the install lock refuses an abandoned group")

    monkeypatch.setattr(targets._InstallTurns, "abandon", abandon_and_tell)
    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    _app, stack = make_app(tmp_path / "cdk.out")
    group = PipLambdaLayers(stack, "Deps", requirements=requirements, targets=FOUR, cache=False)
    assert group.layers[first].build_error is failure  # the group's first error, on its layer
    others = [layer.build_error for name, layer in group.layers.items() if name != first]
    assert all(error is not None and error.what == "Not built: another layer of the group failed" for error in others)
    assert abandoned.is_set()
    assert installed == []
    assert list((tmp_path / "cdk.out").glob(".cdk-pip-layer-build-*")) == []


def test_nothing_is_built_when_bundling_is_not_required(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker
) -> None:
    """`cdk ls`, `cdk destroy`, stacks left out with --exclusively."""
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    PipLambdaLayers(stack, "Deps", requirements=requirements, targets=FOUR)
    synth_template(app)
    assert fake_build.calls == []
    assert fake_docker.calls == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not list((tmp_path / "cdk.out").glob("asset.*"))


def test_a_warm_cdk_out_builds_nothing(tmp_path: Path, requirements: Path, fake_build: FakeBuild) -> None:
    first = _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert len(fake_build.calls) == 4
    second = _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert second == first
    assert len(fake_build.calls) == 4  # CDK had every asset: no build started, none wasted
    assert list((tmp_path / "cdk.out").glob(".cdk-pip-layer-build-*")) == []


def test_a_new_target_in_a_warm_cdk_out_builds_only_itself(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild
) -> None:
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR[:3], cache=False)
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert [str(options.target) for options in fake_build.calls[3:]] == ["python3.13/arm64"]


def test_a_fresh_cdk_out_is_served_from_the_layer_cache(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _synth(tmp_path / "run-1", requirements, targets=FOUR)
    capsys.readouterr()
    second = _synth(tmp_path / "run-2", requirements, targets=FOUR)
    assert len(fake_build.calls) == 4
    assert capsys.readouterr().err.count("reused from the cache") == 4
    for target, props in second.items():
        assert (
            _asset_zip(tmp_path / "run-2", props).read_bytes()
            == _asset_zip(tmp_path / "run-1", first[target]).read_bytes()
        )


def test_a_target_that_cannot_build_locally_falls_back_to_docker_alone(
    tmp_path: Path, requirements: Path, fake_docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeBuild()

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        if builder.options.architecture == "arm64":
            fake.calls.append(builder.options)
            raise IMPOSSIBLE
        return fake.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    layers = _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    assert len(fake.calls) == 4
    assert len(fake_docker.calls) == 2
    assert {call["argv"][call["argv"].index("--platform") + 1] for call in fake_docker.calls} == {"linux/arm64"}
    for target, props in layers.items():
        names = zipfile.ZipFile(_asset_zip(tmp_path / "cdk.out", props)).namelist()
        expected = "python/built_in_docker.py" if target.endswith("arm64") else "python/fake_pkg/__init__.py"
        assert names == [expected]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_docker_bundling_starts_no_local_build(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker
) -> None:
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR[:2], bundling="docker")
    assert fake_build.calls == []
    assert len(fake_docker.calls) == 2


def test_a_failed_build_fails_the_synth_with_its_message_and_leaves_nothing(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeBuild()
    failure = InstallError("pip failed: no matching distribution", subject="requirements for python3.13/x86_64")

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        if str(builder.options.target) == "python3.13/x86_64":
            fake.calls.append(builder.options)
            raise failure
        return fake.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    app, stack = make_app(tmp_path / "cdk.out")
    group = PipLambdaLayers(stack, "Deps", requirements=requirements, targets=FOUR, cache=False)
    assert group.layers["python3.13/x86_64"].build_error is failure
    synth_template(app)
    # The builds that had started are waited for and cleaned; one still queued may be cancelled before it starts.
    assert 3 <= len(fake.calls) <= 4
    # No layer that failed (or gave up for it) leaves its asset in cdk.out.
    failed = [layer for layer in group.layers.values() if layer.build_error is not None]
    assert len(list((tmp_path / "cdk.out").glob("asset.*.zip"))) == 4 - len(failed)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "cdk.out").glob(".cdk-pip-layer-build-*")) == []
    assert isinstance(app, cdk.App)


def test_a_warning_every_target_has_is_said_once_for_the_group(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_build.warnings = ("excluded package 'boto3' is not in the layer",)
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False, exclude=["boto3"])
    err = capsys.readouterr().err
    assert err.count("excluded package 'boto3' is not in the layer") == 1
    assert "cdk-pip-layer: Stack/Deps: warning: excluded package 'boto3' is not in the layer" in err


def test_a_target_already_in_cdk_out_is_said_so(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR[:3], cache=False)
    capsys.readouterr()
    _synth(tmp_path / "cdk.out", requirements, targets=FOUR, cache=False)
    err = capsys.readouterr().err
    for target in FOUR[:3]:
        name = target if isinstance(target, str) else "/".join(target)
        assert f"cdk-pip-layer: Stack/Deps/{name.replace('/', '-')}: already in cdk.out, not built again" in err
    assert err.count("built locally") == 1
