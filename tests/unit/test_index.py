"""The user's pip configuration, as the uv path sees it (uv does not read pip's files or PIP_* variables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import IndexUnreachableError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.index import pip_settings, uv_environment
from cdk_pip_layer.engine.interpreters import find_uv


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
        "UV_FIND_LINKS": "/w/one,/w/two",
        "UV_NO_INDEX": "1",
        "SSL_CERT_FILE": "/etc/ca.pem",
        # pip takes the best match across every index; uv's default would stop at the first index with the name
        "UV_INDEX_STRATEGY": "unsafe-best-match",
    }
    assert args == [
        "--constraint", "/c/one.txt", "--constraint", "/c/two.txt",
        "--allow-insecure-host", "a.example", "--allow-insecure-host", "b.example",
    ]  # fmt: skip


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
