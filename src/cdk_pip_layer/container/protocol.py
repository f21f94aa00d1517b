"""The container build's protocol, shared by the container builder, the CDK construct's Docker fallback and the
entry point that runs inside the Lambda build image.

Both host paths run the same command in the image against the same staged input, so they cannot drift from each
other; the build inside the container is this engine itself (copied into the input), so it cannot drift from the
local build either. The image needs nothing but its own Python and pip: the engine's one third-party import,
``packaging``, is taken from pip's vendored copy when it is not installed.

Layout of the staged input (mounted at ``/asset-input``)::

    requirements/…                   the requirements file and every file it includes, in their relative layout
    .cdk-pip-layer/run.py            the entry point (CONTAINER_COMMAND runs it)
    .cdk-pip-layer/cdk_pip_layer/…   the engine wing and the in-image entry (nothing of CDK or the Docker SDK)
    .cdk-pip-layer/build.json        the build request: the options, without credentials (:func:`write_request`)
    .cdk-pip-layer/host.env.json     host settings: proxies, index credentials (mode 0600; only when staged for
                                     CDK, which cannot pass them otherwise; deleted right after bundling)
    .cdk-pip-layer/ca-bundle.crt     the host's CA bundle (PIP_CERT / REQUESTS_CA_BUNDLE / SSL_CERT_FILE)
    .cdk-pip-layer/uv                the host's uv, when it runs in the image (a Linux host of the target's
                                     machine): installer auto and uv use it there as on the host, with its cache
                                     on the cache mount; else pip builds (:func:`uv_for_image` says why)

The build reports its outcome as ``result.json`` (a :class:`LayerBuildResult`) or ``error.json`` (the engine's
:class:`LayerBuildError`) in the directory ``$CDK_PIP_LAYER_RESULT`` names, else in ``.cdk-pip-layer/`` (the CDK
fallback mounts the input read-write and wants nothing but ``layer.zip`` in its output). The host raises that
error as it is, so a failure inside the image reads exactly like the same failure of a local build.

Everything host-specific travels in the staged input, never in the container command, its environment or its
mounts: those are the same on every machine, so the CDK asset hash does not depend on the host.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine.errors import InvalidInputError, LayerBuildError
from cdk_pip_layer.engine.index import host_ca_bundle
from cdk_pip_layer.engine.inputs.locked import LOCK_INSTALLER_ARGS, LockedRequirements
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import InstallerChoice, LayerBuildOptions
from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.target import LambdaTarget

CONTAINER_INPUT = "/asset-input"
CONTAINER_OUTPUT = "/asset-output"
CONTEXT_DIR = ".cdk-pip-layer"
CACHE_MOUNT = "/cdk-pip-layer-cache"
# Under CACHE_MOUNT: the wheels builds downloaded, kept for the next build (pip's HTTP cache is the rest).
WHEELHOUSE_DIR = "wheelhouse"
# Under each wheelhouse: one empty file per set of fully pinned requirements (and target) whose wheels are all
# there, named by a digest of them: the next such build installs from the wheelhouse without asking the index.
PINNED_RECORDS = ".pinned"
# A named Docker volume: the same name on every machine, so it can sit in CDK's bundling options.
CACHE_VOLUME = "cdk-pip-layer-pip-cache"
CONTAINER_COMMAND: tuple[str, ...] = ("python3", f"{CONTAINER_INPUT}/{CONTEXT_DIR}/run.py")
CONTAINER_ENVIRONMENT: Mapping[str, str] = {
    "HOME": "/tmp",  # CDK and the builder run the container as the calling user, who has no home in the image
    "PIP_CACHE_DIR": f"{CACHE_MOUNT}/pip",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# Host settings forwarded to the container, when set.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
PIP_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES")
CA_FILE = "ca-bundle.crt"
UV_FILE = "uv"
# Under CACHE_MOUNT: uv's cache (pip's is PIP_CACHE_DIR).
UV_CACHE_DIR = "uv"
REQUEST_FILE = "build.json"
HOST_ENV_FILE = "host.env.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
# The directory the build writes its outcome to (the container builder mounts one there and sets this).
RESULT_VARIABLE = "CDK_PIP_LAYER_RESULT"
RESULT_MOUNT = "/cdk-pip-layer-result"
# What the build writes to its output: "build" (``layer.zip`` and ``artifacts/``, for the container builder, which
# would otherwise unzip the zip again on the host) or, unset, ``layer.zip`` alone (what CDK wants).
LAYOUT_VARIABLE = "CDK_PIP_LAYER_OUTPUT_LAYOUT"
LAYOUT_BUILD = "build"
# Set to "1" (the container builder does when its logger is at DEBUG): the build prints pip's own verbose log
# (every download and cache hit) to its output after pip has run.
VERBOSE_VARIABLE = "CDK_PIP_LAYER_VERBOSE"

_RUN_PY = '''"""Entry point of the cdk-pip-layer container build (generated; runs with the image's own Python)."""
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
try:
    import packaging.tags  # noqa: F401
except ImportError:  # the image has only pip: use the copy of packaging that pip vendors
    import importlib

    for name in ("", ".version", ".specifiers", ".markers", ".requirements", ".tags", ".utils"):
        sys.modules["packaging" + name] = importlib.import_module("pip._vendor.packaging" + name)

from cdk_pip_layer.container.entry import main

sys.exit(main(here))
'''

# What the build inside the image runs: the engine wing and this wing's entry point and protocol, nothing else
# (no CDK adapter, no Docker SDK builder). The package's own __init__ is replaced by an empty one.
_STAGED_CONTAINER_MODULES = ("__init__.py", "protocol.py", "entry.py")


@dataclass(frozen=True)
class StagedInput:
    root: Path
    requirements: str  # path of the requirements file, relative to root
    host_env: dict[str, str]  # what the container's environment needs from this host (may hold credentials)


@dataclass(frozen=True)
class BuildRequest:
    """What ``build.json`` asks the build in the image for."""

    options: LayerBuildOptions
    use_cache: bool
    uv: Path | None = None  # the host's uv, staged
    why_no_uv: str | None = None  # why it was not


def host_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy and pip settings of this host that a container build needs."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in (*PROXY_VARIABLES, *PIP_VARIABLES) if env.get(name)}


def write_request(
    context: Path,
    options: LayerBuildOptions,
    requirements: str,
    *,
    use_cache: bool,
    uv: str | None = None,
    why_no_uv: str | None = None,
) -> None:
    """Write ``build.json``: the options that travel into the image (:meth:`LayerBuildOptions.to_dict`: every
    option but the host-only ones, index URLs without credentials, which travel in the container's environment),
    with the requirements file's path relative to the staged input. ``uv``: the staged uv, relative to ``context``;
    ``why_no_uv``: why none was staged."""
    request = {
        **options.to_dict(),
        "requirements": requirements,
        "use_cache": use_cache,
        "uv": uv,
        "why_no_uv": why_no_uv,
    }
    (context / REQUEST_FILE).write_text(json.dumps(request, indent=2, sort_keys=True), encoding="utf-8")


def read_request(context: Path) -> BuildRequest:
    """The request :func:`write_request` wrote, as options (:meth:`LayerBuildOptions.from_dict`)."""
    data = json.loads((context / REQUEST_FILE).read_text(encoding="utf-8"))
    options = LayerBuildOptions.from_dict(data, requirements=context.parent / data["requirements"])
    uv = data.get("uv")
    return BuildRequest(
        options=options,
        use_cache=bool(data.get("use_cache", True)),
        uv=context / uv if uv else None,
        why_no_uv=data.get("why_no_uv"),
    )


def write_empty_zip(path: Path) -> None:
    """An empty zip: what a failed build leaves for CDK, which wants one archive (the error is in ``error.json``)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = b"cdk-pip-layer: the build failed; see the error on the layer"


def write_outcome(directory: Path, outcome: LayerBuildResult | LayerBuildError) -> None:
    """Report a build's outcome to the host: ``result.json`` or ``error.json`` in ``directory``."""
    if isinstance(outcome, LayerBuildError):
        (directory / ERROR_FILE).write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
    else:
        (directory / RESULT_FILE).write_text(json.dumps(outcome.to_dict()), encoding="utf-8")


def read_outcome(directory: Path) -> LayerBuildResult | LayerBuildError | None:
    """The outcome :func:`write_outcome` reported in ``directory``, or None when there is none (the build did not
    get that far, or what it wrote cannot be read)."""
    for name in (ERROR_FILE, RESULT_FILE):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                return None
            return LayerBuildError.from_dict(data) if name == ERROR_FILE else LayerBuildResult.from_dict(data)
        except (OSError, ValueError, KeyError, LayerBuildError):
            return None
    return None


def uv_for_image(target: LambdaTarget, uv: str | None = None) -> Path | str:
    """This host's uv (``uv``, default the one :func:`find_uv` finds) when it runs in the target's build image,
    else why not. It does when it is a Linux program for the target's machine whose glibc versions and libraries
    the target's OS provides (the uv wheel's binary needs glibc 2.17; a musl one is static): read from the binary,
    not guessed from the host."""
    found = uv or find_uv()
    if found is None:
        return "uv is not installed on this host"
    if not sys.platform.startswith("linux"):
        return f"this host's uv is a {platform.system()} program; the build image runs Linux programs"
    try:
        changed = Path(found).stat().st_mtime_ns
    except OSError as exc:
        return f"this host's uv ({found}) cannot be read ({exc.strerror or exc})"
    return _judge_uv(found, target, changed)


@functools.lru_cache(maxsize=16)
def _judge_uv(uv: str, target: LambdaTarget, changed: int) -> Path | str:
    """``changed``: the binary's mtime, so that a uv upgraded in place is judged again."""
    from cdk_pip_layer.engine.verify.elf import ElfJudge, ElfReadError, read_elf  # pyelftools: on the host only

    try:
        facts = read_elf(Path(uv))
    except ElfReadError as exc:
        return f"this host's uv ({uv}) is not a Linux program ({exc})"
    problems = [f.problem for f in ElfJudge(target, frozenset()).judge(uv, facts) if f.severity.value == "error"]
    if problems:
        return f"this host's uv ({uv}) cannot run in the {target} build image: it {problems[0]}"
    return Path(uv)


def image_uv(options: LayerBuildOptions) -> Path | str:
    """The host's uv for the build in the image, or why none is used there. A forced ``uv`` that cannot run there
    is refused (InvalidInputError)."""
    if options.installer is InstallerChoice.PIP:
        return "pip was asked for"
    found = uv_for_image(options.target)
    if isinstance(found, str) and options.installer is InstallerChoice.UV:
        raise InvalidInputError(
            f"uv cannot build in the {options.target} build image",
            subject=str(options.requirements),
            details=[found],
            hint="use installer auto (pip builds in the image then) or pip, or build on a Linux host of the target's "
            "machine.",
        )
    return found


def _stage_uv(options: LayerBuildOptions, context: Path) -> tuple[str | None, str | None]:
    """Put the host's uv into ``context`` for the build in the image, when it may be used there and runs there;
    return its name there, or why there is none."""
    found = image_uv(options)
    if isinstance(found, str):
        return None, found
    staged = context / UV_FILE
    try:
        os.link(found, staged)  # 40 MB: linked when the input is on the same file system
    except OSError:
        shutil.copyfile(found, staged)
        staged.chmod(0o755)
    return UV_FILE, None


def stage_engine(context: Path) -> Path:
    """Copy the engine and the in-image entry point into ``context/cdk_pip_layer``; return that directory."""
    source = Path(__file__).resolve().parent.parent
    package = context / "cdk_pip_layer"
    (package / "container").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""cdk-pip-layer\'s engine, staged for a container build."""\n', "utf-8")
    for name in _STAGED_CONTAINER_MODULES:
        shutil.copyfile(source / "container" / name, package / "container" / name)
    engine = source / "engine"
    for module in sorted(engine.rglob("*.py")):  # the engine and its stage packages
        dest = package / "engine" / module.relative_to(engine)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, dest)
    return package


def stage_input(
    options: LayerBuildOptions,
    requirements: RequirementsFile,
    root: Path,
    *,
    use_cache: bool = True,
    write_host_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> StagedInput:
    """Write everything the container build needs into ``root`` (created if needed).

    ``requirements`` is ``options.requirements`` as read already. ``write_host_env`` stores proxies and index
    credentials in a 0600 file for the CDK Docker fallback, which has no other way to pass them without making
    them part of the asset hash or a command line; the caller deletes ``root`` as soon as bundling is over. The
    container builder passes them as container environment instead.
    """
    if isinstance(requirements, LockedRequirements):
        # A lock is read here on the host (a Python 3.10 image has no TOML parser): the image gets the hash-pinned
        # requirements generated from it for the target, installed with --no-deps --require-hashes.
        with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-lock-") as tmp:
            generated = requirements.write_install_file(Path(tmp))
            plain = RequirementsFile(path=generated, requirements=requirements.requirements, files=(generated,))
            locked_options = dataclasses.replace(
                options,
                extra_installer_args=(*options.extra_installer_args, *LOCK_INSTALLER_ARGS),
                groups=(),
                member=None,
            )
            return stage_input(
                locked_options, plain, root, use_cache=use_cache, write_host_env=write_host_env, environ=environ
            )
    files = [Path(f) for f in requirements.files]
    for line in requirements.requirements:
        if line.local_directory is not None:
            raise InvalidInputError(
                "A local project directory cannot be built in the Lambda build image",
                subject=f"{line.where}: {line.text}",
                hint="build it on this host (bundling auto or local), or make a wheel of it ('pip wheel "
                f"{line.text} --no-deps -w wheels') and name that wheel in the requirements file instead: local "
                "archives travel into the container build.",
            )
    base = Path(os.path.commonpath([f.parent for f in files]))
    req_root = root / "requirements"
    for file in files:
        dest = req_root / file.relative_to(base)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, dest)
        dest.chmod(0o644)
    # Local archives the requirements name (./wheels/x.whl) travel with them, at the same relative place.
    for line in requirements.requirements:
        local = line.local_file
        if local is not None and local.resolve().is_relative_to(base):
            dest = req_root / local.resolve().relative_to(base)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)
            dest.chmod(0o644)
    main_rel = (Path("requirements") / files[0].relative_to(base)).as_posix()

    context = root / CONTEXT_DIR
    package = stage_engine(context)
    (context / "run.py").write_text(_RUN_PY, encoding="utf-8")
    uv, why_no_uv = _stage_uv(options, context)
    write_request(context, options, main_rel, use_cache=use_cache, uv=uv, why_no_uv=why_no_uv)

    env = host_environment(environ)
    # ${NAME} in a requirements file is expanded by pip from the environment: the container gets the ones set here,
    # as it gets index credentials (never on a command line).
    values = os.environ if environ is None else environ
    env.update({name: values[name] for name in sorted(requirements.variables) if values.get(name)})
    # Our own index settings (with their credentials) win over the host's PIP_* variables.
    env.update(options.index.pip_env())
    ca = host_ca_bundle(environ)
    if ca is not None:
        shutil.copyfile(ca, context / CA_FILE)
        (context / CA_FILE).chmod(0o644)
    if write_host_env and env:
        secret_file = context / HOST_ENV_FILE
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(env, handle)
    # Readable by the container user (CDK runs it as the calling user; the builder too).
    for path in (root, req_root, context, *(p for p in (package, *package.rglob("*")) if p.is_dir())):
        path.chmod(0o755)
    return StagedInput(root=root, requirements=main_rel, host_env=env)
