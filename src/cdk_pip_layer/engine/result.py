"""What a build produces: the names of its outputs in the build directory, and the result it reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .slim_report import SlimReport
from .target import LambdaTarget

# A build directory holds the layer, the tree it was zipped from, and (for a verified layer) its report and SBOM.
LAYER_ZIP = "layer.zip"
ARTIFACTS = "artifacts"
REPORT_FILE = "layer.report.json"
SBOM_FILE = "layer.cdx.json"


@dataclass(frozen=True)
class Verified:
    """What the verification of a built layer ran, in brief: the checks that ran, how many warnings, and each check
    that could not run with why (a smoke import with no interpreter for the target, say), so that a summary never
    lets a layer pass as fully checked when it was not."""

    checks: tuple[str, ...]
    warnings: int
    skipped: tuple[tuple[str, str], ...] = ()
    off: bool = False  # the build was not verified (verify=False)

    @classmethod
    def of(cls, checks: Iterable[str], warnings: int, skipped: Mapping[str, str]) -> Verified:
        return cls(tuple(sorted(set(checks))), warnings, tuple(sorted(skipped.items())))

    def and_then(self, checks: Iterable[str], warnings: int, skipped: Mapping[str, str]) -> Verified:
        """This verification (inside the build image) with a second one of the same zip (on the host): a check
        ran when either ran it; one that neither ran keeps the first reason."""
        ran = set(self.checks) | set(checks)
        reasons = {**dict(skipped), **dict(self.skipped)}
        return Verified.of(ran, self.warnings + warnings, {c: r for c, r in reasons.items() if c not in ran})

    def line(self) -> str:
        if self.off:
            return "no (turned off)"
        count = len(self.checks)
        ran = f"{count} of {count + len(self.skipped)} checks" if self.skipped else f"{count} checks"
        said = f"{ran}, {self.warnings} warning{'' if self.warnings == 1 else 's'}"
        return f"{said}; {self.not_run}" if self.skipped else said

    @property
    def not_run(self) -> str:
        """The checks that could not run, with why ("" when every check ran)."""
        if not self.skipped:
            return ""
        return "not run: " + ", ".join(f"{check} ({reason})" for check, reason in self.skipped)

    def to_dict(self) -> dict[str, object]:
        return {"checks": list(self.checks), "warnings": self.warnings, "skipped": dict(self.skipped), "off": self.off}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Verified:
        checks, warnings, skipped = data.get("checks"), data.get("warnings"), data.get("skipped")
        return cls(
            checks=tuple(str(c) for c in checks) if isinstance(checks, list) else (),
            warnings=warnings if isinstance(warnings, int) else 0,
            skipped=tuple((str(k), str(v)) for k, v in skipped.items()) if isinstance(skipped, dict) else (),
            off=data.get("off") is True,
        )


@dataclass(frozen=True)
class LayerBuildResult:
    """What a build produced."""

    target: LambdaTarget
    zip_path: Path
    artifacts_dir: Path
    installer: str
    distributions: tuple[str, ...]  # name==version of every distribution in the layer
    excluded: tuple[str, ...]
    built_from_source: tuple[str, ...]  # pure-Python wheels built locally from source distributions
    warnings: tuple[str, ...]
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str
    seconds: float
    slim: SlimReport | None = None  # what slimming removed, when the build slimmed the layer
    runtime_provided: tuple[str, ...] = ()  # exclude=[':runtime:']: what it left out or kept, and why
    verified: Verified | None = None  # None: not known (a result from before it was kept)

    @property
    def sizes(self) -> str:
        """Both sizes in one unit, the one that suits the unzipped size: "96 KiB unzipped, 38 KiB zipped"."""
        return sizes_text(self.unzipped_bytes, self.zipped_bytes)

    def summary(self, *, with_path: bool = True) -> str:
        lines = [f"layer: {self.zip_path}"] if with_path else []
        lines += [
            f"target: {self.target}",
            f"installer: {self.installer}",
            f"distributions ({len(self.distributions)}): {', '.join(self.distributions) or '-'}",
        ]
        if self.excluded:
            lines.append(f"excluded: {', '.join(self.excluded)}")
        lines += [f"runtime: {line}" for line in self.runtime_provided]
        if self.built_from_source:
            lines.append(f"built from source: {', '.join(self.built_from_source)}")
        lines += [
            f"size: {self.sizes}",
            *([f"verified: {self.verified.line()}"] if self.verified is not None else []),
            f"sha256: {self.sha256}",
            f"time: {self.seconds:.1f} s",
        ]
        if self.slim is not None:
            lines += self.slim.lines()
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """The result as JSON-ready data: what ``--json`` prints and what a container build reports to the host."""
        return {
            "zip": str(self.zip_path),
            "artifacts": str(self.artifacts_dir),
            "target": str(self.target),
            "installer": self.installer,
            "distributions": list(self.distributions),
            "excluded": list(self.excluded),
            "runtime_provided": list(self.runtime_provided),
            "built_from_source": list(self.built_from_source),
            "warnings": list(self.warnings),
            "unzipped_bytes": self.unzipped_bytes,
            "zipped_bytes": self.zipped_bytes,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
            "slim": self.slim.to_dict() if self.slim is not None else None,
            "verified": self.verified.to_dict() if self.verified is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LayerBuildResult:
        """The result :meth:`to_dict` described."""
        runtime, _, architecture = str(data["target"]).partition("/")

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        def number(key: str) -> float:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else 0.0

        return cls(
            target=LambdaTarget.parse(runtime, architecture),
            zip_path=Path(str(data["zip"])),
            artifacts_dir=Path(str(data["artifacts"])),
            installer=str(data["installer"]),
            distributions=strings("distributions"),
            excluded=strings("excluded"),
            runtime_provided=strings("runtime_provided"),
            built_from_source=strings("built_from_source"),
            warnings=strings("warnings"),
            unzipped_bytes=int(number("unzipped_bytes")),
            zipped_bytes=int(number("zipped_bytes")),
            sha256=str(data["sha256"]),
            seconds=number("seconds"),
            slim=SlimReport.from_dict(slim) if isinstance(slim := data.get("slim"), dict) else None,
            verified=Verified.from_dict(verified) if isinstance(verified := data.get("verified"), dict) else None,
        )


def sizes_text(unzipped: int, zipped: int) -> str:
    """An unzipped and a zipped size in the one unit that suits the first (KiB under a MiB, MiB above)."""
    if unzipped < 1024 * 1024:
        return f"{unzipped / 1024:.0f} KiB unzipped, {zipped / 1024:.0f} KiB zipped"
    mib = 1024 * 1024
    return f"{unzipped / mib:.1f} MiB unzipped, {zipped / mib:.1f} MiB zipped"
