"""EMVCo QR code payloads: the two faces of paying by two-dimensional code.

- :mod:`emvwire.qr.mpm`: merchant-presented mode (EMV QRCPS-MPM), the shop's "pay me"
  code a phone scans: ID-length-value text protected by a CRC-16.
- :mod:`emvwire.qr.cpm`: consumer-presented mode (EMV QRCPS-CPM), the phone's code a
  till scans: BER-TLV carrying an application cryptogram, as Base64 text.

Both decode strictly (a :class:`~emvwire.errors.QrError` naming the data object at
fault, nothing else) and encode only valid payloads. Beside them:

- :mod:`emvwire.qr.tapstack`: what the specifications leave to the payment system, as
  tapstack does it (its merchant account information, the time stamped in a
  consumer-presented code's cryptogram);
- :mod:`emvwire.qr.image`: codes drawn (segno: PNG, terminal half blocks) and read
  from pictures (zxing-cpp), imported on first use.
"""

from emvwire.qr.cpm import Application, CommonData, ConsumerPresentedCode
from emvwire.qr.mpm import (
    AdditionalData,
    DataObject,
    LanguageTemplate,
    MerchantPresentedCode,
    Template,
    crc16,
)

__all__ = [
    "AdditionalData",
    "Application",
    "CommonData",
    "ConsumerPresentedCode",
    "DataObject",
    "LanguageTemplate",
    "MerchantPresentedCode",
    "Template",
    "crc16",
]
