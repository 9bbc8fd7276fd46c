"""What a card reveals to any reader, for ``terminal read`` (EMV Book B §3.3, Book 3 §10.2).

:func:`read_card` selects the PPSE, then each application it lists: SELECT, GET
PROCESSING OPTIONS (cards serve their records only after it: Book 3 §6.5.11.3) with the
PDOL data of a zero-amount inquiry from the terminal configuration, and READ RECORD of
every AFL entry. It decides nothing and checks no signature. The GPO makes the card
count a transaction (its ATC moves) and compute a cryptogram that is never sent
anywhere, as every card reading tool does.

The result is raw bytes plus a masked view (:meth:`CardReading.summary`): the PAN is
shown by :func:`emvwire.mask.mask_pan`, track data and other sensitive objects masked by
the data dictionary (:func:`emvwire.dump.render_value`). Card answers that make no
sense are recorded as problems, never raised; reader errors propagate.

The configuration's bounds apply as in a transaction (:mod:`terminal.kernel.bounds`):
each command has its deadline and the whole reading the time budget of one pass; an
AFL past the record bounds is not read, records past the byte bound stop the reading,
and a spent budget ends it; each is a problem of the reading.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emvwire import dol, tlv
from emvwire.apdu import PPSE, ApduError, get_processing_options, parse_afl, read_record, select
from emvwire.dictionary import name_of
from emvwire.dump import render_value
from emvwire.errors import DecodeError, EmvWireError
from emvwire.mask import mask_pan
from emvwire.qualifiers import TTQ
from emvwire.tags import Tag
from emvwire.track2 import track2_expiry, track2_pan
from terminal.kernel.bounds import Budget, RecordBytes, TransactionTimeoutError, afl_problem
from terminal.kernel.config import TerminalConfig
from terminal.kernel.entry_point.candidates import aid_matches, parse_ppse
from terminal.kernel.request import Transaction
from terminal.readers.base import Reader

__all__ = ["ApplicationReading", "CardReading", "RecordReading", "read_card"]

#: TTQ used when no combination configures one: qVSDC, online PIN, signature, ODA for
#: online (so that a Visa card shows its ODA records), online cryptogram required.
_INQUIRY_TTQ = bytes.fromhex("27804000")


@dataclass(frozen=True, slots=True)
class RecordReading:
    """One record read: SFI, number, the answer's data (template 70) and status word."""

    sfi: int
    number: int
    data: bytes = field(repr=False)
    sw: int


def _objects(data: bytes) -> list[dict[str, Any]]:
    """Masked, named data objects of ``data`` (nested templates flattened in order)."""
    out: list[dict[str, Any]] = []
    try:
        objects = tlv.decode(data)
    except DecodeError as exc:
        return [{"error": f"does not decode: {exc.message}"}]

    def walk(items: list[tlv.Tlv] | tuple[tlv.Tlv, ...]) -> None:
        for obj in items:
            if obj.constructed:
                walk(obj.children)
                continue
            out.append(
                {
                    "tag": tlv.tag_hex(obj.tag),
                    "name": name_of(obj.tag),
                    "value": render_value(obj.tag, obj.value),
                }
            )

    walk(objects)
    return out


@dataclass(slots=True)
class ApplicationReading:
    """What one application showed: FCI, GPO answer, records, and the problems met."""

    aid: bytes
    label: str = ""
    priority: int = 0
    kernel_identifier: bytes | None = None
    fci: bytes = field(default=b"", repr=False)
    select_sw: int = 0
    gpo: bytes = field(default=b"", repr=False)
    gpo_sw: int = 0
    records: list[RecordReading] = field(default_factory=list)
    data: dict[int, bytes] = field(default_factory=dict, repr=False)
    problems: list[str] = field(default_factory=list)

    def _collect(self, data: bytes, template: int | None = None) -> None:
        """Keep the data objects of ``data`` (of its leading ``template`` only, when
        given: data after an FCI template are ignored)."""
        try:
            if template is None:
                found = tlv.flatten(tlv.decode(data))
            else:
                found = tlv.flatten([tlv.decode_leading(data, template)])
        except DecodeError:
            return
        for tag, value in found.items():
            self.data.setdefault(tag, value)

    @property
    def pan(self) -> str:
        """The PAN digits (5A, else from 57); never printed: see :attr:`masked_pan`."""
        if Tag.PAN in self.data:
            return self.data[Tag.PAN].hex().upper().rstrip("F")
        return track2_pan(self.data.get(Tag.TRACK2_EQUIVALENT, b""))

    @property
    def masked_pan(self) -> str:
        """The PAN as it may be shown."""
        return mask_pan(self.pan) if self.pan else ""

    @property
    def expiry(self) -> str:
        """The expiry date as ``YYYY-MM`` (5F24, else track 2), or ``""``."""
        raw = self.data.get(Tag.EXPIRATION_DATE, b"")[:2] or track2_expiry(
            self.data.get(Tag.TRACK2_EQUIVALENT, b"")
        )
        text = raw.hex()
        return f"20{text[:2]}-{text[2:4]}" if len(text) == 4 and text.isdigit() else ""

    def summary(self) -> dict[str, Any]:
        """A JSON-ready, masked view."""
        return {
            "aid": self.aid.hex().upper(),
            "label": self.label,
            "priority": self.priority,
            "kernel_id": (self.kernel_identifier or b"").hex().upper(),
            "pan": self.masked_pan,
            "expiry": self.expiry,
            "select_sw": f"{self.select_sw:04X}",
            "fci": _objects(self.fci),
            "gpo_sw": f"{self.gpo_sw:04X}" if self.gpo_sw else "",
            "gpo": _objects(self.gpo),
            "records": [
                {
                    "sfi": r.sfi,
                    "record": r.number,
                    "sw": f"{r.sw:04X}",
                    "objects": _objects(r.data),
                }
                for r in self.records
            ],
            "problems": list(self.problems),
        }


@dataclass(slots=True)
class CardReading:
    """The PPSE and every application read."""

    ppse_sw: int = 0
    ppse: bytes = field(default=b"", repr=False)
    applications: list[ApplicationReading] = field(default_factory=list)
    apdu_count: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready, masked view (``terminal read --json``)."""
        return {
            "ppse_sw": f"{self.ppse_sw:04X}",
            "applications": [a.summary() for a in self.applications],
            "apdus": self.apdu_count,
            "problems": list(self.problems),
        }


class _Channel:
    def __init__(self, reader: Reader, reading: CardReading, config: TerminalConfig) -> None:
        self.reader = reader
        self.reading = reading
        self.budget = Budget(config.timing)
        self.record_bytes = RecordBytes(config.records)

    def send(self, command: bytes) -> tuple[bytes, int]:
        self.reading.apdu_count += 1
        answer = self.budget.transmit(self.reader, command)
        if len(answer) < 2:
            return b"", 0
        return answer[:-2], int.from_bytes(answer[-2:], "big")


def _terminal_data(
    config: TerminalConfig, aid: bytes, rng: Callable[[int], bytes], when: datetime
) -> dict[int, bytes]:
    data = dict(config.terminal_data)
    ttq = _INQUIRY_TTQ
    for combination in config.combinations:
        if aid_matches(aid, combination.aid):
            data.update(combination.kernel_data)
            if combination.ttq is not None:
                ttq = (
                    bytes(
                        (
                            combination.ttq[0],
                            combination.ttq[1] | TTQ.ONLINE_CRYPTOGRAM_REQUIRED.mask,
                        )
                    )
                    + combination.ttq[2:]
                )
            break
    data.update(Transaction(0, when=when).data(config.currency))
    data[Tag.TTQ] = ttq
    data[Tag.TVR] = bytes(5)
    data[Tag.UNPREDICTABLE_NUMBER] = bytes(rng(4))
    return data


def _read_application(
    channel: _Channel, app: ApplicationReading, config: TerminalConfig, data: dict[int, bytes]
) -> None:
    app.fci, app.select_sw = channel.send(select(app.aid).encode())
    if app.select_sw != 0x9000:
        app.problems.append(f"SELECT answered {app.select_sw:04X}")
        return
    app._collect(app.fci, Tag.FCI_TEMPLATE)
    try:
        pdol_data = dol.build(app.data.get(Tag.PDOL, b""), data)
        command = get_processing_options(pdol_data).encode()
    except (EmvWireError, ApduError) as exc:
        app.problems.append(f"PDOL cannot be filled: {exc}")
        return
    app.gpo, app.gpo_sw = channel.send(command)
    if app.gpo_sw != 0x9000:
        app.problems.append(f"GET PROCESSING OPTIONS answered {app.gpo_sw:04X}")
        return
    afl = b""
    if app.gpo[:1] == b"\x80" and len(app.gpo) >= 2:  # format 1: AIP then AFL
        try:
            afl = tlv.decode_one(app.gpo, Tag.RESPONSE_FORMAT_1).value[2:]
        except DecodeError:
            app.problems.append("malformed format 1 GPO answer")
    else:
        app._collect(app.gpo)
        afl = app.data.get(Tag.AFL, b"")
    try:
        entries = parse_afl(afl)
    except DecodeError:
        app.problems.append("malformed AFL")
        return
    refused = afl_problem(entries, config.records)
    if refused:
        app.problems.append(refused)
        return
    for entry in entries:
        for number in entry.records:
            body, sw = channel.send(read_record(entry.sfi, number).encode())
            app.records.append(RecordReading(entry.sfi, number, body, sw))
            too_much = channel.record_bytes.add(body)
            if too_much:
                app.problems.append(too_much)
                return
            if sw != 0x9000:
                app.problems.append(f"READ RECORD SFI {entry.sfi} record {number}: {sw:04X}")
                continue
            app._collect(body)


def read_card(
    reader: Reader,
    config: TerminalConfig,
    *,
    rng: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], datetime] = datetime.now,
    gpo: bool = True,
) -> CardReading:
    """Read the activated card in ``reader`` (module docstring); ``gpo=False`` stops
    after each SELECT (no GPO, no records: the card counts nothing)."""
    reading = CardReading()
    try:
        _read(_Channel(reader, reading, config), reading, config, rng, clock, gpo)
    except TransactionTimeoutError as exc:
        reading.problems.append(str(exc))
    return reading


def _read(
    channel: _Channel,
    reading: CardReading,
    config: TerminalConfig,
    rng: Callable[[int], bytes],
    clock: Callable[[], datetime],
    gpo: bool,
) -> None:
    reading.ppse, reading.ppse_sw = channel.send(select(PPSE).encode())
    if reading.ppse_sw != 0x9000:
        reading.problems.append(f"SELECT PPSE answered {reading.ppse_sw:04X}")
        return
    entries = parse_ppse(reading.ppse)
    if not entries:
        reading.problems.append("the PPSE lists no application")
    when = clock()
    for entry in entries:
        app = ApplicationReading(
            aid=entry.adf_name,
            label=entry.label,
            priority=entry.priority,
            kernel_identifier=entry.kernel_identifier,
        )
        reading.applications.append(app)
        if gpo:
            _read_application(
                channel, app, config, _terminal_data(config, entry.adf_name, rng, when)
            )
        else:
            app.fci, app.select_sw = channel.send(select(app.aid).encode())
            app._collect(app.fci, Tag.FCI_TEMPLATE)
