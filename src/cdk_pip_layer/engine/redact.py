"""Credential redaction for every URL we print, log or write.

The URLs are found by a scan in linear time, whatever the text: a regular expression for "scheme://userinfo@" is
quadratic on a long run of letters, and would hang on a hostile line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

REDACTED = "****"

# What ends a URL's authority (and so its userinfo): a path, whitespace, a quote.
_AUTHORITY_END = re.compile(r"[/\s'\"]")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _has_scheme(text: str, separator: int) -> bool:
    """A URL scheme (a letter, then letters, digits, ``+``, ``.``, ``-``) ends at ``separator`` (its ``://``)."""
    pos = separator - 1
    while pos >= 0 and text[pos] in _SCHEME_CHARS:
        if text[pos].isalpha():
            return True
        pos -= 1
    return False


def _userinfo_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of the userinfo of every ``scheme://userinfo@host`` in ``text``.

    The userinfo is "user:password" or a bare token, and runs to the last "@" before the host, as in urllib and
    pip: a raw "@" in a password must not leave the rest of it visible.
    """
    pos = 0
    while (separator := text.find("://", pos)) >= 0:
        start = separator + 3
        pos = start
        if not _has_scheme(text, separator):
            continue
        end_match = _AUTHORITY_END.search(text, start)
        end = end_match.start() if end_match else len(text)
        at = text.rfind("@", start, end)
        if at > start:
            yield start, at
            pos = at + 1


def _replace_userinfo(text: str, replacement: str) -> str:
    pieces: list[str] = []
    done = 0
    for start, end in _userinfo_spans(text):
        pieces += [text[done:start], replacement]
        done = end + (1 if not replacement else 0)  # an empty replacement drops the "@" too
    pieces.append(text[done:])
    return "".join(pieces)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with the userinfo part of every URL, and every given secret, replaced by ``****``."""
    out = _replace_userinfo(text, REDACTED)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, REDACTED)
    return out


def strip_userinfo(text: str) -> str:
    """Return ``text`` with the userinfo of every URL removed (``https://u:token@host/x`` -> ``https://host/x``):
    the same text whoever's credentials it carries."""
    return _replace_userinfo(text, "")


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of ``url``'s userinfo: the whole userinfo and the password (or the bare token).

    A user name on its own is not a secret and is not returned (redacting it everywhere would mangle output).
    """
    span = next(_userinfo_spans(url), None)
    if span is None:
        return ()
    userinfo = url[span[0] : span[1]]
    secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
    candidates = (userinfo, secret, unquote(userinfo), unquote(secret))
    return tuple(dict.fromkeys(c for c in candidates if c))
