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
    ARQC,
    CDA_REQUESTED,
    PPSE,
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
from emvwire.qualifiers import AIP, is_set
from emvwire.tags import Tag

__all__ = ["DEFAULT_TRANSACTION", "CardProbe", "TapRecord"]

#: Terminal data of a plain domestic purchase of 10.00 EUR in France on 2025-06-15
#: (values as a reader would put them in a PDOL or CDOL1; Book 3 Annex A formats).
DEFAULT_TRANSACTION: Final[Mapping[int, bytes]] = {
    Tag.TTQ: bytes.fromhex("36004000"),  # TTQ: qVSDC, contact, online PIN, signature, CDCVM
    Tag.AMOUNT_AUTHORISED: bytes.fromhex("000000001000"),  # amount, authorised
    Tag.AMOUNT_OTHER: bytes(6),  # amount, other
    Tag.TERMINAL_COUNTRY_CODE: bytes.fromhex("0250"),  # terminal country: France
    Tag.TVR: bytes(5),  # TVR
    Tag.TRANSACTION_CURRENCY_CODE: bytes.fromhex("0978"),  # transaction currency: EUR
    Tag.TRANSACTION_DATE: bytes.fromhex("250615"),  # transaction date
    Tag.TRANSACTION_TYPE: b"\x00",  # transaction type: purchase
    Tag.UNPREDICTABLE_NUMBER: bytes.fromhex("A1B2C3D4"),  # unpredictable number
    Tag.TERMINAL_TYPE: b"\x22",  # terminal type: attended, merchant, offline with online capability
    Tag.DATA_AUTHENTICATION_CODE: bytes(2),  # data authentication code
    Tag.ICC_DYNAMIC_NUMBER: bytes(8),  # ICC dynamic number (terminal side: unknown yet)
    Tag.CVM_RESULTS: bytes.fromhex("1F0302"),  # CVM results: no CVM performed
    Tag.TRANSACTION_TIME: bytes.fromhex("120000"),  # transaction time
    Tag.MERCHANT_CUSTOM_DATA: bytes(20),  # merchant custom data
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
            sent = dol.split(self.data[Tag.CDOL1], self.cdol1_data)
        else:
            sent = dol.split(self.data.get(Tag.PDOL, b""), self.pdol_data)
        return CryptogramData(
            tag_9f02=sent[Tag.AMOUNT_AUTHORISED],
            tag_9f03=sent[Tag.AMOUNT_OTHER],
            tag_9f1a=sent[Tag.TERMINAL_COUNTRY_CODE],
            tag_95=sent[Tag.TVR],
            tag_5f2a=sent[Tag.TRANSACTION_CURRENCY_CODE],
            tag_9a=sent[Tag.TRANSACTION_DATE],
            tag_9c=sent[Tag.TRANSACTION_TYPE],
            tag_9f37=sent[Tag.UNPREDICTABLE_NUMBER],
            tag_82=self.data[Tag.AIP],
            tag_9f36=self.data[Tag.ATC],
            tag_9f10=self.data[Tag.IAD],
        )

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
        fci = self.expect(select(PPSE), "SELECT PPSE")
        return tlv.find_all(tlv.decode(fci), Tag.APPLICATION_TEMPLATE)

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
            first = tlv.find(list(entries), Tag.AID)
            if first is None:
                raise ValueError("the PPSE lists no application")
            aid = first.value
        out.aid = aid
        out.fci = self.expect(select(aid), "SELECT AID")
        out.collect(out.fci)
        out.pdol_data = dol.build(out.data.get(Tag.PDOL, b""), txn)
        out.gpo = self.expect(get_processing_options(out.pdol_data), "GET PROCESSING OPTIONS")
        out.collect(out.gpo)
        for entry in parse_afl(out.data.get(Tag.AFL, b"")):
            for number in entry.records:
                body = self.expect(read_record(entry.sfi, number), "READ RECORD")
                out.records[(entry.sfi, number)] = body
                out.collect(body)
        if Tag.CDOL1 not in out.data:
            return out
        aip = out.data.get(Tag.AIP, b"\x00\x00")
        if errd and len(aip) == 2 and is_set(aip, AIP.RELAY_RESISTANCE):
            out.errd = self.expect(exchange_relay_resistance_data(bytes(4)), "ERRD")
        out.cdol1_data = dol.build(out.data[Tag.CDOL1], txn)
        p1 = ARQC | CDA_REQUESTED if gen_ac is None else gen_ac
        out.gen_ac = self.expect(generate_ac(p1, out.cdol1_data), "GENERATE AC")
        fresh = tlv.flatten(tlv.decode(out.gen_ac))
        out.data.update(fresh)
        return out
