"""The asset hash: the same on every machine and checkout, new exactly when the layer's inputs change; and the
rebuilds it saves (warm cdk.out, the local layer cache)."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

import cdk_pip_layer._version
import cdk_pip_layer.engine.inputs.input_hash
from cdk_pip_layer import IndexSettings, LayerBuildOptions, LayerBuildResult, PipLambdaLayer
from cdk_pip_layer.engine.inputs.input_hash import input_hash
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.layer_format import LAYER_FORMAT_EPOCH
from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder

from ._helpers import PINNED, files_under, layer_asset_hash, make_app, synth_template
from .conftest import FakeBuild, FakeDocker

_count = itertools.count()

# CDK's asset hash is sha256(custom hash + JSON.stringify(bundling options)). This is that JSON for python3.12 on
# x86_64, word for word: no path, no user, no host setting. (The Python local-bundling object is `{}` in it.)
BUNDLING_JSON = (
    '{"image":"public.ecr.aws/sam/build-python3.12:latest-x86_64",'
    '"command":["python3","/asset-input/.cdk-pip-layer/run.py"],'
    '"environment":{"HOME":"/tmp","PIP_CACHE_DIR":"/cdk-pip-layer-cache/pip",'
    '"PIP_DISABLE_PIP_VERSION_CHECK":"1","PYTHONDONTWRITEBYTECODE":"1"},'
    '"local":{},"outputType":"archived","platform":"linux/amd64",'
    '"volumes":[{"containerPath":"/cdk-pip-layer-cache","hostPath":"cdk-pip-layer-pip-cache"}]}'
)


def _checkout(root: Path, main: str = "-r base.txt\nrequests==2.32.3\n", base: str = "urllib3==2.2.3\n") -> Path:
    (root / "layer").mkdir(parents=True)
    (root / "layer" / "base.txt").write_text(base, encoding="utf-8")
    requirements = root / "layer" / "requirements.txt"
    requirements.write_text(main, encoding="utf-8")
    return requirements


def _hash(tmp_path: Path, requirements: Path, **props: Any) -> str:
    """The layer's asset hash as CDK computes it (bundling not required: what `cdk ls` sees, and the same)."""
    app, stack = make_app(tmp_path / f"out-{next(_count)}", bundling=False)
    PipLambdaLayer(stack, "Layer", requirements=requirements, **props)
    return layer_asset_hash(synth_template(app))


def test_asset_hash_is_our_input_hash_plus_the_exact_bundling_json(tmp_path: Path, requirements: Path) -> None:
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements)
    expected = hashlib.sha256((layer.input_hash + BUNDLING_JSON).encode()).hexdigest()
    assert layer_asset_hash(synth_template(app)) == expected


def test_input_hash_definition_is_stable() -> None:
    """A changed definition changes every user's layer version: it must be deliberate (and bump the layer format
    epoch, see engine/layer_format.py)."""
    root = Path(__file__).parent / "data"
    options = LayerBuildOptions.parse(requirements=root / "requirements.txt", exclude=("botocore", "Boto3"))
    canonical = (
        '{"architecture":"x86_64","exclude":["boto3","botocore"],'
        '"extra-installer-args":[],"index":{"extra_index_urls":[],"index_url":null,"trusted_hosts":[]},'
        '"layer-format":2,"local-archives":[],"requirements":['
        f'"{hashlib.sha256((root / "requirements.txt").read_bytes()).hexdigest()}",'
        f'"{hashlib.sha256((root / "base.txt").read_bytes()).hexdigest()}"],'
        '"runtime":"python3.12","verify":true}'
    )
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert input_hash(options, read_requirements(options.requirements)) == expected


def test_same_inputs_in_two_checkouts_and_processes_give_the_same_hash(tmp_path: Path) -> None:
    one = _checkout(tmp_path / "home" / "alice" / "src" / "platform")
    two = _checkout(tmp_path / "ci" / "workspace" / "build-1234")
    in_process = {_hash(tmp_path, one), _hash(tmp_path, two)}
    # Another process (one CDK start-up for both checkouts), started from another working directory.
    script = (
        "import sys, aws_cdk as cdk\n"
        "from cdk_pip_layer import PipLambdaLayer\n"
        "for i, requirements in enumerate(sys.argv[2:]):\n"
        "    app = cdk.App(outdir=f'{sys.argv[1]}-{i}', context={'aws:cdk:bundling-stacks': []})\n"
        "    PipLambdaLayer(cdk.Stack(app, 'Stack'), 'Layer', requirements=requirements)\n"
        "    t = app.synth().get_stack_by_name('Stack').template\n"
        "    print([r for r in t['Resources'].values() if r['Type'] == 'AWS::Lambda::LayerVersion'][0]"
        "['Properties']['Content']['S3Key'][:-4])\n"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "proc"), str(one), str(two)],
        capture_output=True,
        text=True,
        check=True,
        cwd=two.parent,
        timeout=300,
    ).stdout.split()
    assert len(in_process) == 1
    assert len(other_process) == 2
    assert set(other_process) == in_process


@pytest.mark.parametrize(
    "change",
    [
        "requirements bytes",
        "included file bytes",
        "runtime",
        "architecture",
        "exclude",
        "index url",
        "extra index url",
        "trusted host",
        "extra installer args",
        "verify",
        "layer format epoch",
    ],
)
def test_each_input_changes_the_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    before = _hash(tmp_path, _checkout(tmp_path / "a"))
    requirements = _checkout(tmp_path / "b")
    props: dict[str, Any] = {}
    if change == "requirements bytes":
        requirements.write_text("-r base.txt\nrequests==2.32.4\n", encoding="utf-8")
    elif change == "included file bytes":
        (requirements.parent / "base.txt").write_text("urllib3==2.2.2\n", encoding="utf-8")
    elif change == "runtime":
        props["runtime"] = "python3.13"
    elif change == "architecture":
        props["architecture"] = "arm64"
    elif change == "exclude":
        props["exclude"] = ["boto3"]
    elif change == "index url":
        props["index"] = IndexSettings(index_url="https://pypi.example.com/simple")
    elif change == "extra index url":
        props["index"] = IndexSettings(extra_index_urls=("https://extra.example.com/simple",))
    elif change == "trusted host":
        props["index"] = IndexSettings(trusted_hosts=("pypi.example.com",))
    elif change == "extra installer args":
        props["extra_installer_args"] = ["--pre"]
    elif change == "verify":
        props["verify"] = False
    elif change == "layer format epoch":
        monkeypatch.setattr(cdk_pip_layer.engine.inputs.input_hash, "LAYER_FORMAT_EPOCH", LAYER_FORMAT_EPOCH + 1)
    assert _hash(tmp_path, requirements, **props) != before


@pytest.mark.parametrize(
    "change",
    [
        "credentials",
        "HTTPS_PROXY",
        "PIP_CERT",
        "PIP_INDEX_URL",
        "cache dir prop",
        "CDK_PIP_LAYER_CACHE_DIR",
        "cache off",
        "shared store prop",
        "shared store from the environment, its keys and AWS credentials",
        "bundling mode",
        "installer",
        "library version",
        "exclude order and spelling",
        "file name and directory",
    ],
)
def test_host_settings_and_secrets_do_not_change_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    base_props: dict[str, Any] = {
        "index": IndexSettings(index_url="https://alice:one@pypi.example.com/simple"),
        "exclude": ["boto3", "botocore"],
    }
    before = _hash(tmp_path, _checkout(tmp_path / "a"), **base_props)
    requirements = _checkout(tmp_path / "b")
    props = dict(base_props)
    if change == "credentials":
        props["index"] = IndexSettings(index_url="https://bob:two@pypi.example.com/simple")
    elif change == "HTTPS_PROXY":
        monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.other:8080")
    elif change == "PIP_CERT":
        monkeypatch.setenv("PIP_CERT", str(tmp_path / "other-ca.pem"))
    elif change == "PIP_INDEX_URL":
        monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example.com/simple")
    elif change == "cache dir prop":
        props["cache_dir"] = tmp_path / "elsewhere"
    elif change == "CDK_PIP_LAYER_CACHE_DIR":
        monkeypatch.setenv("CDK_PIP_LAYER_CACHE_DIR", str(tmp_path / "other-cache"))
    elif change == "cache off":
        props["cache"] = False
    elif change == "shared store prop":
        props["cache_url"] = "s3://layer-cache/ci"
        props["cache_read_only"] = True
    elif change == "shared store from the environment, its keys and AWS credentials":
        for name, value in {
            "CDK_PIP_LAYER_CACHE_URL": "s3://layer-cache/main",
            "CDK_PIP_LAYER_CACHE_READ_ONLY": "1",
            "CDK_PIP_LAYER_CACHE_KEY": "a CI secret",
            "CDK_PIP_LAYER_CACHE_KMS_KEY": "alias/layer-cache",
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }.items():
            monkeypatch.setenv(name, value)
    elif change == "bundling mode":
        props["bundling"] = "docker"
    elif change == "installer":
        props["installer"] = "uv"
    elif change == "library version":  # a bug-fix release that changes no layer's bytes publishes no new version
        for module in (cdk_pip_layer, cdk_pip_layer._version):
            monkeypatch.setattr(module, "__version__", "99.0.0")
    elif change == "exclude order and spelling":
        props["exclude"] = ["BotoCore", "boto3", "Boto3"]
    elif change == "file name and directory":
        moved = tmp_path / "c" / "deps" / "layer-requirements.txt"
        moved.parent.mkdir(parents=True)
        moved.write_bytes(requirements.read_bytes())
        (moved.parent / "base.txt").write_bytes((requirements.parent / "base.txt").read_bytes())
        requirements = moved
    assert _hash(tmp_path, requirements, **props) == before


# --- the rebuilds a stable hash saves -----------------------------------------------------------------------------


def _synth(outdir: Path, requirements: Path, **props: Any) -> Path:
    app, stack = make_app(outdir)
    PipLambdaLayer(stack, "Layer", requirements=requirements, **props)
    return outdir / f"asset.{layer_asset_hash(synth_template(app))}.zip"


def test_second_synth_with_nothing_changed_builds_nothing(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild
) -> None:
    first = _synth(tmp_path / "cdk.out", requirements, cache=False)
    stamp = first.stat().st_mtime_ns
    second = _synth(tmp_path / "cdk.out", requirements, cache=False)
    assert second == first
    assert second.stat().st_mtime_ns == stamp
    assert len(fake_build.calls) == 1


def test_fresh_cdk_out_reuses_the_layer_cache(
    tmp_path: Path,
    requirements: Path,
    fake_build: FakeBuild,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _synth(tmp_path / "ci-run-1" / "cdk.out", requirements)
    [entry] = (isolated_cache / "layers").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["layer.zip", "record.json"]  # atomic: no temporary left
    capsys.readouterr()
    second = _synth(tmp_path / "ci-run-2" / "cdk.out", requirements)
    assert len(fake_build.calls) == 1
    assert second.name == first.name
    assert second.read_bytes() == first.read_bytes() == (entry / "layer.zip").read_bytes()
    assert f"layer {entry.name[:12]} reused from the cache {entry / 'layer.zip'}" in capsys.readouterr().err


def test_cache_dir_prop_overrides_the_environment(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, isolated_cache: Path
) -> None:
    _synth(tmp_path / "out-1", requirements, cache_dir=tmp_path / "team-cache")
    _synth(tmp_path / "out-2", requirements, cache_dir=tmp_path / "team-cache")
    assert len(fake_build.calls) == 1
    assert len(list((tmp_path / "team-cache" / "layers").glob("*/layer.zip"))) == 1  # the cache directory: layers/
    assert not isolated_cache.exists()


@pytest.mark.parametrize(
    ("content", "props"),
    [
        ("requests>=2.32\n", {}),  # not fully pinned: tomorrow's build may differ
        ("requests==2.32.*\n", {}),
        (PINNED, {"cache": False}),
    ],
)
def test_no_cache_unless_fully_pinned_and_enabled(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, content: str, props: dict[str, Any]
) -> None:
    requirements.write_text(content, encoding="utf-8")
    _synth(tmp_path / "out-1", requirements, **props)
    _synth(tmp_path / "out-2", requirements, **props)
    assert len(fake_build.calls) == 2
    assert not list(files_under(tmp_path / "cache"))


def test_a_damaged_cache_entry_is_rebuilt_and_replaced(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, isolated_cache: Path
) -> None:
    _synth(tmp_path / "out-1", requirements)
    [cached] = (isolated_cache / "layers").glob("*/layer.zip")
    cached.write_bytes(b"truncated")
    layer = _synth(tmp_path / "out-2", requirements)
    assert len(fake_build.calls) == 2
    assert zipfile.is_zipfile(cached)
    assert cached.read_bytes() == layer.read_bytes()


def test_a_docker_built_layer_is_cached_so_the_next_fresh_synth_needs_no_docker(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker, isolated_cache: Path
) -> None:
    from .test_bundling import IMPOSSIBLE

    fake_build.error = IMPOSSIBLE
    first = _synth(tmp_path / "out-1", requirements)
    assert len(fake_docker.calls) == 1
    second = _synth(tmp_path / "out-2", requirements)
    assert len(fake_docker.calls) == 1
    assert len(fake_build.calls) == 1  # the second synth did not even try a local build
    assert second.read_bytes() == first.read_bytes()
    assert zipfile.ZipFile(second).namelist() == ["python/built_in_docker.py"]


def test_manifest_names_the_same_hash(tmp_path: Path, requirements: Path, fake_build: FakeBuild) -> None:
    asset = _synth(tmp_path / "cdk.out", requirements)
    asset_hash = asset.name.removeprefix("asset.").removesuffix(".zip")
    manifest = json.loads((tmp_path / "cdk.out" / "Stack.assets.json").read_text())
    assert manifest["files"][asset_hash]["source"] == {"path": asset.name, "packaging": "file"}


def test_a_local_archive_named_in_the_requirements_is_hashed(tmp_path: Path) -> None:
    requirements = _checkout(tmp_path / "a", main="./wheels/internal_tool-1.0-py3-none-any.whl\n")
    wheel = requirements.parent / "wheels" / "internal_tool-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"first build")
    before = _hash(tmp_path, requirements)
    wheel.write_bytes(b"second build, same file name")
    assert _hash(tmp_path, requirements) != before


# --- credentials are never hashed -----------------------------------------------------------------------------------

_WITH_TOKEN = (
    "--extra-index-url https://aws:{token}@corp-111122223333.d.codeartifact.eu-west-1.amazonaws.com/pypi/py/simple/\n"
    "six==1.16.0\n"
    "internal-lib @ git+https://deploy:{token}@github.com/corp/internal-lib.git@v1.2.0\n"
)


@pytest.mark.parametrize("where", ["requirements file", "included file", "installer argument"])
def test_rotating_a_token_keeps_the_hash(tmp_path: Path, where: str) -> None:
    """A CodeArtifact token lasts 12 hours: each new one must not publish a new layer version."""

    def checkout(root: Path, token: str) -> tuple[Path, dict[str, Any]]:
        text = _WITH_TOKEN.format(token=token)
        if where == "included file":
            requirements = _checkout(root, main="-r base.txt\n", base=text)
        else:
            requirements = _checkout(root, main=text if where == "requirements file" else "six==1.16.0\n")
        args = ["--find-links", f"https://aws:{token}@links.example.com/wheels/"]
        return requirements, ({"extra_installer_args": args} if where == "installer argument" else {})

    first, props = checkout(tmp_path / "monday", "eyJ2ZXIiOjEsImlzdSI6MTcwMDAwMDAwMH0.first-token")
    second, other_props = checkout(tmp_path / "tuesday", "eyJ2ZXIiOjEsImlzdSI6MTcwMDA0MzIwMH0.second-token")
    assert _hash(tmp_path, first, **props) == _hash(tmp_path, second, **other_props)


def test_the_index_itself_still_counts(tmp_path: Path) -> None:
    one = _checkout(tmp_path / "a", main=_WITH_TOKEN.format(token="same-token"))
    other = _checkout(tmp_path / "b", main=_WITH_TOKEN.format(token="same-token").replace("py/simple", "dev/simple"))
    assert _hash(tmp_path, one) != _hash(tmp_path, other)


def test_no_credential_reaches_the_hashed_document(tmp_path: Path) -> None:
    requirements = _checkout(tmp_path / "a", main=_WITH_TOKEN.format(token="tok3n-s3cret"))
    options = LayerBuildOptions.parse(
        requirements=requirements,
        index=IndexSettings(index_url="https://u:pw-s3cret@pypi.example.com/simple"),
        extra_installer_args=["--find-links=https://u:args-s3cret@links.example.com/"],
    )
    seen: list[bytes] = []
    real_sha256 = hashlib.sha256

    def spy(data: bytes = b"", **kwargs: Any) -> Any:
        seen.append(bytes(data))
        return real_sha256(data, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashlib, "sha256", spy)
        input_hash(options, read_requirements(requirements))
    assert seen
    for data in seen:
        for secret in (b"tok3n-s3cret", b"pw-s3cret", b"args-s3cret"):
            assert secret not in data


def test_docker_bundling_reuses_only_layers_built_in_the_image(
    tmp_path: Path, requirements: Path, fake_build: FakeBuild, fake_docker: FakeDocker, isolated_cache: Path
) -> None:
    local = _synth(tmp_path / "out-1", requirements)  # built locally and cached
    in_image = _synth(tmp_path / "out-2", requirements, bundling="docker")
    assert len(fake_docker.calls) == 1  # the local build's layer is not what bundling='docker' promises
    again = _synth(tmp_path / "out-3", requirements, bundling="docker")
    assert len(fake_docker.calls) == 1  # a fresh cdk.out: the layer built in the image comes from the cache
    assert len(fake_build.calls) == 1
    assert again.read_bytes() == in_image.read_bytes() != local.read_bytes()
    assert zipfile.ZipFile(again).namelist() == ["python/built_in_docker.py"]
    assert len(list((isolated_cache / "layers").glob("*/layer.zip"))) == 2


def test_a_variable_in_a_requirement_counts_its_value_but_never_a_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip expands ``${NAME}`` from the environment: ``six==${SIX_VERSION}`` is another layer for another value, so
    another hash (before, the file's bytes alone were hashed and the old layer was reused). A token in a variable
    stays out of the hash, as a token written in the file does."""
    requirements = _checkout(
        tmp_path / "a",
        main="six==${SIX_VERSION}\n"
        "internal-lib @ git+https://deploy:${GIT_TOKEN}@github.com/corp/internal-lib.git@v1.2.0\n",
    )
    monkeypatch.setenv("GIT_TOKEN", "tok3n-first")
    monkeypatch.setenv("SIX_VERSION", "1.16.0")
    first = _hash(tmp_path, requirements)
    monkeypatch.setenv("SIX_VERSION", "1.17.0")
    other_version = _hash(tmp_path, requirements)
    monkeypatch.setenv("GIT_TOKEN", "tok3n-second")
    rotated = _hash(tmp_path, requirements)
    assert other_version != first
    assert rotated == other_version


def test_the_cache_props_reach_the_distribution_cache(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch, fake_build: FakeBuild
) -> None:
    """cache=False keeps no distribution cache either, and cache_dir is where the local build keeps it (the
    builder is handed what the props say: the layer store is not the only cache a build has)."""
    seen: list[tuple[bool, Path | None]] = []

    def build(builder: PipBasedLambdaLayerLocalBuilder) -> LayerBuildResult:
        seen.append((builder.reuse, builder.cache_dir))
        return fake_build.build(builder)

    monkeypatch.setattr(PipBasedLambdaLayerLocalBuilder, "build", build)
    choices: list[dict[str, Any]] = [{"cache": False}, {"cache_dir": tmp_path / "team-cache"}, {}]
    for i, props in enumerate(choices):
        _synth(tmp_path / f"out-{i}", requirements, **props)
    assert seen == [(False, None), (True, tmp_path / "team-cache"), (True, None)]
