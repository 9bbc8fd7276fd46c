"""What every phase of one entry point transaction shares (EMV Book B §3).

:class:`Session` is one transaction: the terminal's configuration, kernels, random
source, clocks and trace, the APDU and card-time counters the entry point and the
kernel add to, the User Interface Requests shown and, for :meth:`EntryPoint.process`,
the record of the transaction. :meth:`Session.finish` builds the outcomes the entry
point reaches itself, before or without a kernel.

:class:`PassState` is what the entry point keeps from one pass to the next, for the
restarts of outcome processing (Book B §3.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from terminal.kernel.bounds import Budget
from terminal.kernel.config import Combination, TerminalConfig
from terminal.kernel.entry_point.candidates import Candidate
from terminal.kernel.outcome import Outcome, Start, Status, UiMessage, UiRequest
from terminal.kernel.recording import EntryPointRecord
from terminal.kernel.registry import KernelRegistry, PreProcessing
from terminal.kernel.transaction import Transaction, TransactionResult, build_result
from terminal.readers.base import Reader

__all__ = ["PassState", "Session"]


@dataclass(slots=True)
class Session:
    """One transaction: the terminal's means and the counters the entry point and the
    kernel share (APDUs sent, time spent waiting for the card, step timings, UI), and
    the time budget of the pass under way (:meth:`start_pass`)."""

    config: TerminalConfig
    registry: KernelRegistry
    rng: Callable[[int], bytes]
    clock: Callable[[], datetime]
    timer: Callable[[], float]
    trace: Callable[[str], None] | None
    started: float
    apdu_count: int = 0
    card_seconds: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    ui: list[UiRequest] = field(default_factory=list)
    record: EntryPointRecord | None = None
    budget: Budget | None = None

    def start_pass(self) -> Budget:
        """A new time budget for a pass that begins with a card activated now."""
        self.budget = Budget(self.config.timing)
        return self.budget

    def transmit(self, reader: Reader, apdu: bytes) -> bytes:
        """Send one C-APDU of the entry point's own within the pass's budget
        (:meth:`Budget.transmit`); count it and time the card."""
        budget = self.budget if self.budget is not None else self.start_pass()
        self.apdu_count += 1
        began = self.timer()
        try:
            return budget.transmit(reader, apdu)
        finally:
            self.card_seconds += self.timer() - began

    def note(self, text: str) -> None:
        """A line for the trace, when there is one."""
        if self.trace is not None:
            self.trace(text)

    def finish(
        self,
        transaction: Transaction,
        outcome: Outcome,
        reason: str,
        *,
        message: UiMessage | None = None,
        candidate: Candidate | None = None,
        status: Status | None = None,
    ) -> TransactionResult:
        """An outcome the entry point reaches itself (no kernel, or a kernel that
        failed): ``status`` replaces the UI Request on Outcome's status when given."""
        self.note(f"entry point: {outcome.label}: {reason}")
        self.timings_ms["card"] = self.card_seconds * 1000.0
        self.timings_ms["total"] = (self.timer() - self.started) * 1000.0
        result = build_result(
            outcome,
            config=self.config,
            transaction=transaction,
            ui=self.ui,
            kernel="",
            kernel_id=candidate.kernel_id if candidate else b"",
            aid=candidate.entry.adf_name if candidate else b"",
            label=candidate.entry.label if candidate else "",
            reasons=(reason,),
            message=message,
            timings_ms=self.timings_ms,
            apdu_count=self.apdu_count,
        )
        shown = result.parameters.ui_on_outcome
        if status is not None and shown is not None:
            shown = replace(shown, status=status)
            result.parameters = replace(result.parameters, ui_on_outcome=shown)
            result.ui[-1] = shown
        return result


@dataclass(slots=True)
class PassState:
    """What the entry point keeps from one pass to the next (Book B §3.5 restarts)."""

    processed: list[tuple[Combination, PreProcessing]]
    #: Where this pass began (A, B for Autorun, or the restart's start point).
    entry: Start = Start.A
    #: Where the next pass goes: B protocol activation, C final combination selection
    #: on the retained candidate list, D kernel activation again.
    next: Start = Start.B
    restart: bool = False
    ui_on_restart: UiRequest | None = None
    online_response: bytes = b""
    candidates: list[Candidate] = field(default_factory=list)
    current: tuple[Candidate, bytes] | None = None
    #: Whether the kernel of this pass was activated (a card lost before that is
    #: Book B §3.3.3.7, after it the kernel's Try Again).
    in_kernel: bool = False
    #: The card was lost during protocol activation or combination selection.
    lost_in_selection: bool = False
