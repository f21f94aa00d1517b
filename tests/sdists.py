"""Source distributions built in tmp_path, for the engine's sdist path, offline.

Each one is a real sdist: ``PKG-INFO``, a ``pyproject.toml`` whose build backend ships inside it (``backend-path``,
no build requirements), so pip builds it through PEP 517 isolation without an index. The backend records that it
ran (a file named by ``ran``): the proof that an sdist's own code was executed on the build host.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

_BACKEND = """\
import base64, hashlib, pathlib, zipfile

pathlib.Path({ran!r}).write_text("the build backend of {name} ran\\n")
NAME, VERSION, TAG = {dist!r}, {version!r}, {tag!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist_info = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{
        f"{{NAME}}/__init__.py": b"BUILT_FROM_SOURCE = True\\n",
        f"{{dist_info}}/METADATA": b"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n\\n",
        f"{{dist_info}}/WHEEL": (
            f"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: {{TAG}}\\n".encode()
        ),
    }}
    record = "".join(f"{{n}},{{_record_hash(d)}},{{len(d)}}\\n" for n, d in files.items())
    record += f"{{dist_info}}/RECORD,,\\n"
    files[f"{{dist_info}}/RECORD"] = record.encode()
    wheel_name = f"{{NAME}}-{{VERSION}}-{{TAG}}.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel_name, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return wheel_name
"""


def write_sdist(dest: Path, name: str, version: str, *, ran: Path, tag: str = "py3-none-any") -> Path:
    """Write ``<name>-<version>.tar.gz`` into ``dest``; building it writes ``ran``. ``tag`` is the built wheel's."""
    dist = name.replace("-", "_").lower()
    root = f"{dist}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": _BACKEND.format(ran=str(ran), name=name, dist=dist, version=version, tag=tag),
        f"{dist}/__init__.py": "BUILT_FROM_SOURCE = True\n",
    }
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for arc, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{arc}")
            info.size, info.mtime, info.mode = len(data), 1577836800, 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
