"""The ``cdk-pip-layer`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .engine.errors import LayerBuildError
from .engine.index import IndexSettings
from .engine.local import PipBasedLambdaLayerLocalBuilder
from .engine.options import INSTALLER_CHOICES
from .engine.redact import redact
from .engine.target import SUPPORTED_RUNTIMES


class _PhaseFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        return f"[cdk-pip-layer {time.perf_counter() - self.start:6.1f}s] {redact(record.getMessage())}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdk-pip-layer",
        description="Build AWS Lambda layers from a requirements.txt, correct for the target runtime and "
        "architecture whatever the host is.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build",
        help="build DIR/layer.zip (and DIR/artifacts/python) from a requirements file",
        description="Build DIR/layer.zip from a requirements file. Exit codes: 0 built; 1 build failed; "
        "2 bad input; 3 a local build is impossible for this target (use the container build).",
    )
    build.add_argument(
        "--requirements",
        "-r",
        required=True,
        type=Path,
        help="the requirements file, or a lock file: pylock.toml, uv.lock, poetry.lock, Pipfile.lock",
    )
    build.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="for a lock file: a dependency group to install too (repeatable), e.g. a Poetry group besides main",
    )
    build.add_argument("--member", metavar="NAME", help="for a uv workspace's uv.lock: the member to build for")
    build.add_argument(
        "--runtime", default="python3.12", help=f"one of {', '.join(SUPPORTED_RUNTIMES)} (default: python3.12)"
    )
    build.add_argument("--architecture", default="x86_64", help="x86_64 (default) or arm64")
    build.add_argument("--output", "-o", required=True, type=Path, help="directory for layer.zip and artifacts/")
    build.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="a distribution to leave out (repeatable), e.g. boto3",
    )
    build.add_argument("--index-url", help="the package index (may hold credentials; never printed)")
    build.add_argument(
        "--extra-index-url", action="append", default=[], metavar="URL", help="another package index (repeatable)"
    )
    build.add_argument(
        "--trusted-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host whose TLS certificate is not checked (repeatable)",
    )
    build.add_argument(
        "--installer",
        choices=INSTALLER_CHOICES,
        default="auto",
        help="auto (default): pip with a Python of the runtime's version, else uv",
    )
    build.add_argument(
        "--python", dest="python_executable", metavar="PATH", help="the interpreter to run pip with (default: searched)"
    )
    build.add_argument(
        "--installer-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for pip/uv (repeatable), e.g. --installer-arg=--pre",
    )
    build.add_argument("--no-verify", action="store_true", help="skip the checks of the built layer")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    build.add_argument("--verbose", "-v", action="store_true", help="also show the commands run")
    return parser


def _build(args: argparse.Namespace) -> int:
    builder = PipBasedLambdaLayerLocalBuilder(
        requirements=args.requirements,
        build_dir=args.output,
        runtime=args.runtime,
        architecture=args.architecture,
        exclude=args.exclude,
        index=IndexSettings(
            index_url=args.index_url,
            extra_index_urls=tuple(args.extra_index_url),
            trusted_hosts=tuple(args.trusted_host),
        ),
        installer=args.installer,
        python_executable=args.python_executable,
        extra_installer_args=args.installer_arg,
        verify=not args.no_verify,
        groups=args.group,
        member=args.member,
    )
    result = builder.build()
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logger = logging.getLogger("cdk_pip_layer")
    handler: logging.Handler | None = None
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PhaseFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _build(args)
    except LayerBuildError as exc:
        print(f"cdk-pip-layer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cdk-pip-layer: interrupted; nothing was replaced", file=sys.stderr)
        return 130
    finally:
        if handler is not None:
            logger.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
