"""What a Lambda target is: runtime -> Python version and glibc; architecture -> machine and Docker platform.

Pure tables and functions. Everything the engine knows about the target platform lives here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from packaging import tags

from .errors import UnsupportedTargetError


@dataclass(frozen=True)
class _RuntimeFacts:
    python: tuple[int, int]
    glibc: tuple[int, int]
    os: str


# Lambda's managed Python runtimes: Amazon Linux 2 (glibc 2.26) up to 3.11, Amazon Linux 2023 (glibc 2.34) after.
_RUNTIMES: Mapping[str, _RuntimeFacts] = {
    "python3.10": _RuntimeFacts((3, 10), (2, 26), "Amazon Linux 2"),
    "python3.11": _RuntimeFacts((3, 11), (2, 26), "Amazon Linux 2"),
    "python3.12": _RuntimeFacts((3, 12), (2, 34), "Amazon Linux 2023"),
    "python3.13": _RuntimeFacts((3, 13), (2, 34), "Amazon Linux 2023"),
    "python3.14": _RuntimeFacts((3, 14), (2, 34), "Amazon Linux 2023"),
}

SUPPORTED_RUNTIMES: tuple[str, ...] = tuple(_RUNTIMES)


class Architecture(str, enum.Enum):
    """A Lambda instruction set architecture, named as Lambda names it."""

    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def machine(self) -> str:
        """The machine name in wheel tags and ``platform.machine()`` on Linux."""
        return {"x86_64": "x86_64", "arm64": "aarch64"}[self.value]

    @property
    def docker_platform(self) -> str:
        return {"x86_64": "linux/amd64", "arm64": "linux/arm64"}[self.value]

    @property
    def image_tag(self) -> str:
        """The tag of the SAM build image for this architecture."""
        return {"x86_64": "latest-x86_64", "arm64": "latest-arm64"}[self.value]

    @classmethod
    def parse(cls, value: str | Architecture) -> Architecture:
        if isinstance(value, Architecture):
            return value
        normalized = str(value).strip().lower()
        aliases = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
        if normalized not in aliases:
            raise UnsupportedTargetError(
                f"Unsupported architecture {value!r}",
                subject="architecture",
                hint="use 'x86_64' or 'arm64' (aliases: amd64, aarch64).",
            )
        return cls(aliases[normalized])


# Legacy manylinux names and the glibc each one stands for. aarch64 wheels start at manylinux2014.
_LEGACY_MANYLINUX: Mapping[tuple[int, int], str] = {
    (2, 17): "manylinux2014",
    (2, 12): "manylinux2010",
    (2, 5): "manylinux1",
}
_OLDEST_GLIBC = {"x86_64": 5, "aarch64": 17}

# The manylinux levels uv's --python-platform accepts (uv 0.5 .. 0.13). uv takes one level and accepts every
# older one, so we give it the newest level that does not exceed the runtime's glibc.
_UV_MANYLINUX_LEVELS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


@dataclass(frozen=True)
class LambdaTarget:
    """A Lambda runtime and architecture: everything a layer must match."""

    runtime: str
    architecture: Architecture

    @classmethod
    def parse(cls, runtime: str, architecture: str | Architecture = Architecture.X86_64) -> LambdaTarget:
        name = str(runtime).strip().lower()
        if name not in _RUNTIMES:
            raise UnsupportedTargetError(
                f"Unsupported runtime {runtime!r}",
                subject="runtime",
                hint=f"use one of {', '.join(SUPPORTED_RUNTIMES)}.",
            )
        return cls(name, Architecture.parse(architecture))

    def __str__(self) -> str:
        return f"{self.runtime}/{self.architecture.value}"

    @property
    def _facts(self) -> _RuntimeFacts:
        return _RUNTIMES[self.runtime]

    @property
    def python_version(self) -> tuple[int, int]:
        return self._facts.python

    @property
    def python_version_str(self) -> str:
        return "{}.{}".format(*self.python_version)

    @property
    def glibc(self) -> tuple[int, int]:
        return self._facts.glibc

    @property
    def os_name(self) -> str:
        return self._facts.os

    @property
    def abi(self) -> str:
        return "cp{}{}".format(*self.python_version)

    @property
    def machine(self) -> str:
        return self.architecture.machine

    @property
    def docker_platform(self) -> str:
        return self.architecture.docker_platform

    @property
    def build_image(self) -> str:
        """The AWS SAM build image for this runtime and architecture (what CDK's ``bundling_image`` names)."""
        return f"public.ecr.aws/sam/build-{self.runtime}:{self.architecture.image_tag}"

    @cached_property
    def platform_tags(self) -> tuple[str, ...]:
        """Every platform tag a wheel may carry for this target, newest glibc first (pip's preference order)."""
        major, newest = self.glibc
        oldest = _OLDEST_GLIBC[self.machine]
        out: list[str] = []
        for minor in range(newest, oldest - 1, -1):
            out.append(f"manylinux_{major}_{minor}_{self.machine}")
            legacy = _LEGACY_MANYLINUX.get((major, minor))
            if legacy:
                out.append(f"{legacy}_{self.machine}")
        return tuple(out)

    @cached_property
    def supported_tags(self) -> tuple[tags.Tag, ...]:
        """All wheel tags the runtime can load, most preferred first (CPython ABI, abi3, none)."""
        platforms = list(self.platform_tags)
        return (
            *tags.cpython_tags(self.python_version, abis=[self.abi], platforms=platforms),
            *tags.compatible_tags(self.python_version, interpreter=self.abi, platforms=platforms),
        )

    @cached_property
    def marker_environment(self) -> dict[str, str]:
        """The PEP 508 marker environment of the Lambda runtime (for ``packaging.markers.Marker.evaluate``).

        The patch level is not fixed by Lambda (it follows AWS's updates), so ``python_full_version`` is X.Y.0.
        """
        version = self.python_version_str
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{version}.0",
            "python_version": version,
            "sys_platform": "linux",
        }

    @cached_property
    def native_tags(self) -> tuple[tags.Tag, ...]:
        """Tags of wheels built from source inside the target's own build image (``linux_<machine>``)."""
        return tuple(tags.cpython_tags(self.python_version, abis=[self.abi], platforms=[f"linux_{self.machine}"]))

    def pip_target_args(self, *, native_builds: bool = False) -> list[str]:
        """pip options that restrict the install to wheels this target can load.

        ``native_builds`` also accepts ``linux_<machine>`` wheels, which only a build inside the target's own
        build image may produce (and trust).
        """
        args = [
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            self.python_version_str,
            "--abi",
            self.abi,
        ]
        for platform in self.platform_tags:
            args += ["--platform", platform]
        if native_builds:
            args += ["--platform", f"linux_{self.machine}"]
        return args

    @property
    def uv_manylinux_level(self) -> int:
        """The newest manylinux level uv can be told (``--python-platform``) that does not exceed our glibc."""
        glibc_minor = self.glibc[1]
        return max(level for level in _UV_MANYLINUX_LEVELS if level <= glibc_minor)

    @property
    def uv_python_platform(self) -> str:
        """The ``--python-platform`` value for uv: the newest manylinux level uv knows within our glibc."""
        return f"{self.machine}-manylinux_2_{self.uv_manylinux_level}"

    @cached_property
    def uv_supported_tags(self) -> frozenset[tags.Tag]:
        """The tags of :attr:`supported_tags` that uv accepts when told :attr:`uv_python_platform`: every manylinux
        level up to that one. For Amazon Linux 2 (glibc 2.26) that leaves out manylinux_2_18 .. manylinux_2_26:
        wheels pip installs and uv cannot."""
        level = self.uv_manylinux_level
        return frozenset(tag for tag in self.supported_tags if _platform_glibc_minor(tag.platform) <= level)

    @property
    def uv_blind_platforms(self) -> tuple[str, ...]:
        """The platform tags the runtime loads and uv cannot target (none for glibc 2.34), newest first."""
        level = self.uv_manylinux_level
        return tuple(platform for platform in self.platform_tags if _platform_glibc_minor(platform) > level)

    @property
    def wheels_in_words(self) -> str:
        """The wheels the target loads, in words rather than its hundreds of tags: "CPython 3.12 on manylinux
        aarch64 (glibc ≤ 2.34), and pure-Python ones" (abi3 wheels go without saying)."""
        python, machine = self.python_version_str, self.machine
        return "CPython {} on manylinux {} (glibc ≤ {}.{}), and pure-Python ones".format(python, machine, *self.glibc)


def _platform_glibc_minor(platform: str) -> int:
    """The glibc minor version a manylinux platform tag needs (0 for ``any`` and other platforms)."""
    for level, legacy in _LEGACY_MANYLINUX.items():
        if platform.startswith(f"{legacy}_"):
            return level[1]
    if platform.startswith("manylinux_2_"):
        minor = platform.split("_")[2]
        return int(minor) if minor.isdigit() else 0
    return 0
