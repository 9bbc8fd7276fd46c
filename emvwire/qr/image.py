"""QR codes as pictures: drawn with segno, read back with zxing-cpp.

Bytes in, bytes out: :func:`png` draws a code's text as a PNG image, :func:`terminal`
as lines of Unicode half blocks (two rows of modules per line of text, as a terminal
shows them; segno's compact output), :func:`read` finds the one QR code in an image
(PNG, JPEG or any format Pillow opens: a screenshot, a camera frame) and gives its
text. The symbol is ISO/IEC 18004 at error correction level M (15 % of the code may
be lost: a scratched screen, a reflection), with the 4-module quiet zone the standard
asks for around it.

The libraries are imported on first use, so that a command that draws or reads no
code does not load them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Final

from emvwire.errors import QrError

if TYPE_CHECKING:
    import segno

__all__ = ["ERROR_CORRECTION", "MAX_PIXELS", "QUIET_ZONE", "png", "read", "terminal"]

#: Error correction level (ISO/IEC 18004 §5.3.8.1: L 7 %, M 15 %, Q 25 %, H 30 %).
ERROR_CORRECTION: Final = "m"
#: Modules of quiet zone around the symbol (ISO/IEC 18004 §5.3.8: at least 4).
QUIET_ZONE: Final = 4
#: Largest image accepted by :func:`read`, in pixels (a 4K camera frame is 8.3 M).
MAX_PIXELS: Final = 40_000_000


def _symbol(text: str) -> segno.QRCode:
    import segno

    try:
        return segno.make(text, error=ERROR_CORRECTION, micro=False)
    except (segno.DataOverflowError, ValueError) as exc:
        raise QrError(f"the text does not fit a QR code: {exc}", field=None) from None


def png(text: str, *, scale: int = 8, border: int = QUIET_ZONE) -> bytes:
    """A PNG image of the QR code of ``text`` (``scale`` pixels per module)."""
    symbol = _symbol(text)
    out = io.BytesIO()
    symbol.save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def terminal(text: str, *, border: int = 2) -> str:
    """The QR code of ``text`` as text: lines of Unicode half blocks (``▀ ▄ █``), light
    modules drawn, for a terminal with a dark background. A border of 2 modules is
    enough beside a terminal's own margin."""
    symbol = _symbol(text)
    out = io.StringIO()
    symbol.terminal(out=out, compact=True, border=border)
    return out.getvalue()


def read(data: bytes) -> str:
    """The text of the one QR code in the image ``data``; :class:`QrError` if the data
    is not an image, holds no QR code, or holds more than one (which to pay?)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise QrError(f"image over {MAX_PIXELS} pixels", field=None)
            gray = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise QrError("not an image (PNG, JPEG...)", field=None) from None
    found = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormats(zxingcpp.QRCode))
    if not found:
        raise QrError("no QR code in the image", field=None)
    if len(found) > 1:
        raise QrError(f"{len(found)} QR codes in the image: show one", field=None)
    return found[0].text
