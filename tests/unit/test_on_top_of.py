"""A layer built on top of base layers (``on_top_of``, ``--on-top-of``): resolved against the bases' versions, holding
none of their distributions; a requirement that conflicts with a base is refused. Real pip and uv, offline, against
wheels built in tmp_path (tests/stack_fixtures.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from cdk_pip_layer import InstallError, InvalidInputError, LayerBuildOptions, PipBasedLambdaLayerLocalBuilder
from cdk_pip_layer.cli import main
from cdk_pip_layer.container.protocol import read_request, write_request
from cdk_pip_layer.engine.base_layer import BaseDistribution, BaseLayer
from cdk_pip_layer.engine.inputs.input_hash import input_hash
from cdk_pip_layer.engine.inputs.requirements import read_requirements
from cdk_pip_layer.engine.options import InstallerName, Runtime
from stack_fixtures import BASE_HOLDS, BASE_REQUIREMENTS, offline, write_layer_zip, write_stack_wheels

pytestmark = pytest.mark.usefixtures("offline_env")


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    return write_stack_wheels(tmp_path / "wheels")


def _requirements(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def base_zip(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> Path:
    """The platform team's base layer, built: requests 2.31.0 (with urllib3 2.0.7 and idna 3.6)."""
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=_requirements(tmp_path / "base" / "requirements.txt", BASE_REQUIREMENTS),
        build_dir=tmp_path / "base" / "build",
        runtime=host_runtime,
        extra_installer_args=offline(wheels),
    ).build()
    assert set(result.distributions) == {f"{name}=={version}" for name, version in BASE_HOLDS.items()}
    return result.zip_path


def _names(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return {name.split("/")[1] for name in archive.namelist() if name.endswith(".dist-info/METADATA")}


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("base_as", ["zip", "report"])
def test_a_team_layer_holds_its_own_distributions_resolved_against_the_base(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime, *, installer: InstallerName, base_as: str
) -> None:
    """requests (unpinned) and rich on top of a base with requests 2.31.0: rich (and pygments) only; team-lib in the
    version that works with the base's requests (1.0: 2.0 needs requests >= 2.32, which the index has)."""
    base = base_zip if base_as == "zip" else base_zip.parent / "layer.report.json"
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests\nrich\nteam-lib\n")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=team,
        build_dir=tmp_path / "team" / "build",
        runtime=host_runtime,
        installer=installer,
        extra_installer_args=offline(wheels),
        on_top_of=[base],
    ).build()
    assert sorted(result.distributions) == ["pygments==2.17.2", "rich==13.7.1", "team-lib==1.0"]
    assert _names(result.zip_path) == {"pygments-2.17.2.dist-info", "rich-13.7.1.dist-info", "team_lib-1.0.dist-info"}
    with zipfile.ZipFile(result.zip_path) as archive:
        assert not [n for n in archive.namelist() if n.startswith(("python/requests", "python/urllib3", "python/idna"))]
    # What the base holds was installed in the base's versions, and left out.
    assert sorted(result.excluded) == sorted(f"{name}=={version}" for name, version in BASE_HOLDS.items())
    # The verification knows the base: team-lib's dependency on requests is the base's, and so is its import.
    report = json.loads((result.zip_path.parent / "layer.report.json").read_text(encoding="utf-8"))
    assert report["verification"]["errors"] == []
    assert not [w for w in result.warnings if w.startswith("dependencies")]
    assert [w for w in result.warnings if "imports requests, which a base layer provides" in w] == [
        f"import: team_lib (team-lib==1.0): imports requests, which a base layer provides (requests 2.31.0 in {base}"
        "; not present for this check)"
    ]


def test_without_the_base_the_same_requirements_resolve_otherwise(
    tmp_path: Path, wheels: Path, host_runtime: Runtime
) -> None:
    """The control: what the base's constraints changed."""
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests\nrich\nteam-lib\n")
    result = PipBasedLambdaLayerLocalBuilder(
        requirements=team, build_dir=tmp_path / "build", runtime=host_runtime, extra_installer_args=offline(wheels)
    ).build()
    assert {"requests==2.32.3", "team-lib==2.0", "urllib3==2.2.3"} <= set(result.distributions)


@pytest.mark.parametrize(
    ("line", "asked"), [("requests==2.32.3", "requests==2.32.3"), ("requests>=2.32 ; python_version >= '3'", ">=2.32")]
)
def test_a_requirement_that_conflicts_with_the_base_is_refused_before_anything_is_installed(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime, *, line: str, asked: str
) -> None:
    team = _requirements(tmp_path / "team" / "requirements.txt", f"rich\n{line}\n")
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=team,
        build_dir=tmp_path / "team" / "build",
        runtime=host_runtime,
        extra_installer_args=offline(wheels),
        on_top_of=[base_zip],
    )
    with pytest.raises(InvalidInputError) as caught:
        builder.build()
    message = str(caught.value)
    assert caught.value.package == "requests"
    assert f"{asked} conflicts with the base layer {base_zip}" in message if "==" in asked else asked in message
    assert "which holds requests 2.31.0" in message
    assert f"{team}:2: " in message
    assert "2.32.3" in message or ">=2.32" in message
    assert not (tmp_path / "team" / "build").exists()  # refused before the build began


def test_the_refusal_names_both_versions_and_the_base(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime
) -> None:
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests==2.32.3\nrich\n")
    with pytest.raises(InvalidInputError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=team, build_dir=tmp_path / "out", runtime=host_runtime, on_top_of=[base_zip]
        ).build()
    assert caught.value.what == (
        f"requests==2.32.3 conflicts with the base layer {base_zip}, which holds requests 2.31.0"
    )


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_dependency_that_conflicts_with_the_base_fails_naming_the_base(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime, installer: InstallerName
) -> None:
    """needs-new needs requests >= 2.32: only the installer sees it; its failure names the base's version."""
    team = _requirements(tmp_path / "team" / "requirements.txt", "needs-new\n")
    with pytest.raises(InstallError) as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=team,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            installer=installer,
            extra_installer_args=offline(wheels),
            on_top_of=[base_zip],
        ).build()
    assert f"the base layers' versions were constraints: requests==2.31.0 is held by {base_zip}" in str(caught.value)


def test_a_layer_wholly_held_by_the_base_is_refused(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime
) -> None:
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests\n")
    with pytest.raises(InvalidInputError, match="Nothing to put into the layer") as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=team,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            extra_installer_args=offline(wheels),
            on_top_of=[base_zip],
        ).build()
    assert "held by the base layers" in str(caught.value)


# --- the base as a value: its hash, its travel into the build image ------------------------------------------------


def _options(requirements: Path, *bases: object) -> LayerBuildOptions:
    return LayerBuildOptions.parse(requirements=requirements, on_top_of=list(bases))


def test_the_hash_takes_what_the_base_holds_not_where_it_is(tmp_path: Path) -> None:
    requirements = _requirements(tmp_path / "requirements.txt", "rich\n")
    files = read_requirements(requirements)
    one = write_layer_zip(tmp_path / "a" / "layer.zip", {"requests": "2.31.0"})
    same = write_layer_zip(tmp_path / "elsewhere" / "base.zip", {"requests": "2.31.0"}, padding=10)
    other = write_layer_zip(tmp_path / "b" / "layer.zip", {"requests": "2.32.3"})
    alone = input_hash(_options(requirements), files)
    on_one = input_hash(_options(requirements, one), files)
    assert on_one != alone
    assert input_hash(_options(requirements, same), files) == on_one  # another path, other bytes, same versions
    assert input_hash(_options(requirements, other), files) != on_one
    document = _options(requirements, one).hash_document(lock_format=None)
    assert document["on-top-of"] == [{"distributions": ["requests==2.31.0"]}]
    assert str(tmp_path) not in json.dumps(document)
    # Without on_top_of, the hash document is what it was (existing layers keep their hashes).
    assert "on-top-of" not in _options(requirements).hash_document(lock_format=None)


def test_the_base_travels_into_the_build_image_as_data(tmp_path: Path) -> None:
    requirements = _requirements(tmp_path / "requirements.txt", "rich\n")
    base = write_layer_zip(tmp_path / "base" / "layer.zip", {"requests": "2.31.0", "idna": "3.6"})
    options = _options(requirements, base)
    context = tmp_path / "staged" / ".cdk-pip-layer"
    context.mkdir(parents=True)
    write_request(context, options, "requirements/requirements.txt", use_cache=False)
    base.unlink()  # the image has no host path: the request carries what the base holds
    request = read_request(context)
    assert request.options.on_top_of == options.on_top_of
    assert request.options.on_top_of[0].pins() == {"idna": "3.6", "requests": "2.31.0"}
    requests = BaseDistribution(canonicalize_name("requests"), "2.31.0", ("requests",))
    assert request.options.on_top_of[0].distributions[1] == requests


def test_bases_are_checked_when_parsed(tmp_path: Path) -> None:
    requirements = _requirements(tmp_path / "requirements.txt", "rich\n")
    a = write_layer_zip(tmp_path / "a.zip", {"requests": "2.31.0"})
    b = write_layer_zip(tmp_path / "b.zip", {"requests": "2.32.3"})
    disagree = r"The base layers disagree on requests: 2\.31\.0 in .*a\.zip, 2\.32\.3"
    with pytest.raises(InvalidInputError, match=disagree):
        _options(requirements, a, b)
    report = tmp_path / "arm.report.json"
    report.write_text(json.dumps({"target": "python3.12/arm64", "distributions": []}), encoding="utf-8")
    other_target = r"was built for python3\.12/arm64, this layer is for python3\.12/x86_64"
    with pytest.raises(InvalidInputError, match=other_target):
        _options(requirements, report)
    with pytest.raises(InvalidInputError, match="does not exist"):
        _options(requirements, tmp_path / "missing.zip")
    with pytest.raises(InvalidInputError, match="not int"):
        _options(requirements, 3)
    unresolved = BaseLayer("Platform/Base", target="python3.12/x86_64", unresolved="its stack is not bundled")
    options = _options(requirements, unresolved)
    with pytest.raises(InvalidInputError, match=r"What the base layer Platform/Base .* holds is not known"):
        PipBasedLambdaLayerLocalBuilder.from_options(options, tmp_path / "out").build()


# --- the command line -------------------------------------------------------------------------------------------------


def _build_argv(requirements: Path, out: Path, runtime: str, wheels: Path, *more: str) -> list[str]:
    args = ["build", "-r", str(requirements), "-o", str(out), "--runtime", runtime, "--no-cache", *more]
    return [*args, "--installer-arg=--no-index", "--installer-arg=--find-links", f"--installer-arg={wheels}"]


def test_cli_build_on_top_of_a_base_zip(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests\nrich\n")
    out = tmp_path / "team" / "out"
    code = main([*_build_argv(team, out, host_runtime, wheels, "--on-top-of", str(base_zip)), "--json"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(printed)["distributions"] == ["pygments==2.17.2", "rich==13.7.1"]
    assert _names(out / "layer.zip") == {"pygments-2.17.2.dist-info", "rich-13.7.1.dist-info"}


def test_cli_build_refuses_a_conflict_with_exit_2(
    tmp_path: Path, wheels: Path, base_zip: Path, host_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    team = _requirements(tmp_path / "team" / "requirements.txt", "requests==2.32.3\nrich\n")
    code = main(_build_argv(team, tmp_path / "out", host_runtime, wheels, "--on-top-of", str(base_zip)))
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: requests==2.32.3 conflicts with the base layer {base_zip}, which holds requests 2.31.0" in err


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("base_as", ["zip", "report"])
def test_cli_build_on_top_of_with_relative_paths(
    tmp_path: Path,
    wheels: Path,
    base_zip: Path,
    host_runtime: Runtime,
    *,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    installer: str,
    base_as: str,
) -> None:
    """The documented command, `-o build/team --on-top-of build/base/...`, run from the project: relative paths (the
    installer runs in another directory, so the bases' constraints file must not be named relative to this one)."""
    project = tmp_path / "project"
    _requirements(project / "layers" / "team" / "requirements.txt", "requests\nrich\n")
    base = project / "build" / "base" / ("layer.zip" if base_as == "zip" else "layer.report.json")
    base.parent.mkdir(parents=True)
    if base_as == "zip":
        base.write_bytes(base_zip.read_bytes())
    else:
        base.write_bytes((base_zip.parent / "layer.report.json").read_bytes())
    monkeypatch.chdir(project)
    argv = _build_argv(
        Path("layers/team/requirements.txt"),
        Path("build/team"),
        host_runtime,
        wheels,
        "--on-top-of",
        str(base.relative_to(project)),
        f"--installer={installer}",
    )
    code = main([*argv, "--json"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(printed)["distributions"] == ["pygments==2.17.2", "rich==13.7.1"]
    assert _names(project / "build" / "team" / "layer.zip") == {"pygments-2.17.2.dist-info", "rich-13.7.1.dist-info"}
