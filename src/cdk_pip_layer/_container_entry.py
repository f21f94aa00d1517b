"""What runs inside the Lambda build image: the local builder, with the image's Python as the target interpreter.

Standard library and this engine only (``packaging`` comes from pip's vendored copy when needed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ._builder import PipBasedLambdaLayerLocalBuilder
from ._container import CA_FILE, CA_VARIABLES, CONTAINER_OUTPUT, RESULT_VARIABLE
from ._errors import LayerBuildError
from ._index import IndexSettings
from ._options import LayerBuildOptions


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
    if not settings.get("use_cache", True) or (cache and not _writable(Path(cache))):
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
        print(f"cdk-pip-layer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(result.summary())
    return 0


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)
