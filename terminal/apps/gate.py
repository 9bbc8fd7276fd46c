"""The loop of a gate: wait for a tap, decide, show the result, wait again (the loop of
``terminal gate transit``; the parking lane runs its own,
:func:`terminal.apps.parking.run_lane`, to send queued completions while idle).

One round: wait for a card (EMV Book A §5, the reader activates it); run the entry
point and kernel (Book B) for the mode's transaction; hand the result to the mode's
``decide`` (which records the tap durably before it returns, when the mode keeps a
journal); give the signal (Book A §9.3: the success tone and green for open, the alert
tone and red for deny and for "present card again"); report the round; wait until the
card has left the field, so a card lying on the reader is never charged twice.

``ms`` of a verdict is the gate's decision time: from the card activated
(``wait_for_card`` returned) to the signal given, the figure bench/test_bench_gate.py
measures (card detected to open signal, goal under 50 ms).

An emulated reader (``emulated:PROFILE``) has its card always in the field: after each
round the loop takes it away and presents it again, as the next rider would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers import Reader, signal_outcome
from terminal.readers.emulated import EmulatedReader

__all__ = ["SIGNALS", "GateVerdict", "format_line", "run_gate", "utc_stamp"]

#: A verdict's decision -> the outcome whose standard signal it gives (Book A §9.3).
SIGNALS: Final = {"open": "approved", "deny": "declined", "retry": "try again"}


def utc_stamp(when: datetime) -> str:
    """``2026-11-24T07:31:02.123Z``: a time in UTC with milliseconds."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class GateVerdict:
    """What a gate did with one tap: ``decision`` is ``open``, ``deny`` or ``retry``
    (the kernel did not finish: present the card again); ``reason`` why not open
    (transit: ``deny_list``, ``first_ride_limit``, ``card_error``; ``try_again``);
    ``record`` the journal record (``None``: not journaled); ``ms`` the decision time,
    filled by :func:`run_gate`; ``detail`` the kernel's words for a card error."""

    decision: str
    reason: str | None
    masked_pan: str
    card_reference: str = ""
    record: dict[str, Any] | None = None
    ms: float = 0.0
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line of the tap (masked; the tap id when journaled)."""
        record = self.record or {}
        return {
            "time": record.get("time") or utc_stamp(datetime.now(UTC)),
            "decision": self.decision,
            "reason": self.reason,
            "masked_pan": self.masked_pan,
            "card_reference": self.card_reference,
            "tap_id": record.get("tap_id"),
            "ms": round(self.ms, 3),
            "detail": self.detail,
        }


def format_line(verdict: GateVerdict) -> str:
    """The one text line of a tap: ``OPEN  476173******0010  -  12.3 ms  G1:7``."""
    tap = (verdict.record or {}).get("tap_id", "")
    why = verdict.reason or "-"
    if verdict.detail and verdict.decision != "open":
        why += f" ({verdict.detail})"
    return (
        f"{verdict.decision.upper():<5}  {verdict.masked_pan or '-':<19}  "
        f"{verdict.ms:7.1f} ms  {why}{'  ' + tap if tap else ''}"
    )


def emitter(as_json: bool, out: TextIO | None = None) -> Callable[[GateVerdict], None]:
    """A ``report`` for :func:`run_gate` printing one line per tap (text or JSON) to
    ``out`` (standard output), flushed at once for a process reading it."""

    def report(verdict: GateVerdict) -> None:
        import sys

        stream = out if out is not None else sys.stdout
        line = json.dumps(verdict.to_json()) if as_json else format_line(verdict)
        stream.write(line + "\n")
        stream.flush()

    return report


def run_gate(
    reader: Reader,
    entry: EntryPoint,
    transaction: Callable[[], Transaction],
    decide: Callable[[TransactionResult], GateVerdict],
    report: Callable[[GateVerdict], None],
    *,
    taps: int | None = None,
    timeout: float | None = None,
    after: Callable[[GateVerdict], None] | None = None,
) -> int:
    """Run rounds (module docstring) until ``taps`` rounds (``None``: for ever); return
    the rounds done. ``timeout`` bounds each wait for a card and for its removal
    (``NoCardError`` from the reader, or ``TimeoutError`` for a card that stays).
    ``after`` runs once a round is reported (e.g. to wake an uploader). Reader errors
    (``ReaderError``) and ``decide``'s errors go up: the gate stays closed."""
    rounds = 0
    while taps is None or rounds < taps:
        reader.wait_for_card(timeout)
        started = time.perf_counter()
        result = entry.run(reader, transaction(), wait=False)
        verdict = decide(result)
        signal_outcome(reader.feedback, SIGNALS[verdict.decision])
        reader.field_off()  # Book A: the removal procedure, once the signal is given
        verdict.ms = 1000.0 * (time.perf_counter() - started)
        report(verdict)
        if after is not None:
            after(verdict)
        rounds += 1
        if isinstance(reader, EmulatedReader):
            reader.take_away()
            reader.present()
        elif not reader.wait_for_removal(timeout):
            raise TimeoutError(f"the card did not leave {reader.path} within {timeout:g} s")
    return rounds
