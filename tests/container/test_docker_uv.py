"""The host's uv in the build image: installer auto installs with it there (staged with the input, its cache on the
cache mount), gives the bytes pip gives, and leaves a build that must compile or cannot run it to pip."""

from __future__ import annotations

from ._docker_tier import IMAGE_311, IMAGE_311_ARM64, Built


def test_the_default_container_build_installs_with_the_hosts_uv(uv_cold_build: Built) -> None:
    installer = uv_cold_build.result.installer
    assert installer.startswith("uv ")
    assert "/.cdk-pip-layer/uv)" in installer  # the staged copy, run in the image
    assert "chosen: it installs the wheels pip would choose (checked against the index), faster" in installer
    assert installer.endswith(f" in {IMAGE_311} (linux/amd64)")


def test_uv_in_the_image_gives_the_bytes_pip_gives_there(uv_cold_build: Built, cold_build: Built) -> None:
    assert cold_build.result.installer.startswith("pip ")
    assert uv_cold_build.result.sha256 == cold_build.result.sha256
    assert uv_cold_build.result.zip_path.read_bytes() == cold_build.result.zip_path.read_bytes()


def test_uv_in_the_image_warns_of_nothing(uv_cold_build: Built, uv_warm_build: Built) -> None:
    # The cache and the output are two bind mounts of one host file system: a hard link between them fails, and
    # uv would warn of "degraded performance" on every build if it were told to link.
    assert uv_cold_build.result.warnings == ()
    assert uv_warm_build.result.warnings == ()


def test_a_warm_build_takes_every_wheel_from_uvs_cache(uv_cold_build: Built, uv_warm_build: Built) -> None:
    archive = uv_cold_build.cache_dir / "uv" / "archive-v0"
    (before,) = [line for line in uv_warm_build.log if line.startswith("archive entries before: ")]
    entries = before.split(": ", 1)[1].split()
    assert len(entries) == 7  # one unpacked wheel per distribution installed (six too: excluded after install)
    assert sorted(p.name for p in archive.iterdir()) == entries  # the warm build added none
    assert uv_warm_build.result.zip_path.read_bytes() == uv_cold_build.result.zip_path.read_bytes()
    assert not list(uv_cold_build.cache_dir.glob("wheelhouse"))  # pip's wheelhouse is for pip builds


def test_a_source_build_turns_to_pip_in_the_image(native_build: Built) -> None:
    installer = native_build.result.installer
    assert installer.startswith("pip ")
    assert "chosen: uv could not install the requirements" in installer


def test_the_arm64_image_builds_with_pip_and_says_why(arm64_build: Built) -> None:
    installer = arm64_build.result.installer
    assert installer.startswith("pip ")
    assert installer.endswith(f" in {IMAGE_311_ARM64} (linux/arm64)")
    why = [line for line in arm64_build.log if "uv: not used in the image:" in line]
    assert why and "cannot run in the python3.11/arm64 build image" in why[0]
