"""The moto AWS emulator as the e2e tests run it: ``moto_server`` (from ``moto[server]``, the dev group) on a free
127.0.0.1 port, started for a test module and stopped after it, its output in a log file.

moto 5.2.5's limits that the tests meet (each test says which it works around):

- a layer version made by CloudFormation gets no ``Ref`` and loses ``CompatibleArchitectures``;
  ``AWS::Lambda::LayerVersionPermission`` is not implemented in CloudFormation;
- ``AddLayerVersionPermission`` stores the request as the statement (``Principal`` as given, ``OrganizationId`` as a
  key of its own) where Lambda writes ``{"AWS": "arn:aws:iam::ID:root"}`` and an ``aws:PrincipalOrgID`` condition;
- Lambda accepts any layer name and does not check that an S3 bucket is in the layer's region (the publish
  command checks both itself before any request);
- an IAM denial of a Lambda request comes back as an XML error document with HTTP 403 (Lambda answers JSON
  ``AccessDeniedException``);
- with IAM enforced, every Lambda request without a body fails its signature check (``_moto_iam_server.py``
  corrects that for the tests that enforce IAM).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import VENV_PYTHON

MOTO_SERVER = VENV_PYTHON.parent / "moto_server"
IAM_SERVER = Path(__file__).with_name("_moto_iam_server.py")
START_TIMEOUT = 30.0  # seconds for moto_server to answer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def _answers(port: int) -> bool:
    try:
        with _opener().open(f"http://127.0.0.1:{port}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def enforce_iam(endpoint: str) -> None:
    """From now on, every request must be signed by an IAM user of the emulator and allowed by its policies (what
    ``INITIAL_NO_AUTH_ACTION_COUNT`` does from the start, set here once the test's users exist)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with _opener().open(request, timeout=10) as response:
        assert response.status == 200


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def moto_server(log: Path, *, host_name: str = "127.0.0.1", iam: bool = False) -> Iterator[str]:
    """A running ``moto_server``; yields its endpoint ``http://<host_name>:<port>``. ``localhost`` for the CDK CLI
    (it builds CloudFormation's TemplateURL from the name); 127.0.0.1 for boto3's S3 (path-style addressing).
    ``iam``: a server ready to enforce IAM (see ``_moto_iam_server.py``, then :func:`enforce_iam`)."""
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: install the dev group ('moto[server]')")
    command = [str(VENV_PYTHON), str(IAM_SERVER)] if iam else [str(MOTO_SERVER)]
    for _ in range(3):  # the free port may be taken before moto binds it (moto exits): then try another
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if _answers(port):
                    yield f"http://{host_name}:{port}"
                    return
                time.sleep(0.2)
            if proc.poll() is None:
                break  # alive but silent: another port will not help
        finally:
            _stop(proc)
    pytest.fail(f"moto_server did not answer within {START_TIMEOUT:.0f} s:\n{tail(log)}")
