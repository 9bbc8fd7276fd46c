"""The error tree of emvwire.

Every failure emvwire raises is an :class:`EmvWireError`. Decoding failures carry
where they happened and what had been decoded so far (the habit of pyemv's
``tlv.DecodeError``) so that a caller can log a useful, masked message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CryptoError",
    "DecodeError",
    "DolError",
    "EmvWireError",
    "OdaError",
    "QrError",
    "VerificationError",
]


class EmvWireError(Exception):
    """Base class of every error raised by emvwire."""


class DecodeError(EmvWireError, ValueError):
    """Malformed encoded data (BER-TLV, DOL, APDU, certificate).

    ``tag`` is the tag being decoded when it failed (``None`` if the tag itself was
    unreadable), ``offset`` the byte offset of the failure in the input, and
    ``decoded`` what was decoded before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        tag: int | None = None,
        offset: int = 0,
        decoded: Any = None,
    ) -> None:
        self.message = message
        self.tag = tag
        self.offset = offset
        self.decoded = decoded
        where = f"at offset {offset}"
        if tag is not None:
            where += f" in tag {tag:X}"
        super().__init__(f"{message} ({where})")


class QrError(DecodeError):
    """A QR code payload (EMV QRCPS, merchant- or consumer-presented) that is not valid.

    ``field`` names the data object at fault: a merchant-presented ID path such as
    ``"54"`` or ``"62.05"``, or a consumer-presented tag path such as ``"61.63.9F26"``
    (``None`` when the payload as a whole is wrong, e.g. too long or not Base64).
    ``offset`` is where in the payload the fault was found (characters for
    merchant-presented text, bytes for consumer-presented data). Raised as well when a
    code is built from values that would not make a valid payload, so that only valid
    payloads can be encoded. Messages never carry a PAN or track 2 value.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        offset: int = 0,
        decoded: Any = None,
    ) -> None:
        self.message = message
        self.field = field
        self.tag = None
        self.offset = offset
        self.decoded = decoded
        where = f"at offset {offset}"
        if field is not None:
            where = f"field {field}, {where}"
        EmvWireError.__init__(self, f"{message} ({where})")


class DolError(EmvWireError, ValueError):
    """A data object list could not be parsed or filled."""


class CryptoError(EmvWireError, ValueError):
    """Bad input to a cryptographic function (key length, data length, CVN)."""


class VerificationError(EmvWireError):
    """A cryptogram, MAC or signature did not verify."""


class OdaError(VerificationError):
    """Offline data authentication failed: a certificate or signature is invalid."""
