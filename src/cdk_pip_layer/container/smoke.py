"""The smoke import in the Lambda build image (``verify --import=docker``): the engine's import script
(:data:`cdk_pip_layer.engine.verify.smoke_import.SCRIPT`) run by the image's Python for the target's Docker platform,
the layer mounted read-only at ``/opt`` as Lambda mounts it, no network, no environment but
``LD_LIBRARY_PATH=/opt/lib``.

The container is the sandbox: its own PID, network (none), mount, IPC and UTS namespaces; every capability
dropped and no privilege to gain (``no-new-privileges``); a read-only root file system with a private ``/tmp``;
one writable directory for the results. Removing it at the end ends every process the layer's code started."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from cdk_pip_layer.engine.target import LambdaTarget
from cdk_pip_layer.engine.verify.smoke_import import SCRIPT

from .builder import _can_emulate, _host_architecture

# Processes the import may run at once in the container (a fork bomb stops there).
PIDS_LIMIT = 512
_DOCKER_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}


class DockerImporter:
    """Runs the smoke import in ``image`` (default: the target's Lambda build image)."""

    def __init__(self, image: str | None = None, client: Any = None) -> None:
        self.image = image
        self._client = client
        self._target: LambdaTarget | None = None
        self.description = "the Lambda build image"

    def unavailable(self, target: LambdaTarget) -> str | None:
        """Why the image cannot run here: Docker missing or stopped, the image absent, no emulation."""
        self._target = target
        image = self.image or target.build_image
        self.description = f"{image} ({target.docker_platform})"
        client = self._client
        try:
            client = client or docker.from_env()
            client.ping()
            self._client = client
        except docker.errors.DockerException as exc:
            if client is not None and self._client is None:
                client.close()  # made here for nothing: its socket would be left open
            return f"Docker is not available ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            return f"the image {image} is not on this machine (docker pull --platform {target.docker_platform} {image})"
        except docker.errors.APIError as exc:
            return f"Docker could not look up {image}: {exc}"
        arch = _DOCKER_ARCH.get(str(found.attrs.get("Architecture", "")).lower())
        if arch is not None and arch != target.architecture.value:
            return f"the image {image} is for {arch}, not {target.architecture.value}"
        if _host_architecture() != target.architecture and not _can_emulate(target.architecture):
            return f"this host cannot run {target.architecture.value} containers (register QEMU for it)"
        return None

    def reaches(self, layer_dir: Path) -> bool:
        return True  # Docker's daemon mounts it

    def run(self, layer_dir: Path, modules: Sequence[str], results: Path, timeout: float) -> str:
        assert self._target is not None and self._client is not None
        target = self._target
        container = self._client.containers.create(
            self.image or target.build_image,
            command=[
                "python3",
                "-I",
                "-S",
                "-B",
                "-c",
                SCRIPT,
                "/opt",
                json.dumps(list(modules)),
                f"/smoke/{results.name}",
            ],
            volumes={
                str(layer_dir.resolve()): {"bind": "/opt", "mode": "ro"},
                str(results.parent.resolve()): {"bind": "/smoke", "mode": "rw"},
            },
            environment={"LD_LIBRARY_PATH": "/opt/lib", "HOME": "/tmp", "AWS_EC2_METADATA_DISABLED": "true"},
            platform=target.docker_platform,
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir="/tmp",
            network_disabled=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
            pids_limit=PIDS_LIMIT,
        )
        try:
            container.start()
            try:
                container.wait(timeout=timeout)
                note = ""
            except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
                with contextlib.suppress(docker.errors.APIError):
                    container.kill()
                note = f"\n(timed out after {timeout} s)"
            logs = container.logs().decode("utf-8", errors="replace")
            return "\n".join(logs.strip().splitlines()[-5:]) + note
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
