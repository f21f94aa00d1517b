"""The error of a request to AWS: what failed, for which resource, and what to do; with AWS's own error code."""

from __future__ import annotations

from collections.abc import Sequence

from cdk_pip_layer.engine.errors import LayerBuildError


class AwsError(LayerBuildError):
    """A request to AWS failed: refused, unreachable, or no credentials or region were found.

    Attributes:
        aws_code: the error code AWS answered with (e.g. ``AccessDeniedException``), when it answered.
    """

    def __init__(
        self,
        what: str,
        *,
        subject: str | None = None,
        details: Sequence[str] = (),
        hint: str | None = None,
        aws_code: str | None = None,
    ) -> None:
        super().__init__(what, subject=subject, details=details, hint=hint)
        self.aws_code = aws_code
