"""Records signed with an asymmetric AWS KMS key: trusted jobs sign with ``kms:Sign``; every job verifies with the
key's public key (``kms:GetPublicKey``, asked once), here, with the ``cryptography`` library. A job that may read
the public key but not sign can read the shared store and never write an entry that others would serve.

What is signed is a short message naming the record's content by its sha256 (KMS signs messages of at most 4 KB;
the prefix keeps a signature of this key for anything else from passing as a record's). The record keeps the
signature, the algorithm and the key's ARN; it is checked against the configured key, never the one it names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdk_pip_layer.aws.errors import AwsError

from .layer_store import KMS_KEY_VARIABLE

if TYPE_CHECKING:
    from cdk_pip_layer.aws.session import Aws

_MESSAGE_PREFIX = b"cdk-pip-layer layer store record, sha256 "
# KMS's signing algorithms: the hash and the scheme of each, in the order a signer prefers them.
_ALGORITHMS: Mapping[str, tuple[str, str]] = {
    "ECDSA_SHA_256": ("sha256", "ecdsa"),
    "RSASSA_PSS_SHA_256": ("sha256", "pss"),
    "ECDSA_SHA_384": ("sha384", "ecdsa"),
    "RSASSA_PSS_SHA_384": ("sha384", "pss"),
    "ECDSA_SHA_512": ("sha512", "ecdsa"),
    "RSASSA_PSS_SHA_512": ("sha512", "pss"),
    "RSASSA_PKCS1_V1_5_SHA_256": ("sha256", "pkcs1"),
    "RSASSA_PKCS1_V1_5_SHA_384": ("sha384", "pkcs1"),
    "RSASSA_PKCS1_V1_5_SHA_512": ("sha512", "pkcs1"),
}


class KmsKeyError(AwsError):
    """The KMS key cannot sign or verify records (not an asymmetric signing key, or an algorithm we do not know)."""


@dataclass(frozen=True)
class _PublicKey:
    key: Any  # a cryptography public key
    algorithms: tuple[str, ...]


def message(content: bytes) -> bytes:
    """What is signed for a record whose signed content is ``content``."""
    return _MESSAGE_PREFIX + hashlib.sha256(content).hexdigest().encode("ascii")


class KmsSigning:
    """Signs and verifies records with the KMS key ``key_id`` through the session ``aws()`` gives."""

    def __init__(self, key_id: str, aws: Callable[[], Aws]) -> None:
        self.key_id = key_id
        self._aws = aws
        self._lock = threading.Lock()
        self._public: _PublicKey | None = None

    def public_key(self) -> _PublicKey:
        """The key's public key and the algorithms it signs with (asked of KMS once)."""
        with self._lock:
            if self._public is None:
                self._public = self._fetch_public_key()
            return self._public

    def _fetch_public_key(self) -> _PublicKey:
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        aws = self._aws()
        answer = aws.call("kms", "GetPublicKey", KeyId=self.key_id)
        algorithms = tuple(a for a in answer.get("SigningAlgorithms") or () if a in _ALGORITHMS)
        if answer.get("KeyUsage") != "SIGN_VERIFY" or not algorithms:
            raise KmsKeyError(
                f"The KMS key {self.key_id} is not an asymmetric key for signing",
                subject=aws.subject,
                details=[f"its usage is {answer.get('KeyUsage')}, its key spec {answer.get('KeySpec')}"],
                hint=f"set {KMS_KEY_VARIABLE} to a key of usage SIGN_VERIFY (key spec ECC_NIST_P256 or RSA_2048 …).",
            )
        try:
            key = load_der_public_key(answer["PublicKey"])
        except (ValueError, TypeError, KeyError) as exc:
            raise KmsKeyError(
                f"The public key of the KMS key {self.key_id} cannot be read",
                subject=aws.subject,
                details=[str(exc)],
                hint="check the key in KMS.",
            ) from None
        return _PublicKey(key, algorithms)

    def sign(self, content: bytes) -> dict[str, str]:
        """The ``kms`` field of a record whose signed content is ``content``: signed by KMS (``kms:Sign``)."""
        algorithm = sorted(self.public_key().algorithms, key=list(_ALGORITHMS).index)[0]
        answer = self._aws().call(
            "kms",
            "Sign",
            KeyId=self.key_id,
            Message=message(content),
            MessageType="RAW",
            SigningAlgorithm=algorithm,
        )
        signature = base64.b64encode(answer["Signature"]).decode("ascii")
        return {"key": str(answer.get("KeyId") or self.key_id), "algorithm": algorithm, "signature": signature}

    def verifies(self, content: bytes, field: object) -> bool:
        """Whether ``field`` (a record's ``kms``) is this key's signature of ``content``."""
        if not isinstance(field, Mapping):
            return False
        algorithm, signature = field.get("algorithm"), field.get("signature")
        public = self.public_key()
        if algorithm not in public.algorithms or not isinstance(signature, str):
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return _verify(public.key, str(algorithm), raw, message(content))


def _verify(key: Any, algorithm: str, signature: bytes, signed: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    hash_name, scheme = _ALGORITHMS[algorithm]
    digests: dict[str, hashes.HashAlgorithm] = {
        "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()
    }  # fmt: skip
    digest = digests[hash_name]
    try:
        if scheme == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(digest))
        elif scheme == "pss" and isinstance(key, rsa.RSAPublicKey):
            # KMS signs with a salt as long as the hash; AUTO accepts that (and nothing weaker in effect).
            key.verify(signature, signed, padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO), digest)
        elif scheme == "pkcs1" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True
