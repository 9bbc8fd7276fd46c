"""Contactless frontends driven by nfcpy (paths ``nfc:usb[:VID:PID]``, ``nfc:tty:PORT[:DRIVER]``,
``nfc:udp:HOST:PORT``).

nfcpy talks to the PN53x chip of a USB or serial frontend directly (and, for tests and
demos, to an emulated RF link over loopback UDP). The terminal is the PCD: it polls,
activates an ISO/IEC 14443-4 (ISO-DEP) card, and exchanges APDUs with nfcpy's
ISO-DEP initiator (I-blocks, chaining, R(NAK) retransmission, S(WTX)).

Polling (EMV Book D §3 and §9, the polling loop): Type A (``106A``) then Type B
(``106B``) until a card answers or the deadline passes; the deadline is checked between
technologies, so it is kept to within one nfcpy sense (the udp frontend waits 1 s for
a SENS_RES that does not come). A card must be ISO-DEP (nfcpy ``Type4Tag``): payment
cards are; anything else found is left alone and polling goes on. ``clf.sense`` and
``nfc.tag.activate`` are used instead of ``clf.connect`` because ``connect`` swallows
``KeyboardInterrupt`` and device errors (it returns ``False`` for both).

Errors (nfcpy ``Type4TagCommandError`` codes, ISO/IEC 14443-4 §7.5.6 error recovery):
an unrecoverable time-out after the retransmissions means the card stopped answering:
:class:`~terminal.readers.base.CardRemovedError`; so does ``BrokenLinkError``.
Transmission and protocol errors are :class:`~terminal.readers.base.CommunicationError`;
a device error (``OSError``: unplugged, busy) is
:class:`~terminal.readers.base.ReaderUnavailableError`.

``repower`` switches the field off (``device.mute()``), waits the reset time and senses
the card again (EMV Book D §5.2.4, t_RESETDELAY): the card goes through power-on and a
new activation. These frontends have no LED nfcpy drives for us: feedback is recorded.

Deadlines: nfcpy's ISO-DEP initiator waits the card's frame waiting time (up to 4.9 s
for FWI 14) and retries up to five times, and grants waiting time extensions for as
long as the card asks. The frontend is therefore handed to nfcpy behind
:class:`_DeadlineFrontend`, which shortens each RF exchange to what is left of the
command's deadline and fails the ones after it, so a command ends by its deadline:
:class:`~terminal.readers.base.CardTimeoutError`, and the field is reset (Book D's
exception processing). :meth:`NfcReader.field_off` ends a card session (field off); a
presence check after it polls once with the field on (Book D §9.5, the removal
procedure) and switches it off again.

``device`` opens the reader on an nfcpy device object built by the caller instead of
a path: the tests build nfcpy's own ACR122U and PN533 drivers over a byte-level
transport double this way.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Final, NoReturn

from terminal.readers.base import (
    CardInfo,
    CardRemovedError,
    CardTimeoutError,
    CommunicationError,
    NoCardError,
    Reader,
    ReaderError,
    ReaderUnavailableError,
    RecordingFeedback,
    complete_exchange,
)

__all__ = [
    "DEFAULT_TARGETS",
    "NfcReader",
    "check_nfc_path",
    "list_usb_frontends",
]

log = logging.getLogger(__name__)

#: Technologies polled, in order (EMV Book D §9.2: Type A, then Type B).
DEFAULT_TARGETS: Final = ("106A", "106B")
#: Field-off time before re-sensing on repower (EMV Book D t_RESETDELAY is at least
#: 5.1 ms; longer here so an emulated card on a loaded host is listening again).
RESET_TIME: Final = 0.02

_USB = re.compile(r"usb(:[0-9a-fA-F]{4}:[0-9a-fA-F]{4}|:[0-9]{1,3}:[0-9]{1,3}|:[0-9]{1,3})?")
_TTY = re.compile(r"tty:[\w./-]+(:\w+)?")
_UDP = re.compile(r"udp:[\w.-]+:[0-9]{1,5}")


def check_nfc_path(spec: str) -> str:
    """The nfcpy path for the part after ``nfc:``; :class:`ReaderError` if malformed.

    ``usb``, ``usb:VID:PID`` (hex, ``usb:072f:2200``), ``usb:BUS:DEV`` (decimal);
    ``tty:PORT`` or ``tty:PORT:DRIVER`` (``tty:USB0:pn532``: /dev/ttyUSB0, PN532);
    ``udp:HOST:PORT`` (nfcpy's emulated frontend).
    """
    for pattern in (_USB, _TTY, _UDP):
        if pattern.fullmatch(spec):
            return spec
    raise ReaderError(
        f"bad nfc path 'nfc:{spec}': use nfc:usb, nfc:usb:VID:PID, nfc:tty:PORT[:DRIVER] "
        "or nfc:udp:HOST:PORT"
    )


def list_usb_frontends() -> list[tuple[str, str]]:
    """(nfcpy path, driver) of each USB frontend nfcpy supports, without opening any.

    An ACR122U held by pcscd is listed too; nfcpy cannot open it while pcscd has it.
    """
    from nfc.clf import device, transport

    found = transport.USB.find("usb") or []
    supported = [
        (vid, pid, bus, dev, device.usb_device_map[(vid, pid)])
        for vid, pid, bus, dev in found
        if (vid, pid) in device.usb_device_map
    ]
    out = []
    for vid, pid, bus, dev, driver in supported:
        twins = sum(1 for v, p, *_ in supported if (v, p) == (vid, pid))
        path = f"usb:{vid:04x}:{pid:04x}" if twins == 1 else f"usb:{bus:03d}:{dev:03d}"
        out.append((path, driver))
    return out


class _DeadlineFrontend:
    """An nfcpy ContactlessFrontend whose ``exchange`` keeps to a deadline (module
    docstring): ``until`` (monotonic seconds, ``None``: no deadline) shortens each
    exchange's time-out, and an exchange after it fails at once with nfcpy's
    ``TimeoutError``. Everything else is the frontend's."""

    def __init__(self, clf: Any, timeout_error: type[Exception]) -> None:
        self.clf = clf
        self.until: float | None = None
        self._timeout_error = timeout_error

    def exchange(self, send_data: Any, timeout: float) -> Any:
        if self.until is not None:
            left = self.until - time.monotonic()
            if left <= 0:
                raise self._timeout_error("the command's deadline passed")
            timeout = min(timeout, left)
        return self.clf.exchange(send_data, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clf, name)


class NfcReader(Reader):
    """An nfcpy contactless frontend as a :class:`~terminal.readers.base.Reader`.

    ``spec`` is the nfcpy path (``udp:127.0.0.1:54321``, ``usb``); ``targets`` the
    technologies polled; ``device`` an nfcpy device already open (module docstring);
    ``command_timeout`` the deadline of a command sent without one. Not thread-safe:
    one thread per reader.
    """

    def __init__(
        self,
        spec: str,
        *,
        targets: tuple[str, ...] = DEFAULT_TARGETS,
        device: Any = None,
        command_timeout: float | None = None,
    ) -> None:
        import nfc
        import nfc.clf
        import nfc.tag
        import nfc.tag.tt4

        self._nfc = nfc
        self.spec = check_nfc_path(spec)
        self.path = f"nfc:{self.spec}"
        self.targets = tuple(targets)
        self.feedback = RecordingFeedback()
        if command_timeout is not None:
            self.command_timeout = command_timeout
        self._tag: Any = None
        self._lost = False
        self._removal_brty: str | None = None  # polled for by card_present after field_off
        if device is not None:
            clf = nfc.ContactlessFrontend()
            clf.device = device
        else:
            try:
                clf = nfc.ContactlessFrontend(self.spec)
            except OSError as exc:
                raise ReaderUnavailableError(
                    f"no contactless frontend on {self.path}: {exc}"
                ) from exc
        self._clf: Any = _DeadlineFrontend(clf, nfc.clf.TimeoutError)

    def __repr__(self) -> str:
        return f"NfcReader({self.path!r})"

    # --- activation ------------------------------------------------------------------

    def _sense(self, brty: str) -> Any:
        nfc = self._nfc
        try:
            return self._clf.sense(nfc.clf.RemoteTarget(brty), iterations=1)
        except nfc.clf.UnsupportedTargetError:
            log.info("%s does not poll %s", self.path, brty)
            self.targets = tuple(t for t in self.targets if t != brty)
            return None
        except nfc.clf.CommunicationError as exc:
            log.debug("sense %s: %s", brty, exc)
            return None
        except OSError as exc:
            raise ReaderUnavailableError(f"{self.path}: {exc}") from exc

    def _activate(self, target: Any) -> Any:
        """The ISO-DEP tag for a sensed target, or ``None`` (not ISO-DEP, or it failed)."""
        nfc = self._nfc
        if target.sel_res and target.sel_res[0] & 0x40:  # NFC-DEP peer, not a card
            return None
        try:
            tag = nfc.tag.activate(self._clf, target)
        except OSError as exc:
            raise ReaderUnavailableError(f"{self.path}: {exc}") from exc
        if tag is None:
            return None
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            log.info("ignoring %s on %s: not ISO-DEP", type(tag).__name__, self.path)
            return None
        return tag

    def _poll(self, deadline: float | None, targets: tuple[str, ...]) -> CardInfo:
        while True:
            if not targets:
                raise ReaderUnavailableError(f"{self.path} polls none of {DEFAULT_TARGETS}")
            for brty in targets:
                if deadline is not None and time.monotonic() >= deadline:
                    raise NoCardError(f"no ISO-DEP card on {self.path}")
                target = self._sense(brty)
                if target is None:
                    continue
                tag = self._activate(target)
                if tag is not None:
                    self._tag, self._lost, self._removal_brty = tag, False, None
                    return CardInfo(uid=bytes(tag.identifier), protocol=f"ISO-DEP {brty}")
            targets = tuple(t for t in targets if t in self.targets)

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """Poll Type A and Type B until an ISO-DEP card is activated (module docstring).

        A card activated before is dropped first: the field goes off for the reset
        time before polling, so every call gives a freshly activated card.
        """
        if self._tag is not None:
            self._tag = None
            self._mute()
            time.sleep(RESET_TIME)
        self._removal_brty = None
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        return self._poll(deadline, self.targets)

    def repower(self) -> CardInfo:
        """Field off for the reset time, then sense and activate the card again."""
        if self._tag is None:
            raise NoCardError(f"no card activated on {self.path}: call wait_for_card first")
        brty = self._tag.target.brty
        self._tag = None
        self._mute()
        time.sleep(RESET_TIME)
        # The card comes back within a few polls or has left: three nfcpy senses.
        deadline = time.monotonic() + 3.0
        try:
            return self._poll(deadline, (brty, *[t for t in self.targets if t != brty]))
        except NoCardError as exc:
            raise CardRemovedError(f"the card did not come back after repower ({exc})") from exc

    def _mute(self) -> None:
        try:
            self._clf.device.mute()
        except OSError as exc:
            raise ReaderUnavailableError(f"{self.path}: {exc}") from exc

    def card_present(self) -> bool:
        """nfcpy's ISO-DEP presence check (an R(NAK), ISO/IEC 14443-4 §7.6.6) on an
        activated card; after :meth:`field_off`, one poll for the card's technology
        with the field on, then the field off again (Book D §9.5)."""
        if self._tag is None:
            brty = self._removal_brty
            if brty is None:
                return False
            found = self._sense(brty) is not None
            self._mute()
            if not found:
                self._removal_brty = None
            return found
        if self._lost:
            return False
        try:
            present = bool(self._tag.is_present)
        except OSError as exc:
            raise ReaderUnavailableError(f"{self.path}: {exc}") from exc
        self._lost = not present
        return present

    def field_off(self) -> None:
        """The field off (``device.mute()``): the card loses power; :meth:`card_present`
        polls for it until it leaves."""
        if self._tag is not None:
            self._removal_brty = None if self._lost else self._tag.target.brty
            self._tag = None
        try:
            self._mute()
        except ReaderUnavailableError as exc:
            log.info("field off on %s: %s", self.path, exc)

    def close(self) -> None:
        """Field off and release the frontend."""
        self._tag = None
        try:
            self._clf.close()
        except Exception as exc:  # closing must not fail a caller's clean-up
            log.debug("closing %s: %s", self.path, exc)

    # --- APDUs -----------------------------------------------------------------------

    def _send(self, apdu: bytes) -> bytes:
        nfc = self._nfc
        tt4 = nfc.tag.tt4
        try:
            answer = self._tag.transceive(bytearray(apdu))
        except tt4.Type4TagCommandError as exc:
            if exc.errno == nfc.tag.TIMEOUT_ERROR:
                self._stopped_answering(apdu, exc)
            raise CommunicationError(f"{self.path}, INS {apdu[1]:02X}: {exc}") from exc
        except nfc.clf.BrokenLinkError as exc:
            self._lost = True
            raise CardRemovedError(f"the RF link broke on {self.path}: {exc}") from exc
        except nfc.clf.TimeoutError as exc:  # a waiting time extension that never ended
            self._stopped_answering(apdu, exc)
        except nfc.clf.CommunicationError as exc:
            raise CommunicationError(f"{self.path}, INS {apdu[1]:02X}: {exc!r}") from exc
        except OSError as exc:
            raise ReaderUnavailableError(f"{self.path}: {exc}") from exc
        if answer is None:
            raise CommunicationError(f"{self.path}: no answer to INS {apdu[1]:02X}")
        return bytes(answer)

    def _stopped_answering(self, apdu: bytes, exc: Exception) -> NoReturn:
        """No answer after nfcpy's retransmissions: past the command's deadline a
        :class:`CardTimeoutError` (the field is reset), else the card left."""
        self._lost = True
        until = self._clf.until
        if until is not None and time.monotonic() >= until:
            self.field_off()
            raise CardTimeoutError(
                f"the card did not answer INS {apdu[1]:02X} in time on {self.path}"
            ) from exc
        raise CardRemovedError(
            f"the card stopped answering on {self.path} (INS {apdu[1]:02X}: {exc})"
        ) from exc

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        """Exchange one C-APDU over ISO-DEP within ``timeout`` s; 61xx/6Cxx followed
        (module docstring)."""
        if self._tag is None:
            raise NoCardError(f"no card activated on {self.path}: call wait_for_card first")
        if self._lost:
            raise CardRemovedError(f"the card left the field of {self.path}")
        limit = self.command_timeout if timeout is None else timeout
        self._clf.until = time.monotonic() + limit
        try:
            return complete_exchange(self._send, bytes(c_apdu))
        finally:
            self._clf.until = None
