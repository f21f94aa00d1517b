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
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cdk_pip_layer.engine.errors import InstallError, InvalidInputError
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.report import REPORT_FILE, SBOM_FILE

from .slim_report import SlimReport

_log = logging.getLogger("cdk_pip_layer")

LAYER_ZIP = "layer.zip"
ARTIFACTS = "artifacts"
# A build's staging directory in the output directory: ``.staging-<owner>-<random>`` (see :mod:`.scratch`).
STAGING_PREFIX = ".staging-"


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
    slim: SlimReport | None = None  # what slimming removed, when the build slimmed the layer

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
        if self.slim is not None:
            lines += self.slim.lines()
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
            "slim": self.slim.to_dict() if self.slim is not None else None,
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
            slim=SlimReport.from_dict(slim) if isinstance(slim := data.get("slim"), dict) else None,
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
    ``layer.zip``) is refused, since the build would delete its own input. Opening also removes the staging
    directories that killed builds left in ``build_dir`` (see :mod:`.scratch`); a live build's stay.
    """

    def __init__(self, build_dir: Path, *, inputs: Iterable[Path] = ()) -> None:
        self.build_dir = build_dir
        self._inputs = tuple(inputs)
        self._staging: Path | None = None
        self._made: list[Path] = []
        self._published = False

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
        for name in (LAYER_ZIP, REPORT_FILE, SBOM_FILE):  # checked before anything is built, or replaced
            old = self.build_dir / name
            if old.is_dir() and not old.is_symlink():
                raise InvalidInputError(
                    f"The output directory holds a directory named {name}, which the new layer's "
                    f"{'zip' if name == LAYER_ZIP else 'report'} cannot replace",
                    subject=str(old),
                    hint="remove or rename that directory, or build into another output directory.",
                )
        try:
            # The directories made here for the output go again when the build fails (see __exit__).
            missing = [d for d in (self.build_dir, *self.build_dir.parents) if not d.exists()]
            self.build_dir.mkdir(parents=True, exist_ok=True)
            self._made = missing
            remove_stale(self.build_dir, STAGING_PREFIX)
            self._staging = make_scratch_dir(self.build_dir, STAGING_PREFIX)
        except OSError as exc:
            self._remove_made()
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
        if exc_type is not None and not self._published:
            self._remove_made()

    def _remove_made(self) -> None:
        """Remove the directories this build made for its output, deepest first, while they are empty (one that
        holds anything now, another build's, stays)."""
        for made in self._made:
            try:
                made.rmdir()
            except OSError:
                break
        self._made = []

    def publish(self, *, sha256: str | None = None) -> Published:
        """Move the complete build into place: ``artifacts/`` first, then ``layer.zip`` (an atomic replace). All or
        nothing: when either step fails, the previous ``artifacts/`` and ``layer.zip`` are put back as they were,
        and SIGINT/SIGTERM wait until the two steps are done. Safe against another build publishing into the same
        directory at once (the last one to finish wins, each of its two outputs complete). ``sha256``: the staged
        zip's, when its writer computed it while writing (else the zip is read again for it)."""
        staged_zip = self.zip_path
        zipped_bytes = staged_zip.stat().st_size
        sha256 = sha256 or file_sha256(staged_zip)
        zip_path = self.build_dir / LAYER_ZIP
        with signals_deferred():
            previous = self._swap_artifacts()
            try:
                staged_zip.replace(zip_path)
            except OSError as exc:
                problems = self._restore_artifacts(previous)
                raise InvalidInputError(
                    f"The new layer.zip cannot replace the old one: {exc.strerror or exc}; {_outcome(problems)}",
                    subject=str(zip_path),
                    details=problems,
                    hint="make sure layer.zip in the output directory is a file you may replace (not a directory), "
                    "or build into another output directory.",
                ) from None
            self._published = True
        return Published(
            zip_path=zip_path, artifacts_dir=self.build_dir / ARTIFACTS, zipped_bytes=zipped_bytes, sha256=sha256
        )

    def _swap_artifacts(self) -> Path | None:
        """Move the previous ``artifacts/`` (if any) aside into the staging directory and the new one into place;
        return where the previous one went. Raises InvalidInputError, with the previous one back in place, when
        either move fails."""
        artifacts = self.build_dir / ARTIFACTS
        previous: Path | None = None
        for attempt in range(50):
            aside = self.staging / f"old-artifacts-{attempt}"
            try:
                artifacts.rename(aside)
                previous = aside
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _unmovable(artifacts, exc, self._restore_artifacts(previous, ours_published=False)) from None
            try:
                self.artifacts_dir.rename(artifacts)
                return previous
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise _unmovable(artifacts, exc, self._restore_artifacts(previous, ours_published=False)) from None
        # pragma: no cover - fifty concurrent builds publishing in the same instant
        raise InstallError("Another build keeps replacing the output directory", subject=str(self.build_dir))

    def _restore_artifacts(self, previous: Path | None, *, ours_published: bool = True) -> list[str]:
        """Undo :meth:`_swap_artifacts`: the new ``artifacts/`` back into staging, the previous one back in place.
        Returns what could not be undone (for the error's details)."""
        artifacts = self.build_dir / ARTIFACTS
        problems: list[str] = []
        moves = [(artifacts, self.artifacts_dir)] if ours_published else []
        if previous is not None:
            moves.append((previous, artifacts))
        for source, destination in moves:
            try:
                source.rename(destination)
            except OSError as exc:
                problems.append(f"could not move {source} back to {destination}: {exc.strerror or exc}")
        return problems


def _outcome(problems: list[str]) -> str:
    return "nothing was replaced" if not problems else "and the previous outputs could not all be put back"


def _unmovable(artifacts: Path, exc: OSError, problems: list[str]) -> InvalidInputError:
    return InvalidInputError(
        f"The previous artifacts/ cannot be replaced: {exc.strerror or exc}; {_outcome(problems)}",
        subject=str(artifacts),
        details=problems,
        hint="make the output directory and its artifacts/ yours and writable (one left by a container running as "
        "root may not be: remove it with the rights that made it), or build into another output directory.",
    )


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block take effect when it ends (a handler installed by the program
    then runs, or the default action). No handler is installed: a library may do this, and it is brief."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
