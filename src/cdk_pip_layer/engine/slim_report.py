"""What slimming removed, per rule and per distribution, and what it kept on purpose: part of a build's result
(``LayerBuildResult.slim``), its JSON and its summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SlimCount:
    """The files and bytes one rule took from one distribution (bytes: for debug information, what stripping
    saved)."""

    rule: str
    distribution: str  # its pin, or "(no distribution)" for files no RECORD lists
    files: int
    bytes: int


@dataclass(frozen=True)
class SlimTotal:
    files: int
    bytes: int


@dataclass(frozen=True)
class SlimReport:
    """``counts``: per (rule, distribution); ``notes``: what was kept on purpose, or left as it was, and why;
    ``proof``: what the proof import checked (None when it did not run)."""

    counts: tuple[SlimCount, ...]
    bytes_before: int
    bytes_after: int
    notes: tuple[str, ...] = ()
    proof: str | None = None

    @property
    def files(self) -> int:
        return sum(c.files for c in self.counts if c.rule != "debug-info")

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.counts)

    def by_rule(self) -> dict[str, SlimTotal]:
        return _totals((c.rule, c) for c in self.counts)

    def by_distribution(self) -> dict[str, SlimTotal]:
        return _totals((c.distribution, c) for c in self.counts)

    def lines(self) -> list[str]:
        """The report in a few lines, for a build's summary."""
        share = f" ({100 * self.bytes / self.bytes_before:.0f}%)" if self.bytes_before else ""
        by_rule = self.by_rule()
        rules = "; ".join(
            f"{rule} {_files(t.files)}{' stripped' if rule == 'debug-info' else ''} {_size(t.bytes)}"
            for rule, t in by_rule.items()
        )
        stripped = by_rule["debug-info"].files if "debug-info" in by_rule else 0
        and_stripped = f" and stripped {stripped:,}" if stripped else ""
        dists = sorted(self.by_distribution().items(), key=lambda item: (-item[1].bytes, item[0]))
        shown = "; ".join(f"{pin} {_size(t.bytes)}" for pin, t in dists[:8])
        more = f"; … and {len(dists) - 8} more" if len(dists) > 8 else ""
        lines = [
            f"slim: removed {_files(self.files)}{and_stripped}, {_size(self.bytes)} of {_size(self.bytes_before)}"
            f"{share}: "
            f"{rules or 'nothing'}"
        ]
        if shown:
            lines.append(f"slim by distribution: {shown}{more}")
        lines.append(f"slim proof: {self.proof}" if self.proof else "slim proof: did not run")
        return lines

    def report_section(self) -> dict[str, object]:
        """The ``slim`` section of the layer report: what :meth:`to_dict` holds, with the totals removed
        (``removed_files`` counts removed files, not stripped ones; ``removed_bytes`` includes what stripping
        saved), per rule, and per distribution, largest first."""
        by_distribution = sorted(self.by_distribution().items(), key=lambda item: (-item[1].bytes, item[0]))
        return {
            **self.to_dict(),
            "removed_files": self.files,
            "removed_bytes": self.bytes,
            "by_rule": {rule: {"files": total.files, "bytes": total.bytes} for rule, total in self.by_rule().items()},
            "by_distribution": [
                {"distribution": pin, "files": total.files, "bytes": total.bytes} for pin, total in by_distribution
            ],
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "counts": [
                {"rule": c.rule, "distribution": c.distribution, "files": c.files, "bytes": c.bytes}
                for c in self.counts
            ],
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "notes": list(self.notes),
            "proof": self.proof,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SlimReport:
        counts = data.get("counts")
        notes = data.get("notes")
        proof = data.get("proof")
        return cls(
            counts=tuple(
                SlimCount(str(c["rule"]), str(c["distribution"]), int(c["files"]), int(c["bytes"]))
                for c in (counts if isinstance(counts, list) else [])
                if isinstance(c, dict)
            ),
            bytes_before=_int(data.get("bytes_before")),
            bytes_after=_int(data.get("bytes_after")),
            notes=tuple(str(n) for n in notes) if isinstance(notes, list) else (),
            proof=str(proof) if proof is not None else None,
        )


def _totals(items: Iterable[tuple[str, SlimCount]]) -> dict[str, SlimTotal]:
    files: dict[str, int] = {}
    size: dict[str, int] = {}
    for key, count in items:
        files[key] = files.get(key, 0) + count.files
        size[key] = size.get(key, 0) + count.bytes
    return {key: SlimTotal(files[key], size[key]) for key in files}


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def _files(count: int) -> str:
    return f"{count:,} file{'' if count == 1 else 's'}"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"
