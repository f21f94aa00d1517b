"""The layer's CycloneDX SBOM (JSON, spec 1.6), made with cyclonedx-python-lib from the layer report: one
``library`` component per distribution (its PyPI package URL, version, licence and origin), the layer itself as the
described ``application``, with its sha256.

cyclonedx-python-lib is a dependency of cdk-pip-layer (it is on every host); the Lambda build image does not have
it, so a container build's SBOM is written on the host, from the finished zip.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cyclonedx.model.component import Component

    from .report import DistributionReport, LayerReport

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
    from .report import report_from_json

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
