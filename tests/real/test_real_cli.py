"""The command line end to end, in a subprocess, with the user's own pip configuration honoured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

from ._layers import NATIVE_REQUIREMENTS, cli_path


def user_env(**extra: str) -> dict[str, str]:
    """This machine's environment as the user has it: without the real tier's PIP_CONFIG_FILE=/dev/null."""
    env = {k: v for k, v in os.environ.items() if k not in {"PIP_CONFIG_FILE", "UV_NO_CONFIG"}}
    env.update(extra)
    return env


def test_cli_build_with_the_machine_pip_configuration(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(NATIVE_REQUIREMENTS, encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run(
        [
            *(str(cli_path()), "-v", "build", "--requirements", str(requirements), "--runtime", "python3.12"),
            *("--architecture", "x86_64", "--output", str(out), "--exclude", "boto3"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=user_env(),
    )
    assert done.returncode == 0, done.stderr
    stdout = done.stdout
    assert f"layer: {out / 'layer.zip'}" in stdout
    assert "target: python3.12/x86_64" in stdout
    # auto: uv, which installs the wheels pip would choose for this set; the summary says which and why
    assert re.search(r"^installer: uv \S+ \(.*\) \[chosen: it installs the wheels pip would choose", stdout, re.M), (
        stdout
    )
    distributions = re.search(r"^distributions \((\d+)\): (.*)$", stdout, re.M)
    assert distributions, stdout
    assert int(distributions.group(1)) == len(distributions.group(2).split(", ")) >= 13
    assert "orjson==3.10.12" in distributions.group(2)
    size = r"^size: (\d+ KiB unzipped, \d+ KiB|\d+\.\d MiB unzipped, \d+\.\d MiB) zipped$"
    assert re.search(size, stdout, re.M), stdout
    assert re.search(r"^time: \d+\.\d s$", stdout, re.M), stdout
    assert re.search(r"^sha256: [0-9a-f]{64}$", stdout, re.M), stdout
    assert "warning: excluded package 'boto3' is not in the layer" in stdout

    stderr = done.stderr
    for phase in ("read requirements", "choose installer", "install for python3.12/x86_64 with uv", "verify", "zip"):
        assert re.search(rf"^\[cdk-pip-layer +\d+\.\ds\] {re.escape(phase)}: done in \d+\.\d\d s$", stderr, re.M), (
            phase,
            stderr,
        )
    assert "Traceback" not in stderr
    with zipfile.ZipFile(out / "layer.zip") as archive:
        assert archive.testzip() is None
        assert "python/orjson/__init__.py" in archive.namelist()


def test_cli_json_summary_and_user_pip_config_constraint(tmp_path: Path) -> None:
    # A pip.conf of the user's (PIP_CONFIG_FILE) with a constraint: honoured for an unpinned dependency, by uv too
    # (the default here), which is handed the user's pip configuration.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("idna==3.7\n", encoding="utf-8")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nconstraint = {constraints}\n", encoding="utf-8")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("anyio==4.6.2.post1\n", encoding="utf-8")
    done = subprocess.run(
        [
            *(str(cli_path()), "build", "-r", str(requirements), "--runtime", "python3.10"),
            *("-o", str(tmp_path / "out"), "--json", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=user_env(PIP_CONFIG_FILE=str(config)),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    summary = json.loads(done.stdout)
    assert summary["target"] == "python3.10/x86_64"
    assert summary["installer"].startswith("uv ")
    assert "idna==3.7" in summary["distributions"]
    assert any(d.startswith("exceptiongroup==") for d in summary["distributions"])
    assert summary["zipped_bytes"] == (tmp_path / "out" / "layer.zip").stat().st_size
