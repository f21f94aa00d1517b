"""Which installer builds a layer, and why: uv wherever it gives the layer pip would give (the same distributions
and the same wheels, so after normalisation the same bytes), pip where it does not.

Detected, not guessed. uv differs from pip in two known ways, and each is checked after uv ran:

- **Requires-Python upper bounds.** uv ignores them by design: for python3.13 it installs ``dataclasses`` 0.8
  (``Requires-Python >=3.6, <3.7``), where pip takes 0.6. The installed metadata shows it; no network needed.
- **manylinux levels.** uv's ``--python-platform`` knows manylinux 2_17, 2_28, 2_31 … only; for Amazon Linux 2
  (glibc 2.26) it must be told 2_17, so it cannot take a manylinux_2_18 … 2_26 wheel that pip would (pandas 3.x).
  For those targets the index is read (:mod:`.catalog`) for a wheel only pip can take, in a version at least the
  one uv installed. Targets on Amazon Linux 2023 have no such gap, and cost nothing.

Where pip cannot run for the target (no interpreter of its version on its machine), uv is made right instead
(Requires-Python: the offending versions are excluded by a constraint) or the build says exactly what uv cannot do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.distribution import Distribution, installed_distributions
from cdk_pip_layer.engine.errors import (
    IndexUnreachableError,
    LayerBuildError,
    NoCompatibleDistributionError,
    NoTargetInstallerError,
)
from cdk_pip_layer.engine.options import InstallerChoice
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import offered_wheels
from .installers import Installer, InstallerSelection, UvInstaller
from .into_layer import InstallJob
from .pip_only_wheels import BlindSpot, OtherWheel, blind_filename, blind_spots, other_wheels, target_wheel
from .requires_python import PythonMismatch, excluded_versions, python_mismatches, target_python

_log = logging.getLogger("cdk_pip_layer")


def read_installed(site_dir: Path) -> list[Distribution]:
    """The distributions installed in ``site_dir`` whose version PEP 440 reads, sorted by name."""
    out = []
    for dist in installed_distributions(site_dir):
        try:
            dist.parsed_version  # noqa: B018 - read once here, where an invalid one is left out
        except InvalidVersion:
            continue
        out.append(dist)
    return out


# --- one build's install step ---------------------------------------------------------------------------------------

# How many times uv is run again with more versions excluded for their Requires-Python.
_PYTHON_ROUNDS = 4


@dataclass(frozen=True)
class Installed:
    """What the install step did: which installer ran, why that one, and what it reported."""

    installer: Installer
    reason: str
    built_from_source: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def description(self) -> str:
        """The installer and why it was used (the summary's ``installer:`` line)."""
        return f"{self.installer.description} [{self.reason}]"


@dataclass(frozen=True)
class Difference:
    """How uv's layer differs from the one pip would give: installed versions whose Requires-Python excludes the
    target, wheels only pip can take, and the index pages that could not be read to tell."""

    python: tuple[PythonMismatch, ...] = ()
    blind: tuple[BlindSpot, ...] = ()
    other: tuple[OtherWheel, ...] = ()
    unread: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.python or self.blind or self.other or self.unread)

    @property
    def wheels(self) -> list[BlindSpot | OtherWheel]:
        """The wheels pip would take instead of uv's."""
        return [*self.blind, *self.other]

    def describe(self, target: LambdaTarget) -> str:
        if self.python:
            return "uv would install " + "; ".join(m.describe(target) for m in self.python)
        if self.blind or self.other:
            return "; ".join(found.describe(target) for found in self.wheels)
        return f"the index could not be read to check uv's choice ({self.unread[0]})"


class LayerInstall:
    """One build's install step: run the installer the selection calls for; check uv's layer against the one pip
    would give; turn to pip where they differ, or, where pip cannot run for the target, correct uv (Requires-Python)
    or say what differs (wheels only pip can take)."""

    def __init__(self, selection: InstallerSelection, job: InstallJob, *, extra_args: Sequence[str]) -> None:
        self.selection = selection
        self.job = job
        self.target = selection.target
        self.requirements = job.requirements
        self.site_dir = job.site_dir
        self.scratch = job.scratch
        self.index = job.index
        self.extra_args = tuple(extra_args)

    def install(self) -> Installed:
        selection = self.selection
        if selection.pip_only:
            own = selection.preference is not InstallerChoice.PIP
            return self._pip(
                selection.require_pip(), "the target's own Python in its build image" if own else "asked for"
            )
        if selection.preference is InstallerChoice.UV:
            forced = selection.require_uv()
            built, notes = self.job.run(forced, self.extra_args)
            return self._uv_made_right(forced, "asked for", built, notes)
        uv = selection.uv()
        if uv is None:
            return self._pip(selection.require_pip(), f"chosen: {selection.why_no_uv}")
        return self._auto(uv)

    def _auto(self, uv: UvInstaller) -> Installed:
        """uv first; pip when uv fails or its layer differs from pip's and pip can run for the target."""
        try:
            built, notes = self.job.run(uv, self.extra_args)
        except LayerBuildError as exc:
            pip = self.selection.pip()
            if pip is None or isinstance(exc, IndexUnreachableError):
                raise  # an index uv cannot reach, pip cannot reach either
            _log.info("uv failed (%s): building with pip", exc.what)
            why = exc.details[0] if isinstance(exc, NoTargetInstallerError) and exc.details else exc.what
            return self._pip(pip, f"chosen: uv could not install the requirements ({why})")
        difference = self.difference(uv)
        if not difference:
            checked = " (checked against the index)" if self.target.uv_blind_platforms else ""
            return Installed(uv, f"chosen: it installs the wheels pip would choose{checked}, faster", built, notes)
        pip = self.selection.pip()
        if pip is not None:
            _log.info("uv's layer differs from pip's: %s", difference.describe(self.target))
            return self._pip(pip, f"chosen: {difference.describe(self.target)}")
        no_pip = f"no Python {self.target.python_version_str} for linux/{self.target.machine} to run pip"
        return self._uv_made_right(uv, f"chosen: {no_pip}", built, notes, difference)

    def _pip(self, pip: Installer, reason: str) -> Installed:
        built, notes = self.job.run(pip, self.extra_args)
        return Installed(pip, reason, built, notes)

    def difference(self, uv: UvInstaller) -> Difference:
        """How the layer uv installed differs from pip's (nothing read from the network unless the target has
        manylinux levels uv cannot target, or the packages come from more than one place)."""
        installed = read_installed(self.site_dir)
        mismatches = python_mismatches(installed, self.target)
        if mismatches:
            return Difference(python=tuple(mismatches))
        blind = bool(self.target.uv_blind_platforms)
        sources = uv.sources(self.index, self.extra_args, self.requirements)
        several = len(sources.indexes) + len(sources.find_links) > 1  # uv and pip may take a version's files apart
        if not (blind or several):
            return Difference()
        keep = target_wheel(self.target) if several else blind_filename(self.target)
        offers = offered_wheels(sources, [dist.name for dist in installed], keep=keep)
        unread = tuple(sorted({why for why in offers.values() if isinstance(why, str)}))
        spots = (
            blind_spots(installed, offers, self.target, self.requirements, allow_prereleases=sources.prereleases)
            if blind
            else []
        )
        spotted = {spot.name for spot in spots}
        others = [o for o in other_wheels(installed, offers, self.target) if several and o.name not in spotted]
        return Difference(blind=tuple(spots), other=tuple(others), unread=unread)

    def _uv_made_right(
        self,
        uv: UvInstaller,
        reason: str,
        built: tuple[str, ...],
        notes: tuple[str, ...],
        difference: Difference | None = None,
    ) -> Installed:
        """uv's layer, with no distribution whose Requires-Python excludes the target (uv runs again with those
        versions excluded), and a warning for each wheel pip would have chosen instead."""
        difference = self.difference(uv) if difference is None else difference
        if difference.python:
            built, notes, constraint = self._without_python_mismatches(uv, list(difference.python))
            reason += f"; with the constraint {constraint}, for Requires-Python"
            difference = self.difference(uv)
        for why in difference.unread:
            _log.info("could not check uv's choice against the index: %s", why)
        warnings = list(notes)
        for found in difference.wheels:
            warnings.append(
                f"{found.describe(self.target)}; build with pip on a Python {self.target.python_version_str} for "
                f"linux/{self.target.machine}, or in the Lambda build image, to get pip's choice"
            )
        return Installed(uv, reason, built, tuple(warnings))

    def _without_python_mismatches(
        self, uv: UvInstaller, mismatches: list[PythonMismatch]
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """Run uv again, excluding every version pip would not take for its Requires-Python, until none is
        installed. Returns what the run reported and the constraint line(s) used."""
        python = target_python(self.target)
        excluded: dict[str, set[str]] = {}
        sources = uv.sources(self.index, self.extra_args, self.requirements)
        machine = self.target.machine
        constraints = self.scratch / "requires-python-constraints.txt"
        for _ in range(_PYTHON_ROUNDS):
            offers = offered_wheels(
                sources, [m.dist.name for m in mismatches], keep=lambda f: machine in f or f.endswith("-any.whl")
            )
            for mismatch in mismatches:
                versions = excluded.setdefault(mismatch.dist.name, set())
                versions.update(excluded_versions(mismatch, offers.get(mismatch.dist.name, ()), python))
            lines = [f"{name}{','.join(f'!={v}' for v in sorted(vs, key=Version))}" for name, vs in excluded.items()]
            self.scratch.mkdir(parents=True, exist_ok=True)
            constraints.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                built, notes = self.job.run(uv, (*self.extra_args, "--constraint", str(constraints)))
            except LayerBuildError as exc:
                raise self._no_version(mismatches, exc.details) from None
            mismatches = python_mismatches(read_installed(self.site_dir), self.target)
            if not mismatches:
                return built, notes, " ".join(lines)
        raise self._no_version(mismatches, ())

    def _no_version(
        self, mismatches: Sequence[PythonMismatch], details: Sequence[str]
    ) -> NoCompatibleDistributionError:
        target = self.target
        names = ", ".join(m.dist.name for m in mismatches)
        return NoCompatibleDistributionError(
            f"No version of {names} that supports Python {target.python_version_str} can be installed with uv",
            package=mismatches[0].dist.name if len(mismatches) == 1 else None,
            subject=str(self.requirements.path),
            details=[f"uv chose {m.describe(target)}" for m in mismatches] + list(details)[-6:],
            hint=f"pin a version of {names} that supports Python {target.python_version_str}, or let pip build it "
            f"(a Python {target.python_version_str} for linux/{target.machine} on this host, or the Lambda build "
            "image).",
        )
