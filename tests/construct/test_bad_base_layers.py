"""A construct on top of a base layer zip or report that is no layer (another team's file, untrusted): the engine's
one error on the layer when its stack is bundled (``cdk synth`` fails with it, the asset left out of cdk.out), as
a requirements file that cannot be read is; nothing fails where CDK does not bundle it (``cdk ls``, ``cdk
destroy``, ``--exclusively``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_bases import FEW_BAD_BASES, make_bad_base
from cdk_pip_layer import InvalidInputError, PipLambdaLayer, PipLambdaLayers

from ._helpers import make_app


def _requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("rich\n", encoding="utf-8")
    return path


def _errors(layer: PipLambdaLayer) -> list[str]:
    return [str(entry.data) for entry in layer.node.metadata if entry.type == "aws:cdk:error"]


@pytest.mark.parametrize("case", FEW_BAD_BASES)
def test_a_bad_base_is_the_layers_one_error(tmp_path: Path, case: str) -> None:
    base = make_bad_base(case, tmp_path / "given")
    app, stack = make_app(tmp_path / "cdk.out")
    layer = PipLambdaLayer(stack, "Team", requirements=_requirements(tmp_path), on_top_of=[base])
    error = layer.build_error
    assert isinstance(error, InvalidInputError)
    assert error.subject == str(base)
    assert error.what.startswith("The base layer"), error.what
    assert _errors(layer) == [str(error)]
    assert "What to do:" in str(error)
    app.synth()
    assert [p.name for p in (tmp_path / "cdk.out").iterdir() if p.name.startswith("asset.")] == []


def test_a_bad_base_fails_nothing_where_the_stack_is_not_bundled(tmp_path: Path) -> None:
    base = make_bad_base("not-a-zip", tmp_path / "given")
    app, stack = make_app(tmp_path / "cdk.out", bundling=False)
    layer = PipLambdaLayer(stack, "Team", requirements=_requirements(tmp_path), on_top_of=[base])
    assert layer.build_error is None
    assert _errors(layer) == []
    app.synth()


def test_a_group_on_top_of_a_bad_base_has_the_error_on_each_member(tmp_path: Path) -> None:
    base = make_bad_base("directory", tmp_path / "given")
    _app, stack = make_app(tmp_path / "cdk.out")
    group = PipLambdaLayers(
        stack,
        "Team",
        requirements=_requirements(tmp_path),
        targets=["python3.12/x86_64", "python3.13/arm64"],
        on_top_of=[base],
    )
    for member in group.layers.values():
        assert isinstance(member.build_error, InvalidInputError)
        assert member.build_error.what == "The base layer zip is a directory"
