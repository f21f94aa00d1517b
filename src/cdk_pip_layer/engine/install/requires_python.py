"""Requires-Python, as pip judges it for the target: the installed distributions whose ``Requires-Python`` excludes
the target's Python (uv ignores the upper bounds by design), and the versions to exclude so that uv takes what pip
would."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from cdk_pip_layer.engine.distribution import Distribution
from cdk_pip_layer.engine.target import LambdaTarget

from .index_pages import OfferedWheel


@dataclass(frozen=True)
class PythonMismatch:
    """An installed distribution whose ``Requires-Python`` excludes the target's Python."""

    dist: Distribution

    def describe(self, target: LambdaTarget) -> str:
        return (
            f"{self.dist.name} {self.dist.parsed_version}, whose Requires-Python ({self.dist.requires_python}) "
            f"excludes Python {target.python_version_str}"
        )


def target_python(target: LambdaTarget) -> Version:
    """The version ``Requires-Python`` is judged against, as pip judges it with ``--python-version X.Y``."""
    return Version(target.python_version_str)


def python_mismatches(installed: Sequence[Distribution], target: LambdaTarget) -> list[PythonMismatch]:
    python = target_python(target)
    out = []
    for dist in installed:
        if not dist.requires_python:
            continue
        try:
            admitted = SpecifierSet(dist.requires_python).contains(python, prereleases=True)
        except InvalidSpecifier:
            continue  # pip ignores what it cannot parse, and so does this check
        if not admitted:
            out.append(PythonMismatch(dist))
    return out


def excluded_versions(mismatch: PythonMismatch, offers: tuple[OfferedWheel, ...] | str, python: Version) -> list[str]:
    """Versions of the mismatched distribution pip would never take for ``python``: the installed one, and each one
    the index offers only with a ``Requires-Python`` that excludes it."""
    versions = {str(mismatch.dist.parsed_version)}
    if not isinstance(offers, str):
        by_version: dict[Version, list[OfferedWheel]] = {}
        for wheel in offers:
            by_version.setdefault(wheel.version, []).append(wheel)
        versions |= {str(v) for v, wheels in by_version.items() if not any(w.admits(python) for w in wheels)}
    return sorted(versions, key=Version)
