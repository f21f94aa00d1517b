"""Reading requirements files: what pip accepts is accepted; anything else fails early with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import RequirementsFileError
from cdk_pip_layer.engine.requirements import read_requirements


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
    req = write(
        tmp_path / "requirements.txt",
        "--index-url https://pypi.example.com/simple\n"
        "-i https://pypi.example.com/simple\n"
        "--extra-index-url=https://extra.example.com/simple\n"
        "-f ./wheels\n"
        "--find-links=https://example.com/links\n"
        "--trusted-host pypi.example.com\n"
        "--only-binary :all:\n"
        "--no-binary=six\n"
        "--pre\n"
        "--prefer-binary\n"
        "--no-index\n"
        "./vendor/mypkg-1.0-py3-none-any.whl\n"
        "https://example.com/pkg-1.0.tar.gz\n"
        "/abs/path/to/pkg\n"
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
