"""What one card may cost the terminal: time and record data.

The terminal configuration bounds both (:class:`~terminal.kernel.config.CardTiming`,
:class:`~terminal.kernel.config.RecordLimits`, with their defaults and the reasons for
them); this module applies the bounds for the entry point, the kernels and ``terminal
read``.

- :class:`Budget` is the time of one pass of a transaction, from the card's activation
  (or a restart) to the outcome. Every command goes through :meth:`Budget.transmit`,
  which gives the reader a deadline of the command time-out or what is left of the
  budget, whichever is shorter. A card that misses the command's own deadline is a
  communication error (:class:`~terminal.readers.base.CardTimeoutError`: "try again",
  as Book A §9.2 says for a card that stops answering); a pass whose budget is spent
  raises :class:`TransactionTimeoutError`, which ends the transaction ("end
  application": a card that is merely slow would be as slow again).
- :func:`afl_problem` refuses an AFL that names more entries or records than the
  terminal reads from one card, before any READ RECORD; :class:`RecordBytes` counts
  the bytes of the records read against their bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from emvwire.apdu import AflEntry
from terminal.errors import TerminalError
from terminal.kernel.config import CardTiming, RecordLimits
from terminal.readers.base import CardTimeoutError, Reader

__all__ = ["Budget", "RecordBytes", "TransactionTimeoutError", "afl_problem"]


class TransactionTimeoutError(TerminalError):
    """The time budget of the transaction's pass is spent (it ends the transaction)."""


class Budget:
    """The time budget of one pass (module docstring); ``clock`` is monotonic seconds."""

    __slots__ = ("_clock", "timing", "until")

    def __init__(self, timing: CardTiming, clock: Callable[[], float] = time.monotonic) -> None:
        self.timing = timing
        self._clock = clock
        self.until = clock() + timing.transaction

    def __repr__(self) -> str:
        return f"Budget({self.left():.3f} s left)"

    def left(self) -> float:
        """Seconds left of the pass's budget (negative once spent)."""
        return self.until - self._clock()

    def transmit(self, reader: Reader, c_apdu: bytes) -> bytes:
        """``reader.transmit`` within the command's deadline and the pass's budget.

        :class:`TransactionTimeoutError` when the budget is spent before the command,
        or when the card misses a deadline that the budget, not the command time-out,
        set; the reader's errors otherwise.
        """
        left = self.left()
        if left <= 0:
            raise TransactionTimeoutError(self._spent(c_apdu))
        timeout = min(self.timing.command, left)
        try:
            return reader.transmit(c_apdu, timeout)
        except CardTimeoutError as exc:
            if timeout < self.timing.command:
                raise TransactionTimeoutError(self._spent(c_apdu)) from exc
            raise

    def _spent(self, c_apdu: bytes) -> str:
        ins = f"INS {c_apdu[1]:02X}" if len(c_apdu) > 1 else "a command"
        return (
            f"the card used up the transaction's time budget of "
            f"{self.timing.transaction_ms} ms (at {ins})"
        )


def afl_problem(afl: Sequence[AflEntry], limits: RecordLimits) -> str:
    """Why the terminal will not read the records ``afl`` names (``""``: it will).

    More AFL entries than ``limits.afl_entries`` or more records over all entries than
    ``limits.records``: the transaction ends before any READ RECORD.
    """
    records = sum(entry.last - entry.first + 1 for entry in afl)
    if len(afl) > limits.afl_entries or records > limits.records:
        return (
            f"the AFL names {records} records in {len(afl)} entries; this terminal reads "
            f"at most {limits.records} records in {limits.afl_entries} entries from one card"
        )
    return ""


class RecordBytes:
    """The bytes of the records read from one card, against ``limits.total_bytes``."""

    __slots__ = ("limits", "total")

    def __init__(self, limits: RecordLimits) -> None:
        self.limits = limits
        self.total = 0

    def add(self, data: bytes) -> str:
        """Count one record's data; why the reading must stop (``""``: it may go on)."""
        self.total += len(data)
        if self.total > self.limits.total_bytes:
            return (
                f"the card's records passed {self.limits.total_bytes} bytes, "
                "the most this terminal reads from one card"
            )
        return ""
