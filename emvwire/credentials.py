"""Credentials made once, shown once, stored as an Argon2id hash: the issuer's
terminals and operators (:mod:`issuer.domain.credentials`) and the back office's
operators (:mod:`backoffice.operators`) share this.

A credential is a prefix naming its kind (``tsk_`` a terminal's, ``osk_`` an issuer
operator's, ``bsk_`` a back office operator's) and 32 random bytes in URL-safe base64
(256 bits). What is stored is a PHC-format Argon2id string (RFC 9106; OWASP's minimum
parameters m = 19 MiB, t = 2, p = 1), so a copy of the database does not give access.
"""

from __future__ import annotations

import base64
import secrets
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = [
    "ARGON2_ITERATIONS",
    "ARGON2_LANES",
    "ARGON2_MEMORY_KIB",
    "hash_credential",
    "new_credential",
    "verify_credential",
]

#: Argon2id parameters (RFC 9106 §4; OWASP password storage cheat sheet minimum).
ARGON2_MEMORY_KIB: Final = 19 * 1024
ARGON2_ITERATIONS: Final = 2
ARGON2_LANES: Final = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def new_credential(prefix: str) -> str:
    """A fresh credential of the kind ``prefix`` names (shown once, never stored)."""
    return prefix + secrets.token_urlsafe(32)


def _kdf(salt: bytes, memory: int, iterations: int, lanes: int) -> Argon2id:
    return Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)


def hash_credential(credential: str) -> str:
    """The PHC string ``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`` (RFC 9106)."""
    salt = secrets.token_bytes(16)
    digest = _kdf(salt, ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES).derive(
        credential.encode()
    )
    params = f"m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}"
    return f"$argon2id$v=19${params}${_b64(salt)}${_b64(digest)}"


def verify_credential(stored: str, credential: str) -> bool:
    """Whether ``credential`` matches the PHC string ``stored`` (constant time)."""
    try:
        _, alg, version, params, salt, digest = stored.split("$")
        if alg != "argon2id" or version != "v=19":
            return False
        fields = dict(p.split("=") for p in params.split(","))
        kdf = _kdf(_unb64(salt), int(fields["m"]), int(fields["t"]), int(fields["p"]))
        kdf.verify(credential.encode(), _unb64(digest))
    except (ValueError, KeyError, InvalidKey):
        return False
    return True
