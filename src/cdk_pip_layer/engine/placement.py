"""Where a layer is built, and why: the bundling policy, the same for the construct and the command line.

``auto``: on this host when it can build for the target, else in the Lambda build image. ``local``: this host only
(an impossible local build is a :class:`LocalBuildUnavailableError`). ``docker``: always the build image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from .errors import LocalBuildUnavailableError
from .options import BundlingMode
from .target import LambdaTarget

Built = TypeVar("Built")


@dataclass(frozen=True)
class Placement:
    """Where a layer is built and why, in a few words; ``impossible``: why a local build was impossible, when
    that is why the build image builds it."""

    built_in: Literal["local", "docker"]
    reason: str
    impossible: LocalBuildUnavailableError | None = None


def build_placed(
    mode: BundlingMode,
    target: LambdaTarget,
    local: Callable[[], Built],
    docker: Callable[[Placement], Built],
) -> tuple[Built, Placement]:
    """Build where ``mode`` says: ``local()`` on this host, ``docker(placement)`` in the build image (called when
    the mode is docker, or in auto mode after ``local()`` raised LocalBuildUnavailableError). What the one that
    built returned, and where and why."""
    if mode is BundlingMode.DOCKER:
        placement = Placement("docker", "bundling=docker")
        return docker(placement), placement
    try:
        built = local()
    except LocalBuildUnavailableError as impossible:
        if mode is BundlingMode.LOCAL:
            raise
        placement = Placement("docker", f"bundling=auto: a local build is impossible: {impossible.what}", impossible)
        return docker(placement), placement
    reason = "bundling=local" if mode is BundlingMode.LOCAL else f"bundling=auto: this host can build for {target}"
    return built, Placement("local", reason)
