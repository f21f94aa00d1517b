"""What the package indexes offer for a project: its wheel files with their tags, ``Requires-Python`` and yanked
state, read from where the installers read them (the index and the extra indexes, ``file://`` indexes,
``--find-links`` directories and pages), with the same credentials, CA bundle and proxies.

The installer choice uses it to tell whether pip would choose other wheels than uv did (see :mod:`.choice`). The
simple repository API is read as PEP 691 JSON when the index offers it, else as PEP 503 HTML; only wheel files
matter (builds install wheels only). Standard library and ``packaging`` only: the engine also runs inside the
Lambda build image.
"""

from __future__ import annotations

import gzip
import http.client
import json
import netrc
import os
import re
import shlex
import socket
import ssl
import threading
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.index import IndexSettings, host_ca_bundle
from cdk_pip_layer.engine.inputs.lines import logical_lines
from cdk_pip_layer.engine.inputs.requirements import expand_variables
from cdk_pip_layer.engine.redact import redact

_JSON = "application/vnd.pypi.simple.v1+json"
_ACCEPT = f"{_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_MAX_PAGE = 64 * 1024 * 1024  # numpy's page is about 2 MB
_TRUE = ("1", "true", "yes", "on")
_TIMEOUT = 20.0  # seconds, for a connection and for each read


@dataclass(frozen=True)
class OfferedWheel:
    """One wheel file an index (or a find-links location) offers."""

    filename: str
    version: Version
    tags: frozenset[Tag]
    requires_python: SpecifierSet | None
    yanked: bool

    def admits(self, python: Version) -> bool:
        """Whether its ``Requires-Python`` admits ``python`` (no statement admits every version)."""
        return self.requires_python is None or self.requires_python.contains(python, prereleases=True)


@dataclass(frozen=True)
class Sources:
    """Where the installers look for distributions: index URLs (credentials allowed), find-links locations
    (directories, files or URLs), hosts whose certificate is not checked, and the CA bundle."""

    indexes: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    ca_bundle: str | None = None
    prereleases: bool = False  # --pre: pre-releases are candidates too

    def describe(self) -> str:
        return ", ".join(redact(place) for place in (*self.indexes, *self.find_links)) or "no index"


def build_sources(
    index: IndexSettings,
    settings: Mapping[str, str],
    extra_args: Sequence[str],
    requirement_files: Iterable[Path],
    *,
    cwd: Path,
) -> Sources:
    """The places a build's installer reads: the user's pip configuration (``settings``, see
    :func:`~.index.pip_settings`), the build's index settings, the options in the extra installer arguments and
    in the requirements files. All of them together: a superset of what either installer reads is what a check
    of their choices needs."""
    main = index.index_url or settings.get("index-url") or "https://pypi.org/simple"
    indexes = [main, *index.extra_index_urls, *settings.get("extra-index-url", "").split()]
    options = _Options(cwd)
    options.read_args(extra_args)
    for path in requirement_files:
        options.read_file(path)
    no_index = settings.get("no-index", "").lower() in _TRUE or options.no_index
    find_links = [_local(link, cwd) for link in settings.get("find-links", "").split()] + options.find_links
    trusted = [*settings.get("trusted-host", "").split(), *index.trusted_hosts, *options.trusted_hosts]
    ca_bundle = settings.get("cert") or (str(host_ca_bundle()) if host_ca_bundle() else None)
    return Sources(
        indexes=() if no_index else tuple(dict.fromkeys([*indexes, *options.indexes])),
        find_links=tuple(dict.fromkeys(find_links)),
        trusted_hosts=tuple(dict.fromkeys(trusted)),
        ca_bundle=ca_bundle,
        prereleases=settings.get("pre", "").lower() in _TRUE or options.pre,
    )


def _local(link: str, base: Path) -> str:
    """A find-links value as the installers resolve it: URLs as they are, paths relative to ``base``."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", link, re.I):
        return link
    return str((base / Path(link).expanduser()).resolve())


class _Options:
    """The options that say where packages come from, in installer arguments and requirements files."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.indexes: list[str] = []
        self.find_links: list[str] = []
        self.trusted_hosts: list[str] = []
        self.no_index = False
        self.pre = False

    def read_args(self, args: Sequence[str], base: Path | None = None) -> None:
        tokens = list(args)
        while tokens:
            name, _, value = tokens.pop(0).partition("=")
            if name.startswith("-") and not name.startswith("--") and len(name) > 2 and not value:
                name, value = name[:2], name[2:]  # -fwheels
            takes = name in ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host")
            if takes and not value and tokens:
                value = tokens.pop(0)
            self._one(name, value, base or self.cwd)

    def _one(self, name: str, value: str, base: Path) -> None:
        if name == "--no-index":
            self.no_index = True
        elif name == "--pre":
            self.pre = True
        elif name in ("-i", "--index-url", "--extra-index-url") and value:
            self.indexes.append(value)
        elif name in ("-f", "--find-links") and value:
            relative = base / value
            self.find_links.append(_local(str(relative) if relative.exists() else value, self.cwd))
        elif name == "--trusted-host" and value:
            self.trusted_hosts.append(value)

    def read_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return  # the requirements reader reports unreadable files
        for _, raw in logical_lines(text):  # pip's joining and comments, in linear time (pip's own is quadratic)
            if not raw.startswith("-"):
                continue
            line = expand_variables(raw)
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            self.read_args(words, base=path.resolve().parent)


def offered_wheels(
    sources: Sources,
    projects: Iterable[str],
    *,
    keep: Callable[[str], bool] | None = None,
    timeout: float = _TIMEOUT,
) -> dict[str, tuple[OfferedWheel, ...] | str]:
    """Every wheel the sources offer for each project (only those whose file name ``keep`` accepts: a big project
    lists thousands), or why they could not all be read (redacted). Pages are read concurrently."""
    names = sorted({canonicalize_name(project) for project in projects})
    places: list[tuple[str, str]] = [(url, "index") for url in sources.indexes]
    places += [(link, "links") for link in sources.find_links]
    jobs = [(name, place, kind) for name in names for place, kind in places]
    reader = _Reader(sources, timeout, keep or (lambda _: True))
    found: dict[str, list[OfferedWheel]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    if not jobs:
        return {name: () for name in names}
    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        results = pool.map(lambda job: reader.read(*job), jobs)
        for (name, _, _), result in zip(jobs, results, strict=True):
            if isinstance(result, str):
                failed.setdefault(name, result)
            else:
                found[name].extend(wheel for owner, wheel in result if owner == name)
    return {name: failed.get(name) or tuple(found[name]) for name in names}


@dataclass(frozen=True)
class ListedFile:
    """One file (a wheel or a source distribution) the sources list for a project."""

    filename: str
    version: Version
    yanked: bool


@dataclass(frozen=True)
class ProjectListing:
    """What the sources list of one project: whether any of them has it, the files they list for it (wheels and
    source distributions), and the other projects seen on the way (those of a find-links location, the folders of
    a ``file://`` index): names to suggest for a misspelt one."""

    project: NormalizedName
    found: bool
    files: tuple[ListedFile, ...]
    names_seen: frozenset[NormalizedName]

    def versions(self, *, yanked: bool = True) -> list[Version]:
        """Every version some file of the project has, in order (the yanked ones too unless told otherwise)."""
        return sorted({file.version for file in self.files if yanked or not file.yanked})


def project_listing(sources: Sources, project: str, *, timeout: float = 10.0) -> ProjectListing | str:
    """What the sources list of ``project`` (an index's project page, every find-links location), or why they
    could not all be read (redacted): "not there" is only said when every source answered. Read concurrently."""
    name = canonicalize_name(project)
    places = [(url, "index") for url in sources.indexes] + [(link, "links") for link in sources.find_links]
    reader = _Reader(sources, timeout, lambda _: True)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(places)))) as pool:
        results = list(pool.map(lambda place: reader.listing(name, *place), places))
    failed = [result for result in results if isinstance(result, str)]
    if failed:
        return failed[0]
    listed = [result for result in results if not isinstance(result, str)]
    files = [
        ListedFile(filename, found[1], bool(yanked))
        for result in listed
        for owner, (filename, _, yanked) in result.entries
        if owner == name and (found := _name_version(filename)) is not None
    ]
    seen = frozenset(other for result in listed for other in result.names) - {name}
    return ProjectListing(name, any(result.found for result in listed), tuple(files), seen)


def projects_present(
    sources: Sources, names: Sequence[str], *, limit: int = 16, timeout: float = 5.0
) -> list[NormalizedName]:
    """Those of ``names`` some index of ``sources`` has a project page for, in the order given. A remote index is
    asked at most ``limit`` times in all (a HEAD request per name and index, the first names first: never the
    whole listing, which is huge on PyPI); a local index's folders are looked at without limit. Find-links
    locations are not asked (:func:`project_listing` saw their names)."""
    wanted = list(dict.fromkeys(canonicalize_name(name) for name in names))
    jobs = [(name, index) for name in wanted for index in sources.indexes]
    local = [job for job in jobs if urlsplit(job[1]).scheme in ("", "file")]
    jobs = local + [job for job in jobs if job not in local][:limit]
    if not jobs:
        return []
    reader = _Reader(sources, timeout, lambda _: True)
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        answers = list(pool.map(lambda job: reader.has_page(*job), jobs))
    present = {name for (name, _), answer in zip(jobs, answers, strict=True) if answer}
    return [name for name in wanted if name in present]


class _Listed(NamedTuple):
    found: bool  # the place has the project (a project page, or a file of it)
    entries: list[tuple[NormalizedName, _Entry]]  # (the project, the link) of each file
    names: set[NormalizedName]  # every project seen there


class _Resolver:
    """One DNS lookup per host and port for a whole read, shared by every page's connection.

    Pages are read concurrently, and each lookup may stall for the resolver's timeout (5 s where one DNS answer in
    a few dozen gets lost, as inside Docker's NAT on some networks): a dozen lookups at once made one stall in two
    reads. The name is still what TLS checks; only the address is reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, int], list[tuple[str, int]]] = {}

    def addresses(self, host: str, port: int) -> list[tuple[str, int]]:
        with self._lock:  # one lookup at a time: the threads that wait take its answer
            if (host, port) not in self._answers:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                self._answers[host, port] = [(str(info[4][0]), int(info[4][1])) for info in infos]
            return self._answers[host, port]

    def connect(
        self, address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        """:func:`socket.create_connection` on the addresses looked up once, tried in the resolver's order."""
        failure: OSError | None = None
        for ip_address in self.addresses(*address):
            try:
                return socket.create_connection(ip_address, timeout, source_address)
            except OSError as exc:
                failure = exc
        raise failure or OSError(f"no address for {address[0]}")


class _Connect:
    """urllib's connection factory (as typeshed spells it) for one read: plain HTTP, or HTTPS with ``context``, each
    connection made through the read's :class:`_Resolver` (http.client's ``_create_connection`` hook)."""

    def __init__(self, resolver: _Resolver, context: ssl.SSLContext | None = None) -> None:
        self._resolver = resolver
        self._context = context

    def __call__(
        self,
        host: str,
        /,
        *,
        port: int | None = None,
        timeout: float = _TIMEOUT,
        source_address: tuple[str, int] | None = None,
        blocksize: int = 8192,
    ) -> http.client.HTTPConnection:
        if self._context is None:
            connection = http.client.HTTPConnection(host, port, timeout, source_address, blocksize=blocksize)
        else:
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, source_address=source_address, context=self._context, blocksize=blocksize
            )
        connection._create_connection = self._resolver.connect  # type: ignore[attr-defined]  # http.client's hook
        return connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, resolver: _Resolver) -> None:
        super().__init__()
        self._connect = _Connect(resolver)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connect, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, resolver: _Resolver, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._connect = _Connect(resolver, context)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connect, req)


class _Reader:
    def __init__(self, sources: Sources, timeout: float, keep: Callable[[str], bool]) -> None:
        self.sources = sources
        self.timeout = timeout
        self.keep = keep
        self._openers: dict[bool, urllib.request.OpenerDirector] = {}
        self._resolver = _Resolver()
        self._lock = threading.Lock()

    def read(self, project: NormalizedName, place: str, kind: str) -> list[tuple[NormalizedName, OfferedWheel]] | str:
        """The wheels ``place`` lists for ``project`` (an index's project page, or a find-links location)."""
        try:
            page = self._page(_project_url(place, project) if kind == "index" else place, project_page=kind == "index")
        except _Unreadable as exc:
            return str(exc)
        return _wheels(*page, keep=self.keep) if page else []

    def listing(self, project: NormalizedName, place: str, kind: str) -> _Listed | str:
        """What ``place`` lists of ``project``: whether it has the project, its files, the other projects seen."""
        try:
            if kind == "index":
                page = self._page(_project_url(place, project), project_page=True)
                entries = _entries(*page) if page else []
                return _Listed(page is not None, [(project, entry) for entry in entries], _local_projects(place))
            page = self._page(place, project_page=False)
            owned = [(owner, entry) for entry in (_entries(*page) if page else []) if (owner := _owner(entry[0]))]
            return _Listed(any(owner == project for owner, _ in owned), owned, {owner for owner, _ in owned})
        except _Unreadable as exc:
            return str(exc)

    def has_page(self, project: NormalizedName, index: str) -> bool | None:
        """Whether ``index`` has a page for ``project`` (a HEAD request; a local index's folder), None when it does
        not say (an error, no answer)."""
        url = _project_url(index, project)
        if urlsplit(url).scheme in ("", "file"):
            return self._local(url, project_page=True) is not None
        try:
            with self._opener(urlsplit(url).netloc.rsplit("@", 1)[-1]).open(
                _request(url, method="HEAD"), timeout=self.timeout
            ):
                return True
        except urllib.error.HTTPError as exc:
            exc.close()
            return False if exc.code in (404, 410) else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _page(self, url: str, *, project_page: bool) -> tuple[str, str, bytes] | None:
        """(the page's URL, its content type, its bytes); None when it does not exist."""
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            return self._local(url, project_page=project_page)
        try:
            with self._opener(parts.netloc.rsplit("@", 1)[-1]).open(_request(url), timeout=self.timeout) as response:
                data = response.read(_MAX_PAGE + 1)
                if response.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                return response.geturl(), response.headers.get("Content-Type", ""), data
        except urllib.error.HTTPError as exc:
            exc.close()  # the error holds the open response (Python 3.14 warns when it is left to the collector)
            if exc.code in (404, 410):
                return None
            raise _Unreadable(f"{redact(url)} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Unreadable(f"{redact(url)} could not be read: {redact(str(reason))}") from None

    def _opener(self, host: str) -> urllib.request.OpenerDirector:
        """urllib's opener (proxies from the environment, redirects) with one TLS context for each kind of host
        (making one costs tens of milliseconds) and the read's one lookup per host."""
        trusted = host.split(":", maxsplit=1)[0] in self.sources.trusted_hosts or host in self.sources.trusted_hosts
        with self._lock:
            if trusted not in self._openers:
                ca = self.sources.ca_bundle
                context = ssl.create_default_context(cafile=ca if ca and Path(ca).is_file() else None)
                if trusted:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE  # the user said so (--trusted-host), as pip and uv do
                self._openers[trusted] = urllib.request.build_opener(
                    _HTTPHandler(self._resolver), _HTTPSHandler(self._resolver, context)
                )
            return self._openers[trusted]

    @staticmethod
    def _local(url: str, *, project_page: bool) -> tuple[str, str, bytes] | None:
        path = _local_path(url)
        try:
            if path.is_dir() and (project_page or (path / "index.html").is_file()):
                path = path / "index.html"  # a file:// index, as pip reads one
            elif path.is_dir():
                # A find-links directory: its files are the links.
                links = "".join(f'<a href="{entry.name}">{entry.name}</a>' for entry in sorted(path.iterdir()))
                return path.as_uri() + "/", "text/html", links.encode()
            if not path.is_file():
                return None
            return path.as_uri(), "text/html", path.read_bytes()[: _MAX_PAGE + 1]
        except OSError as exc:
            raise _Unreadable(f"{path} could not be read: {exc.strerror or exc}") from None


def _project_url(index: str, project: str) -> str:
    return index.rstrip("/") + f"/{project}/"


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    return Path(url2pathname(parts.path)) if parts.scheme == "file" else Path(url)


def _local_projects(index: str) -> set[NormalizedName]:
    """The projects a local (``file://``) index has: its folders (cheap to list, unlike a remote index's root)."""
    if urlsplit(index).scheme not in ("", "file"):
        return set()
    try:
        return {canonicalize_name(entry.name) for entry in _local_path(index).iterdir() if entry.is_dir()}
    except OSError:
        return set()


def _request(url: str, method: str = "GET") -> urllib.request.Request:
    """A request for ``url`` with its credentials (from the URL, else the user's netrc) in a header, not the URL."""
    parts = urlsplit(url)
    clean = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))
    request = urllib.request.Request(clean, headers={"Accept": _ACCEPT, "Accept-Encoding": "gzip"}, method=method)
    userinfo = unquote(parts.netloc.rsplit("@", 1)[0]) if "@" in parts.netloc else _netrc_login(parts.hostname)
    if userinfo:
        request.add_header("Authorization", "Basic " + b64encode(userinfo.encode()).decode())
    return request


def _netrc_login(host: str | None) -> str | None:
    """``login:password`` for ``host`` from the user's netrc (``$NETRC`` or ``~/.netrc``), as pip and uv use it."""
    if not host:
        return None
    try:
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return f"{entry[0]}:{entry[2]}" if entry and entry[2] is not None else None


class _Unreadable(Exception):
    """A source could not be read (internal: the caller gets the message)."""


# (file name, Requires-Python, yanked) of one link of a page
_Entry = tuple[str, object, object]


def _entries(url: str, content_type: str, data: bytes) -> list[_Entry]:
    """The files a simple index page (or a find-links page) lists."""
    if not data:
        return []
    if len(data) > _MAX_PAGE:
        raise _Unreadable(f"{redact(url)} is larger than {_MAX_PAGE // (1024 * 1024)} MB")
    if content_type.split(";", maxsplit=1)[0].strip() == _JSON:
        try:
            files = json.loads(data)["files"]
            return [(str(f["filename"]), f.get("requires-python"), f.get("yanked")) for f in files]
        except (ValueError, KeyError, TypeError) as exc:
            raise _Unreadable(f"{redact(url)} is not a valid simple index page ({exc})") from None
    parser = _Links()
    parser.feed(data.decode("utf-8", errors="replace"))
    return list(parser.entries)


def _wheels(
    url: str, content_type: str, data: bytes, *, keep: Callable[[str], bool]
) -> list[tuple[NormalizedName, OfferedWheel]]:
    out = []
    for filename, requires_python, yanked in _entries(url, content_type, data):
        wheel = _wheel(filename, requires_python, bool(yanked)) if keep(filename) else None
        if wheel is not None:
            out.append(wheel)
    return out


# What a source distribution's file name may end with (an .egg or an installer is no distribution pip installs).
_ARCHIVES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


def _name_version(filename: str) -> tuple[NormalizedName, Version] | None:
    """The project and version of a wheel or source distribution, by its file name; None for any other file."""
    if filename.endswith(".whl"):
        try:
            name, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        return name, version
    suffix = next((suffix for suffix in _ARCHIVES if filename.endswith(suffix)), None)
    project, _, written = filename.removesuffix(suffix or "").rpartition("-")
    if not (suffix and project):
        return None
    try:
        return canonicalize_name(project), Version(written)
    except InvalidVersion:
        return None


def _owner(filename: str) -> NormalizedName | None:
    found = _name_version(filename)
    return found[0] if found else None


def _wheel(filename: str, requires_python: object, yanked: bool) -> tuple[NormalizedName, OfferedWheel] | None:
    if not filename.endswith(".whl"):
        return None
    try:
        name, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    try:
        specifier = SpecifierSet(requires_python) if isinstance(requires_python, str) and requires_python else None
    except InvalidSpecifier:
        specifier = None  # pip ignores a Requires-Python it cannot parse
    return name, OfferedWheel(filename, version, frozenset(tags), specifier, yanked)


class _Links(HTMLParser):
    """The anchors of a PEP 503 page: (file name, data-requires-python, data-yanked present)."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[tuple[str, str | None, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = dict(attrs)
        href = values.get("href")
        if not href:
            return
        path = urlsplit(urljoin("https://x/", href)).path
        filename = unquote(path.rsplit("/", 1)[-1])
        self.entries.append((filename, values.get("data-requires-python"), "data-yanked" in values))
