"""What to build: one validated, frozen options value shared by the local builder, the container builder, the
container protocol and the CDK construct, made by one :meth:`LayerBuildOptions.parse`."""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from .errors import InvalidInputError
from .findings import parse_ignore
from .index import IndexSettings
from .target import Architecture, LambdaTarget


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


@dataclass(frozen=True, kw_only=True)
class LayerBuildOptions:
    """What to build. Made by :meth:`parse`, which checks every value and gives each field its default.

    Attributes:
        requirements: the requirements file (``-r``/``-c`` includes are followed, relative to it), or a lock file,
            told apart by its name: ``pylock.toml``/``pylock.<name>.toml``, ``uv.lock``, ``poetry.lock`` (each of
            the last two with its ``pyproject.toml`` beside it) or ``Pipfile.lock``.
        target: the Lambda runtime and architecture (:class:`LambdaTarget`); parsed from ``runtime``
            (``python3.10`` … ``python3.14``, default ``python3.12``) and ``architecture`` (``x86_64``, the
            default, or ``arm64``).
        exclude: distributions to leave out of the layer, e.g. ``("boto3", "botocore")`` (the runtime has them).
            Only the distributions named are removed, by the files their RECORD lists; their dependencies stay.
        index: private index settings (credentials allowed; they are never printed).
        installer: ``auto`` (uv where it gives the layer pip would give, else pip), ``pip`` or ``uv``.
        python_executable: the interpreter to run pip with (when pip runs); by default one of the runtime's version
            is searched on PATH, in pyenv and in uv's managed Pythons.
        extra_installer_args: extra arguments for pip (or uv), e.g. ``("--pre",)``. Options the engine sets
            itself (``--target``, ``--platform``, index URLs, ...) are refused: use the fields above.
        verify: check the finished layer zip before publishing it (see ``verify_layer_zip``): wheel tags, ELF files
            (machine, GLIBC/GLIBCXX/CXXABI versions, shared libraries), dependencies, Requires-Python, RECORD,
            byte-code, permissions, size, and a smoke import when an interpreter of the runtime's version is
            here. Default True.
        verify_ignore: checks to turn off by name, e.g. ``("glibc",)`` or ``("import",)`` (the names are in
            ``cdk_pip_layer.engine.findings.CHECKS``).
        native_builds: build source distributions with native code and accept ``linux_<machine>`` wheels. Only
            right inside the target's own build image, where the container build sets it; default False. Such a
            build runs pip unless ``uv_executable`` names a uv that runs there.
        uv_executable: the uv binary (default: the ``uv`` package's, else ``uv`` on PATH). Inside the build image
            the container build sets it to the host's uv, staged with the input, when that runs there.
        groups: for a lock file, the dependency groups to install besides the project's own dependencies (uv's
            dependency groups, Poetry's groups besides ``main``, a Pipfile.lock's sections besides ``default``,
            a pylock.toml's dependency groups instead of its ``default-groups``). Default none.
        member: for a uv.lock of a workspace, the member whose dependencies go into the layer (default: the
            project of the pyproject.toml beside the lock).
        only_groups: for a lock file, install the ``groups`` alone, without the project's own dependencies
            (Poetry's ``--only``, uv's ``--only-group``, a Pipfile.lock's sections without ``default``): the layer
            of one function in a project with one group per function. Default False.
    """

    requirements: Path
    target: LambdaTarget
    exclude: tuple[NormalizedName, ...] = ()
    index: IndexSettings = field(default_factory=IndexSettings)
    installer: InstallerChoice = InstallerChoice.AUTO
    python_executable: str | None = None
    extra_installer_args: tuple[str, ...] = ()
    verify: bool = True
    verify_ignore: tuple[str, ...] = ()
    native_builds: bool = False
    groups: tuple[str, ...] = ()
    member: str | None = None
    only_groups: bool = False
    uv_executable: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        requirements: str | os.PathLike[str],
        runtime: str = "python3.12",
        architecture: str | Architecture = "x86_64",
        exclude: str | Sequence[str] | None = (),
        index: IndexSettings | None = None,
        installer: InstallerChoice | str = InstallerChoice.AUTO,
        python_executable: str | os.PathLike[str] | None = None,
        extra_installer_args: str | Sequence[str] | None = (),
        verify: bool = True,
        verify_ignore: str | Sequence[str] | None = (),
        native_builds: bool = False,
        groups: str | Sequence[str] | None = (),
        member: str | None = None,
        only_groups: bool = False,
    ) -> LayerBuildOptions:
        """Check loose input (strings, lists, paths, as a CLI or a construct gets it) and make the options value.

        Raises :class:`InvalidInputError` (or :class:`UnsupportedTargetError`) naming the value that is wrong.
        """
        if not isinstance(requirements, (str, os.PathLike)) or not str(requirements):
            raise InvalidInputError(
                f"The requirements file must be a path, not {requirements!r}",
                subject="requirements",
                hint="pass the path of a requirements.txt.",
            )
        if index is None:
            index = IndexSettings()
        if not isinstance(index, IndexSettings):
            raise InvalidInputError(
                f"The index settings must be an IndexSettings, not {type(index).__name__}",
                subject="index",
                hint="pass IndexSettings(index_url='https://…/simple').",
            )
        args = as_tuple(extra_installer_args, subject="extra_installer_args")
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
        if only_groups and not groups:
            raise InvalidInputError(
                "only_groups needs groups: the layer would hold nothing",
                subject="only_groups",
                hint="name the groups to install (groups=['jobs']), or leave out only_groups.",
            )
        no_binary = _no_binary_argument(args)
        if no_binary is not None:
            raise no_binary_error(no_binary, "extra installer arguments")
        return cls(
            requirements=Path(requirements),
            target=LambdaTarget.parse(runtime, architecture),
            exclude=_names(exclude),
            index=index,
            installer=InstallerChoice.parse(installer),
            python_executable=os.fspath(python_executable) if python_executable is not None else None,
            extra_installer_args=args,
            verify=bool(verify),
            verify_ignore=parse_ignore(verify_ignore),
            native_builds=bool(native_builds),
            groups=_lock_names(groups, "groups"),
            member=_member(member),
            only_groups=bool(only_groups),
        )

    @property
    def runtime(self) -> str:
        return self.target.runtime

    @property
    def architecture(self) -> str:
        return self.target.architecture.value


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
        if not _NAME.match(name):
            raise InvalidInputError(
                f"Invalid package name to exclude: {value!r}",
                subject="exclude",
                hint="give distribution names such as 'boto3'.",
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


def check_cache_settings(*, use_cache: bool, cache_dir: str | os.PathLike[str] | None) -> None:
    """A cache directory together with no cache: one of the two is a mistake, said rather than one ignored."""
    if cache_dir is not None and not use_cache:
        raise InvalidInputError(
            "A cache directory was given (--cache-dir, cache_dir=) with the cache turned off (--no-cache, "
            "use_cache=False)",
            subject=os.fspath(cache_dir),
            hint="drop one of the two.",
        )


def build_directory(value: str | os.PathLike[str] | None) -> Path:
    """The build directory argument of a builder, checked."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InvalidInputError(
            f"The build directory must be a path, not {value!r}",
            subject="build_dir",
            hint="pass the directory that receives layer.zip and artifacts/.",
        )
    return Path(value)


def default_cache_root() -> Path:
    """Where cdk-pip-layer keeps its caches (``layers/`` for the CDK layer cache, ``pip/`` for the container
    builder's downloads): ``$CDK_PIP_LAYER_CACHE_DIR``, else ``$XDG_CACHE_HOME/cdk-pip-layer`` or
    ``~/.cache/cdk-pip-layer``."""
    explicit = os.environ.get("CDK_PIP_LAYER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cdk-pip-layer"
