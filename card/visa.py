"""Visa qVSDC: the card side of EMV Book C-3 (kernel 3).

GET PROCESSING OPTIONS does the whole transaction (Book C-3 §5.4; Visa Contactless
Payment Specification): the card reads the PDOL data (TTQ ``9F66``, amounts, country,
TVR, currency, date, type, unpredictable number), increments and persists its ATC,
decides the cryptogram class itself and answers template ``77``. READ RECORD then only
serves what offline data authentication needs; there is no GENERATE AC.

Decision (:func:`decide`), in order:

1. application blocked, or the transaction date after the expiry date: AAC;
2. offline-only reader (TTQ byte 1 bit 4): TC if the card's offline limits allow it
   (see :class:`card.application.OfflineCheck`) and the reader did not ask for an
   online cryptogram, else AAC;
3. online cryptogram required (TTQ byte 2 bit 8), or beyond the offline limits, or a
   foreign currency, or not a purchase: ARQC;
4. otherwise TC (offline approval), and the offline counters move.

fDDA (the SDAD ``9F4B`` in the GPO answer, with the AFL so that the reader can fetch the
certificates) is produced for a TC, and for any answer when the reader supports ODA for
online authorisations (TTQ byte 1 bit 1). It signs ``9F37 || 9F02 || 5F2A || 9F69``
with ``9F69`` = version ``01`` || card unpredictable number (4) || CTQ (2); the card
serves that ``9F69`` in its record, so the CTQ a reader acts on is signed (Basin,
Sasse, Toro-Pozo, "The EMV Standard: Break, Fix, Verify", S&P 2021). The ICC Dynamic
Number is the ATC.

Card Transaction Qualifiers ``9F6C`` (Book C-3 Annex A):

- byte 1 bit 8 online PIN required: the reader asked for a CVM (TTQ byte 2 bit 7), no
  consumer device CVM was done, the answer is an ARQC and the reader supports online
  PIN (TTQ byte 1 bit 3); bit 7 signature required: the same but no online PIN
  possible and the reader supports signature (TTQ byte 1 bit 2); bit 6 go online if
  ODA fails: with a TC;
- byte 2 bit 8 consumer device CVM performed: a phone wallet (``cdcvm``) when the
  reader asked for a CVM.

Card Verification Results (Visa VIS 1.5 Appendix A-13, the three data bytes after the
CVR length ``03``): byte 1 bits 8-7 ``10`` (no second GENERATE AC), bits 6-5 the AC
type (``00`` AAC, ``01`` TC, ``10`` ARQC), bit 1 unable to go online (offline-only
reader); byte 2 bit 6 velocity counters exceeded, bit 5 new card (never online);
byte 3 bit 2 offline dynamic data authentication performed (fDDA given), bit 1
**consumer device CVM performed** (tapstack's use of a bit VIS 1.5 leaves RFU; the CTQ
carries the same fact to the reader). Format 2 CVR (CVN 22) is five bytes: the same
three, then ``00 00``.

Issuer Application Data ``9F10`` (:data:`card.application.IAD_CVN_BYTE`):

- CVN 10 and 18, format 0/1: ``06 | DKI | CVN | 03 | CVR(3)``, 7 bytes;
- CVN 22, format 2 (VIS 1.6): ``1F | CVN 22 | DKI | CVR(5) | IDD option 00 | 00*23``,
  32 bytes, all of it MAC'd by the cryptogram.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from card.application import (
    DKI,
    IAD_CVN_BYTE,
    AcType,
    OfflineCheck,
    PaymentApplication,
    Transaction,
    bcd_to_int,
    set_bit,
)
from emvwire import dol
from emvwire.qualifiers import CTQ, TTQ, Bit, is_set
from emvwire.tags import Tag
from emvwire.tlv import encode

__all__ = ["CVR_BITS", "VisaApplication", "VisaDecision", "decide"]

#: CVR bits (index into the CVR data bytes, mask); see the module docstring.
CVR_BITS: Final[Mapping[str, Bit]] = {
    "second_gen_ac_not_requested": Bit(0, 0x80),
    "ac_tc": Bit(0, 0x10),
    "ac_arqc": Bit(0, 0x20),
    "unable_to_go_online": Bit(0, 0x01),
    "velocity_exceeded": Bit(1, 0x20),
    "new_card": Bit(1, 0x10),
    "oda_performed": Bit(2, 0x02),
    "cdcvm_performed": Bit(2, 0x01),
}

_FDDA_VERSION: Final = 0x01


@dataclass(frozen=True, slots=True)
class VisaDecision:
    """The card's choice for one qVSDC transaction."""

    ac: AcType
    fdda: bool
    cdcvm: bool
    offline: OfflineCheck


def decide(
    ttq: bytes,
    offline: OfflineCheck,
    *,
    usable: bool,
    cdcvm_capable: bool,
) -> VisaDecision:
    """The qVSDC decision of the module docstring; ``usable`` is "not blocked or expired"."""
    offline_only = is_set(ttq, TTQ.OFFLINE_ONLY)
    online_required = is_set(ttq, TTQ.ONLINE_CRYPTOGRAM_REQUIRED)
    if not usable:
        ac = AcType.AAC
    elif offline_only:
        ac = AcType.TC if offline.ok and not online_required else AcType.AAC
    elif online_required or not offline.ok:
        ac = AcType.ARQC
    else:
        ac = AcType.TC
    fdda = ac is AcType.TC or is_set(ttq, TTQ.ODA_FOR_ONLINE)
    cdcvm = cdcvm_capable and is_set(ttq, TTQ.CVM_REQUIRED)
    return VisaDecision(ac, fdda, cdcvm, offline)


class VisaApplication(PaymentApplication):
    """A Visa qVSDC application (Book C-3 card behaviour)."""

    kernel = "visa"

    def _ctq(self, ttq: bytes, d: VisaDecision) -> bytes:
        out = bytearray(2)
        if is_set(ttq, TTQ.CVM_REQUIRED) and not d.cdcvm:
            if d.ac is AcType.ARQC and is_set(ttq, TTQ.ONLINE_PIN):
                set_bit(out, CTQ.ONLINE_PIN_REQUIRED)
            elif is_set(ttq, TTQ.SIGNATURE):
                set_bit(out, CTQ.SIGNATURE_REQUIRED)
        if d.ac is AcType.TC:
            set_bit(out, CTQ.ONLINE_IF_ODA_FAILS)
        if d.cdcvm:
            set_bit(out, CTQ.CDCVM_PERFORMED)
        return bytes(out)

    def _cvr(self, ttq: bytes, d: VisaDecision, *, new_card: bool, oda: bool) -> bytes:
        out = bytearray(3)
        set_bit(out, CVR_BITS["second_gen_ac_not_requested"])
        if d.ac is AcType.TC:
            set_bit(out, CVR_BITS["ac_tc"])
        elif d.ac is AcType.ARQC:
            set_bit(out, CVR_BITS["ac_arqc"])
        if is_set(ttq, TTQ.OFFLINE_ONLY):
            set_bit(out, CVR_BITS["unable_to_go_online"])
        if d.offline.velocity_exceeded:
            set_bit(out, CVR_BITS["velocity_exceeded"])
        if new_card:
            set_bit(out, CVR_BITS["new_card"])
        if oda:
            set_bit(out, CVR_BITS["oda_performed"])
        if d.cdcvm:
            set_bit(out, CVR_BITS["cdcvm_performed"])
        return bytes(out)

    def iad(self, cvr: bytes) -> bytes:
        """The Issuer Application Data for the profile's CVN (module docstring)."""
        cvn = IAD_CVN_BYTE[self.app.cvn]
        if self.app.cvn == 22:
            body = bytes((cvn, DKI)) + cvr + b"\x00\x00" + b"\x00" + bytes(23)
            return b"\x1f" + body
        return bytes((0x06, DKI, cvn, 0x03)) + cvr

    def gpo(self, txn: Transaction, pdol_data: bytes, values: Mapping[int, bytes]) -> bytes:
        """Decide, count, compute and answer (module docstring)."""
        a = self.app

        def get(tag: int, length: int) -> bytes:
            return dol.fit(tag, values.get(tag), length)

        ttq = get(Tag.TTQ, 4)
        amount_raw = get(Tag.AMOUNT_AUTHORISED, 6)
        currency = get(Tag.TRANSACTION_CURRENCY_CODE, 2)
        un = get(Tag.UNPREDICTABLE_NUMBER, 4)
        amount = bcd_to_int(amount_raw)
        counters = self.counters
        offline = self.offline_check(amount, currency, get(Tag.TRANSACTION_TYPE, 1)[0])
        usable = not counters.blocked and not self.expired(get(Tag.TRANSACTION_DATE, 3))
        d = decide(ttq, offline, usable=usable, cdcvm_capable=a.cdcvm)
        new_card = counters.last_online_atc == 0
        atc = self.next_atc()
        fdda = d.fdda and self.signs_fdda
        ctq = self._ctq(ttq, d)
        iad = self.iad(self._cvr(ttq, d, new_card=new_card, oda=fdda))
        ac = self.cryptogram(values, atc, iad)
        self.record_outcome(d.ac, amount)
        atc_bytes = atc.to_bytes(2, "big")
        sdad = b""
        if fdda:
            card_auth = bytes((_FDDA_VERSION,)) + self.random(4) + ctq
            txn.overrides[Tag.CARD_AUTHENTICATION_RELATED_DATA] = card_auth
            sdad = self.sign_fdda(
                atc_bytes,
                unpredictable_number=un,
                amount_authorised=amount_raw,
                currency_code=currency,
                card_auth_data=card_auth,
            )
        self.commit()
        parts = [encode(Tag.AIP, a.aip)]
        if fdda:
            parts.append(encode(Tag.AFL, self._afl))
        parts.append(encode(Tag.TRACK2_EQUIVALENT, a.data[Tag.TRACK2_EQUIVALENT]))
        parts += [
            encode(t, a.data[t])
            for t in (Tag.CARDHOLDER_NAME, Tag.PAN_SEQUENCE_NUMBER)
            if t in a.data
        ]
        parts += [
            encode(Tag.IAD, iad),
            encode(Tag.APPLICATION_CRYPTOGRAM, ac),
            encode(Tag.CID, bytes((d.ac,))),
            encode(Tag.ATC, atc_bytes),
        ]
        if fdda:
            parts.append(encode(Tag.SDAD, sdad))
        parts.append(encode(Tag.CTQ, ctq))
        if Tag.FORM_FACTOR_INDICATOR in a.data:
            parts.append(encode(Tag.FORM_FACTOR_INDICATOR, a.data[Tag.FORM_FACTOR_INDICATOR]))
        return encode(Tag.RESPONSE_FORMAT_2, b"".join(parts))
