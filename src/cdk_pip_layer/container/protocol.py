"""The container build, shared by the container builder and the CDK construct's Docker fallback.

Both run the same command in the Lambda build image, against the same staged input directory, so they cannot
drift from each other, and the build inside the container is this engine itself (copied into the input), so it
cannot drift from the local build either. The image needs nothing but its own Python and pip: the engine's one
third-party import, ``packaging``, is taken from pip's vendored copy when it is not installed.

Layout of the staged input (mounted at ``/asset-input``)::

    requirements/…            the requirements file and every file it includes, in their relative layout
    .cdk-pip-layer/run.py     the entry point (CONTAINER_COMMAND runs it)
    .cdk-pip-layer/cdk_pip_layer/…   a copy of this engine
    .cdk-pip-layer/build.json the build options (no credentials)
    .cdk-pip-layer/host.env.json     host settings: proxies, index credentials (mode 0600; only when staged for
                                     CDK, which cannot pass them otherwise; deleted right after bundling)
    .cdk-pip-layer/ca-bundle.crt     the host's CA bundle (PIP_CERT / REQUESTS_CA_BUNDLE / SSL_CERT_FILE)

Everything host-specific travels in the staged input, never in the container command, its environment or its
mounts: those are the same on every machine, so the CDK asset hash does not depend on the host.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine.index import host_ca_bundle
from cdk_pip_layer.engine.options import LayerBuildOptions
from cdk_pip_layer.engine.requirements import read_requirements

CONTAINER_INPUT = "/asset-input"
CONTAINER_OUTPUT = "/asset-output"
CONTEXT_DIR = ".cdk-pip-layer"
CACHE_MOUNT = "/cdk-pip-layer-cache"
# Under CACHE_MOUNT: the wheels builds downloaded, kept for the next build (pip's HTTP cache is the rest).
WHEELHOUSE_DIR = "wheelhouse"
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
# Where the build inside the container leaves its error (in the staged input's context directory, when that is
# writable: the CDK fallback mounts it read-write), so that the host can raise the engine's own message.
ERROR_FILE = "error.json"
# Where the container builder asks the build to write its summary (the CDK fallback does not set it: CDK wants
# nothing but layer.zip in the output directory).
RESULT_VARIABLE = "CDK_PIP_LAYER_RESULT"
RESULT_MOUNT = "/cdk-pip-layer-result"
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


@dataclass(frozen=True)
class StagedInput:
    root: Path
    requirements: str  # path of the requirements file, relative to root
    host_env: dict[str, str]  # what the container's environment needs from this host (may hold credentials)


def host_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy and pip settings of this host that a container build needs."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in (*PROXY_VARIABLES, *PIP_VARIABLES) if env.get(name)}


# What the build inside the image runs: the engine wing and this wing's entry point and protocol, nothing else
# (no CDK adapter, no Docker SDK builder). The package's own __init__ is replaced by an empty one.
_STAGED_CONTAINER_MODULES = ("__init__.py", "protocol.py", "entry.py")


def stage_engine(context: Path) -> Path:
    """Copy the engine and the in-image entry point into ``context/cdk_pip_layer``; return that directory."""
    source = Path(__file__).resolve().parent.parent
    package = context / "cdk_pip_layer"
    (package / "container").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""cdk-pip-layer\'s engine, staged for a container build."""\n', "utf-8")
    for name in _STAGED_CONTAINER_MODULES:
        shutil.copyfile(source / "container" / name, package / "container" / name)
    engine = package / "engine"
    engine.mkdir(exist_ok=True)
    for module in sorted((source / "engine").glob("*.py")):
        shutil.copyfile(module, engine / module.name)
    return package


def stage_input(
    options: LayerBuildOptions,
    root: Path,
    *,
    use_cache: bool = True,
    write_host_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> StagedInput:
    """Write everything the container build needs into ``root`` (created if needed).

    ``write_host_env`` stores proxies and index credentials in a 0600 file for the CDK Docker fallback, which has
    no other way to pass them without making them part of the asset hash or a command line; the caller deletes
    ``root`` as soon as bundling is over. The container builder passes them as container environment instead.
    """
    requirements = read_requirements(options.requirements)
    files = [Path(f) for f in requirements.files]
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
    settings = {
        "requirements": main_rel,
        "runtime": options.runtime,
        "architecture": options.architecture,
        "exclude": list(options.exclude),
        "extra_installer_args": list(options.extra_installer_args),
        "verify": options.verify,
        "use_cache": use_cache,
        "index": options.index.fingerprint(),
    }
    (context / "build.json").write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")

    env = host_environment(environ)
    # Our own index settings (with their credentials) win over the host's PIP_* variables.
    env.update(options.index.pip_env())
    ca = host_ca_bundle(environ)
    if ca is not None:
        shutil.copyfile(ca, context / CA_FILE)
        (context / CA_FILE).chmod(0o644)
    if write_host_env and env:
        secret_file = context / "host.env.json"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(env, handle)
    # Readable by the container user (CDK runs it as the calling user; the builder too).
    for path in (root, req_root, context, package, *(p for p in package.rglob("*") if p.is_dir())):
        path.chmod(0o755)
    return StagedInput(root=root, requirements=main_rel, host_env=env)
