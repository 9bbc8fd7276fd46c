"""Terminal and operator credentials: made once, shown once, stored as an Argon2id hash.

A credential is ``tsk_`` (a terminal's; ``osk_`` an operator's) and 32 random bytes in
URL-safe base64 (256 bits). What is
stored is a PHC-format Argon2id string (RFC 9106; OWASP's minimum parameters m = 19 MiB,
t = 2, p = 1), so a copy of the database does not give terminal access.

Argon2id costs tens of milliseconds by design, too much for each of thousands of
authorisations a second. :class:`CredentialCache` remembers, per terminal, the SHA-256
of a credential that verified (never the credential), so the service verifies
slowly once per terminal and then compares digests in constant time. The cache is
keyed by the stored hash as well, so a new credential or a revocation (which the
service reads from the database) invalidates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = [
    "CREDENTIAL_PREFIX",
    "OPERATOR_PREFIX",
    "CredentialCache",
    "hash_credential",
    "new_credential",
    "verify_credential",
]

CREDENTIAL_PREFIX: Final = "tsk_"
#: The prefix of an operator's credential (:mod:`issuer.model.operators`).
OPERATOR_PREFIX: Final = "osk_"
#: Argon2id parameters (RFC 9106 §4; OWASP password storage cheat sheet minimum).
ARGON2_MEMORY_KIB: Final = 19 * 1024
ARGON2_ITERATIONS: Final = 2
ARGON2_LANES: Final = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def new_credential(prefix: str = CREDENTIAL_PREFIX) -> str:
    """A fresh credential, a terminal's unless ``prefix`` says otherwise (shown once,
    never stored)."""
    return prefix + secrets.token_urlsafe(32)


def _kdf(salt: bytes, memory: int, iterations: int, lanes: int) -> Argon2id:
    return Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)


def hash_credential(credential: str) -> str:
    """The PHC string ``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>``."""
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


class CredentialCache:
    """Verified credentials, by terminal (module docstring). Thread-safe."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._known: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def verify(self, terminal_id: str, stored: str, credential: str) -> bool:
        """Like :func:`verify_credential`, slow only the first time per terminal."""
        digest = hashlib.sha256(credential.encode()).digest()
        key = (terminal_id, stored)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return hmac.compare_digest(known, digest)
        if not verify_credential(stored, credential):
            return False
        with self._lock:
            if len(self._known) >= self._size:
                self._known.pop(next(iter(self._known)))
            self._known[key] = digest
        return True
