"""Re-record the installer outputs that tests/unit/test_diagnosis.py replays offline.

Each case runs the engine's own pip or uv invocation (the argv a build uses) against the real PyPI, for
python3.11/x86_64, and saves what the installer printed. Run it from the repository root when pip or uv change
their wording:

    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null UV_NO_CONFIG=1 \
        .venv/bin/python tests/unit/data/installer_output/record.py

Temporary paths in the output are replaced by <tmp>, the interpreter's path by <python>.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cdk_pip_layer.engine.index import IndexSettings
from cdk_pip_layer.engine.installers import Installer, choose_installer
from cdk_pip_layer.engine.target import LambdaTarget

HERE = Path(__file__).resolve().parent
TARGET = LambdaTarget.parse("python3.11", "x86_64")
DEAD_INDEX = IndexSettings(index_url="http://reader:s3cret-pw@127.0.0.1:9/simple")

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
}


def record(installer: Installer) -> None:
    for name, (requirements, index, extra) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(requirements, encoding="utf-8")
            result = installer.install(
                req, Path(tmp) / "target", target=TARGET, index=index, find_links=(), extra_args=extra
            )
            output = result.output.replace(str(Path(tmp).resolve()), "<tmp>").replace(tmp, "<tmp>")
            output = output.replace(installer.pip_executable, "<python>").replace(sys.executable, "<python>")
        out = HERE / f"{installer.name}-{name}.txt"
        out.write_text(f"# exit code {result.returncode}\n{output}", encoding="utf-8")
        print(f"{out.name}: exit {result.returncode}", file=sys.stderr)


def main() -> None:
    record(choose_installer(TARGET, "pip"))
    record(choose_installer(TARGET, "uv"))


if __name__ == "__main__":
    main()
