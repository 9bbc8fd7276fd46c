"""An APDU trace of any reader, masked: what went to the card and what came back.

:class:`TracingReader` wraps a :class:`~terminal.readers.base.Reader` and hands one
:class:`TraceEntry` per event to a sink: the card's arrival (ATR, UID), each C-APDU /
R-APDU pair with the command's name (EMV Book 1 §11, Book 3 §6.5, Book C-2 §5,
ISO/IEC 7816-4 §11, PC/SC Part 3 reader commands), the status word's meaning
(:func:`emvwire.apdu.describe_sw`), the response data decoded by :func:`emvwire.dump.dump`
and the round-trip time; re-powers and errors as well. Tracing is off unless asked
for (:func:`traced` with a sink; the CLI's ``--trace``).

Masking: what is secret, and nothing else (an AID, a certificate, an AFL, a command
header, an amount are shown whole). Response data go through
:func:`emvwire.dump.dump`, which masks PAN, track images, names and every tag the
dictionary flags, and scrubs the values of tags it does not know; data that are not
BER-TLV are shown as hex only after :func:`emvwire.mask.scrub` (any run of 12 or more
digits masked as a PAN would be). Command data are shown only for commands whose data
come from the terminal (SELECT names, DOL data of GET PROCESSING OPTIONS, GENERATE AC,
INTERNAL AUTHENTICATE, EXCHANGE RELAY RESISTANCE DATA, COMPUTE CRYPTOGRAPHIC
CHECKSUM); VERIFY (a PIN block), issuer script commands and anything unknown show
their length only. DOL data are cut by the DOL the card asked them with (PDOL,
CDOL1/2, DDOL, UDOL: :class:`TracingReader` notes them from the card's answers, Book 3
§5.4), and the value of a sensitive tag among them (a CDOL may ask for the PAN) is
masked; DOL data whose DOL is unknown pass :func:`emvwire.mask.scrub`. So no full PAN
or track 2 image and no key material reaches a trace.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TextIO

from emvwire import dol as dols
from emvwire.apdu import AC_NAMES, CDA_REQUESTED, PPSE, PSE, describe_sw
from emvwire.apdu import command_name as apdu_command_name
from emvwire.dump import dump
from emvwire.errors import EmvWireError
from emvwire.mask import is_sensitive, mask_digits, scrub
from emvwire.tags import Tag
from emvwire.tlv import Tlv, decode
from terminal.readers.base import CardInfo, Reader, ReaderError

__all__ = [
    "READER_COMMANDS",
    "ListSink",
    "TraceEntry",
    "TraceSink",
    "TracingReader",
    "command_name",
    "logging_sink",
    "render_command",
    "render_response",
    "text_sink",
    "traced",
]

#: The commands whose data field is terminal data that may be shown in a trace (by
#: their names in emvwire.apdu's tables): the others carry card or issuer data.
_SHOWN: Final = frozenset(
    {
        "SELECT",
        "INTERNAL AUTHENTICATE",
        "GET PROCESSING OPTIONS",
        "GENERATE AC",
        "EXCHANGE RELAY RESISTANCE DATA",
        "COMPUTE CRYPTOGRAPHIC CHECKSUM",
    }
)
#: Reader pseudo-APDUs of class FF: (INS, P1) -> name. PC/SC Part 3 §3.2.2.1.3 (GET
#: DATA), ACS ACR122U API v2.04 §6 (the FF 00 family).
READER_COMMANDS: Final = {
    (0xCA, 0x00): "reader GET DATA (UID)",
    (0xCA, 0x01): "reader GET DATA (ATS)",
    (0x00, 0x40): "reader LED/BUZZER",
    (0x00, 0x48): "reader FIRMWARE VERSION",
    (0x00, 0x50): "reader GET PICC PARAMETER",
    (0x00, 0x51): "reader SET PICC PARAMETER",
    (0x00, 0x52): "reader DETECTION BUZZER",
    (0x00, 0x00): "reader DIRECT TRANSMIT",
}
_DF_NAMES: Final = {PPSE: "PPSE", PSE: "PSE"}


def _lookup(c_apdu: bytes) -> tuple[str, bool]:
    if len(c_apdu) < 4:
        return "(not an APDU)", False
    cla, ins, p1 = c_apdu[0], c_apdu[1], c_apdu[2]
    if cla == 0xFF:
        return READER_COMMANDS.get((ins, p1), f"reader command {ins:02X}"), False
    name = apdu_command_name(c_apdu)
    return name, name in _SHOWN


def command_name(c_apdu: bytes) -> str:
    """The command's name with its parameters (``READ RECORD SFI 1 record 2``)."""
    name, _ = _lookup(c_apdu)
    if len(c_apdu) < 4:
        return name
    p1, p2 = c_apdu[2], c_apdu[3]
    if name == "READ RECORD":
        return f"READ RECORD SFI {p2 >> 3} record {p1}"
    if name == "GET DATA" and c_apdu[0] != 0xFF:
        return f"GET DATA {p1:02X}{p2:02X}" if p1 else f"GET DATA {p2:02X}"
    if name == "GENERATE AC":
        kind = AC_NAMES.get(p1 & 0xC0, "RFU")
        return f"GENERATE AC {kind}{' CDA' if p1 & CDA_REQUESTED else ''}"
    if name == "SELECT":
        data = _data(c_apdu)
        label = _DF_NAMES.get(data or b"", None)
        which = "" if p2 & 0x03 == 0 else " next"
        return f"SELECT{which} {label}" if label else f"SELECT{which} {(data or b'').hex().upper()}"
    return name


def _data(c_apdu: bytes) -> bytes | None:
    """The data field of a short-form C-APDU (``None`` when there is none)."""
    if len(c_apdu) <= 5:
        return None
    lc = c_apdu[4]
    if lc and len(c_apdu) in (5 + lc, 6 + lc):
        return c_apdu[5 : 5 + lc]
    return None


#: The DOLs a card gives in its answers (Book 3 §5.4, Book C-2 for the UDOL).
_DOL_TAGS: Final = (
    Tag.PDOL,
    Tag.CDOL1,
    Tag.CDOL2,
    Tag.DDOL,
    Tag.UDOL,
)


def _dol_values(values: bytes, dol: bytes) -> str | None:
    """``values`` cut by ``dol`` in hex, each sensitive tag's value masked; ``None``
    when they do not fit the DOL."""
    try:
        parts = dols.split_entries(dol, values)
    except EmvWireError:
        return None
    return "".join(
        mask_digits(2 * len(value)) if is_sensitive(entry.tag) else value.hex().upper()
        for entry, value in parts
    )


def _command_data(name: str, data: bytes, known: dict[int, bytes]) -> str:
    """The data field of a command whose data come from the terminal (module
    docstring): DOL values cut by the card's DOL, sensitive ones masked."""
    if name == "GET PROCESSING OPTIONS" and data[:1] == b"\x83" and len(data) >= 2:
        shown = _dol_values(data[2:], known.get(Tag.PDOL, b""))
        if shown is not None:
            return data[:2].hex().upper() + shown
    candidates = {
        "GENERATE AC": (Tag.CDOL1, Tag.CDOL2),
        "INTERNAL AUTHENTICATE": (Tag.DDOL,),
        "COMPUTE CRYPTOGRAPHIC CHECKSUM": (Tag.UDOL,),
    }.get(name, ())
    for tag in candidates:
        if tag in known:
            shown = _dol_values(data, known[tag])
            if shown is not None:
                return shown
    if name == "EXCHANGE RELAY RESISTANCE DATA":  # the terminal's entropy
        return data.hex().upper()
    return scrub(data.hex().upper())


def render_command(c_apdu: bytes, dols_seen: dict[int, bytes] | None = None) -> str:
    """The C-APDU in hex with its data field shown only where it is terminal data,
    cut by the DOLs the card gave (``dols_seen``: tag -> DOL) so that a sensitive value
    among them is masked (module docstring)."""
    name, show = _lookup(c_apdu)
    data = _data(c_apdu)
    if name == "SELECT" or len(c_apdu) <= 5:  # a DF name is never cardholder data
        return c_apdu.hex().upper()
    if data is None:  # a body that is no data field of its length: unknown structure
        return scrub(c_apdu.hex().upper())
    head = c_apdu[:5].hex().upper()
    le = c_apdu[5 + len(data) :].hex().upper()
    if show:
        return head + _command_data(name, data, dols_seen or {}) + le
    return f"{head} <{len(data)} bytes hidden>{' ' + le if le else ''}"


def render_response(r_apdu: bytes) -> list[str]:
    """The response data as :func:`emvwire.dump.dump` lines (masked where secret), or
    scrubbed hex when they are not BER-TLV."""
    data = r_apdu[:-2]
    if not data:
        return []
    try:
        decode(data)
    except Exception:
        return [scrub(f"{len(data)} bytes, not BER-TLV: {data.hex().upper()}")]
    return dump(data).splitlines()


def _note_dols(r_apdu: bytes, found: dict[int, bytes]) -> None:
    """Keep the DOLs of a card's answer (any depth) in ``found``."""
    try:
        objects = decode(r_apdu[:-2])
    except Exception:
        return
    stack: list[Tlv] = list(objects)
    while stack:
        obj = stack.pop()
        if obj.constructed:
            stack.extend(obj.children)
        elif obj.tag in _DOL_TAGS:
            found[obj.tag] = obj.value


@dataclass(frozen=True)
class TraceEntry:
    """One traced event: ``card``, ``apdu``, ``repower``, ``field off``, ``removed`` or
    ``error``."""

    seq: int
    kind: str
    at: float  #: wall-clock time (``time.time()``)
    reader: str
    elapsed_ms: float = 0.0
    command: str = ""  #: the command's name
    c_apdu: str = ""  #: the C-APDU as rendered (masked)
    sw: str = ""  #: SW1-SW2 in hex
    sw_meaning: str = ""
    response: tuple[str, ...] = ()  #: the decoded response lines (masked)
    detail: str = ""  #: ATR/UID of a card, the error message

    def render(self) -> str:
        """The entry as text, first line timestamped.

        The fields are masked when the entry is made (:class:`TracingReader`), so the
        text holds no card data the fields did not.
        """
        stamp = datetime.fromtimestamp(self.at).strftime("%H:%M:%S.%f")[:-3]
        head = f"{stamp} #{self.seq} {self.reader}"
        if self.kind == "apdu":
            out = [
                f"{head} {self.command} -> {self.sw} {self.sw_meaning} ({self.elapsed_ms:.2f} ms)",
                f"  C-APDU {self.c_apdu}",
            ]
            out += [
                f"  R-APDU {line}" if i == 0 else f"         {line}"
                for i, line in enumerate(self.response)
            ]
            return "\n".join(out)
        timing = f" ({self.elapsed_ms:.2f} ms)" if self.elapsed_ms else ""
        return f"{head} {self.kind}: {self.detail}{timing}"


#: Where entries go: any callable taking one entry.
TraceSink = Callable[[TraceEntry], None]


def text_sink(stream: TextIO | None = None) -> TraceSink:
    """A sink writing rendered entries to ``stream`` (standard error by default)."""

    def write(entry: TraceEntry) -> None:
        out = sys.stderr if stream is None else stream
        out.write(entry.render() + "\n")
        out.flush()

    return write


def logging_sink(logger: logging.Logger, level: int = logging.DEBUG) -> TraceSink:
    """A sink logging rendered entries to ``logger`` at ``level``."""

    def write(entry: TraceEntry) -> None:
        if logger.isEnabledFor(level):
            logger.log(level, "%s", entry.render())

    return write


class ListSink:
    """A sink that keeps the entries (tests, a CLI's ``--json`` trace)."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []

    def __call__(self, entry: TraceEntry) -> None:
        self.entries.append(entry)

    def text(self) -> str:
        """Every entry rendered, one after the other."""
        return "\n".join(e.render() for e in self.entries)


def _card_detail(info: CardInfo) -> str:
    parts = [f"protocol {info.protocol}"]
    if info.atr:
        parts.insert(0, f"ATR {info.atr.hex().upper()}")
    if info.uid:
        parts.insert(0, f"UID {info.uid.hex().upper()}")
    return ", ".join(parts)


class TracingReader(Reader):
    """``reader`` with each event handed to ``sink`` as a :class:`TraceEntry`.

    A sink that raises is logged and ignored: tracing never changes the outcome.
    """

    def __init__(self, reader: Reader, sink: TraceSink) -> None:
        self.reader = reader
        self.sink = sink
        self.path = reader.path
        self.feedback = reader.feedback
        self._seq = 0
        #: The DOLs the card gave (tag -> DOL), to cut the terminal's DOL data by.
        self._dols: dict[int, bytes] = {}

    def _emit(self, kind: str, **fields: Any) -> None:
        self._seq += 1
        entry = TraceEntry(self._seq, kind, time.time(), self.path, **fields)
        try:
            self.sink(entry)
        except Exception as exc:
            logging.getLogger(__name__).warning("trace sink failed: %s", exc)

    def _error(self, started: float, what: str, exc: ReaderError) -> None:
        elapsed = 1e3 * (time.perf_counter() - started)
        kind = "removed" if type(exc).__name__ == "CardRemovedError" else "error"
        detail = f"{what}: {type(exc).__name__}: {scrub(str(exc))}"
        self._emit(kind, elapsed_ms=elapsed, detail=detail)

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        started = time.perf_counter()
        try:
            info = self.reader.wait_for_card(timeout)
        except ReaderError as exc:
            self._error(started, "waiting for a card", exc)
            raise
        self._emit(
            "card", elapsed_ms=1e3 * (time.perf_counter() - started), detail=_card_detail(info)
        )
        return info

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        c_apdu = bytes(c_apdu)
        started = time.perf_counter()
        try:
            r_apdu = self.reader.transmit(c_apdu, timeout)
        except ReaderError as exc:
            self._error(started, command_name(c_apdu), exc)
            raise
        elapsed = 1e3 * (time.perf_counter() - started)
        sw1, sw2 = (r_apdu[-2], r_apdu[-1]) if len(r_apdu) >= 2 else (0, 0)
        _note_dols(r_apdu, self._dols)
        self._emit(
            "apdu",
            elapsed_ms=elapsed,
            command=command_name(c_apdu),
            c_apdu=render_command(c_apdu, self._dols),
            sw=f"{sw1:02X}{sw2:02X}",
            sw_meaning=describe_sw(sw1, sw2),
            response=tuple(render_response(r_apdu)),
        )
        return r_apdu

    def card_present(self) -> bool:
        return self.reader.card_present()

    def wait_for_removal(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        gone = self.reader.wait_for_removal(timeout, poll)
        if gone:
            self._emit("removed", detail="the card left the field")
        return gone

    def repower(self) -> CardInfo:
        started = time.perf_counter()
        try:
            info = self.reader.repower()
        except ReaderError as exc:
            self._error(started, "repower", exc)
            raise
        self._emit(
            "repower", elapsed_ms=1e3 * (time.perf_counter() - started), detail=_card_detail(info)
        )
        return info

    def release(self) -> None:
        self.reader.release()

    def field_off(self) -> None:
        self.reader.field_off()
        self._emit("field off", detail="the card session ended")

    def close(self) -> None:
        self.reader.close()


def traced(reader: Reader, sink: TraceSink | None) -> Reader:
    """``reader`` traced into ``sink``, or ``reader`` itself when ``sink`` is ``None``."""
    return reader if sink is None else TracingReader(reader, sink)
