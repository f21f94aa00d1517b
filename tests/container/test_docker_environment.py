"""What the container build takes from the host: the calling user, the CA bundle of a TLS-inspecting proxy, and
private index credentials (which must reach pip and nothing else)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import sysconfig
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import ContainerCollection

from cdk_pip_layer import (
    IndexSettings,
    IndexUnreachableError,
    InvalidInputError,
    NoCompatibleDistributionError,
    PipBasedLambdaLayerContainerBuilder,
)
from cdk_pip_layer.engine.options import InstallerName

from ._docker_tier import IMAGE_311, container_build, pypi_only

OTHER_UID = 1234
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

# ------------------------------------------------------------------------------------------------ ownership --

_BUILD_AS_USER = """
import json, sys
from cdk_pip_layer import PipBasedLambdaLayerContainerBuilder
from cdk_pip_layer.engine.options import InstallerName
result = PipBasedLambdaLayerContainerBuilder(
    requirements=sys.argv[1], build_dir=sys.argv[2], runtime="python3.11"
).build()
print(json.dumps({"zip": str(result.zip_path), "sha256": result.sha256}))
"""


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A directory owned by OTHER_UID, outside pytest's root-only temporary tree."""
    path = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-uid-"))
    os.chown(path, OTHER_UID, -1)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _plain_python() -> Path:
    """An interpreter of this Python version that another user may run (the venv's points into /root)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for directory in ("/usr/local/bin", "/usr/bin"):
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    pytest.skip(f"no {name} outside this virtual environment for another user to run")


def _closed_to_others(path: Path) -> Path | None:
    """The first directory from ``path`` up to / that other users cannot enter (mktemp -d makes 0700 ones)."""
    for directory in (path, *path.parents):
        if not directory.stat().st_mode & 0o001:
            return directory
    return None


def test_output_is_owned_by_the_calling_user(user_home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another user for the build needs root")
    for needed in (Path(__file__).resolve().parents[2] / "src", Path(sysconfig.get_path("purelib"))):
        closed = _closed_to_others(needed)
        if closed is not None:
            pytest.skip(f"the build runs as uid {OTHER_UID}, who cannot enter {closed} to import {needed}")
    socket_gid = Path("/var/run/docker.sock").stat().st_gid
    requirements = user_home / "requirements.txt"
    requirements.write_text("six==1.16.0\ncertifi==2024.8.30\n", encoding="utf-8")
    os.chown(requirements, OTHER_UID, socket_gid)
    build_dir = user_home / "build"
    env = {
        "HOME": str(user_home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2] / "src"), sysconfig.get_path("purelib")]
        ),
        "PIP_CONFIG_FILE": os.devnull,
        **{name: os.environ[name] for name in (*CA_VARIABLES, "PIP_DEFAULT_TIMEOUT") if name in os.environ},
    }
    done = subprocess.run(
        [str(_plain_python()), "-c", _BUILD_AS_USER, str(requirements), str(build_dir)],
        user=OTHER_UID,
        group=socket_gid,
        extra_groups=[],
        env=env,
        cwd=user_home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["zip"]) == build_dir / "layer.zip"
    built = [build_dir, *build_dir.rglob("*")]
    assert len(built) > 5
    assert {
        (p.relative_to(user_home).as_posix(), p.lstat().st_uid) for p in built if p.lstat().st_uid != OTHER_UID
    } == set()
    # The download cache (default: ~/.cache/cdk-pip-layer/pip, uv's under it) was written by the container as that
    # user too.
    cache = user_home / ".cache" / "cdk-pip-layer"
    cached = list(cache.rglob("*"))
    assert any(p.name == "six.py" for p in cached)
    assert {p.lstat().st_uid for p in [cache, *cached]} == {OTHER_UID}


# ------------------------------------------------------------------------------------------------ proxy CA --


def test_the_forwarded_ca_bundle_is_what_reaches_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(os.environ.get(name) for name in CA_VARIABLES):
        pytest.skip("no CA bundle variable set on this host: nothing to forward")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    monkeypatch.setenv("PIP_RETRIES", "0")  # forwarded: fail at once, not after five retries

    def build(name: str) -> Any:
        return PipBasedLambdaLayerContainerBuilder(
            requirements=requirements, build_dir=tmp_path / name, runtime="python3.11", cache=False
        ).build()

    assert build("with-ca").distributions == ("six==1.16.0",)

    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(IndexUnreachableError) as caught:  # pip's own diagnosis in the image, as the host raises it
        build("without-ca")
    message = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message, message
    assert "certificate verify failed" in message
    assert "PIP_CERT" in message  # the hint names the variable to set
    assert not (tmp_path / "without-ca" / "layer.zip").exists()


# ---------------------------------------------------------------------------------------------- credentials --

_PACKAGE = "cdkpl-private-pkg"


class _Index:
    """A PEP 503 index on 127.0.0.1 with Basic auth, serving one wheel; it records what it was asked."""

    def __init__(self, wheel: Path, user: str, password: str) -> None:
        self.wheel = wheel
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[tuple[str, bool]] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorized = self.headers.get("Authorization") == index.expected
                index.requests.append((self.path, authorized))
                if not authorized:
                    self.send_response(HTTPStatus.UNAUTHORIZED)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.end_headers()
                    return
                body = index.page(self.path)
                if body is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self.send_response(HTTPStatus.OK)
                is_file = self.path.startswith("/files/")
                self.send_header("Content-Type", "application/octet-stream" if is_file else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def page(self, path: str) -> bytes | None:
        if path.rstrip("/") == "/simple":
            return f'<html><body><a href="{_PACKAGE}/">{_PACKAGE}</a></body></html>'.encode()
        if path.rstrip("/") == f"/simple/{_PACKAGE}":
            digest = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
            link = f"../../files/{self.wheel.name}#sha256={digest}"
            return f'<html><body><a href="{link}">{self.wheel.name}</a></body></html>'.encode()
        if path == f"/files/{self.wheel.name}":
            return self.wheel.read_bytes()
        return None


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[tuple[_Index, str]]:
    wheel = _write_wheel(tmp_path / "wheels")
    password = "s3cret" + secrets.token_hex(8)
    index = _Index(wheel, "user", password)
    index.thread.start()
    try:
        yield index, password
    finally:
        index.server.shutdown()
        index.server.server_close()


def _write_wheel(dest: Path) -> Path:
    dist = _PACKAGE.replace("-", "_")
    files = {
        f"{dist}/__init__.py": b"VALUE = 42\n",
        f"{dist}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {_PACKAGE}\nVersion: 1.0\n\n".encode(),
        f"{dist}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{dist}-1.0.dist-info/RECORD"] = ("\n".join([*record, f"{dist}-1.0.dist-info/RECORD,,"]) + "\n").encode()
    dest.mkdir(parents=True)
    path = dest / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


class _CreateSpy:
    """Wraps the real ``ContainerCollection.create`` of the Docker SDK and records its arguments."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        real = ContainerCollection.create
        spy = self

        def create(collection: ContainerCollection, image: str, command: Any = None, **kwargs: Any) -> Any:
            spy.calls.append({"image": image, "command": command, **kwargs})
            return real(collection, image, command, **kwargs)

        monkeypatch.setattr(ContainerCollection, "create", create)


def _files_containing(root: Path, secret: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if secret in data:
            hits.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                hits += [f"{path}!{n}" for n in archive.namelist() if secret in archive.read(n) or secret in n.encode()]
    return hits


def test_index_credentials_reach_pip_and_nothing_else(
    private_index: tuple[_Index, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index, password = private_index
    monkeypatch.setenv("CDK_PIP_LAYER_DOCKER_NETWORK", "host")  # so that the container reaches 127.0.0.1
    settings = IndexSettings(index_url=f"http://user:{password}@127.0.0.1:{index.port}/simple")
    spy = _CreateSpy(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="cdk_pip_layer")

    def build(name: str, requirement: str) -> Any:
        requirements = tmp_path / name / "requirements.txt"
        requirements.parent.mkdir()
        requirements.write_text(requirement + "\n", encoding="utf-8")
        return PipBasedLambdaLayerContainerBuilder(
            requirements=requirements,
            build_dir=tmp_path / name / "build",
            runtime="python3.11",
            index=settings,
            cache_dir=tmp_path / "cache",
        ).build()

    with pypi_only():
        result = build("good", f"{_PACKAGE}==1.0")
        with pytest.raises(NoCompatibleDistributionError) as caught:
            build("bad", "cdkpl-no-such-private-pkg==1.0")

    assert result.distributions == (f"{_PACKAGE}==1.0",)
    # The credentials reached pip: the index saw them, on every request the container made.
    assert index.requests and all(authorized for _, authorized in index.requests), index.requests
    assert (f"/files/{_PACKAGE.replace('-', '_')}-1.0-py3-none-any.whl", True) in index.requests
    # They travelled in the container's environment, and only there.
    assert len(spy.calls) == 2
    for call in spy.calls:
        assert call["network_mode"] == "host"
        assert password in call["environment"]["PIP_INDEX_URL"]
        outside_env = {k: v for k, v in call.items() if k != "environment"}
        assert password not in json.dumps(outside_env, default=str)
    # Nowhere a user could find them afterwards.
    assert _files_containing(tmp_path, password.encode()) == []
    assert password not in result.summary()
    assert password not in str(caught.value)
    assert "cdkpl-no-such-private-pkg" in str(caught.value)
    assert password not in caplog.text
    assert any("container: pip:" in record.getMessage() for record in caplog.records)  # pip's log was there to leak


def test_the_cdk_cache_volume_is_made_writable_for_every_user(docker_client: Any) -> None:
    # Docker creates a named volume owned by root; CDK runs the build as the calling user. The fallback prepares
    # the volume once so that a non-root user's pip cache works.
    from cdk_pip_layer.container.builder import prepare_cache_volume
    from cdk_pip_layer.container.protocol import CACHE_MOUNT

    volume = f"cdk-pip-layer-test-{secrets.token_hex(4)}"
    try:
        assert prepare_cache_volume(IMAGE_311, "linux/amd64", docker_client, volume=volume) is None
        out = docker_client.containers.run(
            IMAGE_311,
            ["sh", "-c", f"touch {CACHE_MOUNT}/written && stat -c %u {CACHE_MOUNT}/written"],
            volumes={volume: {"bind": CACHE_MOUNT, "mode": "rw"}},
            user="1234:1234",
            remove=True,
        )
        assert out.decode().strip() == "1234"
        # A second call leaves the existing volume (and what it holds) alone.
        assert prepare_cache_volume(IMAGE_311, "linux/amd64", docker_client, volume=volume) is None
    finally:
        with contextlib.suppress(Exception):
            docker_client.volumes.get(volume).remove(force=True)


# ------------------------------------------------------------------------------------------ ${VAR} in the file --


@pytest.mark.parametrize("installer", ["auto", "pip"])
def test_a_variable_in_the_requirements_reaches_the_build_in_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: InstallerName
) -> None:
    """pip on the host expands ``${SIX_VERSION}`` from the environment; the build in the image gets the variables
    the file uses (and no others), so it reads the file as the host does."""
    monkeypatch.setenv("SIX_VERSION", "1.16.0")
    built = container_build(tmp_path, "six==${SIX_VERSION}\n", installer=installer)
    assert built.result.distributions == ("six==1.16.0",)
    assert built.result.installer.startswith("uv " if installer == "auto" else "pip ")


def test_a_local_project_directory_is_refused_before_docker_runs(tmp_path: Path) -> None:
    (tmp_path / "pkgs" / "mypkg").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="A local project directory cannot be built in the Lambda build"):
        container_build(tmp_path, "six==1.16.0\n./pkgs/mypkg\n")
    assert not (tmp_path / "build").exists()
