"""Brand of AID and PAN (card brand mixup defence)."""

from __future__ import annotations

import pytest

from terminal.kernel.brand import aid_brand, brand_mismatch, pan_brands

VISA = bytes.fromhex("A0000000031010")
MC = bytes.fromhex("A0000000041010")


@pytest.mark.parametrize(
    ("pan", "brands"),
    [
        ("4761739001010010", {"visa"}),
        ("5413330089601034", {"mastercard"}),
        ("2221000000000009", {"mastercard"}),
        ("2720990000000007", {"mastercard"}),
        ("2721000000000004", set()),
        ("378282246310005", {"amex"}),
        ("3530111333300000", {"jcb"}),
        ("6011111111111117", {"discover", "mastercard"}),  # Maestro ranges taken broadly
    ],
)
def test_pan_brands(pan: str, brands: set[str]) -> None:
    assert pan_brands(pan) == brands


def test_brand_mismatch() -> None:
    assert aid_brand(VISA) == "visa"
    assert aid_brand(MC) == "mastercard"
    assert brand_mismatch(VISA, "4761739001010010") is None
    assert brand_mismatch(MC, "5413330089601034") is None
    reason = brand_mismatch(VISA, "5413330089601034")
    assert reason is not None
    assert "brand mixup" in reason
    assert "5413" not in reason
    assert brand_mismatch(MC, "4761739001010010") is not None
    assert brand_mismatch(bytes.fromhex("A000000999"), "4761739001010010") is None
