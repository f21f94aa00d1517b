"""Reading pip's and uv's answers, offline: outputs recorded from real runs (data/installer_output, re-recorded by
its record.py) replayed through the diagnosis, with the index probe replaced by a stand-in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer import (
    IndexSettings,
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LambdaTarget,
    LocalBuildUnavailableError,
    NativeSdistError,
    NoCompatibleDistributionError,
)
from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.install.failures import (
    IndexProblem,
    MissingDistribution,
    SourceBuildFailure,
    explain_failure,
    installer_warnings,
    missing_from_pip,
    missing_from_uv,
    read_build_failure,
)
from cdk_pip_layer.engine.install.index_pages import Sources
from cdk_pip_layer.engine.install.releases import look_up
from cdk_pip_layer.engine.install.sdists import source_build_error
from cdk_pip_layer.engine.process import CompletedRun
from cdk_pip_layer.engine.redact import redact

RECORDED = Path(__file__).parent / "data" / "installer_output"
TARGET = LambdaTarget.parse("python3.11", "x86_64")
DEAD_INDEX = IndexSettings(index_url="http://reader:s3cret-pw@127.0.0.1:9/simple")
REQUIREMENTS = Path("layer/requirements.txt")


# Besides today's pip ("pip"), the pips a build runs where users build: the one a venv gets on each Python (pyenv's
# 3.10.13: 23.0.1; 3.11.7 and 3.12.1: 23.2.1; 3.13.0: 24.2; Debian forky's python3.14: 26.2.2), recorded on Python
# 3.11 as pip-<version>-<case>.txt (record.py --python). Each answer is read the same whichever pip gave it.
PIPS = ["pip", "pip-23.0.1", "pip-23.2.1", "pip-24.2", "pip-26.2.2"]
INSTALLERS = [*PIPS, "uv"]


def name_of(recording: str) -> str:
    """The installer a recording is of ("pip-23.0.1" -> "pip")."""
    return recording.partition("-")[0]


def recorded(installer: str, case: str) -> CompletedRun:
    text = (RECORDED / f"{installer}-{case}.txt").read_text(encoding="utf-8")
    first, _, output = text.partition("\n")
    return CompletedRun((name_of(installer), "install"), int(first.removeprefix("# exit code ")), output)


def missing(installer: str, run: CompletedRun) -> MissingDistribution | None:
    return missing_from_pip(run) if name_of(installer) == "pip" else missing_from_uv(run)


def diagnose(
    installer: str, case: str, index: IndexSettings | None = None, sources: Sources | None = None
) -> LayerBuildError:
    """The error for a recorded run; ``sources`` are the places whose listing of the project the diagnosis reads
    (a file:// index standing for PyPI: none when not given, as when the indexes cannot be read)."""
    run = recorded(installer, case)
    probed: list[str] = []

    def probe(url: str, project: str | None) -> IndexProblem | None:
        probed.append(url)
        return IndexProblem(redact(url), "connection refused") if "127.0.0.1:9" in url else None

    error = explain_failure(
        run,
        name_of(installer),
        target=TARGET,
        index=index or IndexSettings(),
        requirements=REQUIREMENTS,
        missing=missing(installer, run),
        configured={},
        probe=probe,
        look_up=None if sources is None else lambda missing: look_up(missing, sources),
    )
    assert probed or "--no-index" in run.argv  # every diagnosis asks whether the indexes answer
    return error


def file_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in ``root`` (a folder per project, as pip reads a file:// index) serving ``wheels``."""
    for wheel in wheels:
        project = root / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).write_bytes(wheel.read_bytes())
        with (project / "index.html").open("a", encoding="utf-8") as page:
            page.write(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    return root.as_uri()


@pytest.fixture
def six_index(make_wheel: Callable[..., Path], tmp_path: Path) -> Sources:
    """An index with six 1.5.0 .. 1.17.0 (as PyPI has them) and cdk-pip-layer-no-such-package-4f1f (one letter off
    the recordings' missing project)."""
    wheels = [make_wheel("six", version) for version in ("1.5.0", "1.15.0", "1.16.0", "1.17.0")]
    wheels.append(make_wheel("cdk-pip-layer-no-such-package-4f1f", "1.0"))
    return Sources(indexes=(file_index(tmp_path / "simple", wheels),))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_project_that_does_not_exist_is_said_not_found_with_the_close_name(
    installer: str, six_index: Sources
) -> None:
    error = diagnose(installer, "no-such-project", sources=six_index)
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == f"'cdk-pip-layer-no-such-package-4f1e' was not found on the index {six_index.indexes[0]}"
    assert error.package == "cdk-pip-layer-no-such-package-4f1e"
    assert (error.hint or "").startswith("did you mean 'cdk-pip-layer-no-such-package-4f1f'? If the name is right")
    assert error.subject == str(REQUIREMENTS)
    assert "no distribution" not in str(error).lower()
    assert "publishes neither" not in str(error)


def test_uv_saying_a_project_does_not_exist_is_believed_when_the_indexes_cannot_be_read() -> None:
    error = diagnose("uv", "no-such-project")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "'cdk-pip-layer-no-such-package-4f1e' was not found on the index https://pypi.org/simple"
    assert (error.hint or "").startswith("check the name's spelling")


@pytest.mark.parametrize("pip", PIPS)
def test_pip_saying_no_versions_without_the_index_listing_is_not_taken_for_a_missing_project(pip: str) -> None:
    """pip's "from versions: none" is also what it says of a project without a wheel for the target."""
    error = diagnose(pip, "no-such-project")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "No distribution of cdk-pip-layer-no-such-package-4f1e==1.0 exists for python3.11/x86_64"
    assert "spelled right" in (error.hint or "")


@pytest.mark.parametrize("pip", PIPS)
def test_pip_lists_the_versions_that_do_have_a_wheel_for_the_target(pip: str) -> None:
    run = recorded(pip, "sdist-only")
    found = missing_from_pip(run)
    assert found is not None
    assert (found.requirement, found.name, found.not_found) == ("mmh3==2.5.1", "mmh3", False)
    assert found.versions_for_target[0] == "3.1.0"
    error = diagnose(pip, "sdist-only")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "No version matching mmh3==2.5.1 has a wheel for python3.11/x86_64"
    assert any(line.startswith("versions with a compatible wheel: ") and "5.3.1" in line for line in error.details)
    assert "python3.11/x86_64 loads wheels for CPython 3.11 on manylinux x86_64 (glibc ≤ 2.26)" in str(error)
    assert "tags tried" not in str(error)
    assert " more" not in str(error)


def test_uv_names_the_requirement_without_usable_wheels() -> None:
    found = missing_from_uv(recorded("uv", "sdist-only"))
    assert found == MissingDistribution("mmh3==2.5.1", "mmh3", (), not_found=False)
    error = diagnose("uv", "sdist-only")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "No version matching mmh3==2.5.1 has a wheel for python3.11/x86_64"


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_version_that_does_not_exist(installer: str) -> None:
    error = diagnose(installer, "no-such-version")
    assert isinstance(error, NoCompatibleDistributionError)
    assert "six==0.0.1" in error.what
    assert error.package == "six"


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_version_that_does_not_exist_lists_the_nearest_that_do(installer: str, six_index: Sources) -> None:
    error = diagnose(installer, "no-such-version", sources=six_index)
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == f"'six' has no version 0.0.1 on the index {six_index.indexes[0]}"
    assert error.details == ("nearest versions: 1.5.0, 1.15.0, 1.16.0",)
    assert "six==1.5.0" in (error.hint or "")


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_version_conflict_is_an_install_error_with_the_installers_reason(installer: str) -> None:
    assert missing(installer, recorded(installer, "conflict")) is None
    error = diagnose(installer, "conflict")
    assert type(error) is InstallError
    assert error.what == f"{name_of(installer)} failed to install the requirements for python3.11/x86_64"
    assert any("urllib3" in line for line in error.details)
    assert "conflict" in (error.hint or "")


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unreachable_index_is_named_redacted(installer: str) -> None:
    error = diagnose(installer, "unreachable-index", DEAD_INDEX)
    assert isinstance(error, IndexUnreachableError)
    assert error.details == ("http://****@127.0.0.1:9/simple: connection refused",)
    assert "s3cret-pw" not in str(error)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unknown_option_is_bad_input(installer: str) -> None:
    error = diagnose(installer, "unknown-option")
    assert isinstance(error, InvalidInputError)
    assert error.what == f"{name_of(installer)} does not know the option --no-such-option"
    assert error.exit_code == 2


@pytest.mark.parametrize("recording", PIPS)
def test_a_yanked_release_is_a_warning_of_a_successful_run(recording: str) -> None:
    pip = installer_warnings(recorded(recording, "yanked-warning").output)
    assert len(pip) == 1
    assert "yanked version: 'cryptography'" in pip[0]
    assert pip[0].endswith("Reason for being yanked: Regression in OpenSSL.")
    assert installer_warnings(recorded("uv", "yanked-warning").output) == (
        '`cryptography==37.0.3` is yanked (reason: "Regression in OpenSSL.")',
    )


# --- source distributions that do not build (recorded from real releases, see record.py) ---------------------------

WRAPT = MissingDistribution("wrapt==1.13.3", "wrapt", (), not_found=False)
PATHTOOLS = MissingDistribution("pathtools==0.1.2", "pathtools", (), not_found=False)
MMH3 = MissingDistribution("mmh3==2.5.1", "mmh3", (), not_found=False)
DOCOPT = MissingDistribution("docopt==0.6.2", "docopt", (), not_found=False)
PYTHON_3_12 = LambdaTarget.parse("python3.12", "x86_64")
BOILERPLATE = ("metadata-generation-failed", "See above", "subprocess-exited-with-error", "note:", "[end of output]")


def build_failure(case: str) -> SourceBuildFailure:
    run = recorded("pip", case)
    assert not run.ok
    return read_build_failure(run.output)


def assert_explains(failure: SourceBuildFailure, reason: str) -> None:
    assert any(reason in line for line in failure.lines), failure.lines
    assert not [line for line in failure.lines if any(text in line for text in BOILERPLATE)], failure.lines


def test_a_release_that_does_not_build_on_the_targets_python_says_why_and_not_to_use_the_build_image() -> None:
    failure = build_failure("sdist-python-incompatible")
    assert failure.kind == "python"
    assert_explains(failure, "ImportError: cannot import name 'formatargspec' from 'inspect'")
    error = source_build_error(failure, WRAPT, target=PYTHON_3_12, build_python="3.12")
    assert type(error) is InstallError
    assert error.exit_code == 1  # the build image (Python 3.12 as well) cannot help: no fallback to Docker
    assert error.what == "wrapt==1.13.3 does not build on Python 3.12: its source distribution fails"
    assert "pin a release of 'wrapt' that supports Python 3.12" in (error.hint or "")
    assert "cannot build this release either" in (error.hint or "")
    assert any("formatargspec" in line for line in error.details)


def test_a_module_gone_from_the_hosts_python_advises_the_build_image_only_for_another_python() -> None:
    failure = build_failure("sdist-removed-module")
    assert failure.kind == "python"
    assert_explains(failure, "ModuleNotFoundError: No module named 'imp'")
    same = source_build_error(failure, PATHTOOLS, target=PYTHON_3_12, build_python="3.12")
    assert type(same) is InstallError
    assert "build image runs the same Python" in (same.hint or "")
    # uv on a 3.12 host building for python3.11: the image's Python 3.11 still has imp
    other = source_build_error(failure, PATHTOOLS, target=TARGET, build_python="3.12")
    assert isinstance(other, LocalBuildUnavailableError)
    assert other.exit_code == 3
    assert other.what == "pathtools==0.1.2's source distribution does not build on this host's Python 3.12"
    assert "Lambda build image for python3.11/x86_64" in (other.hint or "")


def test_a_missing_compiler_is_native_code_that_the_build_image_can_build() -> None:
    failure = build_failure("sdist-no-compiler")
    assert failure.kind == "native"
    assert_explains(failure, "No such file or directory: 'g++'")
    error = source_build_error(failure, MMH3, target=TARGET, build_python="3.11")
    assert isinstance(error, NativeSdistError)
    assert "native code" in error.what
    assert "compilers" in (error.hint or "")
    in_the_image = source_build_error(failure, MMH3, target=TARGET, build_python="3.11", allow_native=True)
    assert type(in_the_image) is InstallError  # already in the build image: never "use the build image"
    assert "build image" not in (in_the_image.hint or "")


def test_a_build_that_fails_for_another_reason_is_never_called_native() -> None:
    failure = build_failure("sdist-legacy-build")  # pip 23.0's legacy setup.py bdist_wheel without 'wheel'
    assert failure.kind == "unknown"
    assert_explains(failure, "error: invalid command 'bdist_wheel'")
    error = source_build_error(failure, DOCOPT, target=LambdaTarget.parse("python3.10", "x86_64"), build_python="")
    assert type(error) is InstallError
    assert "native" not in error.what


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("gcc " * 100_000, "unknown"),  # a compiler named a hundred thousand times, nothing failed
        ("cargo " * 100_000, "unknown"),
        ("gcc " * 100_000 + "failed with exit code 1", "native"),
        ("clang++ " * 50_000 + "not found", "native"),
    ],
    ids=["gcc", "cargo", "gcc-failed", "clang-not-found"],
)
def test_a_hostile_build_log_line_is_read_in_linear_time(line: str, kind: str) -> None:
    """A source distribution's build prints what it likes: one line naming a compiler over and over kept the
    native-code check busy for minutes (quadratic: 80 kB took 21 s). The subprocess's timeout only turns a hang into
    a failure."""
    code = (
        "import sys\n"
        "from cdk_pip_layer.engine.install.failures import read_build_failure\n"
        "print(read_build_failure('  error: subprocess-exited-with-error\\n' + sys.stdin.read()).kind)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=line, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == kind


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_hash_that_does_not_match_names_the_distribution_and_both_hashes(installer: str) -> None:
    """pip's capitals and uv's 'Hash mismatch' said it, but under 'read pip's output above; … a version conflict is
    solved by relaxing pins', which is no advice for a file whose bytes are not the pinned ones."""
    error = diagnose(installer, "hash-mismatch")
    assert type(error) is InstallError
    assert error.what == "The downloaded six==1.16.0 does not have the hash its requirement pins"
    assert f"pinned: sha256:{'0' * 64}" in error.details
    assert "downloaded: sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" in error.details
    assert "update its --hash" in (error.hint or "") and "conflict" not in (error.hint or "")


@pytest.mark.parametrize("installer", [i for i in INSTALLERS if i != "pip-26.2.2"])  # PyPI has no pip 26.2.2
def test_a_download_that_matches_none_of_two_pinned_hashes_names_them_all(installer: str) -> None:
    """pip-compile --generate-hashes pins a wheel's and an sdist's hash: pip prints the second as 'Expected     or
    <hash>', which went unread, so the error fell back to 'read pip's output above; … relaxing pins'."""
    error = diagnose(installer, "hash-mismatch-two")
    assert type(error) is InstallError
    assert error.what == "The downloaded six==1.16.0 does not have the hash its requirement pins"
    assert f"pinned: sha256:{'0' * 64}" in error.details and f"pinned: sha256:{'1' * 64}" in error.details
    assert "downloaded: sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" in error.details
    assert "update its --hash" in (error.hint or "") and "conflict" not in (error.hint or "")


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_file_named_by_its_url_whose_hash_does_not_match_names_the_url(installer: str) -> None:
    """A lock without an index names each file by its URL (``six @ https://…``); pip 24.2 and older print the line as
    ``six@ https://…``, which went unread: the index probe then blamed PyPI for a download that had worked."""
    error = diagnose(installer, "hash-mismatch-url")
    assert type(error) is InstallError
    url = "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11"
    assert error.what == f"The downloaded six @ {url}/six-1.16.0-py2.py3-none-any.whl does not have the hash its " + (
        "requirement pins"
    )
    assert f"pinned: sha256:{'0' * 64}" in error.details
    assert "downloaded: sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" in error.details
