"""Cards that try to hold the terminal hostage, for the deadline and bound tests.

Each wraps a real card (``process``, ``power_on``, ``power_off``, ``atr``) and
misbehaves on cue:

- :class:`SilentCard` stops answering after ``answers`` commands: ``process`` blocks
  until the field goes off (``power_off``) or the test takes the card away
  (:meth:`SilentCard.take_away`, after which it raises ``CardRemoved``, as a card that
  leaves the field does: served through vpcd, the socket closes);
- :class:`SlowCard` holds each answer back ``delay`` seconds (never past a field reset);
- :class:`HugeRecordCard` answers READ RECORD with ``61xx`` and a chain of GET RESPONSE
  answers of ``size`` bytes in all;
- :func:`afl_rewrite` and :func:`after_fci` are man-in-the-middle rewrites (for
  :class:`tests.support.kernel.MitmCard`): an AFL of the test's choosing in the GPO
  answer, and bytes after the FCI template of every SELECT answer.
- :func:`short_timing`: a configuration whose deadlines a test can watch act.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from card.transport import CardRemoved
from emvwire import tlv
from terminal.kernel.config import CardTiming, RecordLimits, TerminalConfig, default_config

__all__ = [
    "HugeRecordCard",
    "SilentCard",
    "SlowCard",
    "afl_of",
    "afl_rewrite",
    "after_fci",
    "short_timing",
    "wait_until",
]


def short_timing(
    command_ms: int = 300,
    transaction_ms: int = 2000,
    *,
    base: TerminalConfig | None = None,
    records: RecordLimits | None = None,
) -> TerminalConfig:
    """The default configuration (or ``base``) with short deadlines, for tests."""
    cfg = base or default_config()
    return replace(
        cfg,
        timing=CardTiming(command_ms=command_ms, transaction_ms=transaction_ms),
        records=records or cfg.records,
    )


class _Wrapper:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.commands: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return bytes(self.inner.atr)

    @property
    def uid(self) -> bytes:
        return bytes(getattr(self.inner, "uid", b""))

    def power_on(self) -> None:
        self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()


class SilentCard(_Wrapper):
    """Answers ``answers`` commands, then none: ``process`` waits until the field goes
    off (the card loses power), or raises ``CardRemoved`` once taken away."""

    def __init__(self, inner: Any, answers: int = 0) -> None:
        super().__init__(inner)
        self.answers = answers
        self.unanswered = 0  # commands the card kept without answering
        self._field_off = threading.Event()
        self._gone = threading.Event()

    def power_on(self) -> None:
        self._field_off.clear()
        super().power_on()

    def power_off(self) -> None:
        self._field_off.set()
        super().power_off()

    @property
    def field_off(self) -> bool:
        """Whether the field went off since the card was last powered."""
        return self._field_off.is_set()

    def take_away(self) -> None:
        """The card leaves the field: a command it holds ends with ``CardRemoved``."""
        self._gone.set()
        self._field_off.set()

    def process(self, c_apdu: bytes) -> bytes:
        self.commands.append(bytes(c_apdu))
        if len(self.commands) <= self.answers:
            return bytes(self.inner.process(c_apdu))
        self.unanswered += 1
        while not self._field_off.wait(0.05):
            pass
        if self._gone.is_set():
            raise CardRemoved("the silent card was taken away")
        raise CardRemoved("the field went off while the card kept its answer")


class SlowCard(_Wrapper):
    """Holds each answer back ``delay`` seconds (cut short by a field reset, after
    which the answer is still given: the reader must throw it away)."""

    def __init__(self, inner: Any, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay
        self._field_off = threading.Event()

    def power_on(self) -> None:
        self._field_off.clear()
        super().power_on()

    def power_off(self) -> None:
        self._field_off.set()
        super().power_off()

    def process(self, c_apdu: bytes) -> bytes:
        self.commands.append(bytes(c_apdu))
        self._field_off.wait(self.delay)
        return bytes(self.inner.process(c_apdu))


class HugeRecordCard(_Wrapper):
    """READ RECORD answered with ``61 00`` and GET RESPONSE chunks of 256 bytes (the
    last shorter), then ``90 00``: a well-formed record template 70 holding one data
    object (DF7F) of ``size`` bytes."""

    def __init__(self, inner: Any, size: int) -> None:
        super().__init__(inner)
        self.size = size
        self._left = b""

    def process(self, c_apdu: bytes) -> bytes:
        self.commands.append(bytes(c_apdu))
        if c_apdu[1] == 0xB2:
            self._left = tlv.encode(0x70, tlv.encode(0xDF7F, bytes(self.size)))
            return b"\x61\x00"
        if c_apdu[1] == 0xC0 and self._left:
            wanted = c_apdu[4] or 256
            chunk, self._left = self._left[:wanted], self._left[wanted:]
            more = min(len(self._left), 256) & 0xFF
            return chunk + (bytes((0x61, more)) if self._left else b"\x90\x00")
        return bytes(self.inner.process(c_apdu))

    def read_records(self) -> int:
        """READ RECORD commands received."""
        return sum(1 for c in self.commands if c[1] == 0xB2)


def afl_of(entries: int, records: int) -> bytes:
    """An AFL (94) of ``entries`` files (SFI 1, 2, ...) with records 1 to ``records``
    each, none signed for offline data authentication."""
    return b"".join(bytes((sfi << 3, 1, records, 0)) for sfi in range(1, entries + 1))


def afl_rewrite(afl: bytes) -> Callable[[bytes, bytes], bytes]:
    """A MITM rewrite putting ``afl`` in the GPO answer (format 2, template 77)."""

    def rewrite(command: bytes, answer: bytes) -> bytes:
        if command[:2] != b"\x80\xa8" or answer[-2:] != b"\x90\x00":
            return answer
        objects = tlv.decode_one(answer[:-2], 0x77).children
        values = {o.tag: o.value for o in objects}
        values[0x94] = afl
        body = b"".join(tlv.encode(t, v) for t, v in values.items())
        return tlv.encode(0x77, body) + b"\x90\x00"

    return rewrite


def after_fci(
    tail: bytes, *, ppse: bool = True, adf: bool = True
) -> Callable[[bytes, bytes], bytes]:
    """A MITM rewrite putting ``tail`` after the FCI template of the SELECT answers: the
    PPSE's (``ppse``), the applications' (``adf``)."""

    def rewrite(command: bytes, answer: bytes) -> bytes:
        if command[1] != 0xA4 or answer[-2:] != b"\x90\x00":
            return answer
        if not (ppse if b"2PAY.SYS.DDF01" in command else adf):
            return answer
        return answer[:-2] + tail + b"\x90\x00"

    return rewrite


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` s pass (not a timing assertion:
    the tests use it to wait for a background thread to catch up)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
