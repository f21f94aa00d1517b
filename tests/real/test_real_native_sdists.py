"""A release whose wheels fit other targets only, judged from PyPI's listing before any of its source is fetched:
scikit-learn 1.9.1 for python3.11/arm64 (its aarch64 wheels need glibc 2.27; Amazon Linux 2 has 2.26)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._layers import cli_path


def test_a_release_with_wheels_for_other_targets_only_is_left_to_the_build_image(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("scikit-learn==1.9.1\n", encoding="utf-8")
    done = subprocess.run(
        [
            *(str(cli_path()), "build", "-r", str(requirements), "--runtime", "python3.11", "--architecture"),
            *("arm64", "--bundling", "local", "--output", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "No wheel of scikit-learn==1.9.1 for python3.11/arm64" in done.stderr
    assert "Lambda build image" in done.stderr
    assert "build backend" not in done.stderr
