"""Command and response APDUs, status words and the EMV command set.

* :class:`CApdu` encodes and decodes the four cases of ISO/IEC 7816-3 §12.1
  (7816-4 §5.1), in short and extended length form.
* :class:`RApdu` is a response: data and the status word SW1-SW2.
* :data:`STATUS_WORDS` and :data:`STATUS_WORD_FAMILIES` are the status words of
  ISO/IEC 7816-4 §5.1.3 (Tables 5 and 6) with the meanings EMV gives them (EMV Book 1
  §9.4; Book 3 §6.3.5 and the command descriptions of §6.5), read by
  :func:`describe_sw`.
* Builders for the EMV commands of Book 1 §11.3 and Book 3 §6.5 (SELECT, GET
  PROCESSING OPTIONS, READ RECORD, GENERATE AC, GET DATA, INTERNAL AUTHENTICATE, GET
  RESPONSE) and of Book C-2 §5 (EXCHANGE RELAY RESISTANCE DATA, COMPUTE CRYPTOGRAPHIC
  CHECKSUM).
* :func:`parse_afl` reads an Application File Locator (Book 3 §10.2).

``CApdu.le`` is Ne, the most response bytes wanted: ``None`` for no Le field,
1 to 256 in short form (256 is sent as ``00``), up to 65536 in extended form (sent as
``0000``). A repr never shows command or response data, which may be a PIN block or
a record holding the PAN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Self

from emvwire.errors import DecodeError, EmvWireError
from emvwire.tags import Tag
from emvwire.tlv import encode as tlv_encode

__all__ = [
    "AAC",
    "AC_NAMES",
    "ARQC",
    "CDA_REQUESTED",
    "INTERINDUSTRY_COMMANDS",
    "PPSE",
    "PROPRIETARY_COMMANDS",
    "PSE",
    "STATUS_WORDS",
    "STATUS_WORD_FAMILIES",
    "TC",
    "AflEntry",
    "ApduError",
    "CApdu",
    "RApdu",
    "StatusWordError",
    "command_name",
    "compute_cryptographic_checksum",
    "describe_sw",
    "exchange_relay_resistance_data",
    "generate_ac",
    "get_data",
    "get_processing_options",
    "get_response",
    "internal_authenticate",
    "parse_afl",
    "read_record",
    "select",
]

#: Largest Nc and Ne in short form (ISO/IEC 7816-3 §12.1.3).
SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
#: Largest Nc and Ne in extended form.
EXT_MAX_NC = 65535
EXT_MAX_NE = 65536


class ApduError(EmvWireError, ValueError):
    """A command APDU field is out of range (CLA/INS/P1/P2, Nc, Ne, SFI, record)."""


# --- Status words (ISO/IEC 7816-4 §5.1.3 Tables 5 and 6; EMV Book 1 §9.4, Book 3) ---

#: Status words with one fixed meaning. EMV's reading follows the ISO text where EMV
#: gives a status word a particular role in a command.
STATUS_WORDS: dict[int, str] = {
    0x9000: "Normal processing: no further qualification",
    0x6200: "Warning: state of non-volatile memory unchanged, no information given",
    0x6281: "Warning: part of returned data may be corrupted",
    0x6282: "Warning: end of file or record reached before reading Ne bytes",
    0x6283: "Warning: selected file deactivated (EMV: application blocked, Book 1 §12.4)",
    0x6284: "Warning: file control information not formatted according to ISO 7816-4",
    0x6285: "Warning: selected file in termination state",
    0x6286: "Warning: no input data available from a sensor on the card",
    0x6300: "Warning: state of non-volatile memory changed, authentication failed",
    0x6381: "Warning: file filled up by the last write",
    0x6400: "Execution error: state of non-volatile memory unchanged",
    0x6401: "Execution error: immediate response required by the card",
    0x6500: "Execution error: state of non-volatile memory changed",
    0x6581: "Execution error: memory failure",
    0x6700: "Wrong length",
    0x6800: "Functions in CLA not supported",
    0x6881: "Logical channel not supported",
    0x6882: "Secure messaging not supported",
    0x6883: "Last command of the chain expected",
    0x6884: "Command chaining not supported",
    0x6900: "Command not allowed",
    0x6981: "Command incompatible with file structure",
    0x6982: "Security status not satisfied",
    0x6983: "Authentication method blocked (EMV: PIN try limit exceeded)",
    0x6984: "Reference data not usable (EMV: referenced data invalidated)",
    0x6985: "Conditions of use not satisfied (EMV GPO: select the next application)",
    0x6986: "Command not allowed: no current EF",
    0x6987: "Expected secure messaging data objects missing",
    0x6988: "Incorrect secure messaging data objects",
    0x6A00: "Wrong parameters P1-P2",
    0x6A80: "Incorrect parameters in the command data field",
    0x6A81: "Function not supported (EMV SELECT: card or application blocked)",
    0x6A82: "File or application not found",
    0x6A83: "Record not found",
    0x6A84: "Not enough memory space in the file",
    0x6A85: "Nc inconsistent with TLV structure",
    0x6A86: "Incorrect parameters P1-P2",
    0x6A87: "Nc inconsistent with parameters P1-P2",
    0x6A88: "Referenced data or reference data not found",
    0x6A89: "File already exists",
    0x6A8A: "DF name already exists",
    0x6B00: "Wrong parameters P1-P2",
    0x6D00: "Instruction code not supported or invalid",
    0x6E00: "Class not supported",
    0x6F00: "No precise diagnosis",
}

#: Status word families ``(mask, value, text)``, tried in order after
#: :data:`STATUS_WORDS`. ``{sw2}`` is SW2 in decimal, ``{x}`` its low nibble.
STATUS_WORD_FAMILIES: tuple[tuple[int, int, str], ...] = (
    (0xFF00, 0x6100, "Normal processing: {sw2} response bytes still available (GET RESPONSE)"),
    (0xFFF0, 0x63C0, "Warning: counter is {x} (EMV VERIFY: wrong PIN, {x} tries left)"),
    (0xFF00, 0x6C00, "Wrong Le field: {sw2} data bytes available (repeat with Le = SW2)"),
    (0xFF00, 0x6200, "Warning: state of non-volatile memory unchanged (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6300, "Warning: state of non-volatile memory changed (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6400, "Execution error: state of non-volatile memory unchanged (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6500, "Execution error: state of non-volatile memory changed (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6600, "Security-related issue (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6800, "Functions in CLA not supported (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6900, "Command not allowed (SW2 {sw2:02X}h)"),
    (0xFF00, 0x6A00, "Wrong parameters P1-P2 (SW2 {sw2:02X}h)"),
    (0xF000, 0x9000, "Application-specific status (SW2 {sw2:02X}h)"),
)


def describe_sw(sw1: int, sw2: int) -> str:
    """The meaning of status word ``sw1 sw2``; never raises for bytes 0-255."""
    sw = ((sw1 & 0xFF) << 8) | (sw2 & 0xFF)
    text = STATUS_WORDS.get(sw)
    if text is not None:
        return text
    for mask, value, template in STATUS_WORD_FAMILIES:
        if sw & mask == value:
            return template.format(sw2=sw2 & 0xFF, x=sw2 & 0x0F)
    return "Unknown status word"


class StatusWordError(EmvWireError):
    """A card answered a command with a status word the caller did not accept."""

    def __init__(self, sw1: int, sw2: int, command: str = "") -> None:
        self.sw1 = sw1
        self.sw2 = sw2
        self.text = describe_sw(sw1, sw2)
        self.command = command
        where = f"{command}: " if command else ""
        super().__init__(f"{where}SW {sw1:02X}{sw2:02X}: {self.text}")

    @property
    def sw(self) -> int:
        """SW1-SW2 as one integer."""
        return (self.sw1 << 8) | self.sw2


# --- Command APDU (ISO/IEC 7816-3 §12.1, ISO/IEC 7816-4 §5.1) ---


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ApduError(f"{name} must be one byte, got {value}")


@dataclass(frozen=True, slots=True)
class CApdu:
    """A command APDU.

    ``le`` is Ne (``None``: no Le field). ``extended`` asks for the extended length
    form even when the short form would do; it is used anyway when Nc > 255 or
    Ne > 256. The data field is never shown by ``repr``.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = field(default=b"", repr=False)
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _check_byte(name, getattr(self, name))
        if len(self.data) > EXT_MAX_NC:
            raise ApduError(f"command data of {len(self.data)} bytes exceeds {EXT_MAX_NC}")
        if self.le is not None and not 1 <= self.le <= EXT_MAX_NE:
            raise ApduError(f"Ne must be 1 to {EXT_MAX_NE} (None for no Le field), got {self.le}")

    @property
    def case(self) -> int:
        """The ISO/IEC 7816-3 case: 1 (no data, no Le), 2 (Le), 3 (data), 4 (both)."""
        return 1 + (self.le is not None) + 2 * bool(self.data)

    @property
    def uses_extended(self) -> bool:
        """Whether :meth:`encode` uses the extended length form."""
        return (
            (self.extended and self.case != 1)
            or len(self.data) > SHORT_MAX_NC
            or (self.le is not None and self.le > SHORT_MAX_NE)
        )

    def encode(self) -> bytes:
        """The APDU bytes (ISO/IEC 7816-3 §12.1.3 cases 1, 2S/2E, 3S/3E, 4S/4E)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        data = bytes(self.data)
        if self.uses_extended:
            lc = b"\x00" + len(data).to_bytes(2, "big") if data else b""
            if self.le is None:
                le = b""
            else:
                ne = 0 if self.le == EXT_MAX_NE else self.le
                le = ne.to_bytes(2, "big") if data else b"\x00" + ne.to_bytes(2, "big")
            return header + lc + data + le
        lc = bytes((len(data),)) if data else b""
        le = b"" if self.le is None else bytes((self.le % SHORT_MAX_NE,))
        return header + lc + data + le

    __bytes__ = encode

    @classmethod
    def decode(cls, apdu: bytes) -> Self:
        """Parse command APDU bytes (ISO/IEC 7816-3 §12.1.3 decoding rules).

        Inconsistent lengths raise :class:`DecodeError` with the offset of the length
        field at fault.
        """
        raw = bytes(apdu)
        if len(raw) < 4:
            raise DecodeError(f"command APDU of {len(raw)} bytes has no full header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or SHORT_MAX_NE)
        if body[0] != 0:
            nc = body[0]
            if n == 1 + nc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + nc:
                return cls(cla, ins, p1, p2, body[1:-1], le=body[-1] or SHORT_MAX_NE)
            raise DecodeError(
                f"short Lc {nc} does not fit a body of {n} bytes", offset=4, decoded=raw[:4]
            )
        if n == 3:
            ne = int.from_bytes(body[1:3], "big") or EXT_MAX_NE
            return cls(cla, ins, p1, p2, le=ne, extended=True)
        if n < 3:
            raise DecodeError("extended length field cut short", offset=4, decoded=raw[:4])
        nc = int.from_bytes(body[1:3], "big")
        if nc == 0:
            raise DecodeError("extended Lc of zero", offset=4, decoded=raw[:4])
        if n == 3 + nc:
            return cls(cla, ins, p1, p2, body[3:], extended=True)
        if n == 5 + nc:
            ne = int.from_bytes(body[-2:], "big") or EXT_MAX_NE
            return cls(cla, ins, p1, p2, body[3:-2], le=ne, extended=True)
        raise DecodeError(
            f"extended Lc {nc} does not fit a body of {n} bytes", offset=4, decoded=raw[:4]
        )

    def __repr__(self) -> str:
        le = "" if self.le is None else f", Ne={self.le}"
        ext = ", extended" if self.uses_extended else ""
        return (
            f"CApdu({self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}, "
            f"Nc={len(self.data)}{le}{ext})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class RApdu:
    """A response APDU: the data field and the status word SW1-SW2."""

    data: bytes
    sw1: int
    sw2: int

    def __post_init__(self) -> None:
        _check_byte("sw1", self.sw1)
        _check_byte("sw2", self.sw2)

    @classmethod
    def decode(cls, response: bytes) -> Self:
        """Split response bytes into data and the two trailing status bytes."""
        raw = bytes(response)
        if len(raw) < 2:
            raise DecodeError(f"response APDU of {len(raw)} bytes has no status word")
        return cls(raw[:-2], raw[-2], raw[-1])

    def encode(self) -> bytes:
        """The response bytes: data, SW1, SW2."""
        return bytes(self.data) + bytes((self.sw1, self.sw2))

    __bytes__ = encode

    @property
    def sw(self) -> int:
        """SW1-SW2 as one integer, e.g. ``0x9000``."""
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        """Whether the status is 9000 (normal processing)."""
        return self.sw == 0x9000

    @property
    def warning(self) -> bool:
        """Whether the status is a warning (62xx, 63xx: ISO/IEC 7816-4 §5.1.3)."""
        return self.sw1 in (0x62, 0x63)

    @property
    def description(self) -> str:
        """The status word's meaning (:func:`describe_sw`)."""
        return describe_sw(self.sw1, self.sw2)

    def check(self, command: str = "", *, accept: tuple[int, ...] = (0x9000,)) -> Self:
        """Return ``self`` if SW1-SW2 is in ``accept``; else raise :class:`StatusWordError`."""
        if self.sw not in accept:
            raise StatusWordError(self.sw1, self.sw2, command)
        return self

    def __repr__(self) -> str:
        return f"RApdu({len(self.data)} bytes, SW={self.sw:04X})"

    __str__ = __repr__


# --- EMV command builders ---

#: The Proximity Payment System Environment's DF name (Book B §3.3.2.2), and the
#: contact Payment System Environment's (Book 1 §12.2.2).
PPSE: Final = b"2PAY.SYS.DDF01"
PSE: Final = b"1PAY.SYS.DDF01"

#: GENERATE AC reference control parameter (Book 3 §6.5.5.2, Table 12): AC type in
#: b8-b7, CDA signature requested in b5.
#: The same two bits give the cryptogram type in the Cryptogram Information Data 9F27
#: (Book 3 §6.5.5.4).
AAC: Final = 0x00
TC: Final = 0x40
ARQC: Final = 0x80
CDA_REQUESTED: Final = 0x10
_REF_CONTROL_BITS = 0xC0 | CDA_REQUESTED
#: The cryptogram types by name.
AC_NAMES: Final[Mapping[int, str]] = {AAC: "AAC", TC: "TC", ARQC: "ARQC"}

#: Instruction names of the interindustry class (CLA b8 = 0): EMV Book 1 §11.3, Book 3
#: §6.5, ISO/IEC 7816-4 §11.
INTERINDUSTRY_COMMANDS: Final[Mapping[int, str]] = {
    0xA4: "SELECT",
    0xB2: "READ RECORD",
    0xB0: "READ BINARY",
    0xC0: "GET RESPONSE",
    0xCA: "GET DATA",
    0x88: "INTERNAL AUTHENTICATE",
    0x82: "EXTERNAL AUTHENTICATE",
    0x84: "GET CHALLENGE",
    0x20: "VERIFY",
}
#: Instruction names of the proprietary classes 80-FE: EMV Book 3 §6.5, Book C-2 §5,
#: and the issuer script commands of Book 3 §6.5.1-6.5.10 (class 84).
PROPRIETARY_COMMANDS: Final[Mapping[int, str]] = {
    0xA8: "GET PROCESSING OPTIONS",
    0xAE: "GENERATE AC",
    0xCA: "GET DATA",
    0xEA: "EXCHANGE RELAY RESISTANCE DATA",
    0x2A: "COMPUTE CRYPTOGRAPHIC CHECKSUM",
    0x1E: "APPLICATION BLOCK",
    0x18: "APPLICATION UNBLOCK",
    0x16: "CARD BLOCK",
    0x24: "PIN CHANGE/UNBLOCK",
    0xDA: "PUT DATA",
    0xDC: "UPDATE RECORD",
}


def command_name(c_apdu: bytes) -> str:
    """The instruction of a C-APDU by name, by its class (ISO/IEC 7816-4 §5.4.1: CLA b8
    set is proprietary): ``SELECT``, ``GENERATE AC``; ``INS XX`` for another, and
    ``malformed`` for fewer than four bytes."""
    if len(c_apdu) < 4:
        return "malformed"
    table = PROPRIETARY_COMMANDS if c_apdu[0] & 0x80 else INTERINDUSTRY_COMMANDS
    return table.get(c_apdu[1], f"INS {c_apdu[1]:02X}")


def select(aid_or_name: bytes | str, *, first: bool = True) -> CApdu:
    """SELECT by DF name (Book 1 §11.3): P1 04, P2 00 first occurrence or 02 next.

    ``str`` is a DF name in ASCII (``"2PAY.SYS.DDF01"``), ``bytes`` an AID; 1 to 16
    bytes (ISO/IEC 7816-4 §8.2.1.2).
    """
    name = aid_or_name.encode("ascii") if isinstance(aid_or_name, str) else bytes(aid_or_name)
    if not 1 <= len(name) <= 16:
        raise ApduError(f"DF name must be 1 to 16 bytes, got {len(name)}")
    return CApdu(0x00, 0xA4, 0x04, 0x00 if first else 0x02, name, le=SHORT_MAX_NE)


def get_processing_options(pdol_data: bytes = b"") -> CApdu:
    """GET PROCESSING OPTIONS (Book 3 §6.5.8): PDOL related data in template ``83``."""
    return CApdu(
        0x80, 0xA8, 0x00, 0x00, tlv_encode(Tag.COMMAND_TEMPLATE, bytes(pdol_data)), le=SHORT_MAX_NE
    )


def read_record(sfi: int, record: int) -> CApdu:
    """READ RECORD (Book 3 §6.5.11): P1 record number, P2 SFI << 3 | 100b."""
    if not 1 <= sfi <= 30:
        raise ApduError(f"SFI must be 1 to 30, got {sfi}")
    if not 1 <= record <= 255:
        raise ApduError(f"record number must be 1 to 255, got {record}")
    return CApdu(0x00, 0xB2, record, (sfi << 3) | 0x04, le=SHORT_MAX_NE)


def generate_ac(ref_control: int, cdol_data: bytes) -> CApdu:
    """GENERATE AC (Book 3 §6.5.5): P1 the reference control parameter.

    ``ref_control`` combines :data:`AAC`, :data:`TC` or :data:`ARQC` with
    :data:`CDA_REQUESTED`; the AC type ``11`` and the RFU bits are refused.
    """
    _check_byte("reference control parameter", ref_control)
    if ref_control & ~_REF_CONTROL_BITS or ref_control & 0xC0 == 0xC0:
        raise ApduError(f"reference control parameter {ref_control:02X} uses RFU values")
    return CApdu(0x80, 0xAE, ref_control, 0x00, bytes(cdol_data), le=SHORT_MAX_NE)


def get_data(tag: int) -> CApdu:
    """GET DATA (Book 3 §6.5.7): P1-P2 the tag of the data object (e.g. ``9F36``)."""
    if not 0 < tag <= 0xFFFF:
        raise ApduError(f"GET DATA takes a one- or two-byte tag, got {tag:#x}")
    return CApdu(0x80, 0xCA, tag >> 8, tag & 0xFF, le=SHORT_MAX_NE)


def internal_authenticate(ddol_data: bytes) -> CApdu:
    """INTERNAL AUTHENTICATE (Book 3 §6.5.9) with the DDOL related data."""
    return CApdu(0x00, 0x88, 0x00, 0x00, bytes(ddol_data), le=SHORT_MAX_NE)


def get_response(le: int) -> CApdu:
    """GET RESPONSE (Book 1 §9.3.1.3) for ``le`` bytes (SW2 of a 61xx status)."""
    return CApdu(0x00, 0xC0, 0x00, 0x00, le=le or SHORT_MAX_NE)


def exchange_relay_resistance_data(entropy: bytes) -> CApdu:
    """EXCHANGE RELAY RESISTANCE DATA (Book C-2 §5.3): the 4-byte terminal entropy."""
    if len(entropy) != 4:
        raise ApduError(f"Terminal Relay Resistance Entropy is 4 bytes, got {len(entropy)}")
    return CApdu(0x80, 0xEA, 0x00, 0x00, bytes(entropy), le=SHORT_MAX_NE)


def compute_cryptographic_checksum(udol_data: bytes) -> CApdu:
    """COMPUTE CRYPTOGRAPHIC CHECKSUM (Book C-2 §5.2, mag-stripe mode): P1 8E, P2 80."""
    return CApdu(0x80, 0x2A, 0x8E, 0x80, bytes(udol_data), le=SHORT_MAX_NE)


# --- Application File Locator (Book 3 §10.2) ---


@dataclass(frozen=True, slots=True)
class AflEntry:
    """One AFL entry: records ``first`` to ``last`` of file ``sfi``, the first
    ``oda_count`` of which take part in offline data authentication."""

    sfi: int
    first: int
    last: int
    oda_count: int

    @property
    def records(self) -> range:
        """The record numbers to read."""
        return range(self.first, self.last + 1)

    @property
    def oda_records(self) -> range:
        """The record numbers whose data feed offline data authentication."""
        return range(self.first, self.first + self.oda_count)


def parse_afl(afl: bytes) -> list[AflEntry]:
    """Read an AFL (tag ``94``): four bytes per entry (Book 3 §10.2).

    Byte 1 is the SFI in bits 8-4 (bits 3-1 zero), 1 to 30; byte 2 the first record
    (not 0); byte 3 the last record (not below the first); byte 4 how many records
    from the first are signed for ODA (not more than the entry's records). Anything
    else raises :class:`DecodeError` with the offset of the faulty entry. An empty AFL
    gives an empty list.
    """
    data = bytes(afl)
    if len(data) % 4:
        raise DecodeError(f"AFL length {len(data)} is not a multiple of 4", tag=Tag.AFL)
    out: list[AflEntry] = []
    for pos in range(0, len(data), 4):
        b1, first, last, oda = data[pos : pos + 4]
        sfi = b1 >> 3
        problem = None
        if b1 & 0x07:
            problem = f"SFI byte {b1:02X} has bits 3-1 set"
        elif not 1 <= sfi <= 30:
            problem = f"SFI {sfi} is outside 1 to 30"
        elif first == 0:
            problem = "first record number is 0"
        elif last < first:
            problem = f"last record {last} is before first record {first}"
        elif oda > last - first + 1:
            problem = f"{oda} ODA records in an entry of {last - first + 1}"
        if problem:
            raise DecodeError(problem, tag=Tag.AFL, offset=pos, decoded=list(out))
        out.append(AflEntry(sfi, first, last, oda))
    return out
