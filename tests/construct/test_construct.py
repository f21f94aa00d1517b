"""What the construct puts into the template, and the props it refuses (no build: bundling is not required)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda
from aws_cdk.assertions import Match, Template

from cdk_pip_layer import (
    BundlingMode,
    IndexSettings,
    InvalidInputError,
    PipLambdaLayer,
    RequirementsFileError,
    UnsupportedTargetError,
)

from ._helpers import make_app


def _cfn(layer: PipLambdaLayer) -> cdk.CfnElement:
    child = layer.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return child


def _template(tmp_path: Path, requirements: Path, **props: Any) -> Template:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    PipLambdaLayer(stack, "Layer", requirements=requirements, **props)
    return Template.from_stack(stack)


def test_is_a_layer_version_usable_by_a_function(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements)
    assert isinstance(layer, aws_lambda.LayerVersion)
    aws_lambda.Function(
        stack,
        "Fn",
        runtime=aws_lambda.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=aws_lambda.Code.from_inline("def handler(event, context): return 1"),
        layers=[layer],
    )
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {"Layers": [{"Ref": stack.get_logical_id(_cfn(layer))}]})


def test_defaults_python312_x86_64_retained(tmp_path: Path, requirements: Path) -> None:
    template = _template(tmp_path, requirements)
    template.resource_count_is("AWS::Lambda::LayerVersion", 1)
    template.has_resource(
        "AWS::Lambda::LayerVersion",
        {
            "Properties": {"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.resource_count_is("AWS::Lambda::LayerVersionPermission", 0)
    template.resource_count_is("AWS::SSM::Parameter", 0)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (("python3.10", "x86_64"), ("python3.10", "x86_64")),
        (("python3.11", "arm64"), ("python3.11", "arm64")),
        (("python3.13", "aarch64"), ("python3.13", "arm64")),
        (("python3.14", "amd64"), ("python3.14", "x86_64")),
        ((aws_lambda.Runtime.PYTHON_3_12, aws_lambda.Architecture.ARM_64), ("python3.12", "arm64")),
    ],
)
def test_compatible_runtimes_and_architectures_follow_the_target(
    tmp_path: Path, requirements: Path, target: tuple[Any, Any], expected: tuple[str, str]
) -> None:
    template = _template(tmp_path, requirements, runtime=target[0], architecture=target[1])
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": [expected[0]], "CompatibleArchitectures": [expected[1]]},
    )


def test_usual_layer_props(tmp_path: Path, requirements: Path) -> None:
    template = _template(
        tmp_path,
        requirements,
        description="requests for 3.12",
        layer_version_name="http-client",
        license="Apache-2.0",
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    template.has_resource(
        "AWS::Lambda::LayerVersion",
        {
            "Properties": {
                "Description": "requests for 3.12",
                "LayerName": "http-client",
                "LicenseInfo": "Apache-2.0",
            },
            "DeletionPolicy": "Delete",
        },
    )


def test_grants_accounts_and_an_organization(tmp_path: Path, requirements: Path) -> None:
    template = _template(
        tmp_path,
        requirements,
        grant_account_ids=["111111111111", "222222222222", "111111111111"],
        organization_id="o-a1b2c3d4e5",
    )
    template.resource_count_is("AWS::Lambda::LayerVersionPermission", 3)
    layer_ref = {"Ref": Match.string_like_regexp("^Layer")}
    for account in ("111111111111", "222222222222"):
        template.has_resource_properties(
            "AWS::Lambda::LayerVersionPermission",
            {"Action": "lambda:GetLayerVersion", "Principal": account, "LayerVersionArn": layer_ref},
        )
    template.has_resource_properties(
        "AWS::Lambda::LayerVersionPermission",
        {"Action": "lambda:GetLayerVersion", "Principal": "*", "OrganizationId": "o-a1b2c3d4e5"},
    )


def test_publishes_the_layer_version_arn_in_ssm(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements, ssm_parameter_name="/platform/layers/http/arn")
    assert layer.ssm_parameter is not None
    Template.from_stack(stack).has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": "/platform/layers/http/arn",
            "Type": "String",
            "Value": {"Ref": stack.get_logical_id(_cfn(layer))},
        },
    )


def test_exposes_what_it_builds(tmp_path: Path, requirements: Path) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(
        stack, "Layer", requirements=requirements, runtime="python3.11", architecture="arm64", bundling="docker"
    )
    assert str(layer.target) == "python3.11/arm64"
    assert layer.bundling_mode is BundlingMode.DOCKER
    assert layer.build_options.requirements == requirements
    assert len(layer.input_hash) == 64
    assert layer.ssm_parameter is None


@pytest.mark.parametrize(
    ("props", "error", "words"),
    [
        ({"runtime": "python3.9"}, UnsupportedTargetError, "Unsupported runtime 'python3.9'"),
        ({"architecture": "s390x"}, UnsupportedTargetError, "Unsupported architecture 's390x'"),
        ({"bundling": "podman"}, InvalidInputError, "Unknown bundling mode 'podman'"),
        ({"installer": "poetry"}, InvalidInputError, "Unknown installer 'poetry'"),
        ({"exclude": ["boto3;rm"]}, InvalidInputError, "Invalid package name to exclude"),
        ({"extra_installer_args": ["--target=/tmp"]}, InvalidInputError, "(--target) is set by cdk-pip-layer"),
        ({"grant_account_ids": ["12345"]}, InvalidInputError, "Invalid AWS account id '12345'"),
        ({"grant_account_ids": ["*"]}, InvalidInputError, "add_permission('Public'"),
        ({"organization_id": "org-1"}, InvalidInputError, "Invalid AWS Organization id 'org-1'"),
        ({"ssm_parameter_name": "has space"}, InvalidInputError, "Invalid SSM parameter name"),
        ({"ssm_parameter_name": "/aws/reserved"}, InvalidInputError, "Invalid SSM parameter name"),
        ({"ssm_parameter_name": "platform/layers/arn"}, InvalidInputError, "Invalid SSM parameter name"),
        ({"layer_version_name": "has space!"}, InvalidInputError, "Invalid layer name"),
        ({"layer_version_name": "x" * 141}, InvalidInputError, "Invalid layer name"),
        ({"description": "x" * 257}, InvalidInputError, "Lambda allows 256"),
        ({"index": IndexSettings(index_url="https://user:s3cret@pypi.example.com/simple")}, None, ""),
    ],
)
def test_invalid_props_get_one_clear_error(
    tmp_path: Path, requirements: Path, props: dict[str, Any], error: type[Exception] | None, words: str
) -> None:
    if error is None:  # valid: for contrast
        _template(tmp_path, requirements, **props)
        return
    with pytest.raises(error) as info:
        _template(tmp_path, requirements, **props)
    assert words in str(info.value)
    assert "What to do:" in str(info.value)


def test_a_missing_requirements_file_is_the_layers_error_when_its_stack_is_bundled(tmp_path: Path) -> None:
    """Validation belongs to bundling: cdk ls, cdk destroy and stacks left out with --exclusively read nothing
    that can fail; cdk synth of the layer's stack reports it on the layer."""
    missing = tmp_path / "nope" / "requirements.txt"
    _template(tmp_path, missing)  # not bundled: nothing fails
    _app, stack = make_app(tmp_path / "bundled", bundling=True)
    layer = PipLambdaLayer(stack, "Layer", requirements=missing)
    assert isinstance(layer.build_error, RequirementsFileError)
    assert "Requirements file not found" in layer.build_error.what


def test_an_import_error_inside_the_package_surfaces_as_itself() -> None:
    """An aws-cdk-lib older than the package needs (no Runtime.PYTHON_3_13) gave "cannot import name
    'PipLambdaLayer'", hiding the cause."""
    script = (
        "from aws_cdk import aws_lambda\n"
        "delattr(aws_lambda.Runtime, 'PYTHON_3_13')\n"
        "from cdk_pip_layer import PipLambdaLayer\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cdk_pip_layer.PipLambdaLayer cannot be imported:"), run.stderr[-2000:]
    assert "PYTHON_3_13" in last


_BAD_PROP_APP = """
import sys
import aws_cdk as cdk
from cdk_pip_layer import InvalidInputError, PipLambdaLayer, PipLambdaLayers

app = cdk.App(outdir=sys.argv[1])
stack = cdk.Stack(app, "Api")
if sys.argv[2] == "caught":
    try:
        PipLambdaLayer(stack, "Deps", requirements="requirements.txt", runtime="python3.21")
    except InvalidInputError:
        pass
    raise ValueError("the app's own error")
if sys.argv[2] == "group":
    PipLambdaLayers(stack, "Deps", requirements="requirements.txt", targets=["python3.12/s390x"])
PipLambdaLayer(stack, "Deps", requirements="requirements.txt", runtime="python3.21")
"""


@pytest.mark.parametrize("case", ["layer", "group", "caught"])
def test_a_refused_prop_the_app_does_not_catch_is_one_message_naming_the_apps_line(
    tmp_path: Path, requirements: Path, case: str
) -> None:
    """A bad prop raises at once (the app may catch it), but uncaught, the CDK CLI shows the engine's one message
    with the construct and the app's line that made it: not a 15-line trace through jsii and the engine. Any other
    error of the app keeps Python's trace."""
    app = tmp_path / "app.py"
    app.write_text(_BAD_PROP_APP, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(app), str(tmp_path / "cdk.out"), case],
        cwd=requirements.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    if case == "caught":
        assert "Traceback" in done.stderr and "ValueError: the app's own error" in done.stderr
        assert "cdk-pip-layer: error:" not in done.stderr
        return
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    line = 16 if case == "layer" else 15
    words = "Unsupported runtime 'python3.21'" if case == "layer" else "Unsupported architecture 's390x'"
    assert lines[0].startswith(f"cdk-pip-layer: error: {words}"), done.stderr
    assert lines[1].startswith("What to do: "), done.stderr
    assert lines[-1] == f"  in Api/Deps, made at {app}:{line}", done.stderr
