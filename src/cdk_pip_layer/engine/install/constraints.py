"""Constraints in pip's hash-checking mode: what they can still do, checked before an installer runs.

In hash-checking mode every distribution installed must be pinned with ``==`` (and hashed) by the requirements
themselves, dependencies included; pip does not ask the same of constraints (``-c`` lines, or ``constraint =`` in
the user's pip configuration, which ``PIP_CONSTRAINT`` also sets). A constraint can then only do one thing: exclude
a pinned version, which makes pip fail. This module tells that case in a message naming the constraint and where
it comes from; any other constraint changes nothing, so uv, whose ``--require-hashes`` refuses a constraint that is
not pinned with ``==`` ("found torch<=2.14.1"), need not be given it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.utils import canonicalize_name

from cdk_pip_layer.engine.errors import InstallError, LayerBuildError
from cdk_pip_layer.engine.inputs.requirements import RequirementLine, RequirementsFile, read_requirements
from cdk_pip_layer.engine.target import LambdaTarget

_SCHEME = ("http://", "https://", "file://")


def configured_constraints(settings: Mapping[str, str]) -> tuple[list[RequirementLine], list[str]]:
    """The constraint lines of the files the user's pip configuration names (``settings``: see
    :func:`~cdk_pip_layer.engine.index.pip_settings`), and the ones that could not be read (remote ones, say)."""
    lines: list[RequirementLine] = []
    unread: list[str] = []
    for value in settings.get("constraint", "").split():
        if value.startswith(_SCHEME):
            unread.append(value)
            continue
        try:
            lines += read_requirements(Path(value).expanduser()).requirements
        except LayerBuildError:
            unread.append(value)  # pip says what is wrong with it when it runs
    return lines, unread


def check_constraints(
    requirements: RequirementsFile, configured: Sequence[RequirementLine], target: LambdaTarget, shown: Path
) -> None:
    """Raise the error pip's run would end in, named as it is, when a constraint (of the files or of the pip
    configuration) excludes a version the hash-pinned requirements pin."""
    pinned = dict(_pins(requirements))
    environment = {**target.marker_environment, "extra": ""}
    for line, origin in [*((c, "the requirements") for c in requirements.constraints),
                         *((c, "your pip configuration") for c in configured)]:  # fmt: skip
        req = line.requirement
        if req is None or canonicalize_name(req.name) not in pinned:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate(environment):
                continue
        except (UndefinedComparison, UndefinedEnvironmentName):
            continue  # pip decides; it has the final word anyway
        version, pin = pinned[canonicalize_name(req.name)]
        if not req.specifier.contains(version, prereleases=True):
            raise InstallError(
                f"The constraint {line.text} excludes {version} of {req.name}, which {shown.name} pins",
                package=req.name,
                subject=str(shown),
                details=[
                    f"constraint: {line.text} ({line.where}, from {origin})",
                    f"pinned: {pin.text} ({pin.where if pin.file == shown else shown.name})",
                ],
                hint="widen or remove the constraint (pip config list shows where your pip configuration sets it: "
                f"a 'constraint' in pip.conf, or PIP_CONSTRAINT), or pin a version of {req.name} it allows.",
            )


def _pins(requirements: RequirementsFile) -> Iterator[tuple[str, tuple[str, RequirementLine]]]:
    for line in requirements.requirements:
        req = line.requirement
        if req is None:
            continue
        versions = [
            spec.version for spec in req.specifier if spec.operator in ("==", "===") and "*" not in spec.version
        ]
        if versions:
            yield canonicalize_name(req.name), (versions[0], line)
