"""Debug information out of native libraries with GNU binutils' ``strip --strip-debug``: the host's (or the build
image's) own, for the target's machine. Never a hand-written ELF rewriter: this module only finds the tool, runs it
on a copy, and keeps the copy when it maps exactly what the original maps (:func:`.elf_layout.same_load_image`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine.process import run
from cdk_pip_layer.engine.target import LambdaTarget

# The BFD target name binutils gives each Lambda machine's ELF files.
_BFD_TARGETS = {"x86_64": "elf64-x86-64", "aarch64": "elf64-littleaarch64"}
_TIMEOUT = 300.0


@dataclass(frozen=True)
class StripTool:
    """A GNU strip that reads and writes the target machine's ELF files."""

    path: str
    version: str  # its first --version line: the same version gives the same bytes

    def strip(self, source: Path, dest: Path) -> str | None:
        """Write ``source`` without debug information to ``dest`` (``source`` is never changed: an installer may
        have hard-linked it into its cache). Returns why it failed, or None."""
        done = run(
            [self.path, "--strip-debug", "--enable-deterministic-archives", "-o", dest, source], timeout=_TIMEOUT
        )
        if not done.ok:
            dest.unlink(missing_ok=True)
            return " ".join(done.tail(2)) or f"{self.path} exited with {done.returncode}"
        dest.chmod(source.stat().st_mode & 0o7777)
        return None


def find_strip(target: LambdaTarget) -> StripTool | str:
    """The strip for ``target``'s machine: ``<machine>-linux-gnu-strip`` (Debian's cross binutils), else ``strip``
    when it is GNU strip and supports the machine. Returns why there is none otherwise."""
    wanted = _BFD_TARGETS.get(target.machine, f"elf64-{target.machine}")
    seen: list[str] = []
    for name in (f"{target.machine}-linux-gnu-strip", "strip"):
        path = shutil.which(name)
        if path is None or path in seen:
            continue
        seen.append(path)
        version = run([path, "--version"], timeout=30)
        first = version.output.splitlines()[0] if version.output else ""
        if not version.ok or "GNU strip" not in first:
            continue
        usage = run([path, "--help"], timeout=30)
        if wanted in usage.output.split():
            return StripTool(path, first.strip())
    found = f" ({', '.join(seen)} cannot write {wanted})" if seen else ""
    package = f"binutils-{target.machine.replace('_', '-')}-linux-gnu"
    return (
        f"no strip for {target.machine} ELF files here{found}: debug information stays in native libraries "
        f"(install GNU binutils for {target.machine}, e.g. Debian's {package})"
    )
