"""The walls between the wings, checked by running the code: what a container build stages is the engine and the
in-image entry alone, and that code imports nothing of CDK, jsii, the Docker SDK or the AWS SDK.

(ruff's banned-api rules in each wing's ruff.toml check the same statically.)
"""

from __future__ import annotations

import ast
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


# --- the engine's wall: an allow-list -------------------------------------------------------------------------------

ENGINE = Path(cdk_pip_layer.__file__ or "").parent / "engine"
# What the engine may import anywhere: the standard library, packaging (pip vendors it in the build image), tomli on
# Python 3.10 (tomllib from 3.11: not among 3.10's standard library names); typing_extensions only for type checking.
ENGINE_ALLOWED = {"packaging", "tomli", "tomllib", "typing_extensions"}
# The verifier's host-only libraries, imported inside functions (their absence in the build image defers that
# work to the host): the module that may, and the library.
HOST_ONLY_LIBRARIES = {
    ("verify/elf.py", "elftools"),
    ("verify/report.py", "cyclonedx"),
    ("verify/report.py", "packageurl"),  # cyclonedx-python-lib's own dependency, for the SBOM's package URLs
    ("interpreters.py", "uv"),  # the uv package's binary, found through it on the host (the image gets it staged)
}
# The stage packages and what each may import of the engine besides its own package and the engine's root (the
# value types; layer/ proves a slimmed tree with the verifier); the root imports no stage package, but for the local
# build (local.py), which runs them all.
STAGE_USES = {"inputs": set(), "install": {"inputs"}, "layer": {"verify"}, "verify": set()}
PIPELINE = {"local.py"}


def _allowed(where: str, top: str, *, module_level: bool) -> bool:
    if top in sys.stdlib_module_names or top == "__future__" or top in ENGINE_ALLOWED:
        return True
    return (where, top) in HOST_ONLY_LIBRARIES and not module_level


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, imported at module level) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["cdk_pip_layer", *path.relative_to(ENGINE.parent).parent.parts]
    top = {id(node) for node in tree.body}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            name = ".".join(part for part in (base, node.module) if part)
            found.append((name, id(node) in top))
    return found


def test_the_engine_imports_only_what_it_may() -> None:
    """An allow-list, not a deny-list: any third-party import the engine gains fails here (the build image has
    the standard library and pip's vendored packaging alone), and so does an arrow up from a stage package."""
    problems = []
    for path in sorted(ENGINE.rglob("*.py")):
        where = path.relative_to(ENGINE).as_posix()
        stage = where.split("/")[0] if "/" in where else None
        for name, module_level in _imports(path):
            top = name.split(".")[0]
            if name.startswith("cdk_pip_layer."):
                parts = name.split(".")
                if parts[1] != "engine":
                    problems.append(f"{where}: {name} (the engine imports nothing above it)")
                    continue
                target = parts[2] if len(parts) > 2 and (ENGINE / parts[2]).is_dir() else None
                if target is None or target == stage or where in PIPELINE:
                    continue
                if stage is None:
                    problems.append(f"{where}: {name} (a value type of the engine's root uses no stage package)")
                elif target not in STAGE_USES[stage]:
                    problems.append(f"{where}: {name} ({stage}/ may use {sorted(STAGE_USES[stage]) or 'no stage'})")
            elif not _allowed(where, top, module_level=module_level):
                problems.append(f"{where}: {name}")
    assert problems == []


# --- the AWS SDK's wall: one module ---------------------------------------------------------------------------------

PACKAGE = ENGINE.parent
AWS_SDK = {"boto3", "botocore"}
# The one module that imports the AWS SDK: the session and its clients, their configuration, the SDK's errors.
# Publishing, the S3 store and the KMS signer reach AWS through it (each other wing's ruff.toml bans the SDK too).
AWS_SDK_HOME = "aws/session.py"


def test_only_the_aws_session_imports_the_aws_sdk() -> None:
    found = sorted(
        f"{path.relative_to(PACKAGE).as_posix()}: {name}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() != AWS_SDK_HOME
        for name, _ in _imports(path)
        if name.split(".")[0] in AWS_SDK
    )
    assert found == []
    assert {name.split(".")[0] for name, _ in _imports(PACKAGE / AWS_SDK_HOME)} >= AWS_SDK
