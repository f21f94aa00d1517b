"""Excluding distributions removes exactly the files their RECORD lists, never a neighbour with a similar name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cdk_pip_layer.engine.distribution import installed_distributions
from cdk_pip_layer.engine.layer.prune import exclude_distributions


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.rglob("*")}


@pytest.fixture
def site(tmp_path: Path, make_dist: Callable[..., Path]) -> Path:
    site_dir = tmp_path / "python"
    make_dist(site_dir, "six", "1.16.0", files={"six.py": "# six\n"})
    make_dist(site_dir, "sixer", "0.1", files={"sixer/__init__.py": "", "sixer/six.py": "", "sixer.py": ""})
    make_dist(
        site_dir,
        "Foo_Bar",
        "2.0",
        files={
            "foo_bar/__init__.py": "",
            "foo_bar/sub/__init__.py": "",
            "foo_bar/sub/deep/mod.py": "",
            "foo_bar_helper.py": "",
            "foo_bar/data/table.csv": "a,b\n",
        },
    )
    return site_dir


def test_installed_distributions_are_canonical_and_sorted(site: Path) -> None:
    dists = installed_distributions(site)
    assert [d.name for d in dists] == ["foo-bar", "six", "sixer"]
    assert [d.pin for d in dists] == ["Foo_Bar==2.0", "six==1.16.0", "sixer==0.1"]


def test_excluding_six_leaves_sixer_intact(site: Path) -> None:
    before = tree(site)
    result = exclude_distributions(site, ["six"])
    after = tree(site)
    assert before - after == {
        "six.py",
        "six-1.16.0.dist-info/",
        *(f"six-1.16.0.dist-info/{n}" for n in ("METADATA", "INSTALLER", "WHEEL", "RECORD")),
    }
    assert after <= before
    assert {"sixer/", "sixer/six.py", "sixer/__init__.py", "sixer.py", "sixer-0.1.dist-info/RECORD"} <= after
    assert [d.pin for d in result.removed] == ["six==1.16.0"]
    assert result.files_removed == 5  # six.py and the four RECORD-listed dist-info files
    assert result.not_installed == ()


@pytest.mark.parametrize("spelling", ["foo-bar", "Foo_Bar", "FOO.BAR", "foo__bar"])
def test_names_are_canonicalized(site: Path, spelling: str) -> None:
    result = exclude_distributions(site, [spelling])
    assert [d.name for d in result.removed] == ["foo-bar"]
    remaining = tree(site)
    # every file, the dist-info and every directory left empty are gone; the others stay
    assert not [p for p in remaining if p.startswith(("foo_bar", "Foo_Bar"))]
    assert {"six.py", "sixer/six.py"} <= remaining


def test_directory_shared_with_another_distribution_is_kept(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "python"
    make_dist(site, "google-api-core", "2.0", files={"google/api_core/__init__.py": "", "google/api_core/x.py": ""})
    make_dist(site, "protobuf", "5.0", files={"google/protobuf/__init__.py": ""})
    exclude_distributions(site, ["google-api-core"])
    assert tree(site) >= {"google/", "google/protobuf/", "google/protobuf/__init__.py"}
    assert not (site / "google" / "api_core").exists()


def test_files_not_in_record_are_kept(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "python"
    make_dist(site, "pkg", "1.0", files={"pkg/__init__.py": ""})
    (site / "pkg" / "user_added.txt").write_text("not pip's")
    exclude_distributions(site, ["pkg"])
    assert tree(site) == {"pkg/", "pkg/user_added.txt"}


def test_stale_bytecode_of_removed_modules_goes_too(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "python"
    make_dist(site, "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/mod.py": ""})
    cache = site / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / "mod.cpython-312.pyc").write_bytes(b"\0")
    (cache / "__init__.cpython-312.pyc").write_bytes(b"\0")
    exclude_distributions(site, ["pkg"])
    assert tree(site) == set()
    assert site.is_dir()  # the site directory itself is never removed


def test_record_entries_outside_the_site_are_not_deleted(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "layer" / "python"
    outside = tmp_path / "bin" / "tool"
    outside.parent.mkdir(parents=True)
    outside.write_text("#!/usr/bin/python\n")
    absolute = tmp_path / "elsewhere.txt"
    absolute.write_text("keep")
    make_dist(
        site,
        "tool",
        "1.0",
        files={"tool/__init__.py": ""},
        extra_record=["../../bin/tool,,", f"{absolute},,", "tool/../../escape.txt,,"],
    )
    escape = tmp_path / "layer" / "escape.txt"
    escape.write_text("keep")
    result = exclude_distributions(site, ["tool"])
    assert outside.read_text() == "#!/usr/bin/python\n"
    assert absolute.read_text() == "keep"
    assert escape.read_text() == "keep"
    assert tree(site) == set()
    assert [d.name for d in result.removed] == ["tool"]


def test_not_installed_names_are_reported(site: Path) -> None:
    before = tree(site)
    result = exclude_distributions(site, ["boto3", "Six", "BotoCore"])
    assert result.not_installed == ("boto3", "BotoCore")
    assert [d.name for d in result.removed] == ["six"]
    assert "sixer.py" in tree(site) and "six.py" not in tree(site)
    assert tree(site) < before


def test_nothing_to_exclude(site: Path) -> None:
    before = tree(site)
    result = exclude_distributions(site, [])
    assert result.removed == () and result.files_removed == 0 and result.not_installed == ()
    assert tree(site) == before


# --- files another distribution's RECORD claims stay -----------------------------------------------------------------


def test_a_record_listing_another_distributions_module_does_not_delete_it(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    """A RECORD that lists six.py (vendoring tools and broken wheels write such RECORDs) removes its own files only."""
    site = tmp_path / "python"
    make_dist(site, "six", "1.16.0", files={"six.py": "# six\n"})
    make_dist(site, "grabby", "1.0", files={"grabby/__init__.py": "", "six.py": "# six\n"})
    result = exclude_distributions(site, ["grabby"])
    assert [d.name for d in result.removed] == ["grabby"]
    assert (site / "six.py").read_text() == "# six\n"
    assert tree(site) == {
        "six.py",
        "six-1.16.0.dist-info/",
        *(f"six-1.16.0.dist-info/{n}" for n in ("METADATA", "INSTALLER", "WHEEL", "RECORD")),
    }


def test_a_namespace_init_shared_by_two_distributions_stays_with_the_one_kept(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    site = tmp_path / "python"
    make_dist(site, "ns-a", "1.0", files={"ns/__init__.py": "# shared\n", "ns/a.py": ""})
    make_dist(site, "ns-b", "1.0", files={"ns/__init__.py": "# shared\n", "ns/b.py": ""})
    cache = site / "ns" / "__pycache__"
    cache.mkdir()
    for stem in ("__init__", "a", "b"):
        (cache / f"{stem}.cpython-312.pyc").write_bytes(b"\0")
    exclude_distributions(site, ["ns-a"])
    assert {p for p in tree(site) if p.startswith("ns/")} == {
        "ns/",
        "ns/__init__.py",
        "ns/b.py",
        "ns/__pycache__/",
        "ns/__pycache__/__init__.cpython-312.pyc",
        "ns/__pycache__/b.cpython-312.pyc",
    }
    assert not any(p.startswith("ns_a-") for p in tree(site))


def test_a_file_shared_only_by_excluded_distributions_goes(tmp_path: Path, make_dist: Callable[..., Path]) -> None:
    site = tmp_path / "python"
    make_dist(site, "ns-a", "1.0", files={"ns/__init__.py": "", "ns/a.py": ""})
    make_dist(site, "ns-b", "1.0", files={"ns/__init__.py": "", "ns/b.py": ""})
    make_dist(site, "other", "1.0", files={"other.py": ""})
    exclude_distributions(site, ["ns-a", "ns-b"])
    assert not (site / "ns").exists()
    assert (site / "other.py").is_file()


def test_a_record_listing_another_distributions_metadata_does_not_delete_it(
    tmp_path: Path, make_dist: Callable[..., Path]
) -> None:
    site = tmp_path / "python"
    make_dist(site, "six", "1.16.0", files={"six.py": ""})
    make_dist(
        site,
        "grabby",
        "1.0",
        files={"grabby.py": ""},
        extra_record=["six-1.16.0.dist-info/METADATA,,", "six-1.16.0.dist-info/RECORD,,"],
    )
    exclude_distributions(site, ["grabby"])
    assert [d.pin for d in installed_distributions(site)] == ["six==1.16.0"]
    assert (site / "six-1.16.0.dist-info" / "RECORD").is_file()
