"""The checks of a layer stack (engine/verify/stack.py) on zips built in tmp_path, and ``cdk-pip-layer verify TOP.zip
--on-top-of BASE.zip``: the layers in the order Lambda extracts them, their combined size in the report."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import LambdaTarget
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.verify.report import LAMBDA_UNZIPPED_LIMIT
from cdk_pip_layer.engine.verify.stack import StackLayer, check_stack, read_layer_zip, read_stack_layer
from stack_fixtures import write_layer_zip

TARGET = LambdaTarget.parse("python3.12", "x86_64")
TARGET_FLAGS = ("--runtime", "python3.12", "--architecture", "x86_64")  # a pure-Python layer does not tell
MB = 1000 * 1000


def _layer(path: Path, dists: dict[str, str], **kwargs: Any) -> StackLayer:
    return read_layer_zip(write_layer_zip(path, dists, **kwargs), TARGET)


def test_a_good_stack_has_no_finding_and_its_combined_size(tmp_path: Path) -> None:
    base = _layer(tmp_path / "base.zip", {"requests": "2.31.0", "idna": "3.6"})
    top = _layer(tmp_path / "top.zip", {"rich": "13.7.1"})
    result = check_stack([base, top], runtime="python3.12", architecture="x86_64", function_bytes=1000)
    assert result.findings == ()
    assert result.combined_bytes == (base.unzipped_bytes or 0) + (top.unzipped_bytes or 0) + 1000
    assert result.to_dict()["combined_unzipped_bytes"] == result.combined_bytes


def test_one_distribution_at_two_versions_is_an_error_naming_both_and_the_layers(tmp_path: Path) -> None:
    base = _layer(tmp_path / "base.zip", {"requests": "2.31.0"})
    top = _layer(tmp_path / "team.zip", {"requests": "2.32.3", "rich": "13.7.1"})
    result = check_stack([base, top])
    [version] = [f for f in result.errors if f.check == "stack-versions"]
    assert version.subject == "requests"
    assert f"2.31.0 in {tmp_path / 'base.zip'} (layer 1) and 2.32.3 in {tmp_path / 'team.zip'} (layer 2)" in (
        version.problem
    )
    assert "mixture of requests 2.31.0 and 2.32.3" in version.problem
    # Both ship requests/__init__.py: the same file in two layers is named too.
    [files] = [f for f in result.warnings if f.check == "stack-files"]
    assert "python/requests/__init__.py" in files.problem


def test_the_same_version_twice_and_the_same_file_are_warnings(tmp_path: Path) -> None:
    shared = {"python/common/settings.py": "A = 1\n"}
    base = _layer(tmp_path / "a.zip", {"idna": "3.6"}, extra_files=shared)
    top = _layer(tmp_path / "b.zip", {"idna": "3.6"}, extra_files=shared)
    result = check_stack([base, top])
    assert result.ok
    assert {f.check for f in result.warnings} == {"stack-versions", "stack-files"}
    [files] = [f for f in result.warnings if f.check == "stack-files"]
    assert "python/common/settings.py" in files.problem
    assert files.problem.startswith(f"5 file(s) in both, {tmp_path / 'b.zip'}'s replacing")


def test_a_stack_over_the_limit_names_each_layers_size() -> None:
    """The sizes as zips declare them (the command-line test below builds such zips)."""
    base = StackLayer("Base", (), 140 * MB)
    top = StackLayer("Team", (), 125 * MB)
    result = check_stack([base, top], function_bytes=5000)
    [size] = result.errors
    assert size.check == "stack-size"
    assert size.problem == (
        f"are 265,005,000 bytes unzipped together; Lambda allows {LAMBDA_UNZIPPED_LIMIT:,} (bytes: Base 140,000,000; "
        "Team 125,000,000; the function's code 5,000)"
    )
    assert result.combined_bytes == 265_005_000
    assert check_stack([base, StackLayer("Small", (), 60 * MB)]).errors == ()


def test_more_than_five_layers_and_another_target_are_errors() -> None:
    layers = [StackLayer(f"L{n}", (), 10, frozenset(), "python3.12/x86_64") for n in range(5)]
    arm = StackLayer("Arm", (), 10, frozenset(), "python3.12/arm64")
    result = check_stack([*layers, arm], runtime="python3.12", architecture="x86_64")
    assert {f.check for f in result.errors} == {"stack-layers", "stack-target"}
    [target] = [f for f in result.errors if f.check == "stack-target"]
    assert target.subject == "Arm (layer 6)"
    assert "architecture arm64 (the function's is x86_64)" in target.problem
    assert check_stack(layers[:2], layer_count=6).errors[0].problem == "uses 6 layers; Lambda allows 5"


def test_a_report_describes_a_layer_without_its_files(tmp_path: Path) -> None:
    report = tmp_path / "layer.report.json"
    report.write_text(
        json.dumps(
            {
                "target": "python3.12/x86_64",
                "layer": {"unzipped_bytes": 1234},
                "distributions": [{"name": "Requests", "version": "2.31.0"}],
            }
        ),
        encoding="utf-8",
    )
    layer = read_stack_layer(report, TARGET)
    assert (layer.unzipped_bytes, layer.files, layer.target) == (1234, None, "python3.12/x86_64")
    assert layer.base().pins() == {"requests": "2.31.0"}


# --- cdk-pip-layer verify TOP.zip --on-top-of BASE.zip ---------------------------------------------------------------


def test_cli_verify_on_top_of_a_clean_base_prints_the_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_layer_zip(tmp_path / "base.zip", {"requests": "2.31.0"})
    top = write_layer_zip(tmp_path / "team.zip", {"rich": "13.7.1"})
    code = main(["verify", *TARGET_FLAGS, str(top), "--on-top-of", str(base), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    assert data["verification"]["ok"] is True
    stack = data["stack"]
    assert [layer["label"] for layer in stack["layers"]] == [str(base), str(top)]
    assert stack["combined_unzipped_bytes"] == sum(layer["unzipped_bytes"] for layer in stack["layers"])
    assert stack["limit_unzipped_bytes"] == LAMBDA_UNZIPPED_LIMIT


def test_cli_verify_on_top_of_fails_for_a_distribution_in_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_layer_zip(tmp_path / "base.zip", {"requests": "2.31.0"})
    top = write_layer_zip(tmp_path / "team.zip", {"requests": "2.32.3"})
    code = main(["verify", *TARGET_FLAGS, str(top), "--on-top-of", str(base)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"stack of 2 layers, in the order Lambda extracts them: {base} then {top}" in out
    assert "error: [stack-versions] requests: 2.31.0 in" in out and "and 2.32.3 in" in out


def test_cli_verify_on_top_of_fails_over_the_limit_with_each_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_layer_zip(tmp_path / "base.zip", {"numpy": "2.0.0"}, padding=150 * MB)
    top = write_layer_zip(tmp_path / "team.zip", {"pandas": "2.2.0"}, padding=120 * MB)
    code = main(["verify", *TARGET_FLAGS, str(top), "--on-top-of", str(base)])
    out = capsys.readouterr().out
    assert code == 1
    sizes = {path: read_layer_zip(path, TARGET).unzipped_bytes or 0 for path in (base, top)}
    assert "error: [stack-size] the function and its layers: are" in out
    for path, size in sizes.items():
        assert f"{path} {size:,}" in out  # in the error
        assert f"  {path}: {size:,} bytes unzipped" in out  # in the stack's summary
    assert f"together: {sum(sizes.values()):,} bytes unzipped of Lambda's {LAMBDA_UNZIPPED_LIMIT:,}" in out


def test_cli_verify_counts_the_bases_distributions_as_present(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dependency of the top layer that the base holds is no finding; one the base holds too old is."""
    base = write_layer_zip(tmp_path / "base.zip", {"requests": "2.31.0"})
    top = tmp_path / "team.zip"
    write_layer_zip(top, {"team-lib": "1.0"})
    _add_requirement(top, "team_lib-1.0.dist-info/METADATA", "requests>=2.0")
    assert main(["verify", *TARGET_FLAGS, str(top)]) == 1  # alone, requests is missing
    capsys.readouterr()
    assert main(["verify", *TARGET_FLAGS, str(top), "--on-top-of", str(base)]) == 0
    capsys.readouterr()
    _add_requirement(top, "team_lib-1.0.dist-info/METADATA", "requests>=2.32")
    assert main(["verify", *TARGET_FLAGS, str(top), "--on-top-of", str(base)]) == 1
    assert f"needs requests>=2.32, but the base layer {base} holds requests 2.31.0" in capsys.readouterr().out


def _add_requirement(zip_path: Path, member: str, requirement: str) -> None:
    """Rewrite ``python/<member>`` (a METADATA) with one Requires-Dist line more."""

    with zipfile.ZipFile(zip_path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    name = f"python/{member}"
    entries[name] = entries[name].rstrip(b"\n") + f"\nRequires-Dist: {requirement}\n\n".encode()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for arc, data in entries.items():
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data)


# --- verify --on-top-of without a target: what the top layer cannot tell, its bases may -------------------------------


def _report(path: Path, target: str, dists: dict[str, str]) -> Path:
    distributions = [{"name": name, "version": version} for name, version in dists.items()]
    layer = {"unzipped_bytes": 1234}
    path.write_text(json.dumps({"target": target, "distributions": distributions, "layer": layer}), encoding="utf-8")
    return path


def test_cli_verify_on_top_of_infers_the_target_from_a_base_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pure-Python team layer tells no target, its base (built for arm64) does: that is the stack's target."""
    base = _report(tmp_path / "base.report.json", "python3.12/arm64", {"requests": "2.31.0"})
    top = write_layer_zip(tmp_path / "team.zip", {"rich": "13.7.1"})
    code = main(["verify", str(top), "--on-top-of", str(base), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["target_inference"]["target"] == "python3.12/arm64"
    assert data["target_inference"]["runtime"]["evidence"] == {"base_layers": 1}
    assert "target python3.12/arm64, inferred from 1 base layer (--on-top-of)" in err


def test_cli_verify_on_top_of_infers_the_target_from_a_base_zip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_layer_zip(
        tmp_path / "base.zip",
        {"charset-normalizer": "3.4.0"},
        extra_files={"python/charset_normalizer/md.cpython-311-x86_64-linux-gnu.so": "not elf"},
    )
    top = write_layer_zip(tmp_path / "team.zip", {"rich": "13.7.1"})
    code = main(["verify", str(top), "--on-top-of", str(base), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["target_inference"]["target"] == "python3.11/x86_64"


def test_cli_verify_on_top_of_bases_that_disagree_or_cannot_tell_ask_for_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = write_layer_zip(tmp_path / "team.zip", {"rich": "13.7.1"})
    pure = write_layer_zip(tmp_path / "base.zip", {"requests": "2.31.0"})
    assert main(["verify", str(top), "--on-top-of", str(pure)]) == 2
    err = capsys.readouterr().err
    assert "Cannot tell which runtime or architecture the layer is for" in err
    assert "nor do its base layers" in err
    arm = _report(tmp_path / "arm.report.json", "python3.12/arm64", {"requests": "2.31.0"})
    x86 = _report(tmp_path / "x86.report.json", "python3.12/x86_64", {"idna": "3.6"})
    assert main(["verify", str(top), "--on-top-of", str(arm), "--on-top-of", str(x86), "--json"]) == 2
    out, err = capsys.readouterr()
    assert f"its base layers disagree: arm64 in {arm}, x86_64 in {x86}" in err
    assert json.loads(out)["error"]["what"].startswith("Cannot tell which architecture the layer is for")
