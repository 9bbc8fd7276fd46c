"""A transaction request and what a kernel gives back (EMV Book A §5-§6, Book B §3).

:class:`Transaction` is what the payment application asks for: an amount in minor
units (9F02), an other amount (9F03, cashback), a currency (5F2A, the terminal's by
default), a transaction type (9C) and a date and time (9A, 9F21). It lives in
:mod:`terminal.kernel.request`, apart from the results and outcomes, so that a card
reading (:mod:`terminal.kernel.reading`) loads the request alone.

:class:`TransactionResult` is what comes back from the entry point once the kernel
has reached its outcome: the :class:`~terminal.kernel.outcome.Outcome` with its
parameter set (DF8129), the user interface requests shown, in order, the kernel and
application used, and for the acquirer the **authorisation data**: one BER-TLV blob of
the data objects ISO 8583 field 55 carries (:data:`emvwire.tags.FIELD_55_TAGS`). Track 2
equivalent data (57) is kept apart because it is sensitive; the PAN is only ever held
masked, and a card is identified by :func:`emvwire.cardref.card_reference`, a keyed hash that is not
the PAN (the practice of open-loop transit).

Every ``repr`` is masked: no PAN, track 2, cryptogram or field 55 content reaches a
log through it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from emvwire.cardref import card_reference
from emvwire.errors import DecodeError
from emvwire.mask import mask_pan, mask_track2
from emvwire.tags import FIELD_55_TAGS, Tag
from emvwire.tlv import decode as tlv_decode
from emvwire.tlv import encode_length, tag_bytes, tag_hex
from terminal.kernel.config import TerminalConfig
from terminal.kernel.outcome import (
    CvmOutcome,
    Outcome,
    OutcomeParameters,
    Start,
    Status,
    UiMessage,
    UiRequest,
)
from terminal.kernel.request import Transaction, bcd

__all__ = [
    "DEFAULT_UI",
    "Cvm",
    "OdaResult",
    "Transaction",
    "TransactionResult",
    "authorisation_data",
    "bcd",
    "build_result",
]


class Cvm(enum.Enum):
    """The cardholder verification performed or asked for (Book A §6.2 byte 4, with
    the consumer device CVM of Book C-3 split out)."""

    NO_CVM = "no CVM"
    SIGNATURE = "signature"
    ONLINE_PIN = "online PIN"
    CDCVM = "consumer device CVM"
    NOT_DETERMINED = "not determined"

    @property
    def outcome_cvm(self) -> CvmOutcome:
        """The CVM field of the outcome parameter set (CDCVM: confirmation code verified)."""
        return _CVM_OUTCOME[self]


_CVM_OUTCOME: Final = {
    Cvm.NO_CVM: CvmOutcome.NO_CVM,
    Cvm.SIGNATURE: CvmOutcome.SIGNATURE,
    Cvm.ONLINE_PIN: CvmOutcome.ONLINE_PIN,
    Cvm.CDCVM: CvmOutcome.CONFIRMATION_CODE_VERIFIED,
    Cvm.NOT_DETERMINED: CvmOutcome.NA,
}


class OdaResult(enum.Enum):
    """Offline data authentication: not done, passed or failed (TVR byte 1)."""

    NOT_PERFORMED = "not performed"
    PASSED = "passed"
    FAILED = "failed"


_TAG_BYTES: Final = {t: tag_bytes(t) for t in FIELD_55_TAGS}


def authorisation_data(values: Mapping[int, bytes], tags: Iterable[int] = FIELD_55_TAGS) -> bytes:
    """The TLV blob of field 55: each of ``tags`` that ``values`` holds, in that order."""
    out = bytearray()
    for t in tags:
        value = values.get(t)
        if value is None:
            continue
        head = _TAG_BYTES.get(t) or tag_bytes(t)
        n = len(value)
        out += head + (bytes((n,)) if n < 0x80 else encode_length(n)) + value
    return bytes(out)


#: The message each outcome shows by default, and the reader status with it (Book A
#: §9.4 messages; Book C-3 / C-2 outcome tables).
DEFAULT_UI: Final[Mapping[Outcome, tuple[UiMessage, Status]]] = {
    Outcome.APPROVED: (UiMessage.APPROVED, Status.CARD_READ_SUCCESSFULLY),
    Outcome.DECLINED: (UiMessage.NOT_AUTHORISED, Status.CARD_READ_SUCCESSFULLY),
    Outcome.ONLINE_REQUEST: (UiMessage.AUTHORISING, Status.CARD_READ_SUCCESSFULLY),
    Outcome.END_APPLICATION: (UiMessage.INSERT_SWIPE_OR_TRY_ANOTHER_CARD, Status.READY_TO_READ),
    Outcome.SELECT_NEXT: (UiMessage.NA, Status.NA),
    Outcome.TRY_ANOTHER_INTERFACE: (UiMessage.INSERT_OR_SWIPE, Status.READY_TO_READ),
    Outcome.TRY_AGAIN: (UiMessage.PRESENT_CARD_AGAIN, Status.READY_TO_READ),
    Outcome.NA: (UiMessage.NA, Status.NA),
}


@dataclass(slots=True)
class TransactionResult:
    """The end of one transaction (module docstring).

    ``authorisation_data`` is the field 55 blob (no PAN, no track 2); ``track2`` the
    Track 2 Equivalent Data (57) for the authorisation request's field 35, kept apart
    and never shown unmasked; ``masked_pan`` the PAN or token as it may be displayed;
    ``card_reference`` the keyed hash of :func:`emvwire.cardref.card_reference`.
    ``timings_ms`` holds the time of each step (``select_ppse``, ``select_aid``,
    ``gpo``, ``read_records``, ``oda``, ``card`` for the time spent waiting for the
    card, ``total``).
    ``data`` holds every data object the kernel gathered (terminal and card side)
    for an application that needs more (a receipt); it is never shown by ``repr``.
    """

    outcome: Outcome
    parameters: OutcomeParameters
    ui: list[UiRequest] = field(default_factory=list)
    kernel: str = ""
    kernel_id: bytes = b""
    aid: bytes = b""
    label: str = ""
    authorisation_data: bytes = field(default=b"", repr=False)
    track2: bytes = field(default=b"", repr=False)
    masked_pan: str = ""
    token: bool = False
    card_reference: str = ""
    cvm: Cvm = Cvm.NOT_DETERMINED
    oda: OdaResult = OdaResult.NOT_PERFORMED
    oda_method: str = ""
    tvr: bytes = bytes(5)
    timings_ms: dict[str, float] = field(default_factory=dict)
    apdu_count: int = 0
    reasons: tuple[str, ...] = ()
    data: dict[int, bytes] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        app = f", {self.aid.hex().upper()}" if self.aid else ""
        pan = f", {self.masked_pan}" if self.masked_pan else ""
        why = f", reasons={list(self.reasons)!r}" if self.reasons else ""
        return (
            f"TransactionResult({self.outcome.label}{app}{pan}, cvm={self.cvm.value}, "
            f"oda={self.oda.value}, {self.apdu_count} APDUs{why})"
        )

    __str__ = __repr__

    @property
    def online_pin_required(self) -> bool:
        """Whether the application must ask for an online PIN before going online."""
        return self.outcome is Outcome.ONLINE_REQUEST and self.cvm is Cvm.ONLINE_PIN

    @property
    def signature_required(self) -> bool:
        """Whether the cardholder must sign the receipt."""
        return self.cvm is Cvm.SIGNATURE and self.outcome in (
            Outcome.APPROVED,
            Outcome.ONLINE_REQUEST,
        )

    @property
    def masked_track2(self) -> str:
        """Track 2 equivalent data as it may be shown."""
        return mask_track2(self.track2) if self.track2 else ""

    @property
    def cryptogram(self) -> bytes:
        """The application cryptogram (9F26), or ``b""``."""
        return self.data.get(Tag.APPLICATION_CRYPTOGRAM, b"")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view, masked: what ``terminal pay --json`` prints."""
        return {
            "outcome": self.outcome.label,
            "message": self.ui[-1].message.text if self.ui else "",
            "reasons": list(self.reasons),
            "kernel": self.kernel,
            "kernel_id": self.kernel_id.hex().upper(),
            "aid": self.aid.hex().upper(),
            "label": self.label,
            "pan": self.masked_pan,
            "token": self.token,
            "card_reference": self.card_reference,
            "cvm": self.cvm.value,
            "online_pin_required": self.online_pin_required,
            "oda": self.oda.value,
            "oda_method": self.oda_method,
            "tvr": self.tvr.hex().upper(),
            "outcome_parameters": self.parameters.encode().hex().upper(),
            "authorisation_data": self.authorisation_data.hex().upper(),
            "authorisation_tags": _tag_names(self.authorisation_data),
            "track2": self.masked_track2,
            "apdus": self.apdu_count,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _tag_names(blob: bytes) -> list[str]:
    try:
        return [tag_hex(t.tag) for t in tlv_decode(blob)]
    except DecodeError:
        return []


def build_result(
    outcome: Outcome,
    *,
    config: TerminalConfig,
    transaction: Transaction,
    ui: Iterable[UiRequest] = (),
    kernel: str = "",
    kernel_id: bytes = b"",
    aid: bytes = b"",
    label: str = "",
    reasons: tuple[str, ...] = (),
    data: Mapping[int, bytes] | None = None,
    cvm: Cvm = Cvm.NOT_DETERMINED,
    oda: OdaResult = OdaResult.NOT_PERFORMED,
    oda_method: str = "",
    tvr: bytes | None = None,
    field55_tvr: bytes | None = None,
    field55_tags: Iterable[int] = FIELD_55_TAGS,
    pan: str = "",
    psn: bytes | None = None,
    token: bool = False,
    message: UiMessage | None = None,
    receipt: bool = False,
    timings_ms: Mapping[str, float] | None = None,
    apdu_count: int = 0,
) -> TransactionResult:
    """Assemble a :class:`TransactionResult` with its outcome parameter set (Book A §6.2).

    The UI requests are ``ui`` (shown during the flow) followed by the outcome's
    message (``message`` or :data:`DEFAULT_UI`; "Approved, please sign" for an approval
    with signature, "Please enter your PIN" for an online request with online PIN);
    Try Again restarts at B with "Present card again" (Book A §6.2, Book C-3 outcomes),
    Select Next at C. Field 55 is built only when ``data`` holds a cryptogram (9F26).
    Its 95 is ``field55_tvr`` when given (the TVR the card's cryptogram covers), else
    ``tvr``; the result's own ``tvr`` is always the kernel's final TVR.
    """
    tvr = bytes(5) if tvr is None else bytes(tvr)
    values = dict(data or {})
    values[Tag.TVR] = tvr if field55_tvr is None else bytes(field55_tvr)
    if message is None:
        message = DEFAULT_UI[outcome][0]
        if outcome is Outcome.APPROVED and cvm is Cvm.SIGNATURE:
            message = UiMessage.APPROVED_PLEASE_SIGN
        elif outcome is Outcome.ONLINE_REQUEST and cvm is Cvm.ONLINE_PIN:
            message = UiMessage.PLEASE_ENTER_YOUR_PIN
    status = DEFAULT_UI[outcome][1]
    currency = transaction.currency or config.data(Tag.TRANSACTION_CURRENCY_CODE)
    shown: UiRequest | None = None
    restart: UiRequest | None = None
    if outcome is Outcome.TRY_AGAIN:
        restart = UiRequest(message, status, hold_time_ms=0)
    elif message is not UiMessage.NA:
        value = transaction.amount if outcome is Outcome.APPROVED else None
        shown = UiRequest(message, status, hold_time_ms=1300, value=value, currency=currency)
    start = {Outcome.TRY_AGAIN: Start.B, Outcome.SELECT_NEXT: Start.C}.get(outcome, Start.NA)
    receipt = receipt or cvm is Cvm.SIGNATURE
    parameters = OutcomeParameters(
        outcome=outcome,
        start=start,
        cvm=cvm.outcome_cvm,
        ui_on_outcome=shown,
        ui_on_restart=restart,
        data_record=outcome in (Outcome.APPROVED, Outcome.DECLINED, Outcome.ONLINE_REQUEST),
        receipt=receipt,
        alternate_interface=0x1 if outcome is Outcome.TRY_ANOTHER_INTERFACE else 0xF,
        reasons=reasons,
    )
    ui_list = list(ui) + [r for r in (shown, restart) if r is not None]
    blob = authorisation_data(values, field55_tags) if Tag.APPLICATION_CRYPTOGRAM in values else b""
    return TransactionResult(
        outcome=outcome,
        parameters=parameters,
        ui=ui_list,
        kernel=kernel,
        kernel_id=bytes(kernel_id),
        aid=bytes(aid),
        label=label,
        authorisation_data=blob,
        track2=values.get(Tag.TRACK2_EQUIVALENT, b""),
        masked_pan=mask_pan(pan) if pan else "",
        token=token,
        card_reference=card_reference(config.card_reference_key, pan, psn) if pan else "",
        cvm=cvm,
        oda=oda,
        oda_method=oda_method,
        tvr=tvr,
        timings_ms=dict(timings_ms or {}),
        apdu_count=apdu_count,
        reasons=reasons,
        data=values,
    )
