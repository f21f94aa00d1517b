"""Lambda's size limit, checked on the installed tree before anything is zipped: one message in one unit, naming
the largest contributors (a file no distribution owns by its path), with advice that can work.

Large files are sparse (``os.truncate``): the tests are fast and take no room on disk.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer import LayerBuildResult, PipBasedLambdaLayerLocalBuilder, VerificationError, verify_layer_zip
from cdk_pip_layer.engine.lambda_os import LAMBDA_UNZIPPED_LIMIT
from cdk_pip_layer.engine.layer.zip_reuse import ReusingZip
from cdk_pip_layer.engine.options import Runtime
from cdk_pip_layer.engine.verify import size
from cdk_pip_layer.engine.verify.size import check_layer_size, measure_layer

MiB = 1024 * 1024


def sparse(path: Path, length: int) -> Path:
    """A file of ``length`` bytes that takes no room on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        os.truncate(handle.fileno(), length)
    return path


@pytest.fixture
def layer(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    """A layer root (python/ inside): a large distribution, a small one, and a 200 MiB file no RECORD lists."""
    root = tmp_path / "build" / ".staging-1234-abcd" / "artifacts"
    site = root / "python"
    make_dist(site, "numpy", "2.3.0", files={"numpy/__init__.py": "", "numpy/core.so": b"\0"})
    sparse(site / "numpy" / "core.so", 60 * MiB)
    make_dist(site, "six", "1.16.0", files={"six.py": "# six\n"})
    sparse(site / "models" / "weights.bin", 200 * MiB)
    return root


def unit_mix(text: str) -> list[str]:
    """The size units a text uses (bytes in parentheses are the exact figure, not a unit of their own)."""
    return sorted(set(re.findall(r"\d (KiB|MiB|GiB|MB|GB|kB)\b", text)))


def test_the_tree_is_measured_by_distribution_and_by_unowned_path(layer: Path) -> None:
    measured = measure_layer(layer)
    assert measured.unzipped > 260 * MiB
    named = {c.name: c.bytes for c in measured.contributors}
    assert named["python/models/weights.bin"] == 200 * MiB  # no distribution owns it: named by its path
    assert named["numpy==2.3.0"] >= 60 * MiB
    assert "six==1.16.0" in named
    assert [c.name for c in measured.contributors][:2] == ["python/models/weights.bin", "numpy==2.3.0"]


def test_an_oversized_tree_is_one_error_in_one_unit_with_advice_that_can_work(layer: Path, tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as info:
        check_layer_size(layer, subject="requirements.txt for python3.12/x86_64")
    message = str(info.value)
    total = measure_layer(layer).unzipped
    assert info.value.what == (
        f"The layer is {total / MiB:.1f} MiB unzipped ({total:,} bytes); Lambda allows 250 MiB "
        "(262,144,000 bytes) for a function and all its layers together"
    )
    assert info.value.subject == "requirements.txt for python3.12/x86_64"
    assert unit_mix(message) == ["MiB"]
    # The largest contributors, a file outside any RECORD by its path relative to the layer's root.
    assert "python/models/weights.bin: 200.0 MiB (no distribution)" in info.value.details
    assert "numpy==2.3.0: 60.0 MiB" in info.value.details
    # No temporary path, no advice that cannot work: Lambda's limit covers the function and all its layers, so
    # splitting the layer does not help, and a hard limit is not a check to turn off.
    assert str(tmp_path) not in message and ".staging-" not in message
    assert "split" not in message and "--ignore" not in message and "verify_ignore" not in message
    hint = info.value.hint or ""
    assert ":runtime:" in hint and "slim" in hint and "container image" in hint


def test_a_layer_within_the_limit_passes_and_says_its_size(layer: Path) -> None:
    (layer / "python" / "models" / "weights.bin").unlink()
    assert check_layer_size(layer, subject="requirements.txt") == measure_layer(layer).unzipped < LAMBDA_UNZIPPED_LIMIT


def test_at_most_five_contributors_are_named_largest_first(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    root = tmp_path / "layer"
    for number in range(7):
        make_dist(root / "python", f"dist{number}", files={f"dist{number}/blob.bin": b""})
        sparse(root / "python" / f"dist{number}" / "blob.bin", (30 + number) * MiB)
    sparse(root / "lib" / "libhuge.so.1", 40 * MiB)  # lib/ (on LD_LIBRARY_PATH) belongs to no distribution
    with pytest.raises(VerificationError) as info:
        check_layer_size(root, subject="requirements.txt")
    listed = [line.split(":")[0] for line in info.value.details]
    assert listed == ["lib/libhuge.so.1", "dist6==1.0", "dist5==1.0", "dist4==1.0", "dist3==1.0"]


def test_many_unowned_files_under_one_directory_are_named_together(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    for number in range(300):
        sparse(root / "python" / "vendored" / f"part{number:03}.bin", MiB)
    with pytest.raises(VerificationError) as info:
        check_layer_size(root, subject="requirements.txt")
    assert info.value.details[0] == "python/vendored/: 300.0 MiB in 300 files (no distribution)"


# --- in a build: before the zip is written ---------------------------------------------------------------------


def test_a_build_refuses_an_oversized_layer_before_writing_the_zip(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    host_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    offline_env: None,
) -> None:
    """Lambda's limit is lowered to 1 MiB for this build (a wheel installing 250 MiB would make the test slow and
    large); everything else is the real build."""
    wheel = make_wheel("bulky", "1.0", files={"bulky/__init__.py": "", "bulky/data.bin": b"\0" * (2 * MiB)})
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("bulky==1.0\n", encoding="utf-8")
    monkeypatch.setattr(size, "LAMBDA_UNZIPPED_LIMIT", MiB)
    zips: list[Path] = []

    real_write = ReusingZip.write

    def spy(self: ReusingZip, root: Path, dest: Path) -> Any:
        zips.append(dest)
        return real_write(self, root, dest)

    monkeypatch.setattr(ReusingZip, "write", spy)

    def build(**options: Any) -> LayerBuildResult:
        return PipBasedLambdaLayerLocalBuilder(
            requirements=requirements,
            build_dir=tmp_path / "out",
            runtime=host_runtime,
            extra_installer_args=("--no-index", "--find-links", str(wheel.parent)),
            **options,
        ).build()

    with pytest.raises(VerificationError) as info:
        build()
    assert zips == []  # refused from the installed tree: no zip was ever written
    assert not (tmp_path / "out" / "layer.zip").exists()
    message = str(info.value)
    assert "bulky==1.0: 2.0 MiB" in info.value.details
    assert info.value.subject == f"{requirements} for {host_runtime}/x86_64"
    assert str(tmp_path / "out") not in message and ".staging-" not in message

    # A build that turns the size check off (verify_ignore) is not stopped by it.
    assert build(verify_ignore=["size"]).zip_path.is_file() and len(zips) == 1


# --- the verifier, on a zip built elsewhere: the same message ------------------------------------------------------


def lying_zip(path: Path, entries: dict[str, int], *, modes: dict[str, int] | None = None) -> Path:
    """A zip whose entries claim the given sizes (each holds 1000 bytes): the size check reads the declared sizes
    and nothing is decompressed, as for a real layer of that size."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (modes or {}).get(name, 0o644) << 16
            archive.writestr(info, b"\0" * 1000)
    data = bytearray(path.read_bytes())
    # (signature, offset of the uncompressed size, offset of the name) of local headers and central directory entries
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at != -1:
            for name, claimed in entries.items():
                if data[at + name_at : at + name_at + len(name)] == name.encode():
                    data[at + size_at : at + size_at + 4] = claimed.to_bytes(4, "little")
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


def test_the_verifier_names_a_large_file_no_distribution_owns(tmp_path: Path) -> None:
    zip_path = lying_zip(tmp_path / "layer.zip", {"python/ok.py": 1000, "python/data/model.bin": 272_630_000})
    result = verify_layer_zip(zip_path, "python3.12")
    [size_error] = [f for f in result.errors if f.check == "size"]
    text = str(size_error)
    assert "python/data/model.bin 260.0 MiB" in text
    assert "largest: no distribution" not in text
    assert "(262,144,000 bytes)" in text and unit_mix(text) == ["MiB"]
    assert "split" not in text and size_error.subject == "the layer"
    with pytest.raises(VerificationError) as info:
        result.raise_for_errors(subject="layer.zip")
    assert "--ignore" not in str(info.value) and "verify_ignore" not in str(info.value)


def test_other_errors_beside_the_size_keep_the_advice_on_turning_a_check_off(tmp_path: Path) -> None:
    entries = {"python/ok.py": 1000, "python/data/model.bin": 272_630_000, "python/secret.py": 1000}
    zip_path = lying_zip(tmp_path / "layer.zip", entries, modes={"python/secret.py": 0o600})
    result = verify_layer_zip(zip_path, "python3.12")
    assert {f.check for f in result.errors} == {"size", "permissions"}
    with pytest.raises(VerificationError) as info:
        result.raise_for_errors(subject="layer.zip")
    assert "--ignore CHECK" in (info.value.hint or "") and "not the size" in (info.value.hint or "")


def test_a_large_zip_is_a_note_in_the_report_not_a_warning(tmp_path: Path) -> None:
    """CDK (and ``publish`` with a bucket) upload through S3: a zip over the 50 MiB Lambda takes in a request is
    nothing to warn about; the report says it, in MiB."""
    zip_path = tmp_path / "layer.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        info = zipfile.ZipInfo("python/blob.bin", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, os.urandom(51 * MiB))
    result = verify_layer_zip(zip_path, "python3.12")
    assert [f for f in result.findings if f.check == "size"] == []
    [line] = [line for line in result.report.short() if "direct upload" in line]
    assert unit_mix(line) == ["MiB"] and "S3" in line


def test_the_short_report_names_an_unknown_origin_as_such(tmp_path: Path) -> None:
    """A pure-Python distribution in a zip verified on its own may have come from a wheel or from a source build:
    the line says "origin unknown", not a bare "unknown" a reader cannot place (as "licence unknown")."""
    zip_path = tmp_path / "layer.zip"
    meta = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    files = {
        "python/demo.py": "X = 1\n",
        "python/demo-1.0.dist-info/METADATA": meta,
        "python/demo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "python/demo-1.0.dist-info/RECORD": "demo.py,,\ndemo-1.0.dist-info/METADATA,,\n",
    }
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    report = verify_layer_zip(zip_path, "python3.12", "x86_64").report
    [line] = [line for line in report.short() if line.startswith("  demo==1.0: ")]
    assert line.endswith(", licence unknown, origin unknown"), line
