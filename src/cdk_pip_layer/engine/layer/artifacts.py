"""A layer's ``artifacts/`` from its zip: the inverse of the zip writer, for a layer served from the layer store
(whose zip is checked against the record of its build before it is unpacked here)."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from cdk_pip_layer.engine.errors import LayerBuildError


def unpack_layer(zip_path: Path, artifacts: Path) -> None:
    """Write the files and directories of the layer zip ``zip_path`` into the new directory ``artifacts``, with
    their modes. The zip writer writes nothing else; any other entry (a link, an absolute or ``..`` path) is
    refused."""
    artifacts.mkdir(parents=True)
    directory_modes: list[tuple[Path, int]] = []  # set last: a directory's mode may not let its files be written
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts
            kind = stat.S_IFMT(info.external_attr >> 16)
            if (
                not parts
                or info.filename.startswith("/")
                or ".." in parts
                or kind not in (0, stat.S_IFREG, stat.S_IFDIR)
            ):
                raise LayerBuildError(
                    "The stored layer holds an entry its writer never writes",
                    subject=f"{zip_path}: {info.filename!r}",
                    hint="remove the layer store's entry (it is built again), and report it.",
                )
            dest = artifacts.joinpath(*parts)
            mode = (info.external_attr >> 16) & 0o777
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                if mode:
                    directory_modes.append((dest, mode))
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, dest.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            if mode:
                dest.chmod(mode)
    for directory, mode in reversed(directory_modes):
        directory.chmod(mode)
