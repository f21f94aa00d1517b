"""Print (or check, or write) the reference tables of the build options, from their one declaration.

Every build option is declared once, in ``src/cdk_pip_layer/engine/options.py`` (``LayerBuildOptions`` and
``BuildSettings``: each field's ``Option`` holds its documentation and its command-line flags); the command line's
other flags (the global ones, ``build -o``, ``verify``'s and ``publish``'s) are read from its argparse parser, so a
flag added there without docs, or documented and gone, is found as well. The reference pages
under ``docs/reference/`` hold tables made from that declaration, between marker lines::

    <!-- doc_options: construct-options -->
    ...
    <!-- /doc_options -->

    python scripts/doc_options.py                # print every table
    python scripts/doc_options.py --check        # exit 1 when a page's table differs from the declaration
    python scripts/doc_options.py --write        # rewrite the tables in the pages

``tests/unit/test_docs.py`` runs the check, so a table cannot drift from the declaration.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cdk_pip_layer import cli
from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.options import (
    CONSTRUCT_LEAVES_OUT,
    CONTAINER_BUILDER_LEAVES_OUT,
    LOCAL_BUILDER_LEAVES_OUT,
    BuildSettings,
    Flag,
    LayerBuildOptions,
    declared,
    flag_arguments,
    public_options,
)

ROOT = Path(__file__).resolve().parents[1]
# The pages that hold tables, and which tables.
PAGES = ("docs/reference/construct-props.md", "docs/reference/cli.md", "docs/reference/python-api.md")
_BLOCK = re.compile(r"(<!-- doc_options: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /doc_options -->)", re.DOTALL)


def _defaults() -> dict[str, Any]:
    """Each public option's default, as ``parse`` gives it when the option is not passed."""
    options = LayerBuildOptions.parse(requirements="requirements.txt")
    settings = BuildSettings.parse()
    out: dict[str, Any] = {"runtime": options.runtime, "architecture": options.architecture}
    for cls, value in ((LayerBuildOptions, options), (BuildSettings, settings)):
        for name, _ in public_options(cls):
            if name not in out:
                out[name] = getattr(value, name)
    out["requirements"] = None  # required: no default
    return out


def _python(value: Any) -> str:
    """A default as Python source (what a caller passes to get it)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, IndexSettings):
        return "None" if value == IndexSettings() else repr(value)
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _cell(text: str) -> str:
    """Prose in a table cell: a ``|`` would end the cell, and ``<arch>`` would read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "\\<")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _options(*classes: type, leave_out: Mapping[str, str] | None = None) -> Iterator[tuple[str, str]]:
    for cls in classes:
        for name, doc in public_options(cls):
            if name not in (leave_out or {}):
                yield name, doc


def construct_options() -> str:
    """The build options and settings both constructs take, with their defaults."""
    defaults = _defaults()
    lines = [_row("prop", "default", "meaning"), _row("---", "---", "---")]
    for name, doc in _options(LayerBuildOptions, BuildSettings, leave_out=CONSTRUCT_LEAVES_OUT):
        if name in ("requirements", "runtime", "architecture"):
            continue  # the constructs' own parameters (typed for CDK's Runtime and Architecture too)
        lines.append(_row(f"`{name}`", f"`{_python(defaults[name])}`", _cell(doc)))
    return "\n".join(lines) + "\n"


def _flag_words(flag: Flag, dest: str) -> str:
    metavar = flag.metavar or (None if flag.kind == "off" else dest.upper())
    if flag.choices:
        metavar = "{" + ",".join(flag.choices) + "}"
    names = ", ".join(f"`{name}`" for name in flag.names)
    return f"{names} `{metavar}`" if metavar else names


def _cli_rows(cls: type) -> Iterator[str]:
    for item, declaration in declared(cls):
        for flag in declaration.flags:
            dest = flag.dest or (flag.names[0].lstrip("-").replace("-", "_") if item.name == "target" else item.name)
            repeatable = flag.kind in ("repeat", "paths")
            repeat = " (repeatable)" if repeatable and "repeatable" not in flag.help else ""
            # A flag that fills a part of an option (the index's URLs and hosts) names both.
            option = f"`{item.name}` (its `{dest}`)" if flag.dest and flag.dest != item.name else f"`{dest}`"
            yield _row(_flag_words(flag, dest), option, _cell(flag.help + repeat))


def cli_build_flags() -> str:
    """The flags of ``cdk-pip-layer build`` that set a build option or setting (the keyword argument each fills)."""
    lines = [_row("flag", "option", "meaning"), _row("---", "---", "---")]
    lines += _cli_rows(LayerBuildOptions)
    lines += _cli_rows(BuildSettings)
    return "\n".join(lines) + "\n"


# --- the command line's own flags, from its argparse parser ------------------------------------------------------


def _commands() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``cdk-pip-layer`` parser, and each command's (as the command line makes them now)."""
    parser = cli.command_parser()
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return parser, dict(subparsers[0].choices) if subparsers else {}


def _action_words(action: argparse.Action) -> str:
    """An argparse flag as its usage writes it: its names, then its value (``METAVAR``, ``{a,b}``, ``[=a|b]``)."""
    if not action.option_strings:  # a positional argument
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(f"`{name}`" for name in action.option_strings)
    if action.nargs == 0:  # a switch: store_true, store_false, count, version, help
        return names
    value = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    if action.nargs == "?":
        choices = "\\|".join(map(str, action.choices or ()))
        return f"{names} `[={choices or value}]`"
    return f"{names} `{value}`"


def _action_rows(parser: argparse.ArgumentParser, leave_out: frozenset[str]) -> str:
    """A table of ``parser``'s flags (their help is their meaning), but those whose ``dest`` is in ``leave_out``."""
    lines = [_row("flag", "meaning"), _row("---", "---")]
    for action in parser._actions:
        if action.dest in leave_out or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        meaning = str(action.help or "")
        if action.required and action.option_strings:
            meaning = f"(required) {meaning}"
        if isinstance(action, argparse._AppendAction) and "repeatable" not in meaning:
            meaning += " (repeatable)"
        lines.append(_row(_action_words(action), _cell(meaning)))
    return "\n".join(lines) + "\n"


def _declared_dests() -> frozenset[str]:
    """The ``dest`` of every flag made from the declaration of the build options and settings."""
    return frozenset(kwargs["dest"] for cls in (LayerBuildOptions, BuildSettings) for _, kwargs in flag_arguments(cls))


_GLOBAL = frozenset(cli.GLOBAL_FLAGS)


def cli_global_flags() -> str:
    """The flags every command takes, before it or after it."""
    parser, _ = _commands()
    return _action_rows(parser, frozenset())


def cli_build_own_flags() -> str:
    """The flags of ``cdk-pip-layer build`` that are not a build option's or setting's."""
    return _action_rows(_commands()[1]["build"], _GLOBAL | _declared_dests())


def cli_verify_flags() -> str:
    """The arguments and flags of ``cdk-pip-layer verify`` (the global flags are in their own table)."""
    return _action_rows(_commands()[1]["verify"], _GLOBAL)


def cli_publish_flags() -> str:
    """The arguments and flags of ``cdk-pip-layer publish`` (the global flags are in their own table)."""
    return _action_rows(_commands()[1]["publish"], _GLOBAL)


# The front doors, and the options each leaves out (with the reason).
_FRONT_DOORS: tuple[tuple[str, Mapping[str, str]], ...] = (
    ("`PipLambdaLayer`, `PipLambdaLayers`", CONSTRUCT_LEAVES_OUT),
    ("`build_layer`", {}),
    ("`PipBasedLambdaLayerLocalBuilder`", LOCAL_BUILDER_LEAVES_OUT),
    ("`PipBasedLambdaLayerContainerBuilder`", CONTAINER_BUILDER_LEAVES_OUT),
    ("`cdk-pip-layer build`", {}),
)


def front_doors() -> str:
    """Which front door takes which option; each one it does not take, and why."""
    names = [name for name, _ in _options(LayerBuildOptions, BuildSettings)]
    lines = [_row("option", *(door for door, _ in _FRONT_DOORS)), _row("---", *("---" for _ in _FRONT_DOORS))]
    reasons: dict[str, str] = {}
    for name in names:
        cells = []
        for _, leaves_out in _FRONT_DOORS:
            reason = leaves_out.get(name)
            if reason is None:
                cells.append("yes")
                continue
            note = reasons.setdefault(reason, f"[{len(reasons) + 1}]")
            cells.append(f"no {note}")
        lines.append(_row(f"`{name}`", *cells))
    lines.append("")
    lines += [f"- {note} {reason}." for reason, note in reasons.items()]
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "construct-options": construct_options,
    "cli-build-flags": cli_build_flags,
    "cli-global-flags": cli_global_flags,
    "cli-build-own-flags": cli_build_own_flags,
    "cli-verify-flags": cli_verify_flags,
    "cli-publish-flags": cli_publish_flags,
    "front-doors": front_doors,
}


def render(text: str) -> str:
    """``text`` with every table between its markers made again from the declaration."""

    def table(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
        return f"{match.group(1)}{TABLES[name]()}{match.group(4)}"

    return _BLOCK.sub(table, text)


def stale_pages(root: Path = ROOT) -> list[str]:
    """The pages whose tables differ from the declaration."""
    stale = []
    for page in PAGES:
        text = (root / page).read_text(encoding="utf-8")
        if render(text) != text:
            stale.append(page)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a page's table differs from the declaration")
    mode.add_argument("--write", action="store_true", help="rewrite the tables in the pages")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"{page}: its option tables differ from engine/options.py: run python scripts/doc_options.py --write")
        return 1 if stale else 0
    if args.write:
        for page in PAGES:
            path = ROOT / page
            text = path.read_text(encoding="utf-8")
            path.write_text(render(text), encoding="utf-8")
        return 0
    for name, make in TABLES.items():
        print(f"<!-- doc_options: {name} -->\n{make()}<!-- /doc_options -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
