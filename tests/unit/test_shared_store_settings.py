"""The shared layer store's settings: the URL (``cache_url``, ``--cache-url``, ``$CDK_PIP_LAYER_CACHE_URL``) checked
before anything runs, the read-only mode, the store ``open_store`` gives, and the clear error (exit 2) that names
the extra to install when boto3 is missing. (The store itself is tested against a moto server in tests/e2e.)"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import cdk_pip_layer.aws
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.options import BuildSettings, parse_cache_url
from cdk_pip_layer.store import LocalLayerStore, MissingStoreExtraError, open_store


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("s3://layer-cache", "s3://layer-cache"),
        ("s3://layer-cache/", "s3://layer-cache"),
        ("s3://layer-cache/ci/layers/", "s3://layer-cache/ci/layers"),
        ("  s3://my.layer-cache/team=a/main ", "s3://my.layer-cache/team=a/main"),
    ],
)
def test_a_cache_url_is_normalised(given: str, url: str) -> None:
    assert parse_cache_url(given, "cache_url") == url
    assert BuildSettings.parse(cache_url=given).cache_url == url


@pytest.mark.parametrize(
    ("given", "what"),
    [
        (
            "https://layer-cache.s3.amazonaws.com/ci",
            "must be an s3:// URL, not 'https://layer-cache.s3.amazonaws.com/ci'",
        ),
        ("layer-cache/ci", "must be an s3:// URL"),
        ("s3://Layer_Cache/ci", "Invalid S3 bucket name 'Layer_Cache'"),
        ("s3://lc/ci", "Invalid S3 bucket name 'lc'"),
        ("s3://layer-cache/ci//x", "Invalid key prefix 'ci//x'"),
        ("s3://layer-cache/../x", "Invalid key prefix '../x'"),
        ("s3://layer-cache/ci x", "Invalid key prefix 'ci x'"),
        ("s3://layer-cache/ci?versionId=1", "Invalid key prefix"),
        ("", "must be a non-empty string"),
    ],
)
def test_a_cache_url_that_is_not_one_is_refused(given: str, what: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        BuildSettings.parse(cache_url=given)
    assert what in raised.value.what
    assert raised.value.exit_code == 2


def test_credentials_in_a_cache_url_are_refused_and_never_shown() -> None:
    with pytest.raises(InvalidInputError) as raised:
        BuildSettings.parse(cache_url="s3://AKIAIOSFODNN7EXAMPLE:s3cret@layer-cache/ci")
    assert raised.value.what == "The shared layer store's URL 's3://layer-cache/ci' holds credentials"
    assert "s3cret" not in str(raised.value) and "AKIA" not in str(raised.value)


@pytest.mark.parametrize("setting", [{"cache_url": "s3://layer-cache/ci"}, {"cache_read_only": True}])
def test_settings_of_the_shared_store_with_the_cache_off_are_refused(setting: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="given with the cache turned off"):
        BuildSettings.parse(cache=False, **setting)


def test_read_only_must_be_a_bool() -> None:
    with pytest.raises(InvalidInputError, match="cache_read_only must be True or False"):
        BuildSettings.parse(cache_read_only="yes")


# --- open_store -----------------------------------------------------------------------------------------------------


@pytest.fixture
def pinned(tmp_path: Path) -> Any:
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.16.0\n", encoding="utf-8")
    return read_requirements(path)


def _shared_url(store: object) -> str | None:
    shared = getattr(store, "shared", None)
    return None if shared is None else str(shared.url)


def test_without_a_url_the_store_is_local(pinned: Any) -> None:
    assert isinstance(open_store(BuildSettings.parse(), pinned, environ={}), LocalLayerStore)


def test_the_url_comes_from_the_setting_else_the_environment(pinned: Any) -> None:
    env = {"CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/from-env/"}
    assert _shared_url(open_store(BuildSettings.parse(), pinned, environ=env)) == "s3://layer-cache/from-env"
    given = BuildSettings.parse(cache_url="s3://layer-cache/given")
    assert _shared_url(open_store(given, pinned, environ=env)) == "s3://layer-cache/given"
    assert open_store(BuildSettings.parse(cache=False), pinned, environ=env) is None


def test_requirements_not_fully_pinned_get_no_store_at_all(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("six>=1.16\n", encoding="utf-8")
    env = {"CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/ci"}
    assert open_store(BuildSettings.parse(), read_requirements(path), environ=env) is None


def test_a_bad_url_in_the_environment_names_the_variable(pinned: Any) -> None:
    with pytest.raises(InvalidInputError) as raised:
        open_store(BuildSettings.parse(), pinned, environ={"CDK_PIP_LAYER_CACHE_URL": "s3://x/ci"})
    assert raised.value.subject == "CDK_PIP_LAYER_CACHE_URL"


@pytest.mark.parametrize(
    ("value", "read_only"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("off", False)]
)
def test_read_only_from_the_environment(pinned: Any, value: str, read_only: bool) -> None:
    env = {"CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/ci", "CDK_PIP_LAYER_CACHE_READ_ONLY": value}
    store = open_store(BuildSettings.parse(), pinned, environ=env)
    assert getattr(store, "shared").read_only is read_only  # noqa: B009
    given = open_store(BuildSettings.parse(cache_read_only=True), pinned, environ=env)
    assert getattr(given, "shared").read_only is True  # noqa: B009


def test_a_read_only_value_that_is_neither_is_refused(pinned: Any) -> None:
    env = {"CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/ci", "CDK_PIP_LAYER_CACHE_READ_ONLY": "maybe"}
    with pytest.raises(InvalidInputError, match="CDK_PIP_LAYER_CACHE_READ_ONLY='maybe' is neither on nor off"):
        open_store(BuildSettings.parse(), pinned, environ=env)


# --- without the extra ----------------------------------------------------------------------------------------------


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``without("boto3")``: that library cannot be imported (as where it is not installed)."""

    def block(name: str) -> None:
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError(name=...)
        if name == "boto3":  # the AWS wing's session, already imported by another test, imports it again
            monkeypatch.delitem(sys.modules, "cdk_pip_layer.aws.session", raising=False)
            monkeypatch.delattr(cdk_pip_layer.aws, "session", raising=False)

    return block


def test_without_boto3_a_shared_store_is_an_error_naming_the_extra(pinned: Any, without: Any) -> None:
    without("boto3")
    with pytest.raises(MissingStoreExtraError) as raised:
        open_store(BuildSettings.parse(cache_url="s3://layer-cache/ci"), pinned, environ={})
    error = raised.value
    assert (
        error.what
        == "The shared layer store s3://layer-cache/ci needs boto3, the AWS SDK for Python, which is not installed"
    )
    assert "pip install 'cdk-pip-layer[publish]'" in str(error)
    assert error.exit_code == 2
    # The local store alone needs nothing more.
    assert isinstance(open_store(BuildSettings.parse(), pinned, environ={}), LocalLayerStore)


def test_without_cryptography_a_kms_key_is_an_error_naming_the_extra(pinned: Any, without: Any) -> None:
    without("cryptography")
    env = {"CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/ci", "CDK_PIP_LAYER_CACHE_KMS_KEY": "alias/layer-cache"}
    with pytest.raises(MissingStoreExtraError, match="needs cryptography, to verify the signatures of"):
        open_store(BuildSettings.parse(), pinned, environ=env)


def test_the_command_line_without_boto3_exits_2_before_building(
    tmp_path: Path, without: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    without("boto3")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    code = main(["build", "-q", "-r", str(requirements), "-o", str(tmp_path / "out"), "--cache-url", "s3://lc1/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == (
        "cdk-pip-layer: error: The shared layer store s3://lc1/x needs boto3, the AWS SDK for Python, which is not "
        "installed [s3://lc1/x]"
    )
    assert not (tmp_path / "out").exists()
