"""What a build says about its size: one unit per line, the one that suits the layer."""

from __future__ import annotations

import pytest

from cdk_pip_layer.engine.result import sizes_text


@pytest.mark.parametrize(
    ("unzipped", "zipped", "said"),
    [
        (98_304, 38_912, "96 KiB unzipped, 38 KiB zipped"),  # not "0.1 MiB unzipped, 0.0 MiB zipped"
        (2_202_009, 629_146, "2.1 MiB unzipped, 0.6 MiB zipped"),
        (1024 * 1024, 400_000, "1.0 MiB unzipped, 0.4 MiB zipped"),
        (0, 22, "0 KiB unzipped, 0 KiB zipped"),
    ],
)
def test_sizes_are_said_in_one_unit_that_suits_the_layer(unzipped: int, zipped: int, said: str) -> None:
    assert sizes_text(unzipped, zipped) == said
