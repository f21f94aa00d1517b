"""The real local builder, driven offline: real pip (or uv) installing wheels built in tmp_path."""

from __future__ import annotations

import hashlib
import sys
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import (
    InstallError,
    InvalidInputError,
    LayerBuildResult,
    LocalBuildUnavailableError,
    NoCompatibleDistributionError,
    PipBasedLambdaLayerLocalBuilder,
)
from cdk_pip_layer.engine.install import into_layer
from cdk_pip_layer.engine.interpreters import find_uv
from cdk_pip_layer.engine.options import ArchitectureName, InstallerName, Runtime

pytestmark = pytest.mark.usefixtures("offline_env")


def offline_args(wheels: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(wheels))


def build(
    requirements: Path,
    build_dir: Path,
    wheels: Path,
    runtime: Runtime,
    **kwargs: Any,
) -> LayerBuildResult:
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=requirements,
        build_dir=build_dir,
        runtime=runtime,
        extra_installer_args=offline_args(wheels),
        **kwargs,
    )
    return builder.build()


def layer_names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


@pytest.fixture
def wheels(make_wheel: Callable[..., Path]) -> Path:
    """A small index: an app with marker-dependent and extra dependencies, a console script, stale bytecode."""
    app = make_wheel(
        "demo-app",
        "1.0",
        requires=[
            'old-only; python_version < "3.11"',
            'new-only; python_version >= "3.12"',
            'arm-only; platform_machine == "aarch64"',
            "helper>=1",
        ],
        files={
            "demo_app/__init__.py": "from helper import VALUE\n",
            "demo_app/cli.py": "def main():\n    print('hi')\n",
            "demo_app/__pycache__/cli.cpython-39.pyc": b"stale bytecode of another interpreter",
            "demo_app-1.0.data/scripts/demo-tool": "#!python\nprint('tool')\n",
        },
        entry_points="[console_scripts]\ndemo = demo_app.cli:main\n",
    )
    make_wheel("helper", "1.2", files={"helper.py": "VALUE = 1\n"})
    for name in ("old-only", "new-only", "arm-only"):
        make_wheel(name, "1.0")
    make_wheel("six", "1.16.0", files={"six.py": "# six\n"})
    make_wheel("sixer", "0.1", files={"sixer/__init__.py": "", "sixer/six.py": ""})
    return app.parent


def write_requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_build_layer_contents_and_summary(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    req = write_requirements(tmp_path, "demo-app==1.0", "six==1.16.0", "sixer==0.1")
    result = build(req, tmp_path / "build", wheels, host_runtime, exclude=["Six", "boto3"])
    names = layer_names(result.zip_path)

    assert result.zip_path == tmp_path / "build" / "layer.zip"
    assert result.artifacts_dir == tmp_path / "build" / "artifacts"
    assert (result.artifacts_dir / "python" / "demo_app" / "cli.py").is_file()
    assert "python/demo_app/__init__.py" in names
    assert "python/helper.py" in names
    # exclusion by RECORD: six is gone, sixer (same prefix) stays
    assert "python/six.py" not in names
    assert not [n for n in names if n.startswith("python/six-")]
    assert {"python/sixer/__init__.py", "python/sixer/six.py"} <= set(names)
    # host artifacts: no bin/ (shebangs point at the build host's Python), no byte code at all
    assert not [n for n in names if n.startswith(("bin/", "python/bin/"))]
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    # markers were evaluated for the target
    host = sys.version_info[:2]
    assert any(n.startswith("python/old_only") for n in names) is (host < (3, 11))
    assert any(n.startswith("python/new_only") for n in names) is (host >= (3, 12))
    assert not any(n.startswith("python/arm_only") for n in names)

    # auto: uv, which installs what pip would here, and the summary says so
    assert result.installer.startswith("uv ")
    assert "chosen: it installs the wheels pip would choose" in result.installer
    assert result.excluded == ("six==1.16.0",)
    assert "demo-app==1.0" in result.distributions and "helper==1.2" in result.distributions
    assert "sixer==0.1" in result.distributions
    assert not [d for d in result.distributions if d.startswith("six==")]
    assert result.warnings == ("excluded package 'boto3' is not in the layer",)
    assert result.sha256 == hashlib.sha256(result.zip_path.read_bytes()).hexdigest()
    assert result.zipped_bytes == result.zip_path.stat().st_size
    with zipfile.ZipFile(result.zip_path) as archive:
        assert result.unzipped_bytes == sum(i.file_size for i in archive.infolist())
    summary = result.summary()
    for expected in (
        f"layer: {result.zip_path}",
        f"target: {host_runtime}/x86_64",
        "installer: uv ",
        "excluded: six==1.16.0",
        f"sha256: {result.sha256}",
        "warning: excluded package 'boto3' is not in the layer",
    ):
        assert expected in summary
    assert not list((tmp_path / "build").glob(".staging-*"))


def test_two_builds_are_byte_identical(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    req = write_requirements(tmp_path, "demo-app==1.0")
    first = build(req, tmp_path / "one", wheels, host_runtime)
    second = build(req, tmp_path / "elsewhere" / "two", wheels, host_runtime)
    assert first.sha256 == second.sha256
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()


def test_failed_build_keeps_the_earlier_layer(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    build_dir = tmp_path / "build"
    good = build(write_requirements(tmp_path, "helper==1.2"), build_dir, wheels, host_runtime)
    before = good.zip_path.read_bytes()
    artifacts_before = sorted(p.relative_to(build_dir).as_posix() for p in good.artifacts_dir.rglob("*"))

    bad = write_requirements(tmp_path, "helper==1.2", "no-such-package-anywhere==1.0")
    with pytest.raises(NoCompatibleDistributionError) as info:
        build(bad, build_dir, wheels, host_runtime)
    assert info.value.package == "no-such-package-anywhere"
    assert "no-such-package-anywhere" in str(info.value)
    assert good.zip_path.read_bytes() == before
    assert sorted(p.relative_to(build_dir).as_posix() for p in good.artifacts_dir.rglob("*")) == artifacts_before
    # the earlier layer's report and SBOM stay with it
    assert sorted(p.name for p in build_dir.iterdir()) == [
        "artifacts",
        "layer.cdx.json",
        "layer.report.json",
        "layer.zip",
    ]


def test_a_failed_first_build_leaves_no_output_directory(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    """The directories a build made for its output go again when it fails: nothing half-written stays behind."""
    bad = write_requirements(tmp_path, "no-such-package-anywhere==1.0")
    with pytest.raises(NoCompatibleDistributionError):
        build(bad, tmp_path / "new" / "layer", wheels, host_runtime)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(NoCompatibleDistributionError):
        build(bad, existing, wheels, host_runtime)
    assert existing.is_dir() and list(existing.iterdir()) == []  # it was there before: it stays


def test_a_variable_in_a_version_reaches_uv_expanded(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip expands ``${NAME}`` in a requirement; uv does not (forced uv failed, auto fell back to pip): uv gets the
    line expanded, and the layer is pip's."""
    monkeypatch.setenv("HELPER_VERSION", "1.2")
    requirements = write_requirements(tmp_path, "helper==${HELPER_VERSION}")
    forced = build(requirements, tmp_path / "uv", wheels, host_runtime, installer="uv")
    assert forced.distributions == ("helper==1.2",)
    auto = build(requirements, tmp_path / "auto", wheels, host_runtime)
    assert auto.installer.startswith("uv ") and "chosen: it installs the wheels pip would choose" in auto.installer
    pip = build(requirements, tmp_path / "pip", wheels, host_runtime, installer="pip")
    assert pip.zip_path.read_bytes() == forced.zip_path.read_bytes() == auto.zip_path.read_bytes()


# --- markers for other targets than the host: pip with another interpreter, or uv ----------------------------------


@pytest.mark.parametrize(
    ("runtime", "arch", "installer", "present", "absent"),
    [
        ("python3.10", "x86_64", "pip", {"old_only"}, {"new_only", "arm_only"}),
        ("python3.12", "x86_64", "pip", {"new_only"}, {"old_only", "arm_only"}),
        ("python3.10", "x86_64", "uv", {"old_only"}, {"new_only", "arm_only"}),
        ("python3.12", "arm64", "uv", {"new_only", "arm_only"}, {"old_only"}),
    ],
)
def test_markers_follow_the_target(
    tmp_path: Path,
    wheels: Path,
    *,
    runtime: Runtime,
    arch: ArchitectureName,
    installer: InstallerName,
    present: set[str],
    absent: set[str],
) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=write_requirements(tmp_path, "demo-app==1.0"),
        build_dir=tmp_path / "build",
        runtime=runtime,
        architecture=arch,
        installer=installer,
        extra_installer_args=offline_args(wheels),
    )
    try:
        builder.selection().first()
    except LocalBuildUnavailableError as exc:
        pytest.skip(f"no local installer for {runtime}: {exc.what}")
    result = builder.build()
    tops = {n.split("/")[1] for n in layer_names(result.zip_path) if n.count("/") >= 2}
    assert present <= tops
    assert not (absent & tops)
    assert result.installer.startswith(installer)


# --- a pure-Python package published only as a source distribution -------------------------------------------------

_BACKEND = """
import base64, hashlib, os, zipfile

def _hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = "puresdist-1.0.dist-info"
    files = {
        "puresdist.py": b"VALUE = 42\\n",
        info + "/METADATA": b"Metadata-Version: 2.1\\nName: puresdist\\nVersion: 1.0\\n\\n",
        info + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = "".join(f"{k},{_hash(v)},{len(v)}\\n" for k, v in files.items()) + info + "/RECORD,,\\n"
    files[info + "/RECORD"] = record.encode()
    name = "puresdist-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for arc, data in files.items():
            archive.writestr(arc, data)
    return name
"""


def make_sdist(dest: Path) -> Path:
    """An sdist whose in-tree PEP 517 backend needs no download: it builds offline."""
    import io
    import tarfile

    members = {
        "puresdist-1.0/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "puresdist-1.0/backend.py": _BACKEND,
        "puresdist-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: puresdist\nVersion: 1.0\n",
    }
    path = dest / "puresdist-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def test_pure_sdist_from_find_links_is_built_offline(tmp_path: Path, wheels: Path, host_runtime: Runtime) -> None:
    make_sdist(wheels)
    req = write_requirements(tmp_path, "helper==1.2", "puresdist==1.0")
    result = build(req, tmp_path / "build", wheels, host_runtime)
    assert result.built_from_source == ("puresdist",)
    assert "puresdist==1.0" in result.distributions
    assert "python/puresdist.py" in layer_names(result.zip_path)


def _base_interpreter() -> str | None:
    """The interpreter this venv was made from: same version, another path (as on another machine)."""
    if sys.prefix == sys.base_prefix:
        return None
    base = Path(sys.base_prefix) / "bin" / "python{}.{}".format(*sys.version_info[:2])
    return str(base) if base.is_file() else None


def test_layer_does_not_depend_on_the_build_hosts_interpreter_path(
    tmp_path: Path, wheels: Path, host_runtime: Runtime
) -> None:
    base = _base_interpreter()
    if base is None:
        pytest.skip("tests do not run in a venv: no second interpreter of this version to compare with")
    req = write_requirements(tmp_path, "demo-app==1.0")
    try:
        other = build(req, tmp_path / "base", wheels, host_runtime, python_executable=base)
    except LocalBuildUnavailableError as exc:
        pytest.skip(f"{base} cannot build: {exc.what}")
    venv = build(req, tmp_path / "venv", wheels, host_runtime, python_executable=sys.executable)
    assert venv.sha256 == other.sha256
    record = (venv.artifacts_dir / "python" / "demo_app-1.0.dist-info" / "RECORD").read_text()
    assert "bin/" not in record


def test_installer_warnings_keep_what_matters_to_the_layer() -> None:
    from cdk_pip_layer.engine.install.failures import installer_warnings

    output = "\n".join(
        [
            "Collecting requests==2.32.0",
            "WARNING: The candidate selected for download or install is a yanked version: 'requests' candidate",
            "Reason for being yanked: Yanked due to conflicts with CVE-2024-35195 mitigation",
            "WARNING: Running pip as the 'root' user can result in broken permissions",
            "WARNING: Location 'file:///opt/x/requests/' is ignored: it is neither a file nor a directory.",
            "warning: The package `foo==1.0` does not have an extra named `bar`",
            "Successfully installed requests-2.32.0",
        ]
    )
    assert installer_warnings(output) == (
        "The candidate selected for download or install is a yanked version: 'requests' candidate "
        "Reason for being yanked: Yanked due to conflicts with CVE-2024-35195 mitigation",
        "The package `foo==1.0` does not have an extra named `bar`",
    )


# --- pip's hash-checking mode, whichever installer runs ---------------------------------------------------------


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", ["uv", "auto", "pip"])
@pytest.mark.parametrize("second", ["other==1.0", "other"], ids=["unhashed", "unhashed-unpinned"])
def test_one_hash_puts_every_requirement_under_hash_checking(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, installer: InstallerName, second: str
) -> None:
    """pip refuses a file where one line pins a hash and another does not (or is not pinned at all); uv installed
    both unchecked, and auto picked uv."""
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    make_wheel("other", "1.0", files={"other.py": ""})
    digest = hashlib.sha256(lib.read_bytes()).hexdigest()
    with pytest.raises(InstallError, match=r"hash|pinned"):
        PipBasedLambdaLayerLocalBuilder(
            requirements=write_requirements(tmp_path, f"lib==1.0 --hash=sha256:{digest}\n{second}"),
            build_dir=tmp_path / "build",
            runtime=host_runtime,
            installer=installer,
            extra_installer_args=("--no-index", "--find-links", str(lib.parent)),
        ).build()
    assert not (tmp_path / "build" / "layer.zip").exists()


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize("installer", ["uv", "auto"])
def test_a_wrong_hash_on_an_unpinned_line_is_refused(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, installer: InstallerName
) -> None:
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    with pytest.raises(InstallError):
        PipBasedLambdaLayerLocalBuilder(
            requirements=write_requirements(tmp_path, f"lib --hash=sha256:{'0' * 64}"),
            build_dir=tmp_path / "build",
            runtime=host_runtime,
            installer=installer,
            extra_installer_args=("--no-index", "--find-links", str(lib.parent)),
        ).build()


@pytest.mark.parametrize(
    ("lines", "exclude", "why"),
    [
        (["# nothing yet"], (), "lists no requirement"),
        (['lib==1.0; python_version < "3.0"'], (), "markers leave every requirement out"),
        (["lib==1.0"], ("lib",), "--exclude removed every distribution"),
    ],
    ids=["no-requirement", "markers", "excluded"],
)
def test_nothing_to_put_into_the_layer_is_one_clear_error(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: Runtime,
    *,
    lines: list[str],
    exclude: tuple[str, ...],
    why: str,
) -> None:
    """It ended as '[layout] <output>/.staging-…/layer.zip: holds no file (build the layer again)'."""
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    with pytest.raises(InvalidInputError) as caught:
        build(write_requirements(tmp_path, *lines), tmp_path / "build", lib.parent, host_runtime, exclude=exclude)
    assert caught.value.what == f"Nothing to put into the layer for {host_runtime}/x86_64"
    assert any(why in line for line in caught.value.details)
    assert ".staging" not in str(caught.value)
    assert not (tmp_path / "build" / "layer.zip").exists()


@pytest.mark.parametrize("installer", ["uv", "auto", "pip"])
def test_a_comment_before_a_line_continuation_is_read_as_pip_reads_it(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, installer: InstallerName
) -> None:
    """pip joins the lines first, so the comment takes the next line with it; uv read the file as written and
    installed both."""
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    make_wheel("other", "1.0", files={"other.py": ""})
    requirements = write_requirements(tmp_path, "lib==1.0 # the library \\", "other==1.0")
    result = build(requirements, tmp_path / "build", lib.parent, host_runtime, installer=installer)
    assert result.distributions == ("lib==1.0",)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_symlinked_requirements_file_includes_from_the_links_directory(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, installer: InstallerName
) -> None:
    """pip reads `-r inc.txt` beside the path it was given (the link), as our reader does; the installers were given
    the resolved path and read the include beside the link's target."""
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    make_wheel("other", "1.0", files={"other.py": ""})
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").mkdir()
    (tmp_path / "real" / "requirements.txt").write_text("-r inc.txt\n", encoding="utf-8")
    (tmp_path / "real" / "inc.txt").write_text("other==1.0\n", encoding="utf-8")
    (tmp_path / "linked" / "inc.txt").write_text("lib==1.0\n", encoding="utf-8")
    (tmp_path / "linked" / "requirements.txt").symlink_to(tmp_path / "real" / "requirements.txt")
    linked = tmp_path / "linked" / "requirements.txt"
    result = build(linked, tmp_path / "build", lib.parent, host_runtime, installer=installer)
    assert result.distributions == ("lib==1.0",)


@pytest.mark.parametrize("name", ["layer.report.json", "layer.cdx.json"])
def test_a_report_path_that_is_a_directory_is_refused_before_anything_is_replaced(
    tmp_path: Path, make_wheel: Callable[..., Path], host_runtime: Runtime, name: str
) -> None:
    """The new layer.zip and artifacts/ were published, then writing the report failed with a traceback."""
    lib = make_wheel("lib", "1.0", files={"lib.py": ""})
    out = tmp_path / "build"
    out.mkdir()
    (out / "layer.zip").write_bytes(b"the earlier layer")
    (out / name).mkdir()
    with pytest.raises(InvalidInputError, match=name):
        build(write_requirements(tmp_path, "lib==1.0"), out, lib.parent, host_runtime)
    assert (out / "layer.zip").read_bytes() == b"the earlier layer"
    assert not (out / "artifacts").exists()


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("six==1.16.0", ("--no-binary=six",)),
        ("six==1.16.0", ("--no-binary", ":all:")),
        ("six==1.16.0", ("--no-bin=six",)),  # pip takes any unambiguous abbreviation
        ("--no-binary :all:\nsix==1.16.0", ()),
    ],
)
def test_no_binary_is_refused_by_name_before_anything_runs(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, line: str, args: tuple[str, ...]
) -> None:
    """--no-binary has the installer build from source for this host (uv did: a native package compiled for the
    host's Python and glibc would be reported as a wheel); pip refuses it beside the target's --platform. A layer
    is built from wheels for the target, and from a source distribution by this engine only where no wheel fits."""
    requirements = write_requirements(tmp_path, line)
    with pytest.raises(InvalidInputError, match="--no-binary") as caught:
        PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            extra_installer_args=(*offline_args(wheels), *args),
        ).build()
    assert caught.value.hint and "source distribution" in caught.value.hint
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["--no-binary :none:\nhelper==1.2", "helper==1.2 --no-binary helper"])
def test_no_binary_that_changes_nothing_is_accepted(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, text: str
) -> None:
    """``:none:``, and ``--no-binary`` after a requirement (pip ignores options there but the per-requirement ones)."""
    result = build(write_requirements(tmp_path, text), tmp_path / "out", wheels, host_runtime)
    assert result.distributions == ("helper==1.2",)


def test_builds_that_share_an_install_lock_install_one_at_a_time(
    tmp_path: Path, wheels: Path, host_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Builds started together (one dependency set for several targets) install in turn: their downloads and
    index reads do not compete, and a later build finds what an earlier one downloaded in the cache. The rest of
    each build (zip, verification) still runs beside the others."""
    install = into_layer.install_for_target
    met = threading.Barrier(2, timeout=1)
    installs_met: list[bool] = []

    def meeting(*args: Any, **kwargs: Any) -> object:
        try:
            met.wait()
            installs_met.append(True)
        except threading.BrokenBarrierError:
            installs_met.append(False)
        return install(*args, **kwargs)

    monkeypatch.setattr(into_layer, "install_for_target", meeting)
    req = write_requirements(tmp_path, "demo-app==1.0")
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda n: build(req, tmp_path / f"build-{n}", wheels, host_runtime, install_lock=lock), range(2))
        )
    assert installs_met == [False, False]
    assert results[0].sha256 == results[1].sha256
