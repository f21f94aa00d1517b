"""Private package index settings, and a reachability probe used to explain an install failure."""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import InvalidInputError
from .redact import redact, url_secrets


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from, on top of the user's own pip configuration and ``PIP_*`` environment.

    Attributes:
        index_url: replaces the default index (pip's ``--index-url``). ``None`` keeps the user's setting or PyPI.
        extra_index_urls: more indexes searched as well (pip's ``--extra-index-url``).
        trusted_hosts: hosts whose TLS certificate is not verified (pip's ``--trusted-host``).

    URLs may carry credentials (``https://user:token@host/simple``). They are handed to the installer through
    its environment, never on a command line, and are redacted from every message.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    def __repr__(self) -> str:
        urls = ", ".join(f"{u!r}" for u in self.extra_index_urls)
        index = redact(self.index_url) if self.index_url else None
        return (
            f"IndexSettings(index_url={index!r}, extra_index_urls=({redact(urls)}), "
            f"trusted_hosts={self.trusted_hosts!r})"
        )

    def __post_init__(self) -> None:
        # One string is one URL (or host), not a sequence of characters.
        for name in ("extra_index_urls", "trusted_hosts"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value or ()))
        for url in (self.index_url, *self.extra_index_urls):
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
                # Without "scheme://" redact() cannot see the credentials: show only what follows the last "@".
                shown = redact(url) if "://" in url or "@" not in url else "****@" + url.rsplit("@", 1)[1]
                raise InvalidInputError(
                    f"Invalid package index URL {shown!r}",
                    subject="index settings",
                    hint="give a full URL such as 'https://pypi.example.com/simple'.",
                )

    @property
    def secrets(self) -> tuple[str, ...]:
        out: list[str] = []
        for url in (self.index_url, *self.extra_index_urls):
            if url:
                out.extend(url_secrets(url))
        return tuple(out)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(u for u in (self.index_url, *self.extra_index_urls) if u)

    def pip_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.index_url:
            env["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if self.trusted_hosts:
            env["PIP_TRUSTED_HOST"] = " ".join(self.trusted_hosts)
        return env

    def fingerprint(self) -> dict[str, object]:
        """The settings without credentials: what may go into an asset hash."""
        return {
            "index_url": strip_credentials(self.index_url) if self.index_url else None,
            "extra_index_urls": [strip_credentials(u) for u in self.extra_index_urls],
            "trusted_hosts": list(self.trusted_hosts),
        }

    def describe(self) -> str:
        if not self.urls:
            return "the index of your pip configuration (PyPI by default)"
        return ", ".join(redact(u) for u in self.urls)


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# Where pip, requests and OpenSSL look for a CA bundle, in the order pip honours them.
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def host_ca_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle this host's pip uses (a corporate proxy's CA lives there), when one is set and exists."""
    env = os.environ if environ is None else environ
    for name in CA_VARIABLES:
        value = env.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return None


def _ssl_context() -> ssl.SSLContext:
    ca = host_ca_bundle()
    return ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()


def probe_index(url: str, project: str | None = None, timeout: float = 10.0) -> str | None:
    """Return why ``url`` cannot be reached (redacted), or None when a server answered (whatever the status)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None  # a local index: nothing to reach (pip and uv pass over a missing one with a warning)
    host = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/") + "/" + (f"{project}/" if project else "")
    request = urllib.request.Request(urlunsplit((parts.scheme, host, path, "", "")), method="GET")
    if "@" in parts.netloc:
        userinfo = unquote(parts.netloc.rsplit("@", 1)[0])
        request.add_header("Authorization", "Basic " + b64encode(userinfo.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context()):
            return None
    except urllib.error.HTTPError:
        return None  # the server answered: reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{redact(url)}: {redact(str(reason), url_secrets(url))}"
