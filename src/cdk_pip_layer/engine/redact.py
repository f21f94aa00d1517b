"""Credential redaction for every URL we print, log or write."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

# scheme://userinfo@host -> scheme://****@host. Userinfo may be "user:password" or a bare token. It runs to the
# last "@" before the host, as in urllib and pip: a raw "@" in a password must not leave the rest of it visible.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"]+)@")

REDACTED = "****"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with the userinfo part of every URL, and every given secret, replaced by ``****``."""
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, REDACTED)
    return out


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of ``url``'s userinfo: the whole userinfo and the password (or the bare token).

    A user name on its own is not a secret and is not returned (redacting it everywhere would mangle output).
    """
    match = _USERINFO.search(url)
    if not match:
        return ()
    userinfo = match.group("userinfo")
    secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
    candidates = (userinfo, secret, unquote(userinfo), unquote(secret))
    return tuple(dict.fromkeys(c for c in candidates if c))
