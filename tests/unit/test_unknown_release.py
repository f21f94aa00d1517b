"""A requirement the indexes cannot satisfy, said for what it is: a project they do not have (with the close names
they do have), a version that does not exist (with the nearest ones that do), or no wheel for the target (in words,
not a list of tags). The same message whichever installer ran. Real pip and uv, offline, against a file:// index
and a find-links folder made in tmp_path; the close-name check of a remote index against a real HTTP server on
localhost."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cdk_pip_layer import IndexSettings, LambdaTarget, NoCompatibleDistributionError, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.install.index_pages import Sources
from cdk_pip_layer.engine.install.releases import close_names
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerName, Runtime

pytestmark = pytest.mark.skipif(find_uv() is None, reason="needs uv")

INSTALLERS: tuple[InstallerName, ...] = ("pip", "uv")
LIB_VERSIONS = ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "3.0", "3.1b1")


def simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in ``root`` serving ``wheels``; its file:// URL."""
    for wheel in wheels:
        project = root / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, project / wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with (project / "index.html").open("a", encoding="utf-8") as page:
            page.write(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    return root.as_uri()


@pytest.fixture
def index(make_wheel: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_env: None) -> str:
    """A file:// index, the only place the installers look: requests 2.32.3, pandas 2.2.3, lib in several versions
    (one a pre-release), and native only as a wheel for Windows."""
    wheels = [make_wheel("requests", "2.32.3"), make_wheel("pandas", "2.2.3")]
    wheels += [make_wheel("lib", version) for version in LIB_VERSIONS]
    wheels.append(make_wheel("native", "1.0", tag="py3-none-win_amd64"))
    url = simple_index(tmp_path / "simple", wheels)
    shutil.rmtree(wheels[0].parent)
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("UV_OFFLINE")
    return url


def build_error(tmp_path: Path, requirements: str, installer: InstallerName, index_url: str, runtime: Runtime) -> str:
    path = tmp_path / f"requirements-{installer}.txt"
    path.write_text(requirements, encoding="utf-8")
    with pytest.raises(NoCompatibleDistributionError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=path,
            build_dir=tmp_path / f"out-{installer}",
            runtime=runtime,
            installer=installer,
            index=IndexSettings(index_url=index_url),
        ).build()
    message = str(caught.value)
    assert " more" not in message  # no "… and 524 more" tags
    assert "tags tried" not in message
    return message.replace(f"requirements-{installer}.txt", "requirements.txt")


def errors(tmp_path: Path, requirements: str, index_url: str, runtime: Runtime) -> str:
    """The message of a build with each installer: the same one."""
    pip, uv = (build_error(tmp_path, requirements, installer, index_url, runtime) for installer in INSTALLERS)
    assert pip == uv
    return pip


def test_a_misspelt_project_is_not_found_on_the_index_and_the_close_name_suggested(
    index: str, tmp_path: Path, host_runtime: Runtime
) -> None:
    message = errors(tmp_path, "pandas==2.2.3\nreqeusts\n", index, host_runtime)
    first = message.splitlines()[0]
    assert first.startswith(f"'reqeusts' was not found on the index {index}")
    assert "no distribution" not in message.lower()
    assert "publishes neither" not in message
    assert "did you mean 'requests'? If the name is right" in message


def test_a_trailing_s_too_many_suggests_the_project_without_it(
    index: str, tmp_path: Path, host_runtime: Runtime
) -> None:
    message = errors(tmp_path, "pandass\n", index, host_runtime)
    assert message.startswith(f"'pandass' was not found on the index {index}")
    assert "did you mean 'pandas'?" in message


def test_a_project_not_on_the_index_nor_in_find_links_names_both(
    index: str, tmp_path: Path, host_runtime: Runtime, make_wheel: Callable[..., Path]
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    shutil.move(make_wheel("extra-tool", "1.0"), links)
    message = errors(tmp_path, f"--find-links {links}\nextra-tols\n", index, host_runtime)
    first = message.splitlines()[0]
    assert first.startswith(f"'extra-tols' was not found on the index {index} nor in the find-links location {links}")
    assert "did you mean 'extra-tool'?" in message


def test_a_version_that_does_not_exist_lists_the_nearest_that_do(
    index: str, tmp_path: Path, host_runtime: Runtime
) -> None:
    message = errors(tmp_path, "lib==2.5\n", index, host_runtime)
    assert message.startswith(f"'lib' has no version 2.5 on the index {index}")
    # three below and three above, by version order; the pre-release left out
    assert "nearest versions: 2.0, 2.1, 2.2, 3.0" in message
    assert "3.1b1" not in message
    assert "lib==2.2" in message  # the hint names one to pin


def test_a_range_no_version_satisfies_lists_the_newest(index: str, tmp_path: Path, host_runtime: Runtime) -> None:
    message = errors(tmp_path, "lib>=9\n", index, host_runtime)
    assert message.startswith(f"No version of 'lib' matches >=9 on the index {index}")
    assert "nearest versions: 2.1, 2.2, 3.0" in message


def test_a_pre_release_that_does_not_exist_lists_the_pre_releases_too(
    index: str, tmp_path: Path, host_runtime: Runtime
) -> None:
    message = errors(tmp_path, "lib==3.1b2\n", index, host_runtime)
    assert message.startswith(f"'lib' has no version 3.1b2 on the index {index}")
    assert "nearest versions: 2.2, 3.0, 3.1b1" in message


def test_no_wheel_for_the_target_is_said_in_words(index: str, tmp_path: Path, host_runtime: Runtime) -> None:
    message = errors(tmp_path, "native==1.0\n", index, host_runtime)
    target = LambdaTarget.parse(host_runtime, "x86_64")
    assert message.startswith(f"No version matching native==1.0 has a wheel for {target}")
    glibc = "{}.{}".format(*target.glibc)
    assert f"loads wheels for CPython {target.python_version_str} on manylinux x86_64 (glibc ≤ {glibc})" in message
    assert "its wheels: py3-none-win_amd64" in message


# --- close names on a remote index: a handful of requests, never the whole listing ----------------------------------


class _Index(BaseHTTPRequestHandler):
    """An index that has ``requests``, ``python-dateutil`` and ``pyyaml`` only, and counts what it is asked."""

    asked: list[tuple[str, str]] = []  # noqa: RUF012 - one server per test
    present = ("/simple/requests/", "/simple/python-dateutil/", "/simple/pyyaml/")

    def _answer(self, method: str) -> None:
        type(self).asked.append((method, self.path))
        self.send_response(200 if self.path in self.present else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_GET(self) -> None:
        self._answer("GET")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    _Index.asked = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/simple"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("reqeusts", "requests"),  # two letters swapped
        ("request", "requests"),  # the trailing s left out
        ("requestss", "requests"),  # a letter doubled
        ("dateutil", "python-dateutil"),  # the import name, not the project's
        ("yaml", "pyyaml"),
    ],
)
def test_close_names_on_a_remote_index_take_a_handful_of_requests(server: str, typed: str, meant: str) -> None:
    assert close_names(typed, Sources(indexes=(server,))) == [meant]
    assert 0 < len(_Index.asked) <= 16
    assert all(method == "HEAD" for method, _ in _Index.asked)
    assert ("GET", "/simple/") not in _Index.asked  # never the whole listing


def test_close_names_with_nothing_close_ask_little_and_suggest_nothing(server: str) -> None:
    assert close_names("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", Sources(indexes=(server,))) == []
    assert len(_Index.asked) <= 16
