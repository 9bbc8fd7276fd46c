"""Offline data authentication with SM2 and SM3: UnionPay's SM suite (PBOC 3.0).

PBOC 3.0 (JR/T 0025) adds to EMV's RSA offline data authentication a variant signed
with SM2 and hashed with SM3, for the cards of its SM algorithm suite: the CA, issuer
and ICC keys are SM2 keys, and the certificates and the signed dynamic data are not
recovered (no message recovery as with RSA): their data travel in clear, followed by
the SM2 signature ``r || s`` (64 bytes on sm2p256v1). The exact field layout of
PBOC's variant is not in a public text tapstack could check, so what follows is
tapstack's own: Book 2's certificate content in Book 2's order with the signature
appended, Public Key Algorithm Indicator ``04`` (SM2) and Hash Algorithm Indicator
``07`` (SM3), format bytes ``12`` (issuer) and ``14`` (ICC), the values EMV's own
elliptic-curve certificates use (Book E), and ``15`` for the signed dynamic data;
signatures with the default signer ID (:data:`~emvwire.crypto.sm2.DEFAULT_ID`) and its
``ZA`` (GB/T 32918.2 §6.1):

Issuer Public Key Certificate (tag ``90``; Book 2 Table 6's content), 141 bytes::

    12 | issuer identifier (4, cn) | expiry MMYY (2) | serial (3) | 07 | 04
       | key length (1, 40) | issuer public key x || y (64) | signature (64)

signed by the CA over everything before the signature. No remainder (``92``) and no
exponent (``9F32``): an SM2 key fits.

ICC Public Key Certificate (tag ``9F46``; Table 14's content), 147 bytes::

    14 | application PAN (10, cn) | expiry MMYY (2) | serial (3) | 07 | 04
       | key length (1, 40) | ICC public key x || y (64) | signature (64)

signed by the issuer over everything before the signature followed by the static data
to be authenticated (:mod:`emvwire.oda.static_data`), as the RSA certificate's hash
covers it (Book 2 §6.4 step 5).

Signed Dynamic Application Data (tag ``9F4B``; Table 17's content)::

    15 | 07 | L_DD (1) | ICC dynamic data (L_DD) | signature (64)

signed by the ICC over everything before the signature followed by the terminal data:
for fDDA (Book C-3's version 01, which qUICS uses) ``9F37 || 9F02 || 5F2A || 9F69``
(:func:`emvwire.oda.dynamic.fdda_terminal_data`). The ICC dynamic data starts with the
ICC Dynamic Number (length byte, 2-8 bytes), Book 2 §6.5.1.

Checks on the terminal side, each an :class:`~emvwire.errors.OdaError` naming it, in
the RSA functions' order where they have one: length, format, hash algorithm, public
key algorithm, key length, signature, identifier (issuer identifier or PAN), expiry,
revocation, and the certified point (on the curve, not infinity).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from emvwire.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey
from emvwire.errors import CryptoError, OdaError
from emvwire.oda._common import bcd_digits, check_expiry, encode_mmyy, pad_digits
from emvwire.oda.capk import HASH_SM3, PK_SM2, Sm2CaKey
from emvwire.oda.certificates import pan_digits
from emvwire.oda.dynamic import (
    DynamicData,
    dynamic_number,
    fdda_signing_data,
    fdda_terminal_data,
    number_field,
)

__all__ = [
    "FORMAT_SM2_DYNAMIC",
    "FORMAT_SM2_ICC",
    "FORMAT_SM2_ISSUER",
    "Sm2IccKey",
    "Sm2IssuerKey",
    "issue_sm2_icc_certificate",
    "issue_sm2_issuer_certificate",
    "recover_sm2_icc_key",
    "recover_sm2_issuer_key",
    "sign_sm2_fdda",
    "verify_sm2_fdda",
]

#: Certificate formats and the signed data format of the SM variant (module docstring).
FORMAT_SM2_ISSUER = 0x12
FORMAT_SM2_ICC = 0x14
FORMAT_SM2_DYNAMIC = 0x15
_KEY = 64
_SIGNATURE = 64
_ISSUER_ID_LENGTH = 4
_PAN_LENGTH = 10
_WHAT_SDAD = "signed dynamic application data"


@dataclass(frozen=True, slots=True)
class Sm2IssuerKey:
    """The issuer's SM2 public key from its certificate, with the certificate's fields."""

    public: Sm2PublicKey
    issuer_identifier: str
    expiry: date
    serial: bytes


@dataclass(frozen=True, slots=True, repr=False)
class Sm2IccKey:
    """The ICC's SM2 public key from its certificate. ``pan`` never reaches the repr."""

    public: Sm2PublicKey
    pan: str
    expiry: date
    serial: bytes

    def __repr__(self) -> str:
        return f"Sm2IccKey(expiry={self.expiry.isoformat()})"


def _certificate(
    fmt: int, identifier: bytes, key: Sm2PublicKey, expiry: date, serial: bytes
) -> bytes:
    if len(serial) != 3:
        raise CryptoError("certificate serial number must be 3 bytes")
    return (
        bytes((fmt,))
        + identifier
        + encode_mmyy(expiry)
        + serial
        + bytes((HASH_SM3, PK_SM2, _KEY))
        + key.to_bytes(prefix=False)
    )


def issue_sm2_issuer_certificate(
    ca: Sm2PrivateKey,
    issuer_key: Sm2PublicKey,
    *,
    issuer_identifier: str,
    expiry: date,
    serial: bytes = b"\x00\x00\x01",
) -> bytes:
    """Tag ``90`` for ``issuer_key``, signed by the CA (module docstring)."""
    if not 3 <= len(issuer_identifier) <= 8:
        raise CryptoError("issuer identifier must be 3 to 8 digits")
    body = _certificate(
        FORMAT_SM2_ISSUER,
        pad_digits(issuer_identifier, _ISSUER_ID_LENGTH),
        issuer_key,
        expiry,
        serial,
    )
    return body + ca.sign(body)


def issue_sm2_icc_certificate(
    issuer: Sm2PrivateKey,
    icc_key: Sm2PublicKey,
    *,
    pan: bytes | str,
    static_data: bytes,
    expiry: date,
    serial: bytes = b"\x00\x00\x01",
) -> bytes:
    """Tag ``9F46`` for ``icc_key``, signed by the issuer over it and the static data."""
    try:
        digits = pan_digits(pan)
    except OdaError as exc:
        raise CryptoError(str(exc)) from None
    body = _certificate(FORMAT_SM2_ICC, pad_digits(digits, _PAN_LENGTH), icc_key, expiry, serial)
    return body + issuer.sign(body + bytes(static_data))


def _check(
    signer: Sm2PublicKey, certificate: bytes, tail: bytes, *, what: str, fmt: int, id_length: int
) -> tuple[bytes, bytes, bytes, Sm2PublicKey]:
    """Length, format, algorithms, key length, signature; the identifier, expiry, serial
    and certified key."""
    certificate = bytes(certificate)
    size = 1 + id_length + 2 + 3 + 3 + _KEY + _SIGNATURE
    if len(certificate) != size:
        raise OdaError(f"{what} is {len(certificate)} bytes, {size} expected")
    if certificate[0] != fmt:
        raise OdaError(f"{what} format is not {fmt:02X}")
    pos = 1 + id_length
    identifier = certificate[1:pos]
    expiry, serial = certificate[pos : pos + 2], certificate[pos + 2 : pos + 5]
    hash_algorithm, pk_algorithm, key_length = certificate[pos + 5 : pos + 8]
    if hash_algorithm != HASH_SM3:
        raise OdaError(f"{what} hash algorithm {hash_algorithm:02X} is not 07 (SM3)")
    if pk_algorithm != PK_SM2:
        raise OdaError(f"{what} public key algorithm {pk_algorithm:02X} is not 04 (SM2)")
    if key_length != _KEY:
        raise OdaError(f"{what}: public key length {key_length} is not 64")
    body, signature = certificate[:-_SIGNATURE], certificate[-_SIGNATURE:]
    if not signer.verify(body + tail, signature):
        raise OdaError(f"{what} SM2 signature does not verify")
    try:
        key = Sm2PublicKey.from_bytes(body[-_KEY:], signer.curve)
    except CryptoError as exc:
        raise OdaError(f"{what}: {exc}") from None
    return identifier, expiry, serial, key


def recover_sm2_issuer_key(
    ca_key: Sm2CaKey,
    certificate: bytes,
    pan: bytes | str,
    today: date,
    *,
    revoked: Collection[tuple[bytes, int, bytes]] = (),
) -> Sm2IssuerKey:
    """Check tag ``90`` against the CA key and the PAN (Book 2 §5.3's checks for the SM
    variant, module docstring); ``revoked`` as for
    :func:`emvwire.oda.certificates.recover_issuer_key`."""
    what = "issuer certificate"
    identifier, expiry, serial, key = _check(
        ca_key.public, certificate, b"", what=what, fmt=FORMAT_SM2_ISSUER,
        id_length=_ISSUER_ID_LENGTH,
    )  # fmt: skip
    digits = bcd_digits(identifier)
    if not (digits.isdigit() and 3 <= len(digits) <= 8 and pan_digits(pan).startswith(digits)):
        raise OdaError("issuer identifier does not match the PAN")
    when = check_expiry(expiry, today, what)
    if (ca_key.rid, ca_key.index, serial) in revoked:
        raise OdaError(f"{what} has been revoked")
    return Sm2IssuerKey(key, digits, when, serial)


def recover_sm2_icc_key(
    issuer_key: Sm2IssuerKey,
    certificate: bytes,
    pan: bytes | str,
    static_data: bytes,
    today: date,
) -> Sm2IccKey:
    """Check tag ``9F46`` against the issuer key, the PAN and the static data (Book 2
    §6.4's checks for the SM variant, module docstring)."""
    what = "ICC certificate"
    identifier, expiry, serial, key = _check(
        issuer_key.public, certificate, bytes(static_data), what=what, fmt=FORMAT_SM2_ICC,
        id_length=_PAN_LENGTH,
    )  # fmt: skip
    digits = pan_digits(pan)
    if bcd_digits(identifier) != digits:
        raise OdaError("ICC certificate PAN does not match the application PAN")
    return Sm2IccKey(key, digits, check_expiry(expiry, today, what), serial)


def sign_sm2_fdda(
    icc: Sm2PrivateKey,
    icc_dynamic_number: bytes,
    *,
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None = None,
) -> bytes:
    """``9F4B`` of the SM variant for an fDDA GPO response (module docstring)."""
    tail = fdda_signing_data(unpredictable_number, amount_authorised, currency_code, card_auth_data)
    data = number_field(icc_dynamic_number)
    body = bytes((FORMAT_SM2_DYNAMIC, HASH_SM3, len(data))) + data
    return body + icc.sign(body + tail)


def verify_sm2_fdda(
    icc_key: Sm2IccKey,
    signed: bytes,
    *,
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None = None,
) -> DynamicData:
    """Check an SM2 fDDA ``9F4B`` for this transaction (module docstring)."""
    tail = fdda_terminal_data(
        unpredictable_number, amount_authorised, currency_code, card_auth_data
    )
    signed = bytes(signed)
    if len(signed) < 3 + _SIGNATURE or len(signed) != 3 + signed[2] + _SIGNATURE:
        raise OdaError(f"{_WHAT_SDAD}: length does not match its ICC dynamic data length")
    if signed[0] != FORMAT_SM2_DYNAMIC:
        raise OdaError(f"{_WHAT_SDAD} format is not {FORMAT_SM2_DYNAMIC:02X}")
    if signed[1] != HASH_SM3:
        raise OdaError(f"{_WHAT_SDAD} hash algorithm {signed[1]:02X} is not 07 (SM3)")
    body, signature = signed[:-_SIGNATURE], signed[-_SIGNATURE:]
    if not icc_key.public.verify(body + tail, signature):
        raise OdaError(f"{_WHAT_SDAD} SM2 signature does not verify")
    data = body[3:]
    number, _ = dynamic_number(data)
    return DynamicData(data, number)
