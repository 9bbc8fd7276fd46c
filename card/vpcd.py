"""Present a software card to pcscd through the vsmartcard ``vpcd`` driver.

vpcd (Debian package vsmartcard-vpcd) is a PC/SC reader driver that listens on TCP
(35963 for ``Virtual PCD 00 00``, 35964 for ``00 01``). A card is a TCP client: while
it is connected, pcscd sees a card in the reader. Each message is a two-byte
big-endian length and a payload; a one-byte payload is a control code (0 power off,
1 power on, 2 reset, 4 get ATR, answered with the ATR), a longer one is a C-APDU
answered with the R-APDU.

vpcd writes the length and the payload in two ``send`` calls, so a reader socket
without ``TCP_QUICKACK`` waits for the peer's delayed ACK (about 44 ms per APDU, as
bench/test_bench_card_pcsc.py measures). The socket here re-arms ``TCP_QUICKACK`` around every
read, which Linux clears after use; ``quickack=False`` keeps the naive socket (for the
benchmark that shows the trap).

A presentation (:func:`serve_tap`) ends when vpcd closes, the caller stops it, the card
leaves the field (``max_apdus``, or :class:`~card.transport.CardRemoved` from the
card), or, on request, when the reader powers the card off after at least one C-APDU
(a PC/SC client released the card: pcscd powers an unused card down at once) or no
C-APDU came for ``idle_timeout`` seconds after the first. The card is powered off and
the socket closed (the card is removed) at the end of every presentation.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Final

from card.errors import CardError
from card.transport import CardApplication, CardRemoved

__all__ = [
    "REMOVAL_GAP",
    "VPCD_PORT",
    "CardApplication",
    "ReaderBusyError",
    "TapEnd",
    "VpcdConnection",
    "VpcdTap",
    "serve_once",
    "serve_tap",
]

log = logging.getLogger(__name__)

#: TCP port of the first vpcd reader (``Virtual PCD 00 00``); the second is +1.
VPCD_PORT = 35963

#: Seconds a vpcd reader stays empty between two presentations: longer than pcscd's
#: 400 ms presence poll. pcscd learns of a removal only when a poll finds the reader
#: empty (a card pulled during a command marks the reader empty at once, but not for
#: pcscd's event handler); a card presented before that poll is taken for the one that
#: left, and never announced to PC/SC clients (or announced with the old card's
#: protocol) until it leaves in turn.
REMOVAL_GAP: Final = 0.5

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_STOP_POLL = 0.05


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class ReaderBusyError(CardError, ConnectionError):
    """vpcd accepted the connection but never spoke: another card holds that reader.

    vpcd serves one card per port; a second one waits in the listen queue, unpolled.
    """


class TapEnd(enum.Enum):
    """Why a presentation to vpcd ended."""

    CLOSED = "closed"  #: vpcd closed the connection (pcscd stopped)
    STOPPED = "stopped"  #: the caller's ``stop`` was set
    PULLED_AWAY = "pulled away"  #: ``max_apdus`` answered, or the card raised CardRemoved
    POWERED_OFF = "powered off"  #: the reader powered the card off after a C-APDU
    IDLE = "idle"  #: ``idle_timeout`` without a C-APDU after the first


@dataclass
class VpcdTap:
    """What one presentation did: C-APDUs answered and why it ended."""

    apdus: int = 0
    end: TapEnd = TapEnd.CLOSED


class VpcdConnection:
    """One presentation of a card to a vpcd reader: connect = present, close = remove.

    ``quickack=False`` leaves ``TCP_QUICKACK`` alone: each APDU then waits for a
    delayed ACK (module docstring); only useful to measure that.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = VPCD_PORT,
        timeout: float = 5.0,
        *,
        quickack: bool = True,
    ):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack = quickack
        if quickack:
            _quickack(self._sock)

    def settimeout(self, seconds: float | None) -> None:
        """Time-out of a wait for the next message (``TimeoutError`` when it expires)."""
        self._sock.settimeout(seconds)

    def _read_exact(self, n: int, *, may_time_out: bool) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if self._quickack:
                _quickack(self._sock)
            try:
                chunk = self._sock.recv(n - len(buf))
            except TimeoutError:
                if may_time_out and not buf:
                    raise
                continue  # never split a message: keep reading what has begun
            if self._quickack:
                _quickack(self._sock)
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def receive(self) -> bytes | None:
        """The next message from vpcd, or ``None`` when the reader side closed."""
        head = self._read_exact(2, may_time_out=True)
        if head is None:
            return None
        (length,) = struct.unpack(">H", head)
        return self._read_exact(length, may_time_out=False) if length else b""

    def send(self, payload: bytes) -> None:
        """Send one message (length-prefixed, in a single write)."""
        self._sock.sendall(struct.pack(">H", len(payload)) + payload)

    def close(self) -> None:
        """Remove the card from the reader."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> VpcdConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_once(
    card: CardApplication,
    *,
    host: str = "127.0.0.1",
    port: int = VPCD_PORT,
    max_apdus: int | None = None,
    stop: threading.Event | None = None,
    quickack: bool = True,
) -> int:
    """Present ``card`` until vpcd closes, ``max_apdus`` were answered, the card leaves
    the field (``CardRemoved``) or ``stop`` is set; return the C-APDUs answered.

    ``max_apdus`` models a card pulled away after that many commands. pcscd polls an
    inserted card for its ATR every ~400 ms, so a presentation never idles out:
    ``stop`` (checked every 50 ms while waiting) is how a caller takes the card away.
    :func:`serve_tap` offers more ways to end a presentation.
    """
    return serve_tap(
        card, host=host, port=port, max_apdus=max_apdus, stop=stop, quickack=quickack
    ).apdus


def serve_tap(
    card: CardApplication,
    *,
    host: str = "127.0.0.1",
    port: int = VPCD_PORT,
    max_apdus: int | None = None,
    stop: threading.Event | None = None,
    end_on_power_off: bool = False,
    idle_timeout: float | None = None,
    busy_timeout: float | None = None,
    quickack: bool = True,
) -> VpcdTap:
    """Present ``card`` once (one tap) and say what happened (:class:`VpcdTap`).

    Ends as :func:`serve_once` does, and also, with ``end_on_power_off``, when the
    reader powers the card off after at least one C-APDU, or after ``idle_timeout``
    seconds without a C-APDU once one came. A power-off before any C-APDU (pcscd
    powering an unused card down) does not end it. With ``busy_timeout``, no message
    at all from vpcd in that many seconds (pcscd polls every ~400 ms) raises
    :class:`ReaderBusyError`. ``OSError`` from connecting (vpcd not listening) goes up.
    """
    tap = VpcdTap()
    polling = stop is not None or idle_timeout is not None or busy_timeout is not None
    connected = last_apdu = time.monotonic()
    heard = False
    with VpcdConnection(host, port, quickack=quickack) as conn:
        conn.settimeout(_STOP_POLL if polling else None)
        try:
            while True:
                if max_apdus is not None and tap.apdus >= max_apdus:
                    tap.end = TapEnd.PULLED_AWAY
                    break
                if stop is not None and stop.is_set():
                    tap.end = TapEnd.STOPPED
                    break
                now = time.monotonic()
                if idle_timeout is not None and tap.apdus and now - last_apdu >= idle_timeout:
                    tap.end = TapEnd.IDLE
                    break
                if busy_timeout is not None and not heard and now - connected >= busy_timeout:
                    raise ReaderBusyError(f"vpcd on port {port} sent nothing in {busy_timeout:g} s")
                try:
                    msg = conn.receive()
                except TimeoutError:
                    continue
                if msg is None:
                    tap.end = TapEnd.CLOSED
                    break
                heard = True
                if len(msg) == 1:
                    code = msg[0]
                    if code == _POWER_OFF:
                        card.power_off()
                        if end_on_power_off and tap.apdus:
                            tap.end = TapEnd.POWERED_OFF
                            break
                    elif code in (_POWER_ON, _RESET):
                        card.power_on()
                    elif code == _GET_ATR:
                        conn.send(card.atr)
                    else:
                        log.warning("vpcd sent unknown control code %d", code)
                    continue
                started = time.perf_counter()
                try:
                    answer = card.process(msg)
                except CardRemoved:
                    tap.end = TapEnd.PULLED_AWAY  # no answer: the socket closes below
                    break
                conn.send(answer)
                tap.apdus += 1
                last_apdu = time.monotonic()
                log.debug(
                    "APDU %d answered in %.3f ms",
                    tap.apdus,
                    1e3 * (time.perf_counter() - started),
                )
        finally:
            card.power_off()
    return tap
