"""Credentials never reach a message: URL userinfo, tokens, encoded passwords, explicit secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cdk_pip_layer import IndexSettings, InvalidInputError, LayerBuildError, NoCompatibleDistributionError
from cdk_pip_layer.engine.redact import redact, strip_userinfo, url_secrets


@pytest.mark.parametrize(
    ("text", "expected", "secret"),
    [
        ("https://user:s3cret@pypi.example.com/simple", "https://****@pypi.example.com/simple", "s3cret"),
        ("https://tok3n@pypi.example.com/simple", "https://****@pypi.example.com/simple", "tok3n"),
        ("http://user:p%40ss%3Aword@host:8080/simple/", "http://****@host:8080/simple/", "p%40ss"),
        ("https://user:p@ss@host/simple", "https://****@host/simple", "ss@"),
        (
            "Looking in indexes: https://a:one1@h1/simple, https://two2@h2/simple",
            "Looking in indexes: https://****@h1/simple, https://****@h2/simple",
            "one1",
        ),
        ("git+https://deploy:gh_tok@github.com/o/r.git", "git+https://****@github.com/o/r.git", "gh_tok"),
        ("url='https://u:pw99@h/s'", "url='https://****@h/s'", "pw99"),
    ],
)
def test_redact_url_userinfo(text: str, expected: str, secret: str) -> None:
    out = redact(text)
    assert out == expected
    assert secret not in out


@pytest.mark.parametrize(
    "text",
    [
        "https://pypi.org/simple/requests/",
        "mailto user@example.com and git@github.com:o/r.git",
        "requests==2.32.3 @ sha256:abcd",
    ],
)
def test_redact_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_explicit_secrets() -> None:
    assert redact("token=abc123 in the output", ["abc123"]) == "token=**** in the output"
    # secrets too short to be meaningful are not redacted (they would mangle every word)
    assert redact("a b c", ["a", ""]) == "a b c"


def test_url_secrets_cover_encoded_and_decoded_forms() -> None:
    secrets = url_secrets("https://alice:p%40ss%20w@host/simple")
    assert "p%40ss%20w" in secrets
    assert "p@ss w" in secrets
    assert "alice" not in secrets  # a user name alone is not secret
    # pip may print the decoded password: explicit secrets catch it
    assert "p@ss w" not in redact("auth failed for password p@ss w", secrets)
    assert url_secrets("https://tok3n@host/simple") == ("tok3n",)
    assert url_secrets("https://host/simple") == ()


# --- IndexSettings -------------------------------------------------------------------------------------------------


def test_index_settings_pip_env() -> None:
    settings = IndexSettings(
        index_url="https://u:s3cret@pypi.example.com/simple",
        extra_index_urls=("https://extra.example.com/simple", "https://tok@more.example.com/simple"),
        trusted_hosts=("pypi.example.com", "extra.example.com"),
    )
    assert settings.pip_env() == {
        "PIP_INDEX_URL": "https://u:s3cret@pypi.example.com/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra.example.com/simple https://tok@more.example.com/simple",
        "PIP_TRUSTED_HOST": "pypi.example.com extra.example.com",
    }
    assert IndexSettings().pip_env() == {}


def test_index_settings_fingerprint_and_describe_carry_no_credentials() -> None:
    settings = IndexSettings(
        index_url="https://u:s3cret@pypi.example.com/simple",
        extra_index_urls=("https://tok3n@more.example.com/simple",),
    )
    fingerprint = settings.fingerprint()
    assert fingerprint == {
        "index_url": "https://pypi.example.com/simple",
        "extra_index_urls": ["https://more.example.com/simple"],
        "trusted_hosts": [],
    }
    described = settings.describe()
    for secret in ("s3cret", "tok3n"):
        assert secret not in str(fingerprint)
        assert secret not in described
    assert "pypi.example.com" in described and "more.example.com" in described
    # Same index, different credentials: the same fingerprint (the asset hash must not change per user).
    other = IndexSettings(
        index_url="https://v:other@pypi.example.com/simple", extra_index_urls=("https://x@more.example.com/simple",)
    )
    assert other.fingerprint() == fingerprint
    assert "PyPI" in IndexSettings().describe()


@pytest.mark.parametrize(
    "url",
    [
        "pypi.example.com/simple",
        "ftp://user:s3cret@pypi.example.com/simple",
        "https://",
        "user:s3cret@pypi.example.com/simple",
        "//user:s3cret@pypi.example.com/simple",
    ],
)
def test_invalid_index_url(url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        IndexSettings(index_url=url)
    message = str(info.value)
    assert "Invalid package index URL" in message
    assert "s3cret" not in message
    assert "https://" in message  # says what a valid one looks like


def test_invalid_extra_index_url() -> None:
    with pytest.raises(InvalidInputError, match="Invalid package index URL"):
        IndexSettings(extra_index_urls=("not a url",))


def test_file_index_url_is_valid() -> None:
    assert IndexSettings(index_url="file:///srv/wheels").urls == ("file:///srv/wheels",)


# --- the error root ------------------------------------------------------------------------------------------------


def test_layer_build_error_redacts_every_part() -> None:
    url = "https://deploy:s3cret@pypi.example.com/simple"
    error = LayerBuildError(
        f"pip failed for {url}",
        subject=f"index {url}",
        details=[f"Looking in indexes: {url}", "ERROR: 401 for https://tok3n@h/simple"],
        hint=f"check {url}",
    )
    text = str(error)
    assert "s3cret" not in text and "tok3n" not in text
    assert "s3cret" not in repr(error) and "s3cret" not in str(error.args)
    assert "pip failed for https://****@pypi.example.com/simple" in text
    assert "  | Looking in indexes: https://****@pypi.example.com/simple" in text
    assert text.endswith("What to do: check https://****@pypi.example.com/simple")


def test_subclass_with_extra_fields_redacts_too() -> None:
    error = NoCompatibleDistributionError(
        "No wheel of x for https://u:s3cret@h/simple", package="x", details=["https://u:s3cret@h/simple/x/"]
    )
    assert "s3cret" not in str(error)
    assert error.package == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://a:b@h1/x https://c@h2/y", "https://****@h1/x https://****@h2/y"),
        ("x://y://u:p@h/", "x://y://****@h/"),
        ("1://u:p@h/", "1://u:p@h/"),  # no scheme: no URL
        ("https://@host/", "https://@host/"),  # nothing before the "@"
        ("https://u:p@h@i/", "https://****@i/"),
        ("s3cret in https://u:s3cret@h/ and https://h/@x", "s3cret in https://****@h/ and https://h/@x"),
    ],
)
def test_redact_finds_each_url(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_strip_userinfo_drops_credentials_and_keeps_the_rest() -> None:
    text = "--extra-index-url https://u:tok3n@pkgs.example.com/simple\nsix==1.16.0 # https://h/@x\n"
    assert strip_userinfo(text) == "--extra-index-url https://pkgs.example.com/simple\nsix==1.16.0 # https://h/@x\n"
    assert strip_userinfo("git+https://deploy:gh_tok@github.com/o/r.git@v1") == "git+https://github.com/o/r.git@v1"


@pytest.mark.parametrize(
    "hostile",
    [
        "'a' * 1_000_000",
        "'a' * 500_000 + '://' + 'b' * 500_000",
        "'a://' * 250_000",
        "'1' * 500_000 + '://' + '@' * 500_000",
    ],
)
def test_redaction_of_a_megabyte_ends(hostile: str) -> None:
    """Run in a child process: a regression to a quadratic scan would hang it, and the timeout ends the test."""
    code = (
        "from cdk_pip_layer.engine.redact import redact, strip_userinfo, url_secrets\n"
        f"text = {hostile}\nredact(text)\nstrip_userinfo(text)\nurl_secrets(text)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
