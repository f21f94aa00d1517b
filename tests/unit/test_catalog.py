"""Reading what indexes offer: PEP 691 JSON and PEP 503 HTML pages from a real HTTP server on localhost, file://
indexes and find-links directories on disk, with the places taken from every setting an installer reads."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.version import Version

from cdk_pip_layer import IndexSettings
from cdk_pip_layer.engine.install.index_pages import Sources, build_sources, offered_wheels

JSON_PAGE = {
    "meta": {"api-version": "1.1"},
    "name": "demo",
    "files": [
        {"filename": "demo-1.0-py3-none-any.whl", "url": "x", "hashes": {}},
        {"filename": "demo-2.0-cp311-cp311-manylinux_2_24_x86_64.whl", "requires-python": ">=3.11", "yanked": False},
        {"filename": "demo-2.1-py3-none-any.whl", "yanked": "broken"},
        {"filename": "demo-2.1.tar.gz"},
        {"filename": "other-1.0-py3-none-any.whl"},
    ],
}
HTML_PAGE = """<!DOCTYPE html><html><body>
<a href="/files/demo-3.0-py3-none-any.whl#sha256=00" data-requires-python="&lt;3.7">demo-3.0-py3-none-any.whl</a>
<a href="../../files/demo-3.1-py3-none-any.whl" data-yanked="">demo-3.1-py3-none-any.whl</a>
<a href="demo-not-a-wheel.zip">x</a>
</body></html>"""


class _Index(BaseHTTPRequestHandler):
    seen_auth: list[str | None] = []  # noqa: RUF012 - one server per test

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if self.path.startswith("/json/demo/"):
            body, kind = json.dumps(JSON_PAGE).encode(), "application/vnd.pypi.simple.v1+json"
        elif self.path.startswith("/html/demo/"):
            body, kind = HTML_PAGE.encode(), "text/html"
        elif self.path.startswith("/broken/"):
            self.send_error(500)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    _Index.seen_auth = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    # shutdown() waits for the serving loop's next poll: every 0.05 s rather than the default 0.5 s.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_json_and_html_pages_are_read_with_credentials(server: str) -> None:
    host = server.removeprefix("http://")
    sources = Sources(indexes=(f"http://user:s3cret@{host}/json", f"{server}/html", f"{server}/missing"))
    offers = offered_wheels(sources, ["Demo", "absent"])
    wheels = offers["demo"]
    assert not isinstance(wheels, str)
    by_name = {wheel.filename: wheel for wheel in wheels}
    assert sorted(by_name) == [
        "demo-1.0-py3-none-any.whl",
        "demo-2.0-cp311-cp311-manylinux_2_24_x86_64.whl",
        "demo-2.1-py3-none-any.whl",
        "demo-3.0-py3-none-any.whl",
        "demo-3.1-py3-none-any.whl",
    ]
    assert by_name["demo-2.1-py3-none-any.whl"].yanked
    assert by_name["demo-3.1-py3-none-any.whl"].yanked
    assert not by_name["demo-2.0-cp311-cp311-manylinux_2_24_x86_64.whl"].yanked
    assert not by_name["demo-3.0-py3-none-any.whl"].admits(Version("3.12"))
    assert by_name["demo-2.0-cp311-cp311-manylinux_2_24_x86_64.whl"].admits(Version("3.11"))
    assert offers["absent"] == ()
    assert "Basic " + base64.b64encode(b"user:s3cret").decode() in _Index.seen_auth


def test_an_index_that_fails_is_named_without_its_credentials(server: str) -> None:
    host = server.removeprefix("http://")
    offers = offered_wheels(Sources(indexes=(f"http://user:s3cret@{host}/broken",)), ["demo"])
    assert isinstance(offers["demo"], str)
    assert "500" in offers["demo"]
    assert "s3cret" not in offers["demo"]


def test_file_indexes_and_find_links_directories(tmp_path: Path) -> None:
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "demo-4.0-py3-none-any.whl").write_bytes(b"")
    project = tmp_path / "simple" / "demo"
    project.mkdir(parents=True)
    (project / "index.html").write_text('<a href="../../f/demo-5.0-py3-none-any.whl">x</a>', encoding="utf-8")
    sources = Sources(indexes=((tmp_path / "simple").as_uri(),), find_links=(str(tmp_path / "links"),))
    offers = offered_wheels(sources, ["demo"])
    assert not isinstance(offers["demo"], str)
    assert sorted(wheel.filename for wheel in offers["demo"]) == [
        "demo-4.0-py3-none-any.whl",
        "demo-5.0-py3-none-any.whl",
    ]


def test_sources_come_from_every_setting_an_installer_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "t0ken")
    (tmp_path / "wheels").mkdir()
    included = tmp_path / "base.txt"
    included.write_text("--extra-index-url https://${TOKEN}@extra.example/simple\n", encoding="utf-8")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "-r base.txt\n--find-links ./wheels  # a comment\n--trusted-host extra.example\n--pre\nsix\n", encoding="utf-8"
    )
    sources = build_sources(
        IndexSettings(index_url="https://ours.example/simple"),
        {"extra-index-url": "https://configured.example/simple", "find-links": "/opt/links"},
        ["--find-links=more"],
        [requirements, included],
        cwd=tmp_path,
    )
    assert sources.indexes == (
        "https://ours.example/simple",
        "https://configured.example/simple",
        "https://t0ken@extra.example/simple",
    )
    assert sources.find_links == ("/opt/links", str(tmp_path / "more"), str(tmp_path / "wheels"))
    assert sources.trusted_hosts == ("extra.example",)
    assert sources.prereleases
    assert "t0ken" not in sources.describe()

    offline = build_sources(IndexSettings(), {"no-index": "1"}, ["--find-links", "w"], [], cwd=tmp_path)
    assert offline.indexes == ()
    assert offline.find_links == (str(tmp_path / "w"),)


def test_a_requirements_file_with_a_long_run_of_blanks_is_read_in_linear_time(tmp_path: Path) -> None:
    """The sources were read from the files with pip's own comment expression, quadratic on a run of blanks: 200,000
    of them took minutes (pip's reading is guarded by the requirements reader; this one read every file it was
    given). Continued lines are joined as pip joins them. The subprocess's timeout only turns a hang into a
    failure."""
    (tmp_path / "wheels").mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "--find-links ./wheels" + " " * 200_000 + "\n--extra-index-url \\\n  https://extra.example/simple\n",
        encoding="utf-8",
    )
    code = (
        "import sys, pathlib\n"
        "from cdk_pip_layer import IndexSettings\n"
        "from cdk_pip_layer.engine.install.index_pages import build_sources\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "sources = build_sources(IndexSettings(), {}, [], [path], cwd=path.parent)\n"
        "print(sources.find_links[-1], sources.indexes[-1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(requirements)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [str(tmp_path / "wheels"), "https://extra.example/simple"]


def test_netrc_credentials_are_used_like_pip_and_uv_use_them(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login robot password n3trc\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    offers = offered_wheels(Sources(indexes=(f"{server}/json",)), ["demo"])
    assert not isinstance(offers["demo"], str)
    assert "Basic " + base64.b64encode(b"robot:n3trc").decode() in _Index.seen_auth


def test_a_host_is_looked_up_once_for_a_whole_read(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages are read concurrently; each lookup of the host's name may stall for the resolver's timeout (5 s where
    a DNS answer gets lost: one query in thirty on some networks, inside Docker's NAT more), so a read looks the
    name up once and every page's connection reuses the answer."""
    port = server.rsplit(":", 1)[1]
    lookups: list[object] = []
    real = socket.getaddrinfo

    def counted(host: object, *args: object, **kwargs: object) -> object:
        if host == "localhost":
            lookups.append(host)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    projects = [f"demo{n}" for n in range(13)] + ["demo"]
    offers = offered_wheels(Sources(indexes=(f"http://localhost:{port}/json",)), projects)
    assert len(lookups) == 1
    assert not isinstance(offers["demo"], str) and len(offers["demo"]) == 3
    assert all(offers[name] == () for name in projects[:-1])
