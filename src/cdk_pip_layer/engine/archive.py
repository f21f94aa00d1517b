"""A deterministic layer.zip: the same tree gives the same bytes on any machine, any umask, any hour."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import zipfile
from pathlib import Path

from .errors import LayerBuildError

# The earliest timestamp a zip can hold; also what most reproducible-build tools use.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755


def _entries(root: Path) -> list[tuple[str, Path]]:
    """Every directory and file below ``root`` as (archive name, path), sorted by archive name."""
    out: list[tuple[str, Path]] = []
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(dirpath)
        for name in dirnames:
            path = current / name
            if path.is_symlink():
                _check_link(path, real_root)
                # A link to a directory inside the layer is stored as the files it points to.
                for sub_path, _, sub_files in os.walk(path, followlinks=True):
                    sub = Path(sub_path)
                    out.append((sub.relative_to(root).as_posix() + "/", sub))
                    out.extend(((sub / f).relative_to(root).as_posix(), sub / f) for f in sub_files)
            else:
                out.append((path.relative_to(root).as_posix() + "/", path))
        for name in filenames:
            path = current / name
            if path.is_symlink():
                _check_link(path, real_root)
            out.append((path.relative_to(root).as_posix(), path))
    out.sort(key=lambda item: item[0])
    return out


def _check_link(path: Path, real_root: Path) -> None:
    target = path.resolve()
    if not target.is_relative_to(real_root) or not target.exists():
        raise LayerBuildError(
            "A symbolic link in the layer points outside it",
            subject=str(path),
            hint="remove the link from the package, or exclude the package.",
        )


def write_layer_zip(root: Path, dest: Path) -> int:
    """Zip the contents of ``root`` (which holds ``python/``) into ``dest`` atomically; return the unzipped size.

    Entries are sorted, stamped 1980-01-01, files 0644 (0755 when any execute bit is set), directories 0755,
    deflated at zlib's default level. ``dest`` is replaced only once the new archive is complete.
    """
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    unzipped = 0
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for name, path in _entries(root):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.create_system = 3  # unix, so external_attr carries the mode
                if name.endswith("/"):
                    info.external_attr = (stat.S_IFDIR | DIR_MODE) << 16 | 0x10
                    info.compress_type = zipfile.ZIP_STORED
                    archive.writestr(info, b"")
                    continue
                st = path.stat()
                mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = st.st_size
                unzipped += st.st_size
                with path.open("rb") as src, archive.open(info, "w", force_zip64=st.st_size > 2**31) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        partial.replace(dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return unzipped
