"""What a module left in a layer refers to: the modules it imports (``import``/``from`` statements anywhere in it,
read with :mod:`ast`: at the top, in functions, under ``if TYPE_CHECKING``), and the strings it spells (module
names handed to ``importlib``, file and directory names read by path: ``Path(__file__).parent / "data"``,
``importlib.resources.files("pkg") / "x.json"``).

A static scan: a name built at run time (``"pkg." + name``) is not seen; the proof import after slimming is there
for those.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Quoted strings on one line, without escapes: module names and paths are spelled so. Docstrings and comments are
# left out first (their examples name paths that nothing reads).
_STRING = re.compile(r"""(['"])([^'"\\\n]{1,300})\1""")
_DOCSTRING = re.compile(r"""(\"\"\"|\'\'\')[\s\S]*?\1""")
_COMMENT = re.compile(r"^[ \t]*#.*$", re.M)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
# Import statements, for source that this interpreter's ast cannot parse (newer syntax than the host's Python).
_IMPORT_LINE = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)
_FROM_LINE = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)


@dataclass(frozen=True)
class References:
    modules: frozenset[str]  # absolute module names imported (for ``from a import b``: both a and a.b)
    strings: frozenset[str]  # the strings spelled in it (outside docstrings and comments)
    exported: frozenset[str] = frozenset()  # the names its ``__all__`` lists (a star import imports them)


def module_references(text: str, module: str, *, is_package: bool, parse: bool) -> References:
    """The references of the module ``module`` (dotted name; ``is_package`` for an ``__init__``) whose source is
    ``text``. ``parse=False`` leaves the imports out (the caller knows none of them can matter)."""
    code = _COMMENT.sub("", _DOCSTRING.sub("", text))
    strings = frozenset(match.group(2) for match in _STRING.finditer(code))
    if not parse:
        return References(frozenset(), strings)
    package = module if is_package else module.rpartition(".")[0]
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return References(frozenset(_imports_by_lines(text, package)), strings)
    return References(frozenset(_imports(tree, package)), strings, frozenset(_exported(tree)))


def dotted_names(strings: frozenset[str]) -> set[str]:
    """The strings that look like dotted module names (``"pkg.sub"``)."""
    return {s for s in strings if _DOTTED.match(s)}


def _statements(tree: ast.Module) -> list[ast.stmt]:
    """Every statement, nested ones too (imports are statements: expressions need not be walked)."""
    out: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        out.append(node)
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, name, None)
            if isinstance(children, list):
                for child in children:
                    if isinstance(child, ast.stmt):
                        pending.append(child)
                    else:  # except handlers and match cases hold statements
                        pending.extend(c for c in getattr(child, "body", []) if isinstance(c, ast.stmt))
    return out


def _imports(tree: ast.Module, package: str) -> set[str]:
    out: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base:
                out.add(base)
                out.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def _exported(tree: ast.Module) -> set[str]:
    """The strings of the module's own ``__all__`` (assigned, annotated or extended at the top level)."""
    out: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue
        if isinstance(value, (ast.List, ast.Tuple)):
            out.update(e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return out


def _imports_by_lines(text: str, package: str) -> set[str]:
    out: set[str] = set()
    for match in _IMPORT_LINE.finditer(text):
        out.update(part.split()[0] for part in match.group(1).split(",") if part.split())
    for match in _FROM_LINE.finditer(text):
        relative = match.group(1)
        level = len(relative) - len(relative.lstrip("."))
        base = _absolute(relative.lstrip("."), level, package)
        if base:
            out.add(base)
            names = match.group(2).strip("() \t\n")
            out.update(f"{base}.{name.split()[0]}" for name in names.split(",") if name.split() and name.strip() != "*")
    return out


def _absolute(name: str, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><name> import``, in ``package``."""
    if level == 0:
        return name or None
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base) or None
