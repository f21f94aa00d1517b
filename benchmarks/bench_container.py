"""Container build benchmark: cold vs warm pip cache, local vs container, and CDK's own PythonLayerVersion.

Run (as root on the CI machine, after ``bash .ci/docker-setup.sh``)::

    .venv/bin/pip install 'aws-cdk.aws-lambda-python-alpha==2.275.0a0'   # matches aws-cdk-lib 2.275.0
    .venv/bin/python benchmarks/bench_container.py [--rounds 5]

Writes ``benchmarks/results/bench_container.json``. Every round runs every variant once, in the same order
(interleaved, so that a slow minute of the network hits all of them); a warm-up round that is not timed comes
first. Reported: every time, the median per variant, and ratios of medians.

Variants, all for the same pinned wheel-only requirements, python3.11 x86_64, stand-in image
``public.ecr.aws/sam/build-python3.11:latest-x86_64``:

- ``container_cold``: ``PipBasedLambdaLayerContainerBuilder`` with an empty cache directory.
- ``container_warm``: the same with the cache directory the earlier rounds filled.
- ``local``: ``PipBasedLambdaLayerLocalBuilder`` (pip with pyenv's Python 3.11), the user's pip cache as it is.
- ``cdk_ours_docker``: ``cdk synth`` (in process) of a stack with ``PipLambdaLayer(bundling="docker")``: CDK
  runs ``docker run`` of the stand-in, with pip's cache in the named volume ``cdk-pip-layer-pip-cache``.
- ``cdk_python_alpha``: ``cdk synth`` of a stack with ``aws_lambda_python_alpha.PythonLayerVersion``.

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
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_container.json"
IMAGE = "public.ecr.aws/sam/build-python3.11:latest-x86_64"
ALPHA_IMAGE = "cdk-pip-layer-bench/python-alpha-bundler:3.11-x86_64"
ALPHA_VERSION = "2.275.0a0"
CA_IN_CONTAINER = "/run/cdk-pip-layer-bench/ca.crt"

REQUIREMENTS = """\
requests==2.32.3
urllib3==2.2.3
idna==3.10
charset-normalizer==3.4.0
certifi==2024.8.30
pydantic==2.10.3
pydantic-core==2.27.1
annotated-types==0.7.0
typing-extensions==4.12.2
orjson==3.10.12
PyYAML==6.0.2
python-dateutil==2.9.0.post0
six==1.16.0
"""

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
        "has_six": any(p.name == "six.py" for p in files),
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
        "has_six": any(i.filename.endswith("/six.py") for i in infos),
    }


class Bench:
    def __init__(self, work: Path, ca: Path) -> None:
        self.work = work
        self.ca = ca
        self.requirements = work / "layer" / "requirements.txt"
        self.requirements.parent.mkdir(parents=True)
        self.requirements.write_text(REQUIREMENTS, encoding="utf-8")
        self.warm_cache = work / "warm-pip-cache"
        self.outputs: dict[str, dict[str, Any]] = {}
        self._n = 0

    def _fresh(self, name: str) -> Path:
        self._n += 1
        path = self.work / f"{self._n:03d}-{name}"
        path.mkdir()
        return path

    def container_cold(self) -> None:
        from cdk_pip_layer import PipBasedLambdaLayerContainerBuilder

        out = self._fresh("cold")
        result = PipBasedLambdaLayerContainerBuilder(
            requirements=self.requirements, build_dir=out / "build", runtime="python3.11", cache_dir=out / "cache"
        ).build()
        self.outputs["container_cold"] = zip_stats(result.zip_path)
        shutil.rmtree(out)

    def container_warm(self) -> None:
        from cdk_pip_layer import PipBasedLambdaLayerContainerBuilder

        out = self._fresh("warm")
        result = PipBasedLambdaLayerContainerBuilder(
            requirements=self.requirements, build_dir=out / "build", runtime="python3.11", cache_dir=self.warm_cache
        ).build()
        self.outputs["container_warm"] = zip_stats(result.zip_path)
        shutil.rmtree(out)

    def local(self) -> None:
        from cdk_pip_layer import PipBasedLambdaLayerLocalBuilder

        out = self._fresh("local")
        result = PipBasedLambdaLayerLocalBuilder(
            requirements=self.requirements, build_dir=out / "build", runtime="python3.11"
        ).build()
        self.outputs["local"] = {**zip_stats(result.zip_path), "installer": result.installer}
        shutil.rmtree(out)

    def cdk_ours_docker(self) -> None:
        import aws_cdk as cdk

        from cdk_pip_layer import PipLambdaLayer

        out = self._fresh("cdk-ours")
        app = cdk.App(outdir=str(out / "cdk.out"))
        stack = cdk.Stack(app, "Ours")
        PipLambdaLayer(
            stack, "Layer", requirements=str(self.requirements), runtime="python3.11", bundling="docker", cache=False
        )
        app.synth()
        (asset,) = (out / "cdk.out").glob("asset.*.zip")
        self.outputs["cdk_ours_docker"] = zip_stats(asset)
        shutil.rmtree(out)

    def cdk_python_alpha(self) -> None:
        import aws_cdk as cdk
        from aws_cdk import aws_lambda
        from aws_cdk import aws_lambda_python_alpha as alpha

        out = self._fresh("cdk-alpha")
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
        (asset,) = [p for p in (out / "cdk.out").glob("asset.*") if p.is_dir()]
        self.outputs["cdk_python_alpha"] = tree_stats(asset)
        shutil.rmtree(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild-alpha-image", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
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
    client.close()

    work = Path(tempfile.mkdtemp(prefix="bench-container-"))
    bench = Bench(work, ca)
    variants: dict[str, Callable[[], None]] = {
        "container_cold": bench.container_cold,
        "container_warm": bench.container_warm,
        "local": bench.local,
        "cdk_ours_docker": bench.cdk_ours_docker,
        "cdk_python_alpha": bench.cdk_python_alpha,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for round_no in range(args.rounds + 1):  # round 0: warm-up (fills the warm cache, loads jsii), not timed
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                seconds = time.perf_counter() - start
                if round_no:
                    times[name].append(round(seconds, 3))
                print(f"round {round_no} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}

    def ratio(a: str, b: str) -> float:
        return round(medians[a] / medians[b], 2)

    report = {
        "benchmark": "bench_container",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(),
            "docker": docker_version,
            "network": "PyPI through a TLS-inspecting proxy that strips caching headers",
        },
        "versions": {"cdk-pip-layer": __version__, "aws-cdk.aws-lambda-python-alpha": alpha_version},
        "target": "python3.11 x86_64",
        "image": IMAGE,
        "requirements": REQUIREMENTS.split(),
        "rounds": args.rounds,
        "seconds": times,
        "median_seconds": medians,
        "ratios": {
            "container_cold / container_warm": ratio("container_cold", "container_warm"),
            "container_warm / local": ratio("container_warm", "local"),
            "container_cold / local": ratio("container_cold", "local"),
            "cdk_python_alpha / cdk_ours_docker": ratio("cdk_python_alpha", "cdk_ours_docker"),
            "cdk_ours_docker / container_warm": ratio("cdk_ours_docker", "container_warm"),
        },
        "outputs": bench.outputs,
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
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"median_seconds": medians, "ratios": report["ratios"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
