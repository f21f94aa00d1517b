"""Packages published only as source distributions: build the pure-Python ones into a wheel on the host; report
the ones with native code as needing the container build.

The source distribution comes from the same places the requirements file names (its ``-i``, ``--extra-index-url``,
``-f``, ``--trusted-host`` lines, and the build's index settings). With ``--hash`` pins it is checked against
them before any of its code runs (pip checks a download's hash before it prepares it); the wheel built from it is
then allowed as pip's hash-checking mode allows a wheel built from a checked sdist. The build always goes through
PEP 517 isolation (``--use-pep517``), so it needs no ``wheel`` or ``setuptools`` in the host's Python.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cdk_pip_layer.engine.errors import InstallError, LayerBuildError, LocalBuildUnavailableError, NativeSdistError
from cdk_pip_layer.engine.index import IndexSettings, pip_settings
from cdk_pip_layer.engine.inputs.requirements import RequirementsFile, expand_variables
from cdk_pip_layer.engine.process import CompletedRun, run
from cdk_pip_layer.engine.redact import url_secrets
from cdk_pip_layer.engine.target import LambdaTarget

from .failures import MissingDistribution, SourceBuildFailure, read_build_failure
from .index_pages import build_sources, offered_wheels
from .installer_file import index_lines
from .sdist_contents import native_code

# Installer arguments that say where packages come from; pip download and pip wheel must look in the same places.
_SOURCE_FLAGS = ("--no-index", "--pre")
_SOURCE_OPTIONS = ("--find-links", "-f")
# Lines of pip's answer that say why no source distribution fits the target.
_WHY = re.compile(r"(?i)requires-python|requires a different python|python *[<>=!~]=? *\d")
_HASH_MISMATCH = "DO NOT MATCH THE HASHES"
_PIP = ("-m", "pip")
_QUIET = ("--disable-pip-version-check", "--no-input", "--use-pep517")


def _source_args(extra_args: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pos, arg in enumerate(extra_args):
        if arg in _SOURCE_FLAGS or arg.startswith(tuple(f"{o}=" for o in _SOURCE_OPTIONS)):
            out.append(arg)
        elif arg in _SOURCE_OPTIONS and pos + 1 < len(extra_args):
            out += [arg, extra_args[pos + 1]]
    return out


def build_pure_wheel(
    missing: MissingDistribution,
    *,
    python: str,
    wheelhouse: Path,
    index: IndexSettings,
    target: LambdaTarget,
    requirements: RequirementsFile,
    allow_native: bool = False,
    extra_args: Sequence[str] = (),
) -> Path | list[str]:
    """Download the sdist of ``missing`` (hash-checked when pinned) and build a wheel from it into ``wheelhouse``.

    Returns the wheel when it is pure Python (``py3-none-any``), or any wheel with ``allow_native``; when no source
    distribution can be had for the target, the lines of pip's answer that say why (possibly none). Raises
    :class:`NativeSdistError` when native code keeps it from building here (the build image can), and another
    :class:`LayerBuildError` saying what failed when it does not build for another reason, or does not match its
    pinned hash.
    """
    build = _SourceBuild(
        missing, python, index=index, target=target, requirements=requirements, allow_native=allow_native,
        extra_args=extra_args,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cdk-pip-layer-sdist-") as tmp:
        sdist = build.download(Path(tmp))
        if not isinstance(sdist, Path):
            return sdist
        wheel = build.wheel(sdist, Path(tmp) / "wheel")
        wheelhouse.mkdir(parents=True, exist_ok=True)
        dest = wheelhouse / wheel.name
        shutil.move(wheel, dest)  # the temporary directory may be on another file system than the wheelhouse
        return dest


class _SourceBuild:
    def __init__(
        self,
        missing: MissingDistribution,
        python: str,
        *,
        index: IndexSettings,
        target: LambdaTarget,
        requirements: RequirementsFile,
        allow_native: bool,
        extra_args: Sequence[str],
    ) -> None:
        self.missing = missing
        self.python = python
        self.index = index
        self.target = target
        self.requirements = requirements
        self.allow_native = allow_native
        self.extra_args = tuple(extra_args)
        self.source_args = _source_args(extra_args)
        self.hashes = requirements.hashes_for(missing.name)
        self.cwd = requirements.path.resolve().parent  # where the installer resolved relative paths
        file_secrets = [s for url in requirements.index_urls for s in url_secrets(expand_variables(url))]
        self.secrets = [*index.secrets, *file_secrets]

    def _run(self, argv: Sequence[str]) -> CompletedRun:
        return run([self.python, *_PIP, *argv], env=self.index.pip_env(), cwd=self.cwd, secrets=self.secrets)

    def _options_file(self, tmp: Path, *requirement: str) -> Path:
        """The requirements file's index lines (and ``requirement``) for pip download and pip wheel."""
        path = tmp / ("download.txt" if requirement else "indexes.txt")
        path.write_text("\n".join([*index_lines(self.requirements), *requirement]) + "\n", encoding="utf-8")
        return path

    def download(self, tmp: Path) -> Path | list[str]:
        """The sdist, checked against its pinned hashes; or why there is none for the target."""
        if self.requirements.require_hashes and not self.hashes:
            raise InstallError(
                f"{self.missing.name} has no --hash pin, and the requirements are in hash-checking mode",
                package=self.missing.name,
                subject=str(self.requirements.path),
                hint=f"pin {self.missing.name} with its version and hashes (pip-compile --generate-hashes), as "
                "pip requires of every requirement in this mode.",
            )
        pinned = _pinned_version(self.missing.requirement)
        if pinned is not None and not self.allow_native:
            self._refuse_if_native_elsewhere(pinned)  # before anything of the sdist is fetched or run
        line = " ".join([self.missing.requirement, *(f"--hash={h}" for h in self.hashes)])
        dest = tmp / "sdist"
        fetched = self._run(
            [
                "download", *_QUIET, "--no-deps", "--no-binary=:all:",
                "--python-version", self.target.python_version_str,  # Requires-Python judged for the target
                "--dest", str(dest), *self.source_args, "-r", str(self._options_file(tmp, line)),
            ]
        )  # fmt: skip
        if _HASH_MISMATCH in fetched.output:
            raise self._hash_mismatch(fetched.tail(12))
        if not fetched.ok:
            failure = read_build_failure(fetched.output)
            if _prepared(fetched.output):
                seen = _sdist_version(fetched.output, self.missing.name)
                if seen is not None and not self.allow_native:
                    self._refuse_if_native_elsewhere(seen)  # the true answer, not the build's own failure
                raise self._build_error(failure)
            why = [line.strip() for line in fetched.output.splitlines() if _WHY.search(line)][:4]
            return [line if len(line) <= 240 else line[:239] + "…" for line in why]
        sdists = sorted(dest.iterdir()) if dest.is_dir() else []
        if not sdists:
            return []
        self._verify(sdists[0])
        native = None if self.allow_native else native_code(sdists[0])
        if native is not None:
            raise NativeSdistError(
                f"{self.missing.name} is published only as a source distribution with native code ({native}): a "
                f"wheel compiled on this host would not be one for {self.target}",
                package=self.missing.name,
                subject=self.missing.requirement,
                hint=f"build in the Lambda build image for {self.target}, which compiles it: use the container "
                "builder, or bundling='docker'/'auto' in the CDK construct.",
            )
        return sdists[0]

    def _refuse_if_native_elsewhere(self, version: Version) -> None:
        """No wheel fits the target, but the project publishes wheels of ``version`` for the target's Python on other
        platforms, none pure: its source distribution compiles native code for that Python, which only the target's
        build image can do (scikit-learn 1.9.1 for python3.11/arm64, whose aarch64 wheels need a newer glibc). An
        index that cannot be read says nothing."""
        name = canonicalize_name(self.missing.name)
        sources = build_sources(
            self.index, pip_settings(self.python), self.extra_args, self.requirements.files, cwd=self.cwd
        )
        offers = offered_wheels(sources, [name], keep=lambda filename: f"-{version}-" in filename).get(name, ())
        if isinstance(offers, str):
            return
        wheels = [wheel for wheel in offers if wheel.version == version]
        tags = {tag for wheel in wheels for tag in wheel.tags}
        if not wheels or tags & set(self.target.supported_tags) or any(t.platform == "any" for t in tags):
            return
        pythons = {(tag.interpreter, tag.abi) for tag in self.target.supported_tags if tag.abi != "none"}
        if not any((tag.interpreter, tag.abi) in pythons for tag in tags):
            # No extension built against the target's Python anywhere (tbb's py3-none wheels carry a prebuilt
            # library and it has no sdist): whether a source build could serve the target, only a build says.
            return
        offered = sorted({"-".join(w.filename.removesuffix(".whl").split("-")[-3:]) for w in wheels})
        raise NativeSdistError(
            f"No wheel of {self.missing.requirement} for {self.target}, and its source distribution has native "
            f"code: {self.missing.name} {version} publishes wheels for other targets only",
            package=self.missing.name,
            subject=self.missing.requirement,
            details=[
                "its wheels: " + ", ".join(offered[:8]) + (", …" if len(offered) > 8 else ""),
                f"tags the target accepts: {self.target.describe_tags()}",
            ],
            hint=f"build in the Lambda build image for {self.target}, which can build it from source: use the "
            "container builder, or bundling='docker'/'auto' in the CDK construct; or pin a version with a wheel for "
            f"{self.target}.",
        )

    def _verify(self, sdist: Path) -> None:
        """The sdist's digest is one of the pinned ones (pip checked it already: this is the engine's own check)."""
        if not self.hashes:
            return
        data = sdist.read_bytes()
        got = {f"{name}:{hashlib.new(name, data).hexdigest()}" for name in ("sha256", "sha384", "sha512")}
        if not got & set(self.hashes):
            raise self._hash_mismatch([f"{sdist.name}: sha256:{hashlib.sha256(data).hexdigest()}"])

    def _hash_mismatch(self, details: Sequence[str]) -> LayerBuildError:
        wanted = canonicalize_name(self.missing.name)
        where = next(
            (
                line.where
                for line in (*self.requirements.requirements, *self.requirements.constraints)
                if line.hashes and line.requirement and canonicalize_name(line.requirement.name) == wanted
            ),
            str(self.requirements.path),
        )
        return InstallError(
            f"The source distribution of {self.missing.requirement} does not match the --hash pinned for it; "
            "nothing of it was built or run",
            package=self.missing.name,
            subject=where,
            details=[line for line in details if line.strip()],
            hint="if the pin is out of date, pin the hashes of the release you mean (pip hash <file>, or "
            "pip-compile --generate-hashes); otherwise the index serves another file than the one you pinned: "
            "find out why before you build.",
        )

    def wheel(self, sdist: Path, out: Path) -> Path:
        """Build ``sdist`` into a wheel in ``out``, through PEP 517 isolation."""
        built = self._run(
            ["wheel", *_QUIET, "--no-deps", "--wheel-dir", str(out), *self.source_args,
             "-r", str(self._options_file(sdist.parent.parent)), str(sdist)]
        )  # fmt: skip
        wheels = sorted(out.glob("*.whl")) if built.ok else []
        if not wheels:
            raise self._build_error(read_build_failure(built.output))
        wheel = wheels[0]
        _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
        if not self.allow_native and any(tag.abi != "none" or tag.platform != "any" for tag in wheel_tags):
            raise NativeSdistError(
                f"{self.missing.name} is published only as a source distribution with native code "
                f"(it builds to {wheel.name} here)",
                package=self.missing.name,
                subject=self.missing.requirement,
                hint=f"build in the Lambda build image for {self.target}: use the container builder, or "
                "bundling='docker'/'auto' in the CDK construct.",
            )
        return wheel

    def _build_error(self, failure: SourceBuildFailure) -> LayerBuildError:
        python = _python_version(self.python) if failure.kind == "python" else ""
        return source_build_error(
            failure, self.missing, target=self.target, build_python=python, allow_native=self.allow_native
        )


def source_build_error(
    failure: SourceBuildFailure,
    missing: MissingDistribution,
    *,
    target: LambdaTarget,
    build_python: str,
    allow_native: bool = False,
) -> LayerBuildError:
    """The error for a source distribution that did not build (``build_python``: the version that built it),
    advising only what can work: the build image has compilers, but runs the target's Python like the host's."""
    name, req = missing.name, missing.requirement
    image = f"the Lambda build image for {target} (the container builder, or bundling='docker')"
    error: type[LayerBuildError]
    if failure.kind == "native" and not allow_native:
        error, what, hint = (
            NativeSdistError,
            f"{name} is published only as a source distribution for {target}, and its native code does "
            "not build on this host",
            f"build in {image}: it has the compilers and headers.",
        )
    elif failure.kind == "build-backend":
        error, what, hint = (
            InstallError,
            f"The build backend of {req}'s source distribution could not be installed",
            "it is installed from the same indexes as the packages: check that they serve it "
            "(setuptools, hatchling, …) and are reachable, then build again.",
        )
    elif failure.kind == "python" and build_python == target.python_version_str:
        error, what, hint = (
            InstallError,
            f"{req} does not build on Python {build_python}: its source distribution fails",
            f"pin a release of '{name}' that supports Python {build_python} (a later one may also publish a "
            "wheel); the Lambda build image runs the same Python, so it cannot build this release either.",
        )
    elif failure.kind == "python":
        error, what, hint = (
            LocalBuildUnavailableError,
            f"{req}'s source distribution does not build on this host's Python {build_python}",
            f"build in {image}, which runs Python {target.python_version_str}; or pin a release of "
            f"'{name}' that supports both.",
        )
    else:
        where = "in the build image" if allow_native else "on this host"
        what = f"{req}'s source distribution does not build {where}"
        error, hint = InstallError, f"read the lines above: pin a release of '{name}' with a wheel for {target}"
        hint += ", or give the build what it asks for" + ("." if allow_native else f" ({image} has compilers).")
    return error(what, package=name, subject=req, details=failure.lines, hint=hint)


def _prepared(output: str) -> bool:
    """pip found the source distribution and ran its code to prepare it (which failed)."""
    signs = ("metadata-generation-failed", "subprocess-exited-with-error", "Getting requirements to build")
    return any(sign in output for sign in signs)


def _python_version(python: str) -> str:
    if python == sys.executable:
        return "{}.{}".format(*sys.version_info[:2])
    done = run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=60)
    return done.output.strip().splitlines()[-1] if done.ok and done.output.strip() else "?"


def _pinned_version(requirement: str) -> Version | None:
    """The version ``requirement`` pins with ``==`` (as a lock's and a hash-pinned file's do), else None."""
    try:
        specs = list(Requirement(requirement).specifier)
    except InvalidRequirement:
        return None
    exact = [spec.version for spec in specs if spec.operator in ("==", "===") and "*" not in spec.version]
    try:
        return Version(exact[0]) if len(specs) == 1 and exact else None
    except InvalidVersion:
        return None


def _sdist_version(output: str, name: str) -> Version | None:
    """The version of the source distribution of ``name`` pip fetched, from its output ("Downloading
    scikit_learn-1.9.1.tar.gz"), when it says so."""
    spelled = re.escape(canonicalize_name(name)).replace("\\-", "[-_.]")
    found = re.search(rf"(?i)\b{spelled}-([^\s/-]+)\.(?:tar\.gz|zip)\b", output)
    try:
        return Version(found.group(1)) if found else None
    except InvalidVersion:
        return None
