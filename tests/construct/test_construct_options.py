"""Both constructs take every build option and every build setting of the one declaration (engine/options.py), or
name why not; each member of a group gets them all."""

from __future__ import annotations

import pydoc
import shutil
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import InvalidInputError, LayerBuildOptions, PipLambdaLayer, PipLambdaLayers
from cdk_pip_layer.engine.options import CONSTRUCT_LEAVES_OUT, BuildSettings, public_options

from ._helpers import make_app

# A value other than the default for every option a construct takes as a keyword argument of the declaration.
SAMPLES: dict[str, Any] = {
    "exclude": ("boto3",),
    "installer": "pip",
    "python_executable": "/opt/python3.12/bin/python3",
    "extra_installer_args": ("--pre",),
    "verify": False,
    "verify_ignore": ("glibc", "import"),
    "import_sandbox": "bubblewrap",
    "groups": ("tests",),
    "member": "api",
    "only_groups": True,
    "slim": True,
    "slim_keep": ("pkg/tests/fixtures/**",),
    "slim_remove": ("pkg/assets/*.psd",),
    "on_top_of": str(Path(__file__).resolve().parents[1] / "unit" / "data" / "base-layer.zip"),
    "bundling": "local",
    "cache": False,
    "cache_dir": "/ci/cache",
    "cache_url": "s3://layer-cache/ci",
    "cache_read_only": True,
}
# Settings of the cache that go with the cache on (the group test turns it off).
WITH_THE_CACHE = ("cache_dir", "cache_url", "cache_read_only")
OWN = ("requirements", "runtime", "architecture")
LOCKS = Path(__file__).resolve().parents[1] / "data" / "locks"


@pytest.fixture(autouse=True)
def _no_uv_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_NO_CONFIG", "1")


def _input_for(name: str, tmp_path: Path, requirements: Path) -> Path:
    """The requirements an option applies to: a lock file with groups for ``groups``, a uv workspace for
    ``member``."""
    if name in ("groups", "only_groups"):
        return Path(shutil.copytree(LOCKS / "uv", tmp_path / "uv")) / "uv.lock"
    if name == "member":
        return Path(shutil.copytree(LOCKS / "uv-workspace", tmp_path / "ws")) / "uv.lock"
    return requirements


def _declared() -> list[str]:
    names = [n for n, _ in (*public_options(LayerBuildOptions), *public_options(BuildSettings))]
    return [n for n in names if n not in OWN and n not in CONSTRUCT_LEAVES_OUT and n != "index"]


def test_every_option_has_a_sample() -> None:
    assert sorted(set(_declared()) - set(SAMPLES)) == []


@pytest.mark.parametrize("name", _declared())
def test_a_layer_takes_each_option(tmp_path: Path, requirements: Path, name: str) -> None:
    value = SAMPLES[name]
    if name == "cache_dir":  # a cache directory goes with the cache on
        value = tmp_path / "cache"
    requirements = _input_for(name, tmp_path, requirements)
    args: dict[str, Any] = {name: value, **({"groups": ("tests",)} if name == "only_groups" else {})}
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Layer", requirements=requirements, **args)
    if name in BuildSettings.__dataclass_fields__:
        assert layer.build_settings == BuildSettings.parse(**args)
    else:
        assert layer.build_options == LayerBuildOptions.parse(requirements=requirements, **args)


@pytest.mark.parametrize("lock", ["groups", "member"])
def test_a_group_takes_every_option_for_every_member(tmp_path: Path, requirements: Path, lock: str) -> None:
    """groups, member, verify_ignore and python_executable were missing from PipLambdaLayers (a TypeError)."""
    other = ("member",) if lock == "groups" else ("groups", "only_groups")
    props: dict[str, Any] = {name: value for name, value in SAMPLES.items() if name not in (*WITH_THE_CACHE, *other)}
    requirements = _input_for(lock, tmp_path, requirements)
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    targets = ["python3.12/x86_64", "python3.13/arm64"]
    group = PipLambdaLayers(stack, "Deps", requirements=requirements, targets=targets, **props)
    options = {k: v for k, v in props.items() if k not in ("bundling", "cache")}
    assert list(group.layers) == targets
    for name, member in group.layers.items():
        runtime, architecture = name.split("/")
        assert member.build_options == LayerBuildOptions.parse(
            requirements=requirements, runtime=runtime, architecture=architecture, **options
        )
        assert member.build_settings == BuildSettings.parse(bundling="local", cache=False)


@pytest.mark.parametrize("name", sorted(CONSTRUCT_LEAVES_OUT))
def test_a_setting_the_construct_leaves_out_is_named_with_why(tmp_path: Path, requirements: Path, name: str) -> None:
    _app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    with pytest.raises(InvalidInputError) as caught:
        PipLambdaLayer(stack, "Layer", requirements=requirements, **{name: "x"})  # type: ignore[arg-type]
    assert name in caught.value.what
    assert CONSTRUCT_LEAVES_OUT[name] in str(caught.value)


def test_the_constructor_documents_every_option_and_its_own_removal_policy() -> None:
    """help(PipLambdaLayer) showed LayerVersion's constructor, which says the removal policy defaults to DESTROY."""
    text = pydoc.render_doc(PipLambdaLayer, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    init = text[text.index("__init__(") :]
    for name in ("requirements", "runtime", "architecture", *_declared(), "index"):
        assert f"{name}:" in init, name
    assert "default RETAIN" in init
    assert "Default: - Retain" not in init and ":param code:" not in init
