"""A serial bar-code scanner: one scanned code read from its port.

Scanners that are not keyboards (USB CDC-ACM, ``/dev/ttyACM0``; RS-232 through an
adapter, ``/dev/ttyUSB0``) send each code as a line of text ended by CR, LF or CR LF,
9600 baud 8N1 being their usual factory setting. :func:`read_code` opens the port raw
(no echo, no line editing: a CR ends the code, which a terminal's canonical mode
would not do), waits for one line within a time limit and closes the port. A keyboard
scanner needs none of this: it types the code on standard input.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty
from typing import Final

from terminal.apps.errors import AppError

__all__ = ["MAX_CODE", "ScannerError", "read_code"]

#: The longest line taken from a scanner (an EMV consumer-presented code is well under
#: 1 KiB of Base64); a longer one is refused, not cut.
MAX_CODE: Final = 4096


class ScannerError(AppError):
    """The scanner's port cannot be read, stayed silent, or sent no code."""


def _raw(fd: int) -> None:
    """Raw mode at 9600 baud, when the port is a terminal device (a pipe is left as
    it is: recorded input), at once: what the scanner sent while the till got ready
    is kept, not flushed."""
    if not os.isatty(fd):
        return
    tty.setraw(fd, termios.TCSANOW)
    attributes = termios.tcgetattr(fd)
    attributes[4] = attributes[5] = termios.B9600  # input and output speed
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def read_code(path: str, timeout: float) -> str:
    """One code from the scanner at ``path``: the text of its next line, without the
    line end, read within ``timeout`` seconds (:class:`ScannerError` else)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ScannerError(f"scanner {path}: {exc.strerror or exc}") from None
    try:
        try:
            _raw(fd)
        except termios.error as exc:
            raise ScannerError(f"scanner {path}: cannot set raw mode: {exc}") from None
        data = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScannerError(f"scanner {path}: no code within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 512)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ScannerError(f"scanner {path}: {exc.strerror or exc}") from None
            if not chunk:
                raise ScannerError(f"scanner {path}: the port closed before a code")
            data += chunk
            while True:  # the first line that holds a code (empty lines skipped)
                ends = [i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0]
                if not ends:
                    break
                line = bytes(data[: min(ends)]).strip()
                del data[: min(ends) + 1]
                if line:
                    return line.decode("ascii", "replace")
            if len(data) > MAX_CODE:
                raise ScannerError(f"scanner {path}: a line longer than {MAX_CODE} bytes")
    finally:
        os.close(fd)
