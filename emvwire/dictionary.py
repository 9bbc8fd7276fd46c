"""The EMV data dictionary as data (EMV Book 3 Annex A; EMV Books C-2 and C-3 Annex A).

Each :class:`TagInfo` says what a tag is called, its format (Book 3 §4.3), its length
range in bytes, who provides it, the templates it appears in, whether its value is
cardholder data to be masked (:mod:`emvwire.mask`) and where it is specified.

Coverage: the Book 3 Annex A dictionary, the Entry Point tags of Book B, the tags of
Mastercard kernel 2 (Book C-2 Annex A, including the proprietary ``DF81xx``,
``FF81xx`` and relay resistance ``DF83xx`` objects) and of Visa kernel 3 (Book C-3
Annex A), and what an issuer host finds in ISO 8583 field 55.

Kernel 2 and kernel 3 give a few tags in the ``9F5x``-``9F7x`` range different
meanings (``9F66`` is the Visa Terminal Transaction Qualifiers but the Mastercard
PUNATC(Track2); ``9F6C`` the Visa Card Transaction Qualifiers but the Mastercard
Mag-stripe Application Version Number (Card)). :data:`DICTIONARY` holds one default
meaning per tag; :data:`KERNEL_DICTIONARIES` holds each kernel's own meaning where it
differs, and :func:`describe` takes the kernel into account when given one.

Lengths are in bytes of the value field. "Source" is who provides the value: the card,
the terminal (including values the kernel computes itself) or the issuer. Kernel
internal data objects of Book C-2 are listed with source terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from emvwire.tlv import Tlv, is_constructed, tag_hex

__all__ = [
    "DICTIONARY",
    "KERNEL_DICTIONARIES",
    "Format",
    "Kernel",
    "Source",
    "TagInfo",
    "describe",
    "dump",
    "entries",
    "format_of",
    "name_of",
    "sensitive_tags",
]

BOOK3 = "EMV Book 3 Annex A"
BOOKB = "EMV Book B (Entry Point)"
C2 = "EMV Book C-2 Annex A"
C3 = "EMV Book C-3 Annex A"
C4 = "EMV Book C-4 §4.3.4"
ISO7816 = "ISO/IEC 7816-6"


class Format(StrEnum):
    """Data element formats (EMV Book 3 §4.3).

    ``b`` binary, ``n`` BCD numeric right-justified with leading zeros, ``cn``
    compressed numeric left-justified padded with trailing ``F``, ``a`` alphabetic,
    ``an`` alphanumeric, ``ans`` alphanumeric special, ``var`` variable or template.
    """

    B = "b"
    N = "n"
    CN = "cn"
    AN = "an"
    ANS = "ans"
    A = "a"
    VAR = "var"

    @property
    def is_text(self) -> bool:
        """Whether values are characters (a, an, ans) rather than digits or bits."""
        return self in (Format.A, Format.AN, Format.ANS)


class Source(StrEnum):
    """Who provides a data object's value."""

    CARD = "card"
    TERMINAL = "terminal"
    ISSUER = "issuer"


class Kernel(IntEnum):
    """Contactless kernels whose dictionaries differ from the default (Book B §3.2)."""

    MASTERCARD = 2
    VISA = 3
    AMEX = 4


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One data dictionary entry."""

    tag: int
    name: str
    format: Format
    min_len: int
    max_len: int
    source: Source
    templates: tuple[int, ...] = ()
    sensitive: bool = False
    ref: str = BOOK3

    @property
    def hex(self) -> str:
        """The tag as written in the specifications, e.g. ``9F26``."""
        return tag_hex(self.tag)

    @property
    def constructed(self) -> bool:
        """Whether the tag is a template (Book 3 B1, bit b6 of the first byte)."""
        return is_constructed(self.tag)

    def length_ok(self, length: int) -> bool:
        """Whether ``length`` bytes is within the dictionary's range."""
        return self.min_len <= length <= self.max_len


_B, _N, _CN, _A, _AN, _ANS, _VAR = (
    Format.B,
    Format.N,
    Format.CN,
    Format.A,
    Format.AN,
    Format.ANS,
    Format.VAR,
)
_CARD, _TERM, _ISS = Source.CARD, Source.TERMINAL, Source.ISSUER
#: Records and the GPO / GENERATE AC responses: where most card data objects travel.
_REC = (0x70, 0x77)
_RESP = (0x77, 0x80)


def _c(
    tag: int,
    name: str,
    fmt: Format,
    lo: int,
    hi: int,
    templates: tuple[int, ...] = _REC,
    *,
    sensitive: bool = False,
    ref: str = BOOK3,
) -> TagInfo:
    return TagInfo(tag, name, fmt, lo, hi, _CARD, templates, sensitive, ref)


def _t(tag: int, name: str, fmt: Format, lo: int, hi: int, *, ref: str = BOOK3) -> TagInfo:
    return TagInfo(tag, name, fmt, lo, hi, _TERM, (), False, ref)


def _i(
    tag: int, name: str, fmt: Format, lo: int, hi: int, templates: tuple[int, ...] = ()
) -> TagInfo:
    return TagInfo(tag, name, fmt, lo, hi, _ISS, templates, False, BOOK3)


# NI: issuer public key modulus length, NIC: ICC public key modulus length (up to 248).
_NMAX = 248

_DEFAULT: tuple[TagInfo, ...] = (
    # --- EMV Book 3 Annex A, Table 33 (and ISO/IEC 7816-6 tags EMV uses) ---
    _c(0x42, "Issuer Identification Number (IIN)", _N, 3, 3, (0xBF0C, 0x73)),
    _c(0x4F, "Application Identifier (AID) - card", _B, 5, 16, (0x61,)),
    _c(0x50, "Application Label", _ANS, 1, 16, (0x61, 0xA5)),
    _c(0x56, "Track 1 Data", _ANS, 0, 76, (0x70,), sensitive=True, ref=C2),
    _c(0x57, "Track 2 Equivalent Data", _B, 0, 19, sensitive=True),
    _c(0x5A, "Application Primary Account Number (PAN)", _CN, 0, 10, sensitive=True),
    _c(0x5F20, "Cardholder Name", _ANS, 2, 26, sensitive=True),
    _c(0x5F24, "Application Expiration Date", _N, 3, 3),
    _c(0x5F25, "Application Effective Date", _N, 3, 3),
    _c(0x5F28, "Issuer Country Code", _N, 2, 2),
    _t(0x5F2A, "Transaction Currency Code", _N, 2, 2),
    _c(0x5F2D, "Language Preference", _AN, 2, 8, (0xA5,)),
    _c(0x5F30, "Service Code", _N, 2, 2),
    _c(0x5F34, "Application PAN Sequence Number", _N, 1, 1),
    _t(0x5F36, "Transaction Currency Exponent", _N, 1, 1),
    _c(0x5F50, "Issuer URL", _ANS, 0, 255, (0xBF0C,)),
    _c(0x5F53, "International Bank Account Number (IBAN)", _VAR, 0, 34, (0xBF0C,), sensitive=True),
    _c(0x5F54, "Bank Identifier Code (BIC)", _VAR, 8, 11, (0xBF0C,)),
    _c(0x5F55, "Issuer Country Code (alpha2 format)", _A, 2, 2, (0xBF0C,)),
    _c(0x5F56, "Issuer Country Code (alpha3 format)", _A, 3, 3, (0xBF0C,)),
    _t(0x5F57, "Account Type", _N, 1, 1),
    _c(0x61, "Application Template", _VAR, 0, 252, (0x70,)),
    _c(0x6F, "File Control Information (FCI) Template", _VAR, 0, 252, ()),
    _c(0x70, "READ RECORD Response Message Template", _VAR, 0, 252, ()),
    _i(0x71, "Issuer Script Template 1", _VAR, 0, 255),
    _i(0x72, "Issuer Script Template 2", _VAR, 0, 255),
    _c(0x73, "Directory Discretionary Template", _VAR, 0, 252, (0x61,)),
    _c(0x77, "Response Message Template Format 2", _VAR, 0, 255, ()),
    _c(0x80, "Response Message Template Format 1", _VAR, 0, 255, ()),
    _t(0x81, "Amount, Authorised (Binary)", _B, 4, 4),
    _c(0x82, "Application Interchange Profile", _B, 2, 2, _RESP),
    _t(0x83, "Command Template", _B, 0, 255),
    _c(0x84, "Dedicated File (DF) Name", _B, 5, 16, (0x6F,)),
    _i(0x86, "Issuer Script Command", _B, 0, 261, (0x71, 0x72)),
    _c(0x87, "Application Priority Indicator", _B, 1, 1, (0x61, 0xA5)),
    _c(0x88, "Short File Identifier (SFI)", _B, 1, 1, (0xA5,)),
    _i(0x89, "Authorisation Code", _ANS, 6, 6),
    _i(0x8A, "Authorisation Response Code", _AN, 2, 2),
    _c(0x8C, "Card Risk Management Data Object List 1 (CDOL1)", _B, 0, 252),
    _c(0x8D, "Card Risk Management Data Object List 2 (CDOL2)", _B, 0, 252),
    _c(0x8E, "Cardholder Verification Method (CVM) List", _B, 10, 252),
    _c(0x8F, "Certification Authority Public Key Index", _B, 1, 1),
    _c(0x90, "Issuer Public Key Certificate", _B, 0, _NMAX),
    _i(0x91, "Issuer Authentication Data", _B, 8, 16),
    _c(0x92, "Issuer Public Key Remainder", _B, 0, _NMAX),
    _c(0x93, "Signed Static Application Data", _B, 0, _NMAX),
    _c(0x94, "Application File Locator (AFL)", _B, 0, 252, _RESP),
    _t(0x95, "Terminal Verification Results", _B, 5, 5),
    _c(0x97, "Transaction Certificate Data Object List (TDOL)", _B, 0, 252),
    _t(0x98, "Transaction Certificate (TC) Hash Value", _B, 20, 20),
    TagInfo(0x99, "Transaction PIN Data", _B, 0, 255, _TERM, (), True, BOOK3),
    _t(0x9A, "Transaction Date", _N, 3, 3),
    _t(0x9B, "Transaction Status Information", _B, 2, 2),
    _t(0x9C, "Transaction Type", _N, 1, 1),
    _c(0x9D, "Directory Definition File (DDF) Name", _B, 5, 16, (0x61,)),
    _t(0x9F01, "Acquirer Identifier", _N, 6, 6),
    _t(0x9F02, "Amount, Authorised (Numeric)", _N, 6, 6),
    _t(0x9F03, "Amount, Other (Numeric)", _N, 6, 6),
    _t(0x9F04, "Amount, Other (Binary)", _B, 4, 4),
    _c(0x9F05, "Application Discretionary Data", _B, 1, 32),
    _t(0x9F06, "Application Identifier (AID) - terminal", _B, 5, 16),
    _c(0x9F07, "Application Usage Control", _B, 2, 2),
    _c(0x9F08, "Application Version Number (card)", _B, 2, 2),
    _t(0x9F09, "Application Version Number (terminal)", _B, 2, 2),
    _c(
        0x9F0A,
        "Application Selection Registered Proprietary Data",
        _B,
        0,
        255,
        (0xBF0C,),
        ref="EMV Book 1",
    ),
    _c(0x9F0B, "Cardholder Name Extended", _ANS, 27, 45, sensitive=True),
    _c(0x9F0D, "Issuer Action Code - Default", _B, 5, 5),
    _c(0x9F0E, "Issuer Action Code - Denial", _B, 5, 5),
    _c(0x9F0F, "Issuer Action Code - Online", _B, 5, 5),
    _c(0x9F10, "Issuer Application Data", _B, 0, 32, _RESP),
    _c(0x9F11, "Issuer Code Table Index", _N, 1, 1, (0xA5,)),
    _c(0x9F12, "Application Preferred Name", _ANS, 1, 16, (0x61, 0xA5)),
    _c(0x9F13, "Last Online ATC Register", _B, 2, 2, ()),
    _c(0x9F14, "Lower Consecutive Offline Limit", _B, 1, 1),
    _t(0x9F15, "Merchant Category Code", _N, 2, 2),
    _t(0x9F16, "Merchant Identifier", _ANS, 15, 15),
    _c(0x9F17, "PIN Try Counter", _B, 1, 1, ()),
    _i(0x9F18, "Issuer Script Identifier", _B, 4, 4, (0x71, 0x72)),
    _c(0x9F19, "Token Requestor ID", _N, 6, 6, ref=C3),
    _t(0x9F1A, "Terminal Country Code", _N, 2, 2),
    _t(0x9F1B, "Terminal Floor Limit", _B, 4, 4),
    _t(0x9F1C, "Terminal Identification", _AN, 8, 8),
    _t(0x9F1D, "Terminal Risk Management Data", _B, 1, 8),
    _t(0x9F1E, "Interface Device (IFD) Serial Number", _AN, 8, 8),
    _c(0x9F1F, "Track 1 Discretionary Data", _ANS, 0, 255, sensitive=True),
    _c(0x9F20, "Track 2 Discretionary Data", _CN, 0, 255, sensitive=True),
    _t(0x9F21, "Transaction Time", _N, 3, 3),
    _t(0x9F22, "Certification Authority Public Key Index (terminal)", _B, 1, 1),
    _c(0x9F23, "Upper Consecutive Offline Limit", _B, 1, 1),
    _c(0x9F24, "Payment Account Reference (PAR)", _AN, 29, 29, ref=C3),
    _c(0x9F25, "Last 4 Digits of PAN", _N, 2, 2, ref=C3),
    _c(0x9F26, "Application Cryptogram", _B, 8, 8, _RESP),
    _c(0x9F27, "Cryptogram Information Data", _B, 1, 1, _RESP),
    _c(0x9F29, "Extended Selection", _B, 0, 11, (0x61, 0xBF0C), ref=BOOKB),
    _c(0x9F2A, "Kernel Identifier", _B, 1, 8, (0x61, 0xBF0C), ref=BOOKB),
    _c(0x9F2D, "ICC PIN Encipherment Public Key Certificate", _B, 0, _NMAX),
    _c(0x9F2E, "ICC PIN Encipherment Public Key Exponent", _B, 1, 3),
    _c(0x9F2F, "ICC PIN Encipherment Public Key Remainder", _B, 0, _NMAX),
    _c(0x9F32, "Issuer Public Key Exponent", _B, 1, 3),
    _t(0x9F33, "Terminal Capabilities", _B, 3, 3),
    _t(0x9F34, "Cardholder Verification Method (CVM) Results", _B, 3, 3),
    _t(0x9F35, "Terminal Type", _N, 1, 1),
    _c(0x9F36, "Application Transaction Counter (ATC)", _B, 2, 2, _RESP),
    _t(0x9F37, "Unpredictable Number", _B, 4, 4),
    _c(0x9F38, "Processing Options Data Object List (PDOL)", _B, 0, 252, (0xA5,)),
    _t(0x9F39, "Point-of-Service (POS) Entry Mode", _N, 1, 1),
    _t(0x9F3A, "Amount, Reference Currency", _B, 4, 4),
    _c(0x9F3B, "Application Reference Currency", _N, 2, 8),
    _t(0x9F3C, "Transaction Reference Currency Code", _N, 2, 2),
    _t(0x9F3D, "Transaction Reference Currency Exponent", _N, 1, 1),
    _t(0x9F40, "Additional Terminal Capabilities", _B, 5, 5),
    _t(0x9F41, "Transaction Sequence Counter", _N, 2, 4),
    _c(0x9F42, "Application Currency Code", _N, 2, 2),
    _c(0x9F43, "Application Reference Currency Exponent", _N, 1, 4),
    _c(0x9F44, "Application Currency Exponent", _N, 1, 1),
    _c(0x9F45, "Data Authentication Code", _B, 2, 2, ()),
    _c(0x9F46, "ICC Public Key Certificate", _B, 0, _NMAX),
    _c(0x9F47, "ICC Public Key Exponent", _B, 1, 3),
    _c(0x9F48, "ICC Public Key Remainder", _B, 0, _NMAX),
    _c(0x9F49, "Dynamic Data Authentication Data Object List (DDOL)", _B, 0, 252),
    _c(0x9F4A, "Static Data Authentication Tag List", _B, 0, 252),
    _c(0x9F4B, "Signed Dynamic Application Data", _B, 0, _NMAX, _RESP),
    _c(0x9F4C, "ICC Dynamic Number", _B, 2, 8, ()),
    _c(0x9F4D, "Log Entry", _B, 2, 2, (0xBF0C,)),
    _t(0x9F4E, "Merchant Name and Location", _ANS, 0, 255),
    _c(0x9F4F, "Log Format", _B, 0, 255, ()),
    # --- Book C-2 (Mastercard) where Book 3 has nothing, and Book C-3 (Visa) ---
    _c(0x9F50, "Offline Accumulator Balance", _N, 6, 6, (), ref=C2),
    _c(0x9F51, "DRDOL", _B, 0, 255, ref=C2),
    _t(0x9F53, "Transaction Category Code", _AN, 1, 1, ref=C2),
    _c(0x9F54, "DS ODS Card", _B, 0, 160, ref=C2),
    _c(0x9F5A, "Application Program Identifier", _B, 1, 16, (0xBF0C,), ref=C3),
    _t(0x9F5B, "Issuer Script Results", _B, 0, 255, ref=C3),
    _t(0x9F5C, "DS Requested Operator ID", _B, 8, 8, ref=C2),
    _c(0x9F5D, "Available Offline Spending Amount", _N, 6, 6, _RESP, ref=C3),
    _c(0x9F5E, "Data Storage Identifier", _N, 8, 11, sensitive=True, ref=C2),
    _c(0x9F5F, "DS Slot Availability", _B, 1, 1, ref=C2),
    _c(0x9F60, "CVC3 (Track1)", _B, 2, 2, (0x77,), ref=C2),
    _c(0x9F61, "CVC3 (Track2)", _B, 2, 2, (0x77,), ref=C2),
    _c(0x9F62, "Track 1 Bit Map for CVC3 (PCVC3(Track1))", _B, 6, 6, (0x70,), ref=C2),
    _c(0x9F63, "Track 1 Bit Map for UN and ATC (PUNATC(Track1))", _B, 6, 6, (0x70,), ref=C2),
    _c(0x9F64, "Track 1 Number of ATC Digits (NATC(Track1))", _B, 1, 1, (0x70,), ref=C2),
    _c(0x9F65, "Track 2 Bit Map for CVC3 (PCVC3(Track2))", _B, 2, 2, (0x70,), ref=C2),
    _t(0x9F66, "Terminal Transaction Qualifiers (TTQ)", _B, 4, 4, ref=C3),
    _c(0x9F67, "Track 2 Number of ATC Digits (NATC(Track2))", _B, 1, 1, (0x70,), ref=C2),
    _c(0x9F68, "Card Additional Processes", _B, 4, 4, ref=C3),
    _c(0x9F69, "Card Authentication Related Data", _B, 5, 16, ref=C3),
    _t(0x9F6A, "Unpredictable Number (Numeric)", _N, 4, 4, ref=C2),
    _c(0x9F6B, "Track 2 Data", _B, 0, 19, (0x70,), sensitive=True, ref=C2),
    _c(0x9F6C, "Card Transaction Qualifiers (CTQ)", _B, 2, 2, _RESP, ref=C3),
    _t(0x9F6D, "Mag-stripe Application Version Number (Reader)", _B, 2, 2, ref=C2),
    _c(0x9F6E, "Form Factor Indicator (FFI)", _B, 4, 4, _RESP, ref=C3),
    _c(0x9F6F, "DS Slot Management Control", _B, 1, 1, ref=C2),
    *(_c(0x9F6F + n, f"Protected Data Envelope {n}", _B, 0, 192, (), ref=C2) for n in range(1, 6)),
    *(
        _c(0x9F74 + n, f"Unprotected Data Envelope {n}", _B, 0, 192, (), ref=C2)
        for n in range(1, 6)
    ),
    _t(0x9F7A, "VLP Terminal Support Indicator", _B, 1, 1, ref="Visa VIS 1.5 Annex A"),
    _c(0x9F7C, "Customer Exclusive Data (CED)", _B, 0, 32, _RESP, ref=C3),
    _c(0x9F7D, "DS Summary 1", _B, 8, 16, ref=C2),
    _t(0x9F7E, "Mobile Support Indicator", _B, 1, 1, ref=C2),
    _t(0x9F7F, "DS Unpredictable Number", _B, 4, 4, ref=C2),
    _c(0xA5, "File Control Information (FCI) Proprietary Template", _VAR, 0, 252, (0x6F,)),
    _c(0xBF0C, "FCI Issuer Discretionary Data", _VAR, 0, 222, (0xA5,)),
    # --- Book C-2 proprietary data objects ---
    _c(0xDF4B, "POS Cardholder Interaction Information", _B, 3, 3, _RESP, ref=C2),
    _t(0xDF60, "DS Input (Card)", _B, 8, 8, ref=C2),
    _t(0xDF61, "DS Digest H", _B, 8, 8, ref=C2),
    _t(0xDF62, "DS ODS Info", _B, 1, 1, ref=C2),
    _t(0xDF63, "DS ODS Term", _B, 0, 160, ref=C2),
    _c(0xDF8101, "DS Summary 2", _B, 8, 16, (0x77,), ref=C2),
    _c(0xDF8102, "DS Summary 3", _B, 8, 16, (0x77,), ref=C2),
    _t(0xDF8104, "Balance Read Before Gen AC", _N, 6, 6, ref=C2),
    _t(0xDF8105, "Balance Read After Gen AC", _N, 6, 6, ref=C2),
    _t(0xDF8106, "Data Needed", _B, 0, 255, ref=C2),
    _t(0xDF8107, "CDOL1 Related Data", _B, 0, 255, ref=C2),
    _t(0xDF8108, "DS AC Type", _B, 1, 1, ref=C2),
    _t(0xDF8109, "DS Input (Term)", _B, 8, 8, ref=C2),
    _t(0xDF810A, "DS ODS Info For Reader", _B, 1, 1, ref=C2),
    _t(0xDF810B, "DS Summary Status", _B, 1, 1, ref=C2),
    _t(0xDF810C, "Kernel ID", _B, 1, 1, ref=C2),
    _t(0xDF810D, "DSVN Term", _B, 0, 255, ref=C2),
    _t(0xDF810E, "Post-Gen AC Put Data Status", _B, 1, 1, ref=C2),
    _t(0xDF810F, "Pre-Gen AC Put Data Status", _B, 1, 1, ref=C2),
    _t(0xDF8110, "Proceed To First Write Flag", _B, 1, 1, ref=C2),
    _t(0xDF8111, "PDOL Related Data", _B, 0, 255, ref=C2),
    _t(0xDF8112, "Tags To Read", _B, 0, 255, ref=C2),
    _t(0xDF8113, "DRDOL Related Data", _B, 0, 255, ref=C2),
    _t(0xDF8114, "Reference Control Parameter", _B, 1, 1, ref=C2),
    _t(0xDF8115, "Error Indication", _B, 6, 6, ref=C2),
    _t(0xDF8116, "User Interface Request Data", _B, 22, 22, ref=C2),
    _t(0xDF8117, "Card Data Input Capability", _B, 1, 1, ref=C2),
    _t(0xDF8118, "CVM Capability - CVM Required", _B, 1, 1, ref=C2),
    _t(0xDF8119, "CVM Capability - No CVM Required", _B, 1, 1, ref=C2),
    _t(0xDF811A, "Default UDOL", _B, 3, 3, ref=C2),
    _t(0xDF811B, "Kernel Configuration", _B, 1, 1, ref=C2),
    _t(0xDF811C, "Max Lifetime of Torn Transaction Log Record", _B, 2, 2, ref=C2),
    _t(0xDF811D, "Max Number of Torn Transaction Log Records", _B, 1, 1, ref=C2),
    _t(0xDF811E, "Mag-stripe CVM Capability - CVM Required", _B, 1, 1, ref=C2),
    _t(0xDF811F, "Security Capability", _B, 1, 1, ref=C2),
    _t(0xDF8120, "Terminal Action Code - Default", _B, 5, 5, ref=C2),
    _t(0xDF8121, "Terminal Action Code - Denial", _B, 5, 5, ref=C2),
    _t(0xDF8122, "Terminal Action Code - Online", _B, 5, 5, ref=C2),
    _t(0xDF8123, "Reader Contactless Floor Limit", _N, 6, 6, ref=C2),
    _t(0xDF8124, "Reader Contactless Transaction Limit (No On-device CVM)", _N, 6, 6, ref=C2),
    _t(0xDF8125, "Reader Contactless Transaction Limit (On-device CVM)", _N, 6, 6, ref=C2),
    _t(0xDF8126, "Reader CVM Required Limit", _N, 6, 6, ref=C2),
    _t(0xDF8127, "Time Out Value", _B, 2, 2, ref=C2),
    _t(0xDF8128, "IDS Status", _B, 1, 1, ref=C2),
    _t(0xDF8129, "Outcome Parameter Set", _B, 8, 8, ref=C2),
    TagInfo(0xDF812A, "DD Card (Track1)", _ANS, 0, 56, _TERM, (), True, C2),
    TagInfo(0xDF812B, "DD Card (Track2)", _B, 0, 8, _TERM, (), True, C2),
    _t(0xDF812C, "Mag-stripe CVM Capability - No CVM Required", _B, 1, 1, ref=C2),
    _t(0xDF812D, "Message Hold Time", _N, 3, 3, ref=C2),
    _t(0xDF8130, "Hold Time Value", _B, 1, 1, ref=C2),
    _t(0xDF8131, "Phone Message Table", _B, 0, 255, ref=C2),
    _t(0xDF8132, "Minimum Relay Resistance Grace Period", _B, 2, 2, ref=C2),
    _t(0xDF8133, "Maximum Relay Resistance Grace Period", _B, 2, 2, ref=C2),
    _t(
        0xDF8134,
        "Terminal Expected Transmission Time For Relay Resistance C-APDU",
        _B,
        2,
        2,
        ref=C2,
    ),
    _t(
        0xDF8135,
        "Terminal Expected Transmission Time For Relay Resistance R-APDU",
        _B,
        2,
        2,
        ref=C2,
    ),
    _t(0xDF8136, "Relay Resistance Accuracy Threshold", _B, 2, 2, ref=C2),
    _t(0xDF8137, "Relay Resistance Transmission Time Mismatch Threshold", _B, 1, 1, ref=C2),
    _t(0xDF8301, "Terminal Relay Resistance Entropy", _B, 4, 4, ref=C2),
    _c(0xDF8302, "Device Relay Resistance Entropy", _B, 4, 4, (0x80,), ref=C2),
    _c(0xDF8303, "Min Time For Processing Relay Resistance APDU", _B, 2, 2, (0x80,), ref=C2),
    _c(0xDF8304, "Max Time For Processing Relay Resistance APDU", _B, 2, 2, (0x80,), ref=C2),
    _c(
        0xDF8305,
        "Device Estimated Transmission Time For Relay Resistance R-APDU",
        _B,
        2,
        2,
        (0x80,),
        ref=C2,
    ),
    _t(0xDF8306, "Measured Relay Resistance Processing Time", _B, 2, 2, ref=C2),
    _t(0xDF8307, "RRP Counter", _B, 1, 1, ref=C2),
    _t(0xFF8101, "Torn Record", _VAR, 0, 255, ref=C2),
    _t(0xFF8102, "Tags To Write Before Gen AC", _VAR, 0, 255, ref=C2),
    _t(0xFF8103, "Tags To Write After Gen AC", _VAR, 0, 255, ref=C2),
    _t(0xFF8104, "Data To Send", _VAR, 0, 255, ref=C2),
    _t(0xFF8105, "Data Record", _VAR, 0, 255, ref=C2),
    _t(0xFF8106, "Discretionary Data", _VAR, 0, 255, ref=C2),
)

#: Kernel 2 meanings of tags whose default entry is another kernel's (Book C-2 Annex A).
_MASTERCARD: tuple[TagInfo, ...] = (
    _c(0x9F5D, "Application Capabilities Information", _B, 3, 3, (0xA5,), ref=C2),
    _c(0x9F66, "Track 2 Bit Map for UN and ATC (PUNATC(Track2))", _B, 2, 2, (0x70,), ref=C2),
    _c(0x9F69, "UDOL", _B, 0, 255, (0x70,), ref=C2),
    _c(0x9F6C, "Mag-stripe Application Version Number (Card)", _B, 2, 2, (0x70,), ref=C2),
    _c(0x9F6E, "Third Party Data", _B, 5, 32, ref=C2),
    _t(0x9F7C, "Merchant Custom Data", _B, 20, 20, ref=C2),
)

#: Kernel 3 meanings of tags whose default entry is another kernel's (Book C-3 Annex A).
_VISA: tuple[TagInfo, ...] = (
    _c(0x9F67, "MSD Offset", _B, 1, 1, (0x70,), ref=C3),
    _c(0x9F6D, "VLP Reset Threshold", _N, 6, 6, ref="Visa VIS 1.5 Annex A"),
)

#: Kernel 4 meanings of tags whose default entry is another kernel's (Book C-4).
_AMEX: tuple[TagInfo, ...] = (
    _t(0x9F6E, "Enhanced Contactless Reader Capabilities", _B, 4, 4, ref=C4),
)


def _table(rows: tuple[TagInfo, ...]) -> Mapping[int, TagInfo]:
    table: dict[int, TagInfo] = {}
    for row in rows:
        if row.tag in table:  # pragma: no cover - guarded by the tests
            raise AssertionError(f"duplicate dictionary entry {row.hex}")
        table[row.tag] = row
    return MappingProxyType(table)


#: Default meaning of each tag (read-only).
DICTIONARY: Mapping[int, TagInfo] = _table(_DEFAULT)
#: Per-kernel meanings that differ from :data:`DICTIONARY`.
#: Keyed by the kernel number (``Kernel.MASTERCARD`` or plain ``2`` both work).
KERNEL_DICTIONARIES: Mapping[int, Mapping[int, TagInfo]] = MappingProxyType(
    {
        int(Kernel.MASTERCARD): _table(_MASTERCARD),
        int(Kernel.VISA): _table(_VISA),
        int(Kernel.AMEX): _table(_AMEX),
    }
)


def describe(tag: int, kernel: int | None = None) -> TagInfo | None:
    """The dictionary entry of ``tag``, or ``None`` if it is not in the dictionary.

    With ``kernel`` (2 or 3, :class:`Kernel`) that kernel's meaning wins where it
    differs from the default one.
    """
    if kernel is not None:
        table = KERNEL_DICTIONARIES.get(int(kernel))
        if table is not None:
            special = table.get(tag)
            if special is not None:
                return special
    return DICTIONARY.get(tag)


def name_of(tag: int, kernel: int | None = None) -> str:
    """The tag's name, or ``"Unknown tag XXXX"``."""
    info = describe(tag, kernel)
    return info.name if info is not None else f"Unknown tag {tag_hex(tag)}"


def format_of(tag: int, kernel: int | None = None) -> Format:
    """The tag's format; ``b`` for a tag not in the dictionary."""
    info = describe(tag, kernel)
    return info.format if info is not None else Format.B


def entries() -> Iterator[TagInfo]:
    """Every entry: the defaults, then each kernel's own meanings."""
    yield from DICTIONARY.values()
    for table in KERNEL_DICTIONARIES.values():
        yield from table.values()


_SENSITIVE = frozenset(e.tag for e in entries() if e.sensitive)


def sensitive_tags() -> frozenset[int]:
    """Tags whose values are masked in every output (any kernel's meaning)."""
    return _SENSITIVE


def dump(
    data: bytes | Tlv | Iterable[Tlv], *, reveal: bool = False, kernel: int | None = None
) -> str:
    """A human-readable tree of ``data`` with names and masked values.

    The same as :func:`emvwire.dump.dump`, offered here next to the dictionary it reads.
    """
    from emvwire.dump import dump as _dump  # emvwire.dump imports this module

    return _dump(data, reveal=reveal, kernel=kernel)
