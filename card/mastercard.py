"""Mastercard M/Chip: the card side of EMV Book C-2 (kernel 2), EMV mode.

- GET PROCESSING OPTIONS (Book C-2 §5.4; the fixture PDOL is empty, data ``83 00``)
  answers template ``77`` with the AIP ``82`` and the AFL ``94``.
- READ RECORD serves the profile's records.
- EXCHANGE RELAY RESISTANCE DATA (Book C-2 §5.3, ``80 EA 00 00 04`` + terminal
  entropy) answers template ``80`` (Response Message Template Format 1: values
  concatenated without tags, ``80 0A``): Device Relay Resistance Entropy ``DF8302``
  (4 random bytes) || Min Time For Processing RR APDU ``DF8303`` (2) || Max Time
  ``DF8304`` (2) || Device Estimated Transmission Time ``DF8305`` (2), the last three
  from the profile data. Allowed after GPO and before GENERATE AC, any number of times
  (the reader retries).
- GENERATE AC (Book 3 §6.5.5, once per selection) with the CDOL1 data (``8C``). P1
  bits 8-7 request AAC / TC / ARQC; bit 5 asks for CDA. The card never answers a
  higher class than asked: AAC request -> AAC; ARQC request -> ARQC; TC request -> TC
  if within the offline limits, else ARQC; a blocked or expired application -> AAC.
  The ATC increments and is persisted before the answer leaves the card.
- With CDA requested, the AIP offering CDA (byte 1 bit 1) and a TC or ARQC, the
  answer is ``77 {9F27, 9F36, 9F4B, 9F10}`` with the SDAD signing ICC Dynamic Number
  (8 random bytes), CID, AC and the Transaction Data Hash Code over PDOL data || CDOL1
  data || the other answer objects (Book 2 §6.6.1). Otherwise ``77 {9F27, 9F36, 9F26,
  9F10}`` (an AAC is never signed, Book 2 §6.6.1).

Card Verification Results, 6 bytes (M/Chip 4 Card Application Specification; the bits
tapstack sets):

- byte 1 bits 8-7 ``10`` (second GENERATE AC not requested), bits 6-5 AC type of the
  first GENERATE AC (``00`` AAC, ``01`` TC, ``10`` ARQC); for a phone wallet with
  CDCVM, bit 3 offline PIN verification performed and bit 1 offline PIN verification
  successful: **the device verified the cardholder** (the way mobile M/Chip cards
  report CDCVM in the CVR);
- byte 2 bit 7 CDA returned in the first GENERATE AC;
- byte 4 bit 6 offline PIN verification not performed (no CDCVM), bit 3 international
  transaction (terminal country ``9F1A`` not the issuer country ``5F28``), bit 2
  domestic transaction;
- byte 5 bit 8 lower consecutive offline limit exceeded, bit 6 lower cumulative
  offline limit exceeded.

Issuer Application Data (``CVN_TABLE`` layout): ``DKI | CVN | CVR(6) | DAC/IDN(2) |
counters(8)``, 18 bytes; DAC/IDN is the first two bytes of the ICC Dynamic Number when
CDA signs, else ``0000``; the counters are the consecutive offline transaction count
(2 bytes, binary) || the cumulative offline amount (6 bytes, BCD), after this
transaction. CVN 17 and 21 MAC the counters too; CVN 16 and 17 derive the session key
with the Mastercard SKD (UN from the CDOL1 data).

A phone wallet (``cdcvm``) reports CDCVM on every transaction: the wallet verifies
its holder before it lets the card answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from card.application import (
    DKI,
    IAD_CVN_BYTE,
    AcType,
    OfflineCheck,
    PaymentApplication,
    Transaction,
    bcd_to_int,
    int_to_bcd,
    set_bit,
)
from card.iso7816 import (
    SW_CONDITIONS_NOT_SATISFIED,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_WRONG_LENGTH,
    StatusWordError,
    respond,
)
from emvwire import dol
from emvwire.apdu import CDA_REQUESTED, CApdu
from emvwire.errors import DolError
from emvwire.oda import sign_cda
from emvwire.qualifiers import AIP, Bit, is_set
from emvwire.tags import Tag
from emvwire.tlv import encode

__all__ = ["CVR_BITS", "MastercardApplication", "decide"]

#: CVR bits (byte index, mask); see the module docstring.
CVR_BITS: Final[Mapping[str, Bit]] = {
    "second_gen_ac_not_requested": Bit(0, 0x80),
    "ac_tc": Bit(0, 0x10),
    "ac_arqc": Bit(0, 0x20),
    "offline_pin_performed": Bit(0, 0x04),
    "offline_pin_successful": Bit(0, 0x01),
    "cda_returned": Bit(1, 0x40),
    "offline_pin_not_performed": Bit(3, 0x20),
    "international": Bit(3, 0x04),
    "domestic": Bit(3, 0x02),
    "consecutive_offline_limit_exceeded": Bit(4, 0x80),
    "cumulative_offline_limit_exceeded": Bit(4, 0x20),
}

#: GENERATE AC reference control parameter (Book 3 §6.5.5.2 Table 12): the AC type in
#: bits 8-7 (``AAC``, ``TC``, ``ARQC`` of :mod:`emvwire.apdu`), then ``CDA_REQUESTED``.
_AC_MASK: Final = 0xC0
#: Relay resistance timings when the profile has none (100 us units; C-2 §5.3).
_RR_DEFAULTS: Final = {
    Tag.MIN_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: b"\x00\x00",
    Tag.MAX_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: b"\x00\x32",
    Tag.DEVICE_ESTIMATED_TRANSMISSION_TIME_R_APDU: b"\x00\x12",
}


def decide(requested: AcType, offline: OfflineCheck, *, usable: bool) -> AcType:
    """The card's answer to a GENERATE AC request (never above the class asked)."""
    if not usable or requested is AcType.AAC:
        return AcType.AAC
    if requested is AcType.TC and offline.ok:
        return AcType.TC
    return AcType.ARQC


class MastercardApplication(PaymentApplication):
    """A Mastercard M/Chip application (Book C-2 card behaviour, EMV mode)."""

    kernel = "mastercard"

    def gpo(self, txn: Transaction, pdol_data: bytes, values: Mapping[int, bytes]) -> bytes:
        """AIP and AFL (Book C-2 §5.4)."""
        return encode(
            Tag.RESPONSE_FORMAT_2, encode(Tag.AIP, self.app.aip) + encode(Tag.AFL, self._afl)
        )

    def exchange_relay_resistance_data(self, txn: Transaction, cmd: CApdu) -> bytes:
        """EXCHANGE RELAY RESISTANCE DATA (module docstring)."""
        if not is_set(self.app.aip, AIP.RELAY_RESISTANCE):
            raise StatusWordError(SW_INS_NOT_SUPPORTED, "relay resistance not offered")
        if cmd.p1 or cmd.p2:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if not txn.gpo_done or txn.gen_ac_done:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "ERRD out of sequence")
        if len(cmd.data) != 4:
            raise StatusWordError(SW_WRONG_LENGTH, "terminal entropy is 4 bytes")
        data = self.app.data
        timings = b"".join(data.get(t, d) for t, d in _RR_DEFAULTS.items())
        return respond(encode(Tag.RESPONSE_FORMAT_1, self.random(4) + timings))

    def _cvr(self, ac: AcType, offline: OfflineCheck, *, cda: bool, domestic: bool) -> bytearray:
        out = bytearray(6)
        set_bit(out, CVR_BITS["second_gen_ac_not_requested"])
        if ac is AcType.TC:
            set_bit(out, CVR_BITS["ac_tc"])
        elif ac is AcType.ARQC:
            set_bit(out, CVR_BITS["ac_arqc"])
        if self.app.cdcvm:
            set_bit(out, CVR_BITS["offline_pin_performed"])
            set_bit(out, CVR_BITS["offline_pin_successful"])
        else:
            set_bit(out, CVR_BITS["offline_pin_not_performed"])
        if cda:
            set_bit(out, CVR_BITS["cda_returned"])
        set_bit(out, CVR_BITS["domestic" if domestic else "international"])
        if offline.count_exceeded:
            set_bit(out, CVR_BITS["consecutive_offline_limit_exceeded"])
        if offline.amount_exceeded:
            set_bit(out, CVR_BITS["cumulative_offline_limit_exceeded"])
        return out

    def _counters(self) -> bytes:
        c = self.counters
        return min(c.offline_count, 0xFFFF).to_bytes(2, "big") + int_to_bcd(c.offline_amount, 6)

    def iad(
        self,
        txn: Transaction,
        ac: AcType,
        offline: OfflineCheck,
        *,
        cda: bool,
        idn: bytes,
        terminal_country: bytes,
    ) -> bytes:
        """The Issuer Application Data of this GENERATE AC (M/Chip 4 layout, module
        docstring); ``idn`` is the ICC Dynamic Number when CDA signs."""
        cvr = self._cvr(ac, offline, cda=cda, domestic=self.domestic(terminal_country))
        dac = idn[:2] if cda else b"\x00\x00"
        return bytes((DKI, IAD_CVN_BYTE[self.app.cvn])) + bytes(cvr) + dac + self._counters()

    def generate_ac(self, txn: Transaction, cmd: CApdu) -> bytes:
        """GENERATE AC (module docstring)."""
        if cmd.p2 or cmd.p1 & ~(_AC_MASK | CDA_REQUESTED) or cmd.p1 & _AC_MASK == _AC_MASK:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if not txn.gpo_done or txn.gen_ac_done:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "GENERATE AC out of sequence")
        a = self.app
        cdol1 = a.data.get(Tag.CDOL1, b"")
        try:
            values = dol.split(cdol1, cmd.data)
        except DolError:
            raise StatusWordError(SW_WRONG_LENGTH, "CDOL1 data of the wrong length") from None

        def get(tag: int, length: int) -> bytes:
            return dol.fit(tag, values.get(tag), length)

        requested = AcType(cmd.p1 & _AC_MASK)
        amount = bcd_to_int(get(Tag.AMOUNT_AUTHORISED, 6))
        offline = self.offline_check(
            amount, get(Tag.TRANSACTION_CURRENCY_CODE, 2), get(Tag.TRANSACTION_TYPE, 1)[0]
        )
        usable = not self.counters.blocked and not self.expired(get(Tag.TRANSACTION_DATE, 3))
        ac_type = decide(requested, offline, usable=usable)
        cda = (
            bool(cmd.p1 & CDA_REQUESTED)
            and is_set(self.app.aip, AIP.CDA)
            and self.signer is not None
            and ac_type is not AcType.AAC
        )
        atc = self.next_atc()
        self.record_outcome(ac_type, amount)
        idn = self.random(8) if cda else b""
        iad = self.iad(
            txn, ac_type, offline, cda=cda, idn=idn,
            terminal_country=get(Tag.TERMINAL_COUNTRY_CODE, 2),
        )  # fmt: skip
        ac = self.cryptogram(values, atc, iad)
        cid = encode(Tag.CID, bytes((ac_type,)))
        atc_tlv = encode(Tag.ATC, atc.to_bytes(2, "big"))
        iad_tlv = encode(Tag.IAD, iad)
        if cda and self.signer is not None:
            sdad = sign_cda(
                self.signer,
                icc_dynamic_number=idn,
                cid=ac_type,
                cryptogram=ac,
                unpredictable_number=get(Tag.UNPREDICTABLE_NUMBER, 4),
                pdol_data=txn.pdol_data,
                cdol1_data=cmd.data,
                response_tlvs=cid + atc_tlv + iad_tlv,
            )
            body = cid + atc_tlv + encode(Tag.SDAD, sdad) + iad_tlv
        else:
            body = cid + atc_tlv + encode(Tag.APPLICATION_CRYPTOGRAM, ac) + iad_tlv
        self.commit()
        txn.gen_ac_done = True
        return respond(encode(Tag.RESPONSE_FORMAT_2, body))
