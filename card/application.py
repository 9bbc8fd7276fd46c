"""What every payment application of the software card shares, whatever its kernel.

A :class:`PaymentApplication` runs one :class:`~emvwire.profile.Application` of a card
profile: its File Control Information (EMV Book 1 §11.3.4 Table 45), its directory
entry (Book B §3.3 for the PPSE, Book 1 §12.2.3 for the PSE), its records (Book 3
§10.2), GET DATA (Book 3 §6.5.7), GET PROCESSING OPTIONS framing (Book 3 §6.5.8), the
card risk management both kernels use (offline limits, expiry; Book 3 §10.6 is the
terminal's side of the same idea) and the application cryptogram under the profile's
CVN (Book 2 §8.1, :mod:`emvwire.crypto`). The kernels (:mod:`card.visa`,
:mod:`card.mastercard`) add what GET PROCESSING OPTIONS answers and the commands only
they know.

Volatile state (what SELECT starts afresh) is a :class:`Transaction`; non-volatile
counters live in :class:`card.state.CardState`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

from card.iso7816 import (
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_INCORRECT_DATA,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_RECORD_NOT_FOUND,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_WRONG_LENGTH,
    StatusWordError,
    respond,
)
from card.state import ATC_MAX, AppState, CardState
from emvwire import apdu, dol
from emvwire.apdu import CApdu
from emvwire.crypto import CryptogramData, generate_arqc
from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.errors import DecodeError, DolError
from emvwire.oda import SigningKey, sign_fdda, sign_sm2_fdda
from emvwire.profile import Application, Record
from emvwire.qualifiers import Bit
from emvwire.tags import Tag
from emvwire.tlv import encode, read_length, read_tag

__all__ = [
    "IAD_CVN_BYTE",
    "AcType",
    "OfflineCheck",
    "PaymentApplication",
    "Transaction",
    "bcd_to_int",
    "fci_template",
    "int_to_bcd",
    "set_bit",
]

#: The CVN byte the card writes in its Issuer Application Data, by the CVN number of
#: the profile. Visa names CVN 10 and 18 by their decimal value (bytes 0A, 12) but
#: CVN 22 by its hex value (byte 22: IAD format 2, algorithm 2; VIS 1.6 Appendix on
#: CVNs). Mastercard's M/Chip 4 CVNs 16, 17, 20, 21 are bytes 10, 11, 14, 15 (bits
#: 3-2 session key derivation, bit 1 counters in the AC; pyemv cvn.py). The EMV common
#: core (Book 3 Annex C7) writes its Common Core Identifier instead: ``A5`` (format A,
#: cryptogram version 5, TDES). UnionPay's CVN 01 (TDES) and tapstack's 04 (SM4) are
#: their own bytes.
IAD_CVN_BYTE: Final[Mapping[int, int]] = {
    10: 0x0A,
    18: 0x12,
    22: 0x22,
    16: 0x10,
    17: 0x11,
    20: 0x14,
    21: 0x15,
    0xA5: 0xA5,
    0x01: 0x01,
    0x04: 0x04,
}

#: Derivation key index written in the IAD (the issuer has one AC master key).
DKI: Final = 0x01

#: GET DATA objects the card answers (Book 3 §6.5.7: ATC, last online ATC register,
#: PIN try counter, log format). Anything else is ``6A88``.
GET_DATA_TAGS: Final = frozenset(
    {Tag.ATC, Tag.LAST_ONLINE_ATC, Tag.PIN_TRY_COUNTER, Tag.LOG_FORMAT}
)

#: FCI proprietary template children, in order, taken from the application data when
#: present (Book 1 §11.3.4 Table 45): language preference, issuer code table index,
#: application preferred name.
_FCI_OPTIONAL: Final = (
    Tag.LANGUAGE_PREFERENCE,
    Tag.ISSUER_CODE_TABLE_INDEX,
    Tag.APPLICATION_PREFERRED_NAME,
)
#: FCI issuer discretionary data (BF0C) children taken from the application data:
#: log entry, application selection registered proprietary data, third party data.
_FCI_DISCRETIONARY: Final = (Tag.LOG_ENTRY, Tag.ASRPD, Tag.THIRD_PARTY_DATA)

#: Transaction type (9C) of a purchase of goods or services (ISO 8583:1987 processing
#: code, first two digits); only purchases may be approved offline.
PURCHASE: Final = 0x00


class AcType(enum.IntEnum):
    """The cryptogram classes, valued as the Cryptogram Information Data ``9F27``
    (Book 3 §6.5.5.4 Table 14) and the GENERATE AC P1 bits 8-7 (Table 12)."""

    AAC = apdu.AAC
    TC = apdu.TC
    ARQC = apdu.ARQC


def set_bit(out: bytearray, bit: Bit) -> None:
    """Set ``bit`` of a qualifier or verification result being built."""
    out[bit.byte] |= bit.mask


def fci_template(df_name: bytes, proprietary: bytes) -> bytes:
    """An FCI ``6F {84 DF name, A5 proprietary}`` (Book 1 §11.3.4 Tables 43 to 45)."""
    return encode(
        Tag.FCI_TEMPLATE,
        encode(Tag.DF_NAME, df_name) + encode(Tag.FCI_PROPRIETARY_TEMPLATE, proprietary),
    )


def bcd_to_int(value: bytes) -> int:
    """A numeric (``n``) data object as an integer; a nibble above 9 is ``6A80``."""
    digits = value.hex()
    if not digits.isdigit():
        raise StatusWordError(SW_INCORRECT_DATA, "a numeric data object holds a non-digit")
    return int(digits or "0")


def int_to_bcd(number: int, length: int) -> bytes:
    """``number`` as ``length`` bytes of BCD, leftmost digits dropped if too long."""
    digits = str(max(0, number)).rjust(2 * length, "0")[-2 * length :]
    return bytes.fromhex(digits)


@functools.lru_cache(maxsize=64)
def _signing_key(pem: bytes) -> SigningKey:
    """The ICC key of a PEM, parsed once per process (parsing checks the key: ~10 ms)."""
    return SigningKey.from_pem(pem)


def _date_key(yymmdd: bytes) -> tuple[int, int, int]:
    """A YYMMDD (n6) date as a sortable tuple, YY < 50 read as 20YY (Book 4 §6.7.3)."""
    nibbles = [b >> 4 for b in yymmdd[:3]] + [b & 0x0F for b in yymmdd[:3]]
    hi, lo = nibbles[:3], nibbles[3:]
    yy, mm, dd = (h * 10 + low for h, low in zip(hi, lo, strict=True))
    return (2000 + yy if yy < 50 else 1900 + yy, mm, dd)


@dataclass(slots=True)
class Transaction:
    """Volatile state of the selected application, started afresh by SELECT.

    ``overrides`` holds data objects whose value the card fills per transaction and
    serves in its records (Visa ``9F69``).
    """

    gpo_done: bool = False
    gen_ac_done: bool = False
    pdol_data: bytes = b""
    overrides: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OfflineCheck:
    """The card's own offline risk decision for one transaction.

    The limits are the profile's ``limits``: ``offline_count`` (most consecutive
    offline transactions) and ``offline_amount`` (most cumulative offline amount, minor
    units of the application currency ``9F42``). An absent limit is zero: no offline
    approval. A foreign currency or a transaction other than a purchase always goes
    online (Emms et al., CCS 2014: offline limits apply to one currency only).
    """

    count_exceeded: bool
    amount_exceeded: bool
    foreign_currency: bool
    not_purchase: bool

    @property
    def ok(self) -> bool:
        """Whether the card may approve offline."""
        return not (self.velocity_exceeded or self.foreign_currency or self.not_purchase)

    @property
    def velocity_exceeded(self) -> bool:
        """An offline counter would pass its limit."""
        return self.count_exceeded or self.amount_exceeded


class PaymentApplication:
    """One application of the card: data, records, counters and cryptograms."""

    kernel: ClassVar[str] = ""

    def __init__(
        self,
        app: Application,
        state: CardState,
        *,
        rng: Callable[[int], bytes],
        wrong_key: bool = False,
    ) -> None:
        self.app = app
        self._state = state
        self._rng = rng
        self._records: dict[tuple[int, int], Record] = {(r.sfi, r.number): r for r in app.records}
        self._sfis = frozenset(r.sfi for r in app.records)
        self._afl = app.afl()
        self._signer = _signing_key(app.rsa.pem) if app.rsa is not None else None
        self._sm2 = Sm2PrivateKey.from_bytes(app.sm2.private) if app.sm2 is not None else None
        key = app.keys.ac
        # faults.wrong_key: a key the issuer does not have (every byte changed).
        self._ac_key = bytes(b ^ 0x5A for b in key) if wrong_key else key
        if app.cvn not in IAD_CVN_BYTE:
            raise ValueError(f"CVN {app.cvn} has no IAD layout here")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r})"

    # --- counters --------------------------------------------------------------------

    @property
    def counters(self) -> AppState:
        """The application's live non-volatile counters."""
        return self._state[self.app.aid]

    def next_atc(self) -> int:
        """Increment the ATC for a new transaction (Book 3 Annex A ``9F36``).

        A spent ATC (``FFFF``) or a blocked application refuses: ``6985``. The caller
        persists with :meth:`commit` before releasing any answer.
        """
        c = self.counters
        if c.atc >= ATC_MAX:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "the ATC is spent")
        c.atc += 1
        return c.atc

    def commit(self) -> None:
        """Persist the counters."""
        self._state.save()

    def record_outcome(self, ac: AcType, amount: int) -> None:
        """Move the offline counters after a decision.

        TC: the offline counters grow by one transaction and ``amount``. ARQC: the
        card never hears the issuer's answer over contactless, so it treats the request
        as the online contact that resets its offline counters and sets the last online
        ATC (tapstack's simplification of the issuer-update reset). AAC: nothing.
        """
        c = self.counters
        if ac is AcType.TC:
            c.offline_count += 1
            c.offline_amount += amount
        elif ac is AcType.ARQC:
            c.offline_count = 0
            c.offline_amount = 0
            c.last_online_atc = c.atc

    # --- risk management -------------------------------------------------------------

    def offline_check(self, amount: int, currency: bytes, txn_type: int) -> OfflineCheck:
        """Whether this transaction stays within the card's offline limits."""
        limits = self.app.limits
        c = self.counters
        app_currency = self.app.data.get(Tag.APPLICATION_CURRENCY_CODE)
        return OfflineCheck(
            count_exceeded=c.offline_count + 1 > limits.get("offline_count", 0),
            amount_exceeded=c.offline_amount + amount > limits.get("offline_amount", 0),
            foreign_currency=app_currency is None or currency != app_currency,
            not_purchase=txn_type != PURCHASE,
        )

    def expired(self, txn_date: bytes) -> bool:
        """Whether the transaction date (``9A``) is after the expiry date (``5F24``)."""
        expiry = self.app.data.get(Tag.EXPIRATION_DATE)
        if expiry is None or len(expiry) != 3 or len(txn_date) != 3 or not any(txn_date):
            return False
        return _date_key(txn_date) > _date_key(expiry)

    def domestic(self, terminal_country: bytes) -> bool:
        """Whether the terminal country (``9F1A``) is the issuer country (``5F28``)."""
        return self.app.data.get(Tag.ISSUER_COUNTRY_CODE) == terminal_country

    # --- cryptograms -----------------------------------------------------------------

    def cryptogram(self, values: Mapping[int, bytes], atc: int, iad: bytes) -> bytes:
        """The application cryptogram (Book 2 §8.1) over terminal ``values`` (from a
        DOL; absent objects are zeros) and the card's AIP, ATC and IAD."""

        def get(tag: int, length: int) -> bytes:
            return dol.fit(tag, values.get(tag), length)

        data = CryptogramData(
            tag_9f02=get(Tag.AMOUNT_AUTHORISED, 6),
            tag_9f03=get(Tag.AMOUNT_OTHER, 6),
            tag_9f1a=get(Tag.TERMINAL_COUNTRY_CODE, 2),
            tag_95=get(Tag.TVR, 5),
            tag_5f2a=get(Tag.TRANSACTION_CURRENCY_CODE, 2),
            tag_9a=get(Tag.TRANSACTION_DATE, 3),
            tag_9c=get(Tag.TRANSACTION_TYPE, 1),
            tag_9f37=get(Tag.UNPREDICTABLE_NUMBER, 4),
            tag_82=self.app.aip,
            tag_9f36=atc.to_bytes(2, "big"),
            tag_9f10=iad,
        )
        return generate_arqc(self.app.cvn, self._ac_key, data)

    @property
    def signer(self) -> SigningKey | None:
        """The ICC RSA private key for fDDA / CDA, if the profile has one."""
        return self._signer

    @property
    def signs_fdda(self) -> bool:
        """Whether the profile has an ICC key (RSA, or SM2 on an SM suite card)."""
        return self._signer is not None or self._sm2 is not None

    def sign_fdda(
        self,
        icc_dynamic_number: bytes,
        *,
        unpredictable_number: bytes,
        amount_authorised: bytes,
        currency_code: bytes,
        card_auth_data: bytes,
    ) -> bytes:
        """``9F4B`` for fDDA with the profile's key: Book 2 Table 17 with RSA
        (:func:`emvwire.oda.sign_fdda`), or the SM variant with SM2
        (:func:`emvwire.oda.sign_sm2_fdda`)."""
        txn = {
            "unpredictable_number": unpredictable_number,
            "amount_authorised": amount_authorised,
            "currency_code": currency_code,
            "card_auth_data": card_auth_data,
        }
        if self._sm2 is not None:
            return sign_sm2_fdda(self._sm2, icc_dynamic_number, **txn)
        if self._signer is None:
            raise ValueError("the profile has no ICC key")
        return sign_fdda(self._signer, icc_dynamic_number, **txn)

    def random(self, length: int) -> bytes:
        """Fresh random bytes (card unpredictable number, ICC dynamic number, entropy)."""
        out = self._rng(length)
        if len(out) != length:
            raise ValueError("the random source returned the wrong length")
        return out

    # --- selection -------------------------------------------------------------------

    def fci(self) -> bytes:
        """The FCI answering SELECT of this application (Book 1 §11.3.4 Table 45)."""
        a = self.app
        prop = [encode(Tag.APPLICATION_LABEL, a.label.encode("ascii", "replace"))]
        if a.priority is not None:
            prop.append(encode(Tag.APPLICATION_PRIORITY, bytes((a.priority,))))
        if a.pdol:
            prop.append(encode(Tag.PDOL, a.pdol))
        prop += [encode(t, a.data[t]) for t in _FCI_OPTIONAL if t in a.data]
        discretionary = [encode(t, a.data[t]) for t in _FCI_DISCRETIONARY if t in a.data]
        if discretionary:
            prop.append(encode(Tag.FCI_ISSUER_DISCRETIONARY_DATA, b"".join(discretionary)))
        return fci_template(a.aid, b"".join(prop))

    def directory_entry(self, *, with_kernel_id: bool) -> bytes:
        """Template ``61``: ADF name, label, priority (and kernel id for the PPSE)."""
        a = self.app
        body = encode(Tag.AID, a.aid) + encode(
            Tag.APPLICATION_LABEL, a.label.encode("ascii", "replace")
        )
        if a.priority is not None:
            body += encode(Tag.APPLICATION_PRIORITY, bytes((a.priority,)))
        if with_kernel_id and a.kernel_id is not None:
            body += encode(Tag.KERNEL_IDENTIFIER, a.kernel_id)
        return encode(Tag.APPLICATION_TEMPLATE, body)

    # --- data access -----------------------------------------------------------------

    def read_record(self, txn: Transaction, sfi: int, number: int) -> bytes:
        """Template ``70`` of record ``number`` of file ``sfi`` (Book 3 §6.5.11)."""
        rec = self._records.get((sfi, number))
        if rec is None:
            if sfi not in self._sfis:
                raise StatusWordError(SW_FILE_NOT_FOUND, "no such file")
            raise StatusWordError(SW_RECORD_NOT_FOUND, "no such record")
        data = self.app.data
        body = b"".join(encode(t, txn.overrides.get(t, data[t])) for t in rec.tags)
        return encode(Tag.RECORD_TEMPLATE, body)

    def get_data(self, tag: int) -> bytes:
        """GET DATA of a counter or another object the card lets out (Book 3 §6.5.7)."""
        if tag not in GET_DATA_TAGS:
            raise StatusWordError(SW_REFERENCED_DATA_NOT_FOUND, "not available by GET DATA")
        c = self.counters
        if tag == Tag.ATC:
            value = c.atc.to_bytes(2, "big")
        elif tag == Tag.LAST_ONLINE_ATC:
            value = c.last_online_atc.to_bytes(2, "big")
        else:
            held = self.app.data.get(tag)
            if held is None:
                raise StatusWordError(SW_REFERENCED_DATA_NOT_FOUND, "not held")
            value = held
        return encode(tag, value)

    # --- application commands --------------------------------------------------------

    def handle(self, txn: Transaction, cmd: CApdu) -> bytes:
        """Commands of the selected application: GPO and the kernel's own."""
        if cmd.ins == 0xA8:
            return self.get_processing_options(txn, cmd)
        if cmd.ins == 0xAE:
            return self.generate_ac(txn, cmd)
        if cmd.ins == 0xEA:
            return self.exchange_relay_resistance_data(txn, cmd)
        raise StatusWordError(SW_INS_NOT_SUPPORTED)

    def get_processing_options(self, txn: Transaction, cmd: CApdu) -> bytes:
        """GET PROCESSING OPTIONS (Book 3 §6.5.8): check, then the kernel answers.

        P1-P2 other than ``0000``: ``6A86``. A second GPO in one selection: ``6985``.
        The data must be template ``83`` (``6A80``) whose length is the PDOL's total
        (``6700``).
        """
        if cmd.p1 or cmd.p2:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if txn.gpo_done:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "GPO already done")
        data = cmd.data
        if not data:
            raise StatusWordError(SW_WRONG_LENGTH, "GPO needs template 83")
        if data[0] != Tag.COMMAND_TEMPLATE:
            raise StatusWordError(SW_INCORRECT_DATA, "GPO data is not template 83")
        try:
            _, pos = read_tag(data)
            length, pos = read_length(data, pos)
        except DecodeError:
            raise StatusWordError(SW_INCORRECT_DATA, "template 83 is malformed") from None
        if pos + length != len(data):
            raise StatusWordError(SW_WRONG_LENGTH, "template 83 length does not match Lc")
        pdol_data = data[pos:]
        try:
            values = dol.split(self.app.pdol, pdol_data)
        except DolError:
            raise StatusWordError(SW_WRONG_LENGTH, "PDOL data of the wrong length") from None
        answer = self.gpo(txn, pdol_data, values)
        txn.gpo_done = True
        txn.pdol_data = pdol_data
        return respond(answer)

    def gpo(self, txn: Transaction, pdol_data: bytes, values: Mapping[int, bytes]) -> bytes:
        """The kernel's GPO answer (template ``77``)."""
        raise NotImplementedError

    def generate_ac(self, txn: Transaction, cmd: CApdu) -> bytes:
        """GENERATE AC: not offered unless the kernel overrides it."""
        raise StatusWordError(SW_INS_NOT_SUPPORTED)

    def exchange_relay_resistance_data(self, txn: Transaction, cmd: CApdu) -> bytes:
        """EXCHANGE RELAY RESISTANCE DATA: not offered unless the kernel overrides it."""
        raise StatusWordError(SW_INS_NOT_SUPPORTED)
