"""The checks of a layer stack: the layers one function uses, together, in the order Lambda extracts them into
``/opt`` (a later layer's files replace an earlier one's).

- the same distribution in two layers at different versions: an error (the function gets files of one version and
  metadata of the other); at the same version, a warning (the later copy only takes room);
- the same file in two layers: a warning naming the files;
- the layers' unzipped sizes together (and the function's own code, when known) against Lambda's 262,144,000 bytes:
  an error naming each layer's size;
- more than five layers: an error;
- a layer built for another runtime or architecture than the function's: an error.

The command line runs them on zips (``cdk-pip-layer verify TOP.zip --on-top-of BASE.zip``), the CDK construct on
the layers of each function at synth.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName

from cdk_pip_layer.engine.base_layer import BaseDistribution, BaseLayer
from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.findings import Finding, Severity, error, warning
from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.zip_reader import LayerArchive, Role, read_layer_file

from .inventory import read_inventory
from .report import LAMBDA_UNZIPPED_LIMIT, UNZIPPED_WARNING

# Lambda's limit of layers per function.
MAX_LAYERS = 5
# How many file names a warning about files in two layers lists.
_FILES_NAMED = 5


@dataclass(frozen=True)
class StackDistribution:
    name: NormalizedName
    display_name: str
    version: str
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackLayer:
    """One layer of a stack, as the checks see it.

    Attributes:
        label: how messages name it.
        distributions: what it holds.
        unzipped_bytes: its size unzipped, when known.
        files: the paths of its files (as extracted under ``/opt``), when known (a report does not list them).
        target: the runtime and architecture it was built for (``python3.12/x86_64``), when known.
    """

    label: str
    distributions: tuple[StackDistribution, ...]
    unzipped_bytes: int | None
    files: frozenset[str] | None = None
    target: str | None = None

    def base(self) -> BaseLayer:
        """What the layer holds, as a base to build on top of."""
        return BaseLayer(
            label=self.label,
            target=self.target,
            distributions=tuple(BaseDistribution(d.name, d.version, d.modules) for d in self.distributions),
        )


def read_layer_zip(
    path: Path,
    target: LambdaTarget,
    *,
    label: str | None = None,
    built_for: str | None = None,
    role: Role = "layer",
) -> StackLayer:
    """A layer zip as a member of a stack: its distributions (those in ``target``'s site directories), files and
    size. ``built_for``: the target it was built for, when the caller knows it (a zip does not say). ``role``: a
    base layer (another team's zip, say) is refused with one error when it could not be a layer."""
    with LayerArchive(path, role=role) as archive:
        inventory = read_inventory(archive, target)
        unreadable = next((d for d in inventory.distributions if d.record_error), None)
        if unreadable is not None and role == "base layer":  # what it provides cannot be known
            raise archive.refusal(
                f"has a RECORD that cannot be read: {unreadable.display_name} {unreadable.version}'s "
                f"({unreadable.record_error})"
            )
        files = frozenset(entry.path for entry in archive.safe("file", "symlink"))
        return StackLayer(
            label=label or str(path),
            distributions=tuple(
                StackDistribution(d.name, d.display_name, d.version, tuple(d.modules()))
                for d in inventory.distributions
            ),
            unzipped_bytes=archive.unzipped_bytes,
            files=files,
            target=built_for,
        )


def read_stack_layer(path: Path, target: LambdaTarget, *, role: Role = "layer") -> StackLayer:
    """A layer of a stack from its zip, or from its layer report (``*.json``: no file list, so no check of files
    in two layers). Either file is read within bounds (:mod:`~cdk_pip_layer.engine.zip_reader`)."""
    if path.suffix != ".json":
        return read_layer_zip(path, target, role=role)
    text = read_layer_file(path, role=role)
    base = BaseLayer.from_report(text, label=str(path))  # says what is wrong with an unreadable report
    try:
        unzipped = int(json.loads(text)["layer"]["unzipped_bytes"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInputError(
            f"The {role} report has no size ({exc})",
            subject=str(path),
            hint="give the layer.report.json a build wrote, or the layer's zip.",
        ) from None
    return StackLayer(
        label=base.label,
        distributions=tuple(StackDistribution(d.name, d.name, d.version) for d in base.distributions),
        unzipped_bytes=unzipped,
        target=base.target,
    )


@dataclass(frozen=True)
class StackCheck:
    """The outcome of :func:`check_stack`."""

    layers: tuple[StackLayer, ...]
    findings: tuple[Finding, ...]
    function_bytes: int | None
    combined_bytes: int | None  # the layers (and the function's code, when known); None when a size is unknown

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "layers": [
                {
                    "label": layer.label,
                    "unzipped_bytes": layer.unzipped_bytes,
                    "distributions": len(layer.distributions),
                }
                for layer in self.layers
            ],
            "function_bytes": self.function_bytes,
            "combined_unzipped_bytes": self.combined_bytes,
            "limit_unzipped_bytes": LAMBDA_UNZIPPED_LIMIT,
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }

    def summary(self) -> list[str]:
        order = " then ".join(layer.label for layer in self.layers)
        lines = [f"stack of {len(self.layers)} layers, in the order Lambda extracts them: {order}"]
        lines += [f"  {layer.label}: {_size(layer.unzipped_bytes)}" for layer in self.layers]
        if self.function_bytes is not None:
            lines.append(f"  function code: {_size(self.function_bytes)}")
        if self.combined_bytes is not None:
            share = 100 * self.combined_bytes / LAMBDA_UNZIPPED_LIMIT
            lines.append(
                f"  together: {self.combined_bytes:,} bytes unzipped of Lambda's {LAMBDA_UNZIPPED_LIMIT:,} "
                f"({share:.0f}%)"
            )
        lines += [str(f) for f in (*self.errors, *self.warnings)]
        return lines


def _size(value: int | None) -> str:
    return "size unknown" if value is None else f"{value:,} bytes unzipped"


def check_stack(
    layers: Sequence[StackLayer],
    *,
    runtime: str | None = None,
    architecture: str | None = None,
    function_bytes: int | None = None,
    layer_count: int | None = None,
) -> StackCheck:
    """Check ``layers`` as one function uses them, in the order Lambda extracts them (the function's order).

    ``runtime``, ``architecture``: the function's, when known; ``function_bytes``: its own code unzipped, when
    known; ``layer_count``: how many layers the function has in all (default ``len(layers)``: others may not be
    described here).
    """
    findings = [*_versions(layers), *_files(layers)]
    known = [layer.unzipped_bytes for layer in layers]
    combined = None
    if all(size is not None for size in known):
        combined = sum(size or 0 for size in known) + (function_bytes or 0)
        findings += _size_findings(layers, function_bytes, combined)
    count = len(layers) if layer_count is None else layer_count
    if count > MAX_LAYERS:
        findings.append(
            error(
                "stack-layers",
                "the function",
                f"uses {count} layers; Lambda allows {MAX_LAYERS}",
                "merge layers (one requirements file for several), or move a dependency into the function's code",
            )
        )
    findings += _targets(layers, runtime, architecture)
    return StackCheck(tuple(layers), tuple(findings), function_bytes, combined)


def _versions(layers: Sequence[StackLayer]) -> list[Finding]:
    out: list[Finding] = []
    for (i, lower), (j, upper) in itertools.combinations(enumerate(layers), 2):
        theirs = {d.name: d for d in upper.distributions}
        for dist in lower.distributions:
            other = theirs.get(dist.name)
            if other is None:
                continue
            if other.version != dist.version:
                out.append(
                    error(
                        "stack-versions",
                        dist.display_name,
                        f"{dist.version} in {lower.label} (layer {i + 1}) and {other.version} in {upper.label} "
                        f"(layer {j + 1}): Lambda extracts {upper.label} over {lower.label}, so the function gets a "
                        f"mixture of {dist.name} {dist.version} and {other.version}",
                        f"build {upper.label} on top of {lower.label} (on_top_of, --on-top-of), so that it uses "
                        f"{lower.label}'s {dist.name} {dist.version}; or give both the same version",
                    )
                )
            else:
                out.append(
                    warning(
                        "stack-versions",
                        dist.display_name,
                        f"{dist.version} is in both {lower.label} (layer {i + 1}) and {upper.label} (layer {j + 1}): "
                        "the later copy replaces the earlier one and only takes room",
                        f"build {upper.label} on top of {lower.label} (on_top_of, --on-top-of) to leave it out",
                    )
                )
    return out


def _files(layers: Sequence[StackLayer]) -> list[Finding]:
    out: list[Finding] = []
    for (i, lower), (j, upper) in itertools.combinations(enumerate(layers), 2):
        if lower.files is None or upper.files is None:
            continue
        both = sorted(lower.files & upper.files)
        if not both:
            continue
        named = ", ".join(both[:_FILES_NAMED])
        more = f" and {len(both) - _FILES_NAMED} more" if len(both) > _FILES_NAMED else ""
        out.append(
            warning(
                "stack-files",
                f"{lower.label} (layer {i + 1}) and {upper.label} (layer {j + 1})",
                f"{len(both)} file(s) in both, {upper.label}'s replacing {lower.label}'s: {named}{more}",
                "leave each file in one layer (build the later one on top of the earlier, or exclude what the other "
                "holds)",
            )
        )
    return out


def _size_findings(layers: Sequence[StackLayer], function_bytes: int | None, combined: int) -> list[Finding]:
    parts = [f"{layer.label} {layer.unzipped_bytes:,}" for layer in layers]
    if function_bytes is not None:
        parts.append(f"the function's code {function_bytes:,}")
    listed = "; ".join(parts)
    if combined > LAMBDA_UNZIPPED_LIMIT:
        return [
            error(
                "stack-size",
                "the function and its layers",
                f"are {combined:,} bytes unzipped together; Lambda allows {LAMBDA_UNZIPPED_LIMIT:,} (bytes: {listed})",
                "leave out what the runtime provides (boto3, botocore), what a base layer holds, or what the "
                "function does not import; or package the function as a container image (10 GB)",
            )
        ]
    if combined > UNZIPPED_WARNING:
        return [
            warning(
                "stack-size",
                "the function and its layers",
                f"are {combined:,} bytes unzipped together, close to Lambda's {LAMBDA_UNZIPPED_LIMIT:,} (bytes: "
                f"{listed})",
            )
        ]
    return []


def _targets(layers: Sequence[StackLayer], runtime: str | None, architecture: str | None) -> list[Finding]:
    out: list[Finding] = []
    for number, layer in enumerate(layers, start=1):
        if layer.target is None:
            continue
        built_runtime, _, built_architecture = layer.target.partition("/")
        wrong = [
            f"{what} {built} (the function's is {wanted})"
            for what, built, wanted in (
                ("runtime", built_runtime, runtime),
                ("architecture", built_architecture, architecture),
            )
            if wanted is not None and built != wanted
        ]
        if wrong:
            out.append(
                error(
                    "stack-target",
                    f"{layer.label} (layer {number})",
                    f"was built for {' and '.join(wrong)}: its wheels do not load there",
                    "give the function the layer built for its runtime and architecture (PipLambdaLayers builds one "
                    "per target)",
                )
            )
    return out
