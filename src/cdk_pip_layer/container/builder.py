"""The container build: the same inputs and outputs as the local builder, built inside the Lambda build image
(``public.ecr.aws/sam/build-pythonX.Y:latest-<arch>``) through the Docker SDK.

For users who want the exact Lambda toolchain, and for source distributions with native code. The command, its
environment and the staged input are the ones the CDK construct's Docker fallback uses (see :mod:`.protocol`).
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import logging
import os
import platform
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import docker
import docker.errors

from cdk_pip_layer.engine.errors import ContainerBuildError, InvalidInputError, LayerBuildError
from cdk_pip_layer.engine.inputs.locked import read_input
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile
from cdk_pip_layer.engine.layer.transaction import BuildTransaction
from cdk_pip_layer.engine.options import (
    BuildSettings,
    BundlingMode,
    LayerBuildOptions,
    build_directory,
    split_arguments,
)
from cdk_pip_layer.engine.progress import phase
from cdk_pip_layer.engine.redact import redact
from cdk_pip_layer.engine.result import ARTIFACTS, LAYER_ZIP, LayerBuildResult
from cdk_pip_layer.engine.scratch import UNCHECKED_MAX_AGE, Owner
from cdk_pip_layer.engine.target import Architecture, LambdaTarget
from cdk_pip_layer.engine.verify.built_layer import verify_built_layer
from cdk_pip_layer.engine.verify.report import write_report
from cdk_pip_layer.engine.verify.smoke_import import NO_SANDBOX
from cdk_pip_layer.engine.verify.verifier import ELF_CHECKS, LayerVerification

from .protocol import (
    CACHE_MOUNT,
    CACHE_VOLUME,
    CONTAINER_COMMAND,
    CONTAINER_ENVIRONMENT,
    CONTAINER_INPUT,
    CONTAINER_OUTPUT,
    LAYOUT_BUILD,
    LAYOUT_VARIABLE,
    RESULT_MOUNT,
    RESULT_VARIABLE,
    VERBOSE_VARIABLE,
    image_uv,
    read_outcome,
    stage_input,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from cdk_pip_layer.engine.options import ContainerBuilderArgs


_log = logging.getLogger("cdk_pip_layer")
# Under the cache directory: the container build's downloads (pip's and uv's caches).
DOWNLOAD_CACHE = "pip"

# The label naming a build container's owner (see cdk_pip_layer.engine.scratch): host, pid and start time.
OWNER_LABEL = "cdk-pip-layer.owner"

_DOCKER_ARCH = {
    "amd64": Architecture.X86_64,
    "x86_64": Architecture.X86_64,
    "arm64": Architecture.ARM64,
    "aarch64": Architecture.ARM64,
}


def _host_architecture() -> Architecture | None:
    return _DOCKER_ARCH.get(platform.machine().lower())


BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
DOCKER_SOCKET = Path("/var/run/docker.sock")
_BINFMT_HANDLERS = {Architecture.ARM64: ("qemu-aarch64",), Architecture.X86_64: ("qemu-x86_64",)}


def _can_emulate(target: Architecture, *, host: Architecture | None = None, binfmt_dir: Path | None = None) -> bool:
    """Whether this Linux host runs binaries of ``target``: natively, or through a registered and enabled binfmt
    handler (a handler, or binfmt_misc as a whole, that is registered but disabled has ``disabled`` as its first
    line)."""
    if (host or _host_architecture()) == target:
        return True
    binfmt = binfmt_dir or BINFMT_DIR
    with contextlib.suppress(OSError):
        if (binfmt / "status").read_text(encoding="utf-8", errors="replace").startswith("disabled"):
            return False
    for name in _BINFMT_HANDLERS[target]:
        try:
            status = (binfmt / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if status.startswith("enabled"):
            return True
    return False


class PipBasedLambdaLayerContainerBuilder:
    """Builds a Lambda layer inside the Lambda build image; output identical in layout to the local builder's:
    ``<build_dir>/artifacts/python/…`` and a deterministic ``<build_dir>/layer.zip``.

    The image's Python is the target interpreter. ``installer``: ``auto`` (the default) installs with this host's
    uv when it runs in the image (a Linux host of the target's machine), checked against pip's choice as in a local
    build, else with pip; ``pip`` or ``uv`` forces one (``uv`` is refused when it cannot run there).

    The container runs as the calling user (output files are yours, not root's); the download caches of pip and uv
    are a host directory mounted into it (``<cache_dir>/pip``; ``cache=False`` to opt out); proxy settings, the CA
    bundle and index credentials are forwarded without ever appearing on a command line, in an image or in a file
    left behind. ``docker_network`` is the container's network mode (e.g. ``host`` for an index on localhost;
    default ``$CDK_PIP_LAYER_DOCKER_NETWORK``, else Docker's default).
    """

    @overload
    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        docker_client: Any = None,
        **args: Unpack[ContainerBuilderArgs],
    ) -> None: ...

    @overload
    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        options: LayerBuildOptions,
        settings: BuildSettings | None = None,
        requirements_file: RequirementsFile | None = None,
        docker_client: Any = None,
    ) -> None: ...

    def __init__(
        self,
        *,
        build_dir: str | os.PathLike[str],
        options: LayerBuildOptions | None = None,
        settings: BuildSettings | None = None,
        requirements_file: RequirementsFile | None = None,
        docker_client: Any = None,
        **args: Any,
    ) -> None:
        """The build options and the container settings (``image``, ``cache``, ``cache_dir``,
        ``docker_network``) as keyword arguments, or made already (``options``, ``settings``)."""
        if options is None:
            loose, given = split_arguments(args)
            options, settings = LayerBuildOptions.parse(**loose), BuildSettings.parse(**given)
        elif args:
            raise InvalidInputError(
                f"Build options given twice: options= and {', '.join(sorted(args))}",
                subject="build options",
                hint="pass the options and settings values alone, or every option as a keyword argument.",
            )
        settings = settings or BuildSettings()
        refused = ["bundling=local (--bundling)"] if settings.bundling is BundlingMode.LOCAL else []
        refused += ["python_executable (--python)"] if options.python_executable else []
        if refused:
            raise InvalidInputError(
                f"{', '.join(refused)}: not settings of the container build",
                subject="container build",
                hint="drop them: the container build always builds in the build image, with the image's Python.",
            )
        image_uv(options)  # a forced uv that cannot run in the image: said now, before Docker is asked anything
        self.options = options
        self.build_dir = build_directory(build_dir)
        self.requirements = requirements_file
        self.image = settings.image or options.target.build_image
        self.use_cache = settings.cache
        self.cache_dir = settings.cache_root / DOWNLOAD_CACHE
        for directory in (settings.cache_root, self.cache_dir):
            if self.use_cache and directory.exists() and not directory.is_dir():
                raise InvalidInputError(
                    "The cache directory is not a directory",
                    subject=str(directory),
                    hint="name a directory for the caches (made if missing; the container build's downloads go to "
                    "its pip/), or turn the cache off.",
                )
        self.network = settings.docker_network or os.environ.get("CDK_PIP_LAYER_DOCKER_NETWORK") or None
        self._client = docker_client

    @classmethod
    def from_options(
        cls,
        options: LayerBuildOptions,
        build_dir: str | os.PathLike[str],
        *,
        settings: BuildSettings | None = None,
        requirements_file: RequirementsFile | None = None,
        docker_client: Any = None,
    ) -> PipBasedLambdaLayerContainerBuilder:
        """A builder for options and settings made already (``requirements_file``: the file as read already)."""
        return cls(
            build_dir=build_dir,
            options=options,
            settings=settings,
            requirements_file=requirements_file,
            docker_client=docker_client,
        )

    @property
    def target(self) -> LambdaTarget:
        return self.options.target

    def _docker(self) -> Any:
        if self._client is None:
            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as exc:
                installed = shutil.which("docker") or shutil.which("dockerd") or DOCKER_SOCKET.exists()
                what = "The Docker daemon is not running" if installed else "Docker is not installed"
                todo = (
                    "start Docker (e.g. 'sudo systemctl start docker' or Docker Desktop), or set DOCKER_HOST"
                    if installed
                    else "install Docker (Debian/Ubuntu: 'apt-get install docker.io'; or Docker Desktop)"
                )
                raise ContainerBuildError(
                    f"{what}; the container build needs it",
                    subject=str(self.target),
                    details=[str(exc)],
                    hint=f"{todo}; or build locally (PipBasedLambdaLayerLocalBuilder) when the requirements have "
                    "wheels for the target.",
                ) from None
        return self._client

    def _ensure_image(self, client: Any) -> None:
        try:
            image = client.images.get(self.image)
        except docker.errors.ImageNotFound:
            _log.info("pulling %s for %s", self.image, self.target.docker_platform)
            try:
                image = client.images.pull(self.image, platform=self.target.docker_platform)
            except docker.errors.APIError as exc:
                raise ContainerBuildError(
                    f"The build image {self.image} is not on this machine and cannot be pulled",
                    subject=str(self.target),
                    details=[str(exc.explanation or exc)],
                    hint=f"pull it where the registry is reachable ('docker pull --platform "
                    f"{self.target.docker_platform} {self.image}'), load it here, or pass image= naming a local "
                    "image with the runtime's Python and pip.",
                ) from None
        image_arch = _DOCKER_ARCH.get(str(image.attrs.get("Architecture", "")).lower())
        if image_arch is not None and image_arch != self.target.architecture:
            raise ContainerBuildError(
                f"The build image {self.image} is for {image_arch.value}, not {self.target.architecture.value}",
                subject=str(self.target),
                hint=f"use the {self.target.architecture.image_tag} tag of the image, or pass image= for the target.",
            )
        # Ask the daemon what it runs on (it may be a VM or another machine); binfmt can only be checked when the
        # daemon is this Linux host itself.
        daemon = _DOCKER_ARCH.get(str(client.info().get("Architecture", "")).lower())
        local = platform.system() == "Linux" and os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")
        if daemon != self.target.architecture and local and not _can_emulate(self.target.architecture, host=daemon):
            raise ContainerBuildError(
                f"This {platform.machine()} host cannot run {self.target.architecture.value} containers",
                subject=str(self.target),
                hint="register QEMU for it (Debian: 'apt-get install qemu-user-static binfmt-support'; or 'docker run "
                "--privileged --rm tonistiigi/binfmt --install all'), or build on a host of that architecture.",
            )

    def build(self) -> LayerBuildResult:
        """Build the layer; the Docker client made for it (none was passed) is closed when the build ends."""
        owned = self._client is None
        try:
            return self._build()
        finally:
            if owned and self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None

    def _build(self) -> LayerBuildResult:
        start = time.perf_counter()
        options = self.options
        target = options.target
        with phase("read requirements"):
            requirements = self.requirements or read_input(options)
        client = self._docker()
        for container in remove_abandoned_containers(client):
            _log.info("removed the container %s of a build that was killed", container[:12])
        with phase(f"check build image {self.image}"):
            self._ensure_image(client)
        with BuildTransaction(self.build_dir, inputs=requirements.files) as build:
            staging = build.staging
            input_dir, output_dir, result_dir = staging / "input", staging / "output", staging / "result"
            for directory in (output_dir, result_dir):
                directory.mkdir()
                directory.chmod(0o755)
            staged = stage_input(options, requirements, input_dir, use_cache=self.use_cache, write_host_env=False)
            volumes = {
                str(input_dir.resolve()): {"bind": CONTAINER_INPUT, "mode": "ro"},
                str(output_dir.resolve()): {"bind": CONTAINER_OUTPUT, "mode": "rw"},
                str(result_dir.resolve()): {"bind": RESULT_MOUNT, "mode": "rw"},
            }
            if self.use_cache:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                volumes[str(self.cache_dir.resolve())] = {"bind": CACHE_MOUNT, "mode": "rw"}
            with phase(f"build in {self.image} ({target.docker_platform})"):
                environment = {
                    **CONTAINER_ENVIRONMENT,
                    **staged.host_env,
                    RESULT_VARIABLE: RESULT_MOUNT,
                    LAYOUT_VARIABLE: LAYOUT_BUILD,
                }
                if _log.isEnabledFor(logging.DEBUG):
                    environment[VERBOSE_VARIABLE] = "1"
                code, lines = self._run(client, volumes, environment, options.index.secrets)
            report = self._outcome(read_outcome(result_dir), code, lines)
            # The build in the image wrote layer.zip and artifacts/ into the output mount (LAYOUT_BUILD): they
            # move into this transaction as they are, and the zip's sha256 is the one its writer computed.
            built_zip, built_artifacts = output_dir / LAYER_ZIP, output_dir / ARTIFACTS
            if not (built_zip.is_file() and built_artifacts.is_dir()):
                raise ContainerBuildError(
                    "The container build finished without writing layer.zip and artifacts/",
                    subject=str(target),
                    hint="run again with logging at DEBUG to see the container's output, and report it.",
                )
            verification = self._verify(built_zip, requirements, report, built_artifacts)
            built_artifacts.rename(build.artifacts_dir)
            built_zip.replace(build.zip_path)
            published = build.publish(sha256=report.sha256)
            if verification is not None:
                full_report = verification.report.with_build(
                    slim=report.slim, excluded=report.excluded, runtime_provided=report.runtime_provided
                )
                write_report(full_report, published.zip_path.parent)
        in_image = list(report.warnings)
        host_checks = set(ELF_CHECKS)
        if _import_skipped_in_image(report) and verification is not None and verification.import_ran:
            in_image = [w for w in in_image if not _is_unsandboxed(w)]  # the host's container ran it instead
            host_checks.add("import")
        host_warnings = (
            [] if verification is None else [str(w) for w in verification.warnings if w.check in host_checks]
        )
        verified = report.verified
        if verified is not None and verification is not None:  # what the image could not check, the host did
            ran = verification.report
            verified = verified.and_then(ran.checks, len(host_warnings), ran.skipped)
        return dataclasses.replace(
            report,
            verified=verified,
            warnings=(*in_image, *host_warnings),
            zip_path=published.zip_path,
            artifacts_dir=published.artifacts_dir,
            installer=f"{report.installer} in {self.image} ({target.docker_platform})",
            zipped_bytes=published.zipped_bytes,
            seconds=time.perf_counter() - start,
        )

    def _verify(
        self, built_zip: Path, requirements: RequirementsFile, report: LayerBuildResult, artifacts: Path
    ) -> LayerVerification | None:
        """Verify the zip the image built, on the host: the ELF checks need pyelftools, which the image lacks
        (the smoke import ran in the image, with the runtime's own Python). Where the image had no sandbox for
        the import (a build run as a user without root's rights in the container), the import runs here, in a
        container of the same image made for it: no network, no capability, the layer read-only."""
        options = self.options
        if not options.verify:
            return None
        importer = None
        if _import_skipped_in_image(report):
            from .smoke import DockerImporter  # smoke imports this module

            importer = DockerImporter(self.image, self._docker())
            if importer.unavailable(self.target) is not None:
                importer = None
        with phase("verify on the host"):
            return verify_built_layer(
                built_zip,
                options,
                requirements=[line.requirement for line in requirements.requirements if line.requirement],
                built_from_source=report.built_from_source,
                imported_in=self.image,
                importer=importer,
                layer_dir=artifacts if importer is not None else None,
                subject=f"{options.requirements} for {self.target}, built in {self.image}",
            )

    def _outcome(
        self, outcome: LayerBuildResult | LayerBuildError | None, code: int, lines: Sequence[str]
    ) -> LayerBuildResult:
        """The build's report, or the error it raised in the image (as the engine's own class, naming the user's
        file rather than its copy in the container)."""
        where = f"{self.options.requirements} for {self.target}"
        if isinstance(outcome, LayerBuildError):
            outcome.subject = f"{where}, built in {self.image}"
            raise outcome
        if code == 0 and isinstance(outcome, LayerBuildResult):
            return outcome
        raise ContainerBuildError(
            f"The build failed inside {self.image} (exit code {code})",
            subject=where,
            details=list(lines[-25:]),
            hint="read the container's output above (run with logging at DEBUG for all of it), fix what it names "
            "and build again.",
        )

    def _run(
        self, client: Any, volumes: dict[str, dict[str, str]], environment: dict[str, str], secrets: Sequence[str]
    ) -> tuple[int, list[str]]:
        """Run the build container; its exit code and its output lines (redacted).

        The container is removed whatever happens, an interruption included (KeyboardInterrupt, or what a SIGTERM
        handler raises): it is named before it is created, so even one whose creation was interrupted is found.
        It is labelled with this process as its owner, so that when this process is killed outright a later
        build removes it (:func:`remove_abandoned_containers`)."""
        name = f"cdk-pip-layer-{uuid.uuid4().hex[:16]}"
        try:
            container = client.containers.create(
                self.image,
                command=list(CONTAINER_COMMAND),
                name=name,
                labels={OWNER_LABEL: Owner.current().tag},
                environment=environment,
                volumes=volumes,
                user=f"{os.getuid()}:{os.getgid()}",
                working_dir=CONTAINER_INPUT,
                platform=self.target.docker_platform,
                network_mode=self.network,
            )
            container.start()
            lines: list[str] = []
            # Docker's log frames need not end at a line end: join them first, so that a line (and a secret in
            # it) split across two frames is still seen, and redacted, whole.
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            pending = ""
            for chunk in container.logs(stream=True, follow=True):
                *complete, pending = (pending + decoder.decode(chunk)).split("\n")
                for line in complete:
                    clean = redact(line.rstrip("\r"), secrets)
                    lines.append(clean)
                    _log.debug("container: %s", clean)
            pending += decoder.decode(b"", final=True)
            if pending:
                lines.append(redact(pending, secrets))
                _log.debug("container: %s", lines[-1])
            status = container.wait()
            return int(status.get("StatusCode", 1)), lines
        except docker.errors.APIError as exc:
            raise ContainerBuildError(
                f"Docker could not run the build container: {exc.explanation or exc}",
                subject=self.image,
                details=[f"network: {self.network}"] if self.network else [],
                hint="check the network (docker network ls) and the image (docker image ls), then build again.",
            ) from None
        finally:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                client.containers.get(name).remove(force=True)


def remove_abandoned_containers(client: Any) -> list[str]:
    """Remove the build containers whose owner has died (a build killed before it could remove its container);
    return their ids. Never a container of a build that runs; those of owners on another host only once they are a
    day old. Problems are ignored: the next build tries again."""
    try:
        found = client.containers.list(all=True, filters={"label": OWNER_LABEL}, sparse=True)
    except (docker.errors.DockerException, OSError):
        return []
    removed = []
    for container in found:
        info = container.attrs  # sparse: the list's fields, "Labels" and "Created" (seconds) among them
        owner = Owner.from_tag(str((info.get("Labels") or {}).get(OWNER_LABEL, "")))
        alive = owner.alive() if owner is not None else None
        if alive or (alive is None and time.time() - float(info.get("Created") or 0) < UNCHECKED_MAX_AGE):
            continue
        with contextlib.suppress(docker.errors.DockerException, OSError):
            container.remove(force=True)
            removed.append(str(container.id))
    return removed


def docker_unavailable(image: str, docker_platform: str, client: Any = None) -> str | None:
    """Why CDK's ``docker run`` of ``image`` cannot work here, or None: no docker command, no daemon answering, or
    the image neither on this machine nor pullable (CDK's own run would then fail with a trace of its spawn). With
    ``CDK_DOCKER`` (another engine's command, e.g. podman or finch), only that the command is there."""
    command = os.environ.get("CDK_DOCKER") or "docker"
    if shutil.which(command) is None:
        return f"the {command} command is not installed (CDK runs the build image with it)"
    if os.environ.get("CDK_DOCKER"):
        return None
    owned = client is None
    try:
        client = client or docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        return f"the Docker daemon does not answer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                client.images.pull(image, platform=docker_platform)
            except docker.errors.APIError as exc:
                return f"the build image {image} is not on this machine and cannot be pulled ({exc.explanation or exc})"
        except docker.errors.DockerException as exc:
            return f"Docker cannot tell whether {image} is here ({exc})"
        return None
    finally:
        if owned:
            with contextlib.suppress(Exception):
                client.close()


def prepare_cache_volume(
    image: str, docker_platform: str, client: Any = None, volume: str = CACHE_VOLUME
) -> str | None:
    """Create the named pip-cache volume of the CDK Docker fallback, writable by every user.

    Docker creates a named volume owned by root, and CDK runs the build as the calling user, who could then not
    write to it. Done once per machine (an existing volume is left as it is). Returns what went wrong, or None.
    """
    owned = client is None
    try:
        client = client or docker.from_env()
        try:
            client.volumes.get(volume)
            return None
        except docker.errors.NotFound:
            pass
        client.volumes.create(volume)
        client.containers.run(
            image,
            ["chmod", "1777", CACHE_MOUNT],
            volumes={volume: {"bind": CACHE_MOUNT, "mode": "rw"}},
            user="0:0",
            platform=docker_platform,
            remove=True,
        )
        return None
    except docker.errors.DockerException as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        if owned and client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _is_unsandboxed(warning: str) -> bool:
    """Whether a warning of the build in the image says that its smoke import was skipped for want of a sandbox."""
    return warning.startswith("import: ") and NO_SANDBOX in warning


def _import_skipped_in_image(report: LayerBuildResult) -> bool:
    return any(_is_unsandboxed(w) for w in report.warnings)
