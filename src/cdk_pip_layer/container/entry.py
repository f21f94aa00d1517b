"""What runs inside the Lambda build image: the local builder, with the image's Python as the target interpreter.

Standard library and this engine only (``packaging`` comes from pip's vendored copy when needed).
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
from pathlib import Path

from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.index import CA_VARIABLES, IndexSettings, strip_credentials
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.options import LayerBuildOptions
from cdk_pip_layer.engine.process import run

from .protocol import (
    CA_FILE,
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_OUTPUT,
    ERROR_FILE,
    RESULT_VARIABLE,
    VERBOSE_VARIABLE,
    WHEELHOUSE_DIR,
)


def main(context: Path, output: Path | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[cdk-pip-layer container] %(message)s", stream=sys.stderr)
    settings = json.loads((context / "build.json").read_text(encoding="utf-8"))
    host_env_file = context / "host.env.json"
    if host_env_file.is_file():
        os.environ.update(json.loads(host_env_file.read_text(encoding="utf-8")))
    if (context / CA_FILE).is_file():
        for name in CA_VARIABLES:
            os.environ[name] = str(context / CA_FILE)
    cache = os.environ.get("PIP_CACHE_DIR")
    cached = bool(settings.get("use_cache", True) and cache and _writable(Path(cache)))
    if settings.get("use_cache", True) and cache and not cached:
        logging.getLogger("cdk_pip_layer").warning(
            "the pip cache %s is not writable by uid %d: building without it "
            "(for CDK's named volume: 'docker volume rm %s' and build again)",
            cache,
            os.getuid(),
            CACHE_VOLUME,
        )
    if not cached:
        os.environ.pop("PIP_CACHE_DIR", None)
        os.environ["PIP_NO_CACHE_DIR"] = "1"
    index = settings.get("index") or {}
    options = LayerBuildOptions(
        requirements=context.parent / settings["requirements"],
        runtime=settings["runtime"],
        architecture=settings["architecture"],
        exclude=tuple(settings["exclude"]),
        # Index URLs with their credentials reach pip through PIP_INDEX_URL / PIP_EXTRA_INDEX_URL.
        index=IndexSettings(trusted_hosts=tuple(index.get("trusted_hosts") or ())),
        installer="pip",
        python_executable=sys.executable,
        extra_installer_args=tuple(settings["extra_installer_args"]),
        verify=settings["verify"],
        native_builds=True,
    )
    out = output or Path(CONTAINER_OUTPUT)
    pip_log = None
    if os.environ.get(VERBOSE_VARIABLE) == "1":
        # The engine captures pip's output; pip's own log (PIP_LOG, appended to by every pip run) shows it all.
        pip_log = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-log-")) / "pip.log"
        os.environ["PIP_LOG"] = str(pip_log)
    if cached and Path(CACHE_MOUNT).is_dir():
        wheelhouse = Path(CACHE_MOUNT) / WHEELHOUSE_DIR / _index_key()
        if _writable(wheelhouse):
            options = _with_wheelhouse(options, wheelhouse)
    try:
        with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-") as build_dir:
            result = PipBasedLambdaLayerLocalBuilder.from_options(options, build_dir).build()
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.zip_path, out / "layer.zip")
            (out / "layer.zip").chmod(0o644)
            report = os.environ.get(RESULT_VARIABLE)
            if report:
                Path(report).write_text(
                    json.dumps(
                        {
                            "installer": result.installer,
                            "distributions": list(result.distributions),
                            "excluded": list(result.excluded),
                            "built_from_source": list(result.built_from_source),
                            "warnings": list(result.warnings),
                        }
                    ),
                    encoding="utf-8",
                )
    except LayerBuildError as exc:
        _echo_pip_log(pip_log)
        print(f"cdk-pip-layer: error: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):  # a read-only input (the container builder reads the output instead)
            (context / ERROR_FILE).write_text(json.dumps(exc.to_dict()), encoding="utf-8")
        return exc.exit_code
    _echo_pip_log(pip_log)
    print(result.summary(with_path=False))  # the path is the container's, of no use on the host
    return 0


def _index_key() -> str:
    """One wheelhouse per set of indexes (URLs without credentials): a file name means one file on one index, but
    two indexes may serve different files under the same name."""
    urls = [os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"]
    urls += (os.environ.get("PIP_EXTRA_INDEX_URL") or "").split()
    canonical = json.dumps([strip_credentials(url).rstrip("/") for url in urls])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _with_wheelhouse(options: LayerBuildOptions, wheelhouse: Path) -> LayerBuildOptions:
    """Download the wheels of this build into ``wheelhouse`` on the cache mount, where they stay for the next
    build (a wheel already there is not downloaded again), and install from there alone.

    pip's HTTP cache cannot be relied on for this: it keeps only responses with caching headers, and a proxy that
    strips them (TLS-inspecting ones do) makes every download uncacheable. Nor can ``--find-links`` next to the
    index: for the same file pip's resolver takes the index's copy. So: ``pip download`` resolves against the index
    (a warm build fetches only the index pages), then the install runs with ``--no-index`` on the wheelhouse. When
    the download fails (a source-only requirement, an index error), the build runs as without a wheelhouse and
    reports pip's own error.
    """
    requirements = options.requirements.resolve()
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--retries",
        "0",
        "--dest",
        str(wheelhouse),
        "--find-links",
        str(wheelhouse),
        *options.target.pip_target_args(native_builds=True),
        "-r",
        str(requirements),
        *options.extra_installer_args,
    ]
    log = logging.getLogger("cdk_pip_layer")
    start = time.perf_counter()
    done = run(argv, cwd=requirements.parent)
    if not done.ok:
        log.info("wheel cache: pip could not fetch every wheel; building without the cache")
        return options
    log.info("wheel cache: %s ready in %.2f s", wheelhouse, time.perf_counter() - start)
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
