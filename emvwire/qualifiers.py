"""The bits of the qualifier data objects that cards and terminals test, by name.

Each bit is a :class:`Bit` (byte index from 0, mask), as the specifications number
them from byte 1, bit 8 down to bit 1:

- :class:`TTQ`: Terminal Transaction Qualifiers, 9F66 (EMV Book C-3 Annex A; Book B
  §3.1.1 sets byte 2 bits 8 and 7 at pre-processing);
- :class:`CTQ`: Card Transaction Qualifiers, 9F6C (Book C-3 Annex A);
- :class:`ECRC`: Enhanced Contactless Reader Capabilities, 9F6E of kernel 4 (American
  Express, Book C-4 v2.10 §4.3.4 Table 4-4, as the public emv-utils decoder of Leon
  Lynch transcribes it);
- :class:`AIP`: Application Interchange Profile, 82 (Book 3 Annex C1; Book C-2 Annex
  A adds the kernel 2 bits of byte 1 bit 2 and byte 2 bit 1);
- :data:`TVR_BITS`: Terminal Verification Results, 95, by the names outcomes report
  (Book 3 Annex C5; byte 5 bits 4-3 after Book C-2 Annex A).

The card software sets these bits and the kernels test them with the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple

__all__ = ["AIP", "CTQ", "ECRC", "TTQ", "TVR_BITS", "Bit", "is_set"]


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


class ECRC:
    """Enhanced Contactless Reader Capabilities (9F6E, kernel 4), Book C-4 Table 4-4."""

    CONTACT: Final = Bit(0, 0x80)
    """Byte 1 bit 8: contact mode supported."""
    MAG_STRIPE_MODE: Final = Bit(0, 0x40)
    """Byte 1 bit 7: contactless mag-stripe mode supported."""
    FULL_ONLINE_MODE: Final = Bit(0, 0x20)
    """Byte 1 bit 6: contactless EMV full online mode (legacy, must be clear)."""
    PARTIAL_ONLINE_MODE: Final = Bit(0, 0x10)
    """Byte 1 bit 5: contactless EMV partial online mode supported."""
    MOBILE: Final = Bit(0, 0x08)
    """Byte 1 bit 4: contactless mobile supported."""
    TRY_ANOTHER_INTERFACE: Final = Bit(0, 0x04)
    """Byte 1 bit 3: try another interface after a decline."""
    MOBILE_CVM: Final = Bit(1, 0x80)
    """Byte 2 bit 8: mobile CVM supported."""
    ONLINE_PIN: Final = Bit(1, 0x40)
    """Byte 2 bit 7: online PIN supported."""
    SIGNATURE: Final = Bit(1, 0x20)
    """Byte 2 bit 6: signature supported."""
    OFFLINE_PIN: Final = Bit(1, 0x10)
    """Byte 2 bit 5: plaintext offline PIN supported."""
    OFFLINE_ONLY: Final = Bit(2, 0x80)
    """Byte 3 bit 8: the reader is offline only."""
    CVM_REQUIRED: Final = Bit(2, 0x40)
    """Byte 3 bit 7: CVM required (the amount is at or above the CVM required limit)."""
    EXEMPT_FROM_NO_CVM: Final = Bit(3, 0x80)
    """Byte 4 bit 8: terminal exempt from no-CVM checks."""
    DELAYED_AUTHORISATION: Final = Bit(3, 0x40)
    """Byte 4 bit 7: delayed authorisation terminal."""
    TRANSIT: Final = Bit(3, 0x20)
    """Byte 4 bit 6: transit terminal."""
    KERNEL_VERSION_MASK: Final = 0x07
    """Byte 4 bits 3-1: the C-4 kernel version (1: 2.2-2.3, 2: 2.4-2.6, 3: 2.7)."""


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


#: Terminal Verification Results (95), Book 3 Annex C5, with the relay resistance bits
#: of byte 5 from Book C-2 Annex A: name -> bit. The names are those that outcomes and
#: traces report.
TVR_BITS: Final[Mapping[str, Bit]] = {
    "oda_not_performed": Bit(0, 0x80),
    "sda_failed": Bit(0, 0x40),
    "icc_data_missing": Bit(0, 0x20),
    "card_on_exception_file": Bit(0, 0x10),
    "dda_failed": Bit(0, 0x08),
    "cda_failed": Bit(0, 0x04),
    "different_application_versions": Bit(1, 0x80),
    "expired_application": Bit(1, 0x40),
    "application_not_yet_effective": Bit(1, 0x20),
    "service_not_allowed": Bit(1, 0x10),
    "new_card": Bit(1, 0x08),
    "cardholder_verification_failed": Bit(2, 0x80),
    "unrecognised_cvm": Bit(2, 0x40),
    "pin_try_limit_exceeded": Bit(2, 0x20),
    "pin_pad_missing": Bit(2, 0x10),
    "pin_not_entered": Bit(2, 0x08),
    "online_pin_entered": Bit(2, 0x04),
    "floor_limit_exceeded": Bit(3, 0x80),
    "lower_consecutive_offline_limit_exceeded": Bit(3, 0x40),
    "upper_consecutive_offline_limit_exceeded": Bit(3, 0x20),
    "random_online_selection": Bit(3, 0x10),
    "merchant_forced_online": Bit(3, 0x08),
    "default_tdol_used": Bit(4, 0x80),
    "issuer_authentication_failed": Bit(4, 0x40),
    "script_failed_before_final_gen_ac": Bit(4, 0x20),
    "script_failed_after_final_gen_ac": Bit(4, 0x10),
    "relay_resistance_threshold_exceeded": Bit(4, 0x08),
    "relay_resistance_time_limits_exceeded": Bit(4, 0x04),
}
