"""The normalisation of an installed ``python/`` directory into layer files: what pip and uv write differently is
made the same, and every RECORD lists exactly the files in the layer."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from cdk_pip_layer import LambdaTarget
from cdk_pip_layer.engine.layer.prune import drop_host_artifacts

TARGET = LambdaTarget.parse("python3.12")


def record_paths(dist_info: Path) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO((dist_info / "RECORD").read_text(encoding="utf-8")))]


def test_pip_rows_for_moved_files_name_them_where_they_are(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "python"
    dist_info = make_dist(
        site,
        "Demo_Lib",
        "1.0",
        files={
            "demo_lib/__init__.py": "",
            "share/demo/config.cmake": "set(X 1)\n",
            "include/site/python3.11/Demo_Lib/demo.h": "#pragma once\n",
        },
    )
    # pip --target records what it moved out of its lib/python as ../../<path>; the script is under bin/.
    record = (dist_info / "RECORD").read_text(encoding="utf-8")
    record = record.replace("share/demo/", "../../share/demo/").replace("include/site/", "../../include/site/")
    (site / "bin").mkdir()
    (site / "bin" / "demo").write_text("#!/usr/bin/python3.11\n", encoding="utf-8")
    (dist_info / "RECORD").write_text(record + "../../bin/demo,sha256=x,20\n", encoding="utf-8")

    drop_host_artifacts(site, TARGET)

    paths = record_paths(dist_info)
    assert paths == sorted(paths)
    assert "share/demo/config.cmake" in paths
    assert "include/demo-lib/demo.h" in paths
    assert (site / "include" / "demo-lib" / "demo.h").read_text(encoding="utf-8") == "#pragma once\n"
    assert not (site / "include" / "site").exists()
    assert not [p for p in paths if p.startswith(("../", "bin/"))]


def test_installer_bookkeeping_goes_but_a_package_file_of_that_name_stays(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    site = tmp_path / "python"
    dist_info = make_dist(site, "demo", "1.0", files={"demo/__init__.py": "", "demo/REQUESTED": "data\n"})
    for name in ("REQUESTED", "direct_url.json", "uv_cache.json"):
        (dist_info / name).write_text("{}", encoding="utf-8")
    with (dist_info / "RECORD").open("a", encoding="utf-8") as record:
        record.write("demo-1.0.dist-info/REQUESTED,,\ndemo-1.0.dist-info/direct_url.json,,\n")

    drop_host_artifacts(site, TARGET)

    assert sorted(p.name for p in dist_info.iterdir()) == ["INSTALLER", "METADATA", "RECORD", "WHEEL"]
    assert (site / "demo" / "REQUESTED").is_file()
    assert "demo/REQUESTED" in record_paths(dist_info)
    assert not [p for p in record_paths(dist_info) if p.startswith("demo-1.0.dist-info/") and "REQUESTED" in p]
    assert (dist_info / "INSTALLER").read_text(encoding="utf-8") == "cdk-pip-layer\n"
