"""The test tiers, and shared fixtures: real wheels and fake installed distributions built in tmp_path, and a
hermetic pip/uv environment.

A test's tier is the folder it lives in, and its marker is the folder's name (no test sets one by hand):

- ``unit``: pure and offline (real pip and uv against wheels built in tmp_path, never the network);
- ``construct``: real CDK (jsii) with ``aws_cdk.assertions``; the engine's build and Docker replaced by fakes;
- ``real``: real pip, uv and PyPI, pyenv's interpreters for import tests;
- ``e2e``: the real CDK CLI, and a deploy to the moto AWS emulator;
- ``container``: a real Docker engine with the stand-in Lambda build images;
- ``packaging``: the built sdist and wheel, installed into a fresh virtual environment.

A bare ``pytest`` runs the two pure tiers (``testpaths``) on every core (``-n auto``); ``pytest -n 0 tests`` runs them
all, one test at a time, as CI does; ``-m`` picks tiers by name (``pytest -n 0 tests -m "real or e2e"``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from packaging.utils import canonicalize_name

from cdk_pip_layer import SUPPORTED_RUNTIMES
from cdk_pip_layer.engine.options import Runtime

FileContents = Mapping[str, "str | bytes"]

# jsii (the CDK in this process) and the CDK CLI run on the Node that scripts/setup.sh puts into the virtual
# environment's bin directory (a supported LTS), not on whatever older Node the machine has on PATH.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

TIERS = ("unit", "construct", "real", "e2e", "container", "packaging")
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier: the name of the folder under ``tests/`` it lives in."""
    for item in items:
        try:
            tier = Path(item.path).resolve().relative_to(_TESTS).parts[0]
        except ValueError:  # pragma: no cover - a test outside tests/
            continue
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tier folders {', '.join(TIERS)}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _own_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads or writes the user's own caches (~/.cache/cdk-pip-layer): each gets a fresh cache directory
    (the layer store and the container build's downloads), unless it sets its own."""
    monkeypatch.setenv("CDK_PIP_LAYER_CACHE_DIR", str(tmp_path_factory.mktemp("cdk-pip-layer-cache")))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata(
    name: str, version: str, requires: Iterable[str], extras: Iterable[str], requires_python: str | None = None
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Python: {requires_python}"] if requires_python else []
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n\n"


def _wheel_file(tag: str) -> str:
    purelib = "true" if tag.endswith("-none-any") else "false"
    lines = ["Wheel-Version: 1.0", "Generator: cdk-pip-layer-tests", f"Root-Is-Purelib: {purelib}"]
    lines += [f"Tag: {one}" for one in tag.split("\n")]
    return "\n".join(lines) + "\n"


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def write_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    extras: Iterable[str] = (),
    files: FileContents | None = None,
    tag: str = "py3-none-any",
    entry_points: str | None = None,
    requires_python: str | None = None,
) -> Path:
    """Write a valid wheel (METADATA, WHEEL, RECORD with hashes) to ``dest_dir`` and return its path.

    ``files`` maps archive names to contents; by default the wheel holds ``<name>/__init__.py``. Names under
    ``<name>-<version>.data/scripts/`` become scripts.
    """
    dist = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    contents: dict[str, bytes] = {
        arc: _as_bytes(data)
        for arc, data in (files if files is not None else {f"{dist}/__init__.py": f"NAME = {name!r}\n"}).items()
    }
    contents[f"{dist_info}/METADATA"] = _metadata(name, version, requires, extras, requires_python).encode()
    contents[f"{dist_info}/WHEEL"] = _wheel_file(tag).encode()
    if entry_points is not None:
        contents[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dist}-{version}-{tag.split(chr(10), maxsplit=1)[0]}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arc, data in contents.items():
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if "/scripts/" in arc else 0o644) << 16
            archive.writestr(info, data)
    return path


def install_fake_dist(
    site_dir: Path,
    name: str,
    version: str = "1.0",
    *,
    files: FileContents | None = None,
    requires: Iterable[str] = (),
    extras: Iterable[str] = (),
    tag: str | None = "py3-none-any",
    extra_record: Iterable[str] = (),
) -> Path:
    """Lay out an installed distribution in ``site_dir`` as pip --target does; return its .dist-info."""
    dist = canonicalize_name(name).replace("-", "_")
    dist_info = site_dir / f"{dist}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    written: list[str] = []
    for arc, data in (files if files is not None else {f"{dist}/__init__.py": ""}).items():
        path = site_dir / arc
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_as_bytes(data))
        written.append(f"{arc},{_record_hash(_as_bytes(data))},{len(_as_bytes(data))}")
    (dist_info / "METADATA").write_text(_metadata(name, version, requires, extras), encoding="utf-8")
    (dist_info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    meta = [f"{dist_info.name}/{n}" for n in ("METADATA", "INSTALLER")]
    if tag is not None:
        (dist_info / "WHEEL").write_text(_wheel_file(tag), encoding="utf-8")
        meta.append(f"{dist_info.name}/WHEEL")
    lines = [*written, *(f"{m},," for m in meta), *extra_record, f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dist_info


def runtime_for(version_info: tuple[int, int]) -> str | None:
    """The Lambda runtime of a Python version, or None when Lambda has none."""
    runtime = "python{}.{}".format(*version_info)
    return runtime if runtime in SUPPORTED_RUNTIMES else None


@pytest.fixture
def make_wheel(tmp_path: Path) -> Callable[..., Path]:
    """``make_wheel(name, version, *, requires=(), files={...}, tag="py3-none-any")`` -> the wheel's path.

    Every wheel goes to the same directory, ``wheel.parent``: pass it to pip as ``--find-links``.
    """
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir(exist_ok=True)

    def make(name: str, version: str, **kwargs: Any) -> Path:
        return write_wheel(wheel_dir, name, version, **kwargs)

    return make


@pytest.fixture
def make_dist() -> Callable[..., Path]:
    """``make_dist(site_dir, name, version, *, files={...}, requires=(), tag=...)`` -> the .dist-info path."""
    return install_fake_dist


@pytest.fixture
def host_runtime() -> Runtime:
    """The Lambda runtime matching the interpreter running the tests, so pip runs locally for it.

    Builds default to x86_64, so an x86_64 Linux host is needed for this interpreter to qualify.
    """
    runtime = runtime_for((sys.version_info.major, sys.version_info.minor))
    if runtime is None or not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        pytest.skip(
            f"no x86_64 Lambda runtime for Python {sys.version_info[:2]} on {sys.platform}/{platform.machine()}"
        )
    return cast("Runtime", runtime)


_DEAD_PROXY = "http://127.0.0.1:9"


def hermetic_installer_env(monkeypatch: pytest.MonkeyPatch, *, allow_index: bool = False) -> None:
    """Keep pip and uv away from this machine's configuration and from the network.

    Every PIP_*/UV_* variable is dropped and pip's config files are ignored (PIP_CONFIG_FILE=/dev/null), so a
    find-links, extra index or constraint set up for the host does not leak in. Proxies point at a closed port:
    anything that still tries the network fails at once instead of reaching PyPI. ``allow_index`` keeps pip
    willing to query an index (for tests that point it at a dead one on purpose).
    """
    for key in list(os.environ):
        if key.upper().startswith(("PIP_", "UV_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "3")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    if not allow_index:
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, _DEAD_PROXY)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    # Byte-compilation must be visible if the engine forgot to turn it off.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hermetic, offline environment for real pip/uv runs (see :func:`hermetic_installer_env`)."""
    hermetic_installer_env(monkeypatch)


@pytest.fixture
def dead_index_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like ``offline_env``, but pip may query an index: point it at one that refuses connections."""
    hermetic_installer_env(monkeypatch, allow_index=True)
