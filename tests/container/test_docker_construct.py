"""The construct's Docker fallback: a requirement that cannot build on this host makes CDK itself run the Lambda
build image (``docker run`` of the stand-in), and the staged asset is a working layer."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from layer_inspection import ELF_X86_64, elf_machine, run_isolated, unzip

from ._docker_tier import NATIVE_SDIST


def test_auto_bundling_falls_back_to_docker_for_a_native_sdist(
    native_toolchain: None,
    python311: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws_cdk = pytest.importorskip("aws_cdk")
    from cdk_pip_layer import PipLambdaLayer

    requirements = tmp_path / "layer" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text(NATIVE_SDIST, encoding="utf-8")
    outdir = tmp_path / "cdk.out"

    app = aws_cdk.App(outdir=str(outdir))
    stack = aws_cdk.Stack(app, "NativeLayerStack")
    layer = PipLambdaLayer(
        stack,
        "Native",
        requirements=str(requirements),
        runtime="python3.11",
        bundling="auto",
        cache=False,  # a layer cached by an earlier run would make Docker unnecessary
    )
    app.synth()

    err = capsys.readouterr().err
    assert "a local build is impossible" in err, err
    assert "mmh3" in err
    assert "public.ecr.aws/sam/build-python3.11:latest-x86_64" in err
    staged = sorted(outdir.glob("asset.*.zip"))
    assert len(staged) == 1, sorted(p.name for p in outdir.iterdir())
    assert staged[0].name == f"asset.{layer.node.find_child('Code').asset_hash}.zip"  # type: ignore[attr-defined]
    with zipfile.ZipFile(staged[0]) as archive:
        names = archive.namelist()
    assert "python/mmh3.cpython-311-x86_64-linux-gnu.so" in names
    assert all(name.startswith("python/") for name in names)
    site = unzip(staged[0], tmp_path / "opt")
    assert elf_machine(site / "mmh3.cpython-311-x86_64-linux-gnu.so") == ELF_X86_64
    done = run_isolated(python311, "import mmh3; print(mmh3.hash('foo'))", site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "-156908512"
    # Nothing of the host's settings (CA bundle, proxies, credentials) stays behind in cdk.out.
    assert not [p for p in outdir.rglob("*") if p.name in ("host.env.json", "ca-bundle.crt")]


def test_a_build_failing_in_the_image_is_the_engines_own_error_on_the_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CDK only says "docker exited with status 1"; the construct must raise what the build in the image said.
    aws_cdk = pytest.importorskip("aws_cdk")
    from cdk_pip_layer import NoCompatibleDistributionError, PipLambdaLayer

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("cdk-pip-layer-no-such-package==1.0\n", encoding="utf-8")
    app = aws_cdk.App(outdir=str(tmp_path / "cdk.out"))
    stack = aws_cdk.Stack(app, "Failing")
    layer = PipLambdaLayer(stack, "Layer", requirements=str(requirements), runtime="python3.11", bundling="docker")
    # CDK's convention: an error annotation on the layer (cdk synth prints it once and fails), the engine's own error.
    error = layer.build_error
    assert isinstance(error, NoCompatibleDistributionError)
    assert [e.data for e in layer.node.metadata if e.type == "aws:cdk:error"] == [str(error)]
    assert error.package == "cdk-pip-layer-no-such-package"
    assert "python3.11/x86_64" in error.what
    assert error.subject is not None and str(requirements) in error.subject  # the user's file, not the copy
    assert "/asset-input" not in str(error)
    assert error.hint and "spelled right" in error.hint
