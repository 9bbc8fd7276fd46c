"""The bits of the qualifier data objects that cards and terminals test, by name.

Each bit is a :class:`Bit` (byte index from 0, mask), as the specifications number
them from byte 1, bit 8 down to bit 1:

- :class:`TTQ`: Terminal Transaction Qualifiers, 9F66 (EMV Book C-3 Annex A; Book B
  §3.1.1 sets byte 2 bits 8 and 7 at pre-processing);
- :class:`CTQ`: Card Transaction Qualifiers, 9F6C (Book C-3 Annex A);
- :class:`AIP`: Application Interchange Profile, 82 (Book 3 Annex C1; Book C-2 Annex
  A adds the kernel 2 bits of byte 1 bit 2 and byte 2 bit 1).

The card software sets these bits and the kernels test them with the same names.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["AIP", "CTQ", "TTQ", "Bit", "is_set"]


class Bit(NamedTuple):
    """One bit of a qualifier: byte index (0 = byte 1) and mask."""

    byte: int
    mask: int


def is_set(value: bytes | bytearray, bit: Bit) -> bool:
    """Whether ``bit`` is set in ``value`` (a value too short for it has it clear)."""
    return len(value) > bit.byte and bool(value[bit.byte] & bit.mask)


class TTQ:
    """Terminal Transaction Qualifiers (9F66), Book C-3 Annex A."""

    MAG_STRIPE_MODE: Final = Bit(0, 0x80)
    """Byte 1 bit 8: mag-stripe mode supported."""
    QVSDC: Final = Bit(0, 0x20)
    """Byte 1 bit 6: EMV mode (qVSDC) supported."""
    CONTACT_CHIP: Final = Bit(0, 0x10)
    """Byte 1 bit 5: EMV contact chip supported."""
    OFFLINE_ONLY: Final = Bit(0, 0x08)
    """Byte 1 bit 4: offline-only reader."""
    ONLINE_PIN: Final = Bit(0, 0x04)
    """Byte 1 bit 3: online PIN supported."""
    SIGNATURE: Final = Bit(0, 0x02)
    """Byte 1 bit 2: signature supported."""
    ODA_FOR_ONLINE: Final = Bit(0, 0x01)
    """Byte 1 bit 1: offline data authentication for online authorisations supported."""
    ONLINE_CRYPTOGRAM_REQUIRED: Final = Bit(1, 0x80)
    """Byte 2 bit 8: online cryptogram required."""
    CVM_REQUIRED: Final = Bit(1, 0x40)
    """Byte 2 bit 7: CVM required."""
    CONTACT_OFFLINE_PIN: Final = Bit(1, 0x20)
    """Byte 2 bit 6: (contact chip) offline PIN supported."""
    ISSUER_UPDATE: Final = Bit(2, 0x80)
    """Byte 3 bit 8: issuer update processing supported."""
    CDCVM: Final = Bit(2, 0x40)
    """Byte 3 bit 7: consumer device CVM supported."""


class CTQ:
    """Card Transaction Qualifiers (9F6C), Book C-3 Annex A."""

    ONLINE_PIN_REQUIRED: Final = Bit(0, 0x80)
    """Byte 1 bit 8: online PIN required."""
    SIGNATURE_REQUIRED: Final = Bit(0, 0x40)
    """Byte 1 bit 7: signature required."""
    ONLINE_IF_ODA_FAILS: Final = Bit(0, 0x20)
    """Byte 1 bit 6: go online if ODA fails and the reader is online capable."""
    SWITCH_IF_ODA_FAILS: Final = Bit(0, 0x10)
    """Byte 1 bit 5: switch interface if ODA fails and the reader supports contact."""
    ONLINE_IF_EXPIRED: Final = Bit(0, 0x08)
    """Byte 1 bit 4: go online if the application expired."""
    SWITCH_FOR_CASH: Final = Bit(0, 0x04)
    """Byte 1 bit 3: switch interface for cash transactions."""
    SWITCH_FOR_CASHBACK: Final = Bit(0, 0x02)
    """Byte 1 bit 2: switch interface for cashback transactions."""
    CDCVM_PERFORMED: Final = Bit(1, 0x80)
    """Byte 2 bit 8: consumer device CVM performed."""
    ISSUER_UPDATE: Final = Bit(1, 0x40)
    """Byte 2 bit 7: card supports issuer update processing at the POS."""


class AIP:
    """Application Interchange Profile (82), Book 3 Annex C1 and Book C-2 Annex A."""

    SDA: Final = Bit(0, 0x40)
    """Byte 1 bit 7: SDA supported."""
    DDA: Final = Bit(0, 0x20)
    """Byte 1 bit 6: DDA supported."""
    CARDHOLDER_VERIFICATION: Final = Bit(0, 0x10)
    """Byte 1 bit 5: cardholder verification is supported."""
    TERMINAL_RISK_MANAGEMENT: Final = Bit(0, 0x08)
    """Byte 1 bit 4: terminal risk management is to be performed."""
    ISSUER_AUTHENTICATION: Final = Bit(0, 0x04)
    """Byte 1 bit 3: issuer authentication is supported."""
    ON_DEVICE_CVM: Final = Bit(0, 0x02)
    """Byte 1 bit 2: on device cardholder verification supported (kernel 2)."""
    CDA: Final = Bit(0, 0x01)
    """Byte 1 bit 1: CDA supported."""
    EMV_MODE: Final = Bit(1, 0x80)
    """Byte 2 bit 8: EMV mode supported (kernel 2; mag-stripe mode otherwise)."""
    RELAY_RESISTANCE: Final = Bit(1, 0x01)
    """Byte 2 bit 1: relay resistance protocol supported (kernel 2)."""
