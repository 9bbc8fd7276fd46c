"""Dynamic signatures: DDA, Visa fDDA and CDA (EMV Book 2 §6.5, §6.6; Visa fDDA).

The ICC signs with its private key the block of Book 2 Table 17: header ``6A``,
format ``05``, hash algorithm indicator, ICC Dynamic Data length L_DD, the ICC
Dynamic Data, a pad pattern of ``BB`` (N_IC - L_DD - 25 bytes), hash result and
trailer ``BC``. The hash covers format through pad pattern followed by terminal data:

* DDA (§6.5.2): the DDOL-related data the terminal sent in INTERNAL AUTHENTICATE;
* Visa fDDA (Visa Contactless Payment Specification, EMV Book C-3 fDDA): version
  ``01`` (first byte of the Card Authentication Related Data ``9F69``) signs
  ``9F37 || 9F02 || 5F2A || 9F69``; version ``00`` (no ``9F69``) signs ``9F37``;
* CDA (§6.6.2, Table 22): the Unpredictable Number ``9F37``.

The ICC Dynamic Data starts with the ICC Dynamic Number, length byte then 2-8 bytes
(§6.5.1). For CDA it continues (Table 19) with the Cryptogram Information Data, the
Application Cryptogram (8 bytes) and the Transaction Data Hash Code (20 bytes): SHA-1
over the PDOL-related data of GET PROCESSING OPTIONS, the CDOL1-related data (and
CDOL2-related data for a second GENERATE AC) and the GENERATE AC response's data
objects in the order returned, tag, length and value, except the Signed Dynamic
Application Data ``9F4B`` (§6.6.1).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from emvwire import tlv
from emvwire.errors import CryptoError, DecodeError, OdaError
from emvwire.oda._common import (
    HASH_LENGTH,
    HEADER,
    TRAILER,
    check_hash,
    hash_function,
    recover_block,
)
from emvwire.oda.rsa import HASH_SHA1, RsaPublicKey, SigningKey
from emvwire.tags import Tag

__all__ = [
    "FORMAT_DYNAMIC",
    "CdaResult",
    "DynamicData",
    "cda_dynamic_data",
    "dynamic_number",
    "fdda_signing_data",
    "fdda_terminal_data",
    "number_field",
    "response_objects",
    "sign_cda",
    "sign_dda",
    "sign_dynamic_data",
    "sign_fdda",
    "transaction_data_hash",
    "verify_cda",
    "verify_dda",
    "verify_fdda",
]

#: Signed Data Format of Signed Dynamic Application Data (Book 2 Tables 17 and 22).
FORMAT_DYNAMIC = 0x05
#: Table 17 bytes other than dynamic data and pad: header, format, hash algorithm,
#: L_DD, hash result (20), trailer.
_DYNAMIC_OVERHEAD = 25
_AC_LENGTH = 8
_WHAT = "signed dynamic application data"


@dataclass(frozen=True, slots=True)
class DynamicData:
    """What a verified DDA / fDDA signature gives: the ICC Dynamic Data and its number."""

    icc_dynamic_data: bytes
    icc_dynamic_number: bytes


@dataclass(frozen=True, slots=True)
class CdaResult:
    """What a verified CDA signature gives (Book 2 Table 19)."""

    icc_dynamic_number: bytes
    cid: int
    cryptogram: bytes
    transaction_data_hash: bytes

    def __repr__(self) -> str:
        return f"CdaResult(cid={self.cid:02X})"


def _recover_dynamic(icc_key: RsaPublicKey, signed: bytes, tail: bytes) -> bytes:
    """Book 2 §6.5.2 / §6.6.2 steps 1-8; return the ICC Dynamic Data."""
    block = recover_block(icc_key, bytes(signed), _WHAT, FORMAT_DYNAMIC, _DYNAMIC_OVERHEAD + 1)
    hash_algorithm, ldd = block[2], block[3]
    hash_function(hash_algorithm, _WHAT)
    if ldd > len(block) - _DYNAMIC_OVERHEAD:
        raise OdaError(f"{_WHAT}: ICC dynamic data length runs past the pad pattern")
    check_hash(block, tail, hash_algorithm, _WHAT)
    return block[4 : 4 + ldd]


def dynamic_number(data: bytes) -> tuple[bytes, int]:
    """The ICC Dynamic Number at the head of ICC Dynamic Data (Book 2 §6.5.1) and where
    it ends; :class:`OdaError` if its length byte is not 2-8 or runs past the data."""
    if not data or not 2 <= data[0] <= 8 or 1 + data[0] > len(data):
        raise OdaError(f"{_WHAT}: ICC dynamic number length is invalid")
    end = 1 + data[0]
    return data[1:end], end


def verify_dda(icc_key: RsaPublicKey, signed: bytes, ddol_data: bytes) -> DynamicData:
    """Check ``9F4B`` from INTERNAL AUTHENTICATE (Book 2 §6.5.2).

    ``ddol_data`` is the DDOL-related data the terminal sent.
    """
    data = _recover_dynamic(icc_key, signed, bytes(ddol_data))
    number, _ = dynamic_number(data)
    return DynamicData(data, number)


def fdda_terminal_data(
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None,
) -> bytes:
    """The terminal data signed by Visa fDDA: version 01 or 00 (see module docstring)."""
    if len(unpredictable_number) != 4:
        raise OdaError("fDDA unpredictable number (9F37) must be 4 bytes")
    if not card_auth_data or card_auth_data[0] == 0x00:
        return bytes(unpredictable_number)
    if card_auth_data[0] != 0x01:
        raise OdaError(f"fDDA version {card_auth_data[0]:02X} is not supported")
    if len(amount_authorised) != 6 or len(currency_code) != 2:
        raise OdaError("fDDA amount (9F02) must be 6 bytes and currency (5F2A) 2 bytes")
    return (
        bytes(unpredictable_number)
        + bytes(amount_authorised)
        + bytes(currency_code)
        + bytes(card_auth_data)
    )


def fdda_signing_data(
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None,
) -> bytes:
    """:func:`fdda_terminal_data` for the card that signs it: a request it cannot sign
    is a :class:`CryptoError` of the card, not an ODA failure of the terminal."""
    try:
        return fdda_terminal_data(
            unpredictable_number, amount_authorised, currency_code, card_auth_data
        )
    except OdaError as exc:
        raise CryptoError(str(exc)) from None


def verify_fdda(
    icc_key: RsaPublicKey,
    signed: bytes,
    *,
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None = None,
) -> DynamicData:
    """Check a Visa fDDA ``9F4B`` (returned in the GPO response) for this transaction.

    ``card_auth_data`` is the card's ``9F69`` (``None`` if absent: fDDA version 00).
    """
    tail = fdda_terminal_data(
        unpredictable_number, amount_authorised, currency_code, card_auth_data
    )
    data = _recover_dynamic(icc_key, signed, tail)
    number, _ = dynamic_number(data)
    return DynamicData(data, number)


def response_objects(response: bytes) -> list[tuple[int, bytes, bytes]]:
    """The data objects of a template ``77`` response as ``(tag, encoded, value)``.

    ``encoded`` is the bytes as the card sent them (no re-encoding), as the
    Transaction Data Hash Code needs. A malformed response raises :class:`OdaError`.
    """
    response = bytes(response)
    try:
        tag, pos = tlv.read_tag(response)
        length, pos = tlv.read_length(response, pos)
    except DecodeError:
        raise OdaError("GENERATE AC response is not a template 77") from None
    if tag != Tag.RESPONSE_FORMAT_2:
        raise OdaError("GENERATE AC response is not a template 77")
    end = pos + length
    if end > len(response) or any(b not in (0x00, 0xFF) for b in response[end:]):
        raise OdaError("GENERATE AC response template 77 length does not match")
    out: list[tuple[int, bytes, bytes]] = []
    while pos < end:
        if response[pos] in (0x00, 0xFF):
            pos += 1
            continue
        start = pos
        try:
            tag, pos = tlv.read_tag(response, pos)
            length, pos = tlv.read_length(response, pos)
        except DecodeError:
            raise OdaError("GENERATE AC response holds a malformed data object") from None
        if pos + length > end:
            raise OdaError("GENERATE AC response holds a data object that runs past it")
        out.append((tag, response[start : pos + length], response[pos : pos + length]))
        pos += length
    return out


def transaction_data_hash(
    pdol_data: bytes,
    cdol1_data: bytes,
    response_tlvs: bytes,
    cdol2_data: bytes | None = None,
    hash_algorithm: int = HASH_SHA1,
) -> bytes:
    """The Transaction Data Hash Code (Book 2 §6.6.1).

    ``response_tlvs`` is the GENERATE AC response's data objects as sent, in order,
    without ``9F4B``.
    """
    data = bytes(pdol_data) + bytes(cdol1_data) + bytes(cdol2_data or b"") + bytes(response_tlvs)
    return hash_function(hash_algorithm, "transaction data hash")(data)


def verify_cda(
    icc_key: RsaPublicKey,
    response: bytes,
    *,
    unpredictable_number: bytes,
    pdol_data: bytes,
    cdol1_data: bytes,
    cdol2_data: bytes | None = None,
) -> CdaResult:
    """Check the CDA signature of a GENERATE AC response (Book 2 §6.6.2).

    ``response`` is the response data (template ``77``, without status word),
    ``unpredictable_number`` the ``9F37`` the terminal sent in this GENERATE AC,
    ``pdol_data`` the value of tag ``83`` it sent in GET PROCESSING OPTIONS and
    ``cdol1_data`` (and for a second GENERATE AC ``cdol2_data``) the command data.
    Checks, in order: the signature block and its hash, the CID against ``9F27``, the
    Transaction Data Hash Code, and, if the card also returned ``9F26``, that it is the
    cryptogram signed. Returns the signed Application Cryptogram and CID.
    """
    objects = response_objects(response)
    tags = [tag for tag, _, _ in objects]
    for tag in (Tag.SDAD, Tag.CID):
        if tags.count(tag) != 1:
            name = "signed dynamic application data (9F4B)" if tag == Tag.SDAD else "CID (9F27)"
            raise OdaError(f"GENERATE AC response must hold one {name}")
    values = {tag: value for tag, _, value in objects}
    if len(unpredictable_number) != 4:
        raise OdaError("CDA unpredictable number (9F37) must be 4 bytes")
    data = _recover_dynamic(icc_key, values[Tag.SDAD], bytes(unpredictable_number))
    number, pos = dynamic_number(data)
    if len(data) < pos + 1 + _AC_LENGTH + HASH_LENGTH:
        raise OdaError(f"{_WHAT}: ICC dynamic data is too short for CDA")
    cid = data[pos]
    cryptogram = data[pos + 1 : pos + 1 + _AC_LENGTH]
    signed_hash = data[pos + 1 + _AC_LENGTH : pos + 1 + _AC_LENGTH + HASH_LENGTH]
    if values[Tag.CID] != bytes((cid,)):
        raise OdaError("CID in the signature does not match the CID (9F27) in the response")
    rest = b"".join(encoded for tag, encoded, _ in objects if tag != Tag.SDAD)
    expected = transaction_data_hash(pdol_data, cdol1_data, rest, cdol2_data)
    if not hmac.compare_digest(expected, signed_hash):
        raise OdaError("transaction data hash code does not match")
    clear_ac = values.get(Tag.APPLICATION_CRYPTOGRAM)
    if clear_ac is not None and not hmac.compare_digest(clear_ac, cryptogram):
        raise OdaError("application cryptogram (9F26) in the response is not the one signed")
    return CdaResult(number, cid, cryptogram, signed_hash)


# ---------------------------------------------------------------------------------------
# The card side.


def sign_dynamic_data(
    icc: SigningKey,
    icc_dynamic_data: bytes,
    terminal_data: bytes,
    *,
    hash_algorithm: int = HASH_SHA1,
) -> bytes:
    """Produce ``9F4B``: the Table 17 block over ``icc_dynamic_data`` and ``terminal_data``."""
    n_len = len(icc.public.modulus)
    pad = n_len - len(icc_dynamic_data) - _DYNAMIC_OVERHEAD
    if pad < 0 or len(icc_dynamic_data) > 0xFF:
        raise CryptoError("ICC dynamic data does not fit the ICC key")
    body = (
        bytes((FORMAT_DYNAMIC, hash_algorithm, len(icc_dynamic_data)))
        + bytes(icc_dynamic_data)
        + b"\xbb" * pad
    )
    digest = hash_function(hash_algorithm, _WHAT)(body + bytes(terminal_data))
    return icc.sign(bytes((HEADER,)) + body + digest + bytes((TRAILER,)))


def number_field(icc_dynamic_number: bytes) -> bytes:
    """The ICC Dynamic Number with its length byte (Book 2 Table 18)."""
    if not 2 <= len(icc_dynamic_number) <= 8:
        raise CryptoError("ICC dynamic number must be 2 to 8 bytes")
    return bytes((len(icc_dynamic_number),)) + bytes(icc_dynamic_number)


def sign_dda(icc: SigningKey, icc_dynamic_number: bytes, ddol_data: bytes) -> bytes:
    """``9F4B`` for INTERNAL AUTHENTICATE (Book 2 §6.5.1)."""
    return sign_dynamic_data(icc, number_field(icc_dynamic_number), ddol_data)


def sign_fdda(
    icc: SigningKey,
    icc_dynamic_number: bytes,
    *,
    unpredictable_number: bytes,
    amount_authorised: bytes,
    currency_code: bytes,
    card_auth_data: bytes | None = None,
) -> bytes:
    """``9F4B`` for a Visa fDDA GPO response (version from ``card_auth_data``)."""
    tail = fdda_signing_data(unpredictable_number, amount_authorised, currency_code, card_auth_data)
    return sign_dynamic_data(icc, number_field(icc_dynamic_number), tail)


def cda_dynamic_data(
    icc_dynamic_number: bytes, cid: int, cryptogram: bytes, transaction_hash: bytes
) -> bytes:
    """The ICC Dynamic Data of CDA (Book 2 Table 19)."""
    if len(cryptogram) != _AC_LENGTH or len(transaction_hash) != HASH_LENGTH:
        raise CryptoError("cryptogram must be 8 bytes and the hash code 20")
    return number_field(icc_dynamic_number) + bytes((cid,)) + cryptogram + transaction_hash


def sign_cda(
    icc: SigningKey,
    *,
    icc_dynamic_number: bytes,
    cid: int,
    cryptogram: bytes,
    unpredictable_number: bytes,
    pdol_data: bytes,
    cdol1_data: bytes,
    response_tlvs: bytes,
    cdol2_data: bytes | None = None,
) -> bytes:
    """``9F4B`` for a GENERATE AC response with CDA (Book 2 §6.6.1).

    ``response_tlvs`` are the other data objects of the response, encoded, in the
    order the card will return them.
    """
    tdhc = transaction_data_hash(pdol_data, cdol1_data, response_tlvs, cdol2_data)
    data = cda_dynamic_data(icc_dynamic_number, cid, cryptogram, tdhc)
    return sign_dynamic_data(icc, data, unpredictable_number)
