"""Outcomes and user interface requests (EMV Book A §6 and §9, Book B §3.5).

A kernel ends every transaction with exactly one :class:`Outcome`, carried with its
parameters (:class:`OutcomeParameters`, the Outcome Parameter Set DF8129 of Book A
Table 6.1) and the message the cardholder sees (:class:`UiRequest`, the User Interface
Request Data DF8116 of Book A Table 9.1/§9.4). The values are the ones of the spec so
they can be put on the wire or compared with a kernel's DF8129 byte 1.

A kernel's flow that reaches its outcome early raises :class:`FlowEndError`, which the
kernel itself catches to build its result: it never leaves the kernel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from terminal.errors import TerminalError

__all__ = [
    "CvmOutcome",
    "FlowEndError",
    "OnlineResponse",
    "Outcome",
    "OutcomeParameters",
    "Start",
    "Status",
    "UiMessage",
    "UiRequest",
    "ValueQualifier",
]


class Outcome(enum.IntEnum):
    """Outcome Parameter Set byte 1, high nibble (Book A Table 6.1)."""

    APPROVED = 0x1
    DECLINED = 0x2
    ONLINE_REQUEST = 0x3
    END_APPLICATION = 0x4
    SELECT_NEXT = 0x5
    TRY_ANOTHER_INTERFACE = 0x6
    TRY_AGAIN = 0x7
    NA = 0xF

    @property
    def label(self) -> str:
        """Lower-case words for output: ``online request``."""
        return self.name.lower().replace("_", " ")


class Start(enum.IntEnum):
    """Where the entry point restarts (Book B §3.5 start points; DF8129 byte 2)."""

    A = 0x0
    B = 0x1
    C = 0x2
    D = 0x3
    NA = 0xF


class OnlineResponse(enum.IntEnum):
    """Online Response Data of the outcome (Book A Table 6.1 byte 3, high nibble): what
    the reader passes back to the kernel at a restart after an online request."""

    EMV_DATA = 0x0
    ANY = 0x1
    NA = 0xF


class CvmOutcome(enum.IntEnum):
    """CVM of the outcome (Book A Table 6.1 byte 4, high nibble)."""

    NO_CVM = 0x0
    SIGNATURE = 0x1
    ONLINE_PIN = 0x2
    CONFIRMATION_CODE_VERIFIED = 0x3
    NA = 0xF


class UiMessage(enum.IntEnum):
    """Message identifiers of Book A §9.4 (User Interface Request Data byte 1)."""

    APPROVED = 0x03
    NOT_AUTHORISED = 0x07
    PLEASE_ENTER_YOUR_PIN = 0x09
    PROCESSING_ERROR = 0x0F
    REMOVE_CARD = 0x10
    WELCOME = 0x14
    PRESENT_CARD = 0x15
    PROCESSING = 0x16
    CARD_READ_OK = 0x17
    INSERT_OR_SWIPE = 0x18
    PRESENT_ONE_CARD_ONLY = 0x19
    APPROVED_PLEASE_SIGN = 0x1A
    AUTHORISING = 0x1B
    INSERT_SWIPE_OR_TRY_ANOTHER_CARD = 0x1C
    PLEASE_INSERT_CARD = 0x1D
    SEE_PHONE = 0x20
    PRESENT_CARD_AGAIN = 0x21
    NA = 0xFF

    @property
    def text(self) -> str:
        """The English text of the message (Book A §9.4)."""
        return _TEXT[self]


_TEXT = {
    UiMessage.APPROVED: "Approved",
    UiMessage.NOT_AUTHORISED: "Not authorised",
    UiMessage.PLEASE_ENTER_YOUR_PIN: "Please enter your PIN",
    UiMessage.PROCESSING_ERROR: "Processing error",
    UiMessage.REMOVE_CARD: "Please remove card",
    UiMessage.WELCOME: "Welcome",
    UiMessage.PRESENT_CARD: "Present card",
    UiMessage.PROCESSING: "Processing",
    UiMessage.CARD_READ_OK: "Card read OK, please remove card",
    UiMessage.INSERT_OR_SWIPE: "Please insert or swipe card",
    UiMessage.PRESENT_ONE_CARD_ONLY: "Please present one card only",
    UiMessage.APPROVED_PLEASE_SIGN: "Approved, please sign",
    UiMessage.AUTHORISING: "Authorising, please wait",
    UiMessage.INSERT_SWIPE_OR_TRY_ANOTHER_CARD: "Insert, swipe or try another card",
    UiMessage.PLEASE_INSERT_CARD: "Please insert card",
    UiMessage.SEE_PHONE: "See phone for instructions",
    UiMessage.PRESENT_CARD_AGAIN: "Present card again",
    UiMessage.NA: "",
}


class Status(enum.IntEnum):
    """Reader status of a UI request (Book A §9.2, User Interface Request Data byte 2)."""

    NOT_READY = 0x00
    IDLE = 0x01
    READY_TO_READ = 0x02
    PROCESSING = 0x03
    CARD_READ_SUCCESSFULLY = 0x04
    PROCESSING_ERROR = 0x05
    NA = 0xFF


class ValueQualifier(enum.IntEnum):
    """Value Qualifier of a UI request (Book A Table 9.1 byte 14, high nibble): what
    the value shown is, an amount (Present card with the amount to pay) or a balance
    (the card's offline balance after the transaction)."""

    NONE = 0x0
    AMOUNT = 0x1
    BALANCE = 0x2


@dataclass(frozen=True, slots=True)
class UiRequest:
    """A User Interface Request (Book A §9.4): message, status, hold time, language,
    and a value with its currency to show, qualified as an amount or a balance (Book
    A Table 9.1: ``qualifier``; ``None`` is an amount when there is a value, else
    none, :attr:`value_qualifier`)."""

    message: UiMessage
    status: Status = Status.NA
    hold_time_ms: int = 0
    language: str = ""
    value: int | None = None
    currency: bytes = b""
    qualifier: ValueQualifier | None = None

    @property
    def value_qualifier(self) -> ValueQualifier:
        """The Value Qualifier (Book A Table 9.1): as given, else amount with a value."""
        if self.qualifier is not None:
            return self.qualifier
        return ValueQualifier.NONE if self.value is None else ValueQualifier.AMOUNT

    def encode(self) -> bytes:
        """DF8116 User Interface Request Data (Book A Table 9.1, 22 bytes)."""
        hold = min(self.hold_time_ms // 100, 0xFFFFFF).to_bytes(3, "big")
        lang = self.language.encode("ascii", "replace")[:8].ljust(8, b"\x00")
        qualifier = self.value_qualifier << 4
        value = bytes.fromhex(f"{self.value or 0:012d}")  # n 12
        currency = self.currency[:2].rjust(2, b"\x00")
        return (
            bytes((self.message, self.status))
            + hold
            + lang
            + bytes((qualifier,))
            + value
            + (currency)
        )

    @classmethod
    def decode(cls, data: bytes) -> UiRequest:
        """The inverse of :meth:`encode` (DF8116, Book A Table 9.1, 22 bytes).

        An unknown message identifier, status or value qualifier is a ``ValueError``,
        as is a value that is not BCD or a length other than 22.
        """
        data = bytes(data)
        if len(data) != 22:
            raise ValueError(f"a UI request (DF8116) is 22 bytes, not {len(data)}")
        message = UiMessage(data[0])
        status = Status(data[1])
        hold = int.from_bytes(data[2:5], "big") * 100
        language = data[5:13].rstrip(b"\x00").decode("ascii", "replace")
        qualifier = ValueQualifier(data[13] >> 4)
        value: int | None = None
        if qualifier is not ValueQualifier.NONE:
            digits = data[14:20].hex()
            if not digits.isdigit():
                raise ValueError("the value of a UI request is not BCD (n 12)")
            value = int(digits)
        currency = data[20:22] if data[20:22] != b"\x00\x00" else b""
        # an amount is what a value without qualifier means: kept implicit, so that a
        # request survives encoding and decoding equal to itself
        kept = qualifier if qualifier is ValueQualifier.BALANCE else None
        return cls(message, status, hold, language, value, currency, kept)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready view: message (hex id and text), status, hold time, language,
        value, its qualifier (``amount``, ``balance`` or ``None``) and currency (hex)."""
        return {
            "message": f"{int(self.message):02X}",
            "text": self.message.text,
            "status": self.status.name.lower(),
            "hold_time_ms": self.hold_time_ms,
            "language": self.language,
            "value": self.value,
            "value_qualifier": (
                None
                if self.value_qualifier is ValueQualifier.NONE
                else self.value_qualifier.name.lower()
            ),
            "currency": self.currency.hex().upper(),
        }


@dataclass(frozen=True, slots=True)
class OutcomeParameters:
    """The Outcome Parameter Set (Book A §6.2, DF8129) in typed form."""

    outcome: Outcome
    start: Start = Start.NA
    online_response_data: bool = False
    cvm: CvmOutcome = CvmOutcome.NA
    ui_on_outcome: UiRequest | None = None
    ui_on_restart: UiRequest | None = None
    data_record: bool = False
    discretionary_data: bool = False
    receipt: bool = False
    alternate_interface: int = 0x0
    field_off_request_ms: int | None = None
    removal_timeout_ms: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)
    #: The kind of online response data (byte 3); ``None``: EMV data when
    #: ``online_response_data`` is set, else N/A.
    online_response: OnlineResponse | None = None

    @property
    def online_response_kind(self) -> OnlineResponse:
        """Byte 3 of the parameter set as an :class:`OnlineResponse`."""
        if self.online_response is not None:
            return self.online_response
        return OnlineResponse.EMV_DATA if self.online_response_data else OnlineResponse.NA

    @classmethod
    def decode(cls, data: bytes) -> OutcomeParameters:
        """The inverse of :meth:`encode`: an Outcome Parameter Set (DF8129, Book A Table
        6.1) read from 8 bytes. The UI requests are not in DF8129 (they come as DF8116):
        ``ui_on_outcome`` / ``ui_on_restart`` are left ``None`` here whatever byte 5 says
        (:func:`ui_flags` tells). A value outside the tables is a ``ValueError``.
        """
        data = bytes(data)
        if len(data) != 8:
            raise ValueError(f"an outcome parameter set (DF8129) is 8 bytes, not {len(data)}")
        online = OnlineResponse(data[2] >> 4)
        return cls(
            outcome=Outcome(data[0] >> 4),
            start=Start(data[1] >> 4),
            online_response_data=online is not OnlineResponse.NA,
            online_response=online,
            cvm=CvmOutcome(data[3] >> 4),
            data_record=bool(data[4] & 0x20),
            discretionary_data=bool(data[4] & 0x10),
            receipt=bool(data[4] & 0x08),
            alternate_interface=data[5] >> 4,
            field_off_request_ms=None if data[6] == 0xFF else data[6] * 100,
            removal_timeout_ms=data[7] * 100,
        )

    @staticmethod
    def ui_flags(data: bytes) -> tuple[bool, bool]:
        """Byte 5 bits 8 and 7 of a DF8129: UI request on outcome / on restart present."""
        return bool(data[4] & 0x80), bool(data[4] & 0x40)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready view of every parameter (Book A §6.2), with the encoded DF8129."""
        return {
            "outcome": self.outcome.label,
            "start": self.start.name if self.start is not Start.NA else None,
            "online_response_data": self.online_response_kind.name.lower(),
            "cvm": self.cvm.name.lower(),
            "ui_on_outcome": self.ui_on_outcome.to_json() if self.ui_on_outcome else None,
            "ui_on_restart": self.ui_on_restart.to_json() if self.ui_on_restart else None,
            "data_record": self.data_record,
            "discretionary_data": self.discretionary_data,
            "receipt": self.receipt,
            "alternate_interface": (
                None if self.alternate_interface == 0xF else self.alternate_interface
            ),
            "field_off_request_ms": self.field_off_request_ms,
            "removal_timeout_ms": self.removal_timeout_ms,
            "df8129": self.encode().hex().upper(),
        }

    def encode(self) -> bytes:
        """DF8129, 8 bytes (Book A Table 6.1)."""
        b1 = self.outcome << 4
        b2 = self.start << 4
        b3 = self.online_response_kind << 4
        b4 = (self.cvm << 4) & 0xF0
        b5 = (
            (0x80 if self.ui_on_outcome else 0)
            | (0x40 if self.ui_on_restart else 0)
            | (0x20 if self.data_record else 0)
            | (0x10 if self.discretionary_data else 0)
            | (0x08 if self.receipt else 0)
        )
        b6 = (self.alternate_interface << 4) & 0xF0 | 0x0F
        b7 = 0xFF if self.field_off_request_ms is None else min(self.field_off_request_ms // 100,
                                                                  0xFE)  # fmt: skip
        b8 = min(self.removal_timeout_ms // 100, 0xFF)
        return bytes((b1, b2, b3, b4, b5, b6, b7, b8))


class FlowEndError(TerminalError):
    """A kernel's flow ends here with ``outcome``, ``reason`` and, when the outcome's
    default will not do, the ``message`` shown (Book A §9.4). Raised and caught inside
    one kernel."""

    def __init__(self, outcome: Outcome, reason: str, message: UiMessage | None = None) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.message = message
