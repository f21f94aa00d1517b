"""Ask pip itself whether it accepts each requirements file given: print one JSON list of verdicts, "ok" or why not.

Run with the interpreter whose pip is asked (offline: no index is queried). It reads every file with pip's own
parser, builds each requirement as pip's install command does, and evaluates its markers; any index URL is parsed
as pip parses it when it queries the index.
"""

from __future__ import annotations

import json
import sys

from pip._internal.index.collector import LinkCollector
from pip._internal.index.package_finder import PackageFinder
from pip._internal.models.link import Link
from pip._internal.models.search_scope import SearchScope
from pip._internal.models.selection_prefs import SelectionPreferences
from pip._internal.network.session import PipSession
from pip._internal.req.constructors import install_req_from_parsed_requirement
from pip._internal.req.req_file import parse_requirements


def verdict(path: str) -> str:
    session = PipSession()
    scope = SearchScope.create(find_links=[], index_urls=[], no_index=False)
    finder = PackageFinder.create(
        link_collector=LinkCollector(session=session, search_scope=scope),
        selection_prefs=SelectionPreferences(allow_yanked=False),
    )
    try:
        for parsed in parse_requirements(path, session=session, finder=finder):
            install_req_from_parsed_requirement(parsed).match_markers()
        for url in finder.index_urls:
            Link(url).netloc  # noqa: B018 - what pip does first with an index URL
            __import__("urllib.parse").parse.urlsplit(url).port  # noqa: B018
    except BaseException as exc:  # a refusal (InstallationError) or pip's own crash, SystemExit of optparse included
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[:1]}"
    return "ok"


if __name__ == "__main__":
    print(json.dumps([verdict(path) for path in sys.argv[1:]]))
