"""What the retail till does with QR codes (EMV QRCPS, :mod:`emvwire.qr`), beside taps.

- **Consumer-presented** (the customer's phone shows a code, the till scans it: a USB
  scanner types it as one line, or a camera frame is read): :func:`read_consumer_code`
  decodes it strictly and makes the authorisation a tap's field 55 would be, the code's
  data first and the till's own after (terminal capabilities and type, CVM results
  "no CVM performed": the phone verified its holder, as the code's CTQ says), the DF
  name from the code's AID. A code made for another currency, or for another amount
  than the sale's, is refused before anything is sent.
- **Merchant-presented** (the till shows a dynamic code for the sale, the customer's
  phone pays it): the issuer opens the sale and makes the code (``POST /v1/qr/sales``);
  :func:`check_sale_code` makes sure the code to show is for this sale (amount, bill
  number) before it is shown; :func:`new_bill` names the sale.

Receipt values are masked: the token (or PAN) as first 6 and last 4 digits.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from emvwire.currency import Currency
from emvwire.errors import QrError
from emvwire.mask import mask_pan
from emvwire.qr.cpm import ConsumerPresentedCode
from emvwire.qr.mpm import MerchantPresentedCode
from emvwire.qr.tapstack import amount_minor, merchant_id
from emvwire.qualifiers import CTQ, is_set
from emvwire.tags import Tag
from emvwire.track2 import track2_pan

__all__ = [
    "NO_CVM_PERFORMED",
    "ScannedCode",
    "check_sale_code",
    "new_bill",
    "read_consumer_code",
]

#: CVM results 9F34 of a scanned code: "no CVM performed" (EMV Book 3 Annex C3: method
#: 3F, condition 00, result 00 unknown); the phone's own verification is in its data.
NO_CVM_PERFORMED: Final = bytes.fromhex("3F0000")


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """A consumer-presented code read by the till: the authorisation's field 55 and
    track 2, the amount the code was made for (0: any), and the receipt's card values
    (masked)."""

    icc_data: bytes = field(repr=False)
    track2: bytes = field(repr=False)
    amount: int
    card: dict[str, Any]


def _bcd(value: bytes) -> int:
    digits = value.hex()
    if not digits.isdigit():
        raise QrError("the amount is not BCD digits", field="61.63.9F02")
    return int(digits)


def read_consumer_code(
    text: str, *, currency: Currency, amount: int, terminal_data: Mapping[int, bytes]
) -> ScannedCode:
    """The scanned code ``text`` for a sale of ``amount`` minor units of ``currency``
    (module docstring); :class:`QrError` naming what is wrong, the code or its fit to
    the sale."""
    code = ConsumerPresentedCode.decode(text.strip())
    app = code.applications[0]
    data = {**(code.common.data if code.common else {}), **app.data}
    if data.get(Tag.TRANSACTION_CURRENCY_CODE) != currency.code:
        raise QrError(f"the code is not in {currency.alpha}", field="61.63.5F2A")
    made_for = _bcd(data.get(Tag.AMOUNT_AUTHORISED, bytes(6)))
    if made_for and made_for != amount:
        raise QrError(f"the code is for {made_for} minor units, not this sale", field="61.63.9F02")
    track2 = code.track2()
    if track2 is None:
        raise QrError("the code has no track 2 equivalent data", field="61.57")
    pan = track2_pan(track2)
    till = {Tag.CVM_RESULTS: NO_CVM_PERFORMED, **terminal_data}
    icc_data = code.icc_data(terminal={t: v for t, v in till.items() if t not in data})
    cdcvm = is_set(data.get(Tag.CTQ, b"\x00\x00"), CTQ.CDCVM_PERFORMED)
    atc = data.get(Tag.ATC, b"")
    card = {
        "card": mask_pan(pan),
        "last4": pan[-4:],
        "token": app.get(Tag.TOKEN_REQUESTOR_ID) is not None,
        "aid": app.aid.hex().upper(),
        "label": app.label or "",
        "cryptogram": data.get(Tag.APPLICATION_CRYPTOGRAM, b"").hex().upper(),
        "atc": int.from_bytes(atc, "big") if atc else None,
        "cvm": "consumer device CVM" if cdcvm else "no CVM",
        "tvr": data.get(Tag.TVR, b"").hex().upper(),
    }
    return ScannedCode(icc_data, track2, made_for, card)


def new_bill() -> str:
    """A new bill number for a dynamic code (QRCPS-MPM ``62.01``): ``B`` and 12 hex
    digits from the CSPRNG."""
    return "B" + secrets.token_hex(6).upper()


def check_sale_code(
    payload: str, *, terminal_id: str, amount: int, bill: str, currency: Currency
) -> MerchantPresentedCode:
    """The dynamic code the issuer made for the sale, checked to be this terminal's,
    for ``amount`` and ``bill``, before it is shown; :class:`QrError` else."""
    code = MerchantPresentedCode.decode(payload)
    if not code.dynamic or merchant_id(code) != terminal_id:
        raise QrError("not this terminal's dynamic code", field="26")
    if amount_minor(code, currency) != amount:
        raise QrError("not the sale's amount", field="54")
    if code.additional_data is None or code.additional_data.bill_number != bill:
        raise QrError("not the sale's bill number", field="62.01")
    return code
