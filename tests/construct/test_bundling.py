"""The bundling decision: build locally, fall back to Docker, or fail with our message; and no work when CDK does
not ask for a bundle."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, TextIO, cast

import aws_cdk as cdk
import pytest

from cdk_pip_layer import (
    ContainerBuildError,
    IndexSettings,
    InstallError,
    LayerBuildOptions,
    NoTargetInstallerError,
    PipLambdaLayer,
)
from cdk_pip_layer.cdk.bundling import BundlingMode, LocalBundler, bundling_options
from cdk_pip_layer.container.protocol import (
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_COMMAND,
    CONTAINER_ENVIRONMENT,
    PIP_VARIABLES,
    PROXY_VARIABLES,
)
from cdk_pip_layer.engine import progress
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.engine.result import LayerBuildResult
from cdk_pip_layer.engine.scratch import Owner
from cdk_pip_layer.store import LocalLayerStore

from ._helpers import PINNED, files_under, layer_asset_hash, make_app, synth_template
from .conftest import FakeBuild, FakeDocker

SECRET = "tok3n-s3cret-value"
PRIVATE_INDEX = f"https://ci-user:{SECRET}@pypi.example.com/simple"
IMPOSSIBLE = NoTargetInstallerError(
    "A local build for python3.12/x86_64 is impossible on this host",
    subject="python3.12/x86_64",
    details=["no Python 3.12 for linux/x86_64 with pip was found"],
    hint="install Python 3.12 or uv",
)


def _host_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """This host's proxy and pip settings, exactly ``env``."""
    for name in (*PROXY_VARIABLES, *PIP_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _bundler(
    tmp_path: Path, requirements: Path, mode: BundlingMode, stderr: TextIO | None = None, **options: Any
) -> LocalBundler:
    return LocalBundler(
        options=LayerBuildOptions.parse(requirements=requirements, **options),
        mode=mode,
        key="k" * 64,
        staging_dir=tmp_path / "staged-input",
        store=LocalLayerStore(tmp_path / "layer-cache"),
        label="Stack/Layer",
        stderr=stderr,
    )


def _output_dir(tmp_path: Path) -> Path:
    out = tmp_path / "cdk.out" / "asset.x-building"
    out.mkdir(parents=True)
    (out / "leftover.txt").write_text("from an earlier attempt")
    (out / "sub").mkdir()
    return out


def _call(bundler: LocalBundler, out: Path) -> bool:
    return bundler.try_bundle(str(out), bundling_options(bundler.options, bundler))


# --- try_bundle, called directly: the decision itself ------------------------------------------------------------


def test_local_possible_builds_layer_zip_into_output_dir(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    bundler = _bundler(tmp_path, requirements, BundlingMode.AUTO)
    out = tmp_path / "cdk.out" / "asset.x-building"
    out.mkdir(parents=True)
    assert _call(bundler, out) is True
    assert sorted(p.name for p in out.iterdir()) == ["layer.zip"]
    assert zipfile.ZipFile(out / "layer.zip").namelist() == ["python/fake_pkg/__init__.py"]
    assert len(fake_build.calls) == 1
    assert bundler.served == "local"
    assert not list((tmp_path / "cdk.out").glob(".cdk-pip-layer-build-*"))  # the build directory is gone
    assert bundler.result is not None and bundler.result.installer == "fake"  # the construct says it, in one line
    assert capsys.readouterr().err == ""  # quiet on success: nothing before the construct's one line


def test_local_impossible_in_auto_mode_cleans_output_explains_and_stages_for_docker(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_build.error = IMPOSSIBLE
    _host_env(monkeypatch, HTTPS_PROXY="http://proxy.corp:3128")
    bundler = _bundler(tmp_path, requirements, BundlingMode.AUTO, index=IndexSettings(index_url=PRIVATE_INDEX))
    out = _output_dir(tmp_path)
    assert _call(bundler, out) is False
    assert list(out.iterdir()) == []
    err = capsys.readouterr().err
    # The fallback and its reason, in one line.
    assert err == (
        "cdk-pip-layer: Stack/Layer: building in public.ecr.aws/sam/build-python3.12:latest-x86_64 (linux/amd64): "
        "a local build is impossible: A local build for python3.12/x86_64 is impossible on this host\n"
    )
    assert SECRET not in err
    host_env = tmp_path / "staged-input" / ".cdk-pip-layer" / "host.env.json"
    assert stat.S_IMODE(host_env.stat().st_mode) == 0o600
    assert json.loads(host_env.read_text()) == {"HTTPS_PROXY": "http://proxy.corp:3128", "PIP_INDEX_URL": PRIVATE_INDEX}
    assert (tmp_path / "staged-input" / ".cdk-pip-layer" / "run.py").is_file()
    assert bundler.served == "docker"


def test_real_engine_without_an_interpreter_for_the_target_falls_back(
    tmp_path: Path, requirements: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No fake: installer='pip' for python3.14, which this host has no interpreter for."""
    bundler = _bundler(tmp_path, requirements, BundlingMode.AUTO, runtime="python3.14", installer="pip")
    if find_interpreter(bundler.options.target)[0] is not None:
        pytest.skip("this host has a Python 3.14")
    out = _output_dir(tmp_path)
    assert _call(bundler, out) is False
    assert list(out.iterdir()) == []
    assert "a local build is impossible: A local build for python3.14/x86_64 is impossible on this host" in (
        capsys.readouterr().err
    )


def test_docker_mode_never_builds_locally(tmp_path: Path, requirements: Path, fake_build: FakeBuild) -> None:
    bundler = _bundler(tmp_path, requirements, BundlingMode.DOCKER)
    LocalLayerStore(tmp_path / "layer-cache").put("k" * 64, _zip(tmp_path / "cached.zip"), {})
    out = _output_dir(tmp_path)
    assert _call(bundler, out) is False
    assert list(out.iterdir()) == []
    assert fake_build.calls == []
    assert (tmp_path / "staged-input" / ".cdk-pip-layer" / "build.json").is_file()


def test_local_mode_with_local_build_impossible_is_an_error(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_build.error = IMPOSSIBLE
    bundler = _bundler(tmp_path, requirements, BundlingMode.LOCAL)
    out = _output_dir(tmp_path)
    # CDK gets an empty archive; the construct reports the error on the layer and removes the asset again.
    assert _call(bundler, out) is True
    assert [p.name for p in out.iterdir()] == ["layer.zip"]
    assert zipfile.ZipFile(out / "layer.zip").namelist() == []
    assert bundler.error is IMPOSSIBLE
    assert not (tmp_path / "staged-input").exists()
    assert capsys.readouterr().err == ""  # said once, by CDK, as the layer's error


def _zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/cached.py", "")
    return path


# --- through CDK: the construct, the bundling options and the Docker fallback --------------------------------------


def test_bundling_options_are_the_container_design(tmp_path: Path, requirements: Path) -> None:
    bundler = _bundler(tmp_path, requirements, BundlingMode.AUTO, architecture="arm64", runtime="python3.11")
    options = bundling_options(bundler.options, bundler)
    assert options.image.image == "public.ecr.aws/sam/build-python3.11:latest-arm64"
    assert options.command == list(CONTAINER_COMMAND) == ["python3", "/asset-input/.cdk-pip-layer/run.py"]
    assert options.environment == dict(CONTAINER_ENVIRONMENT)
    assert [(v.host_path, v.container_path) for v in options.volumes or []] == [(CACHE_VOLUME, CACHE_MOUNT)]
    assert options.platform == "linux/arm64"
    assert options.output_type == cdk.BundlingOutput.ARCHIVED
    assert options.local is cast(object, bundler)


def test_construct_bundles_locally_through_cdk(tmp_path: Path, requirements: Path, fake_build: FakeBuild) -> None:
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=requirements)
    asset = tmp_path / "cdk.out" / f"asset.{layer_asset_hash(synth_template(app))}.zip"
    assert zipfile.ZipFile(asset).namelist() == ["python/fake_pkg/__init__.py"]
    assert len(fake_build.calls) == 1
    assert list((tmp_path / "tmp").iterdir()) == []  # the staged input is gone


def test_docker_fallback_runs_the_exact_command_and_leaves_no_credentials(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    fake_docker: FakeDocker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_build.error = IMPOSSIBLE
    _host_env(monkeypatch, HTTPS_PROXY=f"http://proxy-user:{SECRET}@proxy.corp:3128")
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=requirements, index=IndexSettings(index_url=PRIVATE_INDEX))
    template = synth_template(app)

    [call] = fake_docker.calls
    assert call["argv"] == [
        "run",
        "--rm",
        "--platform",
        "linux/amd64",
        "-u",
        f"{os.getuid()}:{os.getgid()}",
        "-v",
        "<input>:/asset-input:delegated",
        "-v",
        "<output>:/asset-output:delegated",
        "-v",
        "cdk-pip-layer-pip-cache:/cdk-pip-layer-cache:delegated",
        "--env",
        "HOME=/tmp",
        "--env",
        "PIP_CACHE_DIR=/cdk-pip-layer-cache/pip",
        "--env",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "--env",
        "PYTHONDONTWRITEBYTECODE=1",
        "-w",
        "/asset-input",
        "public.ecr.aws/sam/build-python3.12:latest-x86_64",
        "python3",
        "/asset-input/.cdk-pip-layer/run.py",
    ]
    # While Docker ran, the container found this host's settings in the staged input ...
    assert call["host_env_mode"] == "0o600"
    assert call["host_env_keys"] == ["HTTPS_PROXY", "PIP_INDEX_URL"]
    assert {"build.json", "run.py", "cdk_pip_layer", "host.env.json"} <= set(call["staged"])
    assert call["build_json"]["index"]["index_url"] == "https://pypi.example.com/simple"
    # ... and the staged layer is the container's; nothing with a credential is left anywhere.
    asset = tmp_path / "cdk.out" / f"asset.{layer_asset_hash(template)}.zip"
    assert zipfile.ZipFile(asset).namelist() == ["python/built_in_docker.py"]
    assert list((tmp_path / "tmp").iterdir()) == []
    for path in files_under(tmp_path / "cdk.out", tmp_path / "tmp", tmp_path / "cache"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_docker_mode_through_cdk(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker
) -> None:
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=requirements, bundling="docker")
    synth_template(app)
    assert fake_build.calls == []
    [call] = fake_docker.calls
    assert call["argv"][-3:] == ["public.ecr.aws/sam/build-python3.12:latest-x86_64", *CONTAINER_COMMAND]


def test_a_failed_docker_fallback_says_why_local_was_impossible(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    fake_docker: FakeDocker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_build.error = IMPOSSIBLE
    fake_docker.fail = True
    fake_docker.activate()
    _app, stack = make_app(tmp_path / "cdk.out")
    with pytest.raises(ContainerBuildError) as info:
        PipLambdaLayer(stack, "Layer", requirements=requirements)
    message = str(info.value)
    assert message.startswith(
        "The Docker build of the layer failed (a local build is impossible (A local build for python3.12/x86_64 "
        f"is impossible on this host)) [{requirements} for python3.12/x86_64]"
    )
    assert "docker exited with status 125" in message
    assert "What to do: start Docker" in message
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_build_error_is_the_layers_one_error(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    """CDK's convention for a construct that cannot be made: an error annotation (cdk synth prints it once, as
    "ERROR <message> (Construct Annotations)" above the layer's path, and fails), not an exception whose trace buries
    it and prints it twice."""
    fake_build.error = InstallError(
        "pip failed to install the requirements for python3.12/x86_64",
        subject=str(requirements),
        details=["ERROR: ResolutionImpossible: requests==2.32.3 conflicts with urllib3==0.1"],
        hint="fix the requirement it names and build again.",
    )
    app, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements)
    assert layer.build_error is fake_build.error
    assert _errors(layer) == [str(fake_build.error)]
    # No stack trace of the jsii kernel with it: the CDK CLI prints its first frame ("…/lib/program.js:1:5591") as a
    # line of its own before the message.
    assert [entry.trace for entry in layer.node.metadata if entry.type == "aws:cdk:error"] == [None]
    assert capsys.readouterr().err == "Bundling asset Stack/Layer/Code/Stage...\n"  # nothing of ours but the error
    app.synth()
    # Nothing of the failed build is left in cdk.out (a next synth builds it again), nor in the temporary directory.
    assert [p.name for p in (tmp_path / "cdk.out").glob("asset.*")] == []
    assert list((tmp_path / "tmp").iterdir()) == []


def _errors(layer: PipLambdaLayer) -> list[str]:
    return [str(entry.data) for entry in layer.node.metadata if entry.type == "aws:cdk:error"]


_FAILING_APP = """
import aws_cdk as cdk
from cdk_pip_layer import PipLambdaLayer

app = cdk.App(outdir={outdir!r})
stack = cdk.Stack(app, "Stack")
PipLambdaLayer(stack, "Layer", requirements={requirements!r}, runtime="python3.14", installer="pip", bundling="local")
app.synth()
"""


def test_what_a_user_sees_when_the_layer_cannot_be_built(tmp_path: Path, requirements: Path) -> None:
    """A real app process, the real engine: bundling='local' for a runtime this host has no Python for. The app
    prints nothing of ours; the cloud assembly holds the layer's one error (the CDK CLI prints it and fails: see
    tests/e2e)."""
    app = tmp_path / "app.py"
    app.write_text(_FAILING_APP.format(outdir=str(tmp_path / "cdk.out"), requirements=str(requirements)))
    run = subprocess.run([sys.executable, str(app)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "cdk-pip-layer" not in run.stderr
    # The stack's metadata is in the manifest, or (aws-cdk-lib 2.2xx and later) in a file the manifest names.
    manifest = json.loads((tmp_path / "cdk.out" / "manifest.json").read_text())
    artifact = manifest["artifacts"]["Stack"]
    metadata = artifact.get("metadata") or json.loads(
        (tmp_path / "cdk.out" / artifact["additionalMetadataFile"]).read_text()
    )
    errors = [entry["data"] for entry in metadata["/Stack/Layer"] if entry["type"] == "aws:cdk:error"]
    assert len(errors) == 1
    assert errors[0].startswith("A local build for python3.14/x86_64")
    assert "What to do: install Python 3.14" in errors[0]


# --- no work when CDK does not ask -----------------------------------------------------------------------------


def test_no_build_no_docker_no_files_when_bundling_is_not_required(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker
) -> None:
    """What `cdk ls`, `cdk destroy` and stacks left out with --exclusively give the construct."""
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    PipLambdaLayer(stack, "Auto", requirements=requirements)
    PipLambdaLayer(stack, "Docker", requirements=requirements, bundling="docker", architecture="arm64")
    synth_template(app)
    assert fake_build.calls == []
    assert fake_docker.calls == []
    assert not list((tmp_path / "cdk.out").glob("asset.*"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_only_the_selected_stack_is_bundled(tmp_path: Path, requirements: Path, fake_build: FakeBuild) -> None:
    """`cdk deploy --exclusively Selected`: CDK passes the selected stacks as bundling-stacks."""
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context={"aws:cdk:bundling-stacks": ["Selected"]})
    PipLambdaLayer(cdk.Stack(app, "Selected"), "Layer", requirements=requirements)
    PipLambdaLayer(cdk.Stack(app, "Other"), "Layer", requirements=requirements, runtime="python3.11")
    app.synth()
    assert [str(options.target) for options in fake_build.calls] == ["python3.12/x86_64"]


# --- what a killed synth left behind ---------------------------------------------------------------------------------


def _left_by(parent: Path, prefix: str, owner: Owner, *, secret: bool = False) -> Path:
    path = parent / f"{prefix}{owner.tag}-abcd1234"
    (path / "artifacts" / "python").mkdir(parents=True)
    (path / "layer.zip").write_bytes(b"x" * 1000)
    if secret:
        (path / ".cdk-pip-layer").mkdir()
        (path / ".cdk-pip-layer" / "host.env.json").write_text(json.dumps({"PIP_INDEX_URL": PRIVATE_INDEX}))
    return path


def test_a_synth_removes_what_a_killed_synth_left_and_nothing_of_a_running_one(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild
) -> None:
    """A synth killed mid-build (SIGKILL, a CI timeout) leaves its build directory in cdk.out and its staged input,
    with credentials, in the temporary directory; the next synth removes them, and never a running synth's."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    me = Owner.current()
    dead = Owner(me.host, ended.pid, 7)
    outdir, tmp = tmp_path / "cdk.out", tmp_path / "tmp"
    outdir.mkdir()
    stale_build = _left_by(outdir, ".cdk-pip-layer-build-", dead)
    stale_input = _left_by(tmp, "cdk-pip-layer-input-", dead, secret=True)
    running_build = _left_by(outdir, ".cdk-pip-layer-build-", me)
    running_input = _left_by(tmp, "cdk-pip-layer-input-", me, secret=True)
    app, stack = make_app(outdir)
    PipLambdaLayer(stack, "Layer", requirements=requirements)
    synth_template(app)
    assert len(fake_build.calls) == 1
    assert not stale_build.exists() and not stale_input.exists()
    assert running_build.is_dir() and running_input.is_dir()


@pytest.mark.parametrize(
    "case",
    [
        (PINNED, {}, True),
        ("requests>=2.32\n", {}, True),  # not fully pinned: no layer cache, but the Docker build's wheel cache
        (PINNED, {"cache": False}, False),
    ],
)
def test_the_docker_build_uses_the_wheel_cache_unless_caching_is_off(
    tmp_path: Path, requirements: Path, fake_docker: FakeDocker, case: tuple[str, dict[str, Any], bool]
) -> None:
    content, props, wheel_cache = case
    requirements.write_text(content, encoding="utf-8")
    app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=requirements, bundling="docker", **props)
    synth_template(app)
    [call] = fake_docker.calls
    assert call["build_json"]["use_cache"] is wheel_cache


def test_a_long_build_shows_it_is_alive(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cdk synth of a layer that builds past the heartbeat interval (10 s; here 0.05 s) says it is still working,
    and in which phase."""
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.05)
    stderr = io.StringIO()
    build = fake_build.build

    def slow(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        with progress.phase("install for python3.12/x86_64 with uv"):
            deadline = time.monotonic() + 30
            while "still working" not in stderr.getvalue() and time.monotonic() < deadline:
                time.sleep(0.02)
        return build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", slow)
    bundler = _bundler(tmp_path, requirements, BundlingMode.AUTO, stderr=stderr)
    out = tmp_path / "cdk.out" / "asset.x-building"
    out.mkdir(parents=True)
    assert _call(bundler, out) is True
    assert "cdk-pip-layer: Stack/Layer: still working: install for python3.12/x86_64 with uv (" in stderr.getvalue()


def test_unpinned_requirements_get_one_warning(
    tmp_path: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    """Such a layer is never reused, and a new upstream release gives no new layer version until the file changes
    (aws-cdk issue 14607): said once, with what to do."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests>=2\nsix==1.16.0\n", encoding="utf-8")
    _app, stack = make_app(tmp_path / "cdk.out")
    PipLambdaLayer(stack, "Layer", requirements=requirements)
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if "warning:" in line]
    expected = f"cdk-pip-layer: Stack/Layer: warning: {requirements.resolve()} is not fully pinned (requests>=2)"
    assert warning.startswith(expected)
    assert "never reused from the layer store" in warning and "no new layer version" in warning
    assert "lock file" in warning


def test_docker_missing_is_said_as_such(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CDK's own spawn of a missing docker fails with 'spawnSync docker ENOENT' in a trace: said before, plainly,
    with why Docker was needed and advice that fits (no bundling='auto' advice when it was auto)."""
    fake_build.error = IMPOSSIBLE
    monkeypatch.setenv("CDK_DOCKER", str(tmp_path / "no-such-docker"))
    _app, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements)
    error = layer.build_error
    assert isinstance(error, ContainerBuildError)
    assert error.what.startswith("Docker is not installed or not running")
    assert "a local build is impossible: A local build for python3.12/x86_64" in str(error)
    assert "bundling='auto'" not in str(error)
    assert "ENOENT" not in str(error)
