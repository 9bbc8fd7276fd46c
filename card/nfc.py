"""Present a software card over nfcpy as an ISO/IEC 14443-4 Type A PICC (ISO-DEP target).

nfcpy (1.0.4) reads Type 4 tags but has no Type 4 card emulation: this module is that
card side. It listens as a Type A target whose SAK announces ISO/IEC 14443-4, answers the
RATS with an ATS (ISO/IEC 14443-4:2018 §5.2, §5.3), then runs the half-duplex block
protocol of §7 over ``clf.exchange``: I-blocks with block numbers and chaining in both
directions, R(ACK)/R(NAK) recovery, presence checks, optional S(WTX) and S(DESELECT).

The wire format is made testable apart from nfcpy: :class:`IsoDepPicc` is the pure block
state machine (frames in, frames out); :func:`serve_nfc` drives it with an nfcpy
``ContactlessFrontend`` and a :class:`~card.transport.CardApplication`.

Built for, and tested with, nfcpy's ``udp`` driver (``udp:HOST:PORT``, an emulated RF
link over loopback datagrams). Notes on that driver that shape the code:

- Frames travel without the two-byte EDC (CRC_A), so a frame of ``n`` bytes here is
  ``n + 2`` bytes against FSC/FSD; the driver takes at most 290 bytes per frame.
- The listening card binds ``0.0.0.0:PORT`` whatever host the path names.
- A reader that mutes (``clf.device.mute()``, or its next ``sense``) sends ``RFOFF``:
  the card sees field loss. A card cannot send ``RFOFF``; a card pulled away just falls
  silent and the reader times out.
- Each ``clf.listen`` closes and re-binds the socket: a SENS_REQ sent in that gap is
  lost and the reader polls again a second later. :func:`wait_listening` tells a reader
  when the card answers.
- A listen waits at least 0.5 s for a datagram; :func:`serve_nfc` cuts it short when
  ``stop`` is set by sending its own card a frame.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from card.errors import CardError
from card.transport import CardApplication, CardRemoved

__all__ = [
    "CARRIER_HZ",
    "DEFAULT_PATH",
    "FS_TABLE",
    "SAK_ISO_DEP",
    "SW_NO_PRECISE_DIAGNOSIS",
    "IsoDepPicc",
    "PiccParameters",
    "ServeStats",
    "SessionEnd",
    "Step",
    "StepKind",
    "fwt_seconds",
    "parse_rats",
    "sens_res_for",
    "serve_nfc",
    "wait_listening",
]

log = logging.getLogger(__name__)

#: nfcpy's default for ``udp`` paths (nfc/clf/device.py), on loopback.
DEFAULT_PATH = "udp:127.0.0.1:54321"

#: FSDI/FSCI -> FSD/FSC in bytes (ISO/IEC 14443-4:2018 §5.2 and §5.3.3). Frame sizes
#: count the PCB, the INF field and the two-byte EDC. Codes above 8 are read as 256: the
#: 2018 edition's 512-4096 do not fit the udp driver's 290-byte frames.
FS_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)

#: The carrier frequency fc in Hz (ISO/IEC 14443-2); FWT = (256 x 16 / fc) x 2**FWI (§7.3).
CARRIER_HZ = 13.56e6

_EDC_LEN = 2  # CRC_A, not carried by the udp driver

# PCB codings, ISO/IEC 14443-4:2018 §7.2.2.1 (no CID, no NAD).
_I_BLOCK = 0x02
_CHAINING = 0x10
_CID_FOLLOWING = 0x08
_NAD_FOLLOWING = 0x04
_R_ACK = 0xA2
_R_NAK = 0xB2
_S_DESELECT = 0xC2
_S_WTX = 0xF2

#: The SAK (SEL_RES) of a PICC compliant with ISO/IEC 14443-4 (ISO/IEC 14443-3, SAK b6).
SAK_ISO_DEP = 0x20
#: Short frames that start Type A polling (ISO/IEC 14443-3): REQA (SENS_REQ), WUPA (ALL_REQ).
_POLL_COMMANDS = (b"\x26", b"\x52")
#: Status word for an exception inside the card application: ISO/IEC 7816-4 "no precise
#: diagnosis".
SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"

_WTXM = 2  # each S(WTX) asks for 2 x FWT (ISO/IEC 14443-4:2018 §7.4, WTXM 1-59)
_POLL = 0.1  # seconds between checks of ``stop`` while waiting for the reader


def fwt_seconds(fwi: int) -> float:
    """Frame waiting time for FWI 0-14 (ISO/IEC 14443-4:2018 §7.3): 302 us x 2**FWI."""
    if not 0 <= fwi <= 14:
        raise ValueError(f"FWI must be 0-14, not {fwi}")
    return 256 * 16 / CARRIER_HZ * (1 << fwi)


def parse_rats(frame: bytes) -> tuple[int, int] | None:
    """FSD and CID from a RATS (ISO/IEC 14443-4:2018 §5.2), or ``None`` if it is not one.

    RATS is ``E0 PARAM``: FSDI in the high nibble of PARAM, CID in the low one. CID 15 is
    RFU, so the frame is then no valid RATS, and the PICC stays silent (§5.7.1.2).
    """
    if len(frame) != 2 or frame[0] != 0xE0 or frame[1] & 0x0F == 0x0F:
        return None
    fsdi = frame[1] >> 4
    return FS_TABLE[min(fsdi, 8)], frame[1] & 0x0F


@dataclass(frozen=True)
class PiccParameters:
    """What the card announces at activation (ISO/IEC 14443-3 Type A, 14443-4 §5.3).

    ``uid`` is the NFCID1 (4 or 7 bytes; nfcpy's udp listener mishandles 10). ``None``
    draws a fresh random single-size UID (``08`` then three random bytes, ISO/IEC
    14443-3) for every tap, as contactless payment cards do. ``fsci`` gives the largest
    frame the card takes (FSC, :data:`FS_TABLE`), ``fwi`` its frame waiting time
    (:func:`fwt_seconds`; 9 is about 155 ms, room for a loaded host), ``sfgi`` the
    start-up frame guard time code, ``historical_bytes`` the ATS tail (§5.3.7).
    """

    uid: bytes | None = None
    fsci: int = 8
    fwi: int = 9
    sfgi: int = 0
    historical_bytes: bytes = b""

    def __post_init__(self) -> None:
        if self.uid is not None and len(self.uid) not in (4, 7):
            raise ValueError("uid must be 4 or 7 bytes")
        if self.uid is not None and len(self.uid) == 7 and self.uid[0] == 0x88:
            raise ValueError("a double-size uid must not start with the cascade tag 88")
        if not 0 <= self.fsci <= 8:
            raise ValueError("fsci must be 0-8")
        fwt_seconds(self.fwi)
        if not 0 <= self.sfgi <= 14:
            raise ValueError("sfgi must be 0-14")
        if len(self.historical_bytes) > 15:
            raise ValueError("at most 15 historical bytes")

    @property
    def fsc(self) -> int:
        """The largest frame the card accepts, EDC included."""
        return FS_TABLE[self.fsci]

    @property
    def fwt(self) -> float:
        """The frame waiting time in seconds."""
        return fwt_seconds(self.fwi)

    def ats(self) -> bytes:
        """The ATS (ISO/IEC 14443-4:2018 §5.3): TL T0 TA(1) TB(1) TC(1) historical bytes.

        T0 announces TA, TB and TC and carries FSCI. TA(1) = 80: 106 kbit/s only, the same
        in both directions. TB(1) = FWI || SFGI. TC(1) = 00: neither NAD nor CID. nfcpy
        reads FSCI from byte 1 and FWI from byte 3, so TA and TB must both be present.
        """
        body = bytes((0x70 | self.fsci, 0x80, self.fwi << 4 | self.sfgi, 0x00)) + bytes(
            self.historical_bytes
        )
        return bytes((len(body) + 1,)) + body

    def tap_uid(self) -> bytes:
        """The UID for the next tap: the fixed one, or a fresh random single-size UID."""
        return self.uid if self.uid is not None else b"\x08" + secrets.token_bytes(3)


def sens_res_for(uid: bytes) -> bytes:
    """SENS_RES (ATQA) for a UID: its size in b8-b7, bit frame anticollision b1 set.

    The first byte is ``04`` for a 4-byte UID and ``44`` for 7 bytes (ISO/IEC 14443-3);
    the second (proprietary coding, T1T platform) is 00.
    """
    return bytes(((0x04, 0x44)[len(uid) == 7], 0x00))


class StepKind(enum.Enum):
    """What the caller of :meth:`IsoDepPicc.receive` has to do next."""

    SEND = "send"  #: transmit ``data``, then wait for the next block
    IGNORE = "ignore"  #: invalid block: stay silent and keep receiving (§7.6.7.2)
    PROCESS = "process"  #: ``data`` is a whole C-APDU: pass the R-APDU to ``respond``
    DESELECT = "deselect"  #: transmit ``data`` (S(DESELECT) response); the session ends
    WTX_GRANTED = "wtx_granted"  #: the reader answered the S(WTX) request


class Step(NamedTuple):
    """One decision of the PICC block state machine."""

    kind: StepKind
    data: bytes = b""


class IsoDepPicc:
    """The PICC side of the ISO-DEP half-duplex block protocol (ISO/IEC 14443-4:2018 §7).

    Pure: frames (PCB || INF, without EDC) in, decisions out. No CID and no NAD are
    supported (TC(1) = 00), so blocks carrying either are invalid (§7.2.2.2); invalid
    blocks get no answer and change nothing (§7.6.7.2). ``fsd`` and ``fsc`` are frame
    sizes with the EDC counted.

    Block numbering (§7.6.4.2): the PICC block number starts at 1, toggles when an
    I-block arrives and when an R(ACK) with the other number arrives. An I-block that
    carries the PICC's current number breaks the PCD's numbering rules; the standard
    lets the PICC leave it unanswered, and it does.

    Block handling (§7.6.3 chaining, §7.6.5 rules): an I-block with the chaining bit is
    acknowledged with R(ACK); the last one yields the whole C-APDU, answered with
    I-blocks of at most FSD - 3 INF bytes, chained. R(ACK) or R(NAK) with the PICC's
    current number: the last block again. R(NAK) with the other number: R(ACK) (this is
    nfcpy's presence check, §7.6.6). R(ACK) with the other number while chaining: the
    next piece. An empty I-block (the other presence check of §7.6.6) is answered with
    an empty I-block without reaching the application. S(DESELECT) is answered in kind
    (§8). S(WTX) (§7.4) is the PICC's to ask: :meth:`wtx_request`.
    """

    def __init__(self, *, fsd: int, fsc: int) -> None:
        if fsd < 16 or fsc < 16:
            raise ValueError("FSD and FSC are at least 16 bytes")
        self.fsd = fsd
        self.fsc = fsc
        self._block_number = 1  # rule C
        self._last: bytes | None = None
        self._command = bytearray()  # the PCD's chain received so far
        self._response = b""  # what remains of the R-APDU (PICC chaining)
        self._wtxm: int | None = None  # set while an S(WTX) request awaits its answer

    @property
    def block_number(self) -> int:
        """The PICC's current block number (0 or 1)."""
        return self._block_number

    @property
    def chaining(self) -> bool:
        """True while pieces of an R-APDU remain to be sent."""
        return bool(self._response)

    @property
    def receiving_chain(self) -> bool:
        """True while the PCD is part-way through a chained C-APDU."""
        return bool(self._command)

    def _sent(self, frame: bytes) -> Step:
        self._last = frame
        return Step(StepKind.SEND, frame)

    def _next_piece(self) -> bytes:
        size = self.fsd - _EDC_LEN - 1
        piece, self._response = self._response[:size], self._response[size:]
        pcb = _I_BLOCK | self._block_number | (_CHAINING if self._response else 0)
        frame = bytes((pcb,)) + piece
        self._last = frame
        return frame

    def receive(self, frame: bytes) -> Step:
        """Decide what to do with one block received from the PCD."""
        if not frame or len(frame) + _EDC_LEN > self.fsc:
            return Step(StepKind.IGNORE)
        pcb = frame[0]
        if self._wtxm is not None:
            return self._receive_in_wtx(frame)
        if pcb & 0xE2 == _I_BLOCK:
            return self._receive_i_block(frame)
        if pcb & 0xE6 == _R_ACK:
            return self._receive_r_block(frame)
        if pcb == _S_DESELECT and len(frame) == 1:
            return Step(StepKind.DESELECT, bytes((_S_DESELECT,)))
        return Step(StepKind.IGNORE)

    def _receive_i_block(self, frame: bytes) -> Step:
        pcb = frame[0]
        if pcb & (_CID_FOLLOWING | _NAD_FOLLOWING) or pcb & 1 == self._block_number:
            return Step(StepKind.IGNORE)
        self._block_number = pcb & 1  # rule D
        self._response = b""  # a new command ends any chain the PICC was sending
        if pcb & _CHAINING:
            self._command += frame[1:]
            return self._sent(bytes((_R_ACK | self._block_number,)))
        c_apdu = bytes(self._command) + frame[1:]
        self._command.clear()
        if not c_apdu:
            return self._sent(bytes((_I_BLOCK | self._block_number,)))
        return Step(StepKind.PROCESS, c_apdu)

    def _receive_r_block(self, frame: bytes) -> Step:
        pcb = frame[0]
        if pcb & _CID_FOLLOWING or len(frame) != 1:
            return Step(StepKind.IGNORE)
        if pcb & 1 == self._block_number:
            if self._last is None:  # nothing sent yet: acknowledge
                return self._sent(bytes((_R_ACK | self._block_number,)))
            return Step(StepKind.SEND, self._last)
        if pcb & 0x10:  # R(NAK), the other number
            return self._sent(bytes((_R_ACK | self._block_number,)))
        if self._response:  # R(ACK), the other number, while chaining
            self._block_number ^= 1  # rule E
            return Step(StepKind.SEND, self._next_piece())
        return Step(StepKind.IGNORE)

    def _receive_in_wtx(self, frame: bytes) -> Step:
        pcb = frame[0]
        if pcb == _S_WTX and len(frame) == 2:
            if frame[1] & 0x3F == self._wtxm:
                self._wtxm = None
                return Step(StepKind.WTX_GRANTED)
            return Step(StepKind.IGNORE)
        if pcb == _S_DESELECT and len(frame) == 1:
            self._wtxm = None
            return Step(StepKind.DESELECT, bytes((_S_DESELECT,)))
        if pcb & 0xFE == _R_NAK and len(frame) == 1 and self._last is not None:
            return Step(StepKind.SEND, self._last)  # the S(WTX) request was lost
        return Step(StepKind.IGNORE)

    def respond(self, r_apdu: bytes) -> bytes:
        """The first block of the answer to the C-APDU of the last PROCESS step."""
        self._wtxm = None
        self._response = bytes(r_apdu)
        return self._next_piece()

    def wtx_request(self, wtxm: int = _WTXM) -> bytes:
        """An S(WTX) request for ``wtxm`` x FWT (§7.4); the PCD must answer in kind."""
        if not 1 <= wtxm <= 59:
            raise ValueError("WTXM must be 1-59")
        self._wtxm = wtxm
        frame = bytes((_S_WTX, wtxm))
        self._last = frame
        return frame


class SessionEnd(enum.Enum):
    """Why an ISO-DEP session (one tap) ended."""

    DESELECTED = "deselected"  #: S(DESELECT) from the reader (§8)
    FIELD_OFF = "field off"  #: the reader's RFOFF, or a new poll from a reader that lost us
    IDLE = "idle"  #: ``idle_timeout`` passed without a frame
    STOPPED = "stopped"  #: the caller's ``stop`` was set
    PULLED_AWAY = "pulled away"  #: ``max_apdus`` answered


@dataclass
class ServeStats:
    """Counters of one :func:`serve_nfc` run (read them while it runs or after)."""

    activations: int = 0  #: RATS answered with an ATS
    taps: int = 0  #: activations after which the reader sent at least one block
    apdus: int = 0  #: C-APDUs answered
    ignored_blocks: int = 0  #: invalid blocks, left unanswered (§7.6.7.2)
    wtx_requests: int = 0  #: S(WTX) requests sent
    ends: list[SessionEnd] = field(default_factory=list)  #: why each session ended, in order


class _SessionEndedError(CardError):
    """Internal: the ISO-DEP session is over, for ``reason``."""

    def __init__(self, reason: SessionEnd) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _Link:
    """Typed face of the untyped nfcpy ``ContactlessFrontend`` in target mode."""

    def __init__(self, clf: Any, stop: threading.Event | None, idle_timeout: float | None):
        import nfc.clf

        self._clf = clf
        self._stop = stop
        self._idle_timeout = idle_timeout
        self._broken: type[Exception] = nfc.clf.BrokenLinkError
        self._timeout: type[Exception] = nfc.clf.TimeoutError
        self._transmission: type[Exception] = nfc.clf.TransmissionError

    def send(self, frame: bytes) -> None:
        """Transmit one frame and do not wait for an answer."""
        self._clf.exchange(bytearray(frame), 0)

    def exchange(self, frame: bytes | None) -> bytes:
        """Transmit ``frame`` (if any) and return the next frame from the reader.

        Raises :class:`_SessionEndedError` on field loss (``RFOFF``, or REQA/WUPA: a
        reader polling anew lost the card without switching its field off, e.g. it
        crashed), when ``stop`` is set, or after ``idle_timeout`` seconds without a
        frame. A datagram the driver cannot parse comes back as ``b""``, an invalid block.
        """
        out = None if frame is None else bytearray(frame)
        deadline = None if self._idle_timeout is None else time.monotonic() + self._idle_timeout
        while True:
            if self._stop is not None and self._stop.is_set():
                if out is not None:
                    self._clf.exchange(out, 0)
                raise _SessionEndedError(SessionEnd.STOPPED)
            wait = _POLL if self._stop is not None or deadline is not None else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _SessionEndedError(SessionEnd.IDLE)
                wait = min(_POLL, left)
            try:
                data = self._clf.exchange(out, wait)
            except self._broken as exc:
                raise _SessionEndedError(SessionEnd.FIELD_OFF) from exc
            except self._timeout:
                out = None
                continue
            except (self._transmission, ValueError):  # a datagram that is no frame
                return b""
            if data is None or bytes(data) in _POLL_COMMANDS:
                raise _SessionEndedError(SessionEnd.FIELD_OFF)
            if self._stop is not None and self._stop.is_set():
                raise _SessionEndedError(SessionEnd.STOPPED)
            return bytes(data)


class _Emulator:
    """One :func:`serve_nfc` run: listen, activate, run sessions, count."""

    def __init__(
        self,
        card: CardApplication,
        params: PiccParameters,
        stats: ServeStats,
        *,
        wtx: bool,
        stop: threading.Event | None,
        idle_timeout: float | None,
    ) -> None:
        self.card = card
        self.params = params
        self.stats = stats
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.pool = concurrent.futures.ThreadPoolExecutor(1, "card-nfc") if wtx else None

    def call_card(self, c_apdu: bytes) -> bytes:
        """``card.process``; an exception becomes SW 6F00 and never ends the loop.

        :class:`CardRemoved` is the card leaving the field: it goes up to end the tap.
        """
        try:
            return bytes(self.card.process(c_apdu))
        except CardRemoved:
            raise
        except Exception:
            log.exception("card application failed on INS %02X", c_apdu[1] if c_apdu[1:] else 0)
            return SW_NO_PRECISE_DIAGNOSIS

    def process(self, c_apdu: bytes, picc: IsoDepPicc, link: _Link) -> bytes:
        """Run the application; with WTX on, ask for more time every FWT/2 (§7.4)."""
        if self.pool is None:
            return self.call_card(c_apdu)
        future = self.pool.submit(self.call_card, c_apdu)
        fwt = self.params.fwt
        wait = fwt / 2
        while True:
            try:
                return future.result(timeout=wait)
            except concurrent.futures.TimeoutError:
                pass
            self.stats.wtx_requests += 1
            frame: bytes | None = picc.wtx_request(_WTXM)
            try:
                while True:
                    step = picc.receive(link.exchange(frame))
                    frame = None
                    if step.kind is StepKind.WTX_GRANTED:
                        break
                    if step.kind is StepKind.SEND:
                        frame = step.data
                    elif step.kind is StepKind.DESELECT:
                        future.result()  # the application finishes before power-off
                        link.send(step.data)
                        raise _SessionEndedError(SessionEnd.DESELECTED)
                    else:
                        self.stats.ignored_blocks += 1
            except _SessionEndedError:
                with contextlib.suppress(Exception):
                    future.result()
                raise
            wait = fwt * _WTXM / 2

    def session(self, link: _Link, fsd: int, max_apdus: int | None) -> SessionEnd:
        """Send the ATS and run ISO-DEP until the session ends; return why it ended."""
        picc = IsoDepPicc(fsd=fsd, fsc=self.params.fsc)
        answered = 0
        out: bytes | None = self.params.ats()
        seen_block = False
        try:
            while True:
                frame = link.exchange(out)
                out = None
                if not seen_block:
                    seen_block = True
                    self.stats.taps += 1
                step = picc.receive(frame)
                if step.kind is StepKind.PROCESS:
                    try:
                        answer = self.process(step.data, picc, link)
                    except CardRemoved:
                        return SessionEnd.PULLED_AWAY  # silent: the card is out of the field
                    out = picc.respond(answer)
                    answered += 1
                    self.stats.apdus += 1
                elif step.kind is StepKind.SEND:
                    out = step.data
                elif step.kind is StepKind.DESELECT:
                    link.send(step.data)
                    return SessionEnd.DESELECTED
                else:
                    self.stats.ignored_blocks += 1
                    log.debug("ignored invalid block %s", frame[:8].hex())
                if (
                    out is not None
                    and max_apdus is not None
                    and answered >= max_apdus
                    and not picc.chaining
                ):
                    link.send(out)
                    return SessionEnd.PULLED_AWAY
        except _SessionEndedError as end:
            return end.reason


def _open(path: str) -> Any:
    import nfc

    try:
        return nfc.ContactlessFrontend(path)
    except OSError as exc:
        raise OSError(f"no contactless frontend on {path!r}: {exc}") from exc


def serve_nfc(
    card: CardApplication,
    *,
    path: str = DEFAULT_PATH,
    taps: int | None = None,
    max_apdus: int | None = None,
    stop: threading.Event | None = None,
    params: PiccParameters | None = None,
    wtx: bool = False,
    listen_timeout: float = 1.0,
    idle_timeout: float | None = None,
    stats: ServeStats | None = None,
) -> int:
    """Present ``card`` as an ISO-DEP Type A card on nfcpy ``path``; return APDUs answered.

    Each tap: the card listens (ISO/IEC 14443-3 anticollision by nfcpy, SAK 20), takes
    the RATS, calls ``card.power_on()``, sends the ATS and runs the block protocol of
    ISO/IEC 14443-4:2018 §7 (see :class:`IsoDepPicc`), answering C-APDUs with
    ``card.process``. The session ends, and ``card.power_off()`` is called, on
    S(DESELECT) (§8; the card then waits for the next tap), field loss (the reader's
    ``RFOFF``, or a new poll from a reader that lost the card), ``idle_timeout`` seconds
    without a frame (``None``: wait for ever), ``stop``, or ``max_apdus``.

    ``taps`` counts activations after which the reader sent at least one block; one it
    abandoned at once (its 30 ms RATS time-out expired) powers the card on and off but
    is no tap. ``None`` serves until ``stop`` is set, which is checked between frames,
    every 0.1 s while waiting for one, and (udp paths) wakes a listening card at once;
    ``listen_timeout`` is how long each nfcpy listen lasts before the next.

    ``max_apdus`` models a card pulled from the field: after the R-APDU of that many
    C-APDUs of one tap has been sent whole, the card falls silent (the reader then
    times out) and the tap ends. ``wtx`` runs ``card.process`` in a worker thread and
    sends S(WTX) (§7.4) whenever it takes more than half the FWT; off, it runs inline
    (faster) and a slow application makes the reader retry. An exception from
    ``card.process`` is logged and answered with SW 6F00. ``stats``, if given, is
    filled in as the card runs.
    """
    import nfc.clf

    if taps is not None and taps < 1:
        raise ValueError("taps must be at least 1 (or None)")
    if max_apdus is not None and max_apdus < 1:
        raise ValueError("max_apdus must be at least 1 (or None)")
    params = params or PiccParameters()
    stats = stats if stats is not None else ServeStats()
    emulator = _Emulator(card, params, stats, wtx=wtx, stop=stop, idle_timeout=idle_timeout)
    clf = _open(path)
    done = threading.Event()
    if stop is not None and path.startswith("udp"):
        threading.Thread(
            target=_wake_on_stop, args=(stop, done, path), name="card-nfc-stop", daemon=True
        ).start()
    uid = params.tap_uid()
    try:
        while taps is None or stats.taps < taps:
            if stop is not None and stop.is_set():
                break
            target = nfc.clf.LocalTarget(
                "106A", sens_res=sens_res_for(uid), sdd_res=uid, sel_res=bytes((SAK_ISO_DEP,))
            )
            try:
                activated = clf.listen(target, listen_timeout)
            except ValueError:  # a datagram with bad hex: nfcpy's udp driver lets it out
                continue
            rats = None if activated is None else activated.tt4_cmd
            parsed = None if rats is None else parse_rats(bytes(rats))
            if parsed is None:
                continue  # no reader, or no valid RATS: keep listening (§5.7.1.2)
            fsd = min(parsed[0], clf.max_send_data_size + _EDC_LEN)
            stats.activations += 1
            taps_before = stats.taps
            card.power_on()
            try:
                reason = emulator.session(_Link(clf, stop, idle_timeout), fsd, max_apdus)
            finally:
                card.power_off()
            stats.ends.append(reason)
            if stats.taps > taps_before:
                uid = params.tap_uid()
            log.debug("session ended: %s", reason.value)
    finally:
        done.set()
        clf.close()
        if emulator.pool is not None:
            emulator.pool.shutdown(wait=True)
    return stats.apdus


def _udp_address(path: str) -> tuple[str, int]:
    """Host and port of an nfcpy ``udp[:host][:port]`` path (nfc/clf/device.py)."""
    parts = path.split(":")
    if parts[0] != "udp":
        raise ValueError(f"not an nfcpy udp path: {path!r}")
    host = parts[1] if len(parts) > 1 and parts[1] else "localhost"
    port = int(parts[2]) if len(parts) > 2 and parts[2] else 54321
    return socket.gethostbyname(host), port


def _wake_on_stop(stop: threading.Event, done: threading.Event, path: str) -> None:
    """Cut a listen short once ``stop`` is set: nfcpy waits there at least 0.5 s.

    Any frame other than an anticollision command makes nfcpy's udp listener return,
    so one datagram to the card's own port (the card binds every interface) does it.
    """
    while not done.is_set():
        if stop.wait(_POLL / 2):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"106A 00", ("127.0.0.1", _udp_address(path)[1]))
            return


def wait_listening(path: str = DEFAULT_PATH, timeout: float = 5.0, interval: float = 0.002) -> bool:
    """Poll a card on an nfcpy ``udp`` path with SENS_REQ until it answers (or time-out).

    For a reader about to ``connect``: a card that has just been started, or has just
    ended a tap, re-binds its socket first, and nfcpy's reader waits a whole second
    before polling again when its first SENS_REQ is lost. The probe speaks the udp
    driver's datagram format (``106A 26``) from a socket of its own; a listening card
    answers any SENS_REQ with its SENS_RES and keeps listening (ISO/IEC 14443-3). A
    card still in a session takes the SENS_REQ for a reader that lost it and ends that
    session (see :func:`serve_nfc`): probe only when no other reader is mid-tap.
    """
    address = _udp_address(path)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(interval)
        while time.monotonic() < deadline:
            sock.sendto(b"106A 26", address)
            try:
                data = sock.recv(1024)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if data.startswith(b"106A "):
                return True
    return False
