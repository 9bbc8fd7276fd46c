"""Write docs/qr-example.png: a merchant's static "pay me" QR code, made by tapstack's
own code (emvwire.qr.tapstack.merchant_code, drawn by emvwire.qr.image with segno), as
``issuer terminal qr ID --png FILE`` makes it for a registered terminal.

Run: .venv/bin/python scripts/qr_example.py

The merchant is an example (no issuer records it): tests/emvwire/test_qr_tapstack.py
reads the picture back with zxing-cpp and checks it is :func:`example` still.
"""

from __future__ import annotations

from pathlib import Path

from emvwire.country import country_by_alpha2
from emvwire.currency import currency_by_code
from emvwire.qr import image
from emvwire.qr.mpm import MerchantPresentedCode
from emvwire.qr.tapstack import merchant_code

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "qr-example.png"


def example() -> MerchantPresentedCode:
    """The example merchant's static code: a café in Marseille, terminal id made up."""
    return merchant_code(
        "term_exampleexample23", name="Cafe du Port", city="Marseille", mcc="5812",
        currency=currency_by_code("EUR"), country=country_by_alpha2("FR"),
    )  # fmt: skip


def main() -> None:
    """Write the picture; print the code's text."""
    text = example().encode()
    PICTURE.parent.mkdir(exist_ok=True)
    PICTURE.write_bytes(image.png(text, scale=8))
    print(f"{PICTURE.relative_to(ROOT)}: {text}")


if __name__ == "__main__":
    main()
