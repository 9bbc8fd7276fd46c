"""The one reader interface every driver implements, and its error tree.

A reader is what the kernel talks to (EMV Book A §5, the "PCD"): it waits for a card
in the field, exchanges APDUs with it, notices when it is gone, and can re-power it.
Drivers are chosen by a path string (see :func:`terminal.readers.open_reader`):
``pcsc:NAME-or-INDEX``, ``nfc:usb[:VID:PID]``, ``nfc:tty:PORT``, ``nfc:udp:HOST:PORT``
and ``emulated:PROFILE``.

Errors are split as nfcpy and pyscard split them: a communication failure (the card
left, the reader timed out) is apart from a protocol failure (an answer that makes no
sense, :class:`ProtocolError`). The kernel maps ``CardRemovedError`` and
``CommunicationError`` to the outcome "try again" (Book A §9.2, "present card again").

No card holds a reader hostage: every command has a deadline (``transmit``'s
``timeout``, by default the reader's :attr:`Reader.command_timeout`, itself
:data:`DEFAULT_COMMAND_TIMEOUT` unless set): a card that has not answered by then ends
the command with :class:`CardTimeoutError` (a communication error: "try again"), and
the driver resets the card, whose protocol state is then unknown (EMV Book D's
exception processing after a time-out error). After a transaction the application
switches the field off (:meth:`Reader.field_off`, Book A's removal procedure): the
card is unpowered, and the next application finds it fresh.

Also shared by every driver: :func:`complete_exchange` (the T=0 status words ``61xx``
and ``6Cxx`` followed to a final answer), the standard signals of Book A §9.3
(:data:`PROCESSING`, :data:`REMOVE`, :data:`SUCCESS`, :data:`FAILURE`, :data:`IDLE`)
and :func:`signal_outcome`, and :class:`ReaderDescription` for reader listings.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Final

from terminal.errors import TerminalError

if TYPE_CHECKING:
    import logging

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "FAILURE",
    "GET_RESPONSE_LIMIT",
    "IDLE",
    "LED_COLOURS",
    "OUTCOME_SIGNALS",
    "PROCESSING",
    "REMOVE",
    "SUCCESS",
    "CardInfo",
    "CardRemovedError",
    "CardTimeoutError",
    "CommunicationError",
    "Feedback",
    "LazyLogger",
    "NoCardError",
    "ProtocolError",
    "Reader",
    "ReaderDescription",
    "ReaderError",
    "ReaderScan",
    "ReaderUnavailableError",
    "RecordingFeedback",
    "Signal",
    "complete_exchange",
    "signal_outcome",
]


class LazyLogger:
    """A :mod:`logging` logger made at its first message: the drivers log only what
    goes wrong, so a reader's start does not pay for importing :mod:`logging` (with
    :mod:`traceback` and :mod:`string`, some 3 ms of every ``terminal read``)."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """The standard library's logger of :attr:`name`."""
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self.name)
        return self._logger

    def debug(self, message: str, *args: object) -> None:
        self.logger.debug(message, *args, stacklevel=2)

    def info(self, message: str, *args: object) -> None:
        self.logger.info(message, *args, stacklevel=2)

    def warning(self, message: str, *args: object) -> None:
        self.logger.warning(message, *args, stacklevel=2)


log = LazyLogger(__name__)


class ReaderError(TerminalError):
    """Base of every error of the reader layer (under the terminal's root)."""


class NoCardError(ReaderError):
    """No card in the field: none came before the time-out, or none is activated."""


class CommunicationError(ReaderError):
    """An exchange failed on the way (time-out, transmission error): try again."""


class CardRemovedError(CommunicationError):
    """The card left the field in the middle of an exchange."""


class CardTimeoutError(CommunicationError):
    """The card did not answer a command within its deadline (Book D time-out error)."""


class ReaderUnavailableError(ReaderError):
    """The reader is absent, busy or broken (USB time-out, unplugged, no pcscd)."""


class ProtocolError(ReaderError):
    """An answer that makes no sense: an R-APDU without status word, endless ``61xx``."""


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What the reader learnt at activation: ATR (PC/SC) and/or UID (ISO 14443-3)."""

    atr: bytes = b""
    uid: bytes = b""
    protocol: str = "ISO 14443-4"


#: The LED colours a :class:`Signal` may ask for ("orange" is red and green together).
LED_COLOURS: Final = frozenset({"green", "red", "orange", "off"})


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal shown or sounded to the cardholder (Book A §9.3 status indicators).

    ``led`` is the colour left on (``off`` for none); ``beeps`` tones of ``duration_ms``
    each, the LED blinking with them, separated by pauses of the same length.
    """

    led: str  # "green", "red", "orange", "off"
    beeps: int
    duration_ms: int

    def __post_init__(self) -> None:
        if self.led not in LED_COLOURS:
            raise ValueError(f"LED colour must be one of {sorted(LED_COLOURS)}, not {self.led!r}")
        if not 0 <= self.beeps <= 255:
            raise ValueError("beeps must be 0-255")
        if not 0 <= self.duration_ms <= 25_500:
            raise ValueError("duration_ms must be 0-25500")


# The standard signals, after EMV Contactless Book A §9.3 (status indicators and audio
# indication): a card being read, the card read and free to go, the success tone
# (one tone of about 500 ms) and the alert tone (two tones of about 200 ms with a
# 200 ms pause). A bi-colour reader LED stands in for the four status lights.
#: The reader is idle: LED off, no tone.
IDLE: Final = Signal("off", 0, 0)
#: A card is being read: keep it in the field (Book A, "processing" lights).
PROCESSING: Final = Signal("orange", 0, 0)
#: The card was read and may leave the field (a short tone; online processing goes on).
REMOVE: Final = Signal("green", 1, 200)
#: Success: approved (Book A success tone, one tone of 500 ms, green).
SUCCESS: Final = Signal("green", 1, 500)
#: Failure: declined, ended or to be tried again (Book A alert tone, two tones, red).
FAILURE: Final = Signal("red", 2, 200)

#: Outcome (EMV Contactless Book A §6.2) -> the signal given for it; ``None``: no signal
#: (Select Next goes on with the next application, the card stays in the field).
OUTCOME_SIGNALS: Final[dict[str, Signal | None]] = {
    "approved": SUCCESS,
    "online request": REMOVE,
    "declined": FAILURE,
    "end application": FAILURE,
    "try again": FAILURE,
    "try another interface": FAILURE,
    "select next": None,
}


class Feedback(abc.ABC):
    """LED and buzzer of a reader: success, failure, processing (Book A §9.3)."""

    @abc.abstractmethod
    def signal(self, signal: Signal) -> None:
        """Show/sound ``signal``; never raises (a broken LED must not fail a payment)."""


@dataclass
class RecordingFeedback(Feedback):
    """Feedback for readers without LED or buzzer: records what it would have done."""

    signals: list[Signal] = field(default_factory=list)

    def signal(self, signal: Signal) -> None:
        self.signals.append(signal)


def signal_outcome(feedback: Feedback, outcome: str) -> Signal | None:
    """Give the standard signal of a kernel outcome (:data:`OUTCOME_SIGNALS`).

    ``outcome`` is a Book A §6.2 outcome name, in any case, with spaces or underscores
    (``"APPROVED"``, ``"online_request"``). Returns the signal given (``None`` for
    Select Next). An unknown outcome is a ``ValueError``; a feedback that fails anyway
    is logged, never raised: a broken LED must not fail a payment.
    """
    key = " ".join(outcome.replace("_", " ").lower().split())
    if key not in OUTCOME_SIGNALS:
        raise ValueError(f"unknown outcome {outcome!r}; known: {sorted(OUTCOME_SIGNALS)}")
    chosen = OUTCOME_SIGNALS[key]
    if chosen is not None:
        try:
            feedback.signal(chosen)
        except Exception as exc:
            log.warning("feedback failed for outcome %s: %s", key, exc)
    return chosen


@dataclass(frozen=True, slots=True)
class ReaderDescription:
    """One reader found by :func:`terminal.readers.list_readers`.

    ``path`` is what :func:`terminal.readers.open_reader` takes; ``driver`` is ``pcsc``
    or ``nfc``; ``feedback`` says how it signals: ``acr122u`` (LED and buzzer through
    pseudo-APDUs) or ``recording`` (nothing to show: signals are recorded only).
    """

    path: str
    name: str
    driver: str
    feedback: str


@dataclass(frozen=True, slots=True)
class ReaderScan:
    """Readers found, and why a driver found none (``"pcsc: pcscd is not running"``)."""

    readers: tuple[ReaderDescription, ...]
    problems: tuple[str, ...]


#: Seconds a card has to answer one command when neither the caller nor the reader's
#: ``command_timeout`` says otherwise (the terminal configuration's default
#: ``timing.command_ms``: :class:`terminal.kernel.config.CardTiming`).
DEFAULT_COMMAND_TIMEOUT: Final = 2.0

#: Most GET RESPONSE commands that follow one C-APDU (a card that answers ``61xx``
#: for ever is a protocol failure, not a reason to loop).
GET_RESPONSE_LIMIT: Final = 64


def _with_le(c_apdu: bytes, le: int) -> bytes | None:
    """``c_apdu`` (short form) with its Le field set to ``le``; ``None`` if not short form.

    ISO/IEC 7816-3 §12.1.3: case 1 (header only) and case 3 (header, Lc, data) get an
    Le byte appended; cases 2 and 4 have their last byte replaced.
    """
    n = len(c_apdu)
    le_byte = bytes((le & 0xFF,))
    if n == 4:
        return c_apdu + le_byte
    if n == 5:
        return c_apdu[:4] + le_byte
    lc = c_apdu[4]
    if lc == 0:
        return None  # extended length
    if n == 5 + lc:
        return c_apdu + le_byte
    if n == 6 + lc:
        return c_apdu[:-1] + le_byte
    return None


def complete_exchange(send: Callable[[bytes], bytes], c_apdu: bytes) -> bytes:
    """Send ``c_apdu`` with ``send`` and follow the T=0 status words to a final answer.

    EMV Book 1 §9.3.1 and ISO/IEC 7816-4 §5.1.3, 7816-3 §12.2: ``61xx`` means xx more
    bytes wait (00: 256): GET RESPONSE ``00 C0 00 00 xx`` fetches them, and again while
    the answer is ``61xx``; the data are joined and the last status word ends them.
    ``6Cxx`` means wrong Le, nothing done: the same command goes again once with Le =
    xx (a second ``6Cxx`` is returned as is). Re-sending after ``6Cxx`` is safe for any
    command, since the card did not execute it. Contactless cards rarely answer so, but
    a PC/SC reader may pass a card's T=0 behaviour through, so every driver uses this.

    Raises :class:`ProtocolError` for an answer under two bytes or more than
    :data:`GET_RESPONSE_LIMIT` GET RESPONSE rounds.
    """
    answer = _checked(send(c_apdu))
    sw1, sw2 = answer[-2], answer[-1]
    if sw1 == 0x6C:
        resend = _with_le(c_apdu, sw2)
        if resend is not None:
            answer = _checked(send(resend))
            sw1, sw2 = answer[-2], answer[-1]
    if sw1 != 0x61:
        return answer
    data = bytearray(answer[:-2])
    for _ in range(GET_RESPONSE_LIMIT):
        answer = _checked(send(bytes((0x00, 0xC0, 0x00, 0x00, sw2))))
        data += answer[:-2]
        sw1, sw2 = answer[-2], answer[-1]
        if sw1 != 0x61:
            return bytes(data) + answer[-2:]
    raise ProtocolError(f"the card still had data after {GET_RESPONSE_LIMIT} GET RESPONSE")


def _checked(answer: bytes) -> bytes:
    if len(answer) < 2:
        raise ProtocolError(f"an R-APDU of {len(answer)} bytes has no status word")
    return bytes(answer)


class Reader(abc.ABC):
    """A contactless reader seen by the kernel."""

    #: The path it was opened with (``pcsc:0``), for messages and traces.
    path: str
    feedback: Feedback
    #: Seconds a card has to answer a command sent without a ``timeout`` of its own.
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT

    @abc.abstractmethod
    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """Block until a card is in the field and activated; ``NoCardError`` on time-out."""

    @abc.abstractmethod
    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        """Send a C-APDU, return the whole R-APDU (data || SW1 SW2).

        Drivers follow ``61xx`` with GET RESPONSE and re-send on ``6Cxx`` with the
        right Le (ISO 7816-4 §5.3.4, as T=0 needs), so the kernel sees final answers.
        The card has ``timeout`` seconds for all of it (``None``:
        :attr:`command_timeout`); past that, :class:`CardTimeoutError` and the card is
        reset.
        """

    @abc.abstractmethod
    def card_present(self) -> bool:
        """Whether a card is in the field now (a presence check)."""

    @abc.abstractmethod
    def repower(self) -> CardInfo:
        """Switch the field off and on again; the card restarts (Book A §5.2.4)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the reader (the field off, any card unpowered)."""

    def field_off(self) -> None:  # noqa: B027 - a no-op fits readers without a field
        """End the card session: switch the field off, the card loses power and its
        state (EMV Book A's removal procedure; on PC/SC the card is unpowered). The
        card may still be in the field: :meth:`card_present` and
        :meth:`wait_for_removal` still see it, :meth:`wait_for_card` activates it
        afresh. Never raises. This default does nothing, for readers without a field
        of their own (a replay of recorded answers); every driver overrides it.
        """

    def release(self) -> None:  # noqa: B027 - an optional hook: nothing by default
        """Let the card go without closing the reader: disconnect from it so that the
        reader may power it down (``terminal watch`` between two cards). The next
        :meth:`wait_for_card` activates a card afresh. By default nothing: a driver
        that holds the card while connected overrides it."""

    def wait_for_removal(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Wait until the card has left the field; ``False`` on time-out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.card_present():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
