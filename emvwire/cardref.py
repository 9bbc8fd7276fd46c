"""The card reference: how a terminal and its back office name a card without its PAN.

Open-loop transit identifies a rider's card by a keyed hash of its PAN or token, never
the PAN itself (the Littlepay data model's card hash; bob-emv's keyed token hash). A
gate computes it at the tap, the back office from the unsealed track 2; both hold the
same key.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEMO_CARD_REFERENCE_KEY", "card_reference"]

#: The card reference key of demos and tests: SHA-256 of the ASCII text
#: ``tapstack demo card reference key`` (published, so not for production).
DEMO_CARD_REFERENCE_KEY: Final = bytes.fromhex(
    "26c9338fe8e03c6cac1226b883ca617ba0979f5003ffcc395db9c94175588218"
)


def card_reference(key: bytes, pan: str, psn: bytes | None = None) -> str:
    """A stable reference of the card that is not its PAN: 32 hex digits.

    HMAC-SHA256 (RFC 2104) under ``key`` over the PAN (or token) digits, ``|`` and the
    PAN sequence number (5F34, two hex digits; ``--`` when absent), truncated to 128
    bits. The same card gives the same reference on every terminal with the same key;
    without the key it tells nothing about the PAN.
    """
    import hashlib  # on first use: a terminal that only reads a card loads no OpenSSL digest
    import hmac

    psn_text = "--" if not psn else psn.hex().upper()
    mac = hmac.new(bytes(key), f"{pan}|{psn_text}".encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:32]
