"""The user's pip configuration, as the uv path sees it (uv does not read pip's files or PIP_* variables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import IndexSettings, IndexUnreachableError, InvalidInputError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.index import pip_settings, uv_environment
from cdk_pip_layer.engine.interpreters import find_uv
from index_server import serve_index


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))


@pytest.mark.usefixtures("offline_env")
def test_settings_come_from_pip_conf_and_environment_with_pips_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        tmp_path,
        monkeypatch,
        "[global]\nindex-url = https://global.example/simple\nextra-index-url = https://a.example/s https://b.example/s\n"
        "[install]\nfind-links = /wheels/one /wheels/two\nindex-url = https://install.example/simple\n",
    )
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    assert pip_settings()["index-url"] == "https://install.example/simple"  # [install] beats [global]
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    settings = pip_settings()
    assert settings["index-url"] == "https://env.example/simple"  # PIP_* beats the files
    assert settings["extra-index-url"] == "https://a.example/s https://b.example/s"
    assert settings["find-links"] == "/wheels/one /wheels/two"


def test_settings_map_to_uv_with_pips_meaning() -> None:
    env, args = uv_environment(
        {
            "index-url": "https://i.example/simple",
            "extra-index-url": "https://a.example/s https://b.example/s",
            "find-links": "/w/one /w/two",
            "no-index": "true",
            "cert": "/etc/ca.pem",
            "constraint": "/c/one.txt /c/two.txt",
            "trusted-host": "a.example b.example",
        }
    )
    assert env == {
        "UV_INDEX_URL": "https://i.example/simple",
        "UV_EXTRA_INDEX_URL": "https://a.example/s https://b.example/s",
        "UV_NO_INDEX": "1",
        "SSL_CERT_FILE": "/etc/ca.pem",
        # pip takes the best match across every index; uv's default would stop at the first index with the name
        "UV_INDEX_STRATEGY": "unsafe-best-match",
    }
    assert args == [
        "--constraint", "/c/one.txt", "--constraint", "/c/two.txt",
        "--allow-insecure-host", "a.example", "--allow-insecure-host", "b.example",
        "--find-links", "/w/one", "--find-links", "/w/two",
    ]  # fmt: skip


def test_find_links_add_up_on_uvs_command_line() -> None:
    """uv reads UV_FIND_LINKS only when its command line names none: the build's wheelhouse must not hide behind
    an installer argument --find-links, nor the user's own."""
    env, args = uv_environment(
        {"find-links": "/w/users https://u:s3cret@links.example/"}, find_links=[Path("/build/wheelhouse")]
    )
    assert args == ["--find-links", "/build/wheelhouse", "--find-links", "/w/users"]
    assert env["UV_FIND_LINKS"] == "https://u:s3cret@links.example/"  # a credential never on a command line


@pytest.mark.usefixtures("dead_index_env")
def test_uv_builds_honour_the_users_pip_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if find_uv() is None:
        pytest.skip("uv is not installed")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", "http://reader:pw-s3cret@127.0.0.1:9/simple")
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements, build_dir=tmp_path / "out", runtime="python3.12", installer="uv"
    )
    with pytest.raises(IndexUnreachableError) as caught:
        builder.build()
    message = str(caught.value)
    assert "127.0.0.1:9" in message  # uv went to the index pip is configured with, not to PyPI
    assert "pw-s3cret" not in message


@pytest.mark.usefixtures("dead_index_env")
def test_uv_gets_the_credentials_of_the_users_pip_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_wheel: Callable[..., Path]
) -> None:
    """pip.conf as 'aws codeartifact login --tool pip' writes it: the token in the index URL must reach uv as it
    is, not as the '****' of what we show."""
    if find_uv() is None:
        pytest.skip("uv is not installed")
    wheel = make_wheel("private-pkg", "1.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("private-pkg==1.0\n", encoding="utf-8")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serve_index(wheel.parent, credentials=("aws", "tok3n-s3cret")) as index:
        _config(tmp_path, monkeypatch, f"[global]\nindex-url = {index.url_with('aws', 'tok3n-s3cret')}\n")
        assert pip_settings()["index-url"] == index.url_with("aws", "tok3n-s3cret")
        result = PipBasedLambdaLayerLocalBuilder(
            requirements=requirements, build_dir=tmp_path / "out", runtime="python3.12", installer="uv"
        ).build()
    assert result.distributions == ("private-pkg==1.0",)
    assert any(request.startswith("200 GET /files/private_pkg-1.0") for request in index.requests)
    assert "tok3n-s3cret" not in result.summary()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"index_url": "http://[::1"}, "Invalid package index URL"),
        ({"index_url": "http://u:s3cret@[::1"}, "Invalid package index URL"),
        ({"index_url": "http://host:99999/simple"}, "Invalid package index URL"),
        ({"index_url": 123}, "must be a string"),
        ({"index_url": b"https://pypi.example.com/simple"}, "must be a string"),
        ({"extra_index_urls": [None]}, "must be a string"),
        ({"extra_index_urls": 5}, "must be a string or a sequence of strings"),
        ({"trusted_hosts": [1]}, "must be a string"),
    ],
)
def test_index_settings_of_the_wrong_kind_are_one_clear_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        IndexSettings(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def test_cli_index_url_that_does_not_parse_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    code = main(["build", "-q", "-r", str(requirements), "-o", str(tmp_path / "out"), "--index-url", "http://[::1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Invalid package index URL" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"exclude": [1]}, "Invalid package name to exclude: 1"),
        ({"exclude": 1}, "exclude must be a string or a sequence of strings, not int"),
        ({"exclude": b"boto3"}, "exclude must be a string or a sequence of strings, not bytes"),
        ({"extra_installer_args": [1]}, "extra installer argument must be a string, not int"),
        ({"extra_installer_args": [None]}, "extra installer argument must be a string, not NoneType"),
        ({"extra_installer_args": 1}, "extra_installer_args must be a string or a sequence of strings, not int"),
        ({"extra_installer_args": b"--pre"}, "must be a string or a sequence of strings, not bytes"),
        ({"index": IndexSettings}, "must be an IndexSettings"),
    ],
)
def test_python_api_values_of_the_wrong_type_are_one_clear_error(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        PipBasedLambdaLayerLocalBuilder(
            requirements=tmp_path / "requirements.txt",
            build_dir=tmp_path / "out",
            **kwargs,
        )
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_pips_retries_reach_uv() -> None:
    # PIP_RETRIES=0 (or retries in pip.conf) must also stop uv retrying an index that refuses connections for
    # seconds, now that uv builds by default.
    env, _ = uv_environment({"retries": "0"})
    assert env["UV_HTTP_RETRIES"] == "0"
    assert "UV_HTTP_RETRIES" not in uv_environment({})[0]
