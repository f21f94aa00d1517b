"""The walls between the wings, checked by running the code: what a container build stages is the engine and the
in-image entry alone, and that code imports nothing of CDK, jsii, the Docker SDK or the AWS SDK.

(ruff's banned-api rules in each wing's ruff.toml check the same statically.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cdk_pip_layer
from cdk_pip_layer import LayerBuildOptions
from cdk_pip_layer.container.protocol import CONTEXT_DIR, stage_input
from cdk_pip_layer.engine.inputs.requirements import read_requirements

FORBIDDEN = ("aws_cdk", "constructs", "jsii", "docker", "boto3", "botocore")

_IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import cdk_pip_layer.engine
names = ["cdk_pip_layer.container.entry", "cdk_pip_layer.container.protocol"]
names += [m.name for m in pkgutil.walk_packages(cdk_pip_layer.engine.__path__, "cdk_pip_layer.engine.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "modules": sorted(sys.modules), "file": cdk_pip_layer.engine.__file__}))
"""


def _staged(tmp_path: Path) -> Path:
    requirements = tmp_path / "project" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    options = LayerBuildOptions.parse(requirements=requirements)
    stage_input(options, read_requirements(requirements), tmp_path / "input", environ={})
    return tmp_path / "input" / CONTEXT_DIR


def test_only_the_engine_and_the_in_image_entry_are_staged(tmp_path: Path) -> None:
    package = _staged(tmp_path) / "cdk_pip_layer"
    staged = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    source = Path(cdk_pip_layer.__file__ or "").parent
    engine = sorted(f"engine/{p.relative_to(source / 'engine').as_posix()}" for p in (source / "engine").rglob("*.py"))
    assert staged == sorted(
        ["__init__.py", "container/__init__.py", "container/entry.py", "container/protocol.py", *engine]
    )
    assert "import" not in (package / "__init__.py").read_text(encoding="utf-8")  # not the package's own __init__


def test_staged_code_runs_isolated_without_cdk_or_docker(tmp_path: Path) -> None:
    context = _staged(tmp_path)
    # -I: no PYTHONPATH, no user site, no current directory; this interpreter's site-packages still has aws_cdk and
    # docker, so an import of either would succeed and show up in sys.modules.
    done = subprocess.run(
        [sys.executable, "-I", "-c", _IMPORT_EVERYTHING, str(context)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Path(report["file"]).is_relative_to(context)  # the staged copy ran, not the installed package
    assert len(report["imported"]) > 10
    leaked = [m for m in report["modules"] if m.split(".")[0] in FORBIDDEN]
    assert leaked == []
