"""emvwire: the shared EMV language of tapstack.

Pure functions and types, bytes in and bytes out, no I/O: BER-TLV, the data
dictionary, data object lists, APDUs and status words, EMV cryptography, offline
data authentication, PAN masking and the EMVCo QR code payloads
(:mod:`emvwire.qr`).
"""

from emvwire.errors import (
    CryptoError,
    DecodeError,
    DolError,
    EmvWireError,
    OdaError,
    QrError,
    VerificationError,
)

__all__ = [
    "CryptoError",
    "DecodeError",
    "DolError",
    "EmvWireError",
    "OdaError",
    "QrError",
    "VerificationError",
]
__version__ = "0.1.0"
