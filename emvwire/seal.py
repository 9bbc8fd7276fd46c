"""Sealed boxes: data a gate stores and forwards but cannot read back.

A transit gate must keep the track 2 equivalent data (57) of every tap until the back
office has it (the back office needs the PAN or token for deferred authorisation), yet
the gate's journal must not hold it readable. The gate seals it to the back office's
public key; only the back office, with the private key, opens it.

The construction is HPKE (RFC 9180) in base mode, single-shot, with the suite
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM (KEM 0x0020, KDF 0x0001, AEAD
0x0002), as the ``cryptography`` package implements it. The ``context`` (a tap id) is
HPKE's ``info``: a box opens only under the context it was sealed with. A box is
``enc (32) || ciphertext || tag (16)``.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from emvwire.errors import EmvWireError

__all__ = [
    "OVERHEAD",
    "SUITE",
    "SealError",
    "generate_keypair",
    "open_box",
    "public_key_of",
    "seal",
]

#: The HPKE suite of every box (RFC 9180 §7: KEM 0x0020, KDF 0x0001, AEAD 0x0002).
SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
#: Bytes a box adds to its plaintext: the encapsulated key and the GCM tag.
OVERHEAD: Final = 32 + 16
_RAW = serialization.Encoding.Raw
_PUB_RAW = serialization.PublicFormat.Raw
_PRIV_RAW = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()


class SealError(EmvWireError, ValueError):
    """A key of the wrong size, or a box that is malformed or was not sealed to it."""


def generate_keypair() -> tuple[bytes, bytes]:
    """A new (private key, public key), 32 raw bytes each (RFC 7748 X25519)."""
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


def seal(public_key: bytes, plaintext: bytes, context: bytes = b"") -> bytes:
    """Seal ``plaintext`` to ``public_key`` (RFC 9180 §6.1 SealBase, ``info`` =
    ``context``): a fresh ephemeral key from the OS CSPRNG for every box."""
    if len(public_key) != 32:
        raise SealError(f"an X25519 public key is 32 bytes, not {len(public_key)}")
    try:
        return SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key), context)
    except ValueError as exc:  # an all-zero shared secret (a low-order point)
        raise SealError(f"unusable public key: {exc}") from None


def open_box(private_key: bytes, box: bytes, context: bytes = b"") -> bytes:
    """The plaintext of a box sealed to ``private_key``'s public key (RFC 9180 §6.1
    OpenBase); :class:`SealError` when it is malformed, altered, sealed to another key
    or under another context."""
    if len(box) < OVERHEAD:
        raise SealError(f"a sealed box is at least {OVERHEAD} bytes, not {len(box)}")
    private = _private(private_key)
    try:
        return SUITE.decrypt(box, private, context)
    except (ValueError, InvalidTag):
        raise SealError("the box does not open: altered, or sealed to another key") from None
