"""Helpers for the real tier: build each distinct layer once, and read what a built layer holds.

Everything here inspects the layer independently of the engine's own checks (``_verify``): WHEEL tags are parsed
from the installed ``.dist-info``, ELF headers are read byte by byte, glibc levels come from the tag names.
"""

from __future__ import annotations

import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, parse_tag

from cdk_pip_layer import LambdaTarget, LayerBuildResult, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime

# Wheels with native code for every target below (cp310-cp313, x86_64 and aarch64, manylinux 2.17), plus
# cryptography, whose abi3 wheels exist at manylinux 2.17, 2.28 and (aarch64 only) 2.34: the one to show that
# the newest wheel the runtime's glibc allows is chosen. anyio pulls exceptiongroup only when
# python_version < "3.11"; charset-normalizer brings a console script (bin/normalizer) that must not ship.
NATIVE_REQUIREMENTS = """\
orjson==3.10.12
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
charset-normalizer==3.4.0
PyYAML==6.0.2
cryptography==44.0.0
cffi==1.17.1
pycparser==2.22
anyio==4.6.2.post1
idna==3.10
sniffio==1.3.1
"""

# The shared objects each native distribution above must bring (a directory prefix in the layer).
NATIVE_MODULE_DIRS = ("orjson/", "pydantic_core/", "yaml/", "charset_normalizer/", "cryptography/")


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX = re.compile(r"^(?:manylinux_(?P<major>\d+)_(?P<minor>\d+)|(?P<legacy>manylinux\d+))_(?P<arch>.+)$")


@dataclass(frozen=True)
class LayerSpec:
    """One distinct layer: requirements text, target and installer."""

    requirements: str
    runtime: Runtime
    architecture: ArchitectureName = "x86_64"
    installer: InstallerName = "auto"
    exclude: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return f"{self.runtime}-{self.architecture}-{self.installer}"


@dataclass(frozen=True)
class BuiltLayer:
    spec: LayerSpec
    result: LayerBuildResult

    @property
    def target(self) -> LambdaTarget:
        return self.result.target

    @property
    def zip_path(self) -> Path:
        return self.result.zip_path

    @property
    def site_dir(self) -> Path:
        return self.result.artifacts_dir / "python"

    def zip_names(self) -> list[str]:
        with zipfile.ZipFile(self.zip_path) as archive:
            return archive.namelist()

    def dist_names(self) -> set[str]:
        """Canonical names of the distributions in the layer, from the zip's ``.dist-info`` directories."""
        out = set()
        for name in self.zip_names():
            match = re.match(r"^python/([^/]+)-[^-/]+\.dist-info/METADATA$", name)
            if match:
                out.add(match.group(1).lower().replace("_", "-").replace(".", "-"))
        return out

    def wheel_tags(self) -> dict[str, list[str]]:
        """``.dist-info`` directory name -> the ``Tag:`` lines of its WHEEL file."""
        out: dict[str, list[str]] = {}
        for wheel in sorted(self.site_dir.glob("*.dist-info/WHEEL")):
            lines = wheel.read_text(encoding="utf-8").splitlines()
            out[wheel.parent.name] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
        return out

    def shared_objects(self) -> list[Path]:
        return sorted(
            path
            for path in self.site_dir.rglob("*")
            if path.is_file() and (path.name.endswith(".so") or ".so." in path.name)
        )


class LayerCache:
    """Builds each :class:`LayerSpec` once per test session (in-process, through the public builder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[LayerSpec, BuiltLayer] = {}

    def get(self, spec: LayerSpec) -> BuiltLayer:
        if spec not in self._built:
            work = self.root / f"{len(self._built):02d}-{spec.slug}"
            work.mkdir(parents=True)
            requirements = work / "requirements.txt"
            requirements.write_text(spec.requirements, encoding="utf-8")
            result = PipBasedLambdaLayerLocalBuilder(
                requirements=requirements,
                build_dir=work / "build",
                runtime=spec.runtime,
                architecture=spec.architecture,
                installer=spec.installer,
                exclude=spec.exclude,
            ).build()
            self._built[spec] = BuiltLayer(spec, result)
        return self._built[spec]


def assert_no_host_artifacts(layer: BuiltLayer) -> None:
    """No byte-code at all (the engine runs pip with --no-compile; uv does not compile) and no ``bin/`` scripts
    (their shebang would be the build host's Python) anywhere in the layer.zip."""
    names = layer.zip_names()
    assert names, layer.zip_path
    assert all(n.startswith("python/") for n in names), [n for n in names if not n.startswith("python/")][:5]
    byte_code = [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__/" in n]
    assert not byte_code, byte_code[:5]
    scripts = [n for n in names if n.startswith(("bin/", "python/bin/"))]
    assert not scripts, scripts[:5]


def manylinux_glibc(platform: str) -> tuple[tuple[int, int], str] | None:
    """``manylinux_2_28_x86_64`` -> ((2, 28), "x86_64"); legacy names too; None for other platforms."""
    match = _MANYLINUX.match(platform)
    if not match:
        return None
    if match.group("legacy"):
        legacy = match.group("legacy")
        if legacy not in _LEGACY_MANYLINUX:
            return None
        return _LEGACY_MANYLINUX[legacy], match.group("arch")
    return (int(match.group("major")), int(match.group("minor"))), match.group("arch")


def parse_tags(lines: list[str]) -> set[Tag]:
    out: set[Tag] = set()
    for line in lines:
        out |= parse_tag(line)
    return out


def cli_path() -> Path:
    """The ``cdk-pip-layer`` console script of the interpreter running the tests."""
    return Path(sys.executable).parent / "cdk-pip-layer"
