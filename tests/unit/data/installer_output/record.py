"""Re-record the installer outputs that tests/unit/test_diagnosis.py replays offline.

Each case runs the engine's own pip or uv invocation (the argv a build uses) against the real PyPI, for
python3.11/x86_64, and saves what the installer printed. The ``sdist-*`` cases run the engine's source build
(``pip download``/``pip wheel`` with ``--use-pep517``, as ``engine/install/sdists.py`` runs them) of real releases
that do not build, with the interpreter named. Run it from the repository root when pip or uv change their wording
(name cases to record only those):

    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null UV_NO_CONFIG=1 \
        .venv/bin/python tests/unit/data/installer_output/record.py [case ...]

Older pips word some answers differently, and a build runs the pip of the interpreter it finds: the one a venv of
pyenv's Python holds (3.10.13: pip 23.0.1; 3.11.7 and 3.12.1: 23.2.1; 3.13.0: 24.2), Debian's (forky's python3.14:
26.2.2). ``--python PYTHON`` records the pip cases with the pip of that Python 3.11 interpreter instead, as
``pip-<its version>-<case>.txt``: give it a venv holding the pip to record,

    python3.11 -m venv /tmp/pip-23.0.1 && /tmp/pip-23.0.1/bin/python -m pip install pip==23.0.1
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null UV_NO_CONFIG=1 \
        .venv/bin/python tests/unit/data/installer_output/record.py --python /tmp/pip-23.0.1/bin/python [case ...]

Temporary paths in the output are replaced by <tmp>, the interpreter's path by <python> (its prefix by <prefix>).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.install.installers import Installer, InstallerSelection, PipInstaller
from cdk_pip_layer.engine.interpreters import find_interpreter
from cdk_pip_layer.engine.process import run
from cdk_pip_layer.engine.target import LambdaTarget

HERE = Path(__file__).resolve().parent
TARGET = LambdaTarget.parse("python3.11", "x86_64")
DEAD_INDEX = IndexSettings(index_url="http://reader:s3cret-pw@127.0.0.1:9/simple")
SIX_URL = (
    "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/"
    "six-1.16.0-py2.py3-none-any.whl"
)

# name -> (requirements, index settings, extra installer arguments)
CASES: dict[str, tuple[str, IndexSettings, tuple[str, ...]]] = {
    "no-such-project": ("cdk-pip-layer-no-such-package-4f1e==1.0\n", IndexSettings(), ()),
    "sdist-only": ("mmh3==2.5.1\n", IndexSettings(), ()),
    "no-such-version": ("six==0.0.1\n", IndexSettings(), ()),
    "requires-python": ("numpy==2.3.0\n", IndexSettings(), ()),
    "conflict": ("requests==2.32.3\nurllib3==1.20\n", IndexSettings(), ()),
    "unreachable-index": ("six==1.16.0\n", DEAD_INDEX, ()),
    "unknown-option": ("six==1.16.0\n", IndexSettings(), ("--no-such-option",)),
    "yanked-warning": ("cryptography==37.0.3\n", IndexSettings(), ()),
    "hash-mismatch": (f"six==1.16.0 --hash=sha256:{'0' * 64}\n", IndexSettings(), ()),
    # two hashes pinned (a wheel's and an sdist's, as pip-compile --generate-hashes writes them), neither matching
    "hash-mismatch-two": (f"six==1.16.0 --hash=sha256:{'0' * 64} --hash=sha256:{'1' * 64}\n", IndexSettings(), ()),
    # a file named by its URL (a lock without an index gives the installer such lines)
    "hash-mismatch-url": (f"six @ {SIX_URL} --hash=sha256:{'0' * 64}\n", IndexSettings(), ()),
}


# name -> (the Python that builds, the release, how): releases published as source only for that Python.
SOURCE_CASES: dict[str, tuple[str, str, str]] = {
    # wrapt 1.13.3 imports inspect.formatargspec (gone in 3.11) while setuptools reads its version
    "sdist-python-incompatible": ("python3.12", "wrapt==1.13.3", "download"),
    # pathtools 0.1.2's setup.py imports imp (gone in 3.12)
    "sdist-removed-module": ("python3.12", "pathtools==0.1.2", "download"),
    # mmh3 2.5.1 is C++: built on a host without a compiler (PATH without g++)
    "sdist-no-compiler": ("python3.11", "mmh3==2.5.1", "wheel-without-compiler"),
    # docopt 0.6.2 (setup.py only) built the legacy way by pip 23.0 without 'wheel': what the engine did before
    # it used --use-pep517 (pyenv's Python 3.10.13 is such a host)
    "sdist-legacy-build": ("python3.10", "docopt==0.6.2", "legacy-wheel"),
}


def record_source_build(name: str) -> None:
    runtime, requirement, how = SOURCE_CASES[name]
    interpreter, _ = find_interpreter(LambdaTarget.parse(runtime, "x86_64"))
    assert interpreter is not None, f"no {runtime} on this host"
    python = interpreter.executable
    quiet = ["--disable-pip-version-check", "--no-input", "--no-cache-dir"]
    pep517 = [] if how == "legacy-wheel" else ["--use-pep517"]
    with tempfile.TemporaryDirectory() as tmp:
        result = run(
            [python, "-m", "pip", "download", *quiet, *pep517, "--no-deps", "--no-binary=:all:",
             "--python-version", runtime.removeprefix("python"), "--dest", f"{tmp}/sdist", requirement]
        )  # fmt: skip
        if result.ok:
            (sdist,) = Path(tmp, "sdist").iterdir()
            env = {"PATH": "/nonexistent"} if how == "wheel-without-compiler" else None
            argv = [python, "-m", "pip", "wheel", *quiet, *pep517, "--no-deps", "--wheel-dir", f"{tmp}/wheel"]
            result = run([*argv, str(sdist)], env=env)
        output = result.output.replace(str(Path(tmp).resolve()), "<tmp>").replace(tmp, "<tmp>")
        output = output.replace(python, "<python>").replace(str(Path(python).parent.parent), "<prefix>")
    out = HERE / f"pip-{name}.txt"
    out.write_text(f"# exit code {result.returncode}\n{output}", encoding="utf-8")
    print(f"{out.name}: exit {result.returncode}", file=sys.stderr)


def record(installer: Installer, names: list[str], prefix: str | None = None) -> None:
    """Record ``names`` (default: every case) with ``installer``, into ``<prefix>-<case>.txt`` (default prefix: the
    installer's name)."""
    for name, (requirements, index, extra) in CASES.items():
        if names and name not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(requirements, encoding="utf-8")
            result = installer.install(
                req, Path(tmp) / "target", target=TARGET, index=index, find_links=(), extra_args=extra
            )
            output = result.output.replace(str(Path(tmp).resolve()), "<tmp>").replace(tmp, "<tmp>")
            output = output.replace(installer.pip_executable, "<python>").replace(sys.executable, "<python>")
        out = HERE / f"{prefix or installer.name}-{name}.txt"
        out.write_text(f"# exit code {result.returncode}\n{output}", encoding="utf-8")
        print(f"{out.name}: exit {result.returncode}", file=sys.stderr)


def record_other_pip(python: str, names: list[str]) -> None:
    """The pip cases, with the pip of ``python`` (a Python 3.11: the cases' answers are the target's)."""
    installer = InstallerSelection(TARGET, "pip", python).first()
    assert isinstance(installer, PipInstaller), installer
    record(installer, names, prefix=f"pip-{installer.interpreter.pip_version}")


def main() -> None:
    names = sys.argv[1:]
    if names[:1] == ["--python"]:
        record_other_pip(names[1], names[2:])
        return
    if not names or set(names) & set(CASES):
        record(InstallerSelection(TARGET, "pip").first(), names)
        record(InstallerSelection(TARGET, "uv").first(), names)
    for name in SOURCE_CASES:
        if not names or name in names:
            record_source_build(name)


if __name__ == "__main__":
    main()
