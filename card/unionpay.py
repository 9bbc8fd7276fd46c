"""UnionPay QuickPass (qUICS): the card side of EMV Book C-7 (kernel 7).

Public sources followed: EMV Contactless Book B (RID A000000333, kernel id 07) and the
public tag dictionaries of UnionPay cards (qUICS uses the Terminal Transaction
Qualifiers 9F66, the Card Transaction Qualifiers 9F6C and the fDDA card authentication
related data 9F69 as Visa's qVSDC does, Book C-3 Annex A). UnionPay's own card
specification (UICS, PBOC 3.0) is not public in the detail a card needs: where it
would decide, this card does what :mod:`card.visa` does (the decision at GET
PROCESSING OPTIONS, the CTQ, the CVR bits, fDDA version 01), and says so here.

What differs from the Visa card:

- the cryptogram versions (:mod:`emvwire.crypto.cryptogram`): ``01``, TDES
  (:attr:`~emvwire.crypto.cryptogram.Cvn.UNIONPAY_TDES`), or ``04``, the SM4 suite
  (:attr:`~emvwire.crypto.cryptogram.Cvn.UNIONPAY_SM4`), whichever the card range of
  the issuer gave the card;
- on a card of the whole SM suite (a profile with an ICC SM2 key), fDDA's signature
  is SM2's over SM3 (:func:`emvwire.oda.sign_sm2_fdda`), under SM2 certificates;
- Issuer Application Data, 8 bytes: ``07 | DKI | CVN | 03 | CVR(3) | 00``, the length
  byte first as on UnionPay cards, the last byte issuer discretionary data (none);
  the whole IAD is MAC'd;
- no form factor indicator (9F6E is Visa's).
"""

from __future__ import annotations

from typing import Final

from card.application import DKI, IAD_CVN_BYTE
from card.visa import VisaApplication

__all__ = ["UnionPayApplication"]

#: Bytes after the IAD's length byte: DKI, CVN, CVR length, CVR (3), one byte of issuer
#: discretionary data.
_IAD_LENGTH: Final = 0x07


class UnionPayApplication(VisaApplication):
    """A UnionPay qUICS application (module docstring)."""

    kernel = "unionpay"

    def iad(self, cvr: bytes) -> bytes:
        """``07 | DKI | CVN | 03 | CVR(3) | 00`` (module docstring)."""
        cvn = IAD_CVN_BYTE[self.app.cvn]
        return bytes((_IAD_LENGTH, DKI, cvn, len(cvr))) + cvr + b"\x00"
