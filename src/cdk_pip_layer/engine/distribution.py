"""The distributions installed in a layer's ``python/`` directory, read from their ``.dist-info``."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name


@dataclass(frozen=True)
class InstalledDistribution:
    name: NormalizedName
    display_name: str
    version: str
    dist_info: Path

    @property
    def pin(self) -> str:
        return f"{self.display_name}=={self.version}"


def metadata_field(fields: metadata.PackageMetadata, name: str) -> str | None:
    """The value of a METADATA field, None when the distribution has none (indexing a missing field warns on Python
    3.12 and later, where importlib_metadata's KeyError is announced)."""
    return fields[name] if name in fields else None  # noqa: SIM401 - the PackageMetadata protocol has no get()


def installed_distributions(site_dir: Path) -> list[InstalledDistribution]:
    """The distributions installed in ``site_dir``, sorted by name."""
    out: dict[str, InstalledDistribution] = {}
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        dist = metadata.PathDistribution(dist_info)
        raw_name = metadata_field(dist.metadata, "Name")
        if not raw_name:
            continue
        name = canonicalize_name(raw_name)
        out[name] = InstalledDistribution(name, raw_name, dist.version, dist_info)
    return [out[k] for k in sorted(out)]
