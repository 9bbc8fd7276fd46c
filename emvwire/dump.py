"""Human-readable dumps of BER-TLV data with the data dictionary's names.

:func:`dump` prints a tree of data objects: tag, name, length and the value decoded
by its format (EMV Book 3 §4.3): numbers as digits, text as text, binary as hex.
Some values are explained further: the bits of TVR and the action codes (Book 3
Annex C5), AIP (C1), AUC (C2), TSI (C6), CID (§6.5.5.4), the Visa TTQ and CTQ
(Book C-3 Annex A), the entries of DOLs (§5.4), the AFL (§10.2) and the CVM List
(§10.5, Annex C3).

Sensitive values (the dictionary's ``sensitive`` flag: PAN, track data, cardholder
name, PIN data...) are masked by :func:`emvwire.mask.mask_value` unless
``reveal=True``; nothing else is (an AID, a certificate, an AFL are shown whole). Tags
not in the dictionary are shown as hex after :func:`emvwire.mask.scrub` unless
``reveal=True``: their meaning is unknown, so a run of 12 or more digits there is
masked as a PAN would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from emvwire.apdu import parse_afl
from emvwire.dictionary import DICTIONARY, Format, describe
from emvwire.dol import parse as parse_dol
from emvwire.errors import DecodeError, DolError
from emvwire.mask import is_sensitive, mask_value, scrub
from emvwire.tags import Tag
from emvwire.tlv import Tlv, decode, tag_hex

__all__ = ["BITMAPS", "dump", "explain", "render_value"]

_TVR_BITS: Mapping[tuple[int, int], str] = {
    (1, 8): "Offline data authentication was not performed",
    (1, 7): "SDA failed",
    (1, 6): "ICC data missing",
    (1, 5): "Card appears on terminal exception file",
    (1, 4): "DDA failed",
    (1, 3): "CDA failed",
    (1, 2): "SDA selected",
    (2, 8): "ICC and terminal have different application versions",
    (2, 7): "Expired application",
    (2, 6): "Application not yet effective",
    (2, 5): "Requested service not allowed for card product",
    (2, 4): "New card",
    (3, 8): "Cardholder verification was not successful",
    (3, 7): "Unrecognised CVM",
    (3, 6): "PIN Try Limit exceeded",
    (3, 5): "PIN entry required and PIN pad not present or not working",
    (3, 4): "PIN entry required, PIN pad present, but PIN was not entered",
    (3, 3): "Online PIN entered",
    (4, 8): "Transaction exceeds floor limit",
    (4, 7): "Lower consecutive offline limit exceeded",
    (4, 6): "Upper consecutive offline limit exceeded",
    (4, 5): "Transaction selected randomly for online processing",
    (4, 4): "Merchant forced transaction online",
    (5, 8): "Default TDOL used",
    (5, 7): "Issuer authentication failed",
    (5, 6): "Script processing failed before final GENERATE AC",
    (5, 5): "Script processing failed after final GENERATE AC",
    (5, 4): "Relay resistance threshold exceeded (Book C-2)",
    (5, 3): "Relay resistance time limits exceeded (Book C-2)",
    (5, 2): "Relay resistance performed (Book C-2, code 10b)",
    (5, 1): "Relay resistance not performed (Book C-2, code 01b)",
}

_AIP_BITS: Mapping[tuple[int, int], str] = {
    (1, 7): "SDA supported",
    (1, 6): "DDA supported",
    (1, 5): "Cardholder verification is supported",
    (1, 4): "Terminal risk management is to be performed",
    (1, 3): "Issuer authentication is supported",
    (1, 2): "On device cardholder verification is supported (Book C-2)",
    (1, 1): "CDA supported",
    (2, 8): "EMV mode is supported (Book C-2) / MSD is supported (Book C-3)",
    (2, 1): "Relay resistance protocol is supported (Book C-2)",
}

_AUC_BITS: Mapping[tuple[int, int], str] = {
    (1, 8): "Valid for domestic cash transactions",
    (1, 7): "Valid for international cash transactions",
    (1, 6): "Valid for domestic goods",
    (1, 5): "Valid for international goods",
    (1, 4): "Valid for domestic services",
    (1, 3): "Valid for international services",
    (1, 2): "Valid at ATMs",
    (1, 1): "Valid at terminals other than ATMs",
    (2, 8): "Domestic cashback allowed",
    (2, 7): "International cashback allowed",
}

_TSI_BITS: Mapping[tuple[int, int], str] = {
    (1, 8): "Offline data authentication was performed",
    (1, 7): "Cardholder verification was performed",
    (1, 6): "Card risk management was performed",
    (1, 5): "Issuer authentication was performed",
    (1, 4): "Terminal risk management was performed",
    (1, 3): "Script processing was performed",
}

_TTQ_BITS: Mapping[tuple[int, int], str] = {
    (1, 8): "Mag-stripe mode supported (RFU in later versions)",
    (1, 6): "EMV mode (qVSDC) supported",
    (1, 5): "EMV contact chip supported",
    (1, 4): "Offline-only reader",
    (1, 3): "Online PIN supported",
    (1, 2): "Signature supported",
    (1, 1): "Offline data authentication for online authorisations supported",
    (2, 8): "Online cryptogram required",
    (2, 7): "CVM required",
    (2, 6): "(Contact chip) offline PIN supported",
    (3, 8): "Issuer update processing supported",
    (3, 7): "Consumer device CVM supported",
}

_CTQ_BITS: Mapping[tuple[int, int], str] = {
    (1, 8): "Online PIN required",
    (1, 7): "Signature required",
    (1, 6): "Go online if offline data authentication fails and reader is online capable",
    (1, 5): "Switch interface if offline data authentication fails and reader supports contact",
    (1, 4): "Go online if application expired",
    (1, 3): "Switch interface for cash transactions",
    (1, 2): "Switch interface for cashback transactions",
    (1, 1): "Not valid for contactless ATM transactions",
    (2, 8): "Consumer device CVM performed",
    (2, 7): "Card supports issuer update processing at the POS",
}

#: Bit meanings of bitmap data objects, by tag: ``(byte, bit) -> meaning`` with bytes
#: counted from 1 and bits from 8 (most significant) to 1. They apply to each tag's
#: default meaning in :data:`emvwire.dictionary.DICTIONARY`.
BITMAPS: Mapping[int, Mapping[tuple[int, int], str]] = {
    Tag.TVR: _TVR_BITS,
    Tag.IAC_DEFAULT: _TVR_BITS,
    Tag.IAC_DENIAL: _TVR_BITS,
    Tag.IAC_ONLINE: _TVR_BITS,
    Tag.TAC_DEFAULT: _TVR_BITS,
    Tag.TAC_DENIAL: _TVR_BITS,
    Tag.TAC_ONLINE: _TVR_BITS,
    Tag.AIP: _AIP_BITS,
    Tag.APPLICATION_USAGE_CONTROL: _AUC_BITS,
    Tag.TSI: _TSI_BITS,
    Tag.TTQ: _TTQ_BITS,
    Tag.CTQ: _CTQ_BITS,
}

_DOL_TAGS = frozenset(
    {Tag.CDOL1, Tag.CDOL2, Tag.TDOL, Tag.PDOL, Tag.DDOL, Tag.DRDOL, Tag.DEFAULT_UDOL}
)
_DATE_TAGS = frozenset({Tag.TRANSACTION_DATE, Tag.EXPIRATION_DATE, Tag.EFFECTIVE_DATE})

_CID_TYPES = {0: "AAC", 1: "TC", 2: "ARQC", 3: "RFU"}
_CID_REASONS = {
    0: "no information given",
    1: "service not allowed",
    2: "PIN Try Limit exceeded",
    3: "issuer authentication failed",
}

_CVM_METHODS = {
    0x00: "Fail CVM processing",
    0x01: "Plaintext PIN verification performed by ICC",
    0x02: "Enciphered PIN verified online",
    0x03: "Plaintext PIN verification performed by ICC and signature",
    0x04: "Enciphered PIN verification performed by ICC",
    0x05: "Enciphered PIN verification performed by ICC and signature",
    0x1E: "Signature (paper)",
    0x1F: "No CVM required",
    0x3F: "Not available for use",
}
_CVM_CONDITIONS = {
    0x00: "always",
    0x01: "if unattended cash",
    0x02: "if not unattended cash and not manual cash and not purchase with cashback",
    0x03: "if terminal supports the CVM",
    0x04: "if manual cash",
    0x05: "if purchase with cashback",
    0x06: "if transaction is in the application currency and is under X value",
    0x07: "if transaction is in the application currency and is over X value",
    0x08: "if transaction is in the application currency and is under Y value",
    0x09: "if transaction is in the application currency and is over Y value",
}


def _text(value: bytes) -> str:
    out = []
    for b in value:
        out.append(chr(b) if 0x20 <= b < 0x7F and b != 0x22 else f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


def render_value(tag: int, value: bytes, *, reveal: bool = False, kernel: int | None = None) -> str:
    """The one-line form of a primitive value, decoded by its dictionary format (a tag
    not in the dictionary: hex, scrubbed unless ``reveal``; module docstring)."""
    if not reveal and is_sensitive(tag):
        return f"{mask_value(tag, value)} (masked)"
    info = describe(tag, kernel)
    hexed = value.hex().upper()
    if info is None:
        return hexed if reveal else scrub(hexed)
    fmt = info.format
    if fmt is Format.N:
        if not hexed.isdigit():
            return f"{hexed} (not BCD)"
        if tag in _DATE_TAGS and len(value) == 3:
            return f"{hexed} (20{hexed[:2]}-{hexed[2:4]}-{hexed[4:]})"
        return hexed
    if fmt is Format.CN:
        return hexed.rstrip("F") if hexed else hexed
    if fmt.is_text:
        return _text(value)
    return hexed


def _bits(table: Mapping[tuple[int, int], str], value: bytes) -> list[str]:
    lines = []
    for index, byte in enumerate(value, start=1):
        for bit in range(8, 0, -1):
            if byte & (1 << (bit - 1)):
                meaning = table.get((index, bit), "RFU")
                lines.append(f"byte {index} bit {bit}: {meaning}")
    return lines


def _cid(value: bytes) -> list[str]:
    if len(value) != 1:
        return []
    b = value[0]
    lines = [f"cryptogram type: {_CID_TYPES[b >> 6]}"]
    if b & 0x30:
        lines.append(f"payment system-specific cryptogram bits: {(b >> 4) & 3}")
    if b & 0x08:
        lines.append("advice required")
    reason = b & 0x07
    if reason:
        lines.append(f"reason/advice code: {_CID_REASONS.get(reason, 'RFU')}")
    return lines


def _dol(value: bytes, kernel: int | None) -> list[str]:
    try:
        entries = parse_dol(value)
    except DolError as exc:
        return [f"malformed DOL: {exc}"]
    lines = []
    for e in entries:
        info = describe(e.tag, kernel)
        name = info.name if info is not None else "unknown"
        lines.append(f"{tag_hex(e.tag)} [{e.length}] {name}")
    return lines


def _afl(value: bytes) -> list[str]:
    try:
        entries = parse_afl(value)
    except DecodeError as exc:
        return [f"malformed AFL: {exc}"]
    return [
        f"SFI {e.sfi}: records {e.first}-{e.last}, {e.oda_count} for offline data authentication"
        for e in entries
    ]


def _cvm_list(value: bytes) -> list[str]:
    if len(value) < 8 or len(value) % 2:
        return ["malformed CVM List"]
    x = int.from_bytes(value[:4], "big")
    y = int.from_bytes(value[4:8], "big")
    lines = [f"amount X: {x}, amount Y: {y}"]
    for pos in range(8, len(value), 2):
        code, cond = value[pos], value[pos + 1]
        method = _CVM_METHODS.get(code & 0x3F, "RFU or proprietary method")
        then = "apply succeeding rule" if code & 0x40 else "fail cardholder verification"
        condition = _CVM_CONDITIONS.get(cond, "RFU or proprietary condition")
        lines.append(f"{code:02X}{cond:02X}: {method}, {condition}; if unsuccessful {then}")
    return lines


def explain(tag: int, value: bytes, *, kernel: int | None = None) -> list[str]:
    """Extra lines explaining a non-sensitive value: bits, DOL entries, AFL, CVM List.

    Bit tables apply only where the tag has its default dictionary meaning for
    ``kernel`` (Mastercard gives ``9F66`` and ``9F6C`` other meanings).
    """
    default = describe(tag, kernel) is DICTIONARY.get(tag)
    if tag in BITMAPS and default:
        return _bits(BITMAPS[tag], value)
    explainers: dict[int, Callable[[bytes], list[str]]] = {
        Tag.CID: _cid,
        Tag.AFL: _afl,
        Tag.CVM_LIST: _cvm_list,
    }
    if tag in explainers:
        return explainers[tag](value)
    if tag in _DOL_TAGS or (tag == Tag.UDOL and not default):
        return _dol(value, kernel)
    return []


def _render(
    objects: Iterable[Tlv], depth: int, reveal: bool, kernel: int | None, out: list[str]
) -> None:
    pad = "  " * depth
    for obj in objects:
        info = describe(obj.tag, kernel)
        name = info.name if info is not None else "(unknown tag)"
        head = f"{pad}{tag_hex(obj.tag)} {name} [{len(obj.value)}]"
        if obj.constructed:
            out.append(head)
            _render(obj.children, depth + 1, reveal, kernel, out)
            continue
        out.append(f"{head}: {render_value(obj.tag, obj.value, reveal=reveal, kernel=kernel)}")
        if reveal or not is_sensitive(obj.tag):
            out.extend(f"{pad}    - {line}" for line in explain(obj.tag, obj.value, kernel=kernel))


def dump(
    data: bytes | Tlv | Iterable[Tlv],
    *,
    reveal: bool = False,
    kernel: int | None = None,
) -> str:
    """A multi-line, human-readable rendering of BER-TLV ``data``.

    ``data`` is encoded bytes, one :class:`~emvwire.tlv.Tlv` or decoded objects.
    Sensitive values are masked unless ``reveal``. Bytes that do not decode are not an
    error here: the objects decoded before the fault are shown, then a line saying
    where decoding stopped.
    """
    out: list[str] = []
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            objects = decode(bytes(data))
        except DecodeError as exc:
            decoded = exc.decoded if isinstance(exc.decoded, list) else []
            _render(decoded, 0, reveal, kernel, out)
            out.append(f"!! decoding stopped: {exc}")
            return "\n".join(out)
    elif isinstance(data, Tlv):
        objects = [data]
    else:
        objects = list(data)
    _render(objects, 0, reveal, kernel, out)
    return "\n".join(out)
