"""What runs inside the Lambda build image: the local builder, with the image's Python as the target interpreter.

Standard library, the engine and the protocol only (``packaging`` comes from pip's vendored copy when needed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cdk_pip_layer.engine.base_layer import constraint_args
from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.index import CA_VARIABLES, strip_credentials
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.install.installers import PipInstaller
from cdk_pip_layer.engine.interpreters import probe
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import InstallerChoice, LayerBuildOptions
from cdk_pip_layer.engine.progress import heartbeat
from cdk_pip_layer.engine.result import LAYER_ZIP, LayerBuildResult

from .protocol import (
    CA_FILE,
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_OUTPUT,
    HOST_ENV_FILE,
    LAYOUT_BUILD,
    LAYOUT_VARIABLE,
    PINNED_RECORDS,
    RESULT_VARIABLE,
    UV_CACHE_DIR,
    VERBOSE_VARIABLE,
    WHEELHOUSE_DIR,
    read_request,
    write_empty_zip,
    write_outcome,
)

_log = logging.getLogger("cdk_pip_layer")


def main(context: Path, output: Path | None = None) -> int:
    # Quiet unless asked (the host says what was built, in one line): a heartbeat for long work, and errors.
    verbose = os.environ.get(VERBOSE_VARIABLE) == "1"
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="[cdk-pip-layer container] %(message)s",
        stream=sys.stderr,
    )
    request = read_request(context)
    cached = _apply_host_settings(context, use_cache=request.use_cache)
    # In the image, pip runs with the image's own Python: the runtime's exact version, glibc and machine, and a
    # toolchain for source distributions with native code. Index URLs with their credentials reach pip through
    # PIP_INDEX_URL / PIP_EXTRA_INDEX_URL. The host's uv, when it was staged, installs as on the host (installer
    # auto: checked against pip's choice, and pip builds when they differ or a source distribution has native
    # code).
    options = dataclasses.replace(
        request.options,
        python_executable=sys.executable,
        native_builds=True,
        uv_executable=str(request.uv) if request.uv else None,
    )
    if request.uv is None and request.why_no_uv and options.installer is not InstallerChoice.PIP:
        _log.info("uv: not used in the image: %s", request.why_no_uv)
    out = output or Path(CONTAINER_OUTPUT)
    outcome_dir = Path(os.environ.get(RESULT_VARIABLE) or context)
    pip_log = None
    if verbose:
        # The engine captures pip's output; pip's own log (PIP_LOG, appended to by every pip run) shows it all.
        pip_log = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-log-")) / "pip.log"
        os.environ["PIP_LOG"] = str(pip_log)
    wheelhouse = None
    pip_first = options.uv_executable is None or options.installer is InstallerChoice.PIP
    if pip_first and cached and Path(CACHE_MOUNT).is_dir():  # uv keeps its own cache there
        wheelhouse = Path(CACHE_MOUNT) / WHEELHOUSE_DIR / _index_key()
        if not _writable(wheelhouse):
            wheelhouse = None
    whole_build = os.environ.get(LAYOUT_VARIABLE) == LAYOUT_BUILD
    try:
        with heartbeat(_say):
            result = _build(options, wheelhouse, lambda opts: _build_into(opts, out, whole_build=whole_build))
        with contextlib.suppress(OSError):  # a read-only input: the host reads the output and the log then
            write_outcome(outcome_dir, result)
    except LayerBuildError as exc:
        _echo_pip_log(pip_log)
        try:
            write_outcome(outcome_dir, exc)
        except OSError:  # the host cannot read it: say it here, and fail the run
            print(f"cdk-pip-layer: error: {exc}", file=sys.stderr)
            return exc.exit_code
        if whole_build:
            return exc.exit_code
        # For CDK: the run succeeds with an empty zip, and the construct reads the error and reports it on the layer
        # (an error annotation: one message, no trace of CDK's docker run) and removes the zip from cdk.out.
        out.mkdir(parents=True, exist_ok=True)
        write_empty_zip(out / LAYER_ZIP)
        return 0
    _echo_pip_log(pip_log)
    if verbose:
        print(result.summary(with_path=False))  # the path is the container's, of no use on the host
    return 0


def _say(text: str) -> None:
    print(f"cdk-pip-layer (in the build image): {text}", file=sys.stderr, flush=True)


def _build_into(options: LayerBuildOptions, out: Path, *, whole_build: bool) -> LayerBuildResult:
    """Build; ``out`` gets ``layer.zip``, and ``artifacts/`` too for the container builder (``whole_build``), which
    then has nothing to unzip. CDK wants the zip alone: the build happens in the container's own temporary
    directory, which goes with the container.

    No distribution cache in the image: nothing but the download cache outlives the container, and the signing
    key (which a cache shared with the host would need) never enters it."""
    if whole_build:
        return PipBasedLambdaLayerLocalBuilder.from_options(options, out, reuse=False).build()
    with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-") as build_dir:
        result = PipBasedLambdaLayerLocalBuilder.from_options(options, build_dir, reuse=False).build()
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.zip_path, out / LAYER_ZIP)
        (out / LAYER_ZIP).chmod(0o644)
    return result


def _build(
    options: LayerBuildOptions, wheelhouse: Path | None, build: Callable[[LayerBuildOptions], LayerBuildResult]
) -> LayerBuildResult:
    """Build with the wheel cache when there is one.

    Fully pinned requirements that an earlier build fetched completely into the wheelhouse are installed from it
    alone: no index is asked (as the layer cache reuses a layer of fully pinned requirements). Otherwise, or when
    that fails (a wheel was removed from the cache), ``pip download`` fills the wheelhouse first (see
    :func:`_fetch_wheels`).
    """
    if wheelhouse is None:
        return build(options)
    record = _pinned_record(wheelhouse, options)
    if record is not None and record.is_file():
        _log.info("wheel cache: every wheel of these pinned requirements is in %s; no index is asked", wheelhouse)
        try:
            return build(_from_wheelhouse(options, wheelhouse))
        except LayerBuildError as exc:
            _log.info("wheel cache: building from it alone failed (%s); asking the index", exc.what)
            record.unlink(missing_ok=True)
    fetched = _fetch_wheels(options, wheelhouse)
    result = build(_from_wheelhouse(options, wheelhouse) if fetched else options)
    if fetched and record is not None:
        with contextlib.suppress(OSError):
            record.parent.mkdir(exist_ok=True)
            record.touch()
    return result


def _pinned_record(wheelhouse: Path, options: LayerBuildOptions) -> Path | None:
    """Where the wheelhouse records that it holds every wheel of these requirements, for this target; None when
    the requirements are not fully pinned (the index may have newer releases for them tomorrow)."""
    requirements = read_requirements(options.requirements)
    if not requirements.fully_pinned:
        return None
    archives = [line.local_file for line in requirements.requirements if line.local_file is not None]
    key = {
        "requirements": [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in requirements.files],
        "local-archives": [hashlib.sha256(f.read_bytes()).hexdigest() for f in archives],
        "target": str(options.target),
        "installer-args": list(options.extra_installer_args),
        **({"on-top-of": [base.fingerprint() for base in options.on_top_of]} if options.on_top_of else {}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()
    return wheelhouse / PINNED_RECORDS / digest


def _apply_host_settings(context: Path, *, use_cache: bool) -> bool:
    """Put the host's settings staged in ``context`` (proxies, index credentials, the CA bundle) into this process's
    environment, and pip's cache when it is wanted and writable. Returns whether the cache is used."""
    host_env_file = context / HOST_ENV_FILE
    if host_env_file.is_file():
        os.environ.update(json.loads(host_env_file.read_text(encoding="utf-8")))
    if (context / CA_FILE).is_file():
        for name in CA_VARIABLES:
            os.environ[name] = str(context / CA_FILE)
    cache = os.environ.get("PIP_CACHE_DIR")
    cached = bool(use_cache and cache and _writable(Path(cache)))
    uv_cache = Path(CACHE_MOUNT) / UV_CACHE_DIR
    if cached and _writable(uv_cache):
        os.environ["UV_CACHE_DIR"] = str(uv_cache)
    else:
        os.environ.pop("UV_CACHE_DIR", None)
        os.environ["UV_NO_CACHE"] = "1"
    if use_cache and cache and not cached:
        _log.warning(
            "the pip cache %s is not writable by uid %d: building without it "
            "(for CDK's named volume: 'docker volume rm %s' and build again)",
            cache,
            os.getuid(),
            CACHE_VOLUME,
        )
    if not cached:
        os.environ.pop("PIP_CACHE_DIR", None)
        os.environ["PIP_NO_CACHE_DIR"] = "1"
    return cached


def _index_key() -> str:
    """One wheelhouse per set of indexes (URLs without credentials): a file name means one file on one index, but
    two indexes may serve different files under the same name."""
    urls = [os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"]
    urls += (os.environ.get("PIP_EXTRA_INDEX_URL") or "").split()
    canonical = json.dumps([strip_credentials(url).rstrip("/") for url in urls])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _fetch_wheels(options: LayerBuildOptions, wheelhouse: Path) -> bool:
    """Download the wheels of this build into ``wheelhouse`` on the cache mount, where they stay for the next
    build (a wheel already there is not downloaded again). Returns whether every one is there.

    pip's HTTP cache cannot be relied on for this: it keeps only responses with caching headers, and a proxy that
    strips them (TLS-inspecting ones do) makes every download uncacheable. Nor can ``--find-links`` next to the
    index: for the same file pip's resolver takes the index's copy. So: ``pip download`` resolves against the index
    (a warm build fetches only the index pages), then the install runs with ``--no-index`` on the wheelhouse. When
    the download fails (a source-only requirement, an index error), the build runs as without a wheelhouse and
    reports pip's own error.
    """
    interpreter = probe(sys.executable)
    if interpreter is None:  # pragma: no cover - the interpreter running this code
        return False
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-constraints-") as scratch:
        # On top of base layers: the wheels of their versions, which the install is held to.
        held = constraint_args(options.on_top_of, Path(scratch))
        done = PipInstaller(interpreter, native_builds=True).download(
            options.requirements,
            wheelhouse,
            target=options.target,
            index=options.index,
            extra_args=(*options.extra_installer_args, *held),
        )
    if not done.ok:
        _log.info("wheel cache: pip could not fetch every wheel; building without the cache")
        return False
    _log.info("wheel cache: %s ready in %.2f s", wheelhouse, time.perf_counter() - start)
    return True


def _from_wheelhouse(options: LayerBuildOptions, wheelhouse: Path) -> LayerBuildOptions:
    """The options installing from ``wheelhouse`` alone."""
    extra = (*options.extra_installer_args, "--no-index", "--find-links", str(wheelhouse))
    return dataclasses.replace(options, extra_installer_args=extra)


def _echo_pip_log(pip_log: Path | None) -> None:
    if pip_log is not None and pip_log.is_file():
        for line in pip_log.read_text(encoding="utf-8", errors="replace").splitlines():
            print(f"pip: {line}", file=sys.stderr)
        pip_log.unlink()


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)
