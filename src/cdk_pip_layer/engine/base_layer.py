"""A base layer: a layer another one is built on top of (``on_top_of``), as the engine knows it.

Lambda extracts a function's layers into ``/opt`` in order, a later layer's files replacing an earlier one's. A
layer built on top of a base is resolved against the exact versions the base holds (they are the installer's
constraints) and holds none of the base's distributions: the function imports them from the base.

A :class:`BaseLayer` is plain data (what the base holds: each distribution's name and version, and the modules it
provides), so that it travels into the container build's request and enters the asset hash by its content, never
by a host path. It is read from the base's layer zip or from its layer report (``layer.report.json``), or given by
a construct of the same app (any object with a ``base_layer(target)`` method: :class:`BaseLayerSource`).
"""

from __future__ import annotations

import contextlib
import csv
import email.parser
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import InvalidInputError, LayerBuildError
from .lambda_os import LAYER_PYTHON
from .target import LambdaTarget
from .zip_reader import Entry, LayerArchive, read_layer_file

# The file a build writes the base layers' versions to, as the installer's constraints.
CONSTRAINTS_FILE = "on-top-of-constraints.txt"


@dataclass(frozen=True)
class BaseDistribution:
    """One distribution a base layer holds: its name, version, and the top-level modules it provides (empty when
    only its report was read: the name then stands for them)."""

    name: NormalizedName
    version: str
    modules: tuple[str, ...] = ()

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def provides(self) -> tuple[str, ...]:
        """The top-level modules it provides (its name, as a module name, when they are not known)."""
        return self.modules or (self.name.replace("-", "_"),)


@dataclass(frozen=True)
class BaseLayer:
    """What a base layer holds, as the engine needs it.

    Attributes:
        label: how messages name it: a construct's path, or the zip or report it was read from.
        target: the runtime and architecture it was built for (``python3.12/x86_64``), when known (a report and a
            construct say it; a zip alone does not).
        distributions: what it holds, sorted by name.
        unresolved: why its content is not known (a construct whose stack is not bundled in this synth); a layer
            cannot be built on top of it then.
    """

    label: str
    distributions: tuple[BaseDistribution, ...] = ()
    target: str | None = None
    unresolved: str | None = None
    # Why its file could not be read (see read_bases_later): raised as it is when a layer is built on top of it.
    error: LayerBuildError | None = field(default=None, compare=False, repr=False)

    def pins(self) -> dict[NormalizedName, str]:
        return {dist.name: dist.version for dist in self.distributions}

    def fingerprint(self) -> dict[str, Any]:
        """What the asset hash takes of it: the distributions and their versions (not its label, a host path)."""
        if self.unresolved is not None:
            return {"unresolved": self.label}
        return {"distributions": [dist.pin for dist in self.distributions]}

    def to_dict(self) -> dict[str, Any]:
        """As JSON (what the container build's request carries)."""
        return {
            "label": self.label,
            "target": self.target,
            "unresolved": self.unresolved,
            "distributions": [
                {"name": dist.name, "version": dist.version, "modules": list(dist.modules)}
                for dist in self.distributions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseLayer:
        """The base :meth:`to_dict` described."""
        try:
            return cls(
                label=str(data["label"]),
                target=str(data["target"]) if data.get("target") else None,
                unresolved=str(data["unresolved"]) if data.get("unresolved") else None,
                distributions=_sorted(
                    BaseDistribution(
                        canonicalize_name(str(item["name"])),
                        str(item["version"]),
                        tuple(str(m) for m in item.get("modules") or ()),
                    )
                    for item in data.get("distributions") or ()
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(
                f"A base layer description lacks {exc}",
                subject="on_top_of",
                hint="give the base layer's zip or its layer report (layer.report.json).",
            ) from None

    @classmethod
    def from_report(cls, text: str, *, label: str) -> BaseLayer:
        """The base a layer report (``layer.report.json``) describes."""
        try:
            data = json.loads(text)
            dists = [(canonicalize_name(str(d["name"])), str(d["version"])) for d in data["distributions"]]
            target = str(data["target"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise InvalidInputError(
                f"The base layer's report cannot be read ({exc})",
                subject=label,
                hint="give the layer.report.json a build wrote beside the base's layer.zip, or the zip itself.",
            ) from None
        return cls(label=label, target=target, distributions=_sorted(BaseDistribution(n, v) for n, v in dists))

    @classmethod
    def read(cls, path: str | os.PathLike[str], target: LambdaTarget) -> BaseLayer:
        """The base in a file: a layer report (``*.json``) or a layer zip (read for ``target``). The file is
        untrusted (another team's or app's): it is read as :mod:`~cdk_pip_layer.engine.zip_reader` reads a base,
        within bounds, and one that could not be a layer is refused naming it."""
        file = Path(path)
        if file.suffix == ".json":
            return cls.from_report(read_layer_file(file, role="base layer"), label=str(file))
        return cls(label=str(file), distributions=_sorted(_zip_distributions(file, target)))

    def describe(self) -> str:
        """The base in a few words, for messages."""
        where = f" ({self.target})" if self.target else ""
        return f"the base layer {self.label}{where}"


def _zip_distributions(path: Path, target: LambdaTarget) -> list[BaseDistribution]:
    """The distributions in the site directories of a layer zip (``python/``, ``python/lib/python3.X/site-packages/``):
    name and version from each METADATA, top-level modules from each RECORD. Only those small files are read."""
    sites = (LAYER_PYTHON, "python/lib/python{}.{}/site-packages/".format(*target.python_version))
    found: list[BaseDistribution] = []
    with LayerArchive(path, role="base layer") as archive:
        members = {entry.path: entry for entry in archive.safe("file")}
        for name in sorted(members):
            match = _DIST_INFO.match(name)
            if match is None or match["site"] not in sites:
                continue
            headers = email.parser.HeaderParser().parsestr(_small(archive, members[name]))
            if not headers.get("Name") or not headers.get("Version"):
                continue
            record = members.get(f"{match['site']}{match['dir']}/RECORD")
            rows = csv.reader(io.StringIO(_small(archive, record))) if record is not None else ()
            try:
                modules = _top_level(row[0] for row in rows if row)
            except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL on Python 3.10
                raise archive.refusal(f"has a RECORD that cannot be read: {record and record.path} ({exc})") from None
            found.append(
                BaseDistribution(
                    canonicalize_name(str(headers["Name"]).strip()), str(headers["Version"]).strip(), modules
                )
            )
    return found


_DIST_INFO = re.compile(r"^(?P<site>(?:.*/)?)(?P<dir>[^/]+\.dist-info)/METADATA$")
_MODULE_FILE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_-]+)?\.(?:py|so|pyc)$")


def _small(archive: LayerArchive, entry: Entry | None) -> str:
    """A METADATA or RECORD of the base, whole (the archive refused a base with larger ones, and one that cannot be
    read is its error)."""
    return archive.read_metadata(entry) if entry is not None else ""


def _top_level(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level modules and packages RECORD paths (relative to a site directory) provide."""
    out: set[str] = set()
    for path in paths:
        head, slash, _ = path.partition("/")
        if slash:
            if head.isidentifier():  # a package (a .dist-info, .data or .libs directory is no identifier)
                out.add(head)
        elif (found := _MODULE_FILE.match(head)) and found["name"] != "__init__":
            out.add(found["name"])
    return tuple(sorted(out))


@runtime_checkable
class BaseLayerSource(Protocol):
    """Anything that can say what it holds as a base layer for a target: a construct of the same app."""

    def base_layer(self, target: LambdaTarget) -> BaseLayer: ...


def _sorted(dists: Iterable[BaseDistribution]) -> tuple[BaseDistribution, ...]:
    return tuple(sorted(dists, key=lambda dist: dist.name))


def parse_bases(values: object, target: LambdaTarget) -> tuple[BaseLayer, ...]:
    """``on_top_of`` checked: each base given as a :class:`BaseLayer`, its :meth:`~BaseLayer.to_dict` mapping, the
    path of its zip or report, or a :class:`BaseLayerSource`; built for ``target`` (when it says), and no
    distribution in two bases at different versions."""
    if values is None:
        return ()
    items = [values] if isinstance(values, (str, os.PathLike, BaseLayer, Mapping, BaseLayerSource)) else values
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Iterable):
        raise _not_a_base(values)
    bases = tuple(_base(item, target) for item in items)
    for base in bases:
        if base.target is not None and base.target != str(target):
            raise InvalidInputError(
                f"{base.describe()} was built for {base.target}, this layer is for {target}",
                subject="on_top_of",
                hint=f"build the base for {target} too, and put this layer on top of that one.",
            )
    _check_between(bases)
    return bases


def _base(item: object, target: LambdaTarget) -> BaseLayer:
    if isinstance(item, BaseLayer):
        return item
    if isinstance(item, Mapping):
        return BaseLayer.from_dict(item)
    if isinstance(item, (str, os.PathLike)) and str(item):
        return BaseLayer.read(item, target)
    if isinstance(item, BaseLayerSource):
        return item.base_layer(target)
    raise _not_a_base(item)


def _not_a_base(value: object) -> InvalidInputError:
    return InvalidInputError(
        f"A base layer must be a layer of this app, a layer zip or a layer report, not {type(value).__name__}",
        subject="on_top_of",
        hint="pass on_top_of=[base_layer] (a PipLambdaLayer built earlier in the app), or the path of a base's "
        "layer.zip or layer.report.json (--on-top-of on the command line).",
    )


def _check_between(bases: Sequence[BaseLayer]) -> None:
    """Two bases holding one distribution at different versions cannot both be right for the layer on top."""
    seen: dict[NormalizedName, tuple[str, BaseLayer]] = {}
    for base in bases:
        for dist in base.distributions:
            earlier = seen.setdefault(dist.name, (dist.version, base))
            if earlier[0] != dist.version:
                raise InvalidInputError(
                    f"The base layers disagree on {dist.name}: {earlier[0]} in {earlier[1].label}, {dist.version} "
                    f"in {base.label}",
                    subject="on_top_of",
                    package=dist.name,
                    hint="build one base on top of the other, or give them the same version.",
                )


# --- building on top of bases ---------------------------------------------------------------------------------------


def base_pins(bases: Sequence[BaseLayer]) -> dict[NormalizedName, tuple[str, BaseLayer]]:
    """Every distribution the bases hold: its version and the base that holds it."""
    out: dict[NormalizedName, tuple[str, BaseLayer]] = {}
    for base in bases:
        for dist in base.distributions:
            out.setdefault(dist.name, (dist.version, base))
    return out


def read_bases_later(values: object, target: LambdaTarget) -> object:
    """``on_top_of`` for a construct: each base file read now, and one that cannot be read kept as a base whose
    :attr:`~BaseLayer.error` is raised when the layer is built (:func:`raise_unreadable`). So a bad base zip is the
    layer's one error where CDK bundles it, as a requirements file that cannot be read is, and fails nothing where
    CDK does not (``cdk ls``, ``cdk destroy``, ``--exclusively``). Anything else is left to :func:`parse_bases`."""
    if isinstance(values, (str, os.PathLike)):
        values = [values]
    if not isinstance(values, (list, tuple)):
        return values
    return [_read_or_keep_error(item, target) for item in values]


def _read_or_keep_error(item: object, target: LambdaTarget) -> object:
    if not isinstance(item, (str, os.PathLike)) or not str(item):
        return item
    try:
        return BaseLayer.read(item, target)
    except InvalidInputError as exc:
        return BaseLayer(label=str(item), unresolved=exc.what, error=exc.with_traceback(None))


def raise_unreadable(bases: Sequence[BaseLayer]) -> None:
    """Raise the error of the first base whose file could not be read (see :func:`read_bases_later`)."""
    for base in bases:
        if base.error is not None:
            raise base.error


def check_resolved(bases: Sequence[BaseLayer], *, subject: str) -> None:
    """Refuse to build on top of a base whose content is not known (or whose file could not be read)."""
    raise_unreadable(bases)
    for base in bases:
        if base.unresolved is not None:
            raise InvalidInputError(
                f"What {base.describe()} holds is not known: {base.unresolved}",
                subject=subject,
                hint="synthesize the base layer's stack in the same run (CDK bundles only the stacks it deploys: "
                "drop --exclusively), or pass the base's layer report (layer.report.json) or zip instead.",
            )


def check_requirements(
    requirements: Iterable[tuple[Requirement, str]], bases: Sequence[BaseLayer], target: LambdaTarget, *, subject: str
) -> None:
    """Refuse a requirement (or constraint) that no version a base holds satisfies: the installer would only say
    that the versions conflict. ``requirements``: each requirement with where it was written."""
    pins = base_pins(bases)
    environment = dict(target.marker_environment)
    for requirement, where in requirements:
        held = pins.get(canonicalize_name(requirement.name))
        if held is None or not _applies(requirement, environment):
            continue
        version, base = held
        if not _admits(requirement, version):
            asked = str(requirement.specifier) or "a direct reference"
            if requirement.url:
                asked = f"@ {requirement.url}"
            raise InvalidInputError(
                f"{requirement.name}{asked} conflicts with {base.describe()}, which holds {requirement.name} {version}",
                subject=subject,
                package=canonicalize_name(requirement.name),
                details=[
                    f"{where}: {requirement}",
                    f"a layer on top of a base resolves against the base's versions: the function imports "
                    f"{requirement.name} {version} from {base.label}",
                ],
                hint=f"let {requirement.name} follow the base: drop the version from the requirement, or ask for "
                f"one {version} satisfies (a lock file: lock again with {requirement.name}=={version}); or build "
                f"{base.label} with {requirement.name}{asked} instead.",
            )


def _applies(requirement: Requirement, environment: Mapping[str, str]) -> bool:
    if requirement.marker is None:
        return True
    try:
        return bool(requirement.marker.evaluate({**environment, "extra": ""}))
    except Exception:  # a marker that cannot be evaluated is the installer's to judge
        return True


def _admits(requirement: Requirement, version: str) -> bool:
    if requirement.url:
        return False  # a direct reference names a file, not the base's release
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return requirement.specifier.contains(version, prereleases=True)


def write_constraints(bases: Sequence[BaseLayer], directory: Path) -> Path | None:
    """The bases' versions as a constraints file in ``directory`` (for ``--constraint``), or None without bases."""
    pins = base_pins(bases)
    if not pins:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONSTRAINTS_FILE
    lines = [f"# The versions of the base layers (on_top_of): {', '.join(b.label for b in bases)}"]
    lines += [f"{name}=={version}" for name, (version, _) in sorted(pins.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def constraint_args(bases: Sequence[BaseLayer], directory: Path) -> tuple[str, ...]:
    """The installer arguments that hold a resolution to the bases' versions (pip's and uv's ``--constraint``),
    the constraints file written into ``directory``; none without bases. The file is named by its absolute path:
    the installer runs in the requirements' directory, not the caller's (``-o build/team`` is relative to the
    caller's)."""
    path = write_constraints(bases, directory)
    return ("--constraint", str(path.absolute())) if path is not None else ()


def check_installed(
    installed: Iterable[tuple[NormalizedName, str]], bases: Sequence[BaseLayer], *, subject: str
) -> None:
    """After the install: every distribution the bases hold is in the version they hold (the installer was told),
    else the layer would not fit on its base."""
    pins = base_pins(bases)
    for name, version in installed:
        held = pins.get(name)
        if held is not None and _version(held[0]) != _version(version):
            raise InvalidInputError(
                f"{name} {version} was installed, but {held[1].describe()} holds {name} {held[0]}",
                subject=subject,
                package=name,
                hint=f"pin {name}=={held[0]} in the requirements, or build {held[1].label} with {name} {version}.",
            )


def _version(text: str) -> Version | str:
    try:
        return Version(text)
    except InvalidVersion:
        return text


def with_base_note(error: LayerBuildError, bases: Sequence[BaseLayer]) -> LayerBuildError:
    """An installer's failure, with the base versions it names (they were constraints) said as such."""
    text = "\n".join([error.what, *error.details]).lower()
    named = [
        f"{name}=={version} is held by {base.label}"
        for name, (version, base) in sorted(base_pins(bases).items())
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text.replace("_", "-"))
    ]
    if not named:
        return error
    error.details = (*error.details, f"the base layers' versions were constraints: {'; '.join(named)}")
    return error


def provided_modules(bases: Sequence[BaseLayer]) -> dict[str, str]:
    """Top-level module -> which base provides it (``requests 2.31.0 in Platform/Base``)."""
    out: dict[str, str] = {}
    for base in bases:
        for dist in base.distributions:
            for module in dist.provides():
                out.setdefault(module, f"{dist.name} {dist.version} in {base.label}")
    return out


@contextlib.contextmanager
def noting_bases(bases: Sequence[BaseLayer]) -> Iterator[None]:
    """Around an install on top of ``bases``: its failure says which base versions it was held to."""
    try:
        yield
    except LayerBuildError as exc:
        if bases:
            with_base_note(exc, bases)
        raise
