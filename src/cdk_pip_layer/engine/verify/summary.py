"""The findings as a person reads them: one group per distribution (its name and version, then what was found in it),
and a finding repeated over many files said once, with their number and a couple of them. Findings about the layer
as a whole and about files no distribution owns form a group of their own.

Only the printed form: the report (``--json``, ``layer.report.json``) keeps every finding, one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cdk_pip_layer.engine.findings import CHECKS, Finding, Severity, printable

# The subject of a finding about the whole layer (not the zip's path: a build verifies a staged copy, gone when the
# finding is read; the summary's first line names the zip verified), and the group of findings no distribution owns.
LAYER = "the layer"
_EXAMPLES = 2

_Kind = tuple[Severity, str, str, str]  # severity, check, problem, hint: findings alike but for their subject


def finding_lines(findings: Sequence[Finding], distributions: Iterable[str]) -> list[str]:
    """The findings, grouped: a header per group ("numpy==2.3.0: 38 errors"), then one indented line per kind of
    finding. ``distributions`` are the pins (``name==version``) of the layer's distributions: a finding about one
    (its subject is the pin) or about one of its files (``path (pin)``) goes into its group; the groups with errors
    come first, the layer's own group before the distributions."""
    pins = set(distributions)
    groups: dict[str, list[tuple[str, Finding]]] = {}
    for finding in findings:
        group, subject = _attribute(finding.subject, pins)
        groups.setdefault(group, []).append((subject, finding))

    def order(group: str) -> tuple[bool, bool, str]:
        errors = any(f.severity is Severity.ERROR for _, f in groups[group])
        return (not errors, group != LAYER, group.lower())

    lines: list[str] = []
    for group in sorted(groups, key=order):
        items = groups[group]
        lines.append(f"{printable(group)}: {_counts(f for _, f in items)}")
        lines += _kind_lines(items)
    return lines


def _attribute(subject: str, pins: set[str]) -> tuple[str, str]:
    """The group of a finding's subject and what its line names (nothing for the group itself)."""
    if subject in pins:
        return subject, ""
    head, paren, tail = subject.rpartition(" (")
    if paren and tail.endswith(")") and tail[:-1] in pins:
        return tail[:-1], head
    return LAYER, "" if subject == LAYER else subject


def _counts(findings: Iterable[Finding]) -> str:
    severities = [f.severity for f in findings]
    parts = []
    for severity in Severity:
        count = severities.count(severity)
        if count:
            parts.append(f"{count} {severity.value}{'' if count == 1 else 's'}")
    return ", ".join(parts)


def _kind_lines(items: Sequence[tuple[str, Finding]]) -> list[str]:
    """One line per kind of finding (errors first, then by check), naming its subjects: one by name, many by their
    number and the first few."""
    subjects: dict[_Kind, list[str]] = {}
    for subject, finding in items:
        kind = (finding.severity, finding.check, finding.problem, finding.hint)
        named = subjects.setdefault(kind, [])
        if subject not in named:
            named.append(subject)
    checks = list(CHECKS)

    def order(kind: _Kind) -> tuple[int, int, str]:
        severity, check, _, _ = kind
        return (list(Severity).index(severity), checks.index(check) if check in checks else len(checks), check)

    return [_line(kind, subjects[kind]) for kind in sorted(subjects, key=order)]


def _line(kind: _Kind, subjects: list[str]) -> str:
    severity, check, problem, hint = kind
    named = [printable(subject) for subject in subjects if subject]
    if len(named) > 1:
        noun = "files" if all("/" in s for s in named) else "modules" if check == "import" else "subjects"
        more = ", …" if len(named) > _EXAMPLES else ""
        who = f"{len(named)} {noun} ({', '.join(named[:_EXAMPLES])}{more}): "
    else:
        who = f"{named[0]}: " if named else ""
    text = f"  {severity.value}: [{check}] {who}{printable(problem)}"
    return f"{text} ({printable(hint)})" if hint else text
