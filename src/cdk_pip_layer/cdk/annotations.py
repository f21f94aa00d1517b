"""A construct's error, as CDK's convention has it, without the jsii kernel's stack trace.

``Annotations.of(scope).add_error`` records the call's JavaScript stack (inside the jsii kernel, none of it the
user's), and the CDK CLI prints its first frame ("…/lib/program.js:1:5591") as a line of its own above the message.
The same metadata entry without a trace is what ``cdk synth`` reports as one error and fails on, and what
``aws_cdk.assertions.Annotations`` finds.
"""

from __future__ import annotations

from constructs import IConstruct

# The value of aws_cdk.cloud_assembly_schema.ArtifactMetadataEntryType.ERROR (jsii's Python enum gives its name).
ERROR_ENTRY = "aws:cdk:error"


def add_error(scope: IConstruct, message: str) -> None:
    """Fail the synth of ``scope``'s stack with ``message``, printed once by the CDK CLI (added once, as
    ``Annotations`` does, however often an aspect visits ``scope``)."""
    if not any(entry.type == ERROR_ENTRY and entry.data == message for entry in scope.node.metadata):
        scope.node.add_metadata(ERROR_ENTRY, message)
