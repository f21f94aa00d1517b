"""Layer stacks in CDK: a team layer on top of a base layer of the same app (``on_top_of=[base]``), and the check of
every function's layers together at synth (an aspect the first layer adds: no call from the user).

Most tests fake the build (it writes a layer zip holding the distributions each requirements file names); those
that resolve and refuse run the real local build, offline, against wheels built in tmp_path."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda
from aws_cdk.assertions import Annotations, Match

from cdk_pip_layer import (
    InvalidInputError,
    LayerBuildOptions,
    LayerBuildResult,
    PipLambdaLayer,
    PipLambdaLayers,
)
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import Runtime
from cdk_pip_layer.engine.verify.report import LAMBDA_UNZIPPED_LIMIT, write_report
from cdk_pip_layer.engine.verify.verifier import verify_layer_zip
from stack_fixtures import BASE_HOLDS, BASE_REQUIREMENTS, offline, write_layer_zip, write_stack_wheels

MB = 1000 * 1000


@dataclass
class StackBuild:
    """Stands in for the engine's build: the layer holds what ``layers`` says for its requirements file's name
    (distribution -> version), with ``padding`` bytes more when given; each build's options are recorded."""

    layers: dict[str, dict[str, str]] = field(default_factory=dict)
    padding: dict[str, int] = field(default_factory=dict)
    calls: list[LayerBuildOptions] = field(default_factory=list)
    reports: bool = False  # write the layer report, as a verified build does

    def build(self, builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        options = builder.options
        self.calls.append(options)
        name = options.requirements.name
        dists = self.layers[name]
        zip_path = write_layer_zip(builder.build_dir / "layer.zip", dists, padding=self.padding.get(name, 0))
        (builder.build_dir / "artifacts" / "python").mkdir(parents=True)
        if self.reports:
            write_report(verify_layer_zip(zip_path, options.runtime, options.architecture).report, builder.build_dir)
        return LayerBuildResult(
            target=options.target,
            zip_path=zip_path,
            artifacts_dir=builder.build_dir / "artifacts",
            installer="fake",
            distributions=tuple(f"{n}=={v}" for n, v in dists.items()),
            excluded=(),
            built_from_source=(),
            warnings=(),
            unzipped_bytes=0,
            zipped_bytes=zip_path.stat().st_size,
            sha256="0" * 64,
            seconds=0.0,
        )


@pytest.fixture
def stack_build(monkeypatch: pytest.MonkeyPatch) -> StackBuild:
    fake = StackBuild()

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        return fake.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    return fake


@pytest.fixture
def inputs(tmp_path: Path) -> Callable[[str], Path]:
    """``inputs(name)``: a requirements file of that name (its content is the fake build's to ignore)."""

    def make(name: str) -> Path:
        path = tmp_path / "layers" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {name}\n", encoding="utf-8")
        return path

    return make


def _function(scope: cdk.Stack, id: str, layers: list[Any], code: Path, **props: Any) -> aws_lambda.Function:
    code.mkdir(parents=True, exist_ok=True)
    (code / "index.py").write_text("def handler(event, context):\n    return 1\n", encoding="utf-8")
    return aws_lambda.Function(
        scope,
        id,
        runtime=aws_lambda.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=aws_lambda.Code.from_asset(str(code)),
        layers=layers,
        **props,
    )


def _messages(stack: cdk.Stack, kind: str) -> list[str]:
    annotations = Annotations.from_stack(stack)
    found = (
        annotations.find_error("*", Match.any_value())
        if kind == "error"
        else annotations.find_warning("*", Match.any_value())
    )
    return [str(item.entry.data) for item in found]


# --- on_top_of: a base of the same app ------------------------------------------------------------------------------


def test_a_layer_goes_on_top_of_a_base_of_the_same_app(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"rich": "13.7.1"}}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    platform, team_stack = cdk.Stack(app, "Platform"), cdk.Stack(app, "Team")
    base = PipLambdaLayer(platform, "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(team_stack, "Deps", requirements=inputs("team.txt"), on_top_of=[base])
    [on] = team.build_options.on_top_of
    assert (on.label, on.target, on.pins()) == ("Platform/Base", "python3.12/x86_64", BASE_HOLDS)
    assert stack_build.calls[-1].on_top_of == (on,)  # the build got the base
    alone = PipLambdaLayer(team_stack, "Alone", requirements=inputs("team.txt"))
    assert team.input_hash != alone.input_hash


def test_the_hash_follows_what_the_base_holds(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """Another base version is another top layer; the same base content elsewhere (another app, path) is not."""
    stack_build.layers = {"base.txt": {"requests": "2.31.0"}, "newer.txt": {"requests": "2.32.3"}, "team.txt": {}}
    stack_build.layers["team.txt"] = {"rich": "13.7.1"}
    hashes = []
    for number, base_input in enumerate(("base.txt", "base.txt", "newer.txt")):
        app = cdk.App(outdir=str(tmp_path / f"cdk.out.{number}"))
        stack = cdk.Stack(app, f"S{number}")
        base = PipLambdaLayer(stack, f"Base{number}", requirements=inputs(base_input))
        hashes.append(PipLambdaLayer(stack, "Team", requirements=inputs("team.txt"), on_top_of=base).input_hash)
    assert hashes[0] == hashes[1] != hashes[2]


def test_a_base_of_another_app_is_passed_as_its_report_and_gives_the_same_layer(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """The platform app publishes its base's report (report_path); a team app builds on top of the report file and
    gets the layer (the same asset hash) it would get on top of the construct itself."""
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"rich": "13.7.1"}}
    stack_build.reports = True
    platform_app = cdk.App(outdir=str(tmp_path / "platform.out"))
    platform = cdk.Stack(platform_app, "Platform")
    base = PipLambdaLayer(platform, "Base", requirements=inputs("base.txt"), ssm_parameter_name="/platform/base/arn")
    same_app = PipLambdaLayer(platform, "Team", requirements=inputs("team.txt"), on_top_of=[base])
    assert base.report_path is not None
    published = tmp_path / "published" / "base.report.json"
    published.parent.mkdir()
    published.write_text(base.report_path.read_text(encoding="utf-8"), encoding="utf-8")

    team_app = cdk.App(outdir=str(tmp_path / "team.out"))
    other_app = PipLambdaLayer(
        cdk.Stack(team_app, "Team"), "Deps", requirements=inputs("team.txt"), on_top_of=[published]
    )
    [on] = other_app.build_options.on_top_of
    assert (on.label, on.target, on.pins()) == (str(published), "python3.12/x86_64", BASE_HOLDS)
    assert other_app.input_hash == same_app.input_hash


def test_a_group_goes_on_top_of_a_group_member_by_member(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"rich": "13.7.1"}}
    _app, stack = _app_and_stack(tmp_path)
    targets = ["python3.12/x86_64", "python3.13/arm64"]
    base = PipLambdaLayers(stack, "Base", requirements=inputs("base.txt"), targets=targets)
    team = PipLambdaLayers(stack, "Team", requirements=inputs("team.txt"), targets=targets, on_top_of=[base])
    for name, member in team.layers.items():
        [on] = member.build_options.on_top_of
        assert (on.label, on.target) == (f"Stack/Base/{name.replace('/', '-')}", name)
    with pytest.raises(InvalidInputError, match=r"No layer for python3\.13/x86_64 in Stack/Base"):
        PipLambdaLayer(stack, "Other", requirements=inputs("team.txt"), runtime="python3.13", on_top_of=[base])
    with pytest.raises(InvalidInputError, match=r"built for python3\.12/x86_64, the layer on top of it for"):
        PipLambdaLayer(
            stack, "Arm", requirements=inputs("team.txt"), architecture="arm64", on_top_of=[base.layers[targets[0]]]
        )


def test_a_base_whose_stack_is_not_bundled_cannot_have_a_layer_built_on_top(
    tmp_path: Path, inputs: Callable[[str], Path]
) -> None:
    """``cdk deploy Team --exclusively``: CDK bundles Team only, so what the base holds is unknown; the real build
    refuses before it installs anything, naming the base and what to do."""
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context={"aws:cdk:bundling-stacks": ["Team"]})
    base = PipLambdaLayer(cdk.Stack(app, "Platform"), "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(cdk.Stack(app, "Team"), "Deps", requirements=inputs("team.txt"), on_top_of=[base])
    assert isinstance(team.build_error, InvalidInputError)
    assert "What the base layer Platform/Base (python3.12/x86_64) holds is not known" in team.build_error.what
    assert "drop --exclusively" in str(team.build_error)


# --- the real build on top of a base: resolved against it, conflicts refused ---------------------------------------


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    return write_stack_wheels(tmp_path / "wheels")


def _app_and_stack(tmp_path: Path) -> tuple[cdk.App, cdk.Stack]:
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    return app, cdk.Stack(app, "Stack")


def _staged_names(layer: PipLambdaLayer) -> set[str]:
    contents = layer.stack_layer()
    assert contents is not None
    return {f"{d.name}=={d.version}" for d in contents.distributions}


@pytest.mark.usefixtures("offline_env")
def test_a_team_layer_built_on_top_holds_none_of_the_bases_distributions(
    tmp_path: Path, wheels: Path, host_runtime: Runtime
) -> None:
    (tmp_path / "base.txt").write_text(BASE_REQUIREMENTS, encoding="utf-8")
    (tmp_path / "team.txt").write_text("requests\nrich\n", encoding="utf-8")
    _app, stack = _app_and_stack(tmp_path)
    args: dict[str, Any] = {"runtime": host_runtime, "extra_installer_args": offline(wheels)}
    base = PipLambdaLayer(stack, "Base", requirements=tmp_path / "base.txt", **args)
    team = PipLambdaLayer(stack, "Team", requirements=tmp_path / "team.txt", on_top_of=[base], **args)
    assert _staged_names(base) == {f"{name}=={version}" for name, version in BASE_HOLDS.items()}
    assert _staged_names(team) == {"rich==13.7.1", "pygments==2.17.2"}


@pytest.mark.usefixtures("offline_env")
def test_a_team_layer_that_conflicts_with_the_base_is_refused_naming_both_versions(
    tmp_path: Path, wheels: Path, host_runtime: Runtime
) -> None:
    (tmp_path / "base.txt").write_text(BASE_REQUIREMENTS, encoding="utf-8")
    (tmp_path / "team.txt").write_text("requests==2.32.3\nrich\n", encoding="utf-8")
    _app, stack = _app_and_stack(tmp_path)
    args: dict[str, Any] = {"runtime": host_runtime, "extra_installer_args": offline(wheels)}
    base = PipLambdaLayer(stack, "Base", requirements=tmp_path / "base.txt", **args)
    team = PipLambdaLayer(stack, "Team", requirements=tmp_path / "team.txt", on_top_of=[base], **args)
    assert isinstance(team.build_error, InvalidInputError)
    assert team.build_error.what == (
        f"requests==2.32.3 conflicts with the base layer Stack/Base ({host_runtime}/x86_64), which holds requests "
        "2.31.0"
    )


# --- the stack check at synth -----------------------------------------------------------------------------------------


def test_a_function_with_two_layers_of_one_distribution_fails_synth_naming_it(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """The team layer was built without on_top_of: it ships requests 2.32.3 over the base's 2.31.0."""
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"requests": "2.32.3", "rich": "13.7.1"}}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    platform, team_stack = cdk.Stack(app, "Platform"), cdk.Stack(app, "Team")
    base = PipLambdaLayer(platform, "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(team_stack, "Deps", requirements=inputs("team.txt"))
    _function(team_stack, "Fn", [base, team], tmp_path / "fn")
    errors = _messages(team_stack, "error")
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        "cdk-pip-layer: error: [stack-versions] requests: 2.31.0 in Platform/Base (layer 1) and 2.32.3 in Team/Deps "
        "(layer 2)"
    )
    warnings = _messages(team_stack, "warning")
    assert any("[stack-files]" in w and "python/requests/__init__.py" in w for w in warnings), warnings
    # The cloud assembly carries the error on the function: `cdk synth` and `cdk deploy` stop there.
    artifact = app.synth().get_stack_by_name("Team")
    failing = [m for m in artifact.messages if m.level == cdk.cx_api.SynthesisMessageLevel.ERROR]
    assert [m.id for m in failing] == ["/Team/Fn"]
    assert "requests" in str(failing[0].entry.data)


def test_a_python_function_is_checked_as_a_function(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """aws-lambda-python-alpha's PythonFunction (a Function that bundles its own code with pip, in Docker) with the
    base and a team layer of one distribution at two versions: the same error. Its stack is not bundled here (its
    Docker bundling is not what is tested); the layers' stacks are."""
    python_alpha = pytest.importorskip(
        "aws_cdk.aws_lambda_python_alpha", reason="aws-lambda-python-alpha is a dev tool"
    )

    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"requests": "2.32.3", "rich": "13.7.1"}}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context={"aws:cdk:bundling-stacks": ["Platform", "Team"]})
    platform, team_stack, functions = cdk.Stack(app, "Platform"), cdk.Stack(app, "Team"), cdk.Stack(app, "Functions")
    base = PipLambdaLayer(platform, "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(team_stack, "Deps", requirements=inputs("team.txt"))
    code = tmp_path / "py-fn"
    code.mkdir()
    (code / "index.py").write_text("def handler(event, context):\n    return 1\n", encoding="utf-8")
    python_alpha.PythonFunction(
        functions, "PyFn", entry=str(code), runtime=aws_lambda.Runtime.PYTHON_3_12, layers=[base, team]
    )
    errors = _messages(functions, "error")
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        "cdk-pip-layer: error: [stack-versions] requests: 2.31.0 in Platform/Base (layer 1) and 2.32.3 in Team/Deps "
        "(layer 2)"
    )


def test_a_function_whose_layers_pass_the_limit_fails_synth_with_each_size(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"data.txt": {"numpy": "2.0.0"}, "model.txt": {"torch-lite": "1.0"}}
    stack_build.padding = {"data.txt": 140 * MB, "model.txt": 125 * MB}
    _app, stack = _app_and_stack(tmp_path)
    data = PipLambdaLayer(stack, "Data", requirements=inputs("data.txt"))
    model = PipLambdaLayer(stack, "Model", requirements=inputs("model.txt"))
    _function(stack, "Fn", [data, model], tmp_path / "fn")
    [error] = _messages(stack, "error")
    sizes = {layer.node.path: layer.stack_layer().unzipped_bytes for layer in (data, model)}  # type: ignore[union-attr]
    assert "[stack-size] the function and its layers" in error
    for path, size in sizes.items():
        assert f"{path} {size:,}" in error
    code = len(b"def handler(event, context):\n    return 1\n")
    assert f"the function's code {code:,}" in error
    assert f"Lambda allows {LAMBDA_UNZIPPED_LIMIT:,}" in error


def test_layers_built_on_top_pass_and_a_single_layer_is_not_checked(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"rich": "13.7.1"}, "other.txt": {"requests": "2.32.3"}}
    _app, stack = _app_and_stack(tmp_path)
    base = PipLambdaLayer(stack, "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(stack, "Team", requirements=inputs("team.txt"), on_top_of=[base])
    other = PipLambdaLayer(stack, "Other", requirements=inputs("other.txt"))
    _function(stack, "Stacked", [base, team], tmp_path / "fn")
    _function(stack, "Single", [other], tmp_path / "fn")
    assert _messages(stack, "error") == []
    assert _messages(stack, "warning") == []


def test_check_stacks_false_leaves_the_functions_using_the_layer_unchecked(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"requests": "2.32.3"}}
    _app, stack = _app_and_stack(tmp_path)
    base = PipLambdaLayer(stack, "Base", requirements=inputs("base.txt"))
    team = PipLambdaLayer(stack, "Team", requirements=inputs("team.txt"), check_stacks=False)
    _function(stack, "Fn", [base, team], tmp_path / "fn")
    assert _messages(stack, "error") == []


def test_a_layer_of_another_architecture_fails_synth(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """CDK checks a layer's runtimes, not its architectures."""
    stack_build.layers = {"base.txt": BASE_HOLDS, "team.txt": {"rich": "13.7.1"}}
    _app, stack = _app_and_stack(tmp_path)
    base = PipLambdaLayer(stack, "Base", requirements=inputs("base.txt"))
    arm = PipLambdaLayer(stack, "Team", requirements=inputs("team.txt"), architecture="arm64")
    _function(stack, "Fn", [base, arm], tmp_path / "fn")
    [error] = _messages(stack, "error")
    assert "[stack-target] Stack/Team (layer 2): was built for architecture arm64 (the function's is x86_64)" in error


def test_layers_of_two_stacks_with_one_logical_id_are_told_apart(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """Platform/Layer and Team/Layer have the same logical id; the function uses both, and the check names each."""
    stack_build.layers = {"base.txt": {"requests": "2.31.0"}, "team.txt": {"requests": "2.32.3"}}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    platform, team_stack = cdk.Stack(app, "Platform"), cdk.Stack(app, "Team")
    base = PipLambdaLayer(platform, "Layer", requirements=inputs("base.txt"))
    team = PipLambdaLayer(team_stack, "Layer", requirements=inputs("team.txt"))
    _function(team_stack, "Fn", [team, base], tmp_path / "fn")
    [error] = _messages(team_stack, "error")
    assert re.search(r"2\.32\.3 in Team/Layer \(layer 1\) and 2\.31\.0 in Platform/Layer \(layer 2\)", error), error


def test_the_check_takes_the_order_of_the_template(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """With @aws-cdk/aws-lambda:recognizeLayerVersion (new projects' default), CDK sorts a function's layers by
    construct path: Lambda extracts ATeam first, whatever the list said."""
    stack_build.layers = {"base.txt": {"requests": "2.31.0"}, "team.txt": {"requests": "2.32.3"}}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context={"@aws-cdk/aws-lambda:recognizeLayerVersion": True})
    stack = cdk.Stack(app, "Stack")
    base = PipLambdaLayer(stack, "ZBase", requirements=inputs("base.txt"))
    team = PipLambdaLayer(stack, "ATeam", requirements=inputs("team.txt"))
    _function(stack, "Fn", [base, team], tmp_path / "fn")
    [error] = _messages(stack, "error")
    assert "2.32.3 in Stack/ATeam (layer 1) and 2.31.0 in Stack/ZBase (layer 2)" in error, error


def test_one_aspect_per_app_whatever_the_number_of_layers(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    stack_build.layers = {"base.txt": BASE_HOLDS}
    app, stack = _app_and_stack(tmp_path)
    for number in range(3):
        PipLambdaLayer(stack, f"L{number}", requirements=inputs("base.txt"))
    from cdk_pip_layer.cdk.stack_check import LayerStackChecks

    assert [type(a) for a in cdk.Aspects.of(app).all] == [LayerStackChecks]


def test_the_base_is_read_from_its_zip_in_cdk_out(
    tmp_path: Path, stack_build: StackBuild, inputs: Callable[[str], Path]
) -> None:
    """What the base holds comes from its staged zip, beside which its asset lives (a warm cdk.out has it too)."""
    stack_build.layers = {"base.txt": BASE_HOLDS}
    _app, stack = _app_and_stack(tmp_path)
    base = PipLambdaLayer(stack, "Base", requirements=inputs("base.txt"))
    staged = list((tmp_path / "cdk.out").glob("asset.*.zip"))
    assert len(staged) == 1
    with zipfile.ZipFile(staged[0]) as archive:
        assert "python/requests-2.31.0.dist-info/METADATA" in archive.namelist()
    assert json.dumps(base.base_layer(base.target).to_dict())  # plain data
