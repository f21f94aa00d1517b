"""``exclude=[':runtime:']``: leave out what the target's Lambda runtime provides (boto3 and its companions), by
version: a distribution goes only when the runtime's version satisfies every requirement on it that stays in play
(the requirements file's, and those of the distributions the layer keeps). A version pinned to something else stays,
and so does what it needs; each decision is said in one line for the build's summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from cdk_pip_layer.engine.distribution import Distribution, installed_distributions
from cdk_pip_layer.engine.lambda_os import RUNTIME_PROVIDED
from cdk_pip_layer.engine.target import LambdaTarget

__all__ = ["RuntimeProvided", "runtime_provided"]

REQUIREMENTS_FILE = "the requirements file"


@dataclass(frozen=True)
class RuntimeProvided:
    """What the preset leaves out (names, for :func:`~.prune.exclude_distributions`), and why, in lines."""

    excluded: tuple[NormalizedName, ...]
    lines: tuple[str, ...]


def runtime_provided(site_dir: Path, target: LambdaTarget, requirements: Iterable[Requirement]) -> RuntimeProvided:
    """Decide, for each distribution installed in ``site_dir`` that ``target``'s runtime ships, whether the layer
    leaves it out (the runtime's copy serves) or keeps it (a requirement the runtime's version does not meet)."""
    provided = {canonicalize_name(name): version for name, version in RUNTIME_PROVIDED[target.runtime].items()}
    installed = {d.name: d for d in installed_distributions(site_dir)}
    candidates = {name: installed[name] for name in provided if name in installed}
    env = target.marker_environment
    top = [(req, REQUIREMENTS_FILE) for req in requirements if _applies(req, env)]
    kept: dict[NormalizedName, str] = {}
    changed = True
    while changed:  # a kept distribution's own requirements can keep others (a pinned boto3 keeps its botocore)
        changed = False
        staying = [d for name, d in installed.items() if name not in candidates or name in kept]
        for req, wanted_by in [*top, *_requirements_of(staying, env)]:
            name = canonicalize_name(req.name)
            if name in candidates and name not in kept and not _fits(req, provided[name]):
                kept[name] = _kept_line(candidates[name], req, wanted_by, provided[name], target)
                changed = True
    lines = [
        kept.get(name) or f"excluded {dist.pin}: {_provides(target, dist, provided[name])}"
        for name, dist in sorted(candidates.items())
    ]
    return RuntimeProvided(tuple(sorted(set(candidates) - set(kept))), tuple(lines))


def _applies(req: Requirement, env: Mapping[str, str]) -> bool:
    return req.marker is None or req.marker.evaluate({**env, "extra": ""})


def _requirements_of(dists: Iterable[Distribution], env: Mapping[str, str]) -> list[tuple[Requirement, str]]:
    out = []
    for dist in dists:
        for text in dist.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue  # the verifier reports a requirement it cannot read
            if _applies(req, env):
                out.append((req, dist.pin))
    return out


def _fits(req: Requirement, version: str | None) -> bool:
    """Whether the runtime's ``version`` meets ``req``: any version meets a bare name; an unknown one meets
    nothing more."""
    if req.url:
        return False
    if not req.specifier:
        return True
    return version is not None and req.specifier.contains(version, prereleases=True)


def _provides(target: LambdaTarget, dist: Distribution, version: str | None) -> str:
    if version is None:
        return f"the {target.runtime} runtime provides {dist.display_name} (AWS publishes no version for it)"
    return f"the {target.runtime} runtime provides {dist.display_name} {version}"


def _kept_line(dist: Distribution, req: Requirement, wanted_by: str, version: str | None, target: LambdaTarget) -> str:
    runtime = f"{version}" if version is not None else "a version AWS does not publish"
    return (
        f"kept {dist.pin} although the {target.runtime} runtime provides {dist.display_name}: {wanted_by} requires "
        f"{req}, and the runtime has {runtime}"
    )
