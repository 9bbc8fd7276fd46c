"""Signed values for the web consoles: the session cookie, the one-time notice shown
after an action, both authenticated with HMAC-SHA256 (RFC 2104) under a key that is
random per process unless given.

A signed value is ``<payload>.<tag>``: the payload URL-safe base64 of compact JSON,
the tag the HMAC of ``purpose`` and the payload, so a value made for one purpose (a
notice) is never accepted as another (a session). Tags are compared in constant time
(:func:`hmac.compare_digest`); a value older than its ``max_age`` is refused. A key
random per process means that a restart signs every operator out, which is what a
console served by one process wants; several processes would share a ``key``.

A :class:`Session` carries the CSRF token of the forms it shows (OWASP CSRF
Prevention Cheat Sheet, "synchronizer token pattern": the token lives in the signed
cookie and in each form, and a POST must carry both, equal) and, once signed in, the
subject (an operator's id). Signing in makes a new session with a new token, so a
token seen before signing in is worth nothing after (session fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Session", "Signer"]

_SEPARATOR: Final = "."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies values (module docstring); ``key``: random if not given."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _tag(self, purpose: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\0{payload}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    def sign(self, purpose: str, data: dict[str, Any]) -> str:
        """``data`` (JSON-ready), stamped with the time, signed for ``purpose``."""
        body = json.dumps({**data, "_t": int(time.time())}, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}{_SEPARATOR}{self._tag(purpose, payload)}"

    def verify(self, purpose: str, value: str, max_age: float) -> dict[str, Any] | None:
        """The data of ``value`` if it was signed for ``purpose`` by this key less than
        ``max_age`` seconds ago, else ``None``."""
        payload, sep, tag = value.partition(_SEPARATOR)
        if not sep or not hmac.compare_digest(tag.encode(), self._tag(purpose, payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("_t"), int):
            return None
        if not 0 <= time.time() - data["_t"] < max_age:
            return None
        return data


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session (module docstring): its forms' CSRF token and, once signed
    in, its subject."""

    csrf: str
    subject: str | None = None

    @staticmethod
    def new(subject: str | None = None) -> Session:
        """A new session with a fresh CSRF token (128 bits)."""
        return Session(secrets.token_urlsafe(16), subject)

    def to_json(self) -> dict[str, Any]:
        """The data its cookie signs."""
        return {"c": self.csrf, "s": self.subject}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Session | None:
        """The session of a verified cookie's data, ``None`` if malformed."""
        csrf, subject = data.get("c"), data.get("s")
        if not isinstance(csrf, str) or not (subject is None or isinstance(subject, str)):
            return None
        return Session(csrf, subject)

    def token_matches(self, sent: str) -> bool:
        """Whether a form's CSRF token is this session's (constant time)."""
        return hmac.compare_digest(sent.encode(), self.csrf.encode())
