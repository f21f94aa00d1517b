"""The ``cdk-pip-layer`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from packaging.requirements import Requirement

from ._version import __version__
from .build import build_layer
from .engine.base_layer import BaseLayer
from .engine.errors import ContainerBuildError, InvalidInputError, LayerBuildError
from .engine.findings import CHECKS
from .engine.inputs.locked import read_input
from .engine.options import (
    BuildSettings,
    LayerBuildOptions,
    SandboxKind,
    cli_arguments,
    cli_path,
    flag_arguments,
    in_cli_terms,
)
from .engine.progress import heartbeat
from .engine.redact import redact
from .engine.target import SUPPORTED_RUNTIMES, LambdaTarget
from .engine.verify.infer_target import infer_stack_target
from .engine.verify.report import LayerReport, write_report
from .engine.verify.stack import check_stack, read_stack_layer
from .engine.verify.verifier import BuildContext, ImportMode, LayerVerification, verify_layer_zip
from .publish import DIRECT_UPLOAD_LIMIT, publish_layer

_log = logging.getLogger("cdk_pip_layer")


class _PhaseFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        return f"[cdk-pip-layer {time.perf_counter() - self.start:6.1f}s] {redact(record.getMessage())}"


class _PlainFormatter(logging.Formatter):
    """Without -v: what publish did, and warnings said as the summary's warnings are."""

    def format(self, record: logging.LogRecord) -> str:
        warning = "warning: " if record.levelno >= logging.WARNING else ""
        return f"cdk-pip-layer: {warning}{redact(record.getMessage())}"


class _UsageError(InvalidInputError):
    """A command line argparse refused (a flag missing, unknown or without its value)."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage error is one message (what is wrong, and where the help is), as every other
    error of the command line is: not the whole usage (15 lines for build) before it."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, subject=self.prog, hint=f"see '{self.prog} --help' for what it takes.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cdk-pip-layer",
        description="Build AWS Lambda layers from a requirements.txt, correct for the target runtime and "
        "architecture whatever the host is, and publish them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The global flags, before the command or after it (as in uv): unset unless given, so that the command's own
    # defaults never overwrite what was given before it (see _global_flags).
    common = _Parser(add_help=False)
    for target in (parser, common):
        target.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
        target.add_argument(
            "--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="nothing on stderr but errors"
        )
        target.add_argument(
            "--verbose",
            "-v",
            action="count",
            default=argparse.SUPPRESS,
            help="show each phase and its time (-v), and the commands run (-vv)",
        )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_build_command(commands, common)
    _add_verify_command(commands, common)
    _add_publish_command(commands, common)
    return parser


def command_parser() -> argparse.ArgumentParser:
    """The parser of the command line, as ``main`` makes it (its flags are documented from it)."""
    return _parser()


def _add_build_command(commands: Any, common: argparse.ArgumentParser) -> None:
    build = commands.add_parser(
        "build",
        parents=[common],
        help="build DIR/layer.zip (and DIR/artifacts/python) from a requirements file",
        description="Build DIR/layer.zip from a requirements file, on this host or in the Lambda build image. "
        "Exit codes: 0 built; 1 build failed; 2 bad input; 3 a local build is impossible for this target "
        "(--bundling local only: auto then builds in the Lambda build image).",
    )
    build.set_defaults(run=_build)
    # Every build option's and build setting's flags, as their declarations give them (engine/options.py).
    for names, kwargs in flag_arguments(LayerBuildOptions):
        build.add_argument(*names, **kwargs)
    # A string, not a Path: Path("") would be the current directory, and an empty output must be refused.
    build.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="DIR",
        help="directory for layer.zip and artifacts/ (not empty: -o . for the current one)",
    )
    where = build.add_argument_group("where it is built, and the caches")
    for names, kwargs in flag_arguments(BuildSettings):
        where.add_argument(*names, **kwargs)


def _add_verify_command(commands: Any, common: argparse.ArgumentParser) -> None:
    checks = "; ".join(f"{name}: {what}" for name, what in CHECKS.items())
    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="check any layer zip for a Lambda runtime and architecture",
        description="Check a layer zip (built by anything) for a Lambda runtime and architecture, and print its "
        "report. Without --runtime or --architecture, the target is read from the layer (its wheel tags, ELF files "
        "and byte-code). Exit codes: 0 the layer is good (warnings allowed); 1 problems found; 2 bad input, or a "
        "target the layer does not tell.",
        epilog=f"checks: {checks}",
    )
    verify.set_defaults(run=_verify)
    verify.add_argument("zip", type=cli_path, metavar="LAYER.zip", help="the layer zip")
    verify.add_argument(
        "--runtime",
        help=f"one of {', '.join(SUPPORTED_RUNTIMES)} (default: inferred from the layer's wheel tags, extension "
        "modules and byte-code)",
    )
    verify.add_argument(
        "--architecture", help="x86_64 or arm64 (default: inferred from the layer's wheel tags and ELF files)"
    )
    verify.add_argument(
        "--ignore", action="append", default=[], metavar="CHECK", help="turn one check off (repeatable)"
    )
    verify.add_argument(
        "--import",
        dest="smoke_import",
        nargs="?",
        const="auto",
        default="off",
        choices=[mode.value for mode in ImportMode],
        help="import every top-level module in a clean interpreter of the runtime's version: here when one "
        "exists (--import), or in the Lambda build image (--import=docker)",
    )
    verify.add_argument(
        "--python", dest="python_executable", type=cli_path, metavar="PATH", help="the interpreter to import with"
    )
    verify.add_argument(
        "--import-sandbox",
        choices=[kind.value for kind in SandboxKind],
        default=SandboxKind.AUTO.value,
        help="where --import runs the layer's code: auto (default: bubblewrap, else for root a user id of its own; "
        "with neither the import is skipped with a warning), bubblewrap, user, or none (unconfined: only for a "
        "layer you trust)",
    )
    verify.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="a distribution left out on purpose: a dependency on it is not a finding (repeatable)",
    )
    verify.add_argument(
        "--requirements",
        "-r",
        type=cli_path,
        metavar="FILE",
        help="the requirements (or lock) file the layer was built from: its extras are followed in the dependencies "
        "check",
    )
    verify.add_argument(
        "--report", type=cli_path, metavar="DIR", help="write layer.report.json and layer.cdx.json (CycloneDX) into DIR"
    )
    _add_stack_flag(verify)


def _verify(args: argparse.Namespace) -> int:
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise InvalidInputError(
            "The report directory is not a directory",
            subject=str(args.report),
            hint="name a directory (made if missing) for layer.report.json and layer.cdx.json.",
        )
    # What was not given is read from the layer (or it asks for it: exit 2); everything after uses the target.
    inference = infer_stack_target(args.zip, args.on_top_of, runtime=args.runtime, architecture=args.architecture)
    inferred = inference.require(str(args.zip))
    args.runtime, args.architecture = inferred.runtime, inferred.architecture.value
    if inference.describe() and not args.quiet:
        _say(inference.describe())
    requirements: tuple[Requirement, ...] = ()
    if args.requirements is not None:  # a requirements or lock file, read for the layer's target
        parsed = read_input(
            LayerBuildOptions.parse(
                requirements=args.requirements, runtime=args.runtime, architecture=args.architecture
            )
        )
        requirements = tuple(line.requirement for line in parsed.requirements if line.requirement)
    importer = None
    if args.smoke_import == ImportMode.DOCKER.value:
        from .container.smoke import DockerImporter  # the Docker SDK only when asked for

        importer = DockerImporter()
        target = LambdaTarget.parse(args.runtime, args.architecture)
        cannot = importer.unavailable(target)
        if cannot:  # asked for by name: not a check to skip quietly
            raise ContainerBuildError(
                f"The smoke import in the Lambda build image cannot run: {cannot}",
                subject=str(args.zip),
                hint="start Docker and pull the image, or use --import (a local interpreter of the runtime's "
                "version) or --ignore import.",
            )
    verification = verify_layer_zip(
        args.zip,
        args.runtime,
        args.architecture,
        ignore=args.ignore,
        context=BuildContext(requirements=requirements, excluded=tuple(args.exclude), on_top_of=_bases(args)),
        smoke_import=args.smoke_import,
        importer=importer,
        python=os.fspath(args.python_executable) if args.python_executable is not None else None,
        import_sandbox=args.import_sandbox,
    )
    if args.report is not None:
        _write_report(verification.report, args.report)
    inferred_field: dict[str, object] = {"target_inference": inference.to_dict()}
    if args.on_top_of:
        return _print_with_stack(args, verification, inferred_field)
    print(_json({**verification.report.to_dict(), **inferred_field}) if args.json else verification.summary())
    return 0 if verification.ok else 1


def _json(data: dict[str, object]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def _write_report(report: LayerReport, directory: Path) -> None:
    """``verify --report DIR``: the report files, or one error saying why they cannot be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_report(report, directory)
    except OSError as exc:
        raise InvalidInputError(
            f"The report cannot be written ({exc.strerror or exc})",
            subject=str(directory),
            hint="name a directory you may write (made if missing) for layer.report.json and layer.cdx.json.",
        ) from None


# --- verify --on-top-of: the layer with the layers under it ---------------------------------------------------------


def _add_stack_flag(verify: argparse.ArgumentParser) -> None:
    verify.add_argument(
        "--on-top-of",
        action="append",
        default=[],
        type=cli_path,
        metavar="BASE.zip",
        help="a layer the function lists before this one (repeatable, in the function's order; a zip, or a "
        "layer.report.json): the stack is checked as Lambda extracts it (the same distribution or file in two "
        "layers, the combined size, at most five layers)",
    )


def _bases(args: argparse.Namespace) -> tuple[BaseLayer, ...]:
    """The ``--on-top-of`` layers as bases of the layer verified: their distributions count as present."""
    target = LambdaTarget.parse(args.runtime, args.architecture)
    return tuple(read_stack_layer(path, target, role="base layer").base() for path in args.on_top_of)


def _print_with_stack(args: argparse.Namespace, verification: LayerVerification, extra: dict[str, object]) -> int:
    """The layer's report and the stack's checks (the bases in their order, then the layer): printed together,
    failing when either has an error."""
    target = LambdaTarget.parse(args.runtime, args.architecture)
    bases = [read_stack_layer(path, target, role="base layer") for path in args.on_top_of]
    layers = [*bases, read_stack_layer(args.zip, target)]
    stack = check_stack(layers, runtime=target.runtime, architecture=target.architecture.value)
    if args.json:
        print(_json({**verification.report.to_dict(), **extra, "stack": stack.to_dict()}))
    else:
        print("\n".join([verification.summary(), *stack.summary()]))
    return 0 if verification.ok and stack.ok else 1


def _output_directory(value: str) -> str:
    """``--output``, refused when empty: an empty path is the current directory, whose ``artifacts/`` a build
    replaces."""
    if not value:
        raise InvalidInputError(
            "The output directory is empty",
            subject="--output",
            hint="name the directory that receives layer.zip and artifacts/, e.g. -o build/layer (or -o . for the "
            "current directory, whose artifacts/ and layer.zip are then replaced).",
        )
    return value


def _command_actions(parser: argparse.ArgumentParser, command: str) -> list[argparse.Action]:
    """The arguments of ``command`` (build, verify, publish), as its own parser declares them."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(commands.choices[command]._actions)


def _flag(action: argparse.Action) -> str | None:
    """How the user names an argument: its long flag, else its metavar (a positional's ``LAYER.zip``)."""
    metavar = action.metavar if isinstance(action.metavar, str) else None
    return next((name for name in action.option_strings if name.startswith("--")), metavar)


def _refuse_empty_paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """An empty path given to any path flag of the command (``-r ''``, ``--cache-dir ''``, ``verify ''``): refused
    by its flag before anything runs. ``Path('')`` is the current directory, which a build would fill, a cache
    would be written into, and a verify would read as the layer."""
    for action in _command_actions(parser, args.command):
        value = getattr(args, action.dest, None)
        if action.type is cli_path and (value == "" or (isinstance(value, list) and "" in value)):
            flag = _flag(action)
            raise InvalidInputError(
                f"The path given to {flag} is empty",
                subject=str(flag),
                hint="name the file or directory (an empty path is not the current directory: write . for it).",
            )


def _build(args: argparse.Namespace) -> int:
    output = _output_directory(args.output)
    with heartbeat(_say if not args.quiet else _silent):
        built = build_layer(
            build_dir=output,
            **cli_arguments(LayerBuildOptions, args),
            **cli_arguments(BuildSettings, args),
        )
    # The summary as a CLI user types the options (built: locally (--bundling auto: …), a warning's --slim-remove);
    # the JSON document is the library's, whose "bundling" field holds the mode.
    print(json.dumps(built.to_dict(), indent=2) if args.json else in_cli_terms(built.summary()))
    return 0


def _add_publish_command(commands: Any, common: argparse.ArgumentParser) -> None:
    publish = commands.add_parser(
        "publish",
        parents=[common],
        help="publish LAYER.zip as a Lambda layer version (nothing when the latest version has this content)",
        description="Publish a layer zip as a version of a Lambda layer through the AWS SDK (boto3: profiles, "
        "AWS_REGION, AWS_ENDPOINT_URL as you configure them), unless the latest version already has this "
        "content. Prints the layer version ARN on stdout. Exit codes: 0 published or already there; 1 AWS refused "
        "or could not be reached (nothing is left half-published); 2 bad input, or boto3 is not installed.",
    )
    publish.set_defaults(run=_publish)
    publish.add_argument("zip", type=cli_path, metavar="LAYER.zip", help="the layer zip (e.g. build/layer/layer.zip)")
    publish.add_argument(
        "--layer-name", required=True, metavar="NAME", help="the layer's name (1 to 140 letters, digits, -, _) or ARN"
    )
    publish.add_argument(
        "--runtime", required=True, help=f"the runtime it was built for: {', '.join(SUPPORTED_RUNTIMES)}"
    )
    publish.add_argument("--architecture", required=True, help="the architecture it was built for: x86_64 or arm64")
    publish.add_argument("--description", help="the version's description (at most 256 characters)")
    publish.add_argument("--license", help="the version's licence, e.g. an SPDX identifier (at most 512 characters)")
    publish.add_argument(
        "--s3-bucket",
        metavar="BUCKET",
        help=f"upload through this bucket (in the layer's region) a zip over {DIRECT_UPLOAD_LIMIT:,} bytes",
    )
    publish.add_argument("--s3-prefix", metavar="PREFIX", help="key prefix in the bucket (e.g. layers/)")
    publish.add_argument(
        "--grant-account",
        action="append",
        default=[],
        metavar="ID",
        help="an account allowed lambda:GetLayerVersion on the version (repeatable)",
    )
    publish.add_argument("--organization-id", metavar="o-…", help="an AWS Organization whose accounts may use it")
    publish.add_argument("--ssm-parameter", metavar="NAME", help="an SSM String parameter that receives the ARN")
    publish.add_argument("--profile", help="the AWS profile (default: AWS_PROFILE, else the default profile)")
    publish.add_argument("--region", help="the AWS region (default: AWS_REGION, else the profile's)")


def _publish(args: argparse.Namespace) -> int:
    published = publish_layer(
        args.zip,
        layer_name=args.layer_name,
        runtime=args.runtime,
        architecture=args.architecture,
        description=args.description,
        license=args.license,
        s3_bucket=args.s3_bucket,
        s3_prefix=args.s3_prefix,
        grant_account_ids=args.grant_account,
        organization_id=args.organization_id,
        ssm_parameter_name=args.ssm_parameter,
        profile=args.profile,
        region=args.region,
    )
    print(json.dumps(published.to_dict(), indent=2) if args.json else published.version_arn)
    return 0


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[list[int]]:
    """While the block runs, SIGTERM (what CI systems and ``timeout`` send) raises KeyboardInterrupt as SIGINT does,
    so that the build stops the installer and removes its files the same way. Yields the signals received.

    Only the command line installs handlers (in the main thread, restored afterwards): the library itself cleans up
    on the exception, whatever raised it. A signal the caller ignores stays ignored: a shell without job control
    starts background jobs with SIGINT ignored, so that a Ctrl-C meant for the foreground does not stop them."""
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {
        signum: signal.signal(signum, interrupt)
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# What an interruption leaves, by command.
_INTERRUPTED = {
    "build": "the build stopped, its temporary files are removed and the output directory holds no partial layer",
    "verify": "the check stopped; nothing was written",
    "publish": "publishing stopped; run the same command again to finish it (it publishes nothing twice)",
}


_SIGPIPE = 13  # signal.SIGPIPE, which Windows lacks


GLOBAL_FLAGS = ("json", "quiet", "verbose")


def _global_flags(args: argparse.Namespace) -> argparse.Namespace:
    """The global flags, False (0 for -v) where given nowhere."""
    for name in GLOBAL_FLAGS:
        setattr(args, name, getattr(args, name, 0 if name == "verbose" else False))
    return args


def _say(message: str) -> None:
    """A line for the user on stderr while a command runs (a heartbeat, a warning)."""
    print(f"cdk-pip-layer: {redact(message)}", file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    del message


_LEVELS = {0: logging.WARNING, 1: logging.INFO}  # -v: the phases; -vv and more: the commands run too


def _log_level(args: argparse.Namespace) -> int:
    """build and verify say nothing on success but their result; publish also says what it did in AWS (published
    a version, or found it there already; granted; wrote the SSM parameter)."""
    if args.command == "publish" and not args.verbose:
        return logging.INFO
    return _LEVELS.get(args.verbose, logging.DEBUG)


def _subjects(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The words a check of the command names one of its flags by (``grant account``, ``layer_name``), with the
    flag: from the command's own parser. A path the user gave stays itself (a file named ``requirements``)."""
    out: dict[str, str] = {}
    given = {str(args.output)} if getattr(args, "output", None) else set()
    for action in _command_actions(parser, args.command):
        flag = _flag(action)
        words = {action.dest, action.dest.replace("_", " ")}
        words |= {name.lstrip("-").replace("-", sep) for name in action.option_strings for sep in ("-", " ", "_")}
        out.update(dict.fromkeys(words, str(flag or action.dest)))
        value = getattr(args, action.dest, None)
        if action.type is cli_path and value is not None:
            given.update(str(item) for item in (value if isinstance(value, list) else [value]))
    return {word: flag for word, flag in out.items() if word not in given} | {path: path for path in given}


def _cli_error(exc: LayerBuildError, subjects: dict[str, str]) -> dict[str, object]:
    """The error as :meth:`LayerBuildError.to_dict` gives it, its options named as a CLI user gives them (the
    library's messages name the Python API's keyword arguments: ``extra_installer_args``, ``bundling=docker``);
    ``subjects``: the command's flags by the words its checks use (see :func:`_subjects`)."""
    error = exc.to_dict()
    for key in ("what", "hint"):
        if isinstance(error[key], str):
            error[key] = in_cli_terms(str(error[key]))
    if isinstance(error["subject"], str):
        error["subject"] = subjects.get(error["subject"]) or in_cli_terms(error["subject"], subject=True)
    return error  # the details as they are: the installer's own output, quoted


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = _global_flags(parser.parse_args(argv))
    except _UsageError as exc:
        print(f"cdk-pip-layer: error: {exc.what}\nWhat to do: {exc.hint}", file=sys.stderr)
        if "--json" in (sys.argv[1:] if argv is None else argv):  # as for every other error
            print(_json({"error": {**exc.to_dict(), "exit_code": exc.exit_code}}))
        return exc.exit_code
    logger = logging.getLogger("cdk_pip_layer")
    handler: logging.Handler
    if args.quiet:
        # Nothing but errors, and every error reaches the user as the command's one error message: a handler that
        # drops the records, or a warning no handler took would reach stderr through logging's last resort.
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PhaseFormatter() if args.verbose else _PlainFormatter())
        logger.setLevel(_log_level(args))
    logger.addHandler(handler)
    try:
        run: Callable[[argparse.Namespace], int] = args.run
        with _stop_signals_interrupt() as received:
            try:
                _refuse_empty_paths(args, parser)
                code = run(args)
                sys.stdout.flush()  # here, where a reader that went away is handled, not at interpreter exit
                return code
            except KeyboardInterrupt:
                signum = signal.Signals(received[0] if received else signal.SIGINT)
                print(f"cdk-pip-layer: interrupted by {signum.name}: {_INTERRUPTED[args.command]}", file=sys.stderr)
                return 128 + signum.value
    except LayerBuildError as exc:
        error = _cli_error(exc, _subjects(parser, args))
        print(f"cdk-pip-layer: error: {LayerBuildError.from_dict(error)}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading --json gets a document, the error in it
            print(_json({"error": {**error, "exit_code": exc.exit_code}}))
        return exc.exit_code
    except BrokenPipeError:
        # The reader of our output stopped early (`| head -1`): end as a program stopped by SIGPIPE would, and
        # keep the interpreter from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + _SIGPIPE
    finally:
        logger.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
