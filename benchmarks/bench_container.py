"""Container build benchmark: our Docker path against CDK's PythonLayerVersion on the same image.

Run (as root on the CI machine, after ``bash scripts/setup.sh --docker``)::

    .venv/bin/python benchmarks/bench_container.py [--rounds 5]

Writes ``benchmarks/results/bench_container.json``. Every round runs every variant once, the order rotating
(interleaved, so that a slow minute of the network hits all of them), after an unmeasured warm-up round that
fills the warm caches. Reported: every time, the medians, their ratios, and the machine's load.

All variants build the same 13 pinned wheel-only packages for python3.11 x86_64 in the stand-in image
``public.ecr.aws/sam/build-python3.11:latest-x86_64``. The CDK variants are ``app.synth()`` in this process, each
into a fresh ``cdk.out``:

- ``plv``: ``aws_lambda_python_alpha.PythonLayerVersion`` (it keeps no cache between synths).
- ``ours-cold``: ``PipLambdaLayer(bundling="docker")`` with an empty wheel cache (a fresh named volume for every
  run, made ahead and unmeasured: a one-off per machine, like pulling the image) and an empty layer cache.
- ``ours-warm``: the same with the wheel cache the warm-up filled (the container runs; its pinned requirements are
  installed from the cache without asking the index) and an empty layer cache.
- ``ours-layer-cache``: the same with the layer cache warm, as in CI with a persisted cache: no container runs.
- ``builder-cold`` / ``builder-warm``: ``PipBasedLambdaLayerContainerBuilder`` with an empty / a warm cache
  directory (no CDK).
- ``builder-pip-cold`` / ``builder-pip-warm``: the same with ``installer="pip"``: pip in the image, as on a host
  whose uv cannot run there (macOS, or a target of another machine under emulation).

The ``ours`` and ``builder`` variants run this host's uv in the image (installer auto: staged with the input,
checked against pip's choice as in a local build).
- ``local``: ``PipBasedLambdaLayerLocalBuilder`` on this host (pip with pyenv's Python 3.11).

The named volumes of the ``ours`` variants are this benchmark's own (``cdk-pip-layer-bench-*``, removed at the
end), not ``cdk-pip-layer-pip-cache``: the script points the construct at them by replacing the volume name in
``cdk_pip_layer.cdk.bundling`` (a benchmark-only patch; it changes the asset hash, nothing else).

CDK's ``PythonLayerVersion`` cannot run here as it ships. Its bundling image is ``docker build`` of its own
Dockerfile ``FROM public.ecr.aws/sam/build-python3.11`` (tag ``latest``, which no stand-in has) and that
Dockerfile ``pip install``s pip, pipenv, poetry and uv at build time, with no way to pass a CA bundle (its only
build arguments are PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and HTTPS_PROXY): behind the TLS-inspecting proxy it fails
with CERTIFICATE_VERIFY_FAILED. Its bundling command also needs ``rsync``, which the real SAM image has and the
stand-in lacks. So this script builds, once, the image that Dockerfile would build, with what it needs:
``docker run`` of the python3.11 stand-in with the host CA bundle mounted read-only and ``PIP_CERT`` pointing at
it, running the Dockerfile's steps (venv in /usr/app/venv, pip upgrade, pipenv 2022.4.8, poetry 1.5.1, uv 0.6.9,
caches emptied) plus ``apt-get install rsync``; then ``docker commit`` with the Dockerfile's ENV, USER nobody
and CMD. The CA bundle is never in the image. The benchmark passes that image through the construct's own
``BundlingOptions(image=...)``, and the CA through ``environment={"PIP_CERT": ...}`` and a read-only ``volumes``
entry, as a user behind such a proxy would. Building the image is timed separately (``one_off``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

from _bench import SECONDS, WHEEL_ONLY_SET, interleaved, machine, ratio, samples_json, summarize, write_results
from cdk_pip_layer.engine.options import InstallerName

IMAGE = "public.ecr.aws/sam/build-python3.11:latest-x86_64"
ALPHA_IMAGE = "cdk-pip-layer-bench/python-alpha-bundler:3.11-x86_64"
ALPHA_VERSION = "2.275.0a0"
CA_IN_CONTAINER = "/run/cdk-pip-layer-bench/ca.crt"
WARM_VOLUME = "cdk-pip-layer-bench-warm"

REQUIREMENTS = WHEEL_ONLY_SET

# The steps of aws-lambda-python-alpha's lib/docker/Dockerfile (2.275.0-alpha.0), plus rsync.
_ALPHA_SETUP = """\
set -eu
apt-get update -qq
apt-get install -y -qq --no-install-recommends rsync >/dev/null
rm -rf /var/lib/apt/lists/*
python -m venv /usr/app/venv
export PATH="/usr/app/venv/bin:$PATH" PIP_CACHE_DIR=/tmp/pip-cache
mkdir -p /tmp/pip-cache /tmp/poetry-cache /tmp/uv-cache
chmod -R 777 /tmp/pip-cache /tmp/poetry-cache /tmp/uv-cache
pip install -q --upgrade pip
pip install -q pipenv==2022.4.8 poetry==1.5.1 uv==0.6.9
rm -rf /tmp/pip-cache/* /tmp/poetry-cache/* /tmp/uv-cache/*
"""


def host_ca() -> Path:
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    sys.exit("no CA bundle in PIP_CERT / REQUESTS_CA_BUNDLE / SSL_CERT_FILE: the containers could not reach PyPI")


def pypi_only_environment() -> None:
    """Builds see PyPI and the pins only: this machine's pip configuration files (find-links, constraints, extra
    file indexes) are switched off, for the local build as for the containers (which never see them)."""
    os.environ["PIP_CONFIG_FILE"] = os.devnull
    for name in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        os.environ.pop(name, None)
    # jsii (CDK in this process) runs the first `node` on PATH: the venv's Node LTS (scripts/setup.sh) comes first.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def ensure_alpha_image(client: Any, ca: Path, rebuild: bool) -> float | None:
    """Build ALPHA_IMAGE (see the module docstring) unless it exists; return the seconds it took."""
    import docker.errors

    if not rebuild:
        try:
            client.images.get(ALPHA_IMAGE)
            return None
        except docker.errors.ImageNotFound:
            pass
    start = time.perf_counter()
    container = client.containers.run(
        IMAGE,
        ["bash", "-c", _ALPHA_SETUP],
        environment={"PIP_CERT": CA_IN_CONTAINER},
        volumes={str(ca): {"bind": CA_IN_CONTAINER, "mode": "ro"}},
        detach=True,
    )
    try:
        status = container.wait()
        if status.get("StatusCode") != 0:
            sys.exit("building the PythonLayerVersion image failed:\n" + container.logs().decode()[-3000:])
        base_path = client.images.get(IMAGE).attrs["Config"]["Env"]
        path = next((e.split("=", 1)[1] for e in base_path if e.startswith("PATH=")), "/usr/bin:/bin")
        container.commit(
            repository=ALPHA_IMAGE.split(":", maxsplit=1)[0],
            tag=ALPHA_IMAGE.split(":")[1],
            changes=[
                f"ENV PATH=/usr/app/venv/bin:{path}",
                "ENV PIP_CACHE_DIR=/tmp/pip-cache",
                "ENV POETRY_CACHE_DIR=/tmp/poetry-cache",
                "ENV UV_CACHE_DIR=/tmp/uv-cache",
                "USER nobody",
                'CMD ["python"]',
            ],
        )
    finally:
        container.remove(force=True)
    return time.perf_counter() - start


def tree_stats(root: Path) -> dict[str, Any]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "pyc_files": sum(p.suffix == ".pyc" for p in files),
    }


def zip_stats(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
    return {
        "files": len(infos),
        "bytes": sum(i.file_size for i in infos),
        "zip_bytes": path.stat().st_size,
        "zip_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "pyc_files": sum(i.filename.endswith(".pyc") for i in infos),
    }


class Bench:
    def __init__(self, work: Path, ca: Path, client: Any) -> None:
        self.work = work
        self.ca = ca
        self.client = client
        self.requirements = work / "layer" / "requirements.txt"
        self.requirements.parent.mkdir(parents=True)
        self.requirements.write_text(REQUIREMENTS, encoding="utf-8")
        self.warm_cache = work / "warm-pip-cache"
        self.warm_layer_cache = work / "warm-layer-cache"
        self.volumes: list[str] = []
        self._cold_volumes: list[str] = []
        self._n = 0

    def _fresh(self, name: str) -> Path:
        self._n += 1
        path = self.work / f"{self._n:03d}-{name}"
        path.mkdir()
        return path

    def _builder(self, name: str, cache: Path | None, installer: InstallerName = "auto") -> dict[str, Any]:
        from cdk_pip_layer import PipBasedLambdaLayerContainerBuilder

        out = self._fresh(name)
        start = time.perf_counter()
        result = PipBasedLambdaLayerContainerBuilder(
            requirements=self.requirements,
            build_dir=out / "build",
            runtime="python3.11",
            cache_dir=cache or out / "cache",
            installer=installer,
        ).build()
        facts = {
            **zip_stats(result.zip_path),
            "installer": result.installer,
            SECONDS: time.perf_counter() - start,
        }
        shutil.rmtree(out)
        return facts

    def builder_cold(self) -> dict[str, Any]:
        return self._builder("builder-cold", None)

    def builder_warm(self) -> dict[str, Any]:
        return self._builder("builder-warm", self.warm_cache)

    def builder_pip_cold(self) -> dict[str, Any]:
        return self._builder("builder-pip-cold", None, "pip")

    def builder_pip_warm(self) -> dict[str, Any]:
        return self._builder("builder-pip-warm", self.warm_cache, "pip")

    def local(self) -> dict[str, Any]:
        from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder

        out = self._fresh("local")
        start = time.perf_counter()
        result = PipBasedLambdaLayerLocalBuilder(
            requirements=self.requirements, build_dir=out / "build", runtime="python3.11"
        ).build()
        facts = {**zip_stats(result.zip_path), "installer": result.installer, SECONDS: time.perf_counter() - start}
        shutil.rmtree(out)
        return facts

    def _ours(self, name: str, *, volume: str, layer_cache: Path | None) -> dict[str, Any]:
        import aws_cdk as cdk

        import cdk_pip_layer.container.builder as container_builder
        from cdk_pip_layer import PipLambdaLayer
        from cdk_pip_layer.cdk import bundling

        out = self._fresh(name)
        start = time.perf_counter()
        app = cdk.App(outdir=str(out / "cdk.out"))
        stack = cdk.Stack(app, "Ours")
        # The benchmark's own volume (see the docstring).
        prepare = functools.partial(container_builder.prepare_cache_volume, volume=volume)
        with (
            mock.patch.object(bundling, "CACHE_VOLUME", volume),
            mock.patch.object(container_builder, "prepare_cache_volume", prepare),
        ):
            PipLambdaLayer(
                stack,
                "Layer",
                requirements=str(self.requirements),
                runtime="python3.11",
                bundling="docker",
                cache_dir=layer_cache or out / "layer-cache",
            )
            app.synth()
        seconds = time.perf_counter() - start
        (asset,) = (out / "cdk.out").glob("asset.*.zip")
        facts = {**zip_stats(asset), SECONDS: seconds}
        shutil.rmtree(out)
        return facts

    def prepare_cold_volumes(self, count: int) -> None:
        """Make the empty named volumes of the ``ours-cold`` runs ahead, unmeasured: making the volume is a one-off
        per machine (like pulling the image), not part of a build."""
        from cdk_pip_layer.container.builder import prepare_cache_volume

        for number in range(count):
            volume = f"cdk-pip-layer-bench-cold-{number}"
            problem = prepare_cache_volume(IMAGE, "linux/amd64", self.client, volume)
            if problem:
                sys.exit(f"could not make the volume {volume}: {problem}")
            self.volumes.append(volume)
            self._cold_volumes.append(volume)

    def ours_cold(self) -> dict[str, Any]:
        return self._ours("ours-cold", volume=self._cold_volumes.pop(0), layer_cache=None)

    def ours_warm(self) -> dict[str, Any]:
        if WARM_VOLUME not in self.volumes:
            self.volumes.append(WARM_VOLUME)
        return self._ours("ours-warm", volume=WARM_VOLUME, layer_cache=None)

    def ours_layer_cache(self) -> dict[str, Any]:
        if WARM_VOLUME not in self.volumes:
            self.volumes.append(WARM_VOLUME)
        return self._ours("ours-layer-cache", volume=WARM_VOLUME, layer_cache=self.warm_layer_cache)

    def plv(self) -> dict[str, Any]:
        import aws_cdk as cdk
        from aws_cdk import aws_lambda
        from aws_cdk import aws_lambda_python_alpha as alpha

        out = self._fresh("plv")
        start = time.perf_counter()
        app = cdk.App(outdir=str(out / "cdk.out"))
        stack = cdk.Stack(app, "Alpha")
        alpha.PythonLayerVersion(
            stack,
            "Layer",
            entry=str(self.requirements.parent),
            compatible_runtimes=[aws_lambda.Runtime.PYTHON_3_11],
            compatible_architectures=[aws_lambda.Architecture.X86_64],
            bundling=alpha.BundlingOptions(
                image=cdk.DockerImage.from_registry(ALPHA_IMAGE),
                environment={"PIP_CERT": CA_IN_CONTAINER},
                volumes=[cdk.DockerVolume(host_path=str(self.ca), container_path=CA_IN_CONTAINER)],
            ),
        )
        app.synth()
        seconds = time.perf_counter() - start
        (asset,) = [p for p in (out / "cdk.out").glob("asset.*") if p.is_dir()]
        facts = {**tree_stats(asset), SECONDS: seconds}
        shutil.rmtree(out)
        return facts

    def remove_volumes(self) -> None:
        """Remove the named volumes this benchmark made (and only those)."""
        import docker.errors

        for name in self.volumes:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.DockerException as exc:
                print(f"could not remove the volume {name}: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild-alpha-image", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    import docker

    from cdk_pip_layer import __version__

    pypi_only_environment()
    ca = host_ca()
    client = docker.from_env()
    client.images.get(IMAGE)  # run `bash .ci/docker-setup.sh` first
    docker_version = client.version().get("Version")
    try:
        alpha_version: str | None = metadata.version("aws-cdk.aws-lambda-python-alpha")
    except metadata.PackageNotFoundError:
        alpha_version = None
    if alpha_version != ALPHA_VERSION:
        sys.exit(f"install aws-cdk.aws-lambda-python-alpha=={ALPHA_VERSION} (found {alpha_version})")
    image_seconds = ensure_alpha_image(client, ca, args.rebuild_alpha_image)

    work = Path(tempfile.mkdtemp(prefix="bench-container-"))
    bench = Bench(work, ca, client)
    variants: dict[str, Callable[[], dict[str, Any]]] = {
        "plv": bench.plv,
        "ours-cold": bench.ours_cold,
        "ours-warm": bench.ours_warm,
        "ours-layer-cache": bench.ours_layer_cache,
        "builder-cold": bench.builder_cold,
        "builder-warm": bench.builder_warm,
        "builder-pip-cold": bench.builder_pip_cold,
        "builder-pip-warm": bench.builder_pip_warm,
        "local": bench.local,
    }
    try:
        bench.prepare_cold_volumes(args.rounds + 1)
        samples = interleaved(variants, args.rounds)
    finally:
        bench.remove_volumes()
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(samples)
    ratios = {
        "ours-cold / plv": ratio(summary, "ours-cold", "plv"),
        "ours-warm / plv": ratio(summary, "ours-warm", "plv"),
        "ours-layer-cache / plv": ratio(summary, "ours-layer-cache", "plv"),
        "builder-cold / plv": ratio(summary, "builder-cold", "plv"),
        "builder-warm / plv": ratio(summary, "builder-warm", "plv"),
        "builder-warm / local": ratio(summary, "builder-warm", "local"),
        "builder-pip-cold / plv": ratio(summary, "builder-pip-cold", "plv"),
        "builder-pip-warm / plv": ratio(summary, "builder-pip-warm", "plv"),
    }
    report = {
        "benchmark": "bench_container",
        "machine": {
            **machine(samples),
            "docker": docker_version,
            "network": "PyPI through a TLS-inspecting proxy that strips caching headers",
        },
        "versions": {"cdk-pip-layer": __version__, "aws-cdk.aws-lambda-python-alpha": alpha_version},
        "target": "python3.11 x86_64",
        "image": IMAGE,
        "requirements": REQUIREMENTS.split(),
        "rounds": args.rounds,
        "summary": summary,
        "ratios": ratios,
        "goals": {"ours-cold / plv": 1.0, "ours-warm / plv": 0.5},
        "one_off": {
            "python_alpha_image_build_seconds": "already built (--rebuild-alpha-image to time it)"
            if image_seconds is None
            else round(image_seconds, 1)
        },
        "notes": [
            "PythonLayerVersion runs with BundlingOptions(image=<derived stand-in>, environment=PIP_CERT, volumes="
            "CA bundle): its own Dockerfile cannot be built behind the TLS proxy (see the script's docstring).",
            "PythonLayerVersion has no pip cache between synths (PIP_CACHE_DIR=/tmp/pip-cache inside a --rm "
            "container): every synth downloads everything.",
            "PythonLayerVersion's asset is a directory (CDK zips it at deploy time); ours is the final layer.zip.",
        ],
        "runs": samples_json(samples),
    }
    write_results("bench_container", report, args.output)
    print(json.dumps({"median_seconds": {k: v["median_s"] for k, v in summary.items()}, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
