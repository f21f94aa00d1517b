"""Reading requirements files: what pip accepts is accepted; anything else fails early with file:line."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from cdk_pip_layer import RequirementsFileError
from cdk_pip_layer.engine.inputs.requirements import read_requirements


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_comments_blank_lines_and_markers(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "# a comment\n"
        "\n"
        "requests==2.32.3   # pinned\n"
        'exceptiongroup==1.2.2; python_version < "3.11"\n'
        "Foo_Bar[socks,Extra]==1.0\n",
    )
    parsed = read_requirements(req)
    assert parsed.names == ("requests", "exceptiongroup", "foo-bar")
    assert [line.lineno for line in parsed.requirements] == [3, 4, 5]
    exceptiongroup = parsed.requirements[1].requirement
    assert exceptiongroup is not None and str(exceptiongroup.marker) == 'python_version < "3.11"'
    foo = parsed.requirements[2].requirement
    assert foo is not None and foo.extras == {"socks", "Extra"}
    assert parsed.files == (req.resolve(),)


def test_backslash_continuations_and_hashes(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "--require-hashes\n"
        "six==1.16.0 \\\n"
        "    --hash=sha256:aaaa \\\n"
        "    --hash sha256:bbbb\n"
        "attrs==23.2.0 --hash=sha256:cccc\n",
    )
    parsed = read_requirements(req)
    assert parsed.names == ("six", "attrs")
    six, attrs = parsed.requirements
    assert six.lineno == 2
    assert six.hashes == ("sha256:aaaa", "sha256:bbbb")
    assert attrs.hashes == ("sha256:cccc",)
    assert six.where == f"{req}:2"


def test_includes_are_relative_to_the_including_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative include must not be looked up in the current directory
    write(tmp_path / "cwd-decoy" / "base.txt", "decoy==1\n")
    top = write(tmp_path / "app" / "requirements.txt", "-r common/base.txt\n-c constraints.txt\nflask==3.0.0\n")
    base = write(tmp_path / "app" / "common" / "base.txt", "--requirement=more.txt\nrequests==2.32.3\n")
    more = write(tmp_path / "app" / "common" / "more.txt", "idna==3.7\n")
    constraints = write(tmp_path / "app" / "constraints.txt", "urllib3==2.2.2\n")
    parsed = read_requirements(top)
    assert parsed.names == ("idna", "requests", "flask")
    assert [c.text for c in parsed.constraints] == ["urllib3==2.2.2"]
    assert parsed.files == tuple(p.resolve() for p in (top, base, more, constraints))
    assert parsed.requirements[0].where == f"{more}:1"


def test_include_without_space(tmp_path: Path) -> None:
    write(tmp_path / "base.txt", "six==1.16.0\n")
    parsed = read_requirements(write(tmp_path / "r.txt", "-rbase.txt\n"))
    assert parsed.names == ("six",)


def test_same_file_included_twice_is_not_circular(tmp_path: Path) -> None:
    # pip accepts a diamond: two files both including a shared one.
    write(tmp_path / "common.txt", "attrs==23.2.0\n")
    write(tmp_path / "a.txt", "-r common.txt\nsix==1.16.0\n")
    write(tmp_path / "b.txt", "-r common.txt\n-c common.txt\n")
    parsed = read_requirements(write(tmp_path / "r.txt", "-r a.txt\n-r b.txt\n"))
    assert set(parsed.names) == {"attrs", "six"}
    assert len(parsed.files) == len(set(parsed.files)) == 4


def test_url_path_and_option_lines(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "localpkg").mkdir(parents=True)
    req = write(
        tmp_path / "requirements.txt",
        "--index-url https://pypi.example.com/simple\n"
        "-i https://pypi.example.com/simple\n"
        "--extra-index-url=https://extra.example.com/simple\n"
        "-f ./wheels\n"
        "--find-links=https://example.com/links\n"
        "--trusted-host pypi.example.com\n"
        "--only-binary :all:\n"
        "--no-binary=:none:\n"
        "--pre\n"
        "--prefer-binary\n"
        "--no-index\n"
        "./vendor/mypkg-1.0-py3-none-any.whl\n"
        "https://example.com/pkg-1.0.tar.gz\n"
        f"{tmp_path / 'vendor' / 'localpkg'}\n"
        "git+https://github.com/org/repo.git@v1#egg=repo\n"
        "six==1.16.0\n",
    )
    parsed = read_requirements(req)
    assert parsed.names == ("six",)
    assert [line.lineno for line in parsed.requirements] == [12, 13, 14, 15, 16]
    assert [line.requirement is None for line in parsed.requirements] == [True, True, True, True, False]


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    parsed = read_requirements(write(tmp_path / "r.txt", "\ufeffsix==1.16.0\r\nattrs==23.2.0\r\n".encode()))
    assert parsed.names == ("six", "attrs")


def test_remote_include_is_left_to_pip(tmp_path: Path) -> None:
    parsed = read_requirements(write(tmp_path / "r.txt", "-r https://example.com/base.txt\nsix==1\n"))
    assert parsed.names == ("six",)


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        ("six==1.16.0\nrequests>=\n", 2, "Invalid requirement"),
        ("# header\n\nnot a requirement!\n", 3, "Invalid requirement"),
        ("six==1.16.0\n--frobnicate\n", 2, "Unknown option"),
        ("--hash=sha256:abcd\n", 1, "belongs after a requirement"),
        ("requests===\n", 1, "operator without a version"),
        ("requests==2.32.3 --hash\n", 1, "--hash needs a value"),
        ("--no-index --find-links\n", 1, "--find-links needs a value"),
        ("--no-index requests\n", 1, "follows the options"),
        ("-e .\n", 1, "Editable"),
        ("six==1\n--editable=git+https://example.com/x.git#egg=x\n", 2, "Editable"),
        ("-r\n", 1, "-r needs a value"),
        ("--index-url\n", 1, "needs a value"),
    ],
)
def test_invalid_lines_name_file_and_line(tmp_path: Path, text: str, lineno: int, fragment: str) -> None:
    req = write(tmp_path / "requirements.txt", text)
    with pytest.raises(RequirementsFileError) as info:
        read_requirements(req)
    message = str(info.value)
    assert f"{req}:{lineno}" in message
    assert fragment in message
    assert "What to do:" in message
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RequirementsFileError, match="not found") as info:
        read_requirements(tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(info.value)


def test_missing_include_names_the_including_line(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six==1\n\n-r missing.txt\n")
    with pytest.raises(RequirementsFileError, match="not found") as info:
        read_requirements(req)
    assert f"{req}:3" in str(info.value)
    assert str(tmp_path / "missing.txt") in str(info.value)


def test_error_inside_an_include_names_the_included_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.txt", "six==1\n-e ./local\n")
    with pytest.raises(RequirementsFileError, match="Editable") as info:
        read_requirements(write(tmp_path / "r.txt", "-r base.txt\n"))
    assert f"{base}:2" in str(info.value)


def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(RequirementsFileError, match="directory") as info:
        read_requirements(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    req = write(tmp_path / "r.txt", b"six==1.16.0\n# caf\xe9\n")
    with pytest.raises(RequirementsFileError, match="UTF-8") as info:
        read_requirements(req)
    assert f"{req}:2" in str(info.value)


def test_circular_include_names_the_line(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "six==1\n-r b.txt\n")
    b = write(tmp_path / "b.txt", "attrs==1\n\n-r a.txt\n")
    with pytest.raises(RequirementsFileError, match=r"circular|includes itself") as info:
        read_requirements(a)
    assert f"{b}:3" in str(info.value)


def test_self_include(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "-r ./a.txt\n")
    with pytest.raises(RequirementsFileError) as info:
        read_requirements(a)
    assert f"{a}:1" in str(info.value)


@pytest.mark.parametrize(
    ("text", "pinned"),
    [
        ("", True),
        ("# only a comment\n--pre\n", True),
        ("six==1.16.0\n", True),
        ("six===1.16.0\n", True),
        ('six==1.16.0; python_version < "3.11"\nFoo[bar]==2.0\n', True),
        ("six==1.16.0\nattrs>=23\n", False),
        ("six\n", False),
        ("six==1.*\n", False),
        ("six~=1.16\n", False),
        ("six==1.16.0,<2\n", False),
        ("six!=1.16.0\n", False),
        ("https://example.com/six-1.16.0-py3-none-any.whl\n", False),
    ],
)
def test_fully_pinned(tmp_path: Path, text: str, pinned: bool) -> None:
    assert read_requirements(write(tmp_path / "r.txt", text)).fully_pinned is pinned


def test_fully_pinned_follows_includes(tmp_path: Path) -> None:
    write(tmp_path / "base.txt", "attrs\n")
    assert read_requirements(write(tmp_path / "r.txt", "six==1\n-r base.txt\n")).fully_pinned is False


# --- pip's grammar: every line pip accepts is accepted --------------------------------------------------------------

# Lines as they stand in public projects' requirement files (pip-compile output, framework and ML projects, lock
# exports), each accepted by pip 23.0 to 26.3. The second element is the requirement names the line gives.
REAL_LINES = [
    ("inflate64==1.0.0; python_version >= '3.8' --no-binary=:inflate64:", ("inflate64",)),
    ('numpy>=1.21.0 ; python_version >= "3.10"', ("numpy",)),
    ("pywin32==306; sys_platform == 'win32'", ("pywin32",)),
    ("requests[security,socks]>=2.20.0,<3", ("requests",)),
    ("Django>=3.2,<4.0 # LTS", ("django",)),
    ("Django>=3.2,<4.0\t# LTS, tab before the comment", ("django",)),
    ('importlib-metadata>=4.6; python_version<"3.10"', ("importlib-metadata",)),
    (
        "typing_extensions>=4.0.0; python_version < '3.11' and platform_python_implementation != 'PyPy'",
        ("typing-extensions",),
    ),
    ('uvloop==0.19.0 ; sys_platform != "win32" and implementation_name == "cpython"', ("uvloop",)),
    ("foo===1.0-custom", ("foo",)),
    ("torch==2.3.1+cpu", ("torch",)),
    ("package @ https://example.com/package-1.0.tar.gz", ("package",)),
    ("pkg @ git+https://github.com/org/pkg.git@main ; python_version >= '3.8'", ("pkg",)),
    ("git+https://github.com/psf/requests.git@v2.32.3#egg=requests", ()),
    (
        "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/"
        "six-1.16.0-py2.py3-none-any.whl#sha256=8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
        (),
    ),
    ("./wheels/internal_tool-1.0-py3-none-any.whl", ()),
    ("./wheels/internal_tool-1.0-py3-none-any.whl; python_version >= '3.10'", ()),
    ("internal_tool-1.0-py3-none-any.whl", ()),
    (
        "certifi==2024.8.30 \\\n"
        "    --hash=sha256:922820b53db7a7257ffbda3f597266d435245903d80737e34f8a45ff3e3230d8 \\\n"
        "    --hash=sha256:bec941d2aa8195e248a60b31ff9f0558284cf01a52591ceda73ea9afffd69fd9\n"
        "    # via requests",
        ("certifi",),
    ),
    ("six==1.16.0 --hash sha512:" + "ab" * 64 + " --hash=sha384:" + "cd" * 48, ("six",)),
    ("pyodbc==5.1.0 --config-settings=--build-option=--force", ("pyodbc",)),
    ("pyodbc==5.1.0 -C key=value", ("pyodbc",)),
    ("pyodbc==5.1.0 --global-option=build_ext", ("pyodbc",)),
    ("--extra-index-url https://download.pytorch.org/whl/cpu", ()),
    ("--extra-index=https://download.pytorch.org/whl/cpu", ()),  # optparse takes an unambiguous prefix
    ("-f https://download.pytorch.org/whl/torch_stable.html", ()),
    ("-fhttps://download.pytorch.org/whl/torch_stable.html", ()),
    ("-i https://pypi.org/simple", ()),
    ("--index-url=https://pypi.org/simple --trusted-host pypi.org", ()),
    ("--trusted-host pypi.python.org", ()),
    ("--only-binary=:all:", ()),
    ("--no-binary :none:", ()),
    ("--prefer-binary", ()),
    ("--pre", ()),
    ("--require-hashes", ()),
    ("--use-feature=truststore", ()),
    ("--config-settings key=value", ()),  # pip ignores a per-requirement option on an option line
    ("# via -r requirements.in", ()),
]


@pytest.mark.parametrize(("line", "names"), REAL_LINES, ids=[str(i) for i in range(len(REAL_LINES))])
def test_lines_from_real_projects_are_accepted(tmp_path: Path, line: str, names: tuple[str, ...]) -> None:
    parsed = read_requirements(write(tmp_path / "requirements.txt", line + "\n"))
    assert parsed.names == names


def test_a_requirement_with_a_marker_and_an_option_keeps_both(tmp_path: Path) -> None:
    parsed = read_requirements(
        write(tmp_path / "r.txt", "inflate64==1.0.0; python_version >= '3.8' --no-binary=:inflate64:\n")
    )
    (line,) = parsed.requirements
    assert line.requirement is not None
    assert str(line.requirement.specifier) == "==1.0.0"
    assert str(line.requirement.marker) == 'python_version >= "3.8"'


def test_environment_variables_are_expanded_as_pip_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIX_VERSION", "1.16.0")
    monkeypatch.delenv("UNSET_VERSION", raising=False)
    parsed = read_requirements(write(tmp_path / "r.txt", "six==${SIX_VERSION}\n"))
    (line,) = parsed.requirements
    assert line.requirement is not None and str(line.requirement.specifier) == "==1.16.0"
    with pytest.raises(RequirementsFileError, match="Invalid requirement"):
        read_requirements(write(tmp_path / "r2.txt", "six==${UNSET_VERSION}\n"))


def test_a_comment_line_ends_a_continuation_as_in_pip(tmp_path: Path) -> None:
    parsed = read_requirements(write(tmp_path / "r.txt", "six==1.16.0 \\\n# a comment\nattrs==23.2.0\n"))
    assert parsed.names == ("six", "attrs")


REFUSED_LINES = [
    ("six==1.16.0 --hash=md5:0123\n", "sha256, sha384, sha512"),  # pip: allowed hash algorithms
    ("six==1.16.0 --hash=0123\n", "--hash=sha256:"),
    ("--no\n", "ambiguous"),  # --no-index, --no-binary, --no-require-hashes
    ("--pre=yes\n", "does not take a value"),
    ("six==1.16.0 --hash='sha256:abc\n", "quote"),
    ("--config-settings novalue\n", "KEY=VALUE"),
    ("-i 'http://[::1'\n", "http://[::1"),
    ("./six-1.16.0-py2.py3-none-any.whl; $(id)\n", "marker"),
    ("https://example.com/six-1.16.0-py2.py3-none-any.whl; $(id) == 'x'\n", "marker"),
    ("six==1.16.0; python_version ~= '$(id)'\n", "marker"),
]


@pytest.mark.parametrize(("text", "fragment"), REFUSED_LINES)
def test_lines_pip_refuses_are_refused_with_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    req = write(tmp_path / "requirements.txt", text)
    with pytest.raises(RequirementsFileError) as info:
        read_requirements(req)
    message = str(info.value)
    assert f"{req}:1" in message
    assert fragment in message
    assert info.value.exit_code == 2


def _pip_version(python: Path) -> Version | None:
    """The version of the pip that ``python`` imports (read from its metadata: nothing is run)."""
    if python == Path(sys.executable):
        try:
            return Version(importlib.metadata.version("pip"))
        except importlib.metadata.PackageNotFoundError:
            return None
    found = sorted(python.parent.parent.glob(f"lib/{python.name}/site-packages/pip-*.dist-info"))
    return Version(found[-1].name.removeprefix("pip-").removesuffix(".dist-info")) if found else None


# The oldest pip a supported Python comes with (Python 3.10's), where the tables' claims start.
OLDEST_PIP = Version("23.0")


def _pips() -> list[str]:
    """The interpreters whose pip referees the tables, whichever Python runs the tests: of this one's and those of
    pyenv's supported Pythons, the oldest pip (which must be a 23.0, what a user's Python 3.10 comes with) and the
    newest."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [Path(sys.executable), *sorted(pyenv.glob("3.1[0-9].*/bin/python3.1[0-9]"))]
    versions = {python: version for python in candidates if (version := _pip_version(python)) is not None}
    oldest, newest = min(versions, key=versions.__getitem__), max(versions, key=versions.__getitem__)
    if versions[oldest].release[:2] != OLDEST_PIP.release:
        pytest.skip(
            f"the tables speak for pip {OLDEST_PIP} and later, and the oldest pip here is {versions[oldest]} "
            f"({oldest}): refereeing them needs pyenv's Python 3.10 (its pip 23.0) besides a recent pip"
        )
    return [str(oldest)] if versions[oldest] == versions[newest] else [str(oldest), str(newest)]


def test_the_tables_are_pips_own_verdict(tmp_path: Path) -> None:
    """Each accepted line is accepted by some pip from 23.0 on; each refused one by none (or crashes pip)."""
    accepted = [write(tmp_path / f"ok-{i}.txt", line + "\n") for i, (line, _) in enumerate(REAL_LINES)]
    refused = [write(tmp_path / f"bad-{i}.txt", text) for i, (text, _) in enumerate(REFUSED_LINES)]
    verdicts: list[list[str]] = []
    for python in _pips():
        done = subprocess.run(
            [python, str(Path(__file__).parent / "data" / "pip_verdict.py"), *map(str, accepted + refused)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=True,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"},
        )
        verdicts.append(json.loads(done.stdout))
    assert len(verdicts) >= 1
    for pos, (line, _) in enumerate(REAL_LINES):
        assert any(v[pos] == "ok" for v in verdicts), (line, [v[pos] for v in verdicts])
    for pos, (text, _) in enumerate(REFUSED_LINES, start=len(REAL_LINES)):
        assert all(v[pos] != "ok" for v in verdicts), (text, [v[pos] for v in verdicts])


# --- hostile input: one clear refusal, at once -----------------------------------------------------------------------

MEGABYTE = 1024 * 1024


def _cli(tmp_path: Path, requirements: str) -> subprocess.CompletedProcess[str]:
    """The command line on ``requirements``; the timeout only keeps a regression from hanging the test run."""
    return subprocess.run(
        [sys.executable, "-m", "cdk_pip_layer", "build", "-q", "-r", requirements, "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"},
    )


@pytest.mark.parametrize(
    "line",
    [
        "a" * MEGABYTE,  # a 1 MB "name"
        "six==1.16.0; python_version == '" + "x" * MEGABYTE + "'",  # a 1 MB marker
        "six==1.16.0" + " " * MEGABYTE + "x",  # a megabyte of blanks: pip's comment expression is quadratic on it
        "https://" + "a" * MEGABYTE,  # a URL whose "userinfo" never ends
    ],
    ids=["name", "marker", "blanks", "url"],
)
def test_a_megabyte_line_is_refused_at_once(tmp_path: Path, line: str) -> None:
    req = write(tmp_path / "requirements.txt", f"attrs==23.2.0\n{line}\n")
    done = _cli(tmp_path, str(req))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{req}:2" in done.stderr
    assert "characters long" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 2000  # the line is named, not printed
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


BLANKS = 200_000  # pip's comment expression takes minutes on a run this long (1.5 s on 20,000, 6 s on 40,000)


def _cli_with(
    tmp_path: Path, requirements: Path, installer: str, runtime: str = "python3.12"
) -> subprocess.CompletedProcess[str]:
    """The command line on ``requirements`` with ``installer``, offline; the timeout is not a measure, it only turns a
    build that would not end for minutes into a failure instead of a hung test run."""
    return subprocess.run(
        [sys.executable, "-m", "cdk_pip_layer", "build", "-q", "-r", str(requirements), "-o", str(tmp_path / "out"),
         "--installer", installer, "--runtime", runtime, "--no-verify"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "UV_OFFLINE": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize(
    ("text", "message", "lineno"),
    [
        ("six==1.16.0" + " " * BLANKS + "\n", f"a run of {BLANKS:,} blanks", 3),  # stripped: 11 characters
        ("six" + "\t" * BLANKS + "==1.16.0\n", f"a run of {BLANKS:,} blanks", 3),
        ("six==1.16.0 \\\n" + " \\\n" * BLANKS + "\n", f"a run of {BLANKS + 1:,} blanks", 3),  # continued lines
        (("--prefer-binary" + " " * 2_000 + "\n") * 1_000 + "six==1.16.0\n", "one run of blanks too many", 70),
        ("# " + "comment " * 40_000 + "\nsix==1.16.0\n", "characters long (its comment", 3),  # 320 kB of comment
        ("six==1.16.0  # " + "x" * 300_000 + "\n", "characters long (its comment", 3),
    ],
    ids=["trailing-blanks", "tabs-in-requirement", "continued-blank-lines", "many-runs", "comment-line", "comment"],
)
def test_a_line_pip_would_choke_on_is_refused_at_once_with_either_installer(  # noqa: PLR0917 - parameters
    tmp_path: Path, text: str, message: str, lineno: int, installer: str, make_wheel: Callable[..., Path]
) -> None:
    """pip strips comments with an expression that is quadratic on a run of blanks, and reads a giant comment
    whole: both got past the line check (which saw the line stripped, without its comment) and then pip ran for
    minutes (over 90 s with 200,000 blanks). Refused before any installer runs, naming the file and line."""
    wheels = make_wheel("six", "1.16.0").parent
    req = write(tmp_path / "requirements.txt", f"--no-index\n--find-links {wheels}\n{text}")
    done = _cli_with(tmp_path, req, installer)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{req}:{lineno}" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 2000
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_blanks_a_real_file_has_build_the_layer_with_either_installer(
    tmp_path: Path, installer: str, make_wheel: Callable[..., Path], host_runtime: str
) -> None:
    """What real files hold is read as before and built: alignment before a comment, continuation indents, a long
    run of blanks inside the comment itself (pip reads a comment in one pass), a line near the length limit."""
    sha = {
        name: hashlib.sha256(make_wheel(name, version).read_bytes()).hexdigest()
        for name, version in (("six", "1.16.0"), ("attrs", "23.2.0"), ("idna", "3.7"))
    }
    text = (
        f"--no-index\n--find-links {tmp_path / 'wheels'}   # local wheels\n"
        f"six==1.16.0 \\\n    --hash=sha256:{sha['six']}" + " " * 60 + "# aligned\n"
        "#" + " " * BLANKS + "a comment of blanks\n"
        f"attrs==23.2.0 --hash=sha256:{sha['attrs']}  # " + " " * BLANKS + "x\n"
        f"idna==3.7 ; python_version >= '3' \\\n    --hash=sha256:{sha['idna']}\n"
    )
    req = write(tmp_path / "requirements.txt", text)
    assert read_requirements(req).plain  # handed to the installer as it is
    done = _cli_with(tmp_path, req, installer, host_runtime)  # pip runs for the interpreter running the tests
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "layer.zip").is_file()


def test_the_reading_cost_adds_up_over_included_files(tmp_path: Path) -> None:
    """Many files of a few runs each add up to what pip reads: the budget is the file set's, not one file's."""
    line = "--prefer-binary" + " " * 4_000 + "\n"
    for n in range(20):
        write(tmp_path / f"part{n}.txt", line)
    write(tmp_path / "requirements.txt", "".join(f"-r part{n}.txt\n" for n in range(20)))
    with pytest.raises(RequirementsFileError, match="too many") as caught:
        read_requirements(tmp_path / "requirements.txt")
    assert str(caught.value.subject).startswith(str(tmp_path / "part"))


def test_a_device_that_never_ends_is_refused(tmp_path: Path) -> None:
    done = _cli(tmp_path, "/dev/zero")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "larger than 32 MiB" in done.stderr
    assert "/dev/zero" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    """`-r <(...)` or `-r /dev/stdin` was read by us and then again by pip (gone by then); a FIFO hung the build."""
    fifo = tmp_path / "requirements.fifo"
    os.mkfifo(fifo)
    done = _cli(tmp_path, str(fifo))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "is a pipe, not a file" in done.stderr
    assert "Traceback" not in done.stderr
    piped = subprocess.run(
        [sys.executable, "-m", "cdk_pip_layer", "build", "-q", "-r", "/dev/stdin", "-o", str(tmp_path / "out")],
        input="six==1.16.0\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 2, piped.stderr[-2000:]
    assert "is a pipe, not a file" in piped.stderr
    assert not (tmp_path / "out").exists()


def test_an_include_of_a_device_is_refused(tmp_path: Path) -> None:
    done = _cli(tmp_path, str(write(tmp_path / "requirements.txt", "six==1.16.0\n-r /dev/zero\n")))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "larger than 32 MiB (included from" in done.stderr


@pytest.mark.parametrize(
    "line",
    [
        "six==1.16.0; python_version ~= '$(id)'",  # pip crashes evaluating it (UndefinedComparison)
        "./six-1.16.0-py2.py3-none-any.whl; $(id)",  # pip 23 crashes parsing it (InvalidMarker)
    ],
)
def test_a_marker_pip_cannot_read_is_bad_input_naming_the_line(tmp_path: Path, line: str) -> None:
    req = write(tmp_path / "requirements.txt", f"attrs==23.2.0\n{line}\n")
    done = _cli(tmp_path, str(req))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Invalid environment marker on line 2" in done.stderr
    assert f"{req}:2" in done.stderr
    assert "Traceback" not in done.stderr


def test_index_options_as_pip_applies_them(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    write(tmp_path / "base.txt", "--extra-index-url https://extra.example.com/simple\n-f wheels\nsix==1.16.0\n")
    parsed = read_requirements(
        write(
            tmp_path / "deps" / "r.txt",
            "-i https://a.example.com/simple -i https://b.example.com/simple\n"
            "--no-index -r ../base.txt\n--trusted-host b.example.com --pre\n-f https://links.example.com/\n",
        )
    )
    assert [(o.name, o.value) for o in parsed.index_options] == [
        ("--index-url", "https://b.example.com/simple"),  # the last of a line; --no-index went with the include
        ("--extra-index-url", "https://extra.example.com/simple"),
        ("--find-links", str((tmp_path / "wheels").resolve())),  # beside its own file, as pip reads it
        ("--trusted-host", "b.example.com"),
        ("--pre", ""),
        ("--find-links", "https://links.example.com/"),
    ]
    assert parsed.index_urls == ("https://b.example.com/simple", "https://extra.example.com/simple")
