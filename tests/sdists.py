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
NAME, VERSION, TAG, COMPILED = {dist!r}, {version!r}, {tag!r}, {compiled!r}
METADATA = "Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    # What setuptools' egg_info does for a project with C code: metadata only, nothing compiled.
    dist_info = f"{{NAME}}-{{VERSION}}.dist-info"
    (pathlib.Path(metadata_directory) / dist_info).mkdir()
    (pathlib.Path(metadata_directory) / dist_info / "METADATA").write_text(METADATA)
    return dist_info


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if COMPILED:  # the step that compiles a project with C code: one line each time it runs
        with open(COMPILED, "a") as record:
            record.write("compiled\\n")
    dist_info = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{
        f"{{NAME}}/__init__.py": b"BUILT_FROM_SOURCE = True\\n",
        f"{{dist_info}}/METADATA": METADATA.encode(),
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


# What a setuptools project with a C extension holds besides its Python code.
C_EXTENSION = {
    "src/speedups.c": '#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "_speedups"};\n',
    "setup.py": "from setuptools import Extension, setup\n\n"
    "setup(ext_modules=[Extension('_speedups', ['src/speedups.c'])])\n",
}


def write_sdist(
    dest: Path,
    name: str,
    version: str,
    *,
    ran: Path,
    tag: str = "py3-none-any",
    compiled: Path | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``<name>-<version>.tar.gz`` into ``dest``; running its backend writes ``ran``. ``tag`` is the built
    wheel's; each wheel build (not the metadata step) adds a line to ``compiled``; ``extra_files`` go into the sdist
    (e.g. :data:`C_EXTENSION`)."""
    dist = name.replace("-", "_").lower()
    root = f"{dist}-{version}"
    backend = _BACKEND.format(
        ran=str(ran), name=name, dist=dist, version=version, tag=tag, compiled=str(compiled) if compiled else None
    )
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": backend,
        f"{dist}/__init__.py": "BUILT_FROM_SOURCE = True\n",
        **(extra_files or {}),
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
