"""Sealed boxes: data a gate stores and forwards but cannot read back.

A transit gate must keep the track 2 equivalent data (57) of every tap until the back
office has it (the back office needs the PAN or token for deferred authorisation), yet
the gate's journal must not hold it readable. The gate seals it to the back office's
public key; only the back office, with the private key, opens it.

Construction (ECIES in the manner of RFC 9180's base mode, without its framing): an
ephemeral X25519 key pair per box (RFC 7748), the shared secret through HKDF-SHA256
(RFC 5869) with both public keys as ``info``, and AES-256-GCM (NIST SP 800-38D) with a
random 96-bit nonce and ``context`` as associated data. A box is
``ephemeral public key (32) || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "generate_keypair", "open_box", "public_key_of", "seal"]

_INFO: Final = b"tapstack seal v1"
_RAW = serialization.Encoding.Raw
_PUB_RAW = serialization.PublicFormat.Raw
_PRIV_RAW = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()
#: Bytes a box adds to its plaintext.
OVERHEAD: Final = 32 + 12 + 16


class SealError(ValueError):
    """A key of the wrong size, or a box that is malformed or was not sealed to it."""


def generate_keypair() -> tuple[bytes, bytes]:
    """A new (private key, public key), 32 raw bytes each."""
    private = X25519PrivateKey.generate()
    return (
        private.private_bytes(_RAW, _PRIV_RAW, _NO_ENC),
        private.public_key().public_bytes(_RAW, _PUB_RAW),
    )


def public_key_of(private_key: bytes) -> bytes:
    """The raw public key of a raw private key."""
    return _private(private_key).public_key().public_bytes(_RAW, _PUB_RAW)


def _private(raw: bytes) -> X25519PrivateKey:
    if len(raw) != 32:
        raise SealError(f"an X25519 private key is 32 bytes, not {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + ephemeral + recipient)
    return hkdf.derive(shared)


def seal(
    public_key: bytes,
    plaintext: bytes,
    context: bytes = b"",
    *,
    ephemeral_key: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Seal ``plaintext`` to ``public_key``; ``context`` (e.g. the tap id) is bound to
    the box and must be given again to open it. ``ephemeral_key`` and ``nonce`` exist
    for known-answer tests only: by default both are fresh from the OS CSPRNG."""
    if len(public_key) != 32:
        raise SealError(f"an X25519 public key is 32 bytes, not {len(public_key)}")
    ephemeral = X25519PrivateKey.generate() if ephemeral_key is None else _private(ephemeral_key)
    ephemeral_pub = ephemeral.public_key().public_bytes(_RAW, _PUB_RAW)
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError as exc:  # an all-zero shared secret (a low-order point)
        raise SealError(f"unusable public key: {exc}") from None
    nonce = os.urandom(12) if nonce is None else nonce
    if len(nonce) != 12:
        raise SealError(f"a nonce is 12 bytes, not {len(nonce)}")
    box = AESGCM(_key(shared, ephemeral_pub, public_key)).encrypt(nonce, plaintext, context)
    return ephemeral_pub + nonce + box


def open_box(private_key: bytes, box: bytes, context: bytes = b"") -> bytes:
    """The plaintext of a box sealed to ``private_key``'s public key (:class:`SealError`
    when it is malformed, altered, sealed to another key or under another context)."""
    if len(box) < OVERHEAD:
        raise SealError(f"a sealed box is at least {OVERHEAD} bytes, not {len(box)}")
    private = _private(private_key)
    ephemeral_pub, nonce, body = box[:32], box[32:44], box[44:]
    recipient = private.public_key().public_bytes(_RAW, _PUB_RAW)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
        return AESGCM(_key(shared, ephemeral_pub, recipient)).decrypt(nonce, body, context)
    except (ValueError, InvalidTag):
        raise SealError("the box does not open: altered, or sealed to another key") from None
