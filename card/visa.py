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
)
from emvwire import dol
from emvwire.oda import sign_fdda
from emvwire.tlv import encode

__all__ = ["CTQ_BITS", "CVR_BITS", "TTQ_BITS", "VisaApplication", "VisaDecision", "decide"]

#: Terminal Transaction Qualifiers bits the card reads: (byte index, mask), Book C-3
#: Annex A ``9F66``.
TTQ_BITS: Final[Mapping[str, tuple[int, int]]] = {
    "offline_only": (0, 0x08),
    "online_pin": (0, 0x04),
    "signature": (0, 0x02),
    "oda_for_online": (0, 0x01),
    "online_cryptogram_required": (1, 0x80),
    "cvm_required": (1, 0x40),
}

#: Card Transaction Qualifiers bits the card sets: (byte index, mask), Book C-3 Annex A.
CTQ_BITS: Final[Mapping[str, tuple[int, int]]] = {
    "online_pin_required": (0, 0x80),
    "signature_required": (0, 0x40),
    "go_online_if_oda_fails": (0, 0x20),
    "cdcvm_performed": (1, 0x80),
}

#: CVR bits (index into the CVR data bytes, mask); see the module docstring.
CVR_BITS: Final[Mapping[str, tuple[int, int]]] = {
    "second_gen_ac_not_requested": (0, 0x80),
    "ac_tc": (0, 0x10),
    "ac_arqc": (0, 0x20),
    "unable_to_go_online": (0, 0x01),
    "velocity_exceeded": (1, 0x20),
    "new_card": (1, 0x10),
    "oda_performed": (2, 0x02),
    "cdcvm_performed": (2, 0x01),
}

_FDDA_VERSION: Final = 0x01


def _bit(value: bytes, where: tuple[int, int]) -> bool:
    index, mask = where
    return len(value) > index and bool(value[index] & mask)


def _set(out: bytearray, where: tuple[int, int]) -> None:
    index, mask = where
    out[index] |= mask


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
    offline_only = _bit(ttq, TTQ_BITS["offline_only"])
    online_required = _bit(ttq, TTQ_BITS["online_cryptogram_required"])
    if not usable:
        ac = AcType.AAC
    elif offline_only:
        ac = AcType.TC if offline.ok and not online_required else AcType.AAC
    elif online_required or not offline.ok:
        ac = AcType.ARQC
    else:
        ac = AcType.TC
    fdda = ac is AcType.TC or _bit(ttq, TTQ_BITS["oda_for_online"])
    cdcvm = cdcvm_capable and _bit(ttq, TTQ_BITS["cvm_required"])
    return VisaDecision(ac, fdda, cdcvm, offline)


class VisaApplication(PaymentApplication):
    """A Visa qVSDC application (Book C-3 card behaviour)."""

    kernel = "visa"

    def _ctq(self, ttq: bytes, d: VisaDecision) -> bytes:
        out = bytearray(2)
        if _bit(ttq, TTQ_BITS["cvm_required"]) and not d.cdcvm:
            if d.ac is AcType.ARQC and _bit(ttq, TTQ_BITS["online_pin"]):
                _set(out, CTQ_BITS["online_pin_required"])
            elif _bit(ttq, TTQ_BITS["signature"]):
                _set(out, CTQ_BITS["signature_required"])
        if d.ac is AcType.TC:
            _set(out, CTQ_BITS["go_online_if_oda_fails"])
        if d.cdcvm:
            _set(out, CTQ_BITS["cdcvm_performed"])
        return bytes(out)

    def _cvr(self, ttq: bytes, d: VisaDecision, *, new_card: bool, oda: bool) -> bytes:
        out = bytearray(3)
        _set(out, CVR_BITS["second_gen_ac_not_requested"])
        if d.ac is AcType.TC:
            _set(out, CVR_BITS["ac_tc"])
        elif d.ac is AcType.ARQC:
            _set(out, CVR_BITS["ac_arqc"])
        if _bit(ttq, TTQ_BITS["offline_only"]):
            _set(out, CVR_BITS["unable_to_go_online"])
        if d.offline.velocity_exceeded:
            _set(out, CVR_BITS["velocity_exceeded"])
        if new_card:
            _set(out, CVR_BITS["new_card"])
        if oda:
            _set(out, CVR_BITS["oda_performed"])
        if d.cdcvm:
            _set(out, CVR_BITS["cdcvm_performed"])
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

        ttq = get(0x9F66, 4)
        amount_raw = get(0x9F02, 6)
        currency = get(0x5F2A, 2)
        un = get(0x9F37, 4)
        amount = bcd_to_int(amount_raw)
        counters = self.counters
        offline = self.offline_check(amount, currency, get(0x9C, 1)[0])
        usable = not counters.blocked and not self.expired(get(0x9A, 3))
        d = decide(ttq, offline, usable=usable, cdcvm_capable=a.cdcvm)
        new_card = counters.last_online_atc == 0
        atc = self.next_atc()
        fdda = d.fdda and self.signer is not None
        ctq = self._ctq(ttq, d)
        iad = self.iad(self._cvr(ttq, d, new_card=new_card, oda=fdda))
        ac = self.cryptogram(values, atc, iad)
        self.record_outcome(d.ac, amount)
        atc_bytes = atc.to_bytes(2, "big")
        sdad = b""
        if fdda and self.signer is not None:
            card_auth = bytes((_FDDA_VERSION,)) + self.random(4) + ctq
            txn.overrides[0x9F69] = card_auth
            sdad = sign_fdda(
                self.signer,
                atc_bytes,
                unpredictable_number=un,
                amount_authorised=amount_raw,
                currency_code=currency,
                card_auth_data=card_auth,
            )
        self.commit()
        parts = [encode(0x82, a.aip)]
        if fdda:
            parts.append(encode(0x94, self._afl))
        parts.append(encode(0x57, a.data[0x57]))
        parts += [encode(t, a.data[t]) for t in (0x5F20, 0x5F34) if t in a.data]
        parts += [
            encode(0x9F10, iad),
            encode(0x9F26, ac),
            encode(0x9F27, bytes((d.ac,))),
            encode(0x9F36, atc_bytes),
        ]
        if fdda:
            parts.append(encode(0x9F4B, sdad))
        parts.append(encode(0x9F6C, ctq))
        if 0x9F6E in a.data:
            parts.append(encode(0x9F6E, a.data[0x9F6E]))
        return encode(0x77, b"".join(parts))
