"""One declaration of the build options: every front door takes every option from it, or names why not.

The front doors are the constructs (``PipLambdaLayer``, ``PipLambdaLayers``: tests/construct), ``build_layer``, both
builders, the command line's ``build`` flags, the container build's request (``build.json``) and the asset hash.
Each test below walks the declared fields, so an option added to the declaration is checked everywhere at once;
one without a sample value here fails :func:`test_every_option_has_a_sample`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import (
    InvalidInputError,
    PipBasedLambdaLayerContainerBuilder,
    PipBasedLambdaLayerLocalBuilder,
    build_layer,
)
from cdk_pip_layer import build as build_module
from cdk_pip_layer.cli import _parser
from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.inputs.input_hash import input_hash
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.options import (
    CONSTRUCT_LEAVES_OUT,
    CONTAINER_BUILDER_LEAVES_OUT,
    HOST_ONLY,
    BuildLayerArgs,
    BuildSettings,
    ConstructArgs,
    ContainerBuilderArgs,
    Hashed,
    LayerArgs,
    LayerBuildOptions,
    LayerOptionArgs,
    SettingsArgs,
    cli_arguments,
    declared,
    public_options,
)
from dev_tools import dev_tool

# A base layer's zip (requests 2.31.0), for on_top_of.
BASE_ZIP = str(Path(__file__).resolve().parent / "data" / "base-layer.zip")
# A value other than the default for every public option and setting, as a keyword argument, and as flags.
SAMPLES: dict[str, tuple[Any, list[str]]] = {
    "requirements": (Path("other/requirements.txt"), ["-r", "other/requirements.txt"]),
    "runtime": ("python3.13", ["--runtime", "python3.13"]),
    "architecture": ("arm64", ["--architecture", "arm64"]),
    "exclude": (("boto3", "botocore"), ["--exclude", "boto3", "--exclude", "botocore"]),
    "index": (
        IndexSettings(index_url="https://pypi.example.com/simple", trusted_hosts=("pypi.example.com",)),
        ["--index-url", "https://pypi.example.com/simple", "--trusted-host", "pypi.example.com"],
    ),
    "installer": ("pip", ["--installer", "pip"]),
    "python_executable": ("/opt/python3.13/bin/python3", ["--python", "/opt/python3.13/bin/python3"]),
    "extra_installer_args": (("--pre",), ["--installer-arg=--pre"]),
    "verify": (False, ["--no-verify"]),
    "verify_ignore": (("glibc",), ["--ignore", "glibc"]),
    "import_sandbox": ("bubblewrap", ["--import-sandbox", "bubblewrap"]),
    "groups": (("lambda",), ["--group", "lambda"]),
    "member": ("api", ["--member", "api"]),
    "only_groups": (True, ["--only-groups", "--group", "lambda"]),
    "slim": (True, ["--slim"]),
    "slim_keep": (("pkg/tests/fixtures/**",), ["--slim-keep", "pkg/tests/fixtures/**"]),
    "slim_remove": (("pkg/assets/*.psd",), ["--slim-remove", "pkg/assets/*.psd"]),
    "on_top_of": ((BASE_ZIP,), ["--on-top-of", BASE_ZIP]),
    "bundling": ("docker", ["--bundling", "docker"]),
    "cache": (False, ["--no-cache"]),
    "cache_dir": (Path("/ci/cache"), ["--cache-dir", "/ci/cache"]),
    "cache_url": ("s3://layer-cache/ci", ["--cache-url", "s3://layer-cache/ci"]),
    "cache_read_only": (True, ["--cache-read-only"]),
    "image": ("registry.example.com/build-python3.13:1", ["--image", "registry.example.com/build-python3.13:1"]),
    "docker_network": ("host", ["--docker-network", "host"]),
}
# What an option needs beside it to be given at all.
COMPANIONS: dict[str, dict[str, Any]] = {"only_groups": {"groups": ("lambda",)}}
OPTIONS = [name for name, _ in public_options(LayerBuildOptions)]
REPO = Path(__file__).resolve().parents[2]
SETTINGS = [name for name, _ in public_options(BuildSettings)]


def _given(name: str) -> dict[str, Any]:
    """The keyword arguments that give option ``name`` its sample value."""
    return {name: SAMPLES[name][0], **COMPANIONS.get(name, {})}


def _keys(typed_dict: type) -> set[str]:
    return set(typed_dict.__annotations__) | {k for base in typed_dict.__mro__[1:] for k in _annotations(base)}


def _annotations(cls: type) -> set[str]:
    return set(getattr(cls, "__annotations__", {}))


def _options(requirements: Path, **args: Any) -> LayerBuildOptions:
    return LayerBuildOptions.parse(requirements=requirements, **args)


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.16.0\n", encoding="utf-8")
    return path


def test_every_option_has_a_sample() -> None:
    missing = sorted(set(OPTIONS + SETTINGS) - set(SAMPLES))
    assert not missing, f"add a sample value (and its flags) for {missing} to SAMPLES"


def test_the_keyword_arguments_are_the_declared_options() -> None:
    assert _keys(LayerArgs) == set(OPTIONS)
    assert _keys(LayerOptionArgs) == set(OPTIONS) - {"requirements", "runtime", "architecture"}
    assert _keys(SettingsArgs) == set(SETTINGS)
    assert _keys(BuildLayerArgs) == set(OPTIONS) | set(SETTINGS)
    # A construct takes its requirements, runtime and architecture as parameters of its own (they also accept CDK's
    # Runtime and Architecture objects), every other option, and every setting but those it names.
    assert _keys(ConstructArgs) == set(OPTIONS) - {"requirements", "runtime", "architecture"} | (
        set(SETTINGS) - set(CONSTRUCT_LEAVES_OUT)
    )
    assert _keys(ContainerBuilderArgs) == set(OPTIONS) | set(SETTINGS) - {"bundling"}
    assert set(CONSTRUCT_LEAVES_OUT) <= set(SETTINGS)
    assert set(CONTAINER_BUILDER_LEAVES_OUT) <= set(OPTIONS) | set(SETTINGS)


@pytest.mark.parametrize("name", OPTIONS[1:])
def test_parse_takes_each_option(requirements: Path, name: str) -> None:

    options = _options(requirements, **_given(name))
    assert options != _options(requirements)


@pytest.mark.parametrize("name", [n for n in OPTIONS if n != "requirements"])
def test_the_command_line_takes_each_option(requirements: Path, tmp_path: Path, name: str) -> None:
    _, flags = SAMPLES[name]
    args = _parser().parse_args(["build", "-r", str(requirements), "-o", str(tmp_path / "out"), *flags])
    assert LayerBuildOptions.parse(**cli_arguments(LayerBuildOptions, args)) == _options(requirements, **_given(name))


@pytest.mark.parametrize("name", SETTINGS)
def test_the_command_line_takes_each_setting(requirements: Path, tmp_path: Path, name: str) -> None:
    _, flags = SAMPLES[name]
    args = _parser().parse_args(["build", "-r", str(requirements), "-o", str(tmp_path / "out"), *flags])
    assert BuildSettings.parse(**cli_arguments(BuildSettings, args)) == BuildSettings.parse(**_given(name))


@pytest.mark.parametrize("name", [n for n in OPTIONS + SETTINGS if n != "requirements"])
def test_build_layer_takes_each_option_and_setting(
    requirements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    seen: list[tuple[LayerBuildOptions, BuildSettings]] = []
    monkeypatch.setattr(
        build_module.LayerBuilding, "build", lambda self, _dir: seen.append((self.options, self.settings))
    )
    monkeypatch.setattr(build_module, "_check_mode", lambda options, settings: None)

    build_layer(build_dir=tmp_path / "out", requirements=requirements, **_given(name))
    [(options, settings)] = seen
    if name in OPTIONS:
        assert options == _options(requirements, **_given(name))
    else:
        assert settings == BuildSettings.parse(**_given(name))


@pytest.mark.parametrize("name", [n for n in OPTIONS if n != "requirements"])
def test_the_local_builder_takes_each_option(requirements: Path, tmp_path: Path, name: str) -> None:

    builder = PipBasedLambdaLayerLocalBuilder(requirements=requirements, build_dir=tmp_path / "out", **_given(name))
    assert builder.options == _options(requirements, **_given(name))
    again = PipBasedLambdaLayerLocalBuilder.from_options(builder.options, tmp_path / "out")
    assert again.options == builder.options


@pytest.mark.parametrize("name", [n for n in OPTIONS + SETTINGS if n not in ("requirements", "bundling")])
def test_the_container_builder_takes_each_option_or_names_why_not(
    requirements: Path, tmp_path: Path, name: str
) -> None:
    args = _given(name)
    if name == "installer":  # a forced uv may be refused for this host; pip is the sample
        assert SAMPLES[name][0] == "pip"
    if name in CONTAINER_BUILDER_LEAVES_OUT:
        with pytest.raises(Exception, match=name):
            PipBasedLambdaLayerContainerBuilder(requirements=requirements, build_dir=tmp_path / "out", **args)
        return
    builder = PipBasedLambdaLayerContainerBuilder(requirements=requirements, build_dir=tmp_path / "out", **args)
    if name in OPTIONS:
        assert builder.options == _options(requirements, **args)
    else:
        expected = BuildSettings.parse(**args)
        assert (builder.image, builder.use_cache, builder.network) == (
            expected.image or builder.options.target.build_image,
            expected.cache,
            expected.docker_network,
        )
        assert builder.cache_dir == expected.cache_root / "pip"


def test_build_json_carries_every_option_but_the_host_only_ones(requirements: Path) -> None:
    """to_dict/from_dict: a new option travels into the image without being named anywhere."""
    every = {name: SAMPLES[name][0] for name in OPTIONS if name != "requirements"}
    options = _options(requirements, **every)
    data = options.to_dict()
    back = LayerBuildOptions.from_dict(data)
    assert set(HOST_ONLY) == {"python_executable"}
    assert back.python_executable is None
    # Index URLs travel in the container's environment, with their credentials; the trusted hosts in the request.
    assert back.index == IndexSettings(trusted_hosts=options.index.trusted_hosts)
    assert dataclasses.replace(back, index=options.index, python_executable=options.python_executable) == options
    assert "runtime" in data and "architecture" in data and "target" not in data


def test_every_option_is_in_the_asset_hash_as_declared(requirements: Path) -> None:
    files = read_requirements(requirements)
    base = input_hash(_options(requirements), files)
    for item, declaration in declared(LayerBuildOptions):
        if not declaration.public or item.name == "requirements":
            continue
        names = ["runtime", "architecture"] if item.name == "target" else [item.name]
        for name in names:
            changed = input_hash(_options(requirements, **_given(name)), files)
            if declaration.hashed in (Hashed.NEVER, Hashed.LOCK, Hashed.LOCK_WHEN_SET):  # LOCK: only for a lock file
                assert changed == base, f"{name} must not change the hash of a requirements file"
            else:
                assert changed != base, f"{name} must change the asset hash"


def test_a_new_option_enters_the_hash_only_when_set(requirements: Path) -> None:
    """WHEN_SET (the default for a new option) keeps every existing layer's hash: its default is not hashed."""
    options = _options(requirements)
    document = options.hash_document(lock_format=None)
    for item, declaration in declared(LayerBuildOptions):
        if declaration.hashed is Hashed.WHEN_SET:
            assert item.name.replace("_", "-") not in document


def test_the_builders_are_made_through_init(
    requirements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    for cls in (PipBasedLambdaLayerLocalBuilder, PipBasedLambdaLayerContainerBuilder):
        original = cls.__init__

        def spy(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            made.append(type(self).__name__)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    options = _options(requirements)
    PipBasedLambdaLayerLocalBuilder.from_options(options, tmp_path / "a")
    PipBasedLambdaLayerContainerBuilder.from_options(options, tmp_path / "b")
    assert made == ["PipBasedLambdaLayerLocalBuilder", "PipBasedLambdaLayerContainerBuilder"]


def test_options_given_twice_are_refused(requirements: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="given twice"):
        PipBasedLambdaLayerLocalBuilder(  # type: ignore[call-overload]
            build_dir=tmp_path, options=_options(requirements), exclude=("boto3",)
        )


def test_an_unknown_option_is_named(requirements: Path) -> None:
    with pytest.raises(Exception, match="Unknown build option: exlude"):
        LayerBuildOptions.parse(requirements=requirements, exlude=("boto3",))


def test_mypy_catches_an_unknown_runtime_or_architecture(tmp_path: Path) -> None:
    """``runtime`` and ``architecture`` are typed: a typo is caught before anything runs."""
    dev_tool("mypy", why="the type check of runtime and architecture")
    snippet = tmp_path / "app.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from cdk_pip_layer.engine.local import PipBasedLambdaLayerLocalBuilder

            PipBasedLambdaLayerLocalBuilder(requirements="r.txt", build_dir="out", runtime="python3.99")
            PipBasedLambdaLayerLocalBuilder(requirements="r.txt", build_dir="out", architecture="arm")
            PipBasedLambdaLayerLocalBuilder(requirements="r.txt", build_dir="out", runtime="python3.13")
            """
        ),
        encoding="utf-8",
    )
    # From the repository, with its configuration and its cache (warm after the checks CI runs first).
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    lines = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in lines] == ["4", "5"], run.stdout + run.stderr


# --- the options in the command line's terms ----------------------------------------------------------------------


def test_every_flag_is_how_the_command_line_names_its_keyword_argument() -> None:
    from cdk_pip_layer.engine.options import cli_flag_names, flag_arguments

    names = cli_flag_names()
    for cls in (LayerBuildOptions, BuildSettings):
        for flag_names, kwargs in flag_arguments(cls):
            assert names[kwargs["dest"]] == flag_names[0]


@pytest.mark.parametrize(
    ("api", "cli"),
    [
        ("bundling=auto: this host can build for python3.12/x86_64", "--bundling auto: this host can build for"),
        ("python_executable (--python): a setting of the local build", "--python: a setting of the local build"),
        ("image (--image), docker_network (--docker-network): settings", "--image, --docker-network: settings"),
        ("cache_dir (--cache-dir) given with the cache turned off (--no-cache, cache=False)", "--cache-dir given with"),
        ("(--no-cache, cache=False)", "(--no-cache)"),
        (
            "import_sandbox='none' (--import-sandbox none) runs it unconfined",
            "--import-sandbox none runs it unconfined",
        ),
        ("name the groups (groups=['jobs']), or leave out only_groups.", "(--group jobs), or leave out --only-groups."),
        ("pass e.g. slim_keep=('a/**', 'b/**').", "pass e.g. --slim-keep a/** --slim-keep b/**."),
        ("leave it out with exclude=[...]", "leave it out with --exclude …"),
        ("pass cache_read_only=True to read it", "pass --cache-read-only to read it"),
        (
            "turned off by name (--ignore CHECK, or verify_ignore=('CHECK',) in the construct)",
            "by name (--ignore CHECK)",
        ),
        ("the build image and the exclude list", "the build image and the exclude list"),  # words, not options
        ("six==1.0 requires index_url_x", "six==1.0 requires index_url_x"),
        ("reused from /home/me/cache_dir/layers/x/layer.zip", "reused from /home/me/cache_dir/layers/x/layer.zip"),
    ],
)
def test_in_cli_terms(api: str, cli: str) -> None:
    from cdk_pip_layer.engine.options import in_cli_terms

    assert cli in in_cli_terms(api)


def test_a_subject_that_is_an_option_is_its_flag() -> None:
    from cdk_pip_layer.engine.options import in_cli_terms

    assert in_cli_terms("exclude", subject=True) == "--exclude"
    assert in_cli_terms("extra installer arguments", subject=True) == "--installer-arg"
    assert in_cli_terms("cache_dir, cache_url", subject=True) == "--cache-dir, --cache-url"
    assert in_cli_terms("requirements.txt", subject=True) == "requirements.txt"
    assert in_cli_terms("exclude") == "exclude"  # a word in a sentence stays a word


@pytest.mark.parametrize("name", ["cache_dir", "python_executable", "uv_executable"])
def test_an_empty_path_is_refused_by_name_not_taken_for_the_current_directory(tmp_path: Path, name: str) -> None:
    """Path('') is '.': cache_dir='' wrote the caches into the current directory, python_executable='' ran '.'."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        if name == "cache_dir":
            BuildSettings.parse(cache_dir="")
        else:
            LayerBuildOptions.parse(requirements=requirements, **{name: ""})
    assert info.value.what == f"The path given to {name} is empty"
    assert info.value.subject == name
