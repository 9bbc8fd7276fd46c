"""Start D, kernel activation (EMV Book B §3.4): the selected combination's kernel runs.

The kernel of the combination gets a :class:`~terminal.kernel.registry.KernelContext`
(§3.4.1): the FCI and status word of the SELECT, the combination's indicators and TTQ
copy, the start point, the restart flag and the online response data, with the APDU
and card-time counters of the transaction so far. A reader error in the kernel goes up
to the entry point (Try Again, or End Application for a protocol error); any other
exception a kernel raises is a bug that must not crash the terminal: End Application.
The pass's time budget goes to the kernel with the context, and a kernel that spends
it (:class:`~terminal.kernel.bounds.TransactionTimeoutError`) ends the application.
"""

from __future__ import annotations

from terminal.kernel.bounds import TransactionTimeoutError
from terminal.kernel.entry_point.candidates import Candidate
from terminal.kernel.entry_point.session import PassState, Session
from terminal.kernel.outcome import Outcome
from terminal.kernel.recording import Activation
from terminal.kernel.registry import KernelContext
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import (
    CommunicationError,
    NoCardError,
    ProtocolError,
    Reader,
    ReaderUnavailableError,
)

__all__ = ["activate_kernel"]


def activate_kernel(
    session: Session,
    reader: Reader,
    transaction: Transaction,
    cand: Candidate,
    dfname: bytes,
    fci: bytes,
    sw: int,
    state: PassState,
) -> TransactionResult:
    """Book B §3.4.1: activate the kernel of ``cand`` with the SELECT's FCI and status
    word (empty and 0 at a restart at D, §3.4.1.3) and return its outcome."""
    kernel = session.registry.get(cand.kernel_id)
    assert kernel is not None  # build_candidates kept only registered kernels
    state.current = (cand, dfname)
    ctx = KernelContext(
        reader=reader,
        config=session.config,
        combination=cand.combination,
        aid=dfname,
        fci=fci,
        fci_sw=sw,
        indicators=cand.indicators,
        transaction=transaction,
        label=cand.entry.label,
        kernel_id=cand.kernel_id,
        rng=session.rng,
        clock=session.clock,
        timer=session.timer,
        trace=session.trace,
        timings_ms=session.timings_ms,
        ui=session.ui,
        started=session.started,
        start=state.entry,
        restart=state.restart,
        online_response=state.online_response,
        budget=session.budget,
    )
    if session.record is not None:
        session.record.activations.append(Activation.from_context(ctx, kernel.name))
    state.in_kernel = True
    # The kernel counts through its context; the entry point's own APDUs come first.
    ctx.apdu_count = session.apdu_count
    ctx.card_seconds = session.card_seconds
    session.note(f"entry point: activating {kernel.name} for {dfname.hex().upper()}")
    try:
        result = kernel.activate(ctx)
    except (
        CommunicationError,
        ProtocolError,
        ReaderUnavailableError,
        NoCardError,
        TransactionTimeoutError,
    ):
        session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
        raise
    except Exception as exc:  # last resort: a kernel bug must not crash the terminal
        session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
        return session.finish(
            transaction,
            Outcome.END_APPLICATION,
            f"internal error in {kernel.name}: {type(exc).__name__}",
            candidate=cand,
        )
    session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
    return result
