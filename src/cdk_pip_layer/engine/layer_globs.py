"""Globs over a layer's files, as ``slim_keep`` and ``slim_remove`` take them: paths relative to the layer's
``python/`` directory, ``/``-separated; ``*``, ``?`` and ``[...]`` match within one path component, ``**`` any
number of components. A glob that matches a directory matches everything below it (``pkg/tests`` is
``pkg/tests/**``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InvalidInputError


@dataclass(frozen=True)
class PathGlob:
    pattern: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, pattern: str, *, subject: str = "glob") -> PathGlob:
        """The glob ``pattern``, checked: relative, ``/``-separated, no ``..``, brackets closed."""
        problem = _problem(pattern)
        if problem is not None:
            raise InvalidInputError(
                f"Invalid {subject} pattern {pattern!r}: {problem}",
                subject=subject,
                hint="give globs relative to the layer's python/ directory, e.g. 'pkg/tests/fixtures/**' or "
                "'**/*.md' (* and ? within a path component, ** across components).",
            )
        return cls(pattern, re.compile(_translate(pattern.strip("/"))))

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative to ``python/``) or one of the directories above it matches."""
        parts = path.split("/")
        return any(self.regex.fullmatch("/".join(parts[:end])) for end in range(len(parts), 0, -1))


def _problem(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return f"a pattern is a string, not {type(pattern).__name__}"
    problems = (
        (not pattern.strip("/").strip(), "it is empty"),
        (pattern.startswith("/"), "it is absolute"),
        ("\\" in pattern or "\x00" in pattern, "use '/' to separate path components"),
        (".." in pattern.split("/"), "'..' leaves the layer"),
        (_unclosed_bracket(pattern), "a '[' is not closed"),
    )
    return next((problem for found, problem in problems if found), None)


def _unclosed_bracket(pattern: str) -> bool:
    depth = False
    for char in pattern:
        if char == "[":
            depth = True
        elif char == "]":
            depth = False
    return depth


def _translate(pattern: str) -> str:
    """The regular expression of a glob (see the module's docstring)."""
    out: list[str] = []
    parts = pattern.split("/")
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_component(part) + ("" if last else "/"))
    return "".join(out)


def _component(part: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(part):
        char = part[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = part.index("]", index + 1)
            body = part[index + 1 : end]
            negated = body.startswith("!")
            body = re.escape(body[1:] if negated else body).replace("\\-", "-")
            out.append(f"[{'^' if negated else ''}{body}]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def check_globs(values: Iterable[object], *, subject: str) -> tuple[str, ...]:
    """Globs checked, in their order, without duplicates (the patterns themselves, as given)."""
    out: list[str] = []
    for value in values:
        glob = PathGlob.parse(value, subject=subject)  # type: ignore[arg-type]
        if glob.pattern not in out:
            out.append(glob.pattern)
    return tuple(out)


def compile_globs(patterns: Sequence[str], *, subject: str = "glob") -> tuple[PathGlob, ...]:
    return tuple(PathGlob.parse(pattern, subject=subject) for pattern in patterns)


def first_match(globs: Sequence[PathGlob], path: str) -> PathGlob | None:
    return next((glob for glob in globs if glob.matches(path)), None)
