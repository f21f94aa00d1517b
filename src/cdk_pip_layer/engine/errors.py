"""One exception root for everything the build engine reports.

Every message says what failed, for which input, and what to do next. Messages never contain credentials:
they are redacted where the error is raised, and again in ``__str__`` as a last line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence

from .redact import redact


class LayerBuildError(Exception):
    """Root of every error raised by cdk-pip-layer.

    Attributes:
        what: one sentence saying what failed.
        subject: the input it failed for (a file, a package, a target).
        package: the distribution the error is about, when there is one.
        details: extra lines (for example the tail of pip's output), already redacted.
        hint: what to do next.
    """

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        subject: str | None = None,
        details: Sequence[str] = (),
        hint: str | None = None,
        package: str | None = None,
    ) -> None:
        self.package = package
        self.what = redact(what)
        self.subject = redact(subject) if subject else None
        self.details = tuple(redact(line) for line in details)
        self.hint = redact(hint) if hint else None
        super().__init__(self.message)

    @property
    def message(self) -> str:
        head = self.what if not self.subject else f"{self.what} [{self.subject}]"
        lines = [head]
        lines.extend(f"  | {line}" for line in self.details)
        if self.hint:
            lines.append(f"What to do: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-ready data (how a build inside a container reports it to the host)."""
        return {
            "type": type(self).__name__,
            "what": self.what,
            "subject": self.subject,
            "details": list(self.details),
            "hint": self.hint,
            "package": self.package,
        }

    @staticmethod
    def from_dict(data: dict[str, object]) -> LayerBuildError:
        """The error :meth:`to_dict` described, as the same class (a ContainerBuildError when unknown)."""
        cls = globals().get(str(data.get("type")))
        if not (isinstance(cls, type) and issubclass(cls, LayerBuildError)):
            cls = ContainerBuildError
        details = data.get("details")
        error = cls.__new__(cls)
        LayerBuildError.__init__(
            error,
            str(data.get("what") or "The build failed"),
            subject=str(data["subject"]) if data.get("subject") else None,
            details=[str(line) for line in details] if isinstance(details, list) else (),
            hint=str(data["hint"]) if data.get("hint") else None,
            package=str(data["package"]) if data.get("package") else None,
        )
        return error


class InvalidInputError(LayerBuildError):
    """The caller's input is wrong: a file, a runtime or architecture string, an option."""

    exit_code = 2


class RequirementsFileError(InvalidInputError):
    """The requirements file is missing, unreadable or has an invalid line."""


class UnsupportedTargetError(InvalidInputError):
    """A runtime or architecture that Lambda layers built by this tool cannot target."""


class InstallError(LayerBuildError):
    """The installer (pip or uv) failed."""


class IndexUnreachableError(InstallError):
    """The package index could not be reached (network, DNS, TLS or proxy failure)."""


class NoCompatibleDistributionError(InstallError):
    """No distribution of a package can be installed for the target."""


class LocalBuildUnavailableError(LayerBuildError):
    """A local build cannot produce a correct layer for this target; the container build can.

    The CDK construct catches this one (and only this one) to fall back to Docker bundling.
    """

    exit_code = 3


class NoTargetInstallerError(LocalBuildUnavailableError):
    """Neither an interpreter of the target's Python version nor uv is available on this host."""


class NativeSdistError(LocalBuildUnavailableError):
    """A package is published only as a source distribution with native code."""


class VerificationError(LayerBuildError):
    """The built layer would not work on the target."""


class SlimError(VerificationError):
    """Slimming removed or changed something the layer needs: an import or a distribution's metadata fails in the
    slimmed layer and works without slimming."""


class ContainerBuildError(LayerBuildError):
    """The container build could not run (Docker, image, emulation), or failed inside the container."""
