"""Packages published only as source distributions, from where the requirements file says, and hash-checked
before any of their code runs. Real pip and uv; the indexes are a directory and a loopback server in tmp_path."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk_pip_layer import InstallError, LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime
from index_server import IndexServer, serve_index
from sdists import sha256_of, write_sdist

INSTALLERS = ["pip", "uv"]


@pytest.fixture
def hermetic(dead_index_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configured index, no network; loopback (the test's own index) reachable."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[IndexServer]:
    """An index that holds one project, published only as a source distribution."""
    write_sdist(tmp_path / "dists", "puresrc", "1.0", ran=tmp_path / "backend-ran")
    with serve_index(tmp_path / "dists") as index:
        yield index


def runtime_for(installer: InstallerName, host_runtime: Runtime) -> Runtime:
    """pip runs for the host's own runtime; uv for another one, as it would on a host without that Python."""
    if installer == "uv":
        if find_uv() is None:
            pytest.skip("uv is not installed")
        return "python3.12" if host_runtime != "python3.12" else "python3.13"
    return host_runtime


def build(
    tmp_path: Path, text: str, installer: InstallerName, runtime: Runtime, extra_installer_args: tuple[str, ...] = ()
) -> LayerBuildResult:
    requirements = tmp_path / "app" / "requirements.txt"
    requirements.parent.mkdir(exist_ok=True)
    requirements.write_text(text, encoding="utf-8")
    return PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=tmp_path / "out",
        runtime=runtime,
        installer=installer,
        extra_installer_args=extra_installer_args,
    ).build()


def built_module(result: LayerBuildResult) -> str:
    with zipfile.ZipFile(result.zip_path) as layer:
        return layer.read("python/puresrc/__init__.py").decode()


@pytest.mark.usefixtures("hermetic")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_index_lines_of_the_requirements_file_reach_the_source_download(
    tmp_path: Path, private_index: IndexServer, host_runtime: Runtime, installer: InstallerName
) -> None:
    text = f"--index-url {private_index.url}\n--trusted-host 127.0.0.1\npuresrc==1.0\n"
    result = build(tmp_path, text, installer, runtime_for(installer, host_runtime))
    assert result.built_from_source == ("puresrc",)
    assert result.distributions == ("puresrc==1.0",)
    assert "BUILT_FROM_SOURCE" in built_module(result)


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_find_links_directory_of_the_requirements_file_reaches_the_source_download(
    tmp_path: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    write_sdist(tmp_path / "app" / "dists", "puresrc", "1.0", ran=tmp_path / "backend-ran")
    result = build(tmp_path, "-f ./dists\npuresrc==1.0\n", installer, runtime_for(installer, host_runtime))
    assert result.built_from_source == ("puresrc",)
    assert "BUILT_FROM_SOURCE" in built_module(result)


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_wrong_hash_is_refused_before_any_code_of_the_sdist_runs(
    tmp_path: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    ran = tmp_path / "backend-ran"
    dists = write_sdist(tmp_path / "dists", "puresrc", "1.0", ran=ran).parent
    wrong = "0" * 64
    with pytest.raises(InstallError) as caught:
        build(
            tmp_path,
            f"puresrc==1.0 --hash=sha256:{wrong}\n",
            installer,
            runtime_for(installer, host_runtime),
            extra_installer_args=("--find-links", str(dists)),
        )
    message = str(caught.value)
    assert "does not match" in message
    assert "puresrc" in message
    assert "requirements.txt:1" in message
    assert not ran.exists(), "the sdist's build backend ran before its hash was checked"
    assert not (tmp_path / "out" / "layer.zip").exists()


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_hash_pinned_sdist_is_verified_then_its_wheel_installed(
    tmp_path: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    sdist = write_sdist(tmp_path / "dists", "puresrc", "1.0", ran=tmp_path / "backend-ran")
    text = f"--require-hashes\npuresrc==1.0 \\\n    --hash=sha256:{'f' * 64} \\\n    --hash=sha256:{sha256_of(sdist)}\n"
    runtime = runtime_for(installer, host_runtime)
    result = build(tmp_path, text, installer, runtime, extra_installer_args=("--find-links", str(sdist.parent)))
    assert result.built_from_source == ("puresrc",)
    assert result.distributions == ("puresrc==1.0",)
    assert "BUILT_FROM_SOURCE" in built_module(result)
