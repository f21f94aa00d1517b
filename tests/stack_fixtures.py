"""Wheels and layer zips for the layer-stack tests (a base layer, team layers on top), shared by the tiers.

The wheels carry the names of the issue's example (requests, urllib3, idna, rich, pygments) but are small and built
here: real pip and uv install them offline. ``team-lib`` 2.0 needs requests >= 2.32 and 1.0 any requests, so a team
layer resolved against a base holding requests 2.31.0 gets team-lib 1.0 (and 2.0 without the base).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

from conftest import write_wheel

BASE_REQUIREMENTS = "requests==2.31.0\nurllib3==2.0.7\n"
# What a base built from BASE_REQUIREMENTS holds.
BASE_HOLDS = {"requests": "2.31.0", "urllib3": "2.0.7", "idna": "3.6"}


def write_stack_wheels(wheels: Path) -> Path:
    """The wheels of the example into ``wheels`` (a --find-links directory); returns it."""
    for version in ("2.31.0", "2.32.3"):
        write_wheel(
            wheels,
            "requests",
            version,
            requires=["urllib3>=1.21.1,<3", "idna>=2.5,<4"],
            files={"requests/__init__.py": f"import idna, urllib3\n__version__ = {version!r}\n"},
        )
    for version in ("2.0.7", "2.2.3"):
        write_wheel(wheels, "urllib3", version, files={"urllib3/__init__.py": f"__version__ = {version!r}\n"})
    write_wheel(wheels, "idna", "3.6", files={"idna/__init__.py": "__version__ = '3.6'\n"})
    write_wheel(wheels, "pygments", "2.17.2", files={"pygments/__init__.py": "__version__ = '2.17.2'\n"})
    write_wheel(wheels, "rich", "13.7.1", requires=["pygments>=2.13"], files={"rich/__init__.py": "import pygments\n"})
    for version, needs in (("1.0", "requests>=2.0"), ("2.0", "requests>=2.32")):
        write_wheel(wheels, "team-lib", version, requires=[needs], files={"team_lib/__init__.py": "import requests\n"})
    write_wheel(wheels, "needs-new", "1.0", requires=["requests>=2.32"], files={"needs_new.py": "import requests\n"})
    return wheels


def offline(wheels: Path) -> tuple[str, ...]:
    """Installer arguments that take the wheels from ``wheels`` only."""
    return ("--no-index", "--find-links", str(wheels))


def write_layer_zip(
    path: Path, distributions: Mapping[str, str], *, padding: int = 0, extra_files: Mapping[str, str] | None = None
) -> Path:
    """A layer zip holding ``distributions`` (name -> version, each with a module, METADATA and RECORD under
    ``python/``), and ``padding`` bytes of zeros in ``python/<first>/_padding.bin`` (compressed: a large layer costs
    little disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, version in distributions.items():
            module = name.replace("-", "_")
            dist_info = f"{module}-{version}.dist-info"
            files = {
                f"{module}/__init__.py": f"__version__ = {version!r}\n",
                f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n",
                f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            }
            files[f"{dist_info}/RECORD"] = "".join(f"{arc},,\n" for arc in [*files, f"{dist_info}/RECORD"])
            for arc, text in sorted(files.items()):
                _write(archive, f"python/{arc}", text.encode())
        for arc, text in sorted((extra_files or {}).items()):
            _write(archive, arc, text.encode())
        if padding:
            first = next(iter(distributions)).replace("-", "_")
            info = _info(f"python/{first}/_padding.bin")
            with archive.open(info, "w", force_zip64=True) as out:
                chunk = bytes(1 << 20)
                left = padding
                while left > 0:
                    out.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
    return path


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(_info(name), data)
