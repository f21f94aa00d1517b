"""An index that answers, but not with packages: wrong credentials (401), no access (403), a failing server (500).
The build says what happened to which index (redacted), never that the package does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import IndexSettings, IndexUnreachableError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime
from index_server import serve_index

EXPECTED = {
    401: "Authentication failed for the package index",
    403: "The package index refused access",
    500: "The package index failed",
}


@pytest.fixture
def loopback(dead_index_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hermetic environment, with loopback (where the test's index listens) reachable."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")


@pytest.mark.usefixtures("loopback")
@pytest.mark.parametrize("status", [401, 403, 500])
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_index_that_refuses_or_fails_is_named(
    tmp_path: Path, host_runtime: Runtime, installer: InstallerName, status: int
) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("private-pkg==1.0\n", encoding="utf-8")
    (tmp_path / "dists").mkdir()
    with serve_index(tmp_path / "dists", status=status) as index:
        builder = PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            installer=installer,
            index=IndexSettings(index_url=index.url_with("reader", "wr0ng-pw")),
        )
        with pytest.raises(IndexUnreachableError) as caught:
            builder.build()
    error = caught.value
    message = str(error)
    assert error.what.startswith(EXPECTED[status]), message
    assert f"http://****@127.0.0.1:{index.port}/simple" in message
    assert f"HTTP {status}" in message
    assert "exists" not in message and "spelled" not in message
    assert "wr0ng-pw" not in message
    assert not (tmp_path / "out" / "layer.zip").exists()
