"""Checks that a built layer will load on its target, run before anything ships.

- every installed wheel carries a tag the runtime accepts (its CPython ABI, abi3 or none; its glibc and machine);
- every shared object is an ELF file for the target's machine;
- every dependency a distribution declares for the target (markers evaluated for the target, with the extras
  asked for) is installed, unless deliberately excluded;
- the unzipped size fits Lambda's limit.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import parse_tag
from packaging.utils import NormalizedName, canonicalize_name

from .distributions import InstalledDistribution
from .errors import VerificationError
from .target import LambdaTarget

# Lambda's limit for a function and all its layers, unzipped (the error message says 262144000 bytes).
LAMBDA_UNZIPPED_LIMIT = 262_144_000


@dataclass(frozen=True)
class VerificationReport:
    distributions: int
    shared_objects: int
    unzipped_bytes: int


def _wheel_tags(dist: InstalledDistribution) -> list[str]:
    wheel = dist.dist_info / "WHEEL"
    if not wheel.is_file():
        return []
    return [
        line.split(":", 1)[1].strip()
        for line in wheel.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.startswith("Tag:")
    ]


def check_wheel_tags(
    dists: Iterable[InstalledDistribution], target: LambdaTarget, *, native_builds: bool = False
) -> list[str]:
    supported = set(target.supported_tags) | (set(target.native_tags) if native_builds else set())
    problems = []
    for dist in dists:
        tags = _wheel_tags(dist)
        if tags and not any(supported & parse_tag(tag) for tag in tags):
            problems.append(f"{dist.pin} is a wheel for {', '.join(tags)}, which {target} cannot load")
    return problems


def elf_machine(path: Path) -> int | None:
    """The ``e_machine`` field of an ELF file, or None when ``path`` is not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


_ELF_NAMES = {3: "i386", 62: "x86_64", 183: "aarch64", 40: "arm", 243: "riscv", 21: "ppc64", 22: "s390"}


def check_shared_objects(site_dir: Path, target: LambdaTarget) -> tuple[int, list[str]]:
    count = 0
    problems = []
    expected = target.architecture.elf_machine
    for path in sorted(site_dir.rglob("*.so*")):
        if not path.is_file() or not (path.suffix == ".so" or ".so." in path.name):
            continue
        machine = elf_machine(path)
        if machine is None:
            continue
        count += 1
        if machine != expected:
            problems.append(
                f"{path.relative_to(site_dir)} is built for {_ELF_NAMES.get(machine, machine)}, not {target.machine}"
            )
    return count, problems


def check_dependencies(  # noqa: C901 - one graph walk, its cases in one place
    site_dir: Path,
    top_level: Iterable[Requirement],
    target: LambdaTarget,
    excluded: Iterable[str] = (),
) -> list[str]:
    """Walk the dependency graph from ``top_level`` with the target's markers; list what is missing or wrong."""
    env = target.marker_environment
    dists: dict[NormalizedName, metadata.Distribution] = {}
    for dist_info in site_dir.glob("*.dist-info"):
        found = metadata.PathDistribution(dist_info)
        if found.metadata["Name"]:
            dists[canonicalize_name(found.metadata["Name"])] = found
    skip = {canonicalize_name(n) for n in excluded}
    problems: list[str] = []
    processed: dict[NormalizedName, set[str]] = defaultdict(set)
    queue: deque[tuple[Requirement, str]] = deque((req, "the requirements file") for req in top_level)
    while queue:
        req, wanted_by = queue.popleft()
        name = canonicalize_name(req.name)
        if name in skip:
            continue
        dist = dists.get(name)
        if dist is None:
            problems.append(f"{req} (needed by {wanted_by} on {target}) is not installed")
            continue
        if req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{wanted_by} needs {req}, but {dist.version} is installed")
        # Each (distribution, extra) is expanded once; "" stands for the distribution's own dependencies.
        contexts = ({""} | {canonicalize_name(e) for e in req.extras}) - processed[name]
        if not contexts:
            continue
        processed[name] |= contexts
        parent = f"{dist.metadata['Name']} {dist.version}"
        for raw in dist.requires or []:
            try:
                dep = Requirement(raw)
            except InvalidRequirement:
                continue
            if dep.marker is None:
                if "" in contexts:
                    queue.append((dep, parent))
            elif any(dep.marker.evaluate({**env, "extra": extra}) for extra in contexts):
                queue.append((dep, parent))
    return problems


def verify_layer(
    site_dir: Path,
    dists: list[InstalledDistribution],
    top_level: Iterable[Requirement],
    target: LambdaTarget,
    *,
    excluded: Iterable[str],
    unzipped_bytes: int,
    subject: str,
    native_builds: bool = False,
) -> VerificationReport:
    """Run every check; raise one :class:`VerificationError` listing every problem found."""
    problems = check_wheel_tags(dists, target, native_builds=native_builds)
    shared, elf_problems = check_shared_objects(site_dir, target)
    problems += elf_problems
    top = [r for r in top_level if r.marker is None or r.marker.evaluate({**target.marker_environment, "extra": ""})]
    problems += check_dependencies(site_dir, top, target, excluded)
    if unzipped_bytes > LAMBDA_UNZIPPED_LIMIT:
        problems.append(
            f"the layer is {unzipped_bytes:,} bytes unzipped; Lambda allows {LAMBDA_UNZIPPED_LIMIT:,} for a "
            "function and all its layers"
        )
    if problems:
        raise VerificationError(
            f"The built layer would not work on {target}",
            subject=subject,
            details=problems,
            hint="for a missing dependency, add it to the requirements (the installer evaluated markers "
            "differently from the target); for a size problem, exclude packages the runtime provides (boto3, "
            "botocore) or split the layer.",
        )
    return VerificationReport(len(dists), shared, unzipped_bytes)
