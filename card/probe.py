"""A minimal reader-side driver for a software card: run one tap and keep every answer.

This is not a kernel (terminal/ has those): it makes no decision and checks no
signature. It sends the commands of a contactless transaction in their usual order
(EMV Book B §3.3 PPSE, Book 1 §11.3 SELECT, Book 3 §6.5.8 GPO with the PDOL data built
by Book 3 §5.4, READ RECORD of every AFL entry, Book C-2 §5.3 EXCHANGE RELAY RESISTANCE
DATA, Book 3 §6.5.5 GENERATE AC with CDOL1 data) to any
:class:`~card.transport.CardApplication` and returns what came back, decoded. Tests,
benchmarks and demos use it to look at a card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from card.transport import CardApplication
from emvwire import dol, tlv
from emvwire.apdu import (
    CApdu,
    RApdu,
    exchange_relay_resistance_data,
    generate_ac,
    get_processing_options,
    parse_afl,
    read_record,
    select,
)
from emvwire.apdu import get_data as get_data_command
from emvwire.crypto.cryptogram import CryptogramData

__all__ = ["DEFAULT_TRANSACTION", "CardProbe", "TapRecord"]

#: Terminal data of a plain domestic purchase of 10.00 EUR in France on 2025-06-15
#: (values as a reader would put them in a PDOL or CDOL1; Book 3 Annex A formats).
DEFAULT_TRANSACTION: Final[Mapping[int, bytes]] = {
    0x9F66: bytes.fromhex("36004000"),  # TTQ: qVSDC, contact, online PIN, signature, CDCVM
    0x9F02: bytes.fromhex("000000001000"),  # amount, authorised
    0x9F03: bytes(6),  # amount, other
    0x9F1A: bytes.fromhex("0250"),  # terminal country: France
    0x95: bytes(5),  # TVR
    0x5F2A: bytes.fromhex("0978"),  # transaction currency: EUR
    0x9A: bytes.fromhex("250615"),  # transaction date
    0x9C: b"\x00",  # transaction type: purchase
    0x9F37: bytes.fromhex("A1B2C3D4"),  # unpredictable number
    0x9F35: b"\x22",  # terminal type: attended, merchant, offline with online capability
    0x9F45: bytes(2),  # data authentication code
    0x9F4C: bytes(8),  # ICC dynamic number (terminal side: unknown yet)
    0x9F34: bytes.fromhex("1F0302"),  # CVM results: no CVM performed
    0x9F21: bytes.fromhex("120000"),  # transaction time
    0x9F7C: bytes(20),  # merchant custom data
}


@dataclass(slots=True)
class TapRecord:
    """What one tap exchanged: command data sent and answers received."""

    aid: bytes = b""
    fci: bytes = b""
    pdol_data: bytes = b""
    gpo: bytes = b""
    records: dict[tuple[int, int], bytes] = field(default_factory=dict)
    cdol1_data: bytes = b""
    gen_ac: bytes = b""
    errd: bytes = b""
    data: dict[int, bytes] = field(default_factory=dict)

    def cryptogram_data(self) -> CryptogramData:
        """The cryptogram inputs an issuer rebuilds from what crossed the wire (Book 2
        §8.1.1): the terminal's values from the GENERATE AC data (CDOL1) when one was
        sent, else from the GPO data (PDOL, Visa qVSDC); AIP, ATC and IAD from the card."""
        if self.cdol1_data:
            sent = dol.split(self.data[0x8C], self.cdol1_data)
        else:
            sent = dol.split(self.data.get(0x9F38, b""), self.pdol_data)
        return CryptogramData(
            tag_9f02=sent[0x9F02], tag_9f03=sent[0x9F03], tag_9f1a=sent[0x9F1A],
            tag_95=sent[0x95], tag_5f2a=sent[0x5F2A], tag_9a=sent[0x9A], tag_9c=sent[0x9C],
            tag_9f37=sent[0x9F37], tag_82=self.data[0x82], tag_9f36=self.data[0x9F36],
            tag_9f10=self.data[0x9F10],
        )  # fmt: skip

    def collect(self, answer: bytes) -> None:
        """Keep the first value of every primitive data object of ``answer``."""
        for tag, value in tlv.flatten(tlv.decode(answer)).items():
            self.data.setdefault(tag, value)


class CardProbe:
    """Drive a card through the commands of a tap (module docstring)."""

    def __init__(self, card: CardApplication) -> None:
        self.card = card

    def send(self, apdu: CApdu | bytes) -> RApdu:
        """One exchange."""
        raw = apdu.encode() if isinstance(apdu, CApdu) else bytes(apdu)
        return RApdu.decode(self.card.process(raw))

    def expect(self, apdu: CApdu | bytes, what: str = "") -> bytes:
        """The answer's data; :class:`emvwire.apdu.StatusWordError` unless ``9000``."""
        return self.send(apdu).check(what).data

    def select_ppse(self) -> list[tlv.Tlv]:
        """SELECT 2PAY.SYS.DDF01: the directory entries (templates ``61``)."""
        fci = self.expect(select("2PAY.SYS.DDF01"), "SELECT PPSE")
        return tlv.find_all(tlv.decode(fci), 0x61)

    def get_data(self, tag: int) -> bytes:
        """GET DATA of ``tag``: the value."""
        return tlv.decode_one(self.expect(get_data_command(tag), "GET DATA"), tag).value

    def tap(
        self,
        transaction: Mapping[int, bytes] | None = None,
        *,
        aid: bytes | None = None,
        gen_ac: int | None = None,
        errd: bool = True,
    ) -> TapRecord:
        """Run a tap: PPSE, SELECT, GPO, READ RECORDs, then for a Mastercard-style
        card (CDOL1 ``8C`` read) ERRD when the AIP offers it and GENERATE AC with P1
        ``gen_ac`` (default ``90``: ARQC with CDA). ``transaction`` overrides
        :data:`DEFAULT_TRANSACTION` entries; ``aid`` picks the application (default
        the first directory entry).
        """
        txn = {**DEFAULT_TRANSACTION, **(transaction or {})}
        out = TapRecord()
        entries = self.select_ppse()
        if aid is None:
            first = tlv.find(list(entries), 0x4F)
            if first is None:
                raise ValueError("the PPSE lists no application")
            aid = first.value
        out.aid = aid
        out.fci = self.expect(select(aid), "SELECT AID")
        out.collect(out.fci)
        out.pdol_data = dol.build(out.data.get(0x9F38, b""), txn)
        out.gpo = self.expect(get_processing_options(out.pdol_data), "GET PROCESSING OPTIONS")
        out.collect(out.gpo)
        for entry in parse_afl(out.data.get(0x94, b"")):
            for number in entry.records:
                body = self.expect(read_record(entry.sfi, number), "READ RECORD")
                out.records[(entry.sfi, number)] = body
                out.collect(body)
        if 0x8C not in out.data:
            return out
        aip = out.data.get(0x82, b"\x00\x00")
        if errd and len(aip) == 2 and aip[1] & 0x01:
            out.errd = self.expect(exchange_relay_resistance_data(bytes(4)), "ERRD")
        out.cdol1_data = dol.build(out.data[0x8C], txn)
        p1 = 0x90 if gen_ac is None else gen_ac
        out.gen_ac = self.expect(generate_ac(p1, out.cdol1_data), "GENERATE AC")
        fresh = tlv.flatten(tlv.decode(out.gen_ac))
        out.data.update(fresh)
        return out
