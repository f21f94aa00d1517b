"""``PipLambdaLayers``: one dependency set for several runtimes and architectures, declared once; one
``PipLambdaLayer`` per target, whose builds run together (as many at once as there are CPUs).

CDK bundles one asset at a time, synchronously, while each ``LayerVersion`` is created. So the group first makes
every member's bundling (its input hash, its cache entry), asks CDK which of their assets it has already staged
in ``cdk.out`` (a probe of the asset hash CDK will compute, in a throw-away app that bundles nothing), starts the
local builds of the others (as many at once as there are CPUs), and only then creates the layers: each
``try_bundle`` collects its own build. Nothing starts when CDK does not bundle this stack (``cdk ls``,
``cdk destroy``, ``--exclusively``), for a layer the cache or a warm ``cdk.out`` serves, or with
``bundling="docker"``; a target that cannot be built locally falls back to Docker as a single layer does.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda
from constructs import Construct

from cdk_pip_layer.engine.base_layer import BaseLayer
from cdk_pip_layer.engine.errors import InvalidInputError, LayerBuildError
from cdk_pip_layer.engine.options import BuildSettings, LayerBuildOptions, Runtime, split_arguments
from cdk_pip_layer.engine.process import available_cpus
from cdk_pip_layer.engine.target import LambdaTarget

from .annotations import prop_errors
from .bundling import LayerBundling
from .construct import (
    PipLambdaLayer,
    _accounts,
    _check_props,
    bases_read_later,
    bundling_required,
    construct_settings,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from cdk_pip_layer.engine.options import ConstructArgs

__all__ = ["PipLambdaLayers"]

TargetSpec = str | tuple[str | aws_lambda.Runtime, str | aws_lambda.Architecture]


class PipLambdaLayers(Construct):
    """One requirements file built for several Lambda targets: a :class:`PipLambdaLayer` per (runtime,
    architecture), each its own asset with its own stable hash, their local builds running together.

    Example::

        layers = PipLambdaLayers(
            self, "Deps", requirements="layer/requirements.txt",
            targets=["python3.12/x86_64", "python3.12/arm64", ("python3.13", "x86_64"), ("python3.13", "arm64")],
        )
        aws_lambda.Function(self, "Fn", ..., layers=[layers.layer("python3.12", "arm64")])

    Args:
        targets: ``"runtime/architecture"`` strings or ``(runtime, architecture)`` pairs (``aws_lambda.Runtime``
            and ``aws_lambda.Architecture`` also accepted), at least one, no target twice.
        layer_version_name: each layer is named ``<name>-<runtime without the dot>-<architecture>``, e.g.
            ``deps-python312-arm64``.
        ssm_parameter_name: each layer's ARN goes to ``<name>/<runtime>/<architecture>`` (``<name>`` a path
            starting with ``/``), else ``<name>-<runtime>-<architecture>``.
        the others: as for :class:`PipLambdaLayer`, the same for every target.

    ``layers`` maps ``"runtime/architecture"`` to each member, in the order given; ``layer(runtime, architecture)``
    picks one. A member's construct id is ``runtime-architecture`` (``python3.12-arm64``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        requirements: str | os.PathLike[str],
        targets: Sequence[TargetSpec],
        description: str | None = None,
        layer_version_name: str | None = None,
        license: str | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        grant_account_ids: Sequence[str] = (),
        organization_id: str | None = None,
        ssm_parameter_name: str | None = None,
        check_stacks: bool = True,
        **props: Unpack[ConstructArgs],
    ) -> None:
        super().__init__(scope, id)
        with prop_errors(self.node.path):
            chosen = _targets(targets)
            option_args, setting_args = split_arguments(props)
            settings = construct_settings(setting_args)
            _accounts(grant_account_ids)
            names = {t: _names(t, layer_version_name, ssm_parameter_name) for t in chosen}
            for layer_name, parameter_name in names.values():
                _check_props(
                    description=description,
                    license=license,
                    layer_version_name=layer_name,
                    organization_id=organization_id,
                    ssm_parameter_name=parameter_name,
                )
            options = {
                t: LayerBuildOptions.parse(
                    requirements=requirements,
                    runtime=t.runtime,
                    architecture=t.architecture,
                    **bases_read_later(option_args, t.runtime, t.architecture.value),
                )
                for t in chosen
            }
        prepared: dict[LambdaTarget, LayerBundling] = {}
        self.layers: dict[str, PipLambdaLayer] = {}
        executor = ThreadPoolExecutor(
            max_workers=_concurrent_builds(len(chosen)), thread_name_prefix="cdk-pip-layer-build"
        )
        turns = _InstallTurns()
        required = bundling_required(self)
        warnings: list[tuple[str, str]] = []  # the members' warnings, said once for the group below
        try:
            for t in chosen:
                label = f"{self.node.path}/{_member_id(t)}"
                prepared[t] = LayerBundling(
                    options[t], settings, label=label, bundling_required=required, warnings=warnings
                )
            stage = cdk.Stage.of(self)
            if required and stage is not None:
                _start_builds(
                    [p for p in prepared.values() if p.error is None], Path(stage.asset_outdir), executor, turns
                )
            for t in chosen:
                layer_name, parameter_name = names[t]
                self.layers[str(t)] = _Member(
                    self,
                    _member_id(t),
                    prepared=prepared.pop(t),
                    requirements=requirements,
                    runtime=cast(Runtime, t.runtime),
                    architecture=t.architecture.value,
                    description=description,
                    layer_version_name=layer_name,
                    license=license,
                    removal_policy=removal_policy,
                    grant_account_ids=grant_account_ids,
                    organization_id=organization_id,
                    ssm_parameter_name=parameter_name,
                    check_stacks=check_stacks,
                    **props,
                )
                if self.layers[str(t)].build_error is not None:
                    turns.abandon()  # the builds still waiting for their install give up rather than run one by one
            _say_warnings(self.node.path, warnings, members=len(chosen))
        except BaseException:
            turns.abandon()  # the builds still waiting for their install give up rather than run one by one
            raise
        finally:
            # After a failure: members never created still hold a build and a staged input.
            for left in prepared.values():
                left.bundler.discard()
                shutil.rmtree(left.staging, ignore_errors=True)
            for member in self.layers.values():
                if isinstance(member, _Member):
                    member.prepared.bundler.discard()
            executor.shutdown(wait=True, cancel_futures=True)

    def base_layer(self, target: LambdaTarget) -> BaseLayer:
        """The group as the base of another layer (``on_top_of=[group]``): its member built for ``target``."""
        return self.layer(target.runtime, target.architecture.value).base_layer(target)

    def layer(self, runtime: str | aws_lambda.Runtime, architecture: str | aws_lambda.Architecture) -> PipLambdaLayer:
        """The member built for this runtime and architecture."""
        target = _target((runtime, architecture))
        found = self.layers.get(str(target))
        if found is None:
            raise InvalidInputError(
                f"No layer for {target} in {self.node.path}",
                subject=str(target),
                hint=f"add it to targets, or pick one of {', '.join(self.layers)}.",
            )
        return found


class _Member(PipLambdaLayer):
    """A :class:`PipLambdaLayer` whose bundling the group made (and whose build it may have started) already."""

    def __init__(self, scope: Construct, id: str, *, prepared: LayerBundling, **props: Any) -> None:
        self.prepared = prepared
        super().__init__(scope, id, **props)

    def _layer_bundling(
        self, options: LayerBuildOptions, settings: BuildSettings, *, label: str, scope: Construct
    ) -> LayerBundling:
        if options != self.prepared.options:  # pragma: no cover - the group passes the same props
            raise AssertionError(f"{label}: the group prepared other options")
        return self.prepared


def _concurrent_builds(targets: int) -> int:
    """As many builds at once as this process may use CPUs: more only contend (their zips, verification and
    installers each use every CPU they get)."""
    return max(1, min(targets, available_cpus()))


class _GroupAbandoned(LayerBuildError):
    """A build of the group gave up before its install: another member failed, or the synth was interrupted."""


class _InstallTurns:
    """The install lock of a group's builds: one install at a time (one dependency set: at the same moment the
    downloads only compete for the network and the index, and the lookups for the resolver; one after the other, a
    later install finds the pure wheels an earlier one downloaded in the cache). Once the group is abandoned, a
    build whose turn comes gives up instead of installing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = threading.Event()

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._abandoned.is_set():
            self._lock.release()
            raise _GroupAbandoned(
                "Not built: another layer of the group failed",
                hint="fix the error of the other layer (above), and synthesize again.",
            )

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def abandon(self) -> None:
        self._abandoned.set()


def _say_warnings(group: str, warnings: list[tuple[str, str]], *, members: int) -> None:
    """Each warning of the group's ``members`` layers once: for the group when every layer has it, else for the
    layers that do."""
    for warning in dict.fromkeys(warning for _, warning in warnings):
        having = list(dict.fromkeys(label for label, said in warnings if said == warning))
        where = group if len(having) == members > 1 else ", ".join(having)
        sys.stderr.write(f"cdk-pip-layer: {where}: warning: {warning}\n")
    sys.stderr.flush()


def _start_builds(
    bundlings: list[LayerBundling], asset_outdir: Path, executor: ThreadPoolExecutor, turns: _InstallTurns
) -> None:
    """Start the local builds of the layers whose asset CDK has not staged yet. They take ``turns`` to install, and
    zip and verify beside each other."""
    sysconfig.get_config_vars()  # initialised once here: its first initialisation is not thread-safe (3.10, 3.11)
    staged = _staged_already(bundlings, asset_outdir)
    if staged is None:  # CDK's asset hash could not be known: build one at a time, as single layers do
        return
    for bundling, done in zip(bundlings, staged, strict=True):
        if done:
            bundling.bundler.say(f"{bundling.label}: already in {asset_outdir.name}, not built again")
        else:
            bundling.bundler.start(executor, asset_outdir, install_lock=turns)


@jsii.implements(cdk.ILocalBundling)
class _NeverBundles:
    """The probe's local bundling: the probe's stack is never bundled, so this is never called."""

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:  # pragma: no cover
        raise RuntimeError("the asset-hash probe must not bundle")


def _staged_already(bundlings: list[LayerBundling], asset_outdir: Path) -> list[bool] | None:
    """For each layer, whether ``cdk.out`` holds its asset already (CDK then skips its bundling). CDK's asset hash
    is sha256 of our custom hash and the JSON of the bundling options; the probe asks CDK itself for it, in an app
    whose stacks are never bundled (``post_cli_context`` wins over the CLI's own bundling-stacks)."""
    probe_dir = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-probe-"))
    try:
        app = cdk.App(outdir=str(probe_dir), auto_synth=False, post_cli_context={"aws:cdk:bundling-stacks": []})
        stack = cdk.Stack(app, "Probe")
        staged = []
        for number, bundling in enumerate(bundlings):
            probe = cdk.AssetStaging(
                stack,
                f"Asset{number}",
                source_path=str(bundling.staging),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=bundling.key,
                bundling=_with_local(bundling.bundling, cast(cdk.ILocalBundling, _NeverBundles())),
            )
            staged.append((asset_outdir / f"asset.{probe.asset_hash}").exists())
        return staged
    except Exception:  # a probe that fails only costs the concurrency
        return None
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def _with_local(options: cdk.BundlingOptions, local: cdk.ILocalBundling) -> cdk.BundlingOptions:
    return cdk.BundlingOptions(
        image=options.image,
        command=options.command,
        environment=options.environment,
        volumes=options.volumes,
        platform=options.platform,
        output_type=options.output_type,
        local=local,
    )


def _target(spec: object) -> LambdaTarget:
    if isinstance(spec, str):
        runtime, slash, architecture = spec.partition("/")
        if not slash:
            raise InvalidInputError(
                f"Invalid target {spec!r}",
                subject="targets",
                hint="write a target as 'python3.12/arm64', or as a pair ('python3.12', 'arm64').",
            )
        return LambdaTarget.parse(runtime, architecture)
    if isinstance(spec, tuple) and len(spec) == 2:
        runtime, architecture = spec
        runtime = runtime.name if isinstance(runtime, aws_lambda.Runtime) else runtime
        architecture = architecture.name if isinstance(architecture, aws_lambda.Architecture) else architecture
        return LambdaTarget.parse(str(runtime), str(architecture))
    raise InvalidInputError(
        f"Invalid target {spec!r}",
        subject="targets",
        hint="give each target as 'python3.12/arm64', or as a pair ('python3.12', 'arm64').",
    )


def _targets(specs: Sequence[TargetSpec]) -> list[LambdaTarget]:
    if isinstance(specs, str):  # one target, not a list of them
        specs = [specs]
    chosen: list[LambdaTarget] = []
    for spec in specs:
        target = _target(spec)
        if target in chosen:
            raise InvalidInputError(
                f"The target {target} is given twice",
                subject="targets",
                hint="give each runtime and architecture once.",
            )
        chosen.append(target)
    if not chosen:
        raise InvalidInputError(
            "No target given", subject="targets", hint="give at least one, e.g. targets=['python3.12/x86_64']."
        )
    return chosen


def _member_id(target: LambdaTarget) -> str:
    return f"{target.runtime}-{target.architecture.value}"


def _names(
    target: LambdaTarget, layer_version_name: str | None, ssm_parameter_name: str | None
) -> tuple[str | None, str | None]:
    """Each member's layer name and SSM parameter name, derived from the group's."""
    layer_name = parameter = None
    if layer_version_name is not None:
        layer_name = f"{layer_version_name}-{target.runtime.replace('.', '')}-{target.architecture.value}"
    if ssm_parameter_name is not None:
        separator = "/" if ssm_parameter_name.startswith("/") else "-"
        parameter = separator.join((ssm_parameter_name.rstrip("/"), target.runtime, target.architecture.value))
    return layer_name, parameter
