"""PANs, tokens and payment account references.

- Luhn check digit: ISO/IEC 7812-1:2017 Annex B (the "modulus 10, double add double"
  check digit of every payment card number).
- A PAN of this issuer is its BIN range prefix, random account digits and the check
  digit (ISO/IEC 7812-1 §4: issuer identification number, individual account
  identification, check digit), 16 digits by default. Uniqueness is the database's
  (the PAN hash is a unique column); callers retry on a collision.
- A payment account reference (PAR, EMVCo Payment Account Reference, tag 9F24) is 29
  upper-case alphanumeric characters: a 4-character BIN controller identifier, then 25
  characters unique to the funding account. One PAR links a PAN and all its tokens.
- A token requestor id (tag 9F19) is 11 digits (EMVCo Payment Tokenisation).
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from issuer.errors import ValidationError

__all__ = [
    "BIN_CONTROLLER_IDS",
    "check_mcc",
    "check_pan",
    "check_requestor_id",
    "generate_pan",
    "generate_par",
    "luhn_check_digit",
    "luhn_valid",
]

#: BIN controller identifier per scheme, the first 4 characters of a PAR (test values,
#: as the fixtures' PARs: a real one is assigned by EMVCo).
BIN_CONTROLLER_IDS: Final = {
    "visa": "V001",
    "mastercard": "M001",
    "amex": "A001",
    "unionpay": "U001",
}
_PAR_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = re.compile(r"[0-9]+")


def luhn_check_digit(partial: str) -> str:
    """The check digit completing ``partial`` (ISO/IEC 7812-1 Annex B)."""
    if not _DIGITS.fullmatch(partial):
        raise ValidationError("a PAN is digits")
    total = 0
    # From the rightmost digit of the partial number, every other digit is doubled.
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    """Whether ``pan`` ends in its Luhn check digit."""
    return (
        isinstance(pan, str)
        and len(pan) >= 2
        and bool(_DIGITS.fullmatch(pan))
        and luhn_check_digit(pan[:-1]) == pan[-1]
    )


def check_pan(pan: str, *, what: str = "PAN") -> str:
    """``pan`` if it is 12 to 19 digits with a valid check digit, else
    :class:`ValidationError` (the message never repeats the number)."""
    if not isinstance(pan, str):
        raise ValidationError(f"a {what} is a string of digits")
    pan = pan.strip().replace(" ", "")
    if not _DIGITS.fullmatch(pan) or not 12 <= len(pan) <= 19:
        raise ValidationError(f"a {what} is 12 to 19 digits")
    if not luhn_valid(pan):
        raise ValidationError(f"the {what} fails the Luhn check (ISO/IEC 7812-1 Annex B)")
    return pan


def generate_pan(prefix: str, length: int = 16) -> str:
    """A random Luhn-valid number of ``length`` digits starting with ``prefix``."""
    if not _DIGITS.fullmatch(prefix):
        raise ValidationError("a BIN range prefix is digits")
    if not 12 <= length <= 19 or length - len(prefix) < 7:
        raise ValidationError("a PAN is 12-19 digits with at least 6 account digits")
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_check_digit(body)


def generate_par(scheme: str) -> str:
    """A new payment account reference (29 characters) for ``scheme``."""
    bci = BIN_CONTROLLER_IDS.get(scheme)
    if bci is None:
        raise ValidationError(f"no BIN controller identifier for scheme {scheme!r}")
    return bci + "".join(secrets.choice(_PAR_ALPHABET) for _ in range(25))


def check_mcc(mcc: str) -> str:
    """A merchant category code: 4 digits (ISO 18245)."""
    if not isinstance(mcc, str) or not re.fullmatch(r"[0-9]{4}", mcc):
        raise ValidationError("an MCC is 4 digits (ISO 18245)")
    return mcc


def check_requestor_id(requestor_id: str) -> str:
    """A token requestor id: 11 digits (tag 9F19)."""
    if not isinstance(requestor_id, str) or not re.fullmatch(r"[0-9]{11}", requestor_id):
        raise ValidationError("a token requestor id is 11 digits (tag 9F19)")
    return requestor_id
