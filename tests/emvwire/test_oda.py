"""Offline data authentication (EMV Book 2 §5-§6): round trips and every failing check.

Keys: the committed test CA (fixtures/ca) and issuer / ICC keys generated once per
module. Three chains cover the key splits of Book 2 §5.1 / §6.1: with and without
an issuer public key remainder, with and without an ICC public key remainder.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emvwire import tlv
from emvwire.errors import CryptoError, DecodeError, OdaError, VerificationError
from emvwire.oda import (
    CaKey,
    CaKeyStore,
    CdaResult,
    IccPublicKey,
    IssuerPublicKey,
    SigningKey,
    build_static_data,
    issue_icc_certificate,
    issue_issuer_certificate,
    oda_records,
    recover_icc_key,
    recover_issuer_key,
    sign_cda,
    sign_dda,
    sign_dynamic_data,
    sign_fdda,
    sign_sda,
    transaction_data_hash,
    verify_cda,
    verify_dda,
    verify_fdda,
    verify_sda,
)
from emvwire.oda.certificates import (
    CertificateParts,
    build_icc_certificate_block,
    build_issuer_certificate_block,
)
from emvwire.oda.dynamic import cda_dynamic_data, fdda_terminal_data

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ca"
TODAY = date(2025, 6, 15)
EXPIRY = date(2030, 12, 31)
PAN = "5413330089601034"
PAN_5A = bytes.fromhex(PAN)
AIP = bytes.fromhex("3980")
SDA_TAG_LIST = b"\x82"
# Records as a card returns them: SFI 1 (template 70 value signed), SFI 11 (whole record).
RECORD_SFI1 = tlv.encode(
    0x70,
    [
        tlv.encode(0x5A, PAN_5A),
        tlv.encode(0x5F24, bytes.fromhex("301231")),
        tlv.encode(0x9F4A, SDA_TAG_LIST),
    ],
)
RECORD_SFI11 = tlv.encode(0x70, [tlv.encode(0x5F28, bytes.fromhex("0056"))])
AFL = bytes.fromhex("08010101 58010101")
STATIC = build_static_data(
    [(1, RECORD_SFI1), (11, RECORD_SFI11)], aip=AIP, sda_tag_list=SDA_TAG_LIST
)

# PDOL and CDOL1 data as a terminal would send them.
PDOL_DATA = bytes.fromhex("3600C000 000000001000 0840 11223344")
UN = bytes.fromhex("11223344")
CDOL1_DATA = (
    bytes.fromhex("000000001000")  # 9F02 amount, bytes 0-5
    + bytes.fromhex("000000000000")  # 9F03
    + bytes.fromhex("0840")  # 9F1A
    + bytes.fromhex("0000000000")  # 95 TVR
    + bytes.fromhex("0840")  # 5F2A
    + bytes.fromhex("250615")  # 9A
    + b"\x00"  # 9C
    + UN  # 9F37, bytes 25-28
)
AC = bytes.fromhex("0123456789ABCDEF")
DN = bytes.fromhex("A1B2C3D4")


def _ca(name: str) -> tuple[CaKey, SigningKey]:
    signer = SigningKey.from_pem((FIXTURES / f"test-ca-{name}-private.pem").read_bytes())
    store = CaKeyStore.load(FIXTURES / "test-ca.json")
    rid, index = name.split("-")
    key = store.get(bytes.fromhex(rid), int(index, 16))
    assert key.modulus == signer.public.modulus
    return key, signer


@dataclass(frozen=True)
class Chain:
    """Everything a card personalised under the test CA carries."""

    ca: CaKey
    ca_signer: SigningKey
    issuer: SigningKey
    icc: SigningKey
    issuer_cert: CertificateParts
    icc_cert: CertificateParts


def _chain(ca_name: str, issuer: SigningKey, icc: SigningKey) -> Chain:
    ca, ca_signer = _ca(ca_name)
    issuer_cert = issue_issuer_certificate(
        ca_signer, issuer.public, issuer_identifier=PAN[:6], expiry=EXPIRY, serial=b"\x12\x34\x56"
    )
    icc_cert = issue_icc_certificate(
        issuer, icc.public, pan=PAN_5A, static_data=STATIC, expiry=EXPIRY
    )
    return Chain(ca, ca_signer, issuer, icc, issuer_cert, icc_cert)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "issuer1024e3": SigningKey.generate(1024, 3),
        "issuer1408e65537": SigningKey.generate(1408, 65537),
        "issuer1024e65537": SigningKey.generate(1024, 65537),
        "icc1024e3": SigningKey.generate(1024, 3),
        "icc1024e65537": SigningKey.generate(1024, 65537),
    }


# name: (CA, issuer key, ICC key, issuer remainder length, ICC remainder length)
CHAINS = {
    # 1024-bit CA: N_I = 128 > 128 - 36, ICC 128 > 128 - 42: both remainders.
    "both-remainders": ("A000000003-F1", "issuer1024e3", "icc1024e3", 36, 42),
    # 1408-bit CA, 1408-bit issuer: issuer remainder; ICC 128 <= 176 - 42: none.
    "issuer-remainder": ("A000000004-99", "issuer1408e65537", "icc1024e65537", 36, 0),
    # 1408-bit CA, 1024-bit issuer: 128 <= 176 - 36, no issuer remainder.
    "icc-remainder": ("A000000004-99", "issuer1024e65537", "icc1024e3", 0, 42),
}


@pytest.fixture(scope="module", params=sorted(CHAINS))
def chain(request: pytest.FixtureRequest, keys: dict[str, SigningKey]) -> Chain:
    ca_name, issuer, icc, issuer_rem, icc_rem = CHAINS[request.param]
    built = _chain(ca_name, keys[issuer], keys[icc])
    assert len(built.issuer_cert.remainder) == issuer_rem
    assert len(built.icc_cert.remainder) == icc_rem
    return built


@pytest.fixture(scope="module")
def visa(keys: dict[str, SigningKey]) -> Chain:
    """The 1024-bit chain with both remainders, for the failure tests."""
    return _chain("A000000003-F1", keys["issuer1024e3"], keys["icc1024e3"])


def _issuer(c: Chain, **kw: Any) -> IssuerPublicKey:
    args: dict[str, Any] = {
        "certificate": c.issuer_cert.certificate,
        "remainder": c.issuer_cert.remainder,
        "exponent": c.issuer_cert.exponent,
        "pan": PAN_5A,
        "today": TODAY,
    }
    args.update(kw)
    return recover_issuer_key(c.ca, **args)


def _icc(c: Chain, **kw: Any) -> IccPublicKey:
    issuer_key = recover_issuer_key(c.ca, *c.issuer_cert, PAN_5A, TODAY)
    args: dict[str, Any] = {
        "certificate": c.icc_cert.certificate,
        "remainder": c.icc_cert.remainder,
        "exponent": c.icc_cert.exponent,
        "pan": PAN_5A,
        "static_data": STATIC,
        "today": TODAY,
    }
    args.update(kw)
    return recover_icc_key(issuer_key, **args)


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _rehash(block: bytes, tail: bytes) -> bytes:
    """``block`` with its hash result recomputed over block[1:-21] || tail."""
    return block[:-21] + _sha1(block[1:-21] + tail) + block[-1:]


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes((data[pos] ^ 0x01,)) + data[pos + 1 :]


# --------------------------------------------------------------------------- round trips


def test_issuer_and_icc_keys_round_trip(chain: Chain) -> None:
    issuer = recover_issuer_key(chain.ca, *chain.issuer_cert, PAN_5A, TODAY)
    assert issuer.modulus == chain.issuer.public.modulus
    assert issuer.exponent == chain.issuer.public.exponent
    assert issuer.issuer_identifier == "541333"
    assert issuer.expiry == EXPIRY
    assert issuer.serial == b"\x12\x34\x56"
    icc = recover_icc_key(issuer, *chain.icc_cert, PAN, STATIC, TODAY)
    assert icc.modulus == chain.icc.public.modulus
    assert icc.exponent == chain.icc.public.exponent
    assert icc.pan == PAN
    assert PAN not in repr(icc)
    assert PAN not in str(icc)


def test_sda_round_trip(chain: Chain) -> None:
    issuer = recover_issuer_key(chain.ca, *chain.issuer_cert, PAN_5A, TODAY)
    signed = sign_sda(chain.issuer, STATIC, dac=b"\xbe\xef")
    assert len(signed) == len(chain.issuer.public.modulus)
    assert verify_sda(issuer, signed, STATIC) == b"\xbe\xef"


def test_dda_round_trip(chain: Chain) -> None:
    icc = _icc(chain)
    ddol_data = bytes.fromhex("CAFEBABE")
    result = verify_dda(icc, sign_dda(chain.icc, DN, ddol_data), ddol_data)
    assert result.icc_dynamic_number == DN
    assert result.icc_dynamic_data == b"\x04" + DN


@pytest.mark.parametrize("card_auth_data", [bytes.fromhex("0169C16C99"), None, b"\x00"])
def test_fdda_round_trip(chain: Chain, card_auth_data: bytes | None) -> None:
    icc = _icc(chain)
    txn: dict[str, Any] = {
        "unpredictable_number": UN,
        "amount_authorised": bytes.fromhex("000000000200"),
        "currency_code": bytes.fromhex("0840"),
        "card_auth_data": card_auth_data,
    }
    signed = sign_fdda(chain.icc, b"\x00\x15", **txn)
    assert verify_fdda(icc, signed, **txn).icc_dynamic_number == b"\x00\x15"


def test_fdda_version_01_signs_amount_and_version_00_only_the_un() -> None:
    v01 = fdda_terminal_data(UN, b"\x00" * 5 + b"\x01", b"\x08\x40", b"\x01\xaa")
    assert v01 == UN + b"\x00" * 5 + b"\x01" + b"\x08\x40" + b"\x01\xaa"
    assert fdda_terminal_data(UN, b"\x00" * 6, b"\x08\x40", None) == UN


def _cda_response(
    icc: SigningKey,
    *,
    cid: int = 0x80,
    clear_ac: bytes | None = None,
    signed_cid: int | None = None,
    cdol2: bytes | None = None,
    un: bytes = UN,
) -> bytes:
    """A GENERATE AC response like mock-msc-online's: 9F27, 9F36, 9F4B, 9F10."""
    before = tlv.encode(0x9F27, bytes((cid,))) + tlv.encode(0x9F36, b"\x00\x52")
    if clear_ac is not None:
        before += tlv.encode(0x9F26, clear_ac)
    after = tlv.encode(0x9F10, bytes.fromhex("0110A040002C00000000000000000000"))
    sdad = sign_cda(
        icc,
        icc_dynamic_number=DN,
        cid=cid if signed_cid is None else signed_cid,
        cryptogram=AC,
        unpredictable_number=un,
        pdol_data=PDOL_DATA,
        cdol1_data=CDOL1_DATA,
        response_tlvs=before + after,
        cdol2_data=cdol2,
    )
    return tlv.encode(0x77, before + tlv.encode(0x9F4B, sdad) + after)


def test_cda_round_trip(chain: Chain) -> None:
    icc = _icc(chain)
    response = _cda_response(chain.icc)
    result = verify_cda(
        icc, response, unpredictable_number=UN, pdol_data=PDOL_DATA, cdol1_data=CDOL1_DATA
    )
    assert (result.cid, result.cryptogram, result.icc_dynamic_number) == (0x80, AC, DN)
    objects = tlv.decode_one(response, 0x77).children
    rest = b"".join(o.encode() for o in objects if o.tag != 0x9F4B)
    assert result.transaction_data_hash == _sha1(PDOL_DATA + CDOL1_DATA + rest)


def test_cda_second_generate_ac_hashes_cdol2_data(visa: Chain) -> None:
    icc = _icc(visa)
    cdol2 = bytes.fromhex("3030 0000000000 55667788")
    response = _cda_response(visa.icc, cid=0x40, cdol2=cdol2)
    common = {"pdol_data": PDOL_DATA, "cdol1_data": CDOL1_DATA, "unpredictable_number": UN}
    assert verify_cda(icc, response, cdol2_data=cdol2, **common).cid == 0x40
    with pytest.raises(OdaError, match="transaction data hash code does not match"):
        verify_cda(icc, response, **common)


def test_cda_accepts_a_clear_cryptogram_equal_to_the_signed_one(visa: Chain) -> None:
    response = _cda_response(visa.icc, clear_ac=AC)
    result = verify_cda(
        _icc(visa),
        response,
        unpredictable_number=UN,
        pdol_data=PDOL_DATA,
        cdol1_data=CDOL1_DATA,
    )
    assert result.cryptogram == AC


def test_transaction_data_hash_known_answer() -> None:
    # SHA-1("abc") = A9993E36 4706816A BA3E2571 7850C26C 9CD0D89D (FIPS 180 example).
    assert transaction_data_hash(b"a", b"b", b"c").hex().upper() == (
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    )
    assert transaction_data_hash(b"", b"a", b"c", cdol2_data=b"b") == _sha1(b"abc")


# --------------------------------------------------------------------------- issuer checks


def test_oda_error_is_a_verification_error() -> None:
    assert issubclass(OdaError, VerificationError)


@pytest.mark.parametrize("pos", [0, 1, 37, 64, 126, 127])
def test_issuer_certificate_bit_flip_fails(visa: Chain, pos: int) -> None:
    cert = _flip(visa.issuer_cert.certificate, pos)
    with pytest.raises(OdaError, match=r"^issuer certificate"):
        _issuer(visa, certificate=cert)


def test_issuer_remainder_bit_flip_fails_the_hash(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^issuer certificate hash does not match$"):
        _issuer(visa, remainder=_flip(visa.issuer_cert.remainder, 7))


def test_issuer_wrong_exponent_fails_the_hash(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^issuer certificate hash does not match$"):
        _issuer(visa, exponent=b"\x01\x00\x01")


def test_issuer_remainder_missing_or_short(visa: Chain) -> None:
    with pytest.raises(OdaError, match="issuer public key remainder is missing"):
        _issuer(visa, remainder=None)
    with pytest.raises(OdaError, match="remainder is 35 bytes, 36 expected"):
        _issuer(visa, remainder=visa.issuer_cert.remainder[:-1])


def test_wrong_ca_key(visa: Chain) -> None:
    store = CaKeyStore.load(FIXTURES)
    with pytest.raises(OdaError, match=r"^no CA public key A000000003/F2$"):
        store.get(bytes.fromhex("A000000003"), 0xF2)
    other = store.get(bytes.fromhex("A000000004"), 0x99)
    with pytest.raises(OdaError, match="issuer certificate is 128 bytes, the key modulus is 176"):
        recover_issuer_key(other, *visa.issuer_cert, PAN_5A, TODAY)
    # A different CA key of the same length recovers noise.
    impostor = CaKey(
        rid=visa.ca.rid, index=visa.ca.index, modulus=visa.issuer.public.modulus, exponent=3
    )
    with pytest.raises(OdaError, match=r"^issuer certificate"):
        recover_issuer_key(impostor, *visa.issuer_cert, PAN_5A, TODAY)


def test_issuer_certificate_not_below_the_modulus(visa: Chain) -> None:
    with pytest.raises(OdaError, match="is not smaller than the key modulus"):
        _issuer(visa, certificate=b"\xff" * 128)
    with pytest.raises(OdaError, match="is 127 bytes"):
        _issuer(visa, certificate=visa.issuer_cert.certificate[1:])


def test_expired_issuer_certificate(visa: Chain) -> None:
    parts = issue_issuer_certificate(
        visa.ca_signer, visa.issuer.public, issuer_identifier="541333", expiry=date(2025, 5, 31)
    )
    with pytest.raises(OdaError, match=r"^issuer certificate has expired$"):
        recover_issuer_key(visa.ca, *parts, PAN_5A, TODAY)
    # Valid up to the last day of its month (Book 2 §5.3 step 9).
    june = issue_issuer_certificate(
        visa.ca_signer, visa.issuer.public, issuer_identifier="541333", expiry=date(2025, 6, 1)
    )
    assert recover_issuer_key(visa.ca, *june, PAN_5A, date(2025, 6, 30)).expiry == date(2025, 6, 30)
    with pytest.raises(OdaError, match="has expired"):
        recover_issuer_key(visa.ca, *june, PAN_5A, date(2025, 7, 1))


@pytest.mark.parametrize(
    ("identifier", "pan", "ok"),
    [
        ("541333", "5413330089601034", True),
        ("541", "5413330089601034", True),
        ("54133300", "5413330089601034", True),
        ("541334", "5413330089601034", False),
        ("541333", "4413330089601034", False),
    ],
)
def test_issuer_identifier_against_pan(visa: Chain, identifier: str, pan: str, ok: bool) -> None:
    parts = issue_issuer_certificate(
        visa.ca_signer, visa.issuer.public, issuer_identifier=identifier, expiry=EXPIRY
    )
    if ok:
        assert recover_issuer_key(visa.ca, *parts, pan, TODAY).issuer_identifier == identifier
    else:
        with pytest.raises(OdaError, match=r"^issuer identifier does not match the PAN$"):
            recover_issuer_key(visa.ca, *parts, pan, TODAY)


def _issuer_block(visa: Chain, **kw: object) -> tuple[bytes, bytes]:
    args: dict[str, Any] = {
        "issuer_identifier": "541333",
        "expiry": EXPIRY,
        "serial": b"\x00\x00\x07",
    }
    args.update(kw)
    return build_issuer_certificate_block(128, visa.issuer.public, **args)


@pytest.mark.parametrize(
    ("pos", "value", "reason"),
    [
        (-1, 0xBD, "^issuer certificate trailer is not BC$"),
        (0, 0x6B, "^issuer certificate header is not 6A$"),
        (1, 0x04, "^issuer certificate format is not 02$"),
        (11, 0x02, "^issuer certificate hash algorithm 02 is not supported$"),
        (13, 0x00, "issuer public key length is zero"),
    ],
)
def test_issuer_block_field_checks(visa: Chain, pos: int, value: int, reason: str) -> None:
    block, remainder = _issuer_block(visa)
    changed = bytearray(block)
    changed[pos] = value
    cert = visa.ca_signer.sign(bytes(changed))
    with pytest.raises(OdaError, match=reason):
        recover_issuer_key(visa.ca, cert, remainder, b"\x03", PAN_5A, TODAY)


def test_issuer_block_checks_after_the_hash(visa: Chain) -> None:
    exponent = b"\x03"
    block, remainder = _issuer_block(visa)

    def recover(changed: bytes) -> None:
        cert = visa.ca_signer.sign(_rehash(changed, remainder + exponent))
        recover_issuer_key(visa.ca, cert, remainder, exponent, PAN_5A, TODAY)

    with pytest.raises(OdaError, match="expiration date is not a valid MMYY"):
        recover(block[:6] + bytes.fromhex("1330") + block[8:])
    with pytest.raises(OdaError, match="public key algorithm 02 is not supported"):
        recover(block[:12] + b"\x02" + block[13:])
    with pytest.raises(OdaError, match="exponent length field does not match"):
        recover(block[:14] + b"\x03" + block[15:])
    with pytest.raises(OdaError, match="issuer identifier does not match"):
        recover(block[:2] + bytes.fromhex("54FF33FF") + block[6:])


def test_issuer_certificate_revocation(visa: Chain) -> None:
    revoked = {(visa.ca.rid, visa.ca.index, b"\x12\x34\x56")}
    with pytest.raises(OdaError, match=r"^issuer certificate has been revoked$"):
        recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY, revoked=revoked)
    other = {(visa.ca.rid, 0x99, b"\x12\x34\x56")}
    assert recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY, revoked=other)


def test_issuance_refuses_a_key_longer_than_the_ca(keys: dict[str, SigningKey]) -> None:
    _, ca_signer = _ca("A000000003-F1")
    with pytest.raises(CryptoError, match="longer than the signing key"):
        issue_issuer_certificate(
            ca_signer, keys["issuer1408e65537"].public, issuer_identifier="541333", expiry=EXPIRY
        )


# --------------------------------------------------------------------------- ICC checks


@pytest.mark.parametrize("pos", [0, 1, 50, 127])
def test_icc_certificate_bit_flip_fails(visa: Chain, pos: int) -> None:
    with pytest.raises(OdaError, match=r"^ICC certificate"):
        _icc(visa, certificate=_flip(visa.icc_cert.certificate, pos))


def test_icc_certificate_static_data_changed(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^ICC certificate hash does not match$"):
        _icc(visa, static_data=_flip(STATIC, 3))
    other_aip = build_static_data(
        [(1, RECORD_SFI1), (11, RECORD_SFI11)], aip=b"\x19\x80", sda_tag_list=b"\x82"
    )
    with pytest.raises(OdaError, match=r"^ICC certificate hash does not match$"):
        _icc(visa, static_data=other_aip)


def test_icc_wrong_exponent_and_remainder(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^ICC certificate hash does not match$"):
        _icc(visa, exponent=b"\x01\x00\x01")
    with pytest.raises(OdaError, match=r"^ICC certificate hash does not match$"):
        _icc(visa, remainder=_flip(visa.icc_cert.remainder, 0))
    with pytest.raises(OdaError, match="ICC public key remainder is missing"):
        _icc(visa, remainder=b"")


def test_icc_pan_mismatch(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^ICC certificate PAN does not match the application PAN$"):
        _icc(visa, pan="5413330089601035")
    with pytest.raises(OdaError, match="does not match the application PAN"):
        _icc(visa, pan="541333008960103")  # a prefix is not the PAN


def test_icc_expired_and_wrong_format(visa: Chain) -> None:
    issuer = recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY)
    old = issue_icc_certificate(
        visa.issuer, visa.icc.public, pan=PAN, static_data=STATIC, expiry=date(2024, 12, 1)
    )
    with pytest.raises(OdaError, match=r"^ICC certificate has expired$"):
        recover_icc_key(issuer, *old, PAN, STATIC, TODAY)
    block, remainder = build_icc_certificate_block(
        128, visa.icc.public, pan=PAN, static_data=STATIC, expiry=EXPIRY, serial=b"\x00\x00\x01"
    )
    wrong = visa.issuer.sign(block[:1] + b"\x02" + block[2:])
    with pytest.raises(OdaError, match=r"^ICC certificate format is not 04$"):
        recover_icc_key(issuer, wrong, remainder, b"\x03", PAN, STATIC, TODAY)


def test_an_issuer_certificate_is_not_an_icc_certificate(visa: Chain) -> None:
    issuer = recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY)
    # Certificate substitution: a 02-format block signed by the issuer key.
    block, remainder = _issuer_block(visa)
    with pytest.raises(OdaError, match=r"^ICC certificate format is not 04$"):
        recover_icc_key(issuer, visa.issuer.sign(block), remainder, b"\x03", PAN, STATIC, TODAY)


# --------------------------------------------------------------------------- SDA checks


def test_sda_failures(visa: Chain) -> None:
    issuer = recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY)
    signed = sign_sda(visa.issuer, STATIC)
    assert verify_sda(issuer, signed, STATIC) == b"\xda\xc1"
    with pytest.raises(OdaError, match=r"^signed static application data hash does not match$"):
        verify_sda(issuer, signed, STATIC + b"\x00")
    with pytest.raises(OdaError, match=r"^signed static application data"):
        verify_sda(issuer, _flip(signed, 64), STATIC)
    with pytest.raises(OdaError, match=r"^signed static application data is 127 bytes"):
        verify_sda(issuer, signed[1:], STATIC)
    # A dynamic signature block (format 05) is not SDA (format 03).
    dda = sign_dynamic_data(visa.issuer, b"\x02\x00\x01", b"")
    with pytest.raises(OdaError, match=r"^signed static application data format is not 03$"):
        verify_sda(issuer, dda, STATIC)


# --------------------------------------------------------------------------- static data


def test_static_data_follows_the_sfi_rules() -> None:
    # SFI 1-10: template 70 value only; SFI 11-30: the whole record; then the AIP.
    expected = RECORD_SFI1[2:] + RECORD_SFI11 + AIP
    assert expected == STATIC
    assert build_static_data([(10, bytes.fromhex("7003 5A0112"))]) == bytes.fromhex("5A0112")
    assert build_static_data([(30, bytes.fromhex("7003 5A0112"))]) == bytes.fromhex("70035A0112")
    assert build_static_data([(1, bytes.fromhex("7081 03 5A0112"))]) == bytes.fromhex("5A0112")


@pytest.mark.parametrize(
    ("records", "tag_list", "aip", "reason"),
    [
        ([(1, bytes.fromhex("6103 5A0112"))], None, None, "SFI 1 is not a template 70"),
        ([(2, bytes.fromhex("7004 5A0112"))], None, None, "length does not match"),
        ([(3, bytes.fromhex("70"))], None, None, "not a template 70"),
        ([(31, bytes.fromhex("7000"))], None, None, "SFI 31 is not 1-30"),
        ([], bytes.fromhex("9F02"), AIP, "SDA tag list names tags other than 82"),
        ([], bytes.fromhex("8282"), AIP, "SDA tag list names tags other than 82"),
        ([], b"\x82", None, "AIP is missing"),
    ],
)
def test_static_data_failures(
    records: list[tuple[int, bytes]], tag_list: bytes | None, aip: bytes | None, reason: str
) -> None:
    with pytest.raises(OdaError, match=reason):
        build_static_data(records, aip=aip, sda_tag_list=tag_list)


def test_oda_records_from_afl() -> None:
    assert oda_records(AFL) == [(1, 1), (11, 1)]
    # mock-msc-online: only SFI 2 record 1 is signed.
    afl = bytes.fromhex("08010100 10010201 18010200 20010200")
    assert oda_records(afl) == [(2, 1)]
    assert oda_records(bytes.fromhex("18010302")) == [(3, 1), (3, 2)]
    for bad in ("080101", "00010100", "F8010100", "08000000", "08020100", "08010103", "09010100"):
        with pytest.raises(DecodeError):
            oda_records(bytes.fromhex(bad))


# --------------------------------------------------------------------------- DDA / fDDA


def test_dda_failures(visa: Chain) -> None:
    icc = _icc(visa)
    signed = sign_dda(visa.icc, DN, b"\x01\x02\x03\x04")
    with pytest.raises(OdaError, match=r"^signed dynamic application data hash does not match$"):
        verify_dda(icc, signed, b"\x01\x02\x03\x05")
    with pytest.raises(OdaError, match=r"^signed dynamic application data"):
        verify_dda(icc, _flip(signed, 100), b"\x01\x02\x03\x04")
    bad_number = sign_dynamic_data(visa.icc, b"\x09" + bytes(9), b"")
    with pytest.raises(OdaError, match="ICC dynamic number length is invalid"):
        verify_dda(icc, bad_number, b"")
    # L_DD beyond the block: build the block by hand.
    block = bytearray(b"\x6a\x05\x01\xff" + b"\xbb" * 103 + bytes(20) + b"\xbc")
    with pytest.raises(OdaError, match="ICC dynamic data length runs past the pad pattern"):
        verify_dda(icc, visa.icc.sign(bytes(block)), b"")


@pytest.mark.parametrize(
    "change",
    ["unpredictable_number", "amount_authorised", "currency_code", "card_auth_data"],
)
def test_fdda_tampered_transaction_data(visa: Chain, change: str) -> None:
    icc = _icc(visa)
    txn: dict[str, bytes] = {
        "unpredictable_number": UN,
        "amount_authorised": bytes.fromhex("000000000200"),
        "currency_code": bytes.fromhex("0840"),
        "card_auth_data": bytes.fromhex("0169C16C99"),
    }
    signed = sign_fdda(visa.icc, b"\x00\x15", **txn)
    txn[change] = _flip(txn[change], len(txn[change]) - 1)
    with pytest.raises(OdaError, match=r"^signed dynamic application data hash does not match$"):
        verify_fdda(icc, signed, **txn)


def test_fdda_unknown_version(visa: Chain) -> None:
    with pytest.raises(OdaError, match="fDDA version 02 is not supported"):
        verify_fdda(
            _icc(visa),
            b"",
            unpredictable_number=UN,
            amount_authorised=bytes(6),
            currency_code=bytes(2),
            card_auth_data=b"\x02",
        )


# --------------------------------------------------------------------------- CDA checks


def _verify_cda(c: Chain, response: bytes, **kw: bytes) -> CdaResult:
    args = {"unpredictable_number": UN, "pdol_data": PDOL_DATA, "cdol1_data": CDOL1_DATA}
    args.update(kw)
    return verify_cda(_icc(c), response, **args)


def test_cda_tampered_amount(visa: Chain) -> None:
    response = _cda_response(visa.icc)
    tampered = bytes.fromhex("000000009000") + CDOL1_DATA[6:]
    with pytest.raises(OdaError, match=r"^transaction data hash code does not match$"):
        _verify_cda(visa, response, cdol1_data=tampered)


def test_cda_tampered_pdol_data(visa: Chain) -> None:
    with pytest.raises(OdaError, match=r"^transaction data hash code does not match$"):
        _verify_cda(visa, _cda_response(visa.icc), pdol_data=_flip(PDOL_DATA, 0))


def test_cda_tampered_unpredictable_number(visa: Chain) -> None:
    response = _cda_response(visa.icc)
    with pytest.raises(OdaError, match=r"^signed dynamic application data hash does not match$"):
        _verify_cda(visa, response, unpredictable_number=bytes.fromhex("11223345"))


def test_cda_tampered_cid(visa: Chain) -> None:
    response = _cda_response(visa.icc)
    pos = response.index(bytes.fromhex("9F270180"))
    tampered = response[: pos + 3] + b"\x40" + response[pos + 4 :]
    with pytest.raises(OdaError, match=r"^CID in the signature does not match the CID"):
        _verify_cda(visa, tampered)
    # A card that signs one CID and returns another fails the same check.
    with pytest.raises(OdaError, match=r"^CID in the signature does not match"):
        _verify_cda(visa, _cda_response(visa.icc, cid=0x80, signed_cid=0x40))


def test_cda_tampered_cryptogram(visa: Chain) -> None:
    # The card returns 9F26 in clear too, but not the cryptogram it signed.
    response = _cda_response(visa.icc, clear_ac=bytes(8))
    with pytest.raises(OdaError, match=r"^application cryptogram \(9F26\) in the response"):
        _verify_cda(visa, response)
    # Changing the clear 9F26 of a good response breaks the transaction data hash.
    good = _cda_response(visa.icc, clear_ac=AC)
    tampered = good.replace(tlv.encode(0x9F26, AC), tlv.encode(0x9F26, _flip(AC, 7)))
    with pytest.raises(OdaError, match=r"^transaction data hash code does not match$"):
        _verify_cda(visa, tampered)


def test_cda_tampered_response_objects(visa: Chain) -> None:
    response = _cda_response(visa.icc)
    atc = response.replace(bytes.fromhex("9F36020052"), bytes.fromhex("9F36020053"))
    with pytest.raises(OdaError, match=r"^transaction data hash code does not match$"):
        _verify_cda(visa, atc)
    sdad = tlv.find(tlv.decode(response), 0x9F4B)
    assert sdad is not None
    flipped = response.replace(sdad.value, _flip(sdad.value, 90))
    with pytest.raises(OdaError, match=r"^signed dynamic application data"):
        _verify_cda(visa, flipped)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (bytes.fromhex("8003 800000"), "not a template 77"),
        (bytes.fromhex("7705 9F270180"), "length does not match"),
        (bytes.fromhex("7704 9F270180"), "must hold one signed dynamic application data"),
        (bytes.fromhex("7703 9F4B00"), r"must hold one CID \(9F27\)"),
        (bytes.fromhex("7708 9F270180 9F270180"), "must hold one"),
        (bytes.fromhex("7703 9F2705"), "runs past it"),
        (b"", "not a template 77"),
    ],
)
def test_cda_malformed_responses(visa: Chain, response: bytes, reason: str) -> None:
    with pytest.raises(OdaError, match=reason):
        _verify_cda(visa, response)


def test_cda_dynamic_data_layout() -> None:
    data = cda_dynamic_data(DN, 0x80, AC, bytes(range(20)))
    assert data == b"\x04" + DN + b"\x80" + AC + bytes(range(20))
    with pytest.raises(CryptoError):
        cda_dynamic_data(b"\x01", 0x80, AC, bytes(20))


# --------------------------------------------------------------------------- keys


def test_signing_key_pem_round_trip_and_repr(keys: dict[str, SigningKey]) -> None:
    key = keys["icc1024e3"]
    again = SigningKey.from_pem(key.to_pem())
    assert again.public == key.public
    block = b"\x6a" + bytes(126) + b"\xbc"
    assert again.sign(block) == key.sign(block)
    assert key.public.recover(key.sign(block), "x") == block
    assert repr(key) == "SigningKey(1024-bit, e=3)"
    assert key.public.modulus.hex() not in repr(key).lower()
    with pytest.raises(DecodeError):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CryptoError):
        SigningKey.generate(1000, 3)
    with pytest.raises(CryptoError):
        SigningKey.generate(1024, 5)


def test_chains_are_independent(keys: dict[str, SigningKey], visa: Chain) -> None:
    # The ICC certificate only verifies under the issuer key that signed it.
    ca, _ = _ca("A000000004-99")
    other = _chain("A000000004-99", keys["issuer1024e65537"], keys["icc1024e3"])
    other_issuer = recover_issuer_key(ca, *other.issuer_cert, PAN, TODAY)
    with pytest.raises(OdaError, match=r"^ICC certificate"):
        recover_icc_key(other_issuer, *visa.icc_cert, PAN, STATIC, TODAY)


# --------------------------------------------------------------------------- garbage


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cert=st.binary(max_size=200),
    remainder=st.none() | st.binary(max_size=60),
    exponent=st.binary(max_size=4),
    pan=st.binary(max_size=12),
    static=st.binary(max_size=40),
)
def test_garbage_raises_only_oda_error(
    visa: Chain, cert: bytes, remainder: bytes | None, exponent: bytes, pan: bytes, static: bytes
) -> None:
    issuer = recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY)
    icc = recover_icc_key(issuer, *visa.icc_cert, PAN_5A, STATIC, TODAY)
    calls: list[Callable[[], object]] = [
        lambda: recover_issuer_key(visa.ca, cert, remainder, exponent, pan, TODAY),
        lambda: recover_icc_key(issuer, cert, remainder, exponent, pan, static, TODAY),
        lambda: verify_sda(issuer, cert, static),
        lambda: verify_dda(icc, cert, static),
        lambda: verify_fdda(
            icc,
            cert,
            unpredictable_number=static[:4],
            amount_authorised=static[4:10],
            currency_code=static[10:12],
            card_auth_data=remainder,
        ),
        lambda: verify_cda(
            icc, cert, unpredictable_number=exponent, pdol_data=pan, cdol1_data=static
        ),
    ]
    for call in calls:
        with contextlib.suppress(OdaError):
            call()


_HEADER_FIELDS = st.tuples(
    st.binary(min_size=13, max_size=13),  # identifier..lengths of an issuer block
    st.binary(min_size=92, max_size=92),  # key field
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fields=_HEADER_FIELDS, remainder=st.binary(max_size=40), exponent=st.binary(max_size=4))
def test_signed_garbage_with_a_valid_hash_raises_only_oda_error(
    visa: Chain, fields: tuple[bytes, bytes], remainder: bytes, exponent: bytes
) -> None:
    """The CA signs nonsense fields with a correct hash: only the later checks stand."""
    head, key_field = fields
    head = head[:9] + b"\x01" + head[10:]  # keep hash algorithm 01 so the hash is checked
    block = b"\x6a\x02" + head + key_field + bytes(20) + b"\xbc"
    cert = visa.ca_signer.sign(_rehash(block, remainder + exponent))
    try:
        key = recover_issuer_key(visa.ca, cert, remainder, exponent, PAN_5A, TODAY)
    except OdaError:
        return
    # If everything passed the key is a plausible RSA key built from the fields.
    assert key.exponent in (3, 65537)
    assert len(key.modulus) <= 128


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dynamic=st.binary(min_size=0, max_size=110), ldd=st.integers(0, 255))
def test_signed_dynamic_garbage_raises_only_oda_error(
    visa: Chain, dynamic: bytes, ldd: int
) -> None:
    icc = recover_icc_key(
        recover_issuer_key(visa.ca, *visa.issuer_cert, PAN_5A, TODAY),
        *visa.icc_cert,
        PAN_5A,
        STATIC,
        TODAY,
    )
    body = dynamic.ljust(103, b"\xbb")[:103]
    block = b"\x6a\x05\x01" + bytes((ldd,)) + body + bytes(20) + b"\xbc"
    signed = visa.icc.sign(_rehash(block, UN))
    response = tlv.encode(0x77, tlv.encode(0x9F27, b"\x80") + tlv.encode(0x9F4B, signed))
    for call in (
        lambda: verify_dda(icc, signed, UN),
        lambda: verify_cda(icc, response, unpredictable_number=UN, pdol_data=b"", cdol1_data=b""),
    ):
        with contextlib.suppress(OdaError):
            call()
