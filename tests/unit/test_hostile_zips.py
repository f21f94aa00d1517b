"""``verify`` (and its smoke import, which unpacks the zip) on zips from anywhere: links that chain out of the
extraction directory, entries that cannot be unpacked, bombs, files that are not files, a killed verification.
Each one is a finding or one clear error, never a traceback, and nothing is written outside the verification's own
temporary directory."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cdk_pip_layer import verify_layer_zip
from cdk_pip_layer.cli import main
from cdk_pip_layer.engine.zip_reader import LayerArchive

HOST_RUNTIME = "python{}.{}".format(*sys.version_info[:2])
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
LINK = stat.S_IFLNK | 0o777
FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
Member = tuple[str, bytes, int]


def make_zip(path: Path, members: Sequence[Member], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip written member by member (duplicates allowed), each with its Unix mode (its kind and permissions)."""
    with warnings_off(), zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = compression
            archive.writestr(info, data)
    return path


@contextlib.contextmanager
def warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        yield


def patch_headers(path: Path, name: str, *, local: dict[int, bytes], central: dict[int, bytes]) -> None:
    """Overwrite bytes at offsets of ``name``'s local header and central directory record."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    at_local = next(i for i in _all(data, b"PK\x03\x04") if data[i + 30 : i + 30 + len(encoded)] == encoded)
    at_central = next(i for i in _all(data, b"PK\x01\x02") if data[i + 46 : i + 46 + len(encoded)] == encoded)
    for offset, value in local.items():
        data[at_local + offset : at_local + offset + len(value)] = value
    for offset, value in central.items():
        data[at_central + offset : at_central + offset + len(value)] = value
    path.write_bytes(bytes(data))


def _all(data: bytearray, needle: bytes) -> Iterator[int]:
    start = 0
    while (found := data.find(needle, start)) != -1:
        yield found
        start = found + 1


def importable() -> bool:
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64"


needs_import = pytest.mark.skipif(not importable(), reason="the smoke import needs an x86_64 Linux host")


def files_under(root: Path) -> set[Path]:
    """Everything under ``root``, links not followed."""
    found: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        found |= {Path(folder, name) for name in [*dirs, *files]}
    return found


# --- item: links that chain upward ------------------------------------------------------------------------------


def chained_links(links: int) -> list[Member]:
    """Links that each climb one level more from where the one before landed: extracted naively (each link
    followed when the next is made), the last of ``python/a/l/l2/…/lN`` lands N - 2 levels above the extraction
    root. Then, under it, a link named .bashrc whose target reads as inside the layer."""
    members: list[Member] = [("python/ok.py", b"X = 1\n", FILE), ("python/a/", b"", DIR)]
    path = "python/a/l"
    members.append((path, b"..", LINK))
    for level in range(2, links + 1):
        path = f"{path}/l{level}"
        members.append((path, b"..", LINK))
    members.append((f"{path}/escaped/.bashrc", b"../planted", LINK))
    return members


def test_links_that_chain_upward_write_nothing_outside(tmp_path: Path) -> None:
    """The extraction root is ``tmp_path/work/x/opt``: a naive unpacker creates ``tmp_path/escaped``. Neither
    extract_all (the path of ``--import`` and of ``--import=docker``) nor ``verify`` may."""
    work = tmp_path / "work"
    (work / "x").mkdir(parents=True)
    zip_path = make_zip(tmp_path / "layer.zip", chained_links(5))
    before = files_under(tmp_path) - files_under(work)
    with LayerArchive(zip_path) as archive:
        archive.extract_all(work / "x" / "opt")
    assert files_under(tmp_path) - files_under(work) == before
    assert not (tmp_path / "escaped").exists()
    extracted = (work / "x" / "opt").resolve()
    for path in files_under(extracted):  # every link that was made stays inside
        assert path.resolve().is_relative_to(extracted), path

    result = verify_layer_zip(zip_path, HOST_RUNTIME)
    assert "python/a/l" in {f.subject for f in result.errors if f.check == "paths"}, result.summary()


@needs_import
def test_links_that_chain_upward_with_the_smoke_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))  # the verification's directory: tmp_path/tmp/…/opt
    zip_path = make_zip(tmp_path / "layer.zip", chained_links(5))
    before = files_under(tmp_path)
    result = verify_layer_zip(zip_path, HOST_RUNTIME, smoke_import="auto", python=sys.executable)
    assert files_under(tmp_path) - before == set()
    assert not (tmp_path / "escaped").exists()
    assert result.import_ran is not None or "import" in result.report.skipped


# --- item: entries that cannot be unpacked ---------------------------------------------------------------------------


def hostile_zip(tmp_path: Path, case: str) -> Path:  # noqa: PLR0911 - one table of hostile archives
    path = tmp_path / f"{case}.zip"
    ok: Member = ("python/ok.py", b"X = 1\n", FILE)
    if case == "duplicate":
        return make_zip(path, [ok, ("python/dup.py", b"A = 1\n", FILE), ("python/dup.py", b"B = 2\n", FILE)])
    if case == "file-directory":
        return make_zip(path, [ok, ("python/clash", b"a file", FILE), ("python/clash/inner.py", b"", FILE)])
    if case == "directory-file":
        return make_zip(path, [ok, ("python/clash/inner.py", b"", FILE), ("python/clash", b"a file", FILE)])
    if case == "bad-crc":
        make_zip(path, [ok, ("python/crc.py", b"Y = 2\n" * 100, FILE)])
        patch_headers(path, "python/crc.py", local={14: b"\0\0\0\0"}, central={16: b"\0\0\0\0"})
        return path
    if case == "lying-size":
        make_zip(path, [ok, ("python/liar.py", b"#" * 100_000, FILE)])
        small = (10).to_bytes(4, "little")
        patch_headers(path, "python/liar.py", local={22: small}, central={24: small})
        return path
    if case == "encrypted":
        make_zip(path, [ok, ("python/secret.py", b"Z = 3\n", FILE)])
        patch_headers(path, "python/secret.py", local={6: b"\x01\x00"}, central={8: b"\x01\x00"})
        return path
    if case == "method-99":
        make_zip(path, [ok, ("python/aes.py", b"Z = 3\n", FILE)])
        patch_headers(path, "python/aes.py", local={8: b"\x63\x00"}, central={10: b"\x63\x00"})
        return path
    if case == "long-name":
        return make_zip(path, [ok, ("python/" + "a" * 65_000 + ".py", b"", FILE)])
    if case == "deep-path":
        return make_zip(path, [ok, ("python/" + "d/" * 2_100 + "x.py", b"", FILE)])
    if case == "long-link":
        return make_zip(path, [ok, ("python/link.py", b"a" * 1_000_000, LINK)])
    raise AssertionError(case)


CASES = [
    "duplicate",
    "file-directory",
    "directory-file",
    "bad-crc",
    "lying-size",
    "encrypted",
    "method-99",
    "long-name",
    "deep-path",
    "long-link",
]


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_entry_is_a_finding_when_extracted(tmp_path: Path, case: str) -> None:
    """What the smoke import (and --import=docker) unpacks: every case is a finding (an error) and the rest of the
    layer is extracted; nothing is raised."""
    zip_path = hostile_zip(tmp_path, case)
    dest = tmp_path / "opt"
    with LayerArchive(zip_path) as archive:
        problems = archive.extract_all(dest)
    assert (dest / "python" / "ok.py").read_bytes() == b"X = 1\n"
    assert isinstance(problems, list) and problems, f"{case}: the extraction reported nothing"
    result = verify_layer_zip(zip_path, HOST_RUNTIME)
    assert not result.ok, f"{case}: {result.summary()}"


@needs_import
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_entry_with_the_smoke_import(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    zip_path = hostile_zip(tmp_path, case)
    code = main(
        [
            "verify",
            str(zip_path),
            "--runtime",
            HOST_RUNTIME,
            "--architecture",
            HOST_ARCHITECTURE,
            "--import",
            "--python",
            sys.executable,
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1, captured
    assert "Traceback" not in captured.err and "error:" in captured.out


def test_a_file_directory_clash_is_a_finding_without_the_import(tmp_path: Path) -> None:
    result = verify_layer_zip(hostile_zip(tmp_path, "file-directory"), HOST_RUNTIME)
    assert [(f.check, f.subject) for f in result.errors if f.check == "paths"] == [("paths", "python/clash")]


# --- item: bombs ---------------------------------------------------------------------------------------------------


def _limit_file_size() -> None:
    """In the child: no file over 50 MB may be written (the write fails instead of the child being killed)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000_000, 50_000_000))


@needs_import
def test_a_zip_bomb_is_never_unpacked_to_disk(tmp_path: Path) -> None:
    """263 MB of zeros in a zip of 256 KB, with a module to import: over Lambda's limit, so a size error; the smoke
    import must not write it out (the verification runs where no file may grow over 50 MB)."""
    zip_path = make_zip(
        tmp_path / "bomb.zip",
        [("python/ok.py", b"X = 1\n", FILE), ("python/zeros.bin", bytes(263_000_000), FILE)],
    )
    assert zip_path.stat().st_size < 1_000_000
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdk_pip_layer",
            "verify",
            str(zip_path),
            "--runtime",
            HOST_RUNTIME,
            "--architecture",
            HOST_ARCHITECTURE,
            "--import",
        ],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=600,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: [size]" in done.stdout
    assert "skipped import:" in done.stdout


def test_overlapping_entries_are_an_error_and_not_read(tmp_path: Path) -> None:
    """Two central directory records naming the same data (the trick of the overlapping zip bombs)."""
    zip_path = make_zip(tmp_path / "layer.zip", [("python/a.py", b"A = 1\n" * 1000, FILE), ("python/b.py", b"", FILE)])
    data = bytearray(zip_path.read_bytes())
    centrals = list(_all(data, b"PK\x01\x02"))
    data[centrals[1] + 42 : centrals[1] + 46] = data[centrals[0] + 42 : centrals[0] + 46]  # b's offset := a's
    for field in (16, 20, 24):  # its CRC and sizes := a's, so that reading it "works"
        data[centrals[1] + field : centrals[1] + field + 4] = data[centrals[0] + field : centrals[0] + field + 4]
    zip_path.write_bytes(bytes(data))
    result = verify_layer_zip(zip_path, HOST_RUNTIME, smoke_import="auto", python=sys.executable)
    assert any(f.check == "archive" and "overlap" in f.problem for f in result.errors), result.summary()
    assert "contents not read" in result.report.skipped["import"]


# --- item: a killed verification ---------------------------------------------------------------------------------


@needs_import
def test_a_verification_killed_during_the_import_leaves_nothing_the_next_one_keeps(tmp_path: Path) -> None:
    from cdk_pip_layer.engine.layer.zip_writer import write_layer_zip
    from conftest import install_fake_dist

    site = tmp_path / "layer" / "python"
    install_fake_dist(site, "slow", files={"slow/__init__.py": "import time\ntime.sleep(120)\n"})
    zip_path = tmp_path / "layer.zip"
    write_layer_zip(site.parent, zip_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    argv = [
        sys.executable,
        "-m",
        "cdk_pip_layer",
        "verify",
        str(zip_path),
        "--runtime",
        HOST_RUNTIME,
        "--architecture",
        HOST_ARCHITECTURE,
        "--import",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmpdir.glob("cdk-pip-layer-verify-*/opt/python/slow")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmpdir.glob("cdk-pip-layer-verify-*")), "the verification never unpacked the layer"
        time.sleep(0.5)  # into the import
    finally:
        proc.kill()
        proc.wait()
    assert list(tmpdir.glob("cdk-pip-layer-verify-*"))  # what the killed one left
    good = tmp_path / "good.zip"
    make_zip(good, [("python/ok.py", b"X = 1\n", FILE)])
    subprocess.run([*argv[:4], str(good), *argv[5:9]], env=env, check=True, capture_output=True)
    assert not list(tmpdir.glob("cdk-pip-layer-verify-*")), list(tmpdir.iterdir())


# --- item: what is not a regular file ------------------------------------------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo"])
def test_what_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = kind
    if kind == "fifo":
        path = str(tmp_path / "layer.zip")
        os.mkfifo(path)
    if not Path(path).exists():
        pytest.skip(f"{path} does not exist here")
    done = subprocess.run(
        [sys.executable, "-m", "cdk_pip_layer", "verify", path],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


# --- item: permissions -------------------------------------------------------------------------------------------


def test_mode_0000_is_flagged_like_0600(tmp_path: Path) -> None:
    zip_path = make_zip(
        tmp_path / "layer.zip",
        [
            ("python/ok.py", b"", FILE),
            ("python/none.py", b"", stat.S_IFREG | 0o000),
            ("python/owner.py", b"", stat.S_IFREG | 0o600),
            ("python/closed/", b"", stat.S_IFDIR | 0o000),
        ],
    )
    result = verify_layer_zip(zip_path)
    assert sorted(f.subject for f in result.errors if f.check == "permissions") == [
        "python/closed",
        "python/none.py",
        "python/owner.py",
    ]


# --- item: names printed -----------------------------------------------------------------------------------------


def test_names_holding_escape_codes_or_newlines_are_printed_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = "python/x\x1b[2K\rverified layer.zip for python3.12 (x86_64): 0 error(s), 0 warning(s)\n.py"
    zip_path = make_zip(tmp_path / "layer.zip", [("python/ok.py", b"", FILE), (forged, b"", stat.S_IFREG | 0o600)])
    assert main(["verify", str(zip_path), "--runtime", "python3.12", "--architecture", "x86_64", "-q"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert [line for line in out.splitlines() if line.startswith("verified")] == [out.splitlines()[0]]
    assert "\\x1b[2K\\rverified" in out and "\\n.py" in out
