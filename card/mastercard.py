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
from emvwire.apdu import CApdu
from emvwire.errors import DolError
from emvwire.oda import sign_cda
from emvwire.tlv import encode

__all__ = ["CVR_BITS", "MastercardApplication", "decide"]

#: CVR bits (byte index, mask); see the module docstring.
CVR_BITS: Final[Mapping[str, tuple[int, int]]] = {
    "second_gen_ac_not_requested": (0, 0x80),
    "ac_tc": (0, 0x10),
    "ac_arqc": (0, 0x20),
    "offline_pin_performed": (0, 0x04),
    "offline_pin_successful": (0, 0x01),
    "cda_returned": (1, 0x40),
    "offline_pin_not_performed": (3, 0x20),
    "international": (3, 0x04),
    "domestic": (3, 0x02),
    "consecutive_offline_limit_exceeded": (4, 0x80),
    "cumulative_offline_limit_exceeded": (4, 0x20),
}

#: GENERATE AC reference control parameter (Book 3 §6.5.5.2 Table 12).
_AC_MASK: Final = 0xC0
_CDA_REQUESTED: Final = 0x10
#: AIP byte 1 bit 1: CDA supported; AIP byte 2 bit 1: relay resistance protocol (C-2).
_AIP_CDA: Final = (0, 0x01)
_AIP_RRP: Final = (1, 0x01)
#: Relay resistance timings when the profile has none (100 us units; C-2 §5.3).
_RR_DEFAULTS: Final = {0xDF8303: b"\x00\x00", 0xDF8304: b"\x00\x32", 0xDF8305: b"\x00\x12"}


def _set(out: bytearray, name: str) -> None:
    index, mask = CVR_BITS[name]
    out[index] |= mask


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

    def _aip(self, where: tuple[int, int]) -> bool:
        index, mask = where
        return len(self.app.aip) > index and bool(self.app.aip[index] & mask)

    def gpo(self, txn: Transaction, pdol_data: bytes, values: Mapping[int, bytes]) -> bytes:
        """AIP and AFL (Book C-2 §5.4)."""
        return encode(0x77, encode(0x82, self.app.aip) + encode(0x94, self._afl))

    def exchange_relay_resistance_data(self, txn: Transaction, cmd: CApdu) -> bytes:
        """EXCHANGE RELAY RESISTANCE DATA (module docstring)."""
        if not self._aip(_AIP_RRP):
            raise StatusWordError(SW_INS_NOT_SUPPORTED, "relay resistance not offered")
        if cmd.p1 or cmd.p2:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if not txn.gpo_done or txn.gen_ac_done:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "ERRD out of sequence")
        if len(cmd.data) != 4:
            raise StatusWordError(SW_WRONG_LENGTH, "terminal entropy is 4 bytes")
        data = self.app.data
        timings = b"".join(data.get(t, d) for t, d in _RR_DEFAULTS.items())
        return respond(encode(0x80, self.random(4) + timings))

    def _cvr(self, ac: AcType, offline: OfflineCheck, *, cda: bool, domestic: bool) -> bytearray:
        out = bytearray(6)
        _set(out, "second_gen_ac_not_requested")
        if ac is AcType.TC:
            _set(out, "ac_tc")
        elif ac is AcType.ARQC:
            _set(out, "ac_arqc")
        if self.app.cdcvm:
            _set(out, "offline_pin_performed")
            _set(out, "offline_pin_successful")
        else:
            _set(out, "offline_pin_not_performed")
        if cda:
            _set(out, "cda_returned")
        _set(out, "domestic" if domestic else "international")
        if offline.count_exceeded:
            _set(out, "consecutive_offline_limit_exceeded")
        if offline.amount_exceeded:
            _set(out, "cumulative_offline_limit_exceeded")
        return out

    def _counters(self) -> bytes:
        c = self.counters
        return min(c.offline_count, 0xFFFF).to_bytes(2, "big") + int_to_bcd(c.offline_amount, 6)

    def generate_ac(self, txn: Transaction, cmd: CApdu) -> bytes:
        """GENERATE AC (module docstring)."""
        if cmd.p2 or cmd.p1 & ~(_AC_MASK | _CDA_REQUESTED) or cmd.p1 & _AC_MASK == _AC_MASK:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if not txn.gpo_done or txn.gen_ac_done:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "GENERATE AC out of sequence")
        a = self.app
        cdol1 = a.data.get(0x8C, b"")
        try:
            values = dol.split(cdol1, cmd.data)
        except DolError:
            raise StatusWordError(SW_WRONG_LENGTH, "CDOL1 data of the wrong length") from None

        def get(tag: int, length: int) -> bytes:
            return dol.fit(tag, values.get(tag), length)

        requested = AcType(cmd.p1 & _AC_MASK)
        amount = bcd_to_int(get(0x9F02, 6))
        offline = self.offline_check(amount, get(0x5F2A, 2), get(0x9C, 1)[0])
        usable = not self.counters.blocked and not self.expired(get(0x9A, 3))
        ac_type = decide(requested, offline, usable=usable)
        cda = (
            bool(cmd.p1 & _CDA_REQUESTED)
            and self._aip(_AIP_CDA)
            and self.signer is not None
            and ac_type is not AcType.AAC
        )
        atc = self.next_atc()
        self.record_outcome(ac_type, amount)
        idn = self.random(8) if cda else b""
        cvr = self._cvr(ac_type, offline, cda=cda, domestic=self.domestic(get(0x9F1A, 2)))
        iad = (
            bytes((DKI, IAD_CVN_BYTE[a.cvn]))
            + bytes(cvr)
            + (idn[:2] if cda else b"\x00\x00")
            + self._counters()
        )
        ac = self.cryptogram(values, atc, iad)
        cid = encode(0x9F27, bytes((ac_type,)))
        atc_tlv = encode(0x9F36, atc.to_bytes(2, "big"))
        iad_tlv = encode(0x9F10, iad)
        if cda and self.signer is not None:
            sdad = sign_cda(
                self.signer,
                icc_dynamic_number=idn,
                cid=ac_type,
                cryptogram=ac,
                unpredictable_number=get(0x9F37, 4),
                pdol_data=txn.pdol_data,
                cdol1_data=cmd.data,
                response_tlvs=cid + atc_tlv + iad_tlv,
            )
            body = cid + atc_tlv + encode(0x9F4B, sdad) + iad_tlv
        else:
            body = cid + atc_tlv + encode(0x9F26, ac) + iad_tlv
        self.commit()
        txn.gen_ac_done = True
        return respond(encode(0x77, body))
