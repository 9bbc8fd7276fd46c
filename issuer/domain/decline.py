# ruff: noqa: S105 - reason names, not passwords
"""Decline reasons: a closed set of names, each mapped to an ISO 8583 response code.

The names follow the issuing platforms (Lithic's ``INSUFFICIENT_FUNDS``,
``CARD_PAUSED``, ``UNAUTHORIZED_MERCHANT``, ``VELOCITY_EXCEEDED``,
``SUSPECTED_FRAUD``; shared/notes/conventions.md). The codes are ISO 8583:1987 field
39 values as the EMV authorisation response code (tag 8A) carries them in ASCII
(EMV Book 4 §A6, "Authorisation Response Code"); ``82`` is Visa's "negative online
CAM" (a cryptogram that does not verify).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["APPROVED", "RESPONSE_CODES", "DeclineReason", "response_code"]

#: Field 39 of an approval.
APPROVED: Final = "00"


class DeclineReason(enum.StrEnum):
    """Why an authorisation is declined (each has a response code)."""

    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CARD_NOT_FOUND = "CARD_NOT_FOUND"
    CARD_PAUSED = "CARD_PAUSED"
    CARD_CLOSED = "CARD_CLOSED"
    CARD_EXPIRED = "CARD_EXPIRED"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    TOKEN_SUSPENDED = "TOKEN_SUSPENDED"
    TOKEN_DELETED = "TOKEN_DELETED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_DOMAIN_VIOLATION = "TOKEN_DOMAIN_VIOLATION"
    UNAUTHORIZED_MERCHANT = "UNAUTHORIZED_MERCHANT"
    CRYPTOGRAM_INVALID = "CRYPTOGRAM_INVALID"
    ATC_REPLAYED = "ATC_REPLAYED"
    ATC_ROLLED_BACK = "ATC_ROLLED_BACK"
    CVM_MISMATCH = "CVM_MISMATCH"
    SUSPECTED_FRAUD = "SUSPECTED_FRAUD"
    VELOCITY_EXCEEDED = "VELOCITY_EXCEEDED"
    AMOUNT_LIMIT_EXCEEDED = "AMOUNT_LIMIT_EXCEEDED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    TRANSIT_NOT_ALLOWED = "TRANSIT_NOT_ALLOWED"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    FORMAT_ERROR = "FORMAT_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"


#: ISO 8583:1987 field 39 / EMV tag 8A per reason.
RESPONSE_CODES: Final[dict[DeclineReason, str]] = {
    DeclineReason.INSUFFICIENT_FUNDS: "51",  # not sufficient funds
    DeclineReason.CARD_NOT_FOUND: "14",  # invalid card number
    DeclineReason.CARD_PAUSED: "62",  # restricted card
    DeclineReason.CARD_CLOSED: "62",
    DeclineReason.CARD_EXPIRED: "54",  # expired card
    DeclineReason.ACCOUNT_CLOSED: "62",
    DeclineReason.TOKEN_SUSPENDED: "62",
    DeclineReason.TOKEN_DELETED: "14",
    DeclineReason.TOKEN_EXPIRED: "54",
    DeclineReason.TOKEN_DOMAIN_VIOLATION: "57",  # transaction not permitted to cardholder
    DeclineReason.UNAUTHORIZED_MERCHANT: "57",
    DeclineReason.CRYPTOGRAM_INVALID: "82",  # Visa: negative online CAM
    DeclineReason.ATC_REPLAYED: "59",  # suspected fraud
    DeclineReason.ATC_ROLLED_BACK: "59",
    DeclineReason.CVM_MISMATCH: "59",
    DeclineReason.SUSPECTED_FRAUD: "59",
    DeclineReason.VELOCITY_EXCEEDED: "65",  # exceeds withdrawal frequency limit
    DeclineReason.AMOUNT_LIMIT_EXCEEDED: "61",  # exceeds withdrawal amount limit
    DeclineReason.CURRENCY_MISMATCH: "12",  # invalid transaction
    DeclineReason.TRANSIT_NOT_ALLOWED: "58",  # transaction not permitted to terminal
    DeclineReason.INVALID_AMOUNT: "13",  # invalid amount
    DeclineReason.FORMAT_ERROR: "30",  # format error
    DeclineReason.SYSTEM_ERROR: "96",  # system malfunction
}


def response_code(reason: DeclineReason | None) -> str:
    """The response code of a decline, or ``00`` for an approval (``None``)."""
    return APPROVED if reason is None else RESPONSE_CODES[reason]
