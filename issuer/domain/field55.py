"""What a terminal's field 55 says, and what the card's cryptogram proves of it: the
rules of the read phase of an authorisation (:mod:`issuer.domain.authorise`).

Field 55 (ISO 8583 ICC system related data) is a BER-TLV blob of the data objects
:data:`emvwire.contract.FIELD_55_TAGS`. Only what the ARQC covers is trusted (EMV
Book 2 §8.1.1): amount, currency, date, type, UN, TVR, AIP, ATC and IAD. The rest is
the terminal's word, checked against what the card proves in the MAC'd IAD:

- the CVM: what the terminal says was verified (CVM results 9F34, CTQ 9F6C) must be
  what the card's CVR proves (Murdoch et al., "Chip and PIN is Broken", IEEE S&P 2010;
  the CTQ downgrade);
- transit: a cryptogram made for an offline-only (transit) reader, or one naming a
  transit MCC (9F15), is good only at a transit terminal (Radu et al., IEEE S&P 2022:
  Apple Pay Visa transit mode relayed to a shop).

The PAN comes from track 2 equivalent data (57), which the terminal sends beside
field 55 (:func:`pan_of`). A rule that declines raises
:class:`~issuer.domain.vault.DeclinedError` with its reason (``flag``: a suspected
attack, the card or token is flagged).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from emvwire.apdu import ARQC
from emvwire.contract import FIELD_55_REQUIRED, DeclineReason
from emvwire.crypto.cryptogram import CryptogramData
from emvwire.dictionary import name_of
from emvwire.errors import EmvWireError
from emvwire.qualifiers import CTQ, Bit, is_set
from emvwire.tags import Tag
from emvwire.tlv import decode_flat
from emvwire.track2 import track2_pan
from issuer.domain.vault import DeclinedError, Instrument
from issuer.errors import NotFoundError, ValidationError
from issuer.model.currency import currency_by_numeric

__all__ = [
    "CVR_IN_IAD",
    "PURCHASE_TYPES",
    "TRANSIT_MCCS",
    "amount_and_currency",
    "check_cvm",
    "check_format",
    "check_transit",
    "cryptogram_data",
    "pan_of",
    "parse_field55",
]

#: MCCs of transit and parking (ISO 18245): local commuter transport, passenger
#: railways, bus lines, tolls, parking.
TRANSIT_MCCS: Final = frozenset({"4111", "4112", "4131", "4784", "7523"})
#: Transaction types (9C) an authorisation may carry: purchase, purchase with cashback.
PURCHASE_TYPES: Final = frozenset({0x00, 0x09})
#: Where the CVR sits in the IAD, per CVN: (offset, length) of the CVR data bytes.
#: Visa format 0/1 (VIS 1.5 Appendix A-13: ``06 | DKI | CVN | 03 | CVR(3)``), Visa
#: format 2 (VIS 1.6: ``1F | CVN | DKI | CVR(5) | ...``), M/Chip 4 (``DKI | CVN |
#: CVR(6) | ...``), the EMV common core of the American Express card (Book 3 Annex
#: C7.1: ``0F | CCI A5 | DKI | CVR(5) | ...``), the UnionPay card (``07 | DKI | CVN |
#: 03 | CVR(3) | 00``, card/unionpay.py). CVN 10/18/16/17/20/21 MAC the CVR; CVN 22,
#: A5, 01 and 04 MAC the whole IAD.
CVR_IN_IAD: Final[Mapping[int, tuple[int, int]]] = {
    10: (4, 3), 18: (4, 3), 22: (3, 5), 16: (2, 6), 17: (2, 6), 20: (2, 6), 21: (2, 6),
    0xA5: (3, 5), 0x01: (4, 3), 0x04: (4, 3),
}  # fmt: skip
#: Card-proven facts in the CVR, per scheme (card/visa.py, card/mastercard.py module
#: docstrings; VIS 1.5 A-13, M/Chip 4 CVR).
#: The schemes whose cards write Visa's CVR (the UnionPay card is Visa's, card/unionpay.py).
_VISA_CVR_SCHEMES: Final = frozenset({"visa", "unionpay"})
_VISA_CVR_CDCVM: Final = Bit(2, 0x01)
_VISA_CVR_OFFLINE_ONLY: Final = Bit(0, 0x01)  # "unable to go online": an offline reader
_MC_CVR_PIN_PERFORMED: Final = Bit(0, 0x04)
_MC_CVR_PIN_OK: Final = Bit(0, 0x01)
#: CCD CVR byte 2 bit 4, offline PIN verification performed (Book 3 Annex C7.3): what
#: a CCD card (tapstack's American Express card, card/amex.py) would set for a CVM
#: verified by the card; the plastic card never does.
_CCD_CVR_PIN_PERFORMED: Final = Bit(1, 0x08)
#: CVM results 9F34 method codes (EMV Book 3 Annex C3, low six bits): offline PIN
#: verified by the ICC (plaintext 01, enciphered 04, combinations 03, 05) = CDCVM on
#: contactless kernel 2/3 (01 00 02).
_OFFLINE_PIN_METHODS: Final = frozenset({0x01, 0x03, 0x04, 0x05})
_CVM_METHOD: Final = 0x3F  # CVM code byte: the method, without the "apply next" bits
_CVM_SUCCESSFUL: Final = 0x02  # CVM result byte 3 (Book 3 Annex A)
#: TVR byte 3 bit 8: cardholder verification was not successful (Book 3 Annex C5).
_TVR_CV_FAILED: Final = Bit(2, 0x80)
#: The cryptogram type bits of the CID 9F27 (b8-b7, Book 3 §6.5.5.4).
_CID_TYPE: Final = 0xC0


def parse_field55(blob: bytes) -> dict[int, bytes]:
    """The primitive data objects of a field 55 blob (EMV Book 3 Annex B BER-TLV);
    :class:`ValidationError` if it does not decode."""
    try:
        return decode_flat(blob)
    except EmvWireError as exc:
        raise ValidationError(f"field 55 does not decode: {exc}") from None


def pan_of(track2: bytes) -> str:
    """The PAN of Track 2 Equivalent Data (Book 3 Annex A, tag 57), 12 to 19 digits
    (ISO/IEC 7812-1); :class:`ValidationError` if it has none."""
    pan = track2_pan(track2)
    if not 12 <= len(pan) <= 19:
        raise ValidationError("track 2 equivalent data has no valid PAN")
    return pan


def _bcd_int(value: bytes) -> int:
    text = value.hex()
    if not text.isdigit():
        raise ValidationError("a BCD amount has a non-decimal digit")
    return int(text)


def amount_and_currency(tags: Mapping[int, bytes]) -> tuple[int, str]:
    """The amount authorised (9F02, n12) and the currency (5F2A, ISO 4217); ``-1``
    where the amount is absent, ``XXX`` ("no currency") where the currency is, both
    if either is malformed."""
    amount = tags.get(Tag.AMOUNT_AUTHORISED, b"")
    numeric = tags.get(Tag.TRANSACTION_CURRENCY_CODE, b"")
    try:
        value = _bcd_int(amount) if len(amount) == 6 else -1
        currency = currency_by_numeric(numeric).alpha if len(numeric) == 2 else "XXX"
    except (ValidationError, NotFoundError, ValueError):
        return -1, "XXX"
    return value, currency


def check_format(tags: Mapping[int, bytes], amount: int, currency: str) -> None:
    """Field 55 holds what verifying the cryptogram needs, each of its length
    (:data:`emvwire.contract.FIELD_55_REQUIRED`, Book 3 Annex A): else
    :class:`ValidationError` naming the data object, a malformed request. Then a
    positive amount in a known currency, an ARQC and a purchase; else
    :class:`DeclinedError`."""
    for tag, (low, high) in FIELD_55_REQUIRED.items():
        value = tags.get(tag)
        if value is None:
            raise ValidationError(f"field 55 lacks {tag:X} ({name_of(tag)})")
        if not low <= len(value) <= high:
            size = f"{low}" if low == high else f"{low} to {high}"
            raise ValidationError(
                f"field 55: {tag:X} ({name_of(tag)}) is {len(value)} bytes, not {size}"
            )
    if amount <= 0:
        raise DeclinedError(DeclineReason.INVALID_AMOUNT)
    if currency == "XXX":
        raise DeclinedError(DeclineReason.CURRENCY_MISMATCH)
    if tags[Tag.CID][0] & _CID_TYPE != ARQC:
        raise DeclinedError(DeclineReason.FORMAT_ERROR)
    if tags[Tag.TRANSACTION_TYPE][0] not in PURCHASE_TYPES:
        raise DeclinedError(DeclineReason.FORMAT_ERROR)


def cryptogram_data(tags: Mapping[int, bytes]) -> CryptogramData:
    """The data the ARQC covers (EMV Book 2 §8.1.1), exactly as field 55 carries it:
    the TVR there is the one the card's cryptogram covers (kernel 3 sends the PDOL's)."""
    return CryptogramData(
        tag_9f02=tags[Tag.AMOUNT_AUTHORISED],
        tag_9f03=tags[Tag.AMOUNT_OTHER],
        tag_9f1a=tags[Tag.TERMINAL_COUNTRY_CODE],
        tag_95=tags[Tag.TVR],
        tag_5f2a=tags[Tag.TRANSACTION_CURRENCY_CODE],
        tag_9a=tags[Tag.TRANSACTION_DATE],
        tag_9c=tags[Tag.TRANSACTION_TYPE],
        tag_9f37=tags[Tag.UNPREDICTABLE_NUMBER],
        tag_82=tags[Tag.AIP],
        tag_9f36=tags[Tag.ATC],
        tag_9f10=tags[Tag.IAD],
    )


def _cvr(instrument: Instrument, iad: bytes) -> bytes:
    """The card verification results in the IAD (:data:`CVR_IN_IAD`)."""
    where = CVR_IN_IAD.get(instrument.cvn)
    if where is None or len(iad) < where[0] + where[1]:
        raise DeclinedError(DeclineReason.FORMAT_ERROR)
    return iad[where[0] : where[0] + where[1]]


def check_cvm(instrument: Instrument, tags: Mapping[int, bytes]) -> None:
    """What the terminal says was verified must be what the card's CVR proves (module
    docstring); and a card that verified cannot have failed cardholder verification."""
    cvr = _cvr(instrument, tags[Tag.IAD])
    if instrument.scheme in _VISA_CVR_SCHEMES:
        card_cdcvm = is_set(cvr, _VISA_CVR_CDCVM)
    elif instrument.scheme == "amex":
        card_cdcvm = is_set(cvr, _CCD_CVR_PIN_PERFORMED)
    else:
        card_cdcvm = is_set(cvr, _MC_CVR_PIN_PERFORMED) and is_set(cvr, _MC_CVR_PIN_OK)
    cvm = tags.get(Tag.CVM_RESULTS, b"")
    terminal_cdcvm = (
        len(cvm) == 3 and cvm[0] & _CVM_METHOD in _OFFLINE_PIN_METHODS and cvm[2] == _CVM_SUCCESSFUL
    )
    ctq_cdcvm = is_set(tags.get(Tag.CTQ, b""), CTQ.CDCVM_PERFORMED)
    if (terminal_cdcvm or ctq_cdcvm) and not card_cdcvm:
        raise DeclinedError(DeclineReason.CVM_MISMATCH, flag=True)
    if card_cdcvm and is_set(tags[Tag.TVR], _TVR_CV_FAILED):
        raise DeclinedError(DeclineReason.CVM_MISMATCH, flag=True)


def check_transit(instrument: Instrument, tags: Mapping[int, bytes], terminal_mcc: str) -> None:
    """A cryptogram made for an offline-only (transit) reader, or one naming a transit
    MCC, is good only at a transit terminal; an MCC in field 55 must be the terminal's
    (module docstring)."""
    transit = False
    if instrument.scheme in _VISA_CVR_SCHEMES:
        transit = is_set(_cvr(instrument, tags[Tag.IAD]), _VISA_CVR_OFFLINE_ONLY)
    mcc = tags.get(Tag.MCC, b"").hex()
    if mcc and mcc != terminal_mcc:
        raise DeclinedError(DeclineReason.UNAUTHORIZED_MERCHANT, flag=True)
    transit = transit or mcc in TRANSIT_MCCS
    if transit and terminal_mcc not in TRANSIT_MCCS:
        raise DeclinedError(DeclineReason.TRANSIT_NOT_ALLOWED, flag=True)
