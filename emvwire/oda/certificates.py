"""Issuer and ICC public key certificates: recovery with every check, and issuance.

EMV Book 2 §5.3 and §6.3 (Issuer Public Key Certificate, tag ``90``, Table 6 / Table 13:
header ``6A``, format ``02``), §6.4 (ICC Public Key Certificate, tag ``9F46``, Table 14:
format ``04``), with the key split of §5.1 / §6.1: the part of the public key that does
not fit the certificate travels as the remainder (``92`` / ``9F48``) and the exponent
separately (``9F32`` / ``9F47``). Key lengths obey N_IC <= N_I <= N_CA <= 248 (§6.1).

Recovery raises :class:`~emvwire.errors.OdaError` naming the first check that failed,
in Book 2's order: length, trailer, header, format, hash, identifier (issuer
identifier or application PAN), expiry, revocation, public key algorithm.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from emvwire.errors import CryptoError, OdaError
from emvwire.oda._common import (
    HASH_LENGTH,
    HEADER,
    TRAILER,
    bcd_digits,
    check_expiry,
    check_hash,
    encode_mmyy,
    hash_function,
    key_from_parts,
    pad_digits,
    recover_block,
)
from emvwire.oda.capk import CaKey
from emvwire.oda.rsa import (
    HASH_SHA1,
    PK_ALGORITHMS,
    PK_RSA,
    RsaPublicKey,
    SigningKey,
    exponent_bytes,
)

__all__ = [
    "FORMAT_ICC",
    "FORMAT_ISSUER",
    "CertificateParts",
    "IccPublicKey",
    "IssuerPublicKey",
    "build_icc_certificate_block",
    "build_issuer_certificate_block",
    "issue_icc_certificate",
    "issue_issuer_certificate",
    "pan_digits",
    "recover_icc_key",
    "recover_issuer_key",
]

#: Certificate Format of an Issuer Public Key Certificate (Book 2 Table 6).
FORMAT_ISSUER = 0x02
#: Certificate Format of an ICC Public Key Certificate (Book 2 Table 14).
FORMAT_ICC = 0x04
#: Bytes of a certificate that are not key: 36 for the issuer's (Table 6), 42 for the ICC's
#: (Table 14).
_ISSUER_OVERHEAD = 36
_ICC_OVERHEAD = 42
_ISSUER_ID_LENGTH = 4
_PAN_LENGTH = 10


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class IssuerPublicKey(RsaPublicKey):
    """The issuer public key recovered from its certificate, with the certificate's fields."""

    issuer_identifier: str
    expiry: date
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class IccPublicKey(RsaPublicKey):
    """The ICC public key recovered from its certificate. ``pan`` never reaches the repr."""

    pan: str
    expiry: date
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int


class CertificateParts(NamedTuple):
    """What a card carries for one certified key: certificate, remainder, exponent.

    For the issuer key these are tags ``90``, ``92``, ``9F32``; for the ICC key
    ``9F46``, ``9F48``, ``9F47``. ``remainder`` is empty when the key fits.
    """

    certificate: bytes
    remainder: bytes
    exponent: bytes


def pan_digits(pan: bytes | str) -> str:
    """The PAN's digits from tag ``5A`` (``cn``, F-padded) or a digit string."""
    text = pan if isinstance(pan, str) else bcd_digits(bytes(pan))
    if not text.isdigit() or not 1 <= len(text) <= 2 * _PAN_LENGTH:
        raise OdaError("application PAN is not 1 to 19 digits")
    return text


class _Fields(NamedTuple):
    identifier: bytes
    expiry: bytes
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int
    modulus: bytes
    exponent: bytes


def _recover(
    signer: RsaPublicKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    tail: bytes,
    *,
    what: str,
    key_name: str,
    fmt: int,
    id_length: int,
    overhead: int,
) -> _Fields:
    """Steps common to Book 2 §5.3 and §6.4 up to and including the hash comparison."""
    block = recover_block(signer, bytes(certificate), what, fmt, overhead + 1)
    pos = 2 + id_length
    identifier = block[2:pos]
    expiry = block[pos : pos + 2]
    serial = block[pos + 2 : pos + 5]
    hash_algorithm, pk_algorithm, key_length, exp_length = block[pos + 5 : pos + 9]
    field = block[pos + 9 : -1 - HASH_LENGTH]
    hash_function(hash_algorithm, what)
    remainder = bytes(remainder or b"")
    exponent = bytes(exponent)
    if key_length == 0:
        raise OdaError(f"{what}: {key_name} length is zero")
    if key_length > len(field):
        missing = key_length - len(field)
        if not remainder:
            raise OdaError(f"{what}: {key_name} remainder is missing")
        if len(remainder) != missing:
            raise OdaError(
                f"{what}: {key_name} remainder is {len(remainder)} bytes, {missing} expected"
            )
    check_hash(block, remainder + exponent + tail, hash_algorithm, what)
    modulus = field + remainder if key_length > len(field) else field[:key_length]
    if exp_length != len(exponent):
        raise OdaError(f"{what}: {key_name} exponent length field does not match the exponent")
    return _Fields(identifier, expiry, serial, hash_algorithm, pk_algorithm, modulus, exponent)


def _check_pk_algorithm(fields: _Fields, what: str) -> None:
    if fields.pk_algorithm not in PK_ALGORITHMS:
        raise OdaError(f"{what} public key algorithm {fields.pk_algorithm:02X} is not supported")


def recover_issuer_key(
    ca_key: CaKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    pan: bytes | str,
    today: date,
    *,
    revoked: Collection[tuple[bytes, int, bytes]] = (),
) -> IssuerPublicKey:
    """Recover and check the issuer public key (Book 2 §5.3 / §6.3, steps 1-12).

    ``certificate`` is tag ``90``, ``remainder`` tag ``92`` (``None`` or empty if the
    card has none), ``exponent`` tag ``9F32``, ``pan`` tag ``5A`` (or its digits) and
    ``today`` the transaction date. ``revoked`` holds (RID, CA index, certificate
    serial number) triples of revoked issuer certificates (step 10).
    """
    what = "issuer certificate"
    fields = _recover(
        ca_key,
        certificate,
        remainder,
        exponent,
        b"",
        what=what,
        key_name="issuer public key",
        fmt=FORMAT_ISSUER,
        id_length=_ISSUER_ID_LENGTH,
        overhead=_ISSUER_OVERHEAD,
    )
    identifier = bcd_digits(fields.identifier)
    digits = pan_digits(pan)
    if not (identifier.isdigit() and 3 <= len(identifier) <= 8 and digits.startswith(identifier)):
        raise OdaError("issuer identifier does not match the PAN")
    expiry = check_expiry(fields.expiry, today, what)
    if (ca_key.rid, ca_key.index, fields.serial) in revoked:
        raise OdaError(f"{what} has been revoked")
    _check_pk_algorithm(fields, what)
    if len(fields.modulus) > len(ca_key.modulus):
        raise OdaError(f"{what}: issuer public key is longer than the CA public key")
    key = key_from_parts(fields.modulus, fields.exponent, f"{what}: issuer public key")
    return IssuerPublicKey(
        modulus=key.modulus,
        exponent=key.exponent,
        issuer_identifier=identifier,
        expiry=expiry,
        serial=fields.serial,
        hash_algorithm=fields.hash_algorithm,
        pk_algorithm=fields.pk_algorithm,
    )


def recover_icc_key(
    issuer_key: RsaPublicKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    pan: bytes | str,
    static_data: bytes,
    today: date,
) -> IccPublicKey:
    """Recover and check the ICC public key (Book 2 §6.4, steps 1-11).

    ``certificate`` is tag ``9F46``, ``remainder`` ``9F48``, ``exponent`` ``9F47``,
    ``pan`` the Application PAN (``5A``) and ``static_data`` the static data to be
    authenticated (see :mod:`emvwire.oda.static_data`), which the certificate's hash
    covers.
    """
    what = "ICC certificate"
    fields = _recover(
        issuer_key,
        certificate,
        remainder,
        exponent,
        bytes(static_data),
        what=what,
        key_name="ICC public key",
        fmt=FORMAT_ICC,
        id_length=_PAN_LENGTH,
        overhead=_ICC_OVERHEAD,
    )
    digits = pan_digits(pan)
    if bcd_digits(fields.identifier) != digits:
        raise OdaError("ICC certificate PAN does not match the application PAN")
    expiry = check_expiry(fields.expiry, today, what)
    _check_pk_algorithm(fields, what)
    if len(fields.modulus) > len(issuer_key.modulus):
        raise OdaError(f"{what}: ICC public key is longer than the issuer public key")
    key = key_from_parts(fields.modulus, fields.exponent, f"{what}: ICC public key")
    return IccPublicKey(
        modulus=key.modulus,
        exponent=key.exponent,
        pan=digits,
        expiry=expiry,
        serial=fields.serial,
        hash_algorithm=fields.hash_algorithm,
        pk_algorithm=fields.pk_algorithm,
    )


# ---------------------------------------------------------------------------------------
# Issuance (the CA and the issuer side): Book 2 §5.1 / §6.1 and Tables 6 / 14.


def _build_block(
    signer_length: int,
    fmt: int,
    identifier: bytes,
    key: RsaPublicKey,
    expiry: date,
    serial: bytes,
    hash_algorithm: int,
    pk_algorithm: int,
    overhead: int,
    tail: bytes,
) -> tuple[bytes, bytes]:
    if len(serial) != 3:
        raise CryptoError("certificate serial number must be 3 bytes")
    room = signer_length - overhead
    if room < 1:
        raise CryptoError("signing key is too short for the certificate")
    modulus = key.modulus
    if len(modulus) > signer_length:
        raise CryptoError("certified key is longer than the signing key (Book 2 §6.1)")
    if len(modulus) <= room:
        field, remainder = modulus + b"\xbb" * (room - len(modulus)), b""
    else:
        field, remainder = modulus[:room], modulus[room:]
    exponent = exponent_bytes(key.exponent)
    body = (
        bytes((fmt,))
        + identifier
        + encode_mmyy(expiry)
        + serial
        + bytes((hash_algorithm, pk_algorithm, len(modulus), len(exponent)))
        + field
    )
    digest = hash_function(hash_algorithm, "certificate")(body + remainder + exponent + tail)
    return bytes((HEADER,)) + body + digest + bytes((TRAILER,)), remainder


def build_issuer_certificate_block(
    ca_length: int,
    issuer_key: RsaPublicKey,
    *,
    issuer_identifier: str,
    expiry: date,
    serial: bytes,
    hash_algorithm: int = HASH_SHA1,
    pk_algorithm: int = PK_RSA,
) -> tuple[bytes, bytes]:
    """The unsigned Table 6 block for ``issuer_key`` and its remainder (Book 2 §5.1).

    ``issuer_identifier`` is the leftmost 3-8 digits of the PAN. Use
    :func:`issue_issuer_certificate` unless the block is signed elsewhere (an HSM).
    """
    if not 3 <= len(issuer_identifier) <= 8:
        raise CryptoError("issuer identifier must be 3 to 8 digits")
    identifier = pad_digits(issuer_identifier, _ISSUER_ID_LENGTH)
    return _build_block(
        ca_length,
        FORMAT_ISSUER,
        identifier,
        issuer_key,
        expiry,
        serial,
        hash_algorithm,
        pk_algorithm,
        _ISSUER_OVERHEAD,
        b"",
    )


def issue_issuer_certificate(
    ca: SigningKey,
    issuer_key: RsaPublicKey,
    *,
    issuer_identifier: str,
    expiry: date,
    serial: bytes = b"\x00\x00\x01",
    hash_algorithm: int = HASH_SHA1,
    pk_algorithm: int = PK_RSA,
) -> CertificateParts:
    """Certify ``issuer_key`` with the CA key: tags ``90``, ``92``, ``9F32`` (Book 2 §5.1)."""
    block, remainder = build_issuer_certificate_block(
        len(ca.public.modulus),
        issuer_key,
        issuer_identifier=issuer_identifier,
        expiry=expiry,
        serial=serial,
        hash_algorithm=hash_algorithm,
        pk_algorithm=pk_algorithm,
    )
    return CertificateParts(ca.sign(block), remainder, exponent_bytes(issuer_key.exponent))


def build_icc_certificate_block(
    issuer_length: int,
    icc_key: RsaPublicKey,
    *,
    pan: bytes | str,
    static_data: bytes,
    expiry: date,
    serial: bytes,
    hash_algorithm: int = HASH_SHA1,
    pk_algorithm: int = PK_RSA,
) -> tuple[bytes, bytes]:
    """The unsigned Table 14 block for ``icc_key`` and its remainder (Book 2 §6.1)."""
    try:
        digits = pan_digits(pan)
    except OdaError as exc:
        raise CryptoError(str(exc)) from None
    return _build_block(
        issuer_length,
        FORMAT_ICC,
        pad_digits(digits, _PAN_LENGTH),
        icc_key,
        expiry,
        serial,
        hash_algorithm,
        pk_algorithm,
        _ICC_OVERHEAD,
        bytes(static_data),
    )


def issue_icc_certificate(
    issuer: SigningKey,
    icc_key: RsaPublicKey,
    *,
    pan: bytes | str,
    static_data: bytes,
    expiry: date,
    serial: bytes = b"\x00\x00\x01",
    hash_algorithm: int = HASH_SHA1,
    pk_algorithm: int = PK_RSA,
) -> CertificateParts:
    """Certify ``icc_key`` with the issuer key: tags ``9F46``, ``9F48``, ``9F47`` (§6.1)."""
    block, remainder = build_icc_certificate_block(
        len(issuer.public.modulus),
        icc_key,
        pan=pan,
        static_data=static_data,
        expiry=expiry,
        serial=serial,
        hash_algorithm=hash_algorithm,
        pk_algorithm=pk_algorithm,
    )
    return CertificateParts(issuer.sign(block), remainder, exponent_bytes(icc_key.exponent))
