"""Present a software card to pcscd through the vsmartcard ``vpcd`` driver.

vpcd (Debian package vsmartcard-vpcd) is a PC/SC reader driver that listens on TCP
(35963 for ``Virtual PCD 00 00``, 35964 for ``00 01``). A card is a TCP client: while
it is connected, pcscd sees a card in the reader. Each message is a two-byte
big-endian length and a payload; a one-byte payload is a control code (0 power off,
1 power on, 2 reset, 4 get ATR, answered with the ATR), a longer one is a C-APDU
answered with the R-APDU.

vpcd writes the length and the payload in two ``send`` calls, so a reader socket
without ``TCP_QUICKACK`` waits for the peer's delayed ACK (about 44 ms per APDU, see
shared/notes/environment.md). The socket here re-arms ``TCP_QUICKACK`` around every
read, which Linux clears after use.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

from card.transport import CardApplication

__all__ = ["VPCD_PORT", "CardApplication", "VpcdConnection", "serve_once"]

log = logging.getLogger(__name__)

#: TCP port of the first vpcd reader (``Virtual PCD 00 00``); the second is +1.
VPCD_PORT = 35963

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_STOP_POLL = 0.05


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class VpcdConnection:
    """One presentation of a card to a vpcd reader: connect = present, close = remove."""

    def __init__(self, host: str = "127.0.0.1", port: int = VPCD_PORT, timeout: float = 5.0):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _quickack(self._sock)

    def settimeout(self, seconds: float | None) -> None:
        """Time-out of a wait for the next message (``TimeoutError`` when it expires)."""
        self._sock.settimeout(seconds)

    def _read_exact(self, n: int, *, may_time_out: bool) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            _quickack(self._sock)
            try:
                chunk = self._sock.recv(n - len(buf))
            except TimeoutError:
                if may_time_out and not buf:
                    raise
                continue  # never split a message: keep reading what has begun
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
) -> int:
    """Present ``card`` until vpcd closes, ``max_apdus`` were answered, or ``stop`` is set.

    Returns the number of C-APDUs answered. ``max_apdus`` models a card pulled away
    after that many commands. pcscd polls an inserted card for its ATR every ~400 ms,
    so a presentation never idles out: ``stop`` (checked every 50 ms while waiting)
    is how a caller takes the card away.
    """
    answered = 0
    with VpcdConnection(host, port) as conn:
        conn.settimeout(_STOP_POLL if stop is not None else None)
        while max_apdus is None or answered < max_apdus:
            if stop is not None and stop.is_set():
                break
            try:
                msg = conn.receive()
            except TimeoutError:
                continue
            if msg is None:
                break
            if len(msg) == 1:
                code = msg[0]
                if code == _POWER_OFF:
                    card.power_off()
                elif code in (_POWER_ON, _RESET):
                    card.power_on()
                elif code == _GET_ATR:
                    conn.send(card.atr)
                else:
                    log.warning("vpcd sent unknown control code %d", code)
                continue
            started = time.perf_counter()
            conn.send(card.process(msg))
            answered += 1
            log.debug(
                "APDU %d answered in %.3f ms", answered, 1e3 * (time.perf_counter() - started)
            )
    return answered
