"""PC/SC readers through pyscard's ``smartcard.scard`` (the path ``pcsc:NAME-or-INDEX``).

The driver speaks the PC/SC API of the PC/SC Workgroup specification Part 5 (the
``SCard*`` functions, which pcsc-lite and Windows winscard share, with the same codes):
``SCardGetStatusChange`` to wait for a card, ``SCardConnect`` (shared, T=0 or T=1; a
contactless reader presents an ISO 14443-4 card as T=1), ``SCardTransmit``,
``SCardReconnect`` with ``SCARD_UNPOWER_CARD`` to re-power a card, ``SCardControl``
(the CCID escape, with libccid's control code or the vendor's: :data:`ESCAPE_CODES`)
for reader commands when no card is connected. The API object is a
constructor argument (pyscard's module by default), so the layers above are tested
at the byte boundary with a recording fake.

Status words ``61xx`` and ``6Cxx`` are followed to a final answer
(:func:`~terminal.readers.base.complete_exchange`). Errors map onto the reader tree:

- card removed (``SCARD_W_REMOVED_CARD`` 0x80100069, ``SCARD_E_NO_SMARTCARD``):
  :class:`~terminal.readers.base.CardRemovedError`;
- reader gone, pcscd gone, handle invalid: :class:`~terminal.readers.base.ReaderUnavailableError`;
  another application holding the card exclusively as well;
- transient failures (``SCARD_E_NOT_TRANSACTED``, ``SCARD_F_COMM_ERROR``,
  ``SCARD_E_COMM_DATA_LOST``, ``SCARD_E_TIMEOUT``): the ACR122U gives these on USB
  time-outs, on APDUs of about 40 bytes and with stale state after a card is pulled
  away (pyscard's "Failed to transmit with protocol T1. Transaction failed", the
  acsccid driver's "Card not transacted" after ``LIBUSB_ERROR_IO``). vpcd gives
  ``SCARD_E_NOT_TRANSACTED``, or success with an empty answer, for a card pulled
  before pcscd's next presence poll; an answer without status word counts as transient.

Retry policy for transient failures (decided here, see :data:`RETRY_SAFE`): one
``SCardReconnect`` (``SCARD_LEAVE_CARD``: the card keeps its state) and one re-send of
the whole exchange, only for commands whose repetition cannot change the card: SELECT,
READ RECORD, READ BINARY, GET DATA, and the reader's own GET DATA UID. GET PROCESSING
OPTIONS and COMPUTE CRYPTOGRAPHIC CHECKSUM (the ATC moves), GENERATE AC (a second
cryptogram), INTERNAL AUTHENTICATE, EXCHANGE RELAY RESISTANCE DATA (timed), VERIFY (a
PIN try), issuer script commands and anything unknown are never re-sent once they may
have reached the card. When the retry fails too, or is not allowed, the driver waits
up to ``removal_settle`` seconds for pcscd to see whether the card left (pcscd polls
presence about every 400 ms): then :class:`CardRemovedError`, else
:class:`CommunicationError`. The kernel treats both as "present card again".

Deadlines: pyscard's ``SCardTransmit`` blocks until pcscd answers, pcscd's vpcd driver
waits for a silent card for ever, and ``SCardCancel`` cancels no transmit (seen with
pcsc-lite and vsmartcard-vpcd 0.8); a real reader's firmware gives up after the card's
frame waiting time, but the host must not depend on it. So every call that may block
in pcscd (connect, status, transmit, reconnect, control, disconnect) runs in a worker
thread with a deadline (:class:`~terminal.readers.deadline.Worker`): a command's own
(``transmit``'s ``timeout``, else :attr:`command_timeout`), the command time-out for
the others. Past it the call is abandoned with its PC/SC context (pcsc-lite locks a
context for the length of a call; the card is unpowered and the context released once
the call returns), the driver goes on with a new context, and the command ends with
:class:`~terminal.readers.base.CardTimeoutError`. pcscd keeps the reader until that
call returns (until the card leaves, with vpcd): :meth:`PcscReader.wait_for_card`
waits for it, other calls meanwhile fail with :class:`ReaderUnavailableError`.

After a transaction :meth:`PcscReader.field_off` (and :meth:`PcscReader.close`)
disconnect with ``SCARD_UNPOWER_CARD``: a card left powered keeps the protocol the
first client chose, and the next client asking for another one (T=0 alone, as
python-emv's ``emvtool`` does) is refused with "Card protocol mismatch".

ACR122U readers (name containing ``ACR122``) get :class:`~terminal.readers.acr122u.
Acr122uFeedback` and, at the first connection, the EMV PICC operating parameter
(:func:`~terminal.readers.acr122u.configure_picc`); other readers record signals.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from terminal.readers.acr122u import GET_UID, Acr122uFeedback, configure_picc
from terminal.readers.base import (
    CardInfo,
    CardRemovedError,
    CardTimeoutError,
    CommunicationError,
    Feedback,
    LazyLogger,
    NoCardError,
    Reader,
    ReaderError,
    ReaderUnavailableError,
    RecordingFeedback,
    complete_exchange,
)
from terminal.readers.deadline import DeadlineError, Worker, WorkerStuckError

__all__ = [
    "ESCAPE_CODES",
    "LIBCCID_ESCAPE",
    "RETRY_SAFE",
    "VENDOR_ESCAPE",
    "PcscReader",
    "ScardCode",
    "is_retry_safe",
    "list_pcsc_readers",
    "load_api",
    "resolve_reader",
]

log = LazyLogger(__name__)

T = TypeVar("T")


class ScardCode(enum.IntEnum):
    """PC/SC return codes used here (pcsc-lite ``pcsclite.h``, Windows ``winerror.h``)."""

    S_SUCCESS = 0x00000000
    E_CANCELLED = 0x80100002
    E_INVALID_HANDLE = 0x80100003
    E_UNKNOWN_READER = 0x80100009
    E_TIMEOUT = 0x8010000A
    E_SHARING_VIOLATION = 0x8010000B
    E_NO_SMARTCARD = 0x8010000C
    E_PROTO_MISMATCH = 0x8010000F
    F_COMM_ERROR = 0x80100013
    E_NOT_TRANSACTED = 0x80100016
    E_READER_UNAVAILABLE = 0x80100017
    E_NO_SERVICE = 0x8010001D
    E_SERVICE_STOPPED = 0x8010001E
    E_UNSUPPORTED_FEATURE = 0x8010001F  # pcsc-lite's value (winerror.h: 0x80100022)
    E_NO_READERS_AVAILABLE = 0x8010002E
    E_COMM_DATA_LOST = 0x8010002F
    W_UNSUPPORTED_CARD = 0x80100065
    W_UNRESPONSIVE_CARD = 0x80100066
    W_UNPOWERED_CARD = 0x80100067
    W_RESET_CARD = 0x80100068
    W_REMOVED_CARD = 0x80100069


# PC/SC constants (PC/SC Part 5; same values in pcsc-lite and winscard).
SCOPE_USER: Final = 0
SHARE_SHARED: Final = 2
SHARE_DIRECT: Final = 3
PROTOCOL_T0: Final = 1
PROTOCOL_T1: Final = 2
LEAVE_CARD: Final = 0
RESET_CARD: Final = 1
UNPOWER_CARD: Final = 2
STATE_UNAWARE: Final = 0x0000
STATE_IGNORE: Final = 0x0001
STATE_CHANGED: Final = 0x0002
STATE_UNKNOWN: Final = 0x0004
STATE_UNAVAILABLE: Final = 0x0008
STATE_EMPTY: Final = 0x0010
STATE_PRESENT: Final = 0x0020
STATE_MUTE: Final = 0x0200
INFINITE: Final = 0xFFFFFFFF


def _ctl_code(code: int) -> int:
    """``SCARD_CTL_CODE``: winscard ``CTL_CODE(FILE_DEVICE_SMARTCARD, code, 0, 0)``,
    pcsc-lite ``0x42000000 + code``."""
    if sys.platform == "win32":
        return 0x31 << 16 | code << 2
    return 0x42000000 + code


#: libccid's escape (PC_to_RDR_Escape), IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE:
#: SCARD_CTL_CODE(1), 0x42000001 on pcsc-lite. libccid passes it only with
#: ``ifdDriverOptions`` bit 0 set in its Info.plist.
LIBCCID_ESCAPE: Final = _ctl_code(1)
#: The vendor drivers' escape, IOCTL_CCID_ESCAPE: SCARD_CTL_CODE(3500), 0x42000DAC on
#: pcsc-lite (ACS's acsccid and Windows' CCID class driver; ACS ACR122U API manual,
#: "escape command").
VENDOR_ESCAPE: Final = _ctl_code(3500)
#: The escape control codes tried, in order, until the reader takes one: the platform's
#: usual one first (libccid's on pcsc-lite, the vendor's on Windows).
ESCAPE_CODES: Final = (
    (VENDOR_ESCAPE, LIBCCID_ESCAPE) if sys.platform == "win32" else (LIBCCID_ESCAPE, VENDOR_ESCAPE)
)

_REMOVED: Final = frozenset({ScardCode.W_REMOVED_CARD, ScardCode.E_NO_SMARTCARD})
_GONE: Final = frozenset(
    {
        ScardCode.E_READER_UNAVAILABLE,
        ScardCode.E_UNKNOWN_READER,
        ScardCode.E_NO_SERVICE,
        ScardCode.E_SERVICE_STOPPED,
        ScardCode.E_NO_READERS_AVAILABLE,
        ScardCode.E_INVALID_HANDLE,
    }
)
_TRANSIENT: Final = frozenset(
    {
        ScardCode.E_NOT_TRANSACTED,
        ScardCode.F_COMM_ERROR,
        ScardCode.E_COMM_DATA_LOST,
        ScardCode.E_TIMEOUT,
    }
)
#: A card pcscd has not (yet) powered up: met when connecting to a card presented or
#: unpowered a moment ago (vpcd's presentation races pcscd's power-up).
_NOT_READY: Final = frozenset(
    {ScardCode.W_UNPOWERED_CARD, ScardCode.W_UNRESPONSIVE_CARD, ScardCode.W_RESET_CARD}
)

#: Commands re-sent after a transient failure and a reconnect: (CLA mask, CLA, INS).
#: Their repetition cannot change the card: SELECT (Book 1 §11.3.2), READ RECORD (Book
#: 3 §6.5.11), READ BINARY (ISO/IEC 7816-4 §11.2.3), GET DATA (Book 3 §6.5.7, class
#: 80, and ISO class 00), and the PC/SC Part 3 GET DATA UID of the reader (class FF).
RETRY_SAFE: Final = (
    (0xFC, 0x00, 0xA4),  # SELECT
    (0xFC, 0x00, 0xB2),  # READ RECORD
    (0xFC, 0x00, 0xB0),  # READ BINARY
    (0xFC, 0x00, 0xCA),  # GET DATA (interindustry)
    (0xFF, 0x80, 0xCA),  # GET DATA (EMV)
    (0xFF, 0xFF, 0xCA),  # GET DATA UID (reader)
)
#: Seconds between two connections to a card pcscd had not powered up yet.
_NOT_READY_PAUSE: Final = 0.05
#: How long transmit waits for a GetStatusChange slice (Ctrl-C is seen in between).
_SLICE: Final = 0.5


def is_retry_safe(c_apdu: bytes) -> bool:
    """Whether ``c_apdu`` may be re-sent after it may have reached the card (:data:`RETRY_SAFE`)."""
    if len(c_apdu) < 4:
        return False
    cla, ins = c_apdu[0], c_apdu[1]
    return any(cla & mask == value and ins == i for mask, value, i in RETRY_SAFE)


def load_api() -> Any:
    """pyscard's ``smartcard.scard`` module, or :class:`ReaderUnavailableError`."""
    try:
        from smartcard import scard
    except ImportError as exc:
        raise ReaderUnavailableError(
            "pyscard is not installed (pip install 'tapstack[pcsc]'; it builds with "
            "libpcsclite-dev, swig and gcc)"
        ) from exc
    return scard


def _code(rc: int) -> int:
    return rc & 0xFFFFFFFF


def _describe(api: Any, rc: int) -> str:
    code = _code(rc)
    try:
        name = ScardCode(code).name
    except ValueError:
        name = "?"
    text = ""
    with contextlib.suppress(Exception):
        text = str(api.SCardGetErrorMessage(rc)).rstrip(".")
    return f"{text or 'PC/SC error'} (SCARD_{name}, 0x{code:08X})"


def _error(api: Any, rc: int, what: str) -> ReaderError:
    """The reader-tree error for PC/SC code ``rc`` from operation ``what``."""
    code = _code(rc)
    message = f"{what}: {_describe(api, rc)}"
    if code in _REMOVED:
        return CardRemovedError(message)
    if code in _GONE:
        return ReaderUnavailableError(message)
    if code == ScardCode.E_SHARING_VIOLATION:
        return ReaderUnavailableError(f"{message}: another application holds the card")
    if code in _TRANSIENT:
        return _TransientError(message, code)
    if code in _NOT_READY:
        return _NotReadyError(message)
    return CommunicationError(message)


class _NotReadyError(CommunicationError):
    """A card not powered up yet (internal: :meth:`PcscReader.wait_for_card` waits on)."""


class _TransientError(CommunicationError):
    """A failure worth one reconnect and retry (internal; a CommunicationError outside)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _context(api: Any) -> Any:
    rc, context = api.SCardEstablishContext(SCOPE_USER)
    if _code(rc) != ScardCode.S_SUCCESS:
        raise ReaderUnavailableError(f"cannot reach pcscd: {_describe(api, rc)}; is pcscd running?")
    return context


def _names(api: Any, context: Any) -> list[str]:
    rc, names = api.SCardListReaders(context, [])
    code = _code(rc)
    if code == ScardCode.E_NO_READERS_AVAILABLE:
        return []
    if code != ScardCode.S_SUCCESS:
        raise _error(api, rc, "listing PC/SC readers")
    return [str(n) for n in names]


def list_pcsc_readers(api: Any | None = None) -> list[str]:
    """The names of the readers pcscd knows, in its order (the ``pcsc:INDEX`` order)."""
    api = load_api() if api is None else api
    context = _context(api)
    try:
        return _names(api, context)
    finally:
        with contextlib.suppress(Exception):
            api.SCardReleaseContext(context)


def resolve_reader(spec: str, names: list[str]) -> str:
    """The reader ``spec`` names: an index, an exact name, or a unique part of one.

    The part is matched case-insensitively (``pcsc:acr122`` finds ``ACS ACR122U PICC
    Interface 00 00``). No reader: :class:`ReaderUnavailableError`; two or more:
    :class:`ReaderError` naming them.
    """
    if not spec:
        raise ReaderError("a pcsc path names a reader: pcsc:NAME or pcsc:INDEX")
    listing = ", ".join(repr(n) for n in names) or "none"
    if spec.isdigit():
        index = int(spec)
        if index >= len(names):
            raise ReaderUnavailableError(f"no PC/SC reader number {index}; readers: {listing}")
        return names[index]
    if spec in names:
        return spec
    found = [n for n in names if spec.lower() in n.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReaderUnavailableError(f"no PC/SC reader matches {spec!r}; readers: {listing}")
    raise ReaderError(f"{spec!r} matches several PC/SC readers: {listing}")


class PcscReader(Reader):
    """A PC/SC reader (``pcsc:NAME-or-INDEX``); see the module docstring.

    ``read_uid`` asks the reader for the card UID (``FF CA 00 00 00``) at each
    activation: by default only for contactless readers known by name (ACR122), since
    a contact reader passes the command to the card. ``removal_settle`` bounds the wait
    for pcscd's verdict after a transient failure. ``feedback`` replaces the default
    (ACR122U LED and buzzer, else recording). ``command_timeout`` is the deadline of a
    command sent without one (and of every other PC/SC call that may block in pcscd).
    Not thread-safe: one thread per reader.
    """

    def __init__(
        self,
        reader: str,
        *,
        api: Any | None = None,
        read_uid: bool | None = None,
        removal_settle: float = 0.5,
        configure: bool = True,
        feedback: Feedback | None = None,
        command_timeout: float | None = None,
    ) -> None:
        if not reader:
            raise ReaderError("a pcsc path names a reader: pcsc:NAME or pcsc:INDEX")
        self._card: Any = None
        self._protocol = 0
        self._events = -1  # pcscd's event counter of the reader when the card connected
        self._released = True
        self._worker = Worker("pcsc")
        #: The escape control code the reader took last (:data:`ESCAPE_CODES`).
        self.escape_code: int | None = None
        if command_timeout is not None:
            self.command_timeout = command_timeout
        self._api = load_api() if api is None else api
        self._context = _context(self._api)
        self._released = False
        try:
            self.name = resolve_reader(reader, _names(self._api, self._context))
        except BaseException:
            self.close()
            raise
        self._worker.name = f"pcsc {self.name}"
        self.path = f"pcsc:{self.name}"
        self.acr122u = "ACR122" in self.name.upper()
        self._read_uid = self.acr122u if read_uid is None else read_uid
        self._configure = configure and self.acr122u
        self._settle = removal_settle
        if feedback is not None:
            self.feedback = feedback
        elif self.acr122u:
            self.feedback = Acr122uFeedback(self.reader_command)
        else:
            self.feedback = RecordingFeedback()

    def __repr__(self) -> str:
        return f"PcscReader({self.name!r})"

    # --- calls into pcscd with a deadline ----------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        """``fn()`` (a PC/SC call that may block in pcscd) within ``timeout`` s (default
        :attr:`command_timeout`). Past it the call is abandoned (:meth:`_abandon`) and
        :class:`CardTimeoutError` raised; while an abandoned call is still stuck,
        :class:`ReaderUnavailableError` (the reader is held until that card leaves)."""
        limit = self.command_timeout if timeout is None else timeout
        try:
            return self._worker.call(fn, limit)
        except WorkerStuckError as exc:
            raise ReaderUnavailableError(
                f"{what}: {self.name!r} is still held by a command the card never answered "
                "(pcscd gives the reader back once that card leaves)"
            ) from exc
        except DeadlineError as exc:
            self._abandon()
            raise CardTimeoutError(
                f"{what}: no answer within {limit * 1000:.0f} ms on {self.name!r}"
            ) from exc

    def _abandon(self) -> None:
        """A call stuck in pcscd holds the card handle and its context (pcsc-lite locks a
        context for the length of a call, and ``SCardCancel`` cancels no transmit):
        leave both to it, to be released (the card unpowered) once it returns, and go on
        with a new context."""
        api, card, context = self._api, self._card, self._context
        self._card, self._events = None, -1

        def release() -> None:
            if card is not None:
                with contextlib.suppress(Exception):
                    api.SCardDisconnect(card, UNPOWER_CARD)
            with contextlib.suppress(Exception):
                api.SCardReleaseContext(context)

        self._worker.after_stuck(release)
        self._released = True
        self._context = _context(api)
        self._released = False

    # --- reader state ----------------------------------------------------------------

    def _state(self, known: int = STATE_UNAWARE, wait: float = 0.0) -> tuple[int, bytes] | None:
        """(event state, ATR) of the reader, waiting up to ``wait`` s for a change from
        ``known``; ``None`` when nothing changed in that time."""
        ms = min(int(wait * 1000), INFINITE - 1)
        rc, states = self._api.SCardGetStatusChange(self._context, ms, [(self.name, known)])
        code = _code(rc)
        if code == ScardCode.E_TIMEOUT:
            return None
        if code != ScardCode.S_SUCCESS:
            raise _error(self._api, rc, f"watching {self.name!r}")
        _, event, atr = states[0]
        event = int(event)
        if event & (STATE_UNKNOWN | STATE_UNAVAILABLE | STATE_IGNORE):
            raise ReaderUnavailableError(f"the PC/SC reader {self.name!r} is no longer available")
        return event, bytes(atr)

    def _same_card(self, event: int) -> bool:
        return bool(event & STATE_PRESENT) and (self._events < 0 or event >> 16 == self._events)

    def card_present(self) -> bool:
        """A card is in the reader (the connected one, if a card is connected)."""
        state = self._state()
        assert state is not None  # a zero wait never times out
        return self._same_card(state[0])

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """Wait for a card (``SCardGetStatusChange``), connect, return ATR and UID.

        A card connected before is first disconnected with ``SCARD_UNPOWER_CARD``, so
        every call gives a freshly powered card. Waits in slices of 0.5 s, so Ctrl-C
        is seen. A card pcscd has not powered up yet (unpowered, reset, unresponsive:
        just presented, or just unpowered by the last client) is connected to again.
        While a card that never answered still holds the reader (a command abandoned at
        its deadline), it waits for that card to leave. :class:`NoCardError` after
        ``timeout`` seconds (``None``: for ever).
        """
        self._disconnect(UNPOWER_CARD)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        known = STATE_UNAWARE
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if self._worker.stuck:
                self._worker.wait(max(0.0, left))
                known = STATE_UNAWARE
            else:
                state = self._state(known, max(0.0, left) if known != STATE_UNAWARE else 0.0)
                if state is not None:
                    event, _ = state
                    known = event & ~STATE_CHANGED
                    if event & STATE_PRESENT and not event & STATE_MUTE:
                        try:
                            return self._connect()
                        except CardRemovedError:
                            log.debug("the card left while connecting")
                        except CardTimeoutError as exc:
                            log.info("%s", exc)  # the card holds the reader: wait on
                        except _NotReadyError as exc:  # pcscd is powering it up: again
                            log.debug("%s; connecting again", exc)
                            time.sleep(min(_NOT_READY_PAUSE, max(0.0, left)))
                            known = STATE_UNAWARE
            if deadline is not None and time.monotonic() >= deadline:
                held = (
                    " (a card that stopped answering still holds it)" if self._worker.stuck else ""
                )
                raise NoCardError(f"no card on {self.name!r} within {timeout:g} s{held}")

    def wait_for_removal(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Wait until the card left (``SCardGetStatusChange``); ``False`` on time-out."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        known = STATE_UNAWARE
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            state = self._state(known, max(0.0, left) if known != STATE_UNAWARE else 0.0)
            if state is not None:
                if not self._same_card(state[0]):
                    return True
                known = state[0] & ~STATE_CHANGED
            if deadline is not None and time.monotonic() >= deadline:
                return False

    # --- connection ------------------------------------------------------------------

    def _connect(self) -> CardInfo:
        api, context = self._api, self._context
        rc, card, protocol = self._call(
            "connecting to the card",
            lambda: api.SCardConnect(context, self.name, SHARE_SHARED, PROTOCOL_T0 | PROTOCOL_T1),
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            raise _error(api, rc, f"connecting to the card in {self.name!r}")
        self._card, self._protocol = card, int(protocol)
        state = self._state()
        self._events = -1 if state is None else state[0] >> 16
        if self._configure:
            self._configure = False
            configure_picc(self.reader_command)
        return self._card_info()

    def _card_info(self) -> CardInfo:
        card = self._card
        rc, _, _, protocol, atr = self._call(
            "reading the card status", lambda: self._api.SCardStatus(card)
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            raise _error(self._api, rc, "reading the card status")
        self._protocol = int(protocol) or self._protocol
        uid = b""
        if self._read_uid:
            try:
                answer = self._send(GET_UID)
            except ReaderError as exc:
                log.info("no UID from %s: %s", self.name, exc)
            else:
                if answer[-2:] == b"\x90\x00":
                    uid = answer[:-2]
        name = "T=1" if self._protocol == PROTOCOL_T1 else "T=0"
        return CardInfo(atr=bytes(atr), uid=uid, protocol=name)

    def _disconnect(self, disposition: int) -> None:
        card = self._card
        if card is None:
            return
        with contextlib.suppress(ReaderError):
            self._call("disconnecting", lambda: self._api.SCardDisconnect(card, disposition))
        self._card, self._events = None, -1

    def repower(self) -> CardInfo:
        """``SCardReconnect`` with ``SCARD_UNPOWER_CARD``: power off, power on, new ATR."""
        card = self._card
        if card is None:
            raise NoCardError(f"no card connected in {self.name!r}: call wait_for_card first")
        rc, protocol = self._call(
            "re-powering the card",
            lambda: self._api.SCardReconnect(
                card, SHARE_SHARED, PROTOCOL_T0 | PROTOCOL_T1, UNPOWER_CARD
            ),
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            error = _error(self._api, rc, "re-powering the card")
            if isinstance(error, CardRemovedError):
                self._disconnect(LEAVE_CARD)
            raise error
        self._protocol = int(protocol)
        state = self._state()
        self._events = -1 if state is None else state[0] >> 16
        return self._card_info()

    def field_off(self) -> None:
        """Disconnect with ``SCARD_UNPOWER_CARD``: pcscd powers the card down, and the
        next client (another application asking T=0, say) finds it fresh."""
        self._disconnect(UNPOWER_CARD)

    def release(self) -> None:
        """Let the card go (``terminal watch``): on PC/SC what :meth:`field_off` does,
        pcscd powers the card down (a vpcd card served by ``card serve`` ends its tap
        and leaves)."""
        self._disconnect(UNPOWER_CARD)

    def close(self) -> None:
        """Unpower the card (:meth:`field_off`) and release the PC/SC context."""
        self._disconnect(UNPOWER_CARD)
        if not self._released:
            self._released = True
            with contextlib.suppress(Exception):
                self._api.SCardReleaseContext(self._context)
        self._worker.close()

    # --- APDUs -----------------------------------------------------------------------

    def _send(self, apdu: bytes, deadline: float | None = None) -> bytes:
        """One ``SCardTransmit`` before ``deadline`` (monotonic; default: the command
        time-out from now). A deadline passed before the command: the card is
        unpowered and :class:`CardTimeoutError` raised, as for one passed during it."""
        card, protocol = self._card, self._protocol
        what = f"transmitting INS {apdu[1]:02X}"
        left = self.command_timeout if deadline is None else deadline - time.monotonic()
        if left <= 0:
            self._disconnect(UNPOWER_CARD)
            raise CardTimeoutError(f"{what}: the command's deadline passed on {self.name!r}")
        rc, response = self._call(
            what, lambda: self._api.SCardTransmit(card, protocol, list(apdu)), left
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            raise _error(self._api, rc, what)
        if len(response) < 2:
            # vpcd answers so for a card pulled before pcscd noticed: a lost exchange
            raise _TransientError(
                f"{what}: {len(response)} bytes back, no status word",
                ScardCode.E_NOT_TRANSACTED,
            )
        return bytes(response)

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        """Exchange one C-APDU within ``timeout`` s (module docstring: 61xx/6Cxx, retry
        policy, errors, deadlines)."""
        if self._card is None:
            raise NoCardError(f"no card connected in {self.name!r}: call wait_for_card first")
        deadline = time.monotonic() + (self.command_timeout if timeout is None else timeout)
        try:
            return self._transmit(bytes(c_apdu), deadline)
        except CardRemovedError:
            self._disconnect(LEAVE_CARD)
            raise

    def _transmit(self, c_apdu: bytes, deadline: float) -> bytes:
        def send(apdu: bytes) -> bytes:
            return self._send(apdu, deadline)

        try:
            return complete_exchange(send, c_apdu)
        except _TransientError as first:
            failure: _TransientError = first
        safe = is_retry_safe(c_apdu)
        if safe:
            log.info("%s; reconnecting and sending INS %02X again", failure, c_apdu[1])
            try:
                self._reconnect(deadline)
                return complete_exchange(send, c_apdu)
            except _TransientError as second:
                failure = second
        if self._card_left():
            raise CardRemovedError(f"the card left {self.name!r} ({failure})") from failure
        kept = "" if safe else " (not re-sent: it may have reached the card)"
        raise CommunicationError(f"{failure}{kept}") from failure

    def _reconnect(self, deadline: float) -> None:
        card = self._card
        rc, protocol = self._call(
            "reconnecting to the card",
            lambda: self._api.SCardReconnect(
                card, SHARE_SHARED, PROTOCOL_T0 | PROTOCOL_T1, LEAVE_CARD
            ),
            max(0.0, deadline - time.monotonic()),
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            raise _error(self._api, rc, "reconnecting to the card")
        self._protocol = int(protocol)

    def _card_left(self) -> bool:
        """Whether pcscd sees the card gone within ``removal_settle`` seconds."""
        deadline = time.monotonic() + self._settle
        known = STATE_UNAWARE
        while True:
            wait = 0.0 if known == STATE_UNAWARE else max(0.0, deadline - time.monotonic())
            state = self._state(known, wait)
            if state is not None:
                if not self._same_card(state[0]):
                    return True
                known = state[0] & ~STATE_CHANGED
            if time.monotonic() >= deadline:
                return False

    def reader_command(self, apdu: bytes) -> bytes:
        """Send a reader pseudo-APDU (class ``FF``): over the card connection if any,
        else as a CCID escape on a direct connection (:meth:`escape`). No retry, no
        61xx handling; the command time-out applies."""
        if self._card is not None:
            return self._send(apdu)
        return self.escape(apdu)

    def escape(self, apdu: bytes) -> bytes:
        """``SCardControl`` of ``apdu`` on a direct connection, with each of
        :data:`ESCAPE_CODES` until the reader takes one (the one it took first when it
        took one before: :attr:`escape_code`); the first failure if none is taken."""
        api, context = self._api, self._context
        rc, card, _ = self._call(
            "direct connection",
            lambda: api.SCardConnect(context, self.name, SHARE_DIRECT, 0),
        )
        if _code(rc) != ScardCode.S_SUCCESS:
            raise _error(api, rc, f"direct connection to {self.name!r}")
        codes: tuple[int, ...] = ESCAPE_CODES
        if self.escape_code is not None:
            codes = (self.escape_code, *(c for c in ESCAPE_CODES if c != self.escape_code))
        refused: ReaderError | None = None
        try:
            for code in codes:
                rc, response = self._call(
                    "reader escape command",
                    lambda code=code: api.SCardControl(card, code, list(apdu)),  # type: ignore[misc]
                )
                if _code(rc) == ScardCode.S_SUCCESS:
                    self.escape_code = code
                    return bytes(response)
                log.info("%s refused escape control code 0x%08X", self.name, code)
                refused = refused or _error(api, rc, f"reader escape command (0x{code:08X})")
        finally:
            with contextlib.suppress(ReaderError):
                self._call("disconnecting", lambda: api.SCardDisconnect(card, LEAVE_CARD))
        assert refused is not None  # ESCAPE_CODES is not empty
        raise refused
