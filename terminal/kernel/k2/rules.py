"""The decisions of Mastercard kernel 2, as pure functions (EMV Book C-2, Book 3 §10).

Everything here is bytes and numbers in, a decision out, with no card and no clock,
so each rule is tested on its own and :mod:`terminal.kernel.k2.flow` only sequences
them:

- the bits of the Kernel Configuration ``DF811B`` and of the Terminal Verification
  Results (Book 3 Annex C5; byte 5 after Book C-2), kept in a :class:`Tvr` (the AIP's
  are :class:`emvwire.qualifiers.AIP`);
- Terminal Capabilities ``9F33`` as kernel 2 builds them (Book C-2 §6.3: byte 1 the
  Card Data Input Capability ``DF8117``, byte 2 the CVM Capability ``DF8118`` or
  ``DF8119``, byte 3 the Security Capability ``DF811F``);
- processing restrictions (Book 3 §10.4: application version, Application Usage
  Control, effective and expiration dates);
- CVM selection (Book C-2 §7.5 "CVM Selection", on-device CVM first, then the CVM
  list of Book 3 §10.5 restricted to what a contactless reader can do: online PIN,
  signature, no CVM);
- terminal action analysis (Book 3 §10.7; Book C-2 §7.8 for the terminal types);
- the relay resistance protocol's timing rules (Book C-2 §5.3 and the "Relay
  Resistance Protocol" procedure: measured time, minimum, maximum with two retries,
  accuracy and transmission time mismatch thresholds);
- the brand check against card brand mixup (Basin, Sasse, Toro-Pozo, USENIX Security
  2021): the PAN must fall in an IIN range of the AID's scheme.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from emvwire.apdu import AAC, ARQC, TC
from emvwire.errors import DecodeError
from emvwire.qualifiers import AIP, TVR_BITS, is_set
from emvwire.tags import Tag
from terminal.kernel.transaction import Cvm

__all__ = [
    "BRAND_IIN_RANGES",
    "CVM_CODES",
    "KERNEL_CONFIG_BITS",
    "RRP_NOT_PERFORMED",
    "RRP_NOT_SUPPORTED",
    "RRP_PERFORMED",
    "ActionDecision",
    "CvmSelection",
    "RelayCardData",
    "RelayJudgement",
    "RelayLimits",
    "RelayVerdict",
    "Tvr",
    "action_analysis",
    "brand_consistent",
    "is_online_capable",
    "is_online_only",
    "judge_relay",
    "parse_date",
    "parse_relay_response",
    "processing_restrictions",
    "select_cvm",
    "terminal_capabilities",
]

# --- bits as data --------------------------------------------------------------------

#: Kernel Configuration ``DF811B`` byte 1 (Book C-2 Annex A): name -> mask.
KERNEL_CONFIG_BITS: Final[Mapping[str, int]] = {
    "mag_stripe_mode_not_supported": 0x80,
    "emv_mode_not_supported": 0x40,
    "on_device_cvm": 0x20,
    "relay_resistance": 0x10,
}

#: TVR byte 5 bits 2-1, "Relay resistance performed" (Book C-2 Annex A, tag 95).
RRP_NOT_SUPPORTED: Final = 0b00
RRP_NOT_PERFORMED: Final = 0b01
RRP_PERFORMED: Final = 0b10

#: CVM codes (Book 3 Annex C3 Table 39, bits 6-1 of a CV Rule's first byte) -> the
#: CVM Capability bits (Terminal Capabilities byte 2, Book 3 Annex A2) it needs.
#: Offline PIN codes (01, 03, 04, 05) are recognised but a contactless kernel 2 has no
#: VERIFY (Book C-2 §7.5), so they are never supported whatever the capability says.
CVM_CODES: Final[Mapping[int, tuple[str, int | None]]] = {
    0x00: ("fail CVM processing", 0),
    0x01: ("plaintext PIN verified by ICC", None),
    0x02: ("enciphered PIN verified online", 0x40),
    0x03: ("plaintext PIN by ICC and signature", None),
    0x04: ("enciphered PIN verified by ICC", None),
    0x05: ("enciphered PIN by ICC and signature", None),
    0x1E: ("signature", 0x20),
    0x1F: ("no CVM required", 0x08),
}
_CVM_APPLY_NEXT: Final = 0x40  # b7 of a CV Rule's first byte
_CVM_CODE_MASK: Final = 0x3F
_CVM_NONE_PERFORMED: Final = 0x3F
_CVM_RESULT_UNKNOWN: Final = 0x00
_CVM_RESULT_FAILED: Final = 0x01
_CVM_RESULT_SUCCESSFUL: Final = 0x02

#: Scheme IIN ranges by RID, six-digit inclusive bounds (the schemes' published BIN
#: ranges): Mastercard 2221-2720 and 51-55, Maestro 50 and 56-69 (Maestro shares the
#: Mastercard RID); American Express 34 and 37 (kernel 4 runs this kernel's flow). A
#: PAN of another scheme behind this RID is a brand mixup.
BRAND_IIN_RANGES: Final[Mapping[bytes, tuple[tuple[int, int], ...]]] = {
    bytes.fromhex("A000000004"): (
        (222100, 272099),
        (500000, 559999),
        (560000, 699999),
    ),
    bytes.fromhex("A000000003"): ((400000, 499999),),
    bytes.fromhex("A000000025"): ((340000, 349999), (370000, 379999)),
}


class Tvr:
    """Terminal Verification Results being built (Book 3 Annex C5, Book C-2 byte 5)."""

    __slots__ = ("_bytes",)

    def __init__(self, value: bytes = bytes(5)) -> None:
        if len(value) != 5:
            raise ValueError("the TVR is 5 bytes")
        self._bytes = bytearray(value)

    def set(self, name: str) -> None:
        """Set the bit ``name`` of :data:`TVR_BITS`."""
        index, mask = TVR_BITS[name]
        self._bytes[index] |= mask

    def has(self, name: str) -> bool:
        """Whether the bit ``name`` is set."""
        index, mask = TVR_BITS[name]
        return bool(self._bytes[index] & mask)

    def set_relay_resistance(self, state: int) -> None:
        """Byte 5 bits 2-1: :data:`RRP_NOT_PERFORMED` or :data:`RRP_PERFORMED`."""
        self._bytes[4] = (self._bytes[4] & 0xFC) | (state & 0x03)

    @property
    def relay_resistance(self) -> int:
        """Byte 5 bits 2-1."""
        return self._bytes[4] & 0x03

    @property
    def value(self) -> bytes:
        """The 5 bytes of tag 95."""
        return bytes(self._bytes)

    def names(self) -> list[str]:
        """The names of the bits set, in TVR order."""
        return [n for n, (i, m) in TVR_BITS.items() if self._bytes[i] & m]

    def __repr__(self) -> str:
        return f"Tvr({self._bytes.hex().upper()})"


# --- terminal capabilities and type ----------------------------------------------------


def terminal_capabilities(
    kernel_data: Mapping[int, bytes], *, cvm_required: bool | None, configured: bytes | None
) -> bytes:
    """Terminal Capabilities ``9F33`` as kernel 2 builds them (Book C-2 §6.3, §7.5).

    Byte 1 is the Card Data Input Capability ``DF8117`` and byte 3 the Security
    Capability ``DF811F``. Byte 2 is ``00`` until the kernel knows whether a CVM is
    required (``cvm_required`` ``None``: at activation, when the PDOL data are built);
    then it is the CVM Capability for this amount: ``DF8118`` when a CVM is required,
    else ``DF8119``. Without ``DF8117`` and ``DF811F`` in the kernel data the
    ``configured`` 9F33 is used, with byte 2 replaced in the same way when the CVM
    capability is configured.
    """
    cvm_cap = b""
    if cvm_required is not None:
        cvm_cap = kernel_data.get(
            Tag.CVM_CAPABILITY_CVM_REQUIRED if cvm_required else Tag.CVM_CAPABILITY_NO_CVM_REQUIRED,
            b"",
        )[:1]
    if Tag.CARD_DATA_INPUT_CAPABILITY in kernel_data and Tag.SECURITY_CAPABILITY in kernel_data:
        first = kernel_data[Tag.CARD_DATA_INPUT_CAPABILITY][:1] or b"\x00"
        third = kernel_data[Tag.SECURITY_CAPABILITY][:1] or b"\x00"
        return first + (cvm_cap or b"\x00") + third
    base = bytearray(configured if configured and len(configured) == 3 else bytes(3))
    if cvm_required is None and (
        Tag.CVM_CAPABILITY_CVM_REQUIRED in kernel_data
        or Tag.CVM_CAPABILITY_NO_CVM_REQUIRED in kernel_data
    ):
        base[1] = 0x00
    elif cvm_cap:
        base[1] = cvm_cap[0]
    return bytes(base)


def _terminal_kind(terminal_type: bytes) -> int:
    """The second digit of Terminal Type ``9F35`` (Book 4 Annex A1): 1-6, 0 if absent."""
    return terminal_type[0] & 0x0F if terminal_type else 0


def is_online_only(terminal_type: bytes) -> bool:
    """Terminal type ``x1`` or ``x4``: online only (Book 4 Annex A1)."""
    return _terminal_kind(terminal_type) in (1, 4)


def is_online_capable(terminal_type: bytes) -> bool:
    """Terminal type ``x1``, ``x2``, ``x4`` or ``x5``; an absent type counts as capable."""
    return _terminal_kind(terminal_type) not in (3, 6)


def _unattended(terminal_type: bytes) -> bool:
    return _terminal_kind(terminal_type) in (4, 5, 6)


# --- processing restrictions -----------------------------------------------------------


def parse_date(value: bytes) -> date | None:
    """A YYMMDD date (format n 6), YY 00-49 as 20YY and 50-99 as 19YY (Book 3 §5.4
    note on years); ``None`` if the value is not a valid date."""
    text = value.hex()
    if len(value) != 3 or not text.isdigit():
        return None
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    try:
        return date(2000 + yy if yy < 50 else 1900 + yy, mm, dd)
    except ValueError:
        return None


_CASH_TYPES: Final = frozenset({0x01, 0x17})
_CASHBACK_TYPE: Final = 0x09
_REFUND_TYPE: Final = 0x20


def processing_restrictions(
    card: Mapping[int, bytes],
    *,
    terminal_version: bytes | None,
    terminal_country: bytes | None,
    terminal_type: bytes,
    additional_capabilities: bytes | None,
    transaction_type: int,
    other_amount: int,
    today: date,
) -> list[str]:
    """The TVR bits set by processing restrictions (Book 3 §10.4), by name.

    - §10.4.1: Application Version Number ``9F08`` (card) differs from ``9F09``
      (terminal), both present: ``different_application_versions``;
    - §10.4.2: Application Usage Control ``9F07``: not valid at this kind of terminal
      (ATM or not), or not valid for this transaction type domestically or abroad
      (issuer country ``5F28`` against terminal country ``9F1A``), or cashback not
      allowed: ``service_not_allowed``. A purchase passes when goods or services are
      allowed (the terminal cannot tell which it is);
    - §10.4.3: Application Effective Date ``5F25`` after today:
      ``application_not_yet_effective``; Application Expiration Date ``5F24`` before
      today: ``expired_application``. A date that is not a date counts as failing.
    """
    out: list[str] = []
    card_version = card.get(Tag.CARD_APPLICATION_VERSION)
    if card_version is not None and terminal_version and card_version != terminal_version:
        out.append("different_application_versions")
    auc = card.get(Tag.APPLICATION_USAGE_CONTROL)
    if auc is not None and not _auc_allows(
        auc,
        issuer_country=card.get(Tag.ISSUER_COUNTRY_CODE),
        terminal_country=terminal_country,
        terminal_type=terminal_type,
        additional_capabilities=additional_capabilities,
        transaction_type=transaction_type,
        other_amount=other_amount,
    ):
        out.append("service_not_allowed")
    effective = card.get(Tag.EFFECTIVE_DATE)
    if effective is not None:
        when = parse_date(effective)
        if when is None or when > today:
            out.append("application_not_yet_effective")
    expiry = card.get(Tag.EXPIRATION_DATE)
    if expiry is not None:
        when = parse_date(expiry)
        if when is None or when < today:
            out.append("expired_application")
    return out


def _auc_allows(
    auc: bytes,
    *,
    issuer_country: bytes | None,
    terminal_country: bytes | None,
    terminal_type: bytes,
    additional_capabilities: bytes | None,
    transaction_type: int,
    other_amount: int,
) -> bool:
    """Book 3 §10.4.2, Application Usage Control (Annex C2 bits)."""
    if len(auc) < 2:
        return False
    b1, b2 = auc[0], auc[1]
    # An ATM: terminal type 14, 15 or 16 with "cash" in Additional Terminal
    # Capabilities byte 1 (Book 4 Annex A1, A3).
    cash_capable = bool(additional_capabilities and additional_capabilities[0] & 0x80)
    atm = terminal_type[:1] in (b"\x14", b"\x15", b"\x16") and cash_capable
    if not b1 & (0x02 if atm else 0x01):
        return False
    if issuer_country is None or terminal_country is None:
        return True
    domestic = issuer_country == terminal_country
    if transaction_type in _CASH_TYPES:
        return bool(b1 & (0x80 if domestic else 0x40))
    if transaction_type == _REFUND_TYPE:
        return True
    if not b1 & ((0x20 | 0x08) if domestic else (0x10 | 0x04)):
        return False
    if transaction_type == _CASHBACK_TYPE or other_amount > 0:
        return bool(b2 & (0x80 if domestic else 0x40))
    return True


# --- CVM selection ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CvmSelection:
    """What CVM selection decided: the CVM, CVM Results ``9F34``, TVR bits, receipt."""

    cvm: Cvm
    results: bytes
    tvr: tuple[str, ...] = ()
    receipt: bool = False
    reason: str = ""


def _condition_met(
    condition: int,
    code: int,
    *,
    capability: int,
    amount: int,
    other_amount: int,
    transaction_type: int,
    same_currency: bool,
    x: int,
    y: int,
    unattended: bool,
) -> bool:
    """CVM condition codes (Book 3 Annex C3 Table 40)."""
    cash = transaction_type in _CASH_TYPES
    cashback = transaction_type == _CASHBACK_TYPE or other_amount > 0
    if condition == 0x00:
        return True
    if condition == 0x01:
        return cash and unattended
    if condition == 0x02:
        return not cash and not cashback
    if condition == 0x03:
        return _cvm_supported(code, capability)
    if condition == 0x04:
        return cash and not unattended
    if condition == 0x05:
        return cashback
    if condition == 0x06:
        return same_currency and amount < x
    if condition == 0x07:
        return same_currency and amount > x
    if condition == 0x08:
        return same_currency and amount < y
    if condition == 0x09:
        return same_currency and amount > y
    return False  # RFU or proprietary conditions are not satisfied


def _cvm_supported(code: int, capability: int) -> bool:
    entry = CVM_CODES.get(code)
    if entry is None or entry[1] is None:
        return False
    needed = entry[1]
    return needed == 0 or bool(capability & needed)


def select_cvm(
    *,
    aip: bytes,
    kernel_config: int,
    cvm_list: bytes | None,
    cvm_required: bool,
    capability: int,
    amount: int,
    other_amount: int,
    transaction_type: int,
    transaction_currency: bytes,
    application_currency: bytes | None,
    terminal_type: bytes,
) -> CvmSelection:
    """CVM selection of kernel 2 (Book C-2 §7.5; Book 3 §10.5 for the CVM list).

    1. On-device CVM, when both the AIP (byte 1 bit 2) and the Kernel Configuration
       (``DF811B`` bit 6) support it: above the CVM required limit the device has
       verified the cardholder (CVM Results ``01 00 02``, outcome "confirmation code
       verified"), else no CVM (``3F 00 02``).
    2. The card does not support cardholder verification (AIP byte 1 bit 5): no CVM,
       ``3F 00 00``.
    3. No CVM list, or one without rules: no CVM, ``3F 00 00``, "ICC data missing".
    4. The CVM list, rule by rule: a rule applies when its condition is met; a CVM
       this reader supports (``capability``, the CVM Capability byte for this amount)
       ends selection: online PIN (``9F34`` result unknown, TVR "online PIN
       entered"), signature (result unknown, receipt), no CVM (successful);
       "fail CVM processing" fails. An unrecognised code sets "unrecognised CVM". A
       failed or unsupported CVM goes on to the next rule only if the rule's bit 7 says
       so; else, and at the end of the list, cardholder verification failed
       (``3F 00 01`` unless a failing rule is recorded, TVR byte 3 bit 8).

    CVM Results byte 1 holds the CVM code (bits 6-1), as the public Mastercard
    transcripts record it.
    """
    if is_set(aip, AIP.ON_DEVICE_CVM) and kernel_config & KERNEL_CONFIG_BITS["on_device_cvm"]:
        if cvm_required:
            return CvmSelection(Cvm.CDCVM, b"\x01\x00\x02", reason="on-device CVM")
        return CvmSelection(Cvm.NO_CVM, b"\x3f\x00\x02", reason="on-device CVM not needed")
    if not is_set(aip, AIP.CARDHOLDER_VERIFICATION):
        return CvmSelection(Cvm.NO_CVM, b"\x3f\x00\x00", reason="card supports no CVM")
    if cvm_list is None or len(cvm_list) < 10:
        return CvmSelection(
            Cvm.NO_CVM, b"\x3f\x00\x00", ("icc_data_missing",), reason="no CVM list"
        )
    x = int.from_bytes(cvm_list[0:4], "big")
    y = int.from_bytes(cvm_list[4:8], "big")
    same_currency = application_currency is not None and application_currency == (
        transaction_currency
    )
    unattended = _unattended(terminal_type)
    rules = cvm_list[8:]
    tvr: list[str] = []
    failed_rule: bytes | None = None
    for pos in range(0, len(rules) - 1, 2):
        rule, condition = rules[pos], rules[pos + 1]
        code = rule & _CVM_CODE_MASK
        if not _condition_met(
            condition,
            code,
            capability=capability,
            amount=amount,
            other_amount=other_amount,
            transaction_type=transaction_type,
            same_currency=same_currency,
            x=x,
            y=y,
            unattended=unattended,
        ):
            continue
        if code not in CVM_CODES:
            if "unrecognised_cvm" not in tvr:
                tvr.append("unrecognised_cvm")
        elif code == 0x00:
            failed_rule = bytes((code, condition, _CVM_RESULT_FAILED))
        elif _cvm_supported(code, capability):
            if code == 0x02:
                results = bytes((code, condition, _CVM_RESULT_UNKNOWN))
                return CvmSelection(
                    Cvm.ONLINE_PIN, results, (*tvr, "online_pin_entered"), reason="online PIN"
                )
            if code == 0x1E:
                results = bytes((code, condition, _CVM_RESULT_UNKNOWN))
                return CvmSelection(
                    Cvm.SIGNATURE, results, tuple(tvr), receipt=True, reason="signature"
                )
            results = bytes((code, condition, _CVM_RESULT_SUCCESSFUL))
            return CvmSelection(Cvm.NO_CVM, results, tuple(tvr), reason="no CVM required")
        if not rule & _CVM_APPLY_NEXT:
            break
    results = failed_rule or bytes((_CVM_NONE_PERFORMED, 0x00, _CVM_RESULT_FAILED))
    return CvmSelection(
        Cvm.NO_CVM,
        results,
        (*tvr, "cardholder_verification_failed"),
        reason="cardholder verification failed",
    )


# --- terminal action analysis ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionDecision:
    """The AC type to ask for (:data:`~emvwire.apdu.AAC`, :data:`~emvwire.apdu.TC`,
    :data:`~emvwire.apdu.ARQC`) and why."""

    ac_type: int
    reason: str


_ALL_ONES: Final = b"\xff" * 5


def _hits(tvr: bytes, tac: bytes | None, iac: bytes | None, iac_default: bytes) -> bool:
    t = (tac or bytes(5)).ljust(5, b"\x00")[:5]
    i = (iac if iac is not None else iac_default).ljust(5, b"\x00")[:5]
    return any(v & (a | b) for v, a, b in zip(tvr, t, i, strict=True))


def action_analysis(
    tvr: bytes,
    *,
    tac_denial: bytes | None,
    tac_online: bytes | None,
    tac_default: bytes | None,
    iac_denial: bytes | None,
    iac_online: bytes | None,
    iac_default: bytes | None,
    terminal_type: bytes,
    transaction_type: int,
) -> ActionDecision:
    """Terminal action analysis (Book 3 §10.7; Book C-2 §7.8).

    A refund asks for an AAC (Book C-2). Then, in order: a TVR bit in Terminal or
    Issuer Action Code - Denial: AAC; an online-only terminal (type ``x1``/``x4``):
    ARQC; an online-capable terminal: ARQC when a TVR bit is in the Action Codes -
    Online, else TC; an offline-only terminal: AAC when a TVR bit is in the Action
    Codes - Default, else TC. An absent IAC - Denial counts as all zeros, an absent
    IAC - Online or - Default as all ones (Book 3 §10.7).
    """
    if transaction_type == _REFUND_TYPE:
        return ActionDecision(AAC, "refund")
    if _hits(tvr, tac_denial, iac_denial, bytes(5)):
        return ActionDecision(AAC, "denial action codes")
    if is_online_only(terminal_type):
        return ActionDecision(ARQC, "online-only terminal")
    if is_online_capable(terminal_type):
        if _hits(tvr, tac_online, iac_online, _ALL_ONES):
            return ActionDecision(ARQC, "online action codes")
        return ActionDecision(TC, "no online action code matched")
    if _hits(tvr, tac_default, iac_default, _ALL_ONES):
        return ActionDecision(AAC, "default action codes (offline-only terminal)")
    return ActionDecision(TC, "no default action code matched (offline-only terminal)")


# --- relay resistance ------------------------------------------------------------------


def _u16(data: Mapping[int, bytes], tag: int, default: int) -> int:
    value = data.get(tag)
    return int.from_bytes(value, "big") if value else default


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The reader's relay resistance parameters (Book C-2 Annex A), in 100 us units
    except ``mismatch_threshold`` (a percentage).

    Defaults are the figures of two public kernel 2 configurations (the relay
    resistance entries of terminal/kernel/default_config.json say the same).
    """

    min_grace: int = 20  # DF8132 Minimum Relay Resistance Grace Period
    max_grace: int = 50  # DF8133 Maximum Relay Resistance Grace Period
    capdu_time: int = 18  # DF8134 Terminal Expected Transmission Time For RR C-APDU
    rapdu_time: int = 24  # DF8135 Terminal Expected Transmission Time For RR R-APDU
    accuracy_threshold: int = 300  # DF8136 Relay Resistance Accuracy Threshold
    mismatch_threshold: int = 50  # DF8137 RR Transmission Time Mismatch Threshold (%)

    @classmethod
    def from_kernel_data(cls, data: Mapping[int, bytes]) -> RelayLimits:
        """The limits of the combination's kernel data, defaults where absent."""
        d = cls()
        return cls(
            min_grace=_u16(data, Tag.MIN_RELAY_RESISTANCE_GRACE_PERIOD, d.min_grace),
            max_grace=_u16(data, Tag.MAX_RELAY_RESISTANCE_GRACE_PERIOD, d.max_grace),
            capdu_time=_u16(data, Tag.TERMINAL_EXPECTED_TRANSMISSION_TIME_C_APDU, d.capdu_time),
            rapdu_time=_u16(data, Tag.TERMINAL_EXPECTED_TRANSMISSION_TIME_R_APDU, d.rapdu_time),
            accuracy_threshold=_u16(
                data, Tag.RELAY_RESISTANCE_ACCURACY_THRESHOLD, d.accuracy_threshold
            ),
            mismatch_threshold=_u16(
                data,
                Tag.RELAY_RESISTANCE_TRANSMISSION_TIME_MISMATCH_THRESHOLD,
                d.mismatch_threshold,
            ),
        )


@dataclass(frozen=True, slots=True)
class RelayCardData:
    """The card's answer to EXCHANGE RELAY RESISTANCE DATA (Book C-2 §5.3)."""

    device_entropy: bytes  # DF8302
    min_time: int  # DF8303, 100 us units
    max_time: int  # DF8304
    estimated_time: int  # DF8305 Device Estimated Transmission Time For RR R-APDU

    def data_objects(self) -> dict[int, bytes]:
        """The four values as data objects for the kernel's data store."""
        return {
            Tag.DEVICE_RELAY_RESISTANCE_ENTROPY: self.device_entropy,
            Tag.MIN_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: self.min_time.to_bytes(2, "big"),
            Tag.MAX_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: self.max_time.to_bytes(2, "big"),
            Tag.DEVICE_ESTIMATED_TRANSMISSION_TIME_R_APDU: self.estimated_time.to_bytes(2, "big"),
        }


def parse_relay_response(data: bytes) -> RelayCardData:
    """Parse the EXCHANGE RELAY RESISTANCE DATA response data (Book C-2 §5.3).

    The response is template ``80`` whose value is exactly DF8302 (4) || DF8303 (2)
    || DF8304 (2) || DF8305 (2), values run together. Anything else is a
    :class:`~emvwire.errors.DecodeError`.
    """
    if len(data) != 12 or data[0] != Tag.RESPONSE_FORMAT_1 or data[1] != 0x0A:
        raise DecodeError(
            "relay resistance response is not template 80 of 10 bytes", tag=Tag.RESPONSE_FORMAT_1
        )
    v = data[2:]
    return RelayCardData(
        v[0:4],
        int.from_bytes(v[4:6], "big"),
        int.from_bytes(v[6:8], "big"),
        int.from_bytes(v[8:10], "big"),
    )


class RelayVerdict(enum.Enum):
    """What the timing of one relay resistance exchange says."""

    ACCEPT = "accept"
    RETRY = "retry"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class RelayJudgement:
    """The verdict with the Measured Relay Resistance Processing Time (DF8306) and the
    TVR bits to set when it passes."""

    verdict: RelayVerdict
    measured: int
    tvr: tuple[str, ...] = field(default_factory=tuple)


#: Retries after the first exchange (Book C-2: RRP Counter < 2 allows another).
RELAY_RETRIES: Final = 2


def judge_relay(
    elapsed_us: int, card: RelayCardData, limits: RelayLimits, retries_done: int
) -> RelayJudgement:
    """Apply Book C-2's relay resistance timing rules to one exchange.

    ``elapsed_us`` is the time from sending the C-APDU to receiving the R-APDU.
    Measured = max(0, elapsed/100 us - DF8134 - min(DF8305, DF8135)).

    - Measured < max(0, DF8303 - DF8132): the card answered faster than it can
      process: :attr:`RelayVerdict.ABORT`.
    - Measured > DF8304 + DF8133 with fewer than two retries done: :attr:`~RelayVerdict.RETRY` with
      new entropy; after two retries it passes with "relay resistance time limits
      exceeded".
    - "Relay resistance threshold exceeded" when DF8305 and DF8135 are both non-zero
      and either ratio x 100 is below DF8137, or max(0, measured - DF8303) > DF8136.
    """
    measured = max(
        0, elapsed_us // 100 - limits.capdu_time - min(card.estimated_time, limits.rapdu_time)
    )
    if measured < max(0, card.min_time - limits.min_grace):
        return RelayJudgement(RelayVerdict.ABORT, measured)
    too_slow = measured > card.max_time + limits.max_grace
    if too_slow and retries_done < RELAY_RETRIES:
        return RelayJudgement(RelayVerdict.RETRY, measured)
    tvr: list[str] = []
    if too_slow:
        tvr.append("relay_resistance_time_limits_exceeded")
    est, exp = card.estimated_time, limits.rapdu_time
    mismatch = (
        est != 0
        and exp != 0
        and (
            est * 100 // exp < limits.mismatch_threshold
            or exp * 100 // est < limits.mismatch_threshold
        )
    )
    if mismatch or max(0, measured - card.min_time) > limits.accuracy_threshold:
        tvr.append("relay_resistance_threshold_exceeded")
    return RelayJudgement(RelayVerdict.ACCEPT, measured, tuple(tvr))


# --- brand ------------------------------------------------------------------------------


def brand_consistent(rid: bytes, pan: str) -> bool:
    """Whether ``pan`` (digits) falls in an IIN range of the scheme of ``rid``.

    A RID without ranges in :data:`BRAND_IIN_RANGES` is not checked (``True``). A PAN
    under six digits is inconsistent.
    """
    ranges = BRAND_IIN_RANGES.get(bytes(rid[:5]))
    if ranges is None:
        return True
    if len(pan) < 6 or not pan[:6].isdigit():
        return False
    iin = int(pan[:6])
    return any(lo <= iin <= hi for lo, hi in ranges)
