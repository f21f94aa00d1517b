"""One installed distribution, as its ``.dist-info`` describes it (METADATA, WHEEL, RECORD): read from a layer's
``python/`` directory on disk (:func:`installed_distributions`, for the build's own steps) or from a layer zip (the
verifier's inventory). One type for both, so that every step speaks of a distribution the same way."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.tags import Tag, parse_tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

_EXTENSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_-]+)?\.(?:so|py|pyc)$")
_NOT_MODULES = (".dist-info", ".data", ".libs", ".egg-info")


@dataclass(frozen=True)
class RecordRow:
    path: str  # layer path
    sha256: str | None  # hex digest, when RECORD gives a sha256
    size: int | None


@dataclass(frozen=True)
class Distribution:
    """One installed distribution.

    Attributes:
        name, display_name, version: from its METADATA (the name normalised, and as written).
        dist_info: its ``.dist-info`` directory: a layer path ending in ``/`` (read from a zip), or its directory's
            name (read from disk, where :attr:`location` is the directory itself).
        location: the ``.dist-info`` directory on disk, for a distribution read from a directory.
        requires, requires_python, licence: from its METADATA.
        wheel_tags: the tags its WHEEL file names.
        site: the site directory it is installed in (a layer path ending in ``/``; read from a zip).
        has_record, record, outside_record, record_error: its RECORD (read from a zip): whether there is one, its
            rows inside the layer, how many point outside the site directory (``../../bin/…`` of pip --target),
            and why it could not be read to its end.
    """

    name: NormalizedName
    display_name: str
    version: str
    dist_info: str
    location: Path | None = None
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    licence: str | None = None
    wheel_tags: tuple[str, ...] = ()
    site: str = ""
    has_record: bool = True
    record: tuple[RecordRow, ...] = ()
    outside_record: int = 0
    record_error: str | None = None

    @property
    def pin(self) -> str:
        return f"{self.display_name}=={self.version}"

    @functools.cached_property
    def parsed_version(self) -> Version:
        """The version as PEP 440 reads it (raises InvalidVersion for one that is not)."""
        return Version(self.version)

    @functools.cached_property
    def tags(self) -> frozenset[Tag]:
        """The tags of its WHEEL file."""
        out: set[Tag] = set()
        for tag in self.wheel_tags:
            out |= parse_tag(tag)
        return frozenset(out)

    @property
    def directory(self) -> Path:
        """The ``.dist-info`` directory on disk (a distribution read from a directory)."""
        if self.location is None:
            raise ValueError(f"{self.pin} was not read from a directory")
        return self.location

    def paths(self) -> set[str]:
        """Every layer path that belongs to it: its RECORD's files and its .dist-info."""
        return {row.path for row in self.record}

    def modules(self) -> list[str]:
        """The modules to import to see that it loads: its top-level modules and packages (for a namespace
        package, the packages inside it), from its RECORD."""
        return importable_modules(row.path[len(self.site) :] for row in self.record if row.path.startswith(self.site))


def metadata_field(fields: metadata.PackageMetadata, name: str) -> str | None:
    """The value of a METADATA field, None when the distribution has none (indexing a missing field warns on Python
    3.12 and later, where importlib_metadata's KeyError is announced)."""
    return fields[name] if name in fields else None  # noqa: SIM401 - the PackageMetadata protocol has no get()


def installed_distributions(site_dir: Path) -> list[Distribution]:
    """The distributions installed in ``site_dir`` (those whose METADATA names them), sorted by name."""
    out: dict[str, Distribution] = {}
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        dist = metadata.PathDistribution(dist_info)
        fields = dist.metadata
        raw_name = metadata_field(fields, "Name")
        if not raw_name:
            continue
        tags = [
            line.split(":", 1)[1].strip()
            for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")
        ]
        name = canonicalize_name(raw_name)
        out[name] = Distribution(
            name=name,
            display_name=raw_name,
            version=metadata_field(fields, "Version") or "",
            dist_info=dist_info.name,
            location=dist_info,
            requires=tuple(fields.get_all("Requires-Dist") or ()),  # (dist.requires would parse METADATA again)
            requires_python=metadata_field(fields, "Requires-Python"),
            wheel_tags=tuple(tags),
        )
    return [out[k] for k in sorted(out)]


def importable_modules(relative_paths: Iterable[str]) -> list[str]:
    """Importable names from paths relative to a site directory: ``a.py`` -> ``a``; ``pkg/__init__.py`` -> ``pkg``;
    a namespace directory (no ``__init__``) -> the packages and modules inside it, one level down."""
    tree: dict[str, set[str]] = {}
    for rel in relative_paths:
        head, _, rest = rel.partition("/")
        tree.setdefault(head, set())
        if rest:
            tree[head].add(rest)
    return sorted(_modules_in(tree, prefix="", depth=0))


def _modules_in(tree: dict[str, set[str]], *, prefix: str, depth: int) -> set[str]:
    out: set[str] = set()
    for head, rests in tree.items():
        if not rests:  # a file
            match = _EXTENSION.match(head)
            if match and match.group("name") != "__init__" and head != "__pycache__":
                out.add(prefix + match.group("name"))
            continue
        if head.endswith(_NOT_MODULES) or head == "__pycache__" or not head.isidentifier():
            continue
        if not any(_EXTENSION.match(r.rsplit("/", 1)[-1]) for r in rests):
            continue  # data only
        if any(r.startswith("__init__.") for r in rests) or depth >= 2:
            out.add(prefix + head)
            continue
        sub: dict[str, set[str]] = {}
        for rel in rests:
            first, _, rest = rel.partition("/")
            sub.setdefault(first, set())
            if rest:
                sub[first].add(rest)
        out |= _modules_in(sub, prefix=f"{prefix}{head}.", depth=depth + 1)
    return out
