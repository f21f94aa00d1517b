"""Reading pip's and uv's answers, offline: outputs recorded from real runs (data/installer_output, re-recorded by
its record.py) replayed through the diagnosis, with the index probe replaced by a stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import (
    IndexSettings,
    IndexUnreachableError,
    InstallError,
    InvalidInputError,
    LambdaTarget,
    NoCompatibleDistributionError,
)
from cdk_pip_layer.engine.diagnosis import (
    MissingDistribution,
    explain_failure,
    installer_warnings,
    missing_from_pip,
    missing_from_uv,
)
from cdk_pip_layer.engine.errors import LayerBuildError
from cdk_pip_layer.engine.process import CompletedRun
from cdk_pip_layer.engine.redact import redact

RECORDED = Path(__file__).parent / "data" / "installer_output"
TARGET = LambdaTarget.parse("python3.11", "x86_64")
DEAD_INDEX = IndexSettings(index_url="http://reader:s3cret-pw@127.0.0.1:9/simple")
REQUIREMENTS = Path("layer/requirements.txt")


def recorded(installer: str, case: str) -> CompletedRun:
    text = (RECORDED / f"{installer}-{case}.txt").read_text(encoding="utf-8")
    first, _, output = text.partition("\n")
    return CompletedRun((installer, "install"), int(first.removeprefix("# exit code ")), output)


def missing(installer: str, run: CompletedRun) -> MissingDistribution | None:
    return missing_from_pip(run) if installer == "pip" else missing_from_uv(run)


def diagnose(installer: str, case: str, index: IndexSettings | None = None) -> LayerBuildError:
    run = recorded(installer, case)
    probed: list[str] = []

    def probe(url: str, project: str | None) -> str | None:
        probed.append(url)
        return f"{redact(url)}: connection refused" if "127.0.0.1:9" in url else None  # as probe_index says it

    error = explain_failure(
        run,
        installer,
        target=TARGET,
        index=index or IndexSettings(),
        requirements=REQUIREMENTS,
        missing=missing(installer, run),
        configured={},
        probe=probe,
    )
    assert probed or "--no-index" in run.argv  # every diagnosis asks whether the indexes answer
    return error


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_project_that_does_not_exist_is_named(installer: str) -> None:
    error = diagnose(installer, "no-such-project")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what.startswith("No distribution of cdk-pip-layer-no-such-package-4f1e")
    assert error.what.endswith("exists for python3.11/x86_64")
    assert error.package == "cdk-pip-layer-no-such-package-4f1e"
    assert "spelled right" in (error.hint or "")
    assert error.subject == str(REQUIREMENTS)


def test_pip_lists_the_versions_that_do_have_a_wheel_for_the_target() -> None:
    run = recorded("pip", "sdist-only")
    found = missing_from_pip(run)
    assert found is not None
    assert (found.requirement, found.name, found.not_found) == ("mmh3==2.5.1", "mmh3", False)
    assert found.versions_for_target[0] == "3.1.0"
    error = diagnose("pip", "sdist-only")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "No version matching mmh3==2.5.1 has a wheel for python3.11/x86_64"
    assert any(line.startswith("versions with a compatible wheel: ") and "5.3.1" in line for line in error.details)
    assert any(line.startswith("tags tried: cp311-cp311-manylinux_2_26_x86_64") for line in error.details)


def test_uv_names_the_requirement_without_usable_wheels() -> None:
    found = missing_from_uv(recorded("uv", "sdist-only"))
    assert found == MissingDistribution("mmh3==2.5.1", "mmh3", (), not_found=False)
    error = diagnose("uv", "sdist-only")
    assert isinstance(error, NoCompatibleDistributionError)
    assert error.what == "No version matching mmh3==2.5.1 has a wheel for python3.11/x86_64"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_version_that_does_not_exist(installer: str) -> None:
    error = diagnose(installer, "no-such-version")
    assert isinstance(error, NoCompatibleDistributionError)
    assert "six==0.0.1" in error.what
    assert error.package == "six"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_version_conflict_is_an_install_error_with_the_installers_reason(installer: str) -> None:
    assert missing(installer, recorded(installer, "conflict")) is None
    error = diagnose(installer, "conflict")
    assert type(error) is InstallError
    assert error.what == f"{installer} failed to install the requirements for python3.11/x86_64"
    assert any("urllib3" in line for line in error.details)
    assert "conflict" in (error.hint or "")


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_unreachable_index_is_named_redacted(installer: str) -> None:
    error = diagnose(installer, "unreachable-index", DEAD_INDEX)
    assert isinstance(error, IndexUnreachableError)
    assert error.details == ("http://****@127.0.0.1:9/simple: connection refused",)
    assert "s3cret-pw" not in str(error)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_unknown_option_is_bad_input(installer: str) -> None:
    error = diagnose(installer, "unknown-option")
    assert isinstance(error, InvalidInputError)
    assert error.what == f"{installer} does not know the option --no-such-option"
    assert error.exit_code == 2


def test_a_yanked_release_is_a_warning_of_a_successful_run() -> None:
    pip = installer_warnings(recorded("pip", "yanked-warning").output)
    assert len(pip) == 1
    assert "yanked version: 'cryptography'" in pip[0]
    assert pip[0].endswith("Reason for being yanked: Regression in OpenSSL.")
    assert installer_warnings(recorded("uv", "yanked-warning").output) == (
        '`cryptography==37.0.3` is yanked (reason: "Regression in OpenSSL.")',
    )
