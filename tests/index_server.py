"""A package index served on loopback by the test itself: PEP 503 pages over a directory of distributions, with
HTTP Basic authentication when asked, or one HTTP status for every request (an index that is down or refuses).

pip and uv talk to it as to any private index (``http://user:password@127.0.0.1:PORT/simple``); loopback is a
secure origin for both. Tests that use it must let loopback bypass the proxy (``NO_PROXY=127.0.0.1``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_DIST = re.compile(r"^(?P<name>.+?)-\d[^-]*(?:-.*)?\.(?:whl|tar\.gz|zip)$")


def _project(filename: str) -> str | None:
    match = _DIST.match(filename)
    return re.sub(r"[-_.]+", "-", match["name"]).lower() if match else None


@dataclass
class IndexServer:
    """What the index served, and where."""

    root: Path
    port: int = 0
    credentials: tuple[str, str] | None = None
    status: int | None = None
    requests: list[str] = field(default_factory=list)  # "<status> <method> <path>" for each request, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}/simple"


@contextmanager
def serve_index(
    root: Path, *, credentials: tuple[str, str] | None = None, status: int | None = None
) -> Iterator[IndexServer]:
    """Serve the distributions in ``root`` as ``/simple/<project>/`` pages on 127.0.0.1 while the block runs."""
    state = IndexServer(root, credentials=credentials, status=status)
    expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode() if credentials else None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/html") -> None:
            state.requests.append(f"{status} {self.command} {self.path}")
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="test index"')
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # uv asks for a wheel's size before it fetches it
            self.do_GET()

        def do_GET(self) -> None:
            if state.status is not None:
                self._send(state.status, f"status {state.status}".encode())
            elif expected is not None and self.headers.get("Authorization") != expected:
                self._send(401, b"authentication required")
            elif self.path.startswith("/files/") and (root / self.path[len("/files/") :]).is_file():
                self._send(200, (root / self.path[len("/files/") :]).read_bytes(), "application/octet-stream")
            elif self.path.startswith("/simple/"):
                self._page(self.path[len("/simple/") :].strip("/"))
            else:
                self._send(404)

        def _page(self, project: str) -> None:
            files = sorted(p for p in root.iterdir() if p.is_file() and _project(p.name))
            if not project:
                names = sorted({name for p in files if (name := _project(p.name))})
                links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
            else:
                mine = [p for p in files if _project(p.name) == project]
                if not mine:
                    self._send(404)
                    return
                links = "".join(
                    f'<a href="/files/{html.escape(p.name)}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">'
                    f"{html.escape(p.name)}</a>\n"
                    for p in mine
                )
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    # shutdown() waits for the serving loop's next poll: every 0.05 s rather than the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
