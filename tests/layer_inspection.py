"""Reading a built layer the way Lambda will, independently of the engine's own checks: shared by the real, e2e
and container tiers.

ELF headers are read byte by byte, the zip is extracted as Lambda extracts it into /opt, and code runs in an
interpreter that sees only the standard library and the layer.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

ELF_X86_64 = 62
ELF_AARCH64 = 183
ELF_MACHINE = {"x86_64": ELF_X86_64, "arm64": ELF_AARCH64}


def elf_machine(path: Path) -> int | None:
    """``e_machine`` of an ELF file (None when it is not ELF), read from its header."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def shared_objects(root: Path) -> list[Path]:
    """Every ``*.so`` and ``*.so.N`` file below ``root``."""
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.name.endswith(".so") or ".so." in p.name))


def zip_names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


def unzip(zip_path: Path, dest: Path) -> Path:
    """Extract a layer.zip as Lambda does (into /opt); return the directory Python finds packages in."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(dest)
    return dest / "python"


def run_isolated(python: Path, code: str, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in ``python`` seeing only the standard library and ``pythonpath`` (like Lambda's /opt/python).

    ``-S`` skips site (no site-packages of that interpreter), ``-s``/PYTHONNOUSERSITE keep the user's site out,
    ``-B`` writes no byte-code into the unzipped layer.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(pythonpath),
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(python), "-S", "-s", "-B", "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def pyenv_python(version: str) -> Path | None:
    """The newest pyenv CPython ``X.Y.*`` on this machine, or None."""
    root = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    candidates: list[tuple[Version, Path]] = []
    for exe in root.glob(f"versions/{version}.*/bin/python{version}"):
        try:
            candidates.append((Version(exe.parent.parent.name), exe))
        except InvalidVersion:
            continue  # e.g. a virtualenv or a free-threaded build
    return max(candidates)[1] if candidates else None
