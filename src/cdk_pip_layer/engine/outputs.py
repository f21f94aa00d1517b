"""A build's outputs: the build transaction that stages and publishes them atomically, and the result it reports.

Every builder (local, container) builds inside one :class:`BuildTransaction`: a private staging directory in the
output directory (the same file system, so publishing is a rename), published only when complete, removed
whatever happens. A failed build leaves an earlier ``layer.zip`` and ``artifacts/`` untouched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import InstallError, InvalidInputError
from .target import LambdaTarget

_log = logging.getLogger("cdk_pip_layer")

LAYER_ZIP = "layer.zip"
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class LayerBuildResult:
    """What a build produced."""

    target: LambdaTarget
    zip_path: Path
    artifacts_dir: Path
    installer: str
    distributions: tuple[str, ...]  # name==version of every distribution in the layer
    excluded: tuple[str, ...]
    built_from_source: tuple[str, ...]  # pure-Python wheels built locally from source distributions
    warnings: tuple[str, ...]
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str
    seconds: float

    def summary(self, *, with_path: bool = True) -> str:
        mib = 1024 * 1024
        lines = [f"layer: {self.zip_path}"] if with_path else []
        lines += [
            f"target: {self.target}",
            f"installer: {self.installer}",
            f"distributions ({len(self.distributions)}): {', '.join(self.distributions) or '-'}",
        ]
        if self.excluded:
            lines.append(f"excluded: {', '.join(self.excluded)}")
        if self.built_from_source:
            lines.append(f"built from source: {', '.join(self.built_from_source)}")
        lines += [
            f"size: {self.unzipped_bytes / mib:.1f} MiB unzipped, {self.zipped_bytes / mib:.1f} MiB zipped",
            f"sha256: {self.sha256}",
            f"time: {self.seconds:.1f} s",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """The result as JSON-ready data: what ``--json`` prints and what a container build reports to the host."""
        return {
            "zip": str(self.zip_path),
            "artifacts": str(self.artifacts_dir),
            "target": str(self.target),
            "installer": self.installer,
            "distributions": list(self.distributions),
            "excluded": list(self.excluded),
            "built_from_source": list(self.built_from_source),
            "warnings": list(self.warnings),
            "unzipped_bytes": self.unzipped_bytes,
            "zipped_bytes": self.zipped_bytes,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LayerBuildResult:
        """The result :meth:`to_dict` described."""
        runtime, _, architecture = str(data["target"]).partition("/")

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        def number(key: str) -> float:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else 0.0

        return cls(
            target=LambdaTarget.parse(runtime, architecture),
            zip_path=Path(str(data["zip"])),
            artifacts_dir=Path(str(data["artifacts"])),
            installer=str(data["installer"]),
            distributions=strings("distributions"),
            excluded=strings("excluded"),
            built_from_source=strings("built_from_source"),
            warnings=strings("warnings"),
            unzipped_bytes=int(number("unzipped_bytes")),
            zipped_bytes=int(number("zipped_bytes")),
            sha256=str(data["sha256"]),
            seconds=number("seconds"),
        )


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log the start and the duration of one step of a build (the CLI shows them on stderr)."""
    start = time.perf_counter()
    _log.info("%s ...", name)
    yield
    _log.info("%s: done in %.2f s", name, time.perf_counter() - start)


def tree_size(root: Path) -> int:
    """The bytes of every file below ``root`` (links counted as themselves)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            total += (Path(dirpath) / name).lstat().st_size
    return total


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Published:
    """Where a transaction put its outputs."""

    zip_path: Path
    artifacts_dir: Path
    zipped_bytes: int
    sha256: str


class BuildTransaction:
    """One build into ``build_dir``: open it, stage into a private directory inside it, publish atomically, clean up.

    Use it as a context manager::

        with BuildTransaction(build_dir, inputs=requirements.files) as build:
            ...  # write build.artifacts_dir (python/...) and build.zip_path
            published = build.publish()

    ``inputs`` are files the build reads; one that lies in what every build replaces (``artifacts/``,
    ``layer.zip``) is refused, since the build would delete its own input.
    """

    def __init__(self, build_dir: Path, *, inputs: Iterable[Path] = ()) -> None:
        self.build_dir = build_dir
        self._inputs = tuple(inputs)
        self._staging: Path | None = None

    @property
    def staging(self) -> Path:
        if self._staging is None:
            raise RuntimeError("the build transaction is not open")
        return self._staging

    @property
    def artifacts_dir(self) -> Path:
        """The staged ``artifacts/`` directory (``python/`` goes inside)."""
        return self.staging / ARTIFACTS

    @property
    def site_dir(self) -> Path:
        return self.artifacts_dir / "python"

    @property
    def zip_path(self) -> Path:
        """Where the staged ``layer.zip`` is written."""
        return self.staging / LAYER_ZIP

    def __enter__(self) -> BuildTransaction:
        replaced = ((self.build_dir / ARTIFACTS).resolve(), (self.build_dir / LAYER_ZIP).resolve())
        for file in self._inputs:
            if any(file == path or file.is_relative_to(path) for path in replaced):
                raise InvalidInputError(
                    "The requirements file lies in what the build replaces",
                    subject=str(file),
                    hint=f"move it out of {self.build_dir}/artifacts (and do not name it layer.zip), or build into "
                    "another output directory.",
                )
        try:
            self.build_dir.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.build_dir))
        except OSError as exc:
            raise InvalidInputError(
                f"The output directory cannot be used: {exc.strerror or exc}",
                subject=str(self.build_dir),
                hint="give a directory you can write to (it is created when missing), not a file.",
            ) from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def publish(self, *, sha256: str | None = None) -> Published:
        """Move the complete build into place: ``artifacts/`` first, then ``layer.zip`` (an atomic replace). Until
        then the previous build stays intact. Safe against another build publishing into the same directory at
        once (the last one to finish wins, each of its two outputs complete). ``sha256``: the staged zip's, when
        its writer computed it while writing (else the zip is read again for it)."""
        staged_zip = self.zip_path
        zipped_bytes = staged_zip.stat().st_size
        sha256 = sha256 or file_sha256(staged_zip)
        artifacts = self.build_dir / ARTIFACTS
        for attempt in range(50):
            with contextlib.suppress(FileNotFoundError):
                artifacts.rename(self.staging / f"old-artifacts-{attempt}")
            try:
                self.artifacts_dir.rename(artifacts)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        else:  # pragma: no cover - fifty concurrent builds publishing in the same instant
            raise InstallError("Another build keeps replacing the output directory", subject=str(self.build_dir))
        zip_path = self.build_dir / LAYER_ZIP
        staged_zip.replace(zip_path)
        return Published(zip_path=zip_path, artifacts_dir=artifacts, zipped_bytes=zipped_bytes, sha256=sha256)
