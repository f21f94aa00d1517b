"""What to build, and where: the one declaration of a layer build's options.

:class:`LayerBuildOptions` says what to build (the requirements, the target, what to leave out, how to install and
check it); :class:`BuildSettings` says where to build it and with which caches. Every front door takes its options
from these two: the constructs, :func:`~cdk_pip_layer.build_layer`, both builders, the command line's flags, the
container build's request (``build.json``) and the asset hash. Each field carries its own declaration
(:class:`Option`, in the field's metadata): its documentation, its command-line flags, whether it travels into the
build image, and how it enters the asset hash. The keyword arguments a front door takes are :class:`LayerArgs`
(and :class:`SettingsArgs`), checked against the fields by a test.

A new option is a field here, its entry in the keyword arguments and its check in ``parse``, and the code that
uses it; nothing that merely relays it changes.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from packaging.utils import NormalizedName, canonicalize_name

from .base_layer import BaseLayer, BaseLayerSource, parse_bases
from .errors import InvalidInputError
from .findings import parse_ignore
from .index import IndexSettings
from .lambda_os import RUNTIME_PRESET
from .layer_globs import check_globs
from .redact import strip_userinfo
from .target import SUPPORTED_RUNTIMES, Architecture, LambdaTarget

# The names mypy checks a runtime and an architecture against (aliases such as "amd64" are still parsed).
Runtime = Literal["python3.10", "python3.11", "python3.12", "python3.13", "python3.14"]
ArchitectureName = Literal["x86_64", "arm64"]
InstallerName = Literal["auto", "pip", "uv"]
BundlingName = Literal["auto", "local", "docker"]


class InstallerChoice(str, enum.Enum):
    """Which program installs the wheels.

    ``auto``: uv where it gives the layer pip would give (checked after it ran), else pip when a Python of the
    runtime's exact version runs on the target's machine. ``pip`` or ``uv`` force one of them.
    """

    AUTO = "auto"
    PIP = "pip"
    UV = "uv"

    @classmethod
    def parse(cls, value: InstallerChoice | str) -> InstallerChoice:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(
                f"Unknown installer {value!r}",
                subject="installer",
                hint=f"use one of {', '.join(INSTALLER_CHOICES)}.",
            ) from None


INSTALLER_CHOICES: tuple[str, ...] = tuple(choice.value for choice in InstallerChoice)


class SandboxKind(str, enum.Enum):
    """Which sandbox the smoke import runs in (see the module's documentation)."""

    AUTO = "auto"
    BUBBLEWRAP = "bubblewrap"
    USER = "user"
    NONE = "none"

    @classmethod
    def parse(cls, value: SandboxKind | str) -> SandboxKind:
        if isinstance(value, SandboxKind):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidInputError(
                f"Unknown smoke import sandbox {value!r}",
                subject="import sandbox",
                hint="use 'auto' (the strongest this host offers), 'bubblewrap', 'user' (root only) or 'none' (the "
                "layer's code runs unconfined).",
            ) from None


SandboxName = Literal["auto", "bubblewrap", "user", "none"]


class BundlingMode(str, enum.Enum):
    """Where the layer is built.

    ``auto`` (default): locally when this host can build for the target, else in the Lambda build image (Docker).
    ``local``: locally only; a target this host cannot build for is an error. ``docker``: always in the Lambda
    build image.
    """

    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"

    @classmethod
    def parse(cls, value: BundlingMode | str) -> BundlingMode:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(
                f"Unknown bundling mode {value!r}",
                subject="bundling",
                hint="use 'auto' (local first, Docker when a local build is impossible), 'local' or 'docker'.",
            ) from None


# Options the engine sets itself; a user passing them would silently break the target selection, write outside
# the build, or bring back byte-code. pip also takes any unambiguous abbreviation of a long option (--platf), and
# short options with their value attached (-t/dir), so those are refused too.
_RESERVED_LONG = (
    "--target", "--platform", "--python-version", "--abi", "--implementation", "--only-binary",
    "--python-platform", "--prefix", "--root", "--user", "--index-url", "--extra-index-url", "--index",
    "--default-index", "--compile", "--link-mode", "--system", "--python",
)  # fmt: skip
_RESERVED_SHORT = ("-t", "-i", "-p")
# Real options that happen to be abbreviations of reserved ones.
_ALLOWED_PREFIXES = ("--pre",)


NO_BINARY_HINT = (
    "remove it: a layer is built from wheels for its target, and cdk-pip-layer builds a wheel from a package's "
    "source distribution itself where no wheel fits the target (in the Lambda build image when it has native code)."
)


def no_binary_error(names: str, where: str) -> InvalidInputError:
    """The error for ``--no-binary`` naming ``names``: it would have the installer build them from source for the
    host (uv does; pip refuses it beside the target's --platform)."""
    return InvalidInputError(
        f"--no-binary {names}: building from source is not the installer's to do here",
        subject=where,
        details=["it would build for this host (its Python, glibc and machine), not for the Lambda target"],
        hint=NO_BINARY_HINT,
    )


def _no_binary_argument(args: Sequence[str]) -> str | None:
    """The names of a ``--no-binary`` among installer arguments (pip's abbreviations too), or None (none, or
    ``:none:``, which changes nothing)."""
    for pos, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if len(name) >= len("--no-bi") and "--no-binary".startswith(name):
            value = value if eq else (args[pos + 1] if pos + 1 < len(args) else "")
            if value != ":none:":
                return value or "(no value)"
    return None


def reserved_argument(arg: str) -> str | None:
    """The reserved option ``arg`` names (exactly or abbreviated), or None."""
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        if name in _RESERVED_LONG:
            return name
        if len(name) > 3 and name not in _ALLOWED_PREFIXES:
            return next((option for option in _RESERVED_LONG if option.startswith(name)), None)
        return None
    if name.startswith("-") and not name.startswith("--"):
        return next((option for option in _RESERVED_SHORT if name.startswith(option)), None)
    return None


# --- the declaration ------------------------------------------------------------------------------------------------


class Hashed(enum.Enum):
    """How an option enters the asset hash (the input hash: see :mod:`cdk_pip_layer.engine.inputs.input_hash`)."""

    ALWAYS = "always"  # under its name, always
    WHEN_SET = "when set"  # under its name, only when it differs from its default: a new option changes no hash
    LOCK = "lock"  # for a lock file, in the lock's part of the document, always
    LOCK_WHEN_SET = "lock, when set"  # for a lock file, in the lock's part, only when it differs from its default
    NEVER = "never"  # it does not change what the layer holds (how it is built, where, by which program)


@dataclass(frozen=True)
class Flag:
    """A command-line flag of an option.

    ``kind``: ``value`` (one value), ``repeat`` (repeatable, a list), ``on`` / ``off`` (a switch that sets the
    option to True / False), ``path`` (one value, a path), ``paths`` (repeatable, paths). ``dest``: the keyword
    argument it fills (the option's name by default).
    """

    names: tuple[str, ...]
    help: str
    kind: Literal["value", "repeat", "on", "off", "path", "paths"] = "value"
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    dest: str | None = None


@dataclass(frozen=True)
class Option:
    """The declaration of one option (a field's metadata).

    Attributes:
        doc: what it is, for the documentation of every front door.
        flags: its command-line flags.
        hashed: how it enters the asset hash.
        travels: whether the container build's request (``build.json``) carries it; a host-only option does not.
        public: False for an option the engine sets itself (the build in the image), which no front door takes.
    """

    doc: str
    flags: tuple[Flag, ...] = ()
    hashed: Hashed = Hashed.WHEN_SET
    travels: bool = True
    public: bool = True


def option(default: Any = MISSING, *, default_factory: Any = MISSING, **declaration: Any) -> Any:
    """A dataclass field declared as an option (see :class:`Option`)."""
    metadata = {"option": Option(**declaration)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(cls: type) -> Iterator[tuple[Field[Any], Option]]:
    """The fields of an options class with their declarations, in order."""
    for item in fields(cls):
        yield item, item.metadata["option"]


def _default(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING


def _plain(value: Any, *, hashing: bool = False) -> Any:
    """A value as JSON: paths as strings, enums by value, tuples as lists, index settings without credentials; a
    base layer as its data, or for the hash (``hashing``) as what it holds."""
    if isinstance(value, IndexSettings):
        return value.fingerprint()
    if isinstance(value, BaseLayer):
        return value.fingerprint() if hashing else value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item, hashing=hashing) for item in value]
    return value


def _without_userinfo(value: Any) -> Any:
    """``value`` with the user info of every URL in its strings left out (what an asset hash may hold)."""
    if isinstance(value, str):
        return strip_userinfo(value)
    if isinstance(value, list):
        return [_without_userinfo(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_userinfo(item) for key, item in value.items()}
    return value


def _arguments(name: str, value: Any, *, hashing: bool = False) -> dict[str, Any]:
    """An option's value as the keyword arguments that make it again (the target is a runtime and an
    architecture); ``hashing``: as the asset hash takes it."""
    if isinstance(value, LambdaTarget):
        return {"runtime": value.runtime, "architecture": value.architecture.value}
    return {name: _plain(value, hashing=hashing)}


@dataclass(frozen=True, kw_only=True)
class LayerBuildOptions:
    """What to build. Made by :meth:`parse`, which checks every value and gives each field its default; every
    field's documentation is its declaration (``LayerBuildOptions.describe()`` lists them)."""

    requirements: Path = option(
        doc="the requirements file (its -r/-c includes are followed and hashed), or a lock file, told apart by its "
        "name: pylock.toml (or pylock.<name>.toml), uv.lock, poetry.lock (each of the last two with its "
        "pyproject.toml beside it), Pipfile.lock",
        flags=(
            Flag(
                ("--requirements", "-r"),
                "the requirements file, or a lock file: pylock.toml, uv.lock, poetry.lock, Pipfile.lock",
                kind="path",
            ),
        ),
        hashed=Hashed.NEVER,  # its content is hashed (inputs.input_hash), never its path
    )
    target: LambdaTarget = option(
        doc="the Lambda runtime (python3.10 … python3.14, default python3.12) and architecture (x86_64, the "
        "default, or arm64)",
        flags=(
            Flag(("--runtime",), f"one of {', '.join(SUPPORTED_RUNTIMES)} (default: python3.12)"),
            Flag(("--architecture",), "x86_64 (default) or arm64"),
        ),
        hashed=Hashed.ALWAYS,
    )
    exclude: tuple[NormalizedName, ...] = option(
        (),
        doc="distributions to leave out, e.g. ('boto3', 'botocore'): removed by the files their RECORD lists; "
        "their dependencies stay. ':runtime:' leaves out what the Lambda runtime provides (boto3, botocore, "
        "s3transfer, jmespath, python-dateutil, six, urllib3) unless a requirement needs another version",
        flags=(
            Flag(
                ("--exclude",),
                "a distribution to leave out (repeatable), e.g. boto3; :runtime: for what the Lambda runtime provides",
                "repeat",
                "NAME",
            ),
        ),
        hashed=Hashed.ALWAYS,
    )
    index: IndexSettings = option(
        default_factory=IndexSettings,
        doc="private index settings (IndexSettings): credentials reach the installer, never a message, the "
        "template, the asset hash or a file left behind",
        flags=(
            Flag(("--index-url",), "the package index (may hold credentials; never printed)", dest="index_url"),
            Flag(
                ("--extra-index-url",), "another package index (repeatable)", "repeat", "URL", dest="extra_index_urls"
            ),
            Flag(
                ("--trusted-host",),
                "a host whose TLS certificate is not checked (repeatable)",
                "repeat",
                "HOST",
                dest="trusted_hosts",
            ),
        ),
        hashed=Hashed.ALWAYS,
    )
    installer: InstallerChoice = option(
        InstallerChoice.AUTO,
        doc="auto (uv where it gives the layer pip would give, checked after it ran, else pip), pip or uv",
        flags=(
            Flag(
                ("--installer",),
                "auto (default): uv where it gives the layer pip would, else pip; or force pip / uv",
                choices=("auto", "pip", "uv"),
            ),
        ),
        hashed=Hashed.NEVER,  # pip and uv give the same layer
    )
    python_executable: str | None = option(
        None,
        doc="the interpreter that runs pip, when pip runs on this host (default: one of the runtime's version, found "
        "on PATH, in pyenv or among uv's Pythons)",
        flags=(
            Flag(
                ("--python",),
                "the interpreter to run pip with, when pip runs (local builds; default: searched)",
                "path",
                "PATH",
            ),
        ),
        hashed=Hashed.NEVER,
        travels=False,  # a path of this host; the build image's Python is the target's own
    )
    extra_installer_args: tuple[str, ...] = option(
        (),
        doc="more arguments for pip or uv, e.g. ('--pre',); options the engine sets itself (--target, --platform, "
        "index URLs, …) are refused; a relative path in one is resolved from the requirements file's directory, "
        "where the installer runs (as the paths in the file are)",
        flags=(
            Flag(
                ("--installer-arg",),
                "an extra argument for pip/uv (repeatable), e.g. --installer-arg=--pre; a relative path in it is "
                "resolved from the requirements file's directory",
                "repeat",
                "ARG",
            ),
        ),
        hashed=Hashed.ALWAYS,
    )
    verify: bool = option(
        True,
        doc="check the finished layer before it ships: wheel tags, ELF files, dependencies, Requires-Python, "
        "RECORD, byte-code, permissions, size, and a smoke import",
        flags=(Flag(("--no-verify",), "skip the checks of the built layer", "off"),),
        hashed=Hashed.ALWAYS,
    )
    import_sandbox: SandboxKind = option(
        SandboxKind.AUTO,
        doc="where the smoke import runs the layer's code: auto (bubblewrap, else a user id of its own when root, "
        "else skipped with a warning), bubblewrap, user, or none (unconfined: the user's opt-in; see "
        "docs/explanation/smoke-import-sandbox.md)",
        flags=(
            Flag(
                ("--import-sandbox",),
                "the smoke import's sandbox: auto (default), bubblewrap, user, or none (unconfined)",
                choices=("auto", "bubblewrap", "user", "none"),
            ),
        ),
        hashed=Hashed.NEVER,  # where the check runs, not what the layer holds
    )
    verify_ignore: tuple[str, ...] = option(
        (),
        doc="checks to turn off by name, e.g. ('glibc',) (see cdk_pip_layer.engine.findings.CHECKS)",
        flags=(Flag(("--ignore",), "turn one check of the layer off (repeatable)", "repeat", "CHECK"),),
    )
    groups: tuple[str, ...] = option(
        (),
        doc="for a lock file: dependency groups to install besides the project's own dependencies (uv's groups, "
        "Poetry's groups besides main, a Pipfile.lock's sections besides default, a pylock.toml's dependency "
        "groups instead of its default-groups)",
        flags=(
            Flag(
                ("--group",),
                "for a lock file: a dependency group to install too (repeatable), e.g. a Poetry group besides main",
                "repeat",
                "NAME",
            ),
        ),
        hashed=Hashed.LOCK,
    )
    member: str | None = option(
        None,
        doc="for a uv workspace's uv.lock: the member whose dependencies the layer holds (default: the project "
        "of the pyproject.toml beside the lock)",
        flags=(Flag(("--member",), "for a uv workspace's uv.lock: the member to build for", metavar="NAME"),),
        hashed=Hashed.LOCK,
    )
    only_groups: bool = option(
        False,
        doc="for a lock file: install the groups alone, without the project's own dependencies (Poetry's --only, "
        "for a project with one group per function)",
        flags=(Flag(("--only-groups",), "for a lock file: the --group groups alone, without the main ones", "on"),),
        hashed=Hashed.LOCK_WHEN_SET,
    )
    slim: bool = option(
        False,
        doc="remove what the runtime never reads (test suites inside packages, type stubs, C and Cython sources, docs "
        "and examples folders inside packages, debug information of native libraries), proven by a smoke import "
        "(see docs/explanation/slim-layers.md)",
        flags=(Flag(("--slim",), "remove what the runtime never reads (tests, stubs, sources, debug info)", "on"),),
    )
    slim_keep: tuple[str, ...] = option(
        (),
        doc="globs (relative to python/) that slimming never touches, e.g. ('pkg/tests/fixtures/**',)",
        flags=(
            Flag(
                ("--slim-keep",), "a glob (relative to python/) slimming never touches (repeatable)", "repeat", "GLOB"
            ),
        ),
    )
    slim_remove: tuple[str, ...] = option(
        (),
        doc="globs of further files for slimming to remove (never a .dist-info, a licence text or a module a kept "
        "module imports)",
        flags=(
            Flag(("--slim-remove",), "a glob of further files for slimming to remove (repeatable)", "repeat", "GLOB"),
        ),
    )
    on_top_of: tuple[BaseLayer, ...] = option(
        (),
        doc="base layers this one goes on top of, in the order a function lists them (a PipLambdaLayer built "
        "earlier in the app, or the path of a base's layer.zip or layer.report.json): the layer is resolved "
        "against the versions they hold and holds none of their distributions; a requirement that conflicts "
        "with a base's version is refused",
        flags=(
            Flag(
                ("--on-top-of",),
                "a base layer's zip or layer.report.json (repeatable, in the function's order): resolve against "
                "its versions and leave its distributions out",
                "paths",
                "ZIP",
            ),
        ),
        hashed=Hashed.WHEN_SET,  # by what the bases hold (their distributions and versions), never their paths
    )
    native_builds: bool = option(
        False,
        doc="build source distributions with native code and accept linux_<machine> wheels: right only inside the "
        "target's own build image, where the container build sets it",
        hashed=Hashed.NEVER,
        travels=False,
        public=False,
    )
    uv_executable: str | None = option(
        None,
        doc="the uv binary (default: the uv package's, else uv on PATH); the container build sets the host's uv, "
        "staged with the input, when it runs in the image",
        hashed=Hashed.NEVER,
        travels=False,
        public=False,
    )

    @classmethod
    def parse(cls, **args: Any) -> LayerBuildOptions:
        """Check loose input (strings, lists, paths, as :class:`LayerArgs` names them) and make the options value.

        Raises :class:`InvalidInputError` (or :class:`UnsupportedTargetError`) naming the value that is wrong, also
        for an argument that is no option.
        """
        unknown = sorted(set(args) - set(_LAYER_ARGS))
        if unknown:
            raise InvalidInputError(
                f"Unknown build option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                subject="build options",
                hint=f"the options are {', '.join(_LAYER_ARGS)}.",
            )
        target = LambdaTarget.parse(args.get("runtime", "python3.12"), args.get("architecture", "x86_64"))
        return cls(
            requirements=_requirements(args.get("requirements")),
            target=target,
            exclude=_names(args.get("exclude", ())),
            index=_index(args.get("index")),
            installer=InstallerChoice.parse(args.get("installer", InstallerChoice.AUTO)),
            python_executable=_optional_path(args.get("python_executable"), "python_executable"),
            extra_installer_args=_installer_args(args.get("extra_installer_args", ())),
            verify=bool(args.get("verify", True)),
            verify_ignore=parse_ignore(args.get("verify_ignore", ())),
            import_sandbox=SandboxKind.parse(args.get("import_sandbox", SandboxKind.AUTO)),
            groups=_lock_names(args.get("groups", ()), "groups"),
            member=_member(args.get("member")),
            slim=bool(args.get("slim", False)),
            slim_keep=_globs(args.get("slim_keep", ()), "slim_keep"),
            slim_remove=_globs(args.get("slim_remove", ()), "slim_remove"),
            only_groups=_only_groups(args),
            on_top_of=parse_bases(args.get("on_top_of"), target),
            native_builds=bool(args.get("native_builds", False)),
            uv_executable=_optional_path(args.get("uv_executable"), "uv_executable"),
        )

    @property
    def runtime(self) -> str:
        return self.target.runtime

    @property
    def architecture(self) -> str:
        return self.target.architecture.value

    def to_dict(self) -> dict[str, Any]:
        """The options that travel into the build image, as JSON-ready keyword arguments of :meth:`parse` (index
        URLs without their credentials: those travel in the container's environment). Host-only options
        (:data:`HOST_ONLY`) stay here; every other option travels without being named."""
        out: dict[str, Any] = {}
        for item, declaration in declared(type(self)):
            if declaration.travels:
                out.update(_arguments(item.name, getattr(self, item.name)))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> LayerBuildOptions:
        """The options :meth:`to_dict` described (``overrides`` replace what it said, e.g. the requirements path
        inside the image). The index's URLs are left to the environment, which carries them with their
        credentials; its trusted hosts come from ``data``."""
        args = {key: value for key, value in data.items() if key in _LAYER_ARGS}
        index = args.get("index")
        if isinstance(index, Mapping):
            args["index"] = IndexSettings(trusted_hosts=tuple(index.get("trusted_hosts") or ()))
        return cls.parse(**{**args, **overrides})

    def hash_document(self, *, lock_format: str | None) -> dict[str, Any]:
        """What the options add to the asset hash's document (see :class:`Hashed`), credentials left out.
        ``lock_format``: the lock file's format, when the requirements are a lock."""
        document: dict[str, Any] = {}
        for item, declaration in declared(type(self)):
            value = getattr(self, item.name)
            rule = declaration.hashed
            unset = value == _default(item)
            if rule is Hashed.NEVER or (rule in (Hashed.WHEN_SET, Hashed.LOCK_WHEN_SET) and unset):
                continue
            if rule in (Hashed.LOCK, Hashed.LOCK_WHEN_SET):
                if lock_format is not None:
                    lock = document.setdefault("lock", {"format": lock_format})
                    lock.update(_arguments(item.name, value))
                continue
            for name, plain in _arguments(item.name, value, hashing=True).items():
                document[name.replace("_", "-")] = _without_userinfo(plain)
        return document

    @classmethod
    def describe(cls) -> str:
        """Every public option and what it is (for the documentation of the front doors)."""
        return "\n".join(f"{name}: {doc}" for name, doc in public_options(cls))


# The options the build image never gets: paths of this host.
HOST_ONLY: tuple[str, ...] = tuple(item.name for item, d in declared(LayerBuildOptions) if not d.travels and d.public)


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """Where a layer is built, and with which caches (the bundling policy's settings; not part of what the layer
    holds, so never of its asset hash)."""

    bundling: BundlingMode = option(
        BundlingMode.AUTO,
        doc="auto (local, else Docker with the Lambda build image), local (an impossible local build is an error) "
        "or docker (always the build image)",
        flags=(
            Flag(
                ("--bundling",),
                "auto (default): on this host when it can build for the target, else in the Lambda build image; "
                "local: this host only (exit 3 when impossible); docker: always the build image",
                choices=("auto", "local", "docker"),
            ),
        ),
        hashed=Hashed.NEVER,
    )
    cache: bool = option(
        True,
        doc="reuse and keep built layers in the layer store (fully pinned requirements and lock files only), keep "
        "what depends only on a distribution's bytes in the distribution cache, and keep the container build's "
        "downloads",
        flags=(Flag(("--no-cache",), "no layer store, no distribution cache and no download cache", "off"),),
        hashed=Hashed.NEVER,
    )
    cache_dir: Path | None = option(
        None,
        doc="the cache directory: layers/ (the layer store), dists/ (the distribution cache) and pip/ (the "
        "container build's downloads); default "
        "$CDK_PIP_LAYER_CACHE_DIR, else $XDG_CACHE_HOME/cdk-pip-layer or ~/.cache/cdk-pip-layer",
        flags=(Flag(("--cache-dir",), "the cache directory (default: ~/.cache/cdk-pip-layer)", "path", "DIR"),),
        hashed=Hashed.NEVER,
    )
    cache_url: str | None = option(
        None,
        doc="a layer store shared by every machine, on S3 (s3://bucket/prefix): looked up after the local one, and "
        "written after a build; default $CDK_PIP_LAYER_CACHE_URL (needs the publish extra: boto3)",
        flags=(
            Flag(
                ("--cache-url",),
                "a shared layer store on S3, s3://bucket/prefix (default: $CDK_PIP_LAYER_CACHE_URL)",
                metavar="URL",
            ),
        ),
        hashed=Hashed.NEVER,
    )
    cache_read_only: bool = option(
        False,
        doc="read the shared layer store (cache_url) but never write it, e.g. in pull-request jobs (default "
        "$CDK_PIP_LAYER_CACHE_READ_ONLY); the local store is still written",
        flags=(
            Flag(
                ("--cache-read-only",),
                "read the shared layer store but never write it (default: $CDK_PIP_LAYER_CACHE_READ_ONLY)",
                "on",
            ),
        ),
        hashed=Hashed.NEVER,
    )
    image: str | None = option(
        None,
        doc="the build image of a container build (default public.ecr.aws/sam/build-pythonX.Y:latest-<arch>)",
        flags=(Flag(("--image",), "the build image (default: public.ecr.aws/sam/build-pythonX.Y:latest-<arch>)"),),
        hashed=Hashed.NEVER,
    )
    docker_network: str | None = option(
        None,
        doc="the container build's network mode, e.g. host for an index on localhost (default "
        "$CDK_PIP_LAYER_DOCKER_NETWORK, else Docker's)",
        flags=(
            Flag(
                ("--docker-network",),
                "the build container's network mode, e.g. host (default: $CDK_PIP_LAYER_DOCKER_NETWORK, else Docker's)",
                metavar="MODE",
            ),
        ),
        hashed=Hashed.NEVER,
    )

    @classmethod
    def parse(cls, **args: Any) -> BuildSettings:
        """Check loose input (as :class:`SettingsArgs` names it) and make the settings."""
        unknown = sorted(set(args) - set(_SETTINGS_ARGS))
        if unknown:
            raise InvalidInputError(
                f"Unknown build setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                subject="build settings",
                hint=f"the settings are {', '.join(_SETTINGS_ARGS)}.",
            )
        cache, cache_dir = bool(args.get("cache", True)), args.get("cache_dir")
        cache_url = parse_cache_url(args.get("cache_url"), "cache_url (--cache-url)")
        read_only = args.get("cache_read_only", False)
        if not isinstance(read_only, bool):
            raise InvalidInputError(
                f"cache_read_only must be True or False, not {read_only!r}",
                subject="cache_read_only",
                hint="pass cache_read_only=True to read the shared layer store without writing it.",
            )
        if not cache:
            _cache_off(cache_dir=cache_dir, cache_url=cache_url, cache_read_only=read_only)
        return cls(
            bundling=BundlingMode.parse(args.get("bundling", BundlingMode.AUTO)),
            cache=cache,
            cache_dir=Path(path) if (path := _optional_path(cache_dir, "cache_dir")) is not None else None,
            cache_url=cache_url,
            cache_read_only=read_only,
            image=_optional_text(args.get("image"), "image"),
            docker_network=_optional_text(args.get("docker_network"), "docker_network"),
        )

    @property
    def cache_root(self) -> Path:
        """The cache directory, given or default."""
        return self.cache_dir if self.cache_dir is not None else default_cache_root()

    def given(self, *names: str) -> list[str]:
        """Of ``names``, the settings that differ from their defaults, with their command-line flags."""
        out = []
        for item, declaration in declared(type(self)):
            if item.name in names and getattr(self, item.name) != _default(item):
                out.append(f"{item.name} ({', '.join(flag.names[0] for flag in declaration.flags)})")
        return out


def public_options(cls: type) -> list[tuple[str, str]]:
    """(keyword argument, documentation) of every public option of ``cls`` (the target as runtime and
    architecture)."""
    out: list[tuple[str, str]] = []
    for item, declaration in declared(cls):
        if not declaration.public:
            continue
        if item.name == "target":
            out += [("runtime", declaration.doc), ("architecture", declaration.doc)]
        else:
            out.append((item.name, declaration.doc))
    return out


# Every keyword argument parse() takes: the public options, and those the engine sets itself (the build image's).
_LAYER_ARGS = (
    *(name for name, _ in public_options(LayerBuildOptions)),
    *(item.name for item, declaration in declared(LayerBuildOptions) if not declaration.public),
)
_SETTINGS_ARGS = tuple(name for name, _ in public_options(BuildSettings))


# --- keyword arguments, as the front doors take them -------------------------------------------------------------

# A base layer, as on_top_of takes it: a construct of the same app, the path of a zip or report, or the value.
BaseLayerInput = BaseLayerSource | BaseLayer | str | os.PathLike[str]
# One entry per public option (tests/unit/test_options_declaration.py holds them against the fields).


class LayerOptionArgs(TypedDict, total=False):
    """The build options a construct takes besides its requirements, runtime and architecture."""

    exclude: str | Sequence[str]
    index: IndexSettings | None
    installer: InstallerChoice | InstallerName
    python_executable: str | os.PathLike[str] | None
    extra_installer_args: str | Sequence[str]
    verify: bool
    verify_ignore: str | Sequence[str]
    import_sandbox: SandboxKind | SandboxName
    groups: str | Sequence[str]
    member: str | None
    only_groups: bool
    slim: bool
    slim_keep: str | Sequence[str]
    slim_remove: str | Sequence[str]
    on_top_of: BaseLayerInput | Sequence[BaseLayerInput]


class _Requirements(TypedDict):
    requirements: str | os.PathLike[str]


class LayerArgs(_Requirements, LayerOptionArgs, total=False):
    """The build options as keyword arguments (:meth:`LayerBuildOptions.parse`, the builders, build_layer)."""

    runtime: Runtime
    architecture: ArchitectureName | Architecture


class CacheArgs(TypedDict, total=False):
    """The cache settings (:class:`BuildSettings`): every front door that builds takes them."""

    cache: bool
    cache_dir: str | os.PathLike[str] | None
    cache_url: str | None
    cache_read_only: bool


class ConstructSettingsArgs(CacheArgs, total=False):
    """The build settings a construct takes (CDK runs the container itself: see CONSTRUCT_LEAVES_OUT)."""

    bundling: BundlingMode | BundlingName


class ContainerArgs(CacheArgs, total=False):
    """The container builder's settings."""

    image: str | None
    docker_network: str | None


class ContainerBuilderArgs(LayerArgs, ContainerArgs, total=False):
    """The container builder's keyword arguments: the build options and the container settings."""


class SettingsArgs(ConstructSettingsArgs, ContainerArgs, total=False):
    """Every build setting as keyword arguments (:meth:`BuildSettings.parse`, build_layer)."""


class ConstructArgs(LayerOptionArgs, ConstructSettingsArgs, total=False):
    """What a construct takes besides its requirements, runtime, architecture and LayerVersion props."""


class BuildLayerArgs(LayerArgs, SettingsArgs, total=False):
    """What :func:`~cdk_pip_layer.build_layer` takes besides its build directory."""


# The settings a front door leaves out, and why (a test holds every front door to the declaration but these).
CONSTRUCT_LEAVES_OUT: Mapping[str, str] = {
    "image": "CDK runs the container build with the runtime's bundling image, part of the asset hash",
    "docker_network": "CDK runs the container build; its network is CDK's (docker run's default)",
}
CONTAINER_BUILDER_LEAVES_OUT: Mapping[str, str] = {
    "bundling": "the container builder is bundling='docker'",
    "python_executable": "the build image's own Python is the target's interpreter",
}
LOCAL_BUILDER_LEAVES_OUT: Mapping[str, str] = {
    name: "the local builder builds here with no cache of its own: build_layer adds the layer store"
    for name in _SETTINGS_ARGS
}


def split_arguments(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of both kinds split into build options and build settings (others stay with the
    options, which refuse them by name)."""
    settings = {key: value for key, value in args.items() if key in _SETTINGS_ARGS}
    return {key: value for key, value in args.items() if key not in settings}, settings


def cli_arguments(cls: type, namespace: object) -> dict[str, Any]:
    """The keyword arguments the command line's flags of ``cls`` gave (see :class:`Flag`; argparse's ``dest`` of
    each flag is the keyword argument it fills)."""
    out: dict[str, Any] = {}
    for item, declaration in declared(cls):
        for flag in declaration.flags:
            dest = flag.dest or _flag_dest(item.name, flag)
            value = getattr(namespace, dest, None)
            if value is not None:
                out[dest] = value
    if cls is LayerBuildOptions:  # one value of three flags
        out["index"] = IndexSettings(
            index_url=out.pop("index_url", None),
            extra_index_urls=tuple(out.pop("extra_index_urls", ())),
            trusted_hosts=tuple(out.pop("trusted_hosts", ())),
        )
    return out


def _flag_dest(name: str, flag: Flag) -> str:
    """The keyword argument a flag fills: the option itself, or for the target's two flags runtime and
    architecture."""
    return flag.names[0].lstrip("-").replace("-", "_") if name == "target" else name


def cli_path(value: str) -> Path | str:
    """A path given on the command line (argparse's ``type``): a :class:`~pathlib.Path`, or an empty string as it
    was given, for the command line to refuse by its flag (``Path('')`` would be the current directory)."""
    return Path(value) if value else value


def flag_arguments(cls: type) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """``(names, add_argument keyword arguments)`` for every command-line flag of ``cls``."""
    for item, declaration in declared(cls):
        for flag in declaration.flags:
            kwargs: dict[str, Any] = {"dest": flag.dest or _flag_dest(item.name, flag), "help": flag.help}
            if _default(item) is MISSING and len(declaration.flags) == 1:
                kwargs["required"] = True
            if flag.kind in ("repeat", "paths"):
                kwargs.update(action="append", default=None)
            elif flag.kind == "off":
                kwargs.update(action="store_false", default=None)
            elif flag.kind == "on":
                kwargs.update(action="store_true", default=None)
            if flag.kind in ("path", "paths"):
                kwargs.update(type=cli_path)
            if flag.metavar:
                kwargs["metavar"] = flag.metavar
            if flag.choices:
                kwargs["choices"] = flag.choices
            yield flag.names, kwargs


# --- the checks ---------------------------------------------------------------------------------------------------


def _requirements(value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InvalidInputError(
            f"The requirements file must be a path, not {value!r}",
            subject="requirements",
            hint="pass the path of a requirements.txt.",
        )
    return Path(value)


def _index(value: object) -> IndexSettings:
    if value is None:
        return IndexSettings()
    if not isinstance(value, IndexSettings):
        raise InvalidInputError(
            f"The index settings must be an IndexSettings, not {type(value).__name__}",
            subject="index",
            hint="pass IndexSettings(index_url='https://…/simple').",
        )
    return value


def _installer_args(values: object) -> tuple[str, ...]:
    args = as_tuple(cast("str | Sequence[str] | None", values), subject="extra_installer_args")
    for arg in args:
        if not isinstance(arg, str):
            raise InvalidInputError(
                f"An extra installer argument must be a string, not {type(arg).__name__}",
                subject="extra installer arguments",
                hint="pass the arguments as strings, e.g. ('--pre',).",
            )
        reserved = reserved_argument(arg)
        if reserved:
            raise InvalidInputError(
                f"Extra installer argument {arg!r} ({reserved}) is set by cdk-pip-layer itself",
                subject="extra installer arguments",
                hint="use the runtime, architecture and index options instead.",
            )
    no_binary = _no_binary_argument(args)
    if no_binary is not None:
        raise no_binary_error(no_binary, "extra installer arguments")
    return args


def _only_groups(args: dict[str, Any]) -> bool:
    only = bool(args.get("only_groups", False))
    if only and not args.get("groups"):
        raise InvalidInputError(
            "only_groups needs groups: the layer would hold nothing",
            subject="only_groups",
            hint="name the groups to install (groups=['jobs']), or leave out only_groups.",
        )
    return only


def _globs(values: object, subject: str) -> tuple[str, ...]:
    return check_globs(as_tuple(cast("str | Sequence[str] | None", values), subject=subject), subject=subject)


def _optional_path(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInputError(
            f"A path was expected, not {type(value).__name__}",
            subject=repr(value),
            hint="pass a path as a string.",
        )
    path = os.fspath(value)
    if not path:  # Path("") is ".": never the current directory by accident
        raise InvalidInputError(
            f"The path given to {name} is empty",
            subject=name,
            hint=f"give a path, or leave {name} out for its default.",
        )
    return path


def _optional_text(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"{what} must be a non-empty string, not {value!r}", subject=what, hint=f"name the {what}."
        )
    return value


# A distribution name (PEP 508).
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")


def as_tuple(values: str | Sequence[str] | None, *, subject: str = "value") -> tuple[str, ...]:
    """A sequence of strings as a tuple; one string is one item (not its characters); None is empty.

    Anything else (a number, bytes) is an :class:`InvalidInputError` about ``subject``; the items are the caller's
    to check.
    """
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    if isinstance(values, (bytes, bytearray)) or not isinstance(values, Iterable):
        raise InvalidInputError(
            f"{subject} must be a string or a sequence of strings, not {type(values).__name__}",
            subject=subject,
            hint=f"pass e.g. {subject}=('first', 'second').",
        )
    return tuple(values)


def _names(values: str | Sequence[str] | None) -> tuple[NormalizedName, ...]:
    out = []
    for value in as_tuple(values, subject="exclude"):
        name = value.strip() if isinstance(value, str) else ""
        if name == RUNTIME_PRESET:
            out.append(NormalizedName(name))
            continue
        if not _NAME.match(name):
            raise InvalidInputError(
                f"Invalid package name to exclude: {value!r}",
                subject="exclude",
                hint=f"give distribution names such as 'boto3', or {RUNTIME_PRESET!r} for what the Lambda runtime "
                "provides.",
            )
        out.append(canonicalize_name(name))
    return tuple(sorted(set(out)))


def _lock_names(values: str | Sequence[str] | None, what: str) -> tuple[str, ...]:
    """Group or member names for a lock file, checked (a name as its tool writes it: no spaces, no options)."""
    out: list[str] = []
    for value in as_tuple(values, subject=what):
        if not isinstance(value, str) or not _NAME.fullmatch(value.strip()):
            raise InvalidInputError(
                f"Invalid {what} name {value!r}",
                subject=what,
                hint="give names as the lock file's tool writes them, e.g. 'dev' or 'lambda-deps'.",
            )
        if value.strip() not in out:
            out.append(value.strip())
    return tuple(out)


def _member(value: str | None) -> str | None:
    """The uv workspace member: one name, checked."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(
            f"member must be one name (a string), not {type(value).__name__}",
            subject="member",
            hint="name the uv workspace member whose dependencies go into the layer, e.g. member='api'.",
        )
    return _lock_names(value, "member")[0]


def build_directory(value: str | os.PathLike[str] | None) -> Path:
    """The build directory argument of a builder, checked."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InvalidInputError(
            f"The build directory must be a path, not {value!r}",
            subject="build_dir",
            hint="pass the directory that receives layer.zip and artifacts/.",
        )
    return Path(value)


def _cache_off(**given: object) -> None:
    """Settings of the cache given with the cache turned off: a contradiction, said at once."""
    flags = {"cache_dir": "--cache-dir", "cache_url": "--cache-url", "cache_read_only": "--cache-read-only"}
    named = [f"{name} ({flags[name]})" for name, value in given.items() if value not in (None, False)]
    if named:
        raise InvalidInputError(
            f"{', '.join(named)} given with the cache turned off (--no-cache, cache=False)",
            subject=", ".join(name.split(" ")[0] for name in named),
            hint="drop one or the other.",
        )


# An S3 bucket name (the rules of general purpose buckets: 3 to 63 lower-case letters, digits, dots and hyphens).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# What a key prefix of the shared store may hold: S3's safe characters (letters, digits, ! - _ . * ' ( )), = and /.
_S3_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()=/-]*$")


def parse_cache_url(value: object, subject: str) -> str | None:
    """A shared layer store's URL, ``s3://bucket`` or ``s3://bucket/prefix``, checked and normalised (no trailing
    ``/``); None stays None. ``subject`` names where it came from (the setting, or the environment variable)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"The shared layer store's URL must be a non-empty string, not {value!r}",
            subject=subject,
            hint="give it as s3://bucket/prefix.",
        )
    shown = strip_userinfo(value.strip())
    scheme, sep, rest = value.strip().partition("://")
    bucket, _, prefix = rest.partition("/")
    hint = "give it as s3://bucket/prefix (credentials come from the AWS environment: a role, a profile, AWS_*)."
    if scheme != "s3" or not sep:
        raise InvalidInputError(
            f"The shared layer store must be an s3:// URL, not {shown!r}", subject=subject, hint=hint
        )
    if "@" in bucket:
        raise InvalidInputError(f"The shared layer store's URL {shown!r} holds credentials", subject=subject, hint=hint)
    if not _S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInputError(f"Invalid S3 bucket name {bucket!r} in {shown!r}", subject=subject, hint=hint)
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if not _S3_PREFIX.fullmatch(prefix) or any(part in ("", ".", "..") for part in parts):
        raise InvalidInputError(
            f"Invalid key prefix {prefix!r} in {shown!r}",
            subject=subject,
            hint="use letters, digits and - _ . = / in the prefix, with no empty, '.' or '..' parts.",
        )
    return f"s3://{bucket}/{'/'.join(parts)}" if parts else f"s3://{bucket}"


def default_cache_root() -> Path:
    """Where cdk-pip-layer keeps its caches (``layers/`` for the CDK layer cache, ``pip/`` for the container
    builder's downloads): ``$CDK_PIP_LAYER_CACHE_DIR``, else ``$XDG_CACHE_HOME/cdk-pip-layer`` or
    ``~/.cache/cdk-pip-layer``."""
    explicit = os.environ.get("CDK_PIP_LAYER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cdk-pip-layer"


# --- the options in the command line's terms ----------------------------------------------------------------------

# Names a message uses for an option that no declaration carries: the build directory (the command's own --output),
# and the words some checks use as their subject.
_CLI_ALIASES: Mapping[str, str] = {
    "build_dir": "--output",
    "extra installer arguments": "--installer-arg",
    "import sandbox": "--import-sandbox",
}


def cli_flag_names() -> dict[str, str]:
    """Each keyword argument the command line's flags fill (the build options and settings, an index URL of the
    index's), with its flag as a user types it (``extra_installer_args``: ``--installer-arg``); from the
    declaration."""
    out: dict[str, str] = {}
    for cls in (LayerBuildOptions, BuildSettings):
        for item, declaration in declared(cls):
            for flag in declaration.flags:
                out.setdefault(flag.dest or _flag_dest(item.name, flag), flag.names[0])
            if declaration.flags and item.name != "target":  # the target is two flags, --runtime and --architecture
                out.setdefault(item.name, declaration.flags[0].names[0])
    return {**out, **_CLI_ALIASES}


_CLI_FLAGS = cli_flag_names()
# A keyword argument as a message writes it: bare (only a name with an underscore: "exclude" or "image" are words
# too), or given a value (name=True, name='x', name=('a', 'b'), name=[...]); never a part of a path (/cache_dir/).
_API_TERM = re.compile(
    r"(?<![\w./-])(?P<name>"
    + "|".join(re.escape(name) for name in sorted(_CLI_FLAGS, key=len, reverse=True) if name.isidentifier())
    + r")(?:=(?P<value>True|False|None|'[^']*'|\"[^\"]*\"|\([^()]*\)|\[[^\[\]]*\]|[\w.-]+))?(?![\w/-])"
)


# An option named in both terms: "python_executable (--python)", "image (--image)".
_BOTH_TERMS = re.compile(r"(?<![\w.-])([a-z_]+) \((--[a-z-]+)\)")


def _cli_term(match: re.Match[str]) -> str:
    name, value = match.group("name"), match.group("value")
    flag = _CLI_FLAGS[name]
    if value is None:
        return flag if "_" in name else match.group(0)
    if value in ("True", "False", "None"):
        # A switch (--slim; --no-cache for cache=False) or a setting left out; cache=True is no flag's to say.
        return match.group(0) if value == "True" and flag.startswith("--no-") else flag
    if value[0] in "([":
        items = re.findall(r"'([^']*)'|\"([^\"]*)\"", value)
        words = [single or double for single, double in items]
        return " ".join(f"{flag} {word}" for word in words) if words else f"{flag} …"
    return f"{flag} {value.strip(chr(39) + chr(34))}"


def in_cli_terms(text: str, *, subject: bool = False) -> str:
    """``text`` (a message written for the Python API) with each keyword argument of the build options named as
    the command line's flag, e.g. ``extra_installer_args`` as ``--installer-arg`` and ``bundling=auto`` as
    ``--bundling auto``; ``subject``: the text is a whole error subject, which may be an option's bare name
    (``exclude``). What is said in both terms (``slim_remove (--slim-remove)``) is said once."""
    if subject and text in _CLI_FLAGS:
        return _CLI_FLAGS[text]
    out = _BOTH_TERMS.sub(lambda m: m.group(2) if _CLI_FLAGS.get(m.group(1)) == m.group(2) else m.group(0), text)
    out = _API_TERM.sub(_cli_term, out)
    out = re.sub(r"\((--[\w-]+), \1\)", r"(\1)", out)  # "(--no-cache, cache=False)"
    out = re.sub(r"(--[\w-]+ [^\s()]+) \(\1\)", r"\1", out)  # "import_sandbox='none' (--import-sandbox none)"
    return re.sub(r"(--[\w-]+(?: [A-Z]+)?), or \1 in the construct", r"\1", out)
