"""The check of a layer a build made: :func:`verify_layer_zip` with what the build knows, one error for all its
findings. Every builder (local, container) and the CDK adapter's Docker fallback call it the same way."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import Requirement

from cdk_pip_layer.engine.dist_cache import DistCache
from cdk_pip_layer.engine.findings import parse_ignore
from cdk_pip_layer.engine.options import LayerBuildOptions

from .layer_import import StartedImport, start_import
from .smoke_import import Importer
from .verifier import BuildContext, ImportMode, LayerVerification, verify_layer_zip

_log = logging.getLogger("cdk_pip_layer")


def verify_built_layer(
    zip_path: Path,
    options: LayerBuildOptions,
    *,
    requirements: Sequence[Requirement] = (),
    built_from_source: Sequence[str] = (),
    wheels_only: bool = True,
    python: str | None = None,
    layer_dir: Path | None = None,
    imported_in: str | None = None,
    importer: Importer | None = None,
    subject: str | None = None,
    cache: DistCache | None = None,
    started: StartedImport | None = None,
) -> LayerVerification:
    """Verify the layer a build made for ``options`` (their target and ``verify_ignore``); raise one
    :class:`VerificationError` listing every error.

    ``requirements``, ``built_from_source``, ``wheels_only``: what the build knows (see :class:`BuildContext`).
    The smoke import runs here (``python``, or an interpreter found; in the sandbox ``options.import_sandbox``
    names; in ``layer_dir`` when the layer is on disk already), unless it ran in the build image already
    (``imported_in``: where), or runs with ``importer`` (in a container of the build image). ``cache``: the
    distribution cache; ``started``: the import :func:`start_built_layer_import` started (see
    :func:`verify_layer_zip`).
    """
    mode = ImportMode.DOCKER if importer is not None else ImportMode.OFF if imported_in else ImportMode.AUTO
    verification = verify_layer_zip(
        zip_path,
        options.runtime,
        options.architecture,
        ignore=options.verify_ignore,
        context=BuildContext(
            requirements=tuple(requirements),
            excluded=options.exclude,
            built_from_source=tuple(built_from_source),
            wheels_only=wheels_only,
            on_top_of=options.on_top_of,
        ),
        smoke_import=mode,
        importer=importer,
        import_note=f"ran in {imported_in} during the build" if imported_in else None,
        import_sandbox=options.import_sandbox,
        python=python,
        layer_dir=layer_dir,
        cache=cache,
        started=started,
    )
    for check, reason in verification.report.skipped.items():
        _log.info("verify: %s skipped: %s", check, reason)
    verification.raise_for_errors(subject=subject or f"{options.requirements} for {options.target}")
    return verification


def start_built_layer_import(
    layer_dir: Path, options: LayerBuildOptions, *, python: str | None, cache: DistCache | None
) -> StartedImport | None:
    """Start the smoke import of a build's complete layer directory before its zip is written (None when the build
    does not import here: verification off, the import ignored, or unconfined); pass it to
    :func:`verify_built_layer` and close it."""
    if not options.verify or "import" in parse_ignore(options.verify_ignore):
        return None
    return start_import(
        layer_dir, options.target, python=python, sandbox=options.import_sandbox, bases=options.on_top_of, cache=cache
    )
