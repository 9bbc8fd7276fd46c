"""Application cryptograms (ARQC, TC, AAC) and issuer authentication (ARPC).

An application cryptogram is a MAC, under an AC key, over terminal and card data
(EMV 4.3 Book 2 §8.1). Which key, which data and which MAC is fixed by the
Cryptogram Version Number (CVN) the card puts in its Issuer Application Data
(tag ``9F10``). :data:`CVN_TABLE` holds, as data, what each supported CVN does;
:func:`generate_arqc` / :func:`verify_arqc` and :func:`generate_arpc` /
:func:`verify_arpc` follow it. TCs and AACs are computed exactly as ARQCs.

ARPC methods (EMV 4.3 Book 2 §8.2):

* Method 1 (§8.2.1): ``ARPC = TDES_SK(ARQC xor (ARC || 00 * 6))``, 8 bytes, with
  the 2-byte Authorisation Response Code.
* Method 2 (§8.2.2): ``ARPC = MAC_SK(ARQC || CSU || proprietary data)``, the
  leftmost 4 bytes, with the 4-byte Card Status Update and 0 to 8 bytes of
  proprietary authentication data; the MAC is §A1.2.1 (TDES) or §A1.2.2 (AES).

Verification recomputes and compares with :func:`hmac.compare_digest`, raising
:class:`~emvwire.errors.VerificationError` on a mismatch.

Performance: keying a cipher in ``cryptography`` costs about ten times a block
encipherment, so master-key contexts, derived session keys and their MAC
contexts are cached (bounded, per thread), and a :class:`CryptogramData` keeps
its padded cryptogram input. Verifying a cryptogram just generated, or ARPC
generation after ARQC verification, reuses all of them. A transaction with a new
TDES session key still keys two cipher contexts (single-DES ``K1`` for the CBC
pass, two-key TDES for the output transformation), which bounds the throughput
of fresh-session-key CVNs; see bench/test_bench_crypto.py.

>>> data = CryptogramData(
...     tag_9f02=bytes.fromhex("000000004000"), tag_9f03=bytes(6),
...     tag_9f1a=bytes.fromhex("0124"), tag_95=bytes.fromhex("8000048000"),
...     tag_5f2a=bytes.fromhex("0124"), tag_9a=bytes.fromhex("191105"),
...     tag_9c=b"\\x01", tag_9f37=bytes.fromhex("52BF4585"),
...     tag_82=bytes.fromhex("1800"), tag_9f36=bytes.fromhex("001C"),
...     tag_9f10=bytes.fromhex("06011203A0B800"))
>>> from emvwire.crypto.kdf import derive_icc_mk_b
>>> mk = derive_icc_mk_b(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "1234567890123456")
>>> arqc = generate_arqc(Cvn.VISA_18, mk, data)
>>> arqc.hex().upper()
'7A788EA6B8A3E733'
>>> verify_arqc(Cvn.VISA_18, mk, data, arqc)
>>> generate_arpc(Cvn.VISA_18, mk, data, arqc, csu=bytes(4)).hex().upper()
'9AF514C1'
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from emvwire.crypto import _ctx
from emvwire.crypto.aes import aes_cmac
from emvwire.crypto.kdf import _common_sk, _common_sk_aes
from emvwire.crypto.mac import _retail_mac_padded, pad_iso9797_1, pad_iso9797_2
from emvwire.crypto.sm import _common_sk_sm4, sm4_cmac
from emvwire.errors import CryptoError, VerificationError
from emvwire.tags import Tag

__all__ = [
    "CVN_TABLE",
    "DATA_ELEMENT_TAGS",
    "ArpcKey",
    "CryptogramData",
    "Cvn",
    "CvnSpec",
    "MacAlgorithm",
    "MasterKeyDerivation",
    "SessionKeyDerivation",
    "arpc_method_1",
    "arpc_method_2",
    "build_cryptogram_input",
    "cvn_spec",
    "derive_ac_session_key",
    "generate_arpc",
    "generate_arqc",
    "verify_arpc",
    "verify_arqc",
]


class Cvn(enum.IntEnum):
    """The cryptogram versions supported, valued by their CVN byte as a number.

    Visa and Mastercard number CVNs independently; the numbers supported here do
    not collide, so an ``int`` names one entry of :data:`CVN_TABLE`.
    ``EMV_CCD_AES`` is valued ``0xA6``: the Common Core Identifier byte of a CCD
    IAD whose cryptogram version is ``6`` (AES); ``EMV_CCD_TDES`` ``0xA5``, version
    ``5`` (TDES), the cryptogram of tapstack's American Express card (kernel 4).
    ``UNIONPAY_TDES`` (01) and ``UNIONPAY_SM4`` (04) are tapstack's UnionPay card's
    (kernel 7): TDES or the SM4 suite, chosen per card range.
    """

    VISA_10 = 10
    VISA_18 = 18
    VISA_22 = 22
    MASTERCARD_16 = 16
    MASTERCARD_17 = 17
    MASTERCARD_20 = 20
    MASTERCARD_21 = 21
    UNIONPAY_TDES = 0x01
    UNIONPAY_SM4 = 0x04
    EMV_CCD_TDES = 0xA5
    EMV_CCD_AES = 0xA6


class MasterKeyDerivation(enum.Enum):
    """How the ICC master key derives from the issuer master key."""

    OPTION_A = "EMV 4.3 Book 2 §A1.4.1 Option A"
    OPTION_B = "EMV 4.3 Book 2 §A1.4.2 Option B (Option A for PANs of 16 digits or fewer)"
    AES = "Option A/B Y under AES-128 (tapstack's reading, kdf.derive_icc_mk_aes)"
    SM4 = "Option A/B Y under SM4 as under AES (tapstack's reading, sm.derive_icc_mk_sm4)"


class SessionKeyDerivation(enum.Enum):
    """How the AC session key derives from the ICC master key."""

    NONE = "no session key: the ICC master key is used directly"
    EMV_CSK = "EMV common SKD, EMV 4.3 Book 2 §A1.3.1, R = ATC || 00 * 6"
    MASTERCARD_SKD = "Mastercard proprietary SKD, R = ATC || 00 00 || UN"
    EMV_CSK_AES = "EMV common SKD with AES, EMV 4.3 Book 2 §A1.3.1, R = ATC || 00 * 14"
    EMV_CSK_SM4 = "EMV common SKD with SM4, EMV 4.3 Book 2 §A1.3.1, R = ATC || 00 * 14"


class MacAlgorithm(enum.Enum):
    """The MAC computing the cryptogram."""

    RETAIL_TDES = "ISO/IEC 9797-1 MAC algorithm 3, EMV 4.3 Book 2 §A1.2.1"
    AES_CMAC = "AES-CMAC (ISO/IEC 9797-1 MAC algorithm 5), EMV 4.3 Book 2 §A1.2.2"
    SM4_CMAC = "CMAC with SM4 (ISO/IEC 9797-1 MAC algorithm 5), Book 2 §A1.2.2 with SM4"


class ArpcKey(enum.Enum):
    """Which key computes the ARPC."""

    SESSION_KEY = "the AC session key"
    MASTER_KEY = "the ICC master key (AC)"


#: The tag of each cryptogram data element named in :attr:`CvnSpec.data_elements`.
#: ``cvr`` and ``counters`` are fields of the Issuer Application Data (9F10).
DATA_ELEMENT_TAGS: Final = MappingProxyType(
    {
        "tag_9f02": Tag.AMOUNT_AUTHORISED,
        "tag_9f03": Tag.AMOUNT_OTHER,
        "tag_9f1a": Tag.TERMINAL_COUNTRY_CODE,
        "tag_95": Tag.TVR,
        "tag_5f2a": Tag.TRANSACTION_CURRENCY_CODE,
        "tag_9a": Tag.TRANSACTION_DATE,
        "tag_9c": Tag.TRANSACTION_TYPE,
        "tag_9f37": Tag.UNPREDICTABLE_NUMBER,
        "tag_82": Tag.AIP,
        "tag_9f36": Tag.ATC,
        "tag_9f10": Tag.IAD,
        "cvr": Tag.IAD,
        "counters": Tag.IAD,
    }
)

#: The terminal and card data every supported CVN MACs first: EMV 4.3 Book 2
#: §8.1.1 Table 26 "recommended minimum set of data elements".
_BOOK2_MINIMUM: Final = (
    "tag_9f02",
    "tag_9f03",
    "tag_9f1a",
    "tag_95",
    "tag_5f2a",
    "tag_9a",
    "tag_9c",
    "tag_9f37",
    "tag_82",
    "tag_9f36",
)


@dataclass(frozen=True, slots=True)
class CvnSpec:
    """What one cryptogram version number does (one row of :data:`CVN_TABLE`).

    ``data_elements`` lists, in order, the :class:`CryptogramData` fields whose
    values are concatenated to form the cryptogram input. ``padding`` is the
    ISO/IEC 9797-1 padding method applied before a TDES MAC (0: none, CMAC pads
    internally). ``cvr_in_iad`` and ``counters_in_iad`` are ``(offset, length)``
    of those fields in the IAD value, or ``None`` where not applicable or not
    pinned down.
    """

    cvn: Cvn
    scheme: str
    master_key: MasterKeyDerivation
    session_key: SessionKeyDerivation
    data_elements: tuple[str, ...]
    padding: int
    mac: MacAlgorithm
    arpc_method: int
    arpc_key: ArpcKey
    iad_layout: str
    cvr_in_iad: tuple[int, int] | None
    counters_in_iad: tuple[int, int] | None
    sources: tuple[str, ...]
    ac_length: int = 8


_PYEMV = "pyemv 1.5 pyemv/cvn.py and tests/test_cvn_hsm.py (HSM-checked vectors)"

#: The supported cryptogram versions (specification as data).
CVN_TABLE: Final = MappingProxyType(
    {
        Cvn.VISA_10: CvnSpec(
            cvn=Cvn.VISA_10,
            scheme="Visa",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.NONE,
            data_elements=(*_BOOK2_MINIMUM, "cvr"),
            padding=1,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.MASTER_KEY,
            iad_layout="IAD format 0/1: len(06) | DKI | CVN(0A) | CVR(4: len 03 + 3 bytes)",
            cvr_in_iad=(3, 4),
            counters_in_iad=None,
            sources=(
                "Visa Integrated Circuit Card Specification (VIS) 1.5, Appendix D (CVN 10)",
                "IBM z/OS ICSF 'EMV simplification services': Visa CVN 10 key derivation, "
                "padding with binary zeroes to a multiple of 8 bytes",
                _PYEMV,
            ),
        ),
        Cvn.VISA_18: CvnSpec(
            cvn=Cvn.VISA_18,
            scheme="Visa",
            master_key=MasterKeyDerivation.OPTION_B,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=2,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="IAD format 0/1: len(06) | DKI | CVN(12) | CVR(4: len 03 + 3 bytes) "
            "[| issuer discretionary data]; the whole IAD is MAC'd",
            cvr_in_iad=(3, 4),
            counters_in_iad=None,
            sources=(
                "Visa VIS 1.5 / VCPS 2.x, CVN 18 (EMV CSK, full IAD, ARPC method 2)",
                "jPOS and jmeter-iso8583 implementations: newer Visa CVNs MAC the entire 9F10",
                _PYEMV,
            ),
        ),
        Cvn.VISA_22: CvnSpec(
            cvn=Cvn.VISA_22,
            scheme="Visa",
            master_key=MasterKeyDerivation.OPTION_B,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=2,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="IAD format 2 (VIS 1.6, 32 bytes); the whole IAD is MAC'd, so the "
            "CVR position does not enter the cryptogram and is not modelled here",
            cvr_in_iad=None,
            counters_in_iad=None,
            sources=(
                "Visa VIS 1.6, CVN 22 (cryptogram computed as CVN 18; differs in secure "
                "messaging and IAD format)",
                _PYEMV,
            ),
        ),
        Cvn.MASTERCARD_16: CvnSpec(
            cvn=Cvn.MASTERCARD_16,
            scheme="Mastercard",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.MASTERCARD_SKD,
            data_elements=(*_BOOK2_MINIMUM, "cvr"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.MASTER_KEY,
            iad_layout="M/Chip 4: DKI | CVN | CVR(6) | DAC/IDN(2) | counters(8)",
            cvr_in_iad=(2, 6),
            counters_in_iad=(10, 8),
            sources=(
                "Mastercard M/Chip 4 Card Application Specifications: CVN bits 3-2 = 00 "
                "(Mastercard SKD), bit 1 = 0 (no counters)",
                _PYEMV,
            ),
        ),
        Cvn.MASTERCARD_17: CvnSpec(
            cvn=Cvn.MASTERCARD_17,
            scheme="Mastercard",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.MASTERCARD_SKD,
            data_elements=(*_BOOK2_MINIMUM, "cvr", "counters"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.MASTER_KEY,
            iad_layout="M/Chip 4: DKI | CVN | CVR(6) | DAC/IDN(2) | counters(8)",
            cvr_in_iad=(2, 6),
            counters_in_iad=(10, 8),
            sources=(
                "Mastercard M/Chip 4: CVN bits 3-2 = 00 (Mastercard SKD), bit 1 = 1 "
                "(counters in the cryptogram)",
                _PYEMV,
            ),
        ),
        Cvn.MASTERCARD_20: CvnSpec(
            cvn=Cvn.MASTERCARD_20,
            scheme="Mastercard",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "cvr"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="M/Chip 4: DKI | CVN | CVR(6) | DAC/IDN(2) | counters(8)",
            cvr_in_iad=(2, 6),
            counters_in_iad=(10, 8),
            sources=(
                "Mastercard M/Chip 4: CVN bits 3-2 = 10 (EMV CSK), bit 1 = 0",
                _PYEMV,
            ),
        ),
        Cvn.MASTERCARD_21: CvnSpec(
            cvn=Cvn.MASTERCARD_21,
            scheme="Mastercard",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "cvr", "counters"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="M/Chip 4: DKI | CVN | CVR(6) | DAC/IDN(2) | counters(8)",
            cvr_in_iad=(2, 6),
            counters_in_iad=(10, 8),
            sources=(
                "Mastercard M/Chip 4: CVN bits 3-2 = 10 (EMV CSK), bit 1 = 1 (counters)",
                _PYEMV,
            ),
        ),
        Cvn.UNIONPAY_TDES: CvnSpec(
            cvn=Cvn.UNIONPAY_TDES,
            scheme="UnionPay (tapstack's UnionPay card)",
            master_key=MasterKeyDerivation.OPTION_B,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=1,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="len(07) | DKI | CVN(01) | CVR(4: len 03 + 3 bytes), the layout "
            "UnionPay cards share with Visa format 0/1; the whole IAD is MAC'd",
            cvr_in_iad=(3, 4),
            counters_in_iad=None,
            sources=(
                "RID A000000333, kernel 7 (EMV Book B Table 3-6); CVN 01 and the 7-byte "
                "IAD as seen on UnionPay cards in public tag decoders",
                "UnionPay's UICS cryptogram input is not public: tapstack MACs the Book 2 "
                "§8.1.1 minimum set and the whole IAD (as Visa CVN 18), option B master "
                "keys (PANs of up to 19 digits), EMV common SKD, ARPC method 1",
            ),
        ),
        Cvn.UNIONPAY_SM4: CvnSpec(
            cvn=Cvn.UNIONPAY_SM4,
            scheme="UnionPay with the SM suite (tapstack's UnionPay card)",
            master_key=MasterKeyDerivation.SM4,
            session_key=SessionKeyDerivation.EMV_CSK_SM4,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=0,
            mac=MacAlgorithm.SM4_CMAC,
            arpc_method=2,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="len(07) | DKI | CVN(04) | CVR(4: len 03 + 3 bytes); the whole IAD is MAC'd",
            cvr_in_iad=(3, 4),
            counters_in_iad=None,
            sources=(
                "SM4: GB/T 32907-2016 (cryptography's algorithms.SM4)",
                "EMV 4.3 Book 2 §A1.2.2 (CMAC for a 128-bit block cipher), §A1.3.1 (common "
                "SKD, n = 16), §8.2.2 (ARPC method 2), with SM4 in AES's place: tapstack's "
                "reading, PBOC 3.0's SM algorithm profile not being public",
            ),
        ),
        Cvn.EMV_CCD_TDES: CvnSpec(
            cvn=Cvn.EMV_CCD_TDES,
            scheme="EMV Common Core Definitions (tapstack's American Express card)",
            master_key=MasterKeyDerivation.OPTION_A,
            session_key=SessionKeyDerivation.EMV_CSK,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=2,
            mac=MacAlgorithm.RETAIL_TDES,
            arpc_method=2,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="CCD format A: len(0F) | CCI(A5) | DKI | CVR(5) | counters(8) | "
            "len(0F) | 15 bytes issuer discretionary data; the whole IAD is MAC'd",
            cvr_in_iad=(3, 5),
            counters_in_iad=(8, 8),
            sources=(
                "EMV 4.3 Book 3 Annex C7 (CCD IAD format A, CCI cryptogram version '5' = "
                "TDES; CVR of C7.3)",
                "EMV 4.3 Book 2 §8.1.2 (CCD AC over the minimum set and the IAD), §A1.2.1 "
                "(MAC algorithm 3, padding method 2), §A1.3.1 (common SKD), §A1.4.1 "
                "(option A: PANs of 15 digits), §8.2.2 (ARPC method 2)",
                "American Express's own AEIPS/Expresspay cryptogram versions are not public: "
                "tapstack's Amex card uses this EMV common core instead",
            ),
        ),
        Cvn.EMV_CCD_AES: CvnSpec(
            cvn=Cvn.EMV_CCD_AES,
            scheme="EMV Common Core Definitions",
            master_key=MasterKeyDerivation.AES,
            session_key=SessionKeyDerivation.EMV_CSK_AES,
            data_elements=(*_BOOK2_MINIMUM, "tag_9f10"),
            padding=0,
            mac=MacAlgorithm.AES_CMAC,
            arpc_method=2,
            arpc_key=ArpcKey.SESSION_KEY,
            iad_layout="CCD: len(0F) | CCI(A6) | DKI | CVR(5) | 8 bytes | len(0F) | 15 bytes "
            "issuer discretionary data; the whole IAD is MAC'd",
            cvr_in_iad=(3, 5),
            counters_in_iad=None,
            sources=(
                "EMV 4.3 Book 3 Annex C7 (CCD IAD, CCI cryptogram version '6' = AES)",
                "EMV 4.3 Book 2 §8.1.2 (CCD AC), §A1.2.2 (AES-CMAC, s = 8), §A1.3.1 "
                "(common SKD, n = 16), §8.2.2 (ARPC method 2)",
                "master key derivation: tapstack's reading (kdf.derive_icc_mk_aes)",
            ),
        ),
    }
)


#: CVN_TABLE as a plain dict, for the hot path.
_SPECS: Final[dict[int, CvnSpec]] = {cvn: spec for cvn, spec in CVN_TABLE.items()}


def cvn_spec(cvn: Cvn | int | CvnSpec) -> CvnSpec:
    """The :class:`CvnSpec` for a CVN; :class:`CryptoError` if it is not supported."""
    if type(cvn) is Cvn:
        return _SPECS[cvn]
    if isinstance(cvn, CvnSpec):
        return cvn
    if not isinstance(cvn, int) or isinstance(cvn, bool):
        raise CryptoError("a CVN is a Cvn, an int or a CvnSpec")
    spec = _SPECS.get(cvn)
    if spec is None:
        raise CryptoError("unsupported cryptogram version number")
    return spec


#: Fixed lengths (bytes) of the data elements of :class:`CryptogramData`
#: (EMV 4.3 Book 3 Annex A data dictionary).
_LENGTHS: Final = MappingProxyType(
    {
        "tag_9f02": 6,
        "tag_9f03": 6,
        "tag_9f1a": 2,
        "tag_95": 5,
        "tag_5f2a": 2,
        "tag_9a": 3,
        "tag_9c": 1,
        "tag_9f37": 4,
        "tag_82": 2,
        "tag_9f36": 2,
    }
)


@dataclass(frozen=True, slots=True)
class CryptogramData:
    """The terminal and card data elements an application cryptogram covers.

    Values are the raw values of the EMV data objects (no tag or length):
    ``tag_9f02`` Amount, Authorised (6), ``tag_9f03`` Amount, Other (6),
    ``tag_9f1a`` Terminal Country Code (2), ``tag_95`` TVR (5), ``tag_5f2a``
    Transaction Currency Code (2), ``tag_9a`` Transaction Date (3), ``tag_9c``
    Transaction Type (1), ``tag_9f37`` Unpredictable Number (4), ``tag_82`` AIP
    (2), ``tag_9f36`` ATC (2), ``tag_9f10`` Issuer Application Data (0 to 32).

    ``cvr`` and ``counters`` are the Card Verification Results and the counters
    of the IAD; when left empty they are taken from ``tag_9f10`` at the CVN's
    position (:attr:`CvnSpec.cvr_in_iad`, :attr:`CvnSpec.counters_in_iad`).
    Lengths are checked on construction (:class:`CryptoError`).
    """

    tag_9f02: bytes
    tag_9f03: bytes
    tag_9f1a: bytes
    tag_95: bytes
    tag_5f2a: bytes
    tag_9a: bytes
    tag_9c: bytes
    tag_9f37: bytes
    tag_82: bytes
    tag_9f36: bytes
    tag_9f10: bytes = b""
    cvr: bytes = b""
    counters: bytes = b""
    _cache: dict[Cvn, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, length in _LENGTHS.items():
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != length:
                raise CryptoError(f"{name} must be {length} bytes")
        for name, most in (("tag_9f10", 32), ("cvr", 16), ("counters", 16)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) > most:
                raise CryptoError(f"{name} must be bytes of at most {most} bytes")


def _iad_field(data: CryptogramData, name: str, where: tuple[int, int] | None) -> bytes:
    value: bytes = getattr(data, name)
    if value:
        return value
    if where is None or len(data.tag_9f10) < where[0] + where[1]:
        raise CryptoError(f"{name} is needed and cannot be taken from the IAD")
    return data.tag_9f10[where[0] : where[0] + where[1]]


def build_cryptogram_input(cvn: Cvn | int | CvnSpec, data: CryptogramData) -> bytes:
    """The data the cryptogram MAC covers, before padding, for inspection.

    >>> spec = cvn_spec(Cvn.MASTERCARD_17)
    >>> spec.data_elements[-2:]
    ('cvr', 'counters')
    """
    spec = cvn_spec(cvn)
    _check_data(data)
    parts = []
    for name in spec.data_elements:
        if name == "cvr":
            parts.append(_iad_field(data, "cvr", spec.cvr_in_iad))
        elif name == "counters":
            parts.append(_iad_field(data, "counters", spec.counters_in_iad))
        else:
            parts.append(getattr(data, name))
    return b"".join(parts)


def _padded_input(spec: CvnSpec, data: CryptogramData) -> bytes:
    # The padded input is a pure function of (CVN, data); frozen data objects
    # keep it, so that verifying after generating does not rebuild it.
    # Only rows of CVN_TABLE are cached (a caller's own CvnSpec may share a CVN).
    table_row = _SPECS.get(spec.cvn) is spec
    cached = data._cache.get(spec.cvn) if table_row else None
    if cached is None:
        raw = build_cryptogram_input(spec, data)
        if spec.padding == 1:
            cached = pad_iso9797_1(raw)
        elif spec.padding == 2:
            cached = pad_iso9797_2(raw)
        else:
            cached = raw
        if table_row:
            data._cache[spec.cvn] = cached
    return cached


def _check_mk(icc_mk: bytes) -> None:
    if type(icc_mk) is not bytes or len(icc_mk) != 16:
        raise CryptoError("the ICC master key must be 16 bytes")


def _check_data(data: CryptogramData) -> None:
    if type(data) is not CryptogramData:
        raise CryptoError("data must be a CryptogramData")


def _session_key(spec: CvnSpec, icc_mk: bytes, data: CryptogramData) -> bytes:
    # ``data`` lengths were checked when it was built and ``icc_mk``'s by the
    # caller, so the derivations are called below their argument checks.
    method = spec.session_key
    if method is SessionKeyDerivation.EMV_CSK:
        return _common_sk(icc_mk, data.tag_9f36 + _ZEROS_6)
    if method is SessionKeyDerivation.MASTERCARD_SKD:
        return _common_sk(icc_mk, data.tag_9f36 + b"\x00\x00" + data.tag_9f37)
    if method is SessionKeyDerivation.EMV_CSK_AES:
        return _common_sk_aes(icc_mk, data.tag_9f36 + _ZEROS_14)
    if method is SessionKeyDerivation.EMV_CSK_SM4:
        return _common_sk_sm4(icc_mk, data.tag_9f36 + _ZEROS_14)
    return icc_mk


_ZEROS_6 = bytes(6)
_ZEROS_14 = bytes(14)


def derive_ac_session_key(cvn: Cvn | int | CvnSpec, icc_mk: bytes, data: CryptogramData) -> bytes:
    """The AC session key of a transaction under the CVN's session key derivation.

    For CVNs without a session key (Visa CVN 10) this is the ICC master key.
    """
    spec = cvn_spec(cvn)
    _check_mk(icc_mk)
    _check_data(data)
    return _session_key(spec, icc_mk, data)


def generate_arqc(cvn: Cvn | int | CvnSpec, icc_mk: bytes, data: CryptogramData) -> bytes:
    """Compute the application cryptogram (ARQC, TC or AAC) of ``data``.

    ``icc_mk`` is the card's 16-byte AC master key (TDES, or AES-128 for the AES
    CVN). EMV 4.3 Book 2 §8.1.
    """
    spec = cvn_spec(cvn)
    _check_mk(icc_mk)
    _check_data(data)
    sk = _session_key(spec, icc_mk, data)
    if spec.mac is MacAlgorithm.AES_CMAC:
        return aes_cmac(sk, _padded_input(spec, data), spec.ac_length)
    if spec.mac is MacAlgorithm.SM4_CMAC:
        return sm4_cmac(sk, _padded_input(spec, data), spec.ac_length)
    return _retail_mac_padded(sk, _padded_input(spec, data))[: spec.ac_length]


def verify_arqc(cvn: Cvn | int | CvnSpec, icc_mk: bytes, data: CryptogramData, arqc: bytes) -> None:
    """Check an application cryptogram; raise :class:`VerificationError` if wrong."""
    expected = generate_arqc(cvn, icc_mk, data)
    if type(arqc) is not bytes:
        raise CryptoError("the cryptogram must be bytes")
    if not hmac.compare_digest(expected, arqc):
        raise VerificationError("application cryptogram does not verify")


def arpc_method_1(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1 (EMV 4.3 Book 2 §8.2.1): ``TDES_key(ARQC xor (ARC || 00 * 6))``.

    ``key`` is a 16-byte TDES key, ``arqc`` 8 bytes, ``arc`` the 2-byte
    Authorisation Response Code. Returns 8 bytes.
    """
    if not isinstance(key, bytes) or len(key) != 16:
        raise CryptoError("ARPC method 1 needs a 16-byte TDES key")
    if not isinstance(arqc, bytes) or len(arqc) != 8:
        raise CryptoError("the ARQC must be 8 bytes")
    if not isinstance(arc, bytes) or len(arc) != 2:
        raise CryptoError("the authorisation response code must be 2 bytes")
    y = (int.from_bytes(arqc) ^ (int.from_bytes(arc) << 48)).to_bytes(8)
    return _ctx.tdes_ecb_encryptor(key, _ctx.get_ident()).update(y)


def arpc_method_2(
    key: bytes,
    arqc: bytes,
    csu: bytes,
    proprietary: bytes = b"",
    *,
    mac: MacAlgorithm = MacAlgorithm.RETAIL_TDES,
) -> bytes:
    """ARPC method 2 (EMV 4.3 Book 2 §8.2.2): 4-byte MAC of ``ARQC || CSU || data``.

    ``csu`` is the 4-byte Card Status Update and ``proprietary`` 0 to 8 bytes of
    proprietary authentication data. The MAC is ISO/IEC 9797-1 algorithm 3 with
    padding method 2 (§A1.2.1), AES-CMAC (§A1.2.2) or CMAC with SM4, per ``mac``.
    """
    if not isinstance(arqc, bytes) or len(arqc) != 8:
        raise CryptoError("the ARQC must be 8 bytes")
    if not isinstance(csu, bytes) or len(csu) != 4:
        raise CryptoError("the card status update must be 4 bytes")
    if not isinstance(proprietary, bytes) or len(proprietary) > 8:
        raise CryptoError("proprietary authentication data must be at most 8 bytes")
    message = arqc + csu + proprietary
    if mac is MacAlgorithm.AES_CMAC:
        return aes_cmac(key, message, 4)
    if mac is MacAlgorithm.SM4_CMAC:
        return sm4_cmac(key, message, 4)
    if not isinstance(key, bytes) or len(key) != 16:
        raise CryptoError("ARPC method 2 with TDES needs a 16-byte key")
    return _retail_mac_padded(key, pad_iso9797_2(message))[:4]


def generate_arpc(
    cvn: Cvn | int | CvnSpec,
    icc_mk: bytes,
    data: CryptogramData,
    arqc: bytes,
    *,
    arc: bytes | None = None,
    csu: bytes | None = None,
    proprietary: bytes = b"",
) -> bytes:
    """The ARPC answering ``arqc``, by the CVN's ARPC method and key.

    Method 1 CVNs need ``arc`` (2 bytes); method 2 CVNs need ``csu`` (4 bytes)
    and take optional ``proprietary`` data. ``data`` supplies the ATC (and UN)
    for the session key.
    """
    spec = cvn_spec(cvn)
    _check_data(data)
    if spec.arpc_key is ArpcKey.MASTER_KEY:
        _check_mk(icc_mk)
        key = icc_mk
    else:
        _check_mk(icc_mk)
        key = _session_key(spec, icc_mk, data)
    if spec.arpc_method == 1:
        if arc is None:
            raise CryptoError("ARPC method 1 needs the authorisation response code")
        return arpc_method_1(key, arqc, arc)
    if csu is None:
        raise CryptoError("ARPC method 2 needs the card status update")
    return arpc_method_2(key, arqc, csu, proprietary, mac=spec.mac)


def verify_arpc(
    cvn: Cvn | int | CvnSpec,
    icc_mk: bytes,
    data: CryptogramData,
    arqc: bytes,
    arpc: bytes,
    *,
    arc: bytes | None = None,
    csu: bytes | None = None,
    proprietary: bytes = b"",
) -> None:
    """Check an ARPC (as the card does); raise :class:`VerificationError` if wrong."""
    expected = generate_arpc(cvn, icc_mk, data, arqc, arc=arc, csu=csu, proprietary=proprietary)
    if type(arpc) is not bytes:
        raise CryptoError("the ARPC must be bytes")
    if not hmac.compare_digest(expected, arpc):
        raise VerificationError("authorisation response cryptogram does not verify")
