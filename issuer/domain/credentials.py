"""Terminal and operator credentials: made once, shown once, stored as an Argon2id hash
(:mod:`emvwire.credentials`, which the back office's operators use too).

A credential is ``tsk_`` (a terminal's; ``osk_`` an operator's) and 32 random bytes in
URL-safe base64 (256 bits).

Argon2id costs tens of milliseconds by design, too much for each of thousands of
authorisations a second. :class:`CredentialCache` remembers, per terminal, the SHA-256
of a credential that verified (never the credential), so the service verifies
slowly once per terminal and then compares digests in constant time. The cache is
keyed by the stored hash as well, so a new credential or a revocation (which the
service reads from the database) invalidates it.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Final

from emvwire import credentials as _shared
from emvwire.credentials import hash_credential, verify_credential

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


def new_credential(prefix: str = CREDENTIAL_PREFIX) -> str:
    """A fresh credential, a terminal's unless ``prefix`` says otherwise (shown once,
    never stored)."""
    return _shared.new_credential(prefix)


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
