"""pip's grammar of one requirements-file line, mirrored from ``pip._internal.req.req_file`` (pip 23.0 to 26.3).

- Lines ending in ``\\`` are joined with the next (a comment line ends the chain); ``#`` at the start of a line
  or after whitespace starts a comment. Both are done in linear time (pip's own regular expression is quadratic on
  a long run of blanks).
- The requirement is what precedes the first space-separated word that starts with ``-``; the rest are options,
  split like a shell would and read by :mod:`optparse` with the options pip knows in a requirements file (so
  ``--extra-index=URL`` and ``-fURL`` mean what they mean to pip).
- Options from any pip in that range are accepted: ``--config-settings`` after a requirement (pip >= 23.1) as well
  as ``--global-option`` (pip < 26). On a requirement line only the requirement's options take effect; pip ignores
  the others, and so does the engine.
"""

from __future__ import annotations

import optparse
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

ARCHIVE_SUFFIXES = (
    ".zip", ".whl", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma", ".tar.gz", ".tgz", ".tar",
)  # fmt: skip
# pip's is_url: these schemes make a requirement a URL (its marker then follows "; ", not ";").
_URL_SCHEMES = frozenset(
    (
        *("http", "https", "file", "ftp"),
        *("git+http", "git+https", "git+ssh", "git+git", "git+file"),
        *("hg+file", "hg+http", "hg+https", "hg+ssh", "hg+static-http"),
        *("svn+ssh", "svn+http", "svn+https", "svn+svn", "svn+file"),
        *("bzr+http", "bzr+https", "bzr+ssh", "bzr+sftp", "bzr+ftp", "bzr+lp", "bzr+file"),
    )
)

# (short, long, takes a value): pip's SUPPORTED_OPTIONS, then its options for a requirement (SUPPORTED_OPTIONS_REQ).
_FILE_OPTIONS = (
    ("-i", "--index-url", True),
    (None, "--extra-index-url", True),
    (None, "--no-index", False),
    ("-c", "--constraint", True),
    ("-r", "--requirement", True),
    ("-e", "--editable", True),
    ("-f", "--find-links", True),
    (None, "--no-binary", True),
    (None, "--only-binary", True),
    (None, "--prefer-binary", False),
    (None, "--require-hashes", False),
    (None, "--no-require-hashes", False),
    (None, "--pre", False),
    (None, "--all-releases", True),
    (None, "--only-final", True),
    (None, "--trusted-host", True),
    (None, "--use-feature", True),
)
_REQUIREMENT_OPTIONS = (
    (None, "--hash", True),
    ("-C", "--config-settings", True),
    (None, "--global-option", True),
    (None, "--install-option", True),
)
_DEST = {
    "--extra-index-url": "extra_index_urls",
    "--constraint": "constraints",
    "--requirement": "requirements",
    "--editable": "editables",
    "--trusted-host": "trusted_hosts",
    "--hash": "hashes",
}
# What every installer reads as written: full option names, and on a requirement line only --hash.
_PLAIN_FILE_OPTIONS = frozenset(long for _, long, _ in _FILE_OPTIONS) | {"-i", "-c", "-r", "-e", "-f"}
_TAKES_VALUE = frozenset(
    name for short, long, value in (*_FILE_OPTIONS, *_REQUIREMENT_OPTIONS) if value for name in (short, long) if name
)


class OptionError(ValueError):
    """A line's options that pip refuses; ``hint`` says what to write instead."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class _Parser(optparse.OptionParser):
    def error(self, msg: str) -> NoReturn:
        if msg.endswith(" option requires 1 argument"):
            option = msg.split(" ", 1)[0]
            raise OptionError(f"{option} needs a value", "write e.g. '-r base.txt' or '--find-links ./wheels'.")
        if msg.startswith("no such option: "):
            msg = "Unknown option " + msg.removeprefix("no such option: ")
        raise OptionError(
            msg,
            "use one of the options pip accepts in requirements files (-r, -c, -i, --extra-index-url, -f, "
            "--trusted-host, --pre, --prefer-binary, --only-binary, --no-binary, --require-hashes; --hash after a "
            "requirement).",
        )


def _parser() -> _Parser:
    """A parser for one line (optparse keeps a parse's state in the parser: none is shared)."""
    parser = _Parser(add_help_option=False, usage=optparse.SUPPRESS_USAGE)
    for short, long, takes_value in (*_FILE_OPTIONS, *_REQUIREMENT_OPTIONS):
        names = [name for name in (short, long) if name]
        dest = _DEST.get(long, long[2:].replace("-", "_"))
        if takes_value:
            parser.add_option(*names, dest=dest, action="append", type="string")
        else:
            parser.add_option(*names, dest=dest, action="store_true")
    return parser


@dataclass(frozen=True)
class LineOptions:
    """One logical line, read as pip reads it."""

    args: str  # the requirement ("" for a line of options)
    options: optparse.Values  # attributes named like pip's option destinations; lists for options with a value
    plain: bool  # every installer reads this line as written (no abbreviation, no option it ignores)


def is_pip_url(text: str) -> bool:
    """pip's is_url: a requirement that is a URL of a scheme pip fetches (http, file, git+https, ...)."""
    scheme, colon, _ = text.partition(":")
    return bool(colon) and scheme.lower() in _URL_SCHEMES


def shown(text: str, limit: int = 120) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (the rest counted, not shown)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _comment_start(line: str) -> int:
    """Where the line's comment starts: the first ``#`` that starts the line or follows whitespace (its length when
    there is none)."""
    start = 0
    while (pos := line.find("#", start)) >= 0:
        if pos == 0 or line[pos - 1].isspace():
            return pos
        start = pos + 1
    return len(line)


def _strip_comment(line: str) -> str:
    """The line without its comment: from the first ``#`` that starts the line or follows whitespace."""
    return line[: _comment_start(line)].strip()


def reading_cost(line: str) -> tuple[int, int]:
    """What reading the joined line ``line`` costs pip, in steps, and its longest run of blanks before the comment.

    pip strips comments with ``(^|\\s+)#.*$``, which tries each position of a run of blanks against the whole rest
    of the run: a run of ``n`` blanks that no ``#`` follows costs about n² steps (200,000 blanks: minutes). Its
    split of the requirement from the options pops the line's first word ``t`` times, about t²/32 steps for ``t``
    words. Both are counted here in one pass; the blanks of the comment itself, and the run that ends where it
    starts, cost pip one pass and are not.
    """
    end = _comment_start(line)
    body = line[:end].rstrip() if end < len(line) else line
    cost = longest = run = 0
    for char in body:
        if char.isspace():
            run += 1
        elif run:
            cost += run * run
            longest = max(longest, run)
            run = 0
    if run:
        cost += run * run
        longest = max(longest, run)
    words = 0
    for word in body.split(" "):
        if word.startswith("-"):
            break
        words += 1
    return cost + words * words // 32, longest


def comment_swallows_a_line(text: str) -> bool:
    """Whether a comment ends with a line continuation: pip joins the lines first, so the comment takes the next line
    with it, where other readers (uv) drop the comment and keep the next line."""
    if "#" not in text or "\\" not in text:
        return False
    for physical in text.splitlines():
        if physical.endswith("\\") and not _is_comment(physical):
            body = physical[:-1]
            if _strip_comment(body) != body.strip():
                return True
    return False


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's join_lines and ignore_comments: (first physical line number, line) for every non-empty line."""
    return [(lineno, stripped) for lineno, line in joined_lines(text) if (stripped := _strip_comment(line))]


def strip_comment(line: str) -> str:
    """pip's ignore_comments on one joined line: the line without its comment, stripped ("" for nothing left)."""
    return _strip_comment(line)


def joined_lines(text: str) -> list[tuple[int, str]]:
    """pip's join_lines: (first physical line number, line) for every line, comments and blanks as they are (a
    comment line is prefixed with a space, as pip does), continued lines joined."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for lineno, physical in enumerate(text.splitlines(), start=1):
        if not physical.endswith("\\") or _is_comment(physical):
            line = " " + physical if _is_comment(physical) else physical
            if pending:
                joined.append((first, "".join([*pending, line])))
                pending = []
            else:
                joined.append((lineno, line))
        else:
            if not pending:
                first = lineno
            pending.append(physical.strip("\\"))
    if pending:
        joined.append((first, "".join(pending)))
    return joined


def _break_args_options(line: str) -> tuple[str, str]:
    """pip's split of a line: the words before the first word starting with ``-`` are the requirement."""
    tokens = line.split(" ")
    for pos, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:pos]), " ".join(tokens[pos:])
    return line, ""


def _split(text: str) -> list[str]:
    """``shlex.split``, which splits text without quotes or backslashes at its whitespace, only faster."""
    if any(char in text for char in "'\"\\"):
        return shlex.split(text)
    return [token for token in re.split(r"[ \t\r\n]+", text) if token]


def _plain(tokens: Sequence[str], requirement: bool) -> bool:
    expect_value = False
    for token in tokens:
        if expect_value:
            expect_value = False
            continue
        name, equals, _ = token.partition("=")
        if name not in (("--hash",) if requirement else _PLAIN_FILE_OPTIONS) or (equals and not name.startswith("--")):
            return False
        expect_value = name in _TAKES_VALUE and not equals
    return True


def parse_line(line: str) -> LineOptions:
    """Read one logical line (comments stripped, variables expanded). Raises :class:`OptionError`."""
    args, options_text = _break_args_options(line)
    try:
        tokens = _split(options_text)
    except ValueError:
        raise OptionError(
            "its options cannot be split (an unclosed quote?)", "close the quote, or remove it from the option."
        ) from None
    options, words = _parser().parse_args(tokens)
    if words:
        raise OptionError(
            f"{words[0]!r} follows the options",
            "put each requirement on a line of its own, options after it or on their own line.",
        )
    _check_values(options)
    return LineOptions(args=args.strip(), options=options, plain=_plain(tokens, bool(args.strip())))


def _check_values(options: optparse.Values) -> None:
    """The value checks pip's option callbacks make."""
    for dest in ("no_binary", "only_binary", "all_releases", "only_final"):
        for value in getattr(options, dest) or ():
            if value.startswith("-"):
                option = "--" + dest.replace("_", "-")
                raise OptionError(f"{option} needs a value", f"write e.g. '{option} :all:'.")
    for value in options.config_settings or ():
        if "=" not in value:
            raise OptionError(
                f"--config-settings {value!r} is not KEY=VALUE", "write --config-settings KEY=VALUE, or remove it."
            )
