"""The documentation holds together: its option tables are the declaration's, its relative links lead somewhere, and
the README gives CI its test command.

- The reference tables of the build options are made from ``engine/options.py`` by ``scripts/doc_options.py``; a
  page whose table differs from what the script makes fails here (``python scripts/doc_options.py --write``).
- Every relative link in the README, CONTRIBUTING.md, CHANGELOG.md and ``docs/`` names a file that exists, and an
  anchor (``#…``) that is a heading of that file, as GitHub makes anchors.
- ``docs/index.md`` links every page under ``docs/``: a page no one can find from the index is not documentation.
- CONTRIBUTING.md's module map names every package and module of ``src/cdk_pip_layer``, and nothing that is not
  there.
- ``.ci/run`` reads the test command from the one ``bash scripts/setup.sh --docker && …`` line in the README's
  code blocks.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import cdk_pip_layer

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])
README_LIMIT = 300  # lines: the README is the user's first screen, the rest is the docs' job


def _doc_options() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doc_options", REPO / "scripts" / "doc_options.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the option tables ----------------------------------------------------------------------------------------------


def test_the_option_tables_are_the_declarations() -> None:
    assert _doc_options().stale_pages(REPO) == [], "run: python scripts/doc_options.py --write"


def test_every_table_is_on_a_page() -> None:
    doc_options = _doc_options()
    text = "".join((REPO / page).read_text(encoding="utf-8") for page in doc_options.PAGES)
    for name in doc_options.TABLES:
        assert f"<!-- doc_options: {name} -->" in text


def test_a_table_that_drifted_is_found(tmp_path: Path) -> None:
    doc_options = _doc_options()
    for page in doc_options.PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / page, tmp_path / page)
    page = tmp_path / "docs/reference/cli.md"
    page.write_text(page.read_text(encoding="utf-8").replace("`--no-cache`", "`--no-layer-cache`"), encoding="utf-8")
    assert doc_options.stale_pages(tmp_path) == ["docs/reference/cli.md"]


def test_every_option_is_in_the_tables() -> None:
    from cdk_pip_layer.engine.options import BuildSettings, LayerBuildOptions, public_options

    doc_options = _doc_options()
    construct, flags, doors = doc_options.construct_options(), doc_options.cli_build_flags(), doc_options.front_doors()
    for name, _ in (*public_options(LayerBuildOptions), *public_options(BuildSettings)):
        assert f"| `{name}` |" in doors
        assert f"`{name}`" in flags or name == "index"  # the index is three flags (index_url, …)
        if name not in ("requirements", "runtime", "architecture", "image", "docker_network"):
            assert f"| `{name}` |" in construct


def _cli_parser_with(monkeypatch: pytest.MonkeyPatch, change: Callable[[argparse.ArgumentParser], object]) -> None:
    """The command line's parser, changed by ``change`` (given it and each command's parser) wherever it is made."""
    from cdk_pip_layer import cli

    made = cli._parser

    def changed() -> argparse.ArgumentParser:
        parser = made()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for command in (parser, *commands.choices.values()):
            change(command)
        return parser

    monkeypatch.setattr(cli, "_parser", changed)


def test_a_flag_added_to_the_command_line_without_docs_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI-only flags (-o, --json, verify's) are documented from argparse itself, not by hand."""
    _cli_parser_with(monkeypatch, lambda command: command.add_argument("--brand-new", help="a flag of no table"))
    assert _doc_options().stale_pages(REPO) == ["docs/reference/cli.md"]


@pytest.mark.parametrize("gone", ["--report", "--output", "--json", "--layer-name"])
def test_a_documented_flag_gone_from_the_command_line_is_found(monkeypatch: pytest.MonkeyPatch, gone: str) -> None:
    def drop(command: argparse.ArgumentParser) -> None:
        for action in list(command._actions):
            if gone in action.option_strings:
                command._remove_action(action)
                for name in action.option_strings:
                    command._option_string_actions.pop(name, None)

    _cli_parser_with(monkeypatch, drop)
    assert _doc_options().stale_pages(REPO) == ["docs/reference/cli.md"]


# --- links ----------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (but ``-`` and ``_``), spaces as ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    return [target for target in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def test_the_slugs_are_githubs() -> None:
    assert _slug("The construct's Docker fallback") == "the-constructs-docker-fallback"
    assert _slug("`cdk-pip-layer publish`") == "cdk-pip-layer-publish"
    assert _slug("The asset hash: a custom hash over the inputs") == "the-asset-hash-a-custom-hash-over-the-inputs"
    assert _slug("`build_layer`") == "build_layer"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO)}")
    assert broken == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading) [no file](missing.md) [no heading](other.md#nowhere) `[code](x.md)`\n"
        "```\n[in a block](y.md)\n```\n[web](https://example.com/x.md)\n",
        encoding="utf-8",
    )
    assert _links(page) == ["other.md#a-heading", "missing.md", "other.md#nowhere"]
    assert "nowhere" not in _anchors(tmp_path / "other.md")


def _not_linked_from(index: Path) -> list[str]:
    """The pages in the index's folder and below that the index does not link."""
    linked = {(index.parent / target.partition("#")[0]).resolve() for target in _links(index)}
    pages = {page.resolve() for page in index.parent.rglob("*.md")} - {index.resolve()}
    return sorted(page.relative_to(index.parent.resolve()).as_posix() for page in pages - linked)


def test_the_index_links_every_page() -> None:
    assert _not_linked_from(REPO / "docs" / "index.md") == []


def test_a_page_missing_from_the_index_is_found(tmp_path: Path) -> None:
    (tmp_path / "how-to").mkdir()
    (tmp_path / "how-to" / "linked.md").write_text("# Linked\n", encoding="utf-8")
    (tmp_path / "how-to" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    index = tmp_path / "index.md"
    index.write_text("- [Linked](how-to/linked.md#linked)\n- `[not a link](how-to/orphan.md)`\n", encoding="utf-8")
    assert _not_linked_from(index) == ["how-to/orphan.md"]


# --- CONTRIBUTING.md's module map ----------------------------------------------------------------------------------

# The package tested: src/ in a checkout, the installed wheel where CI tests one from a copy without src/.
PACKAGE = Path(cdk_pip_layer.__file__).resolve().parent
_ENTRY = re.compile(r"^  (\S+)(?:\s|$)")
_MODULE = re.compile(r"(?<![\w/.])(\w+\.py)\b")


def _map_blocks(text: str) -> list[list[str]]:
    """The module map's code blocks (those whose first line names a folder of the package: ``src/cdk_pip_layer/``,
    ``engine/``), as lines."""
    blocks = [match.group(0).splitlines()[1:-1] for match in _FENCE.finditer(text)]
    return [lines for lines in blocks if lines and re.fullmatch(r"(src/cdk_pip_layer|[a-z_]+)/", lines[0])]


def _module_map(text: str) -> set[str]:
    """The package's modules and packages as the map names them, relative to ``src/cdk_pip_layer``: a block's
    entries (an indented name first on its line; a folder ends in ``/``), and, for a folder without a block of its
    own, the modules its description names (``protocol.py (…)``)."""
    named: set[str] = set()
    for lines in _map_blocks(text):
        root = "" if lines[0] == "src/cdk_pip_layer/" else lines[0]
        entry: str | None = None
        described: dict[str, set[str]] = {}
        for line in lines[1:]:
            match = _ENTRY.match(line)
            if match:
                entry = root + match.group(1)
                named.add(entry)
            if entry is not None and entry.endswith("/"):
                description = line[match.end() :] if match else line
                described.setdefault(entry, set()).update(_MODULE.findall(description))
        named |= {folder + module for folder, modules in described.items() for module in modules}
    return named


def _package_tree(package: Path) -> set[str]:
    """The package's modules and packages, relative to it (a package's ``__init__.py`` is the package itself)."""
    tree = set()
    for path in package.rglob("*.py"):
        where = path.relative_to(package)
        if "__pycache__" in where.parts:
            continue
        tree |= {"/".join(where.parts[: depth + 1]) + "/" for depth in range(len(where.parts) - 1)}
        if path.name != "__init__.py" or len(where.parts) == 1:
            tree.add(where.as_posix())
    return tree


def test_the_module_map_is_the_tree() -> None:
    named = _module_map((REPO / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    tree = _package_tree(PACKAGE)
    assert (sorted(tree - named), sorted(named - tree)) == ([], []), "(missing from the map, not in the tree)"


def test_a_map_that_drifted_is_found(tmp_path: Path) -> None:
    for where in ("__init__.py", "cli.py", "cdk/__init__.py", "cdk/construct.py", "engine/options.py",
                  "engine/layer/__init__.py", "engine/layer/slim.py", "engine/layer/strip.py"):  # fmt: skip
        (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / where).touch()
    text = (
        "```\nsrc/cdk_pip_layer/\n  __init__.py   the surface\n  cli.py        the command line (a .py file)\n"
        "  cdk/          the adapter: construct.py (PipLambdaLayer),\n                bundling.py (gone)\n"
        "  engine/       the engine\n```\n\n```\nengine/\n  options.py   the options\n"
        "  layer/       from files to a layer: slim.py\n```\n"
    )
    named = _module_map(text)
    assert sorted(_package_tree(tmp_path) - named) == ["engine/layer/strip.py"]
    assert sorted(named - _package_tree(tmp_path)) == ["cdk/bundling.py"]


# --- the README -----------------------------------------------------------------------------------------------------


def test_the_readme_is_a_first_screen() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_LIMIT
    assert "pip install cdk-pip-layer\n" in text
    assert text.index("pip install cdk-pip-layer") < text.index("## Working from a clone")


def _ci_test_command(tmp_path: Path, readme: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copyfile(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(tmp_path / ".ci" / "run"), "--print-test-command"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_ci_reads_the_readmes_test_command(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    run = _ci_test_command(tmp_path, readme)
    assert (run.returncode, run.stdout) == (0, ".venv/bin/python -m pytest -n 0 tests\n"), run.stderr


@pytest.mark.parametrize(
    ("readme", "command"),
    [
        ("# x\n\n```bash\nls\n```\n\n## Clone\n\n```bash\nbash scripts/setup.sh --docker && pytest tests\n```\n",
         "pytest tests"),
        ("```bash\nbash scripts/setup.sh --docker && a\nbash scripts/setup.sh --docker && b\n```\n", None),
        ("bash scripts/setup.sh --docker && outside a block\n", None),
        ("```bash\n# bash scripts/setup.sh --docker && a comment\n```\n", None),
        ("```bash\nbash scripts/setup.sh --docker && pytest 'tests'\n```\n", None),
    ],
    ids=["a later block", "two lines", "outside a block", "a comment", "quoting"],
)  # fmt: skip
def test_ci_takes_exactly_one_plain_line(tmp_path: Path, readme: str, command: str | None) -> None:
    run = _ci_test_command(tmp_path, readme)
    if command is None:
        assert run.returncode == 2
        assert "exactly one plain" in run.stderr
    else:
        assert (run.returncode, run.stdout) == (0, f"{command}\n"), run.stderr
