"""American Express Expresspay: the card side of EMV Book C-4 (kernel 4), EMV mode.

Public sources followed: EMV Contactless Book C-4 as publicly summarised (the Enhanced
Contactless Reader Capabilities 9F6E of §4.3.4 Table 4-4, through Leon Lynch's public
emv-utils decoder), EMV Book 3 (GENERATE AC, Annex C7 Common Core Definitions) and
Book 2 (CDA, the CCD cryptogram). American Express's own card specifications (AEIPS,
the Expresspay card application and its cryptogram versions) are not public: where
they would decide, this card follows the **EMV common core** instead, as EMV 4.x lets
an issuer do, and says so here.

The command flow is kernel 2's (Book C-4 runs GET PROCESSING OPTIONS, READ RECORD and
GENERATE AC as contact EMV does), so the application is the M/Chip one of
:mod:`card.mastercard` with its own data:

- GET PROCESSING OPTIONS takes the PDOL data (Terminal Type 9F35 and the Enhanced
  Contactless Reader Capabilities 9F6E, kept for the CVR) and answers the AIP and AFL;
- GENERATE AC decides as :func:`card.mastercard.decide` does (never above the class
  asked; an offline approval only within the card's offline limits), signs with CDA
  when asked, but no EXCHANGE RELAY RESISTANCE DATA (``6D00``: Book C-4 has none);
- the cryptogram is CCD's with TDES (:attr:`emvwire.crypto.cryptogram.Cvn.EMV_CCD_TDES`,
  the CVN ``A5`` of the profile);
- Issuer Application Data, CCD format A (Book 3 Annex C7.1), 32 bytes: ``0F | CCI A5 |
  DKI | CVR(5) | counters(8) | 0F | issuer discretionary data(15, zeros)``, the
  counters as M/Chip's (offline count, 2 bytes || cumulative offline amount, 6 BCD);
- Card Verification Results, CCD (Book 3 Annex C7.3), the bits this card sets: byte 1
  bits 8-7 ``10`` (second GENERATE AC not requested), bits 6-5 the AC type (``00``
  AAC, ``01`` TC, ``10`` ARQC), bit 4 CDA performed, bit 2 issuer authentication not
  performed (contactless: the card never hears the issuer); byte 3 bit 8 lower
  consecutive offline limit exceeded, bit 6 lower cumulative offline limit exceeded;
  byte 4 bit 1 unable to go online (the reader's 9F6E says offline-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from card.application import DKI, AcType, OfflineCheck, Transaction, set_bit
from card.iso7816 import SW_INS_NOT_SUPPORTED, StatusWordError
from card.mastercard import MastercardApplication
from emvwire import dol
from emvwire.apdu import CApdu
from emvwire.qualifiers import ECRC, Bit, is_set
from emvwire.tags import Tag

__all__ = ["CVR_BITS", "AmexApplication"]

#: CCD CVR bits (byte index, mask); see the module docstring.
CVR_BITS: Final[Mapping[str, Bit]] = {
    "second_gen_ac_not_requested": Bit(0, 0x80),
    "ac_tc": Bit(0, 0x10),
    "ac_arqc": Bit(0, 0x20),
    "cda_performed": Bit(0, 0x08),
    "issuer_authentication_not_performed": Bit(0, 0x02),
    "lower_consecutive_offline_limit_exceeded": Bit(2, 0x80),
    "lower_cumulative_offline_limit_exceeded": Bit(2, 0x20),
    "unable_to_go_online": Bit(3, 0x01),
}
#: The CCD Common Core Identifier: format A (1010b), cryptogram version 5 (TDES).
CCI_TDES: Final = 0xA5
#: Length byte of each half of a CCD format A IAD (Book 3 Annex C7.1).
_CCD_HALF: Final = 0x0F


class AmexApplication(MastercardApplication):
    """An American Express Expresspay application (module docstring)."""

    kernel = "amex"

    def exchange_relay_resistance_data(self, txn: Transaction, cmd: CApdu) -> bytes:
        """Not in Book C-4: ``6D00``."""
        raise StatusWordError(SW_INS_NOT_SUPPORTED, "no relay resistance in kernel 4")

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
        """CCD format A Issuer Application Data (module docstring)."""
        cvr = bytearray(5)
        set_bit(cvr, CVR_BITS["second_gen_ac_not_requested"])
        if ac is AcType.TC:
            set_bit(cvr, CVR_BITS["ac_tc"])
        elif ac is AcType.ARQC:
            set_bit(cvr, CVR_BITS["ac_arqc"])
        if cda:
            set_bit(cvr, CVR_BITS["cda_performed"])
        set_bit(cvr, CVR_BITS["issuer_authentication_not_performed"])
        if offline.count_exceeded:
            set_bit(cvr, CVR_BITS["lower_consecutive_offline_limit_exceeded"])
        if offline.amount_exceeded:
            set_bit(cvr, CVR_BITS["lower_cumulative_offline_limit_exceeded"])
        reader = dol.split(self.app.pdol, txn.pdol_data).get(
            Tag.ENHANCED_CONTACTLESS_READER_CAPABILITIES, b""
        )
        if is_set(reader, ECRC.OFFLINE_ONLY):
            set_bit(cvr, CVR_BITS["unable_to_go_online"])
        first = bytes((_CCD_HALF, CCI_TDES, DKI)) + bytes(cvr) + self._counters()
        return first + bytes((_CCD_HALF,)) + bytes(15)
