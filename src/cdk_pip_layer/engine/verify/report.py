"""The layer report: what a layer ships (per distribution its version, size, licence and origin), its size against
Lambda's limits, and what the verifier found. Written next to ``layer.zip`` as ``layer.report.json``, with its
CycloneDX SBOM ``layer.cdx.json``, and printed in short by the command line.

The SBOM (JSON, spec 1.6) is made with cyclonedx-python-lib from the report: one ``library`` component per
distribution (its PyPI package URL, version, licence and origin), the layer itself as the described
``application``, with its sha256. cyclonedx-python-lib is a dependency of cdk-pip-layer (it is on every host); the
Lambda build image does not have it, so a container build's SBOM is written on the host, from the finished zip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cdk_pip_layer.engine.findings import Finding, Severity, printable
from cdk_pip_layer.engine.lambda_os import LAMBDA_UNZIPPED_LIMIT, UNZIPPED_WARNING, ZIPPED_DIRECT_UPLOAD_LIMIT
from cdk_pip_layer.engine.result import REPORT_FILE, SBOM_FILE
from cdk_pip_layer.engine.slim_report import SlimReport

from .size import MIB, mib

if TYPE_CHECKING:
    from cyclonedx.model.component import Component

REPORT_FORMAT = 1

__all__ = ["LAMBDA_UNZIPPED_LIMIT", "UNZIPPED_WARNING", "ZIPPED_DIRECT_UPLOAD_LIMIT", "LayerReport", "write_report"]


@dataclass(frozen=True)
class DistributionReport:
    name: str
    version: str
    unzipped_bytes: int
    files: int
    licence: str | None
    origin: str  # "wheel", "built from source" or "unknown"
    wheel_tags: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "unzipped_bytes": self.unzipped_bytes,
            "files": self.files,
            "licence": self.licence,
            "origin": self.origin,
            "wheel_tags": list(self.wheel_tags),
        }


@dataclass(frozen=True)
class LayerReport:
    """Everything the report file holds. ``findings`` are those not turned off; ``skipped`` maps a check that could
    not run here to the reason."""

    target: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    distributions: tuple[DistributionReport, ...]
    unowned_bytes: int  # files no distribution's RECORD claims (lib/, bin/, loose files)
    checks: tuple[str, ...]
    ignored: tuple[str, ...]
    skipped: Mapping[str, str]
    findings: tuple[Finding, ...]
    # What the build left out (the verifier reads the zip: what is not there is the build's to say).
    slim: SlimReport | None = None  # what slimming removed, when the build slimmed the layer
    excluded: tuple[str, ...] = ()  # the distributions left out (exclude, a base layer's), as pins
    runtime_provided: tuple[str, ...] = ()  # for exclude=[':runtime:']: what went or stayed, and why

    def with_build(
        self,
        *,
        slim: SlimReport | None = None,
        excluded: Sequence[str] = (),
        runtime_provided: Sequence[str] = (),
    ) -> LayerReport:
        """This report with what the build that made the layer left out."""
        return dataclasses.replace(self, slim=slim, excluded=tuple(excluded), runtime_provided=tuple(runtime_provided))

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "format": REPORT_FORMAT,
            "target": self.target,
            "layer": {
                "sha256": self.sha256,
                "zipped_bytes": self.zipped_bytes,
                "unzipped_bytes": self.unzipped_bytes,
                "files": self.files,
                "unowned_bytes": self.unowned_bytes,
            },
            "limits": {
                "unzipped_bytes": LAMBDA_UNZIPPED_LIMIT,
                "unzipped_warning_bytes": UNZIPPED_WARNING,
                "zipped_direct_upload_bytes": ZIPPED_DIRECT_UPLOAD_LIMIT,
                "unzipped_used": round(self.unzipped_bytes / LAMBDA_UNZIPPED_LIMIT, 4),
            },
            "distributions": [d.to_dict() for d in self.distributions],
            "verification": {
                "ok": not self.errors,
                "checks": list(self.checks),
                "ignored": list(self.ignored),
                "skipped": dict(sorted(self.skipped.items())),
                "errors": [f.to_dict() for f in self.errors],
                "warnings": [f.to_dict() for f in self.warnings],
            },
        }
        # Only when there is something to say: the report of a layer that left nothing out keeps its bytes.
        if self.excluded or self.runtime_provided:
            out["left_out"] = {"distributions": list(self.excluded), "runtime": list(self.runtime_provided)}
        if self.slim is not None:
            out["slim"] = self.slim.report_section()
        return out

    def to_json(self) -> str:
        """The report's canonical text (sorted keys): the same layer and findings give the same bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @property
    def digest(self) -> str:
        """sha256 of :meth:`to_json`: what the CDK construct records in the asset's metadata."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def short(self, *, largest: int = 10) -> list[str]:
        """The report in a few lines: the largest distributions, the total against the limit, what was skipped."""
        lines = [
            f"layer report: {len(self.distributions)} distributions, {self.files} files, "
            f"{self.unzipped_bytes / MIB:.1f} MiB unzipped of Lambda's {LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB "
            f"({100 * self.unzipped_bytes / LAMBDA_UNZIPPED_LIMIT:.0f}%), {self.zipped_bytes / MIB:.1f} MiB zipped"
        ]
        by_size = sorted(self.distributions, key=lambda d: (-d.unzipped_bytes, d.name))
        for dist in by_size[:largest]:
            lines.append(
                printable(
                    f"  {dist.name}=={dist.version}: {dist.unzipped_bytes / MIB:.1f} MiB, "
                    f"{dist.licence or 'licence unknown'}, "
                    f"{'origin unknown' if dist.origin == 'unknown' else dist.origin}"
                )
            )
        if len(by_size) > largest:
            rest = by_size[largest:]
            lines.append(
                f"  {len(rest)} smaller distributions: {sum(d.unzipped_bytes for d in rest) / MIB:.1f} MiB together"
            )
        if self.zipped_bytes > ZIPPED_DIRECT_UPLOAD_LIMIT:
            lines.append(
                f"  {self.zipped_bytes / MIB:.1f} MiB zipped: more than the {mib(ZIPPED_DIRECT_UPLOAD_LIMIT)} Lambda "
                "takes in a direct upload, so it goes through S3 (as CDK uploads it, and publish with --s3-bucket)"
            )
        lines += [printable(f"skipped {check}: {reason}") for check, reason in sorted(self.skipped.items())]
        return lines


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place (0644)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: LayerReport, directory: Path) -> list[Path]:
    """Write ``layer.report.json`` and, where the CycloneDX library is installed (every host; not the Lambda build
    image, whose host writes it), ``layer.cdx.json`` into ``directory``. Returns the files written."""
    written = [directory / REPORT_FILE]
    write_text_atomically(written[0], report.to_json())
    sbom = sbom_json(report)
    if sbom is not None:
        written.append(directory / SBOM_FILE)
        write_text_atomically(written[1], sbom)
    return written


def report_from_json(text: str) -> LayerReport:
    """The report :meth:`LayerReport.to_json` wrote (for the SBOM of a layer whose report was kept as a file)."""
    data = json.loads(text)
    layer, verification = data["layer"], data["verification"]
    findings = [
        Finding(f["check"], Severity(f["severity"]), f["subject"], f["problem"], f.get("hint", ""))
        for f in (*verification["errors"], *verification["warnings"])
    ]
    return LayerReport(
        target=data["target"],
        sha256=layer["sha256"],
        zipped_bytes=layer["zipped_bytes"],
        unzipped_bytes=layer["unzipped_bytes"],
        files=layer["files"],
        distributions=tuple(
            DistributionReport(
                name=d["name"],
                version=d["version"],
                unzipped_bytes=d["unzipped_bytes"],
                files=d["files"],
                licence=d["licence"],
                origin=d["origin"],
                wheel_tags=tuple(d["wheel_tags"]),
            )
            for d in data["distributions"]
        ),
        unowned_bytes=layer["unowned_bytes"],
        checks=tuple(verification["checks"]),
        ignored=tuple(verification["ignored"]),
        skipped=dict(verification["skipped"]),
        findings=tuple(findings),
        slim=SlimReport.from_dict(data["slim"]) if isinstance(data.get("slim"), dict) else None,
        excluded=tuple(data.get("left_out", {}).get("distributions", ())),
        runtime_provided=tuple(data.get("left_out", {}).get("runtime", ())),
    )


# --- the CycloneDX SBOM ---------------------------------------------------------------------------------------------

_NAMESPACE = uuid.UUID("7a0c0b8e-3d8f-4a44-9d37-3f0f4c0c1a55")


def sbom_unavailable() -> str | None:
    try:
        import cyclonedx  # noqa: F401
    except ImportError:
        return "cyclonedx-python-lib is not installed here"
    return None


def _timestamp() -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    return datetime.now(tz=timezone.utc)


def sbom_json_from_text(report_json: str) -> str | None:
    """The SBOM of a report read back from its JSON text (what a cached or container-built layer keeps)."""
    return sbom_json(report_from_json(report_json))


def sbom_json(report: LayerReport) -> str | None:
    """The SBOM as CycloneDX 1.6 JSON, or None when cyclonedx-python-lib is not installed here."""
    if sbom_unavailable():
        return None
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    layer = Component(
        name="lambda-layer",
        version=report.sha256[:12],
        type=ComponentType.APPLICATION,
        bom_ref="layer",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=report.sha256)],
        properties=[
            Property(name="cdk-pip-layer:target", value=report.target),
            Property(name="cdk-pip-layer:unzipped-bytes", value=str(report.unzipped_bytes)),
        ],
    )
    bom = Bom(
        serial_number=uuid.uuid5(_NAMESPACE, report.sha256),
        metadata=BomMetaData(component=layer, timestamp=_timestamp()),
    )
    components = [_component(dist) for dist in report.distributions]
    for component in components:
        bom.components.add(component)
    bom.register_dependency(layer, components)
    return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"


def _component(dist: DistributionReport) -> Component:
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    purl = PackageURL(type="pypi", name=dist.name, version=dist.version)
    licences = [LicenseFactory().make_from_string(dist.licence)] if dist.licence else []
    return Component(
        name=dist.name,
        version=dist.version,
        type=ComponentType.LIBRARY,
        purl=purl,
        bom_ref=purl.to_string(),
        licenses=licences,
        properties=[
            Property(name="cdk-pip-layer:origin", value=dist.origin),
            Property(name="cdk-pip-layer:unzipped-bytes", value=str(dist.unzipped_bytes)),
        ],
    )
