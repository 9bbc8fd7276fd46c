"""Card brand of an AID and of a PAN, to refuse a card brand mixup.

Basin, Sasse and Toro-Pozo ("Card Brand Mixup Attack", USENIX Security 2021) showed a
man in the middle making a Mastercard look like a Visa card to the terminal (the
terminal runs kernel 3 on a Mastercard), skipping the PIN. A terminal stops it by
checking that the PAN belongs to the brand of the application's RID.

:data:`BRAND_BY_RID` names the brand of the registered application providers (ISO/IEC
7816-5 RIDs as published by the schemes); :data:`PAN_RANGES` the issuer identification
number ranges of each brand (ISO/IEC 7812-1 IINs as the schemes publish them; Maestro
ranges are taken broadly as 50 and 56-69 under the Mastercard RID).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["BRAND_BY_RID", "PAN_RANGES", "aid_brand", "brand_mismatch", "pan_brands"]

#: RID (first five bytes of an AID) -> brand.
BRAND_BY_RID: Final[Mapping[bytes, str]] = {
    bytes.fromhex("A000000003"): "visa",
    bytes.fromhex("A000000004"): "mastercard",
    bytes.fromhex("A000000025"): "amex",
    bytes.fromhex("A000000065"): "jcb",
    bytes.fromhex("A000000152"): "discover",
    bytes.fromhex("A000000324"): "discover",
    bytes.fromhex("A000000333"): "unionpay",
}

#: Brand -> IIN ranges as (low, high) prefixes of equal length, inclusive.
PAN_RANGES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "visa": (("4", "4"),),
    "mastercard": (("2221", "2720"), ("50", "69")),
    "amex": (("34", "34"), ("37", "37")),
    "jcb": (("3528", "3589"),),
    "discover": (
        ("6011", "6011"),
        ("644", "649"),
        ("65", "65"),
        ("300", "305"),
        ("36", "36"),
        ("38", "39"),
        ("622126", "622925"),
    ),
    "unionpay": (("62", "62"), ("81", "81")),
}


def aid_brand(aid: bytes) -> str | None:
    """The brand of an AID by its RID, or ``None`` for an RID not in the table."""
    return BRAND_BY_RID.get(bytes(aid[:5]))


def pan_brands(pan: str) -> set[str]:
    """Every brand whose IIN ranges hold ``pan`` (digits)."""
    out = set()
    for brand, ranges in PAN_RANGES.items():
        for low, high in ranges:
            head = pan[: len(low)]
            if len(head) == len(low) and head.isdigit() and low <= head <= high:
                out.add(brand)
    return out


def brand_mismatch(aid: bytes, pan: str) -> str | None:
    """Why the PAN cannot belong to the AID's brand, or ``None`` when it can (or when
    the RID's brand is unknown, so that domestic schemes are not refused)."""
    brand = aid_brand(aid)
    if brand is None:
        return None
    if brand in pan_brands(pan):
        return None
    return f"the PAN is not a {brand} PAN although the application is {brand} (brand mixup)"
