"""What AWS accepts for the names and texts a shared layer carries: layer names, account and organization ids,
SSM parameter names, a layer's description and licence. Pure checks, one definition, used by the CDK construct
(before CloudFormation sees a prop) and by ``cdk-pip-layer publish`` (before the first request).

Each pattern must match the whole name (``fullmatch``: ``$`` alone would let a trailing newline through)."""

from __future__ import annotations

import re

# PublishLayerVersion's LayerName: a name, or the layer's ARN.
_LAYER_NAME = re.compile(
    r"^([a-zA-Z0-9_-]{1,140}|arn:[a-zA-Z0-9-]+:lambda:[a-z0-9-]+:\d{12}:layer:[a-zA-Z0-9_-]{1,140})$"
)
_ACCOUNT = re.compile(r"^\d{12}$")
_ORGANIZATION = re.compile(r"^o-[a-z0-9]{10,32}$")
# SSM lists 2,048 characters for a name but keeps 1,037 of them for itself; a hierarchy has at most 15 levels.
_SSM_NAME = re.compile(r"^[a-zA-Z0-9_.\-/]{1,1011}$")
_SSM_LEVELS = 15

SSM_NAME_RULE = (
    "use 1 to 1,011 letters, digits and _ . - /; a path starts with '/' (e.g. '/platform/layers/deps/arn') and has "
    "at most 15 levels; names may not begin with 'aws' or 'ssm'."
)

DESCRIPTION_LIMIT = 256  # characters of a layer version's description
LICENSE_LIMIT = 512  # characters of a layer version's licence


def layer_name_ok(name: str) -> bool:
    """1 to 140 letters, digits, ``-`` and ``_``, or a layer ARN."""
    return bool(_LAYER_NAME.fullmatch(name))


def account_id_ok(account: str) -> bool:
    """Twelve digits."""
    return bool(_ACCOUNT.fullmatch(account))


def organization_id_ok(organization: str) -> bool:
    """``o-`` and 10 to 32 lower-case letters or digits."""
    return bool(_ORGANIZATION.fullmatch(organization))


def ssm_name_ok(name: str) -> bool:
    """1 to 1,011 letters, digits and ``_ . - /``; a hierarchical name starts with ``/`` and has at most 15
    levels; never ``aws…`` or ``ssm…``."""
    bare = name.lstrip("/").lower()
    hierarchical_ok = "/" not in name or (name.startswith("/") and name.count("/") <= _SSM_LEVELS)
    return bool(_SSM_NAME.fullmatch(name)) and hierarchical_ok and not bare.startswith(("aws", "ssm"))
