"""The container builder end to end in the python3.11 x86_64 stand-in: layout, exclusions, determinism, summary,
the pip cache, and the same file list as a local build; with pip in the image (installer='pip': uv in the image is
tests/container/test_docker_uv.py's)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from cdk_pip_layer import LayerBuildResult
from layer_inspection import ELF_X86_64, elf_machine, run_isolated, shared_objects, unzip, zip_names

from ._docker_tier import IMAGE_311, WHEEL_ONLY, WHEEL_ONLY_EXCLUDE, Built, container_build


def test_layout_is_the_local_builders(cold_build: Built) -> None:
    result = cold_build.result
    build_dir = result.zip_path.parent
    assert result.zip_path == build_dir / "layer.zip"
    assert result.artifacts_dir == build_dir / "artifacts"
    # no staging left behind; the report and SBOM of the host's verification next to the zip
    assert sorted(p.name for p in build_dir.iterdir()) == [
        "artifacts",
        "layer.cdx.json",
        "layer.report.json",
        "layer.zip",
    ]
    assert (result.artifacts_dir / "python" / "requests" / "__init__.py").is_file()
    # The zip holds exactly the artifacts tree.
    on_disk = sorted(
        p.relative_to(result.artifacts_dir).as_posix() for p in result.artifacts_dir.rglob("*") if p.is_file()
    )
    assert sorted(n for n in cold_build.names() if not n.endswith("/")) == on_disk
    assert all(name.startswith("python/") for name in cold_build.names())
    assert not any(name.startswith("python/bin/") for name in cold_build.names())  # charset-normalizer's script
    assert not any(name.endswith(".pyc") for name in cold_build.names())
    so_files = shared_objects(result.artifacts_dir)
    assert so_files, "charset-normalizer brings shared objects"
    assert {elf_machine(p) for p in so_files} == {ELF_X86_64}


def test_excluded_distribution_is_removed_by_its_record(cold_build: Built) -> None:
    names = cold_build.names()
    assert "python/six.py" not in names
    assert not any(n.startswith("python/six-") for n in names)
    # Its dependent stays: only the distribution named is excluded.
    assert "python/dateutil/__init__.py" in names
    assert any(n.startswith("python/python_dateutil-2.9.0.post0.dist-info/") for n in names)
    assert cold_build.result.excluded == ("six==1.16.0",)
    # The layer report the host writes says so too (the build in the image knows what it left out).
    report = json.loads((cold_build.result.zip_path.parent / "layer.report.json").read_text(encoding="utf-8"))
    assert report["left_out"] == {"distributions": ["six==1.16.0"], "runtime": []}


def test_summary_describes_the_container_build(cold_build: Built) -> None:
    result = cold_build.result
    assert result.target.runtime == "python3.11"
    assert result.target.architecture.value == "x86_64"
    assert IMAGE_311 in result.installer
    assert "linux/amd64" in result.installer
    assert "Python 3.11" in result.installer
    assert set(result.distributions) == {
        "requests==2.32.3",
        "urllib3==2.2.3",
        "idna==3.10",
        "charset-normalizer==3.4.0",
        "certifi==2024.8.30",
        "python-dateutil==2.9.0.post0",
    }
    assert result.built_from_source == ()
    assert result.sha256 == hashlib.sha256(result.zip_path.read_bytes()).hexdigest()
    assert result.zipped_bytes == result.zip_path.stat().st_size
    assert result.unzipped_bytes > result.zipped_bytes > 0
    summary = result.summary()
    assert f"sha256: {result.sha256}" in summary
    assert "excluded: six==1.16.0" in summary


def test_two_builds_give_the_same_zip(cold_build: Built, warm_build: Built) -> None:
    assert cold_build.result.zip_path != warm_build.result.zip_path
    assert cold_build.result.sha256 == warm_build.result.sha256
    assert cold_build.result.zip_path.read_bytes() == warm_build.result.zip_path.read_bytes()


def test_layer_imports_with_the_runtime_python(cold_build: Built, python311: Path, tmp_path: Path) -> None:
    site = unzip(cold_build.result.zip_path, tmp_path)
    code = (
        "import requests, dateutil, charset_normalizer.md as md\n"
        "assert md.__file__.endswith('.so'), md.__file__\n"
        "print(requests.__version__)\n"
        "try:\n    import six\nexcept ImportError:\n    print('no six')\n"
    )
    done = run_isolated(python311, code, site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2.32.3", "no", "six"]


def test_second_build_takes_every_wheel_from_the_cache(cold_build: Built, warm_build: Built) -> None:
    cold, warm = cold_build.pip_lines(), warm_build.pip_lines()
    assert cold and warm, "pip's log is relayed from the container at DEBUG"
    assert sum("Downloading" in line for line in cold) == 7, "the first build downloads every wheel"
    assert not [line for line in warm if "Downloading" in line]
    # Installed from the cache directory (mounted at /cdk-pip-layer-cache), not from the index.
    from_cache = [line for line in warm if "Processing /cdk-pip-layer-cache/" in line and line.endswith(".whl")]
    assert len(from_cache) == 7, warm
    assert sorted(p.name for p in cold_build.cache_dir.rglob("*.whl")) == sorted(
        line.rsplit("/", 1)[1] for line in from_cache
    )


def test_no_cache_build_leaves_the_cache_dir_alone(uncached_build: Built) -> None:
    assert not uncached_build.cache_dir.exists()
    pip = uncached_build.pip_lines()
    assert sum("Downloading" in line for line in pip) == 7
    assert not [line for line in pip if "/cdk-pip-layer-cache" in line]


def test_local_and_container_builds_hold_the_same_files(uncached_build: Built, local_build: LayerBuildResult) -> None:
    local_names = zip_names(local_build.zip_path)
    assert "container" not in local_build.installer
    assert sorted(uncached_build.names()) == sorted(local_names)
    assert set(uncached_build.result.distributions) == set(local_build.distributions)


def _asked_an_index(built: Built) -> list[str]:
    return [line for line in built.pip_lines() if "Starting new HTTPS connection" in line or "/simple/" in line]


def test_a_warm_build_of_pinned_requirements_asks_no_index(cold_build: Built, warm_build: Built) -> None:
    assert _asked_an_index(cold_build), "the cold build resolves against PyPI"
    assert _asked_an_index(warm_build) == []
    assert "no index is asked" in "\n".join(warm_build.log)


def test_a_wheel_missing_from_the_cache_is_fetched_again(cold_build: Built, warm_build: Built, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(cold_build.cache_root, cache)
    [idna] = cache.rglob("idna-*.whl")
    idna.unlink()
    again = container_build(
        tmp_path / "again", WHEEL_ONLY, exclude=WHEEL_ONLY_EXCLUDE, cache_dir=cache, installer="pip"
    )
    assert again.result.zip_path.read_bytes() == warm_build.result.zip_path.read_bytes()
    assert [line for line in again.pip_lines() if "Downloading" in line and "idna" in line]
    assert list(cache.rglob("idna-*.whl"))
