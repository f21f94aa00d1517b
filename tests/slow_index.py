"""A package index on 127.0.0.1 whose one download stalls until released, and a reader of running processes: what
the tests of interrupted builds share (the unit tier's CLI builds, the Docker tier's container builds).

A build that downloads the stalled wheel is mid-install for exactly as long as a test needs: the test waits for
:attr:`SlowIndex.stalled`, sends its signal, and never sleeps for a guessed time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@dataclass
class SlowIndex:
    """A simple index (PEP 503) serving one wheel; a download of it stops after its first bytes until
    :attr:`release` is set. :attr:`stalled` says a download has reached that point."""

    wheel: str
    stalled: threading.Event
    release: threading.Event
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"


@contextlib.contextmanager
def serve_slow_index(wheel: Path) -> Iterator[SlowIndex]:
    data = wheel.read_bytes()
    project = wheel.name.split("-", 1)[0].replace("_", "-").lower()
    stalled, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == f"/simple/{project}":
                link = f'<a href="/files/{wheel.name}#sha256={hashlib.sha256(data).hexdigest()}">{wheel.name}</a>'
                self._send(f"<!DOCTYPE html><html><body>\n{link}\n</body></html>".encode(), "text/html")
            elif self.path == f"/files/{wheel.name}":
                if release.is_set():
                    self._send(data, "application/octet-stream")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:1000])
                self.wfile.flush()
                stalled.set()
                release.wait()
                with contextlib.suppress(OSError):  # the client is gone, as it should be
                    self.wfile.write(data[1000:])
            else:
                self.send_error(404)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), Handler)
    # shutdown() waits for the serving loop's next poll: every 0.05 s rather than the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SlowIndex(wheel.name, stalled, release, server.server_address[1])
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def processes_mentioning(text: str) -> dict[int, str]:
    """The live processes (Linux's /proc) whose command line contains ``text``; zombies have none."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found[int(entry.name)] = cmdline
    return found
