"""publish_layer's offline parts: the direct-upload limit's arithmetic (measured with botocore's own request
serializer), inputs refused before any request, and boto3 kept out of ``import cdk_pip_layer``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import botocore.serialize
import botocore.session
import pytest

from cdk_pip_layer import InvalidInputError, PublishError, publish_layer
from cdk_pip_layer.engine.aws_names import ssm_name_ok
from cdk_pip_layer.publish.request import _REQUEST_LIMIT, _REQUEST_MARGIN, DIRECT_UPLOAD_LIMIT, base64_size

MIB = 1024 * 1024
# Headers of a signed request (Authorization, X-Amz-Date, User-Agent, …) stay well under this.
HEADERS_ALLOWANCE = 4096


def _body_bytes(zip_size: int, *, description: str | None, license: str | None) -> int:
    """The size of the body boto3 sends for a PublishLayerVersion with a zip of ``zip_size`` bytes in it."""
    operation = botocore.session.get_session().get_service_model("lambda").operation_model("PublishLayerVersion")
    params: dict[str, object] = {
        "LayerName": "x" * 140,
        "Content": {"ZipFile": b"\0" * zip_size},
        "CompatibleRuntimes": ["python3.12"],
        "CompatibleArchitectures": ["x86_64"],
    }
    if description is not None:
        params["Description"] = description
    if license is not None:
        params["LicenseInfo"] = license
    request = botocore.serialize.create_serializer("rest-json").serialize_to_request(params, operation)
    return len(request["body"])


def test_base64_size_is_the_encoded_length() -> None:
    for size in (0, 1, 2, 3, 4, 1000, 1001, 1002):
        assert base64_size(size) == len(base64.b64encode(b"\0" * size))


def test_the_largest_request_fits_with_the_largest_direct_zip() -> None:
    """Lambda refuses a request of 69,905,067 bytes or more; the zip travels base64-encoded in a JSON body next to
    the description and licence (at most 256 and 512 characters, each up to 12 bytes once JSON-escaped)."""
    widest = {"description": "\U0001f600" * 256, "license": "\U0001f600" * 512}
    overhead = _body_bytes(3000, **widest) - base64_size(3000)
    assert overhead == _body_bytes(3001, **widest) - base64_size(3001)  # the zip adds exactly its base64
    assert overhead > _body_bytes(3000, description=None, license=None) - base64_size(3000)
    assert overhead + HEADERS_ALLOWANCE <= _REQUEST_MARGIN
    # At the limit the largest request fits; one byte more may not.
    assert base64_size(DIRECT_UPLOAD_LIMIT) + _REQUEST_MARGIN < _REQUEST_LIMIT
    assert base64_size(DIRECT_UPLOAD_LIMIT + 1) + _REQUEST_MARGIN >= _REQUEST_LIMIT


def test_the_limit_is_just_under_lambdas_documented_50_mb() -> None:
    assert DIRECT_UPLOAD_LIMIT == 52_416_510
    assert 50 * MIB - 16 * 1024 < DIRECT_UPLOAD_LIMIT < 50 * MIB
    assert _REQUEST_LIMIT == -(-50 * MIB * 4 // 3)  # 4/3 of 50 MiB, rounded up: what Lambda says it refuses


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    import zipfile

    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/helper.py", "VALUE = 1\n")
    return path


def test_the_longest_and_deepest_ssm_names_aws_takes_are_taken() -> None:
    assert ssm_name_ok("/layers/" + "a" * 1003)  # 1,011 characters
    assert ssm_name_ok("/l" * 15)  # 15 levels
    assert ssm_name_ok("shared-deps")


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"layer_name": "has space"}, PublishError, "Lambda refuses the layer name 'has space'"),
        ({"grant_account_ids": ["12345678901"]}, InvalidInputError, "Invalid AWS account id '12345678901'"),
        ({"organization_id": "o-UPPER12345"}, InvalidInputError, "Invalid AWS Organization id"),
        ({"ssm_parameter_name": "no/leading/slash"}, InvalidInputError, "Invalid SSM parameter name"),
        ({"ssm_parameter_name": "/layers/" + "a" * 2040 + "\n"}, InvalidInputError, "Invalid SSM parameter name"),
        # SSM keeps 1,037 of the 2,048 characters it lists for itself: a name holds at most 1,011.
        ({"ssm_parameter_name": "/layers/" + "a" * 1004}, InvalidInputError, "Invalid SSM parameter name"),
        ({"ssm_parameter_name": "/l" * 16}, InvalidInputError, "Invalid SSM parameter name"),  # 16 levels, 15 at most
        ({"ssm_parameter_name": "/layers/arn\n"}, InvalidInputError, "Invalid SSM parameter name"),
        ({"layer_name": "deps\n"}, PublishError, "Lambda refuses the layer name"),
        ({"license": "l" * 513}, InvalidInputError, "at most 512 characters, not 513"),
        ({"architecture": "sparc"}, InvalidInputError, "Unsupported architecture 'sparc'"),
        ({"s3_prefix": "bad\nprefix"}, InvalidInputError, "Invalid S3 key prefix"),
        ({"direct_upload_limit": 0}, InvalidInputError, "direct_upload_limit must be a positive number of bytes"),
        ({"direct_upload_limit": 10}, InvalidInputError, "more than Lambda takes in a request (10 bytes)"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    layer: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], error: type[Exception], fragment: str
) -> None:
    # Were a request made, it would fail differently: no credentials, and an endpoint where nothing answers.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    arguments: dict[str, object] = {"layer_name": "deps", "runtime": "python3.12", "architecture": "x86_64", **kwargs}
    with pytest.raises(error) as raised:
        publish_layer(layer, **arguments)  # type: ignore[arg-type]
    assert fragment in str(raised.value)
    assert raised.value.exit_code == (1 if error is PublishError else 2)  # type: ignore[attr-defined]


_IMPORT = """
import json, sys
import cdk_pip_layer, cdk_pip_layer.cli, cdk_pip_layer.publish, cdk_pip_layer.build
from cdk_pip_layer import publish_layer, build_layer, PublishedLayer, PublishError
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_package_and_its_command_line_loads_no_aws_sdk_docker_or_cdk() -> None:
    done = subprocess.run([sys.executable, "-I", "-c", _IMPORT], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert loaded.isdisjoint({"boto3", "botocore", "docker", "aws_cdk", "jsii", "constructs"})
