"""The README's first command as a new user sees it: `node_modules/.bin/cdk synth` in the checkout prints the bundling
lines, our build summary and the template, and nothing else: no Node.js end-of-life banner, no Python bytes literals,
no warning about unconfigured feature flags (cdk.json carries the ones aws-cdk-lib recommends)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from .conftest import CDK, REPO


def _recommended_feature_flags() -> dict[str, Any]:
    """The flags the installed aws-cdk-lib recommends, which `cdk init` writes into a new app's cdk.json."""
    spec = importlib.util.find_spec("aws_cdk")  # without importing it: that would start jsii
    assert spec is not None and spec.origin is not None
    [bundle] = (Path(spec.origin).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, Any] = json.load(member)
    return flags


def test_cdk_json_carries_the_recommended_feature_flags() -> None:
    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]
    assert context == _recommended_feature_flags(), (
        f"cdk.json's context is not what aws-cdk-lib {importlib.metadata.version('aws-cdk-lib')} recommends: "
        "copy the context of the cdk.json that `cdk init app --language python` writes"
    )


def test_the_main_command_prints_what_a_user_wants_to_see(tmp_path: Path) -> None:
    # A user's shell: none of the test session's jsii or CDK settings, not CI, whatever Node is first on PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JSII_", "CDK_")) and k != "CI"}
    env["CDK_PIP_LAYER_CACHE_DIR"] = str(tmp_path / "cache")  # a first build, not the user's cache
    env["CDK_DISABLE_VERSION_CHECK"] = "1"  # a newer CLI on npm is news, not noise, but not this test's business
    run = subprocess.run(
        [str(CDK), "synth", "--no-notices", "--output", str(tmp_path / "cdk.out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    messages = run.stderr.splitlines()
    assert messages[0] == "Bundling asset CdkPipLayerExample/HttpJsonLayer/Code/Stage..."
    assert [m for m in messages[1:] if not m.startswith("cdk-pip-layer: CdkPipLayerExample/HttpJsonLayer: ")] == []
    # Quiet on success: CDK's line and ours, one line that says what was built and where the report went.
    [ours] = messages[1:]
    assert " built locally with pip in " in ours or " built locally with uv in " in ours
    assert "; report " in ours
    assert run.stdout.startswith("Resources:\n") and "Type: AWS::Lambda::LayerVersion" in run.stdout
    for line in (run.stdout + run.stderr).splitlines():
        assert not line.startswith(("b'", 'b"')), line
    for noise in ("feature flags", "end-of-life", "not supported", "deprecated"):
        assert noise not in run.stdout + run.stderr
