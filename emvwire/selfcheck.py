"""emvwire's self-check: published known-answer vectors and an ODA round trip.

``python -m emvwire`` (and ``scripts/demo`` until the applications land) runs every
check and prints one line each; the exit status is 0 only if all pass. The vectors
are the published ones of pyemv's tests (tests/test_ac_hsm.py, tests/test_cvn_hsm.py)
and of the SM4 and SM3 standards (GB/T 32907-2016, GB/T 32905-2016 Appendix A); the
ODA check certifies a fresh key pair with a fresh CA and recovers it (EMV Book 2
§5.3, §6.3, §6.4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from emvwire import oda, tlv
from emvwire.crypto.cryptogram import CryptogramData, generate_arpc, generate_arqc
from emvwire.crypto.des import kcv
from emvwire.crypto.kdf import derive_common_sk, derive_icc_mk_a
from emvwire.crypto.sm import sm3, sm4_ecb_encrypt
from emvwire.errors import EmvWireError

__all__ = ["CheckResult", "run"]

_IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")

#: Visa data of pyemv tests/test_cvn_hsm.py (PAN 1234567890123456, PSN 00).
_VISA = {
    "tag_9f02": "000000004000", "tag_9f03": "000000000000", "tag_9f1a": "0124",
    "tag_95": "8000048000", "tag_5f2a": "0124", "tag_9a": "191105", "tag_9c": "01",
    "tag_9f37": "52BF4585", "tag_82": "1800", "tag_9f36": "001C",
}  # fmt: skip
#: Mastercard data of the same file.
_MC = {
    "tag_9f02": "000000009999", "tag_9f03": "000000000000", "tag_9f1a": "0124",
    "tag_95": "8000000000", "tag_5f2a": "0124", "tag_9a": "209906", "tag_9c": "00",
    "tag_9f37": "ABCDEF12", "tag_82": "1800", "tag_9f36": "001C", "cvr": "A00003220000",
}  # fmt: skip

#: CVN, data, extra fields, expected ARQC, ARPC inputs (arc or csu), expected ARPC.
_CVN_VECTORS: tuple[tuple[int, dict[str, str], dict[str, str], str, dict[str, str], str], ...] = (
    (10, _VISA, {"cvr": "03A06010"}, "29CCA15AE665FA2E", {"arc": "3030"}, "28993816AFAE4AEB"),
    (18, _VISA, {"tag_9f10": "06011203A0B800"}, "7A788EA6B8A3E733", {"csu": "00000000"},
     "9AF514C1"),
    (22, _VISA, {"tag_9f10": "06011203A0B800"}, "7A788EA6B8A3E733", {"csu": "00000000"},
     "9AF514C1"),
    (16, _MC, {}, "24CCF3DEE3158C70", {"arc": "0010"}, "73F6BBF389A6586C"),
    (17, _MC, {"counters": "00000000000322FF"}, "EAE8A620A75648D8", {}, ""),
    (20, _MC, {}, "CD29615D6452E70E", {}, ""),
    (21, _MC, {"counters": "00000000000322FF"}, "C30E54BE496CF5E5", {}, ""),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, whether it passed, what it showed, how long it took."""

    name: str
    passed: bool
    detail: str
    seconds: float


def _expect(got: bytes, want: str) -> str:
    if got.hex().upper() != want:
        raise AssertionError(f"got {got.hex().upper()}, expected {want}")
    return want


def _key_derivation() -> str:
    # pyemv tests/test_ac_hsm.py: IMK KCV 08D7; PAN 9901234567890123 PSN 45 -> 1DA5;
    # R = 1234567890123456 -> session key KCV 0995.
    _expect(kcv(_IMK)[:2], "08D7")
    icc = derive_icc_mk_a(_IMK, "9901234567890123", "45")
    _expect(kcv(icc)[:2], "1DA5")
    sk = derive_common_sk(icc, bytes.fromhex("1234567890123456"))
    _expect(kcv(sk)[:2], "0995")
    return "IMK 08D7 -> ICC MK 1DA5 -> SK 0995"


def _cvn_check(
    cvn: int, base: dict[str, str], extra: dict[str, str], arqc: str, arpc_in: dict[str, str],
    arpc: str,
) -> Callable[[], str]:  # fmt: skip
    def check() -> str:
        fields = {k: bytes.fromhex(v) for k, v in {**base, **extra}.items()}
        data = CryptogramData(**fields)
        icc = derive_icc_mk_a(_IMK, "1234567890123456", "00")
        got = generate_arqc(cvn, icc, data)
        _expect(got, arqc)
        shown = f"ARQC {arqc}"
        if arpc:
            kwargs = {k: bytes.fromhex(v) for k, v in arpc_in.items()}
            _expect(generate_arpc(cvn, icc, data, got, **kwargs), arpc)
            shown += f", ARPC {arpc}"
        return shown

    return check


def _sm_suite() -> str:
    # GB/T 32907-2016 A.1 (key = plaintext) and GB/T 32905-2016 A.1 ("abc").
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    _expect(sm4_ecb_encrypt(key, key), "681EDF34D206965E86B3E94F536E4246")
    _expect(sm3(b"abc"), "66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0")
    return "SM4 681EDF34..., SM3('abc') 66C7F0F4..."


def _tlv_round_trip() -> str:
    gpo = bytes.fromhex(
        "7757820220005F34010157114761739001010010D221220111438444895F2016564953412043524544"
        "49542F43415244484F4C4445529F100706010A03A000009F260848325309BE82CBA29F2701809F3602"
        "00779F6C029000"
    )
    (top,) = tlv.decode(gpo)
    if tlv.encode(top.tag, top.children) != gpo:
        raise AssertionError("re-encoding changed the GPO response")
    return f"GPO response of the public Visa transcript: {len(top.children)} objects"


def _oda_round_trip() -> str:
    ca = oda.SigningKey.generate(1152, 3)
    issuer = oda.SigningKey.generate(1024, 3)
    icc = oda.SigningKey.generate(1024, 3)
    pan = "4761739001010010"
    expiry = date(2040, 12, 31)
    parts = oda.issue_issuer_certificate(ca, issuer.public, issuer_identifier="476173",
                                         expiry=expiry)  # fmt: skip
    static = b"\x5a\x08" + bytes.fromhex(pan) + b"\x20\x00"
    icc_parts = oda.issue_icc_certificate(issuer, icc.public, pan=pan, static_data=static,
                                          expiry=expiry)  # fmt: skip
    ca_key = oda.CaKey(rid=bytes.fromhex("A000000003"), index=0xF9, modulus=ca.public.modulus,
                       exponent=ca.public.exponent, expiry=expiry)  # fmt: skip
    today = date.today()
    issuer_key = oda.recover_issuer_key(ca_key, parts.certificate, parts.remainder,
                                        parts.exponent, pan=pan, today=today)  # fmt: skip
    icc_key = oda.recover_icc_key(issuer_key, icc_parts.certificate, icc_parts.remainder,
                                  icc_parts.exponent, pan=pan, static_data=static,
                                  today=today)  # fmt: skip
    if icc_key.modulus != icc.public.modulus:
        raise AssertionError("recovered ICC key differs")
    return "CA 1152 -> issuer 1024 -> ICC 1024 bits: certificates recovered"


def _checks() -> list[tuple[str, Callable[[], str]]]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("key derivation (Book 2 A1.4.1 option A, A1.3.1)", _key_derivation),
    ]
    for cvn, base, extra, arqc, arpc_in, arpc in _CVN_VECTORS:
        brand = "Visa" if base is _VISA else "Mastercard"
        checks.append((f"{brand} CVN {cvn}", _cvn_check(cvn, base, extra, arqc, arpc_in, arpc)))
    checks.append(("SM4 and SM3 (GB/T 32907, GB/T 32905)", _sm_suite))
    checks.append(("BER-TLV round trip (Book 3 Annex B)", _tlv_round_trip))
    checks.append(("offline data authentication (Book 2 §6)", _oda_round_trip))
    return checks


def run() -> list[CheckResult]:
    """Run every check; a failure is reported, never raised."""
    results = []
    for name, check in _checks():
        started = time.perf_counter()
        try:
            detail, passed = check(), True
        except (AssertionError, EmvWireError, TypeError, ValueError) as exc:
            detail, passed = f"{type(exc).__name__}: {exc}", False
        results.append(CheckResult(name, passed, detail, time.perf_counter() - started))
    return results
