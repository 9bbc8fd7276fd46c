"""The entry point that sequences the phases of EMV Book B §3 for one transaction.

:meth:`EntryPoint.process` is the whole transaction: pre-processing (Start A, §3.1),
protocol activation (Start B, §3.2), combination selection (Start C, §3.3), kernel
activation (Start D, §3.4) and outcome processing (§3.5) with its restarts, recorded
as an :class:`~terminal.kernel.recording.EntryPointRecord`. :meth:`EntryPoint.run` is
one pass without outcome processing: what ``terminal pay`` does.

A card pulled away (:class:`~terminal.readers.base.CardRemovedError`,
:class:`~terminal.readers.base.CommunicationError`, or a card gone before an answer)
ends in Try Again ("Present card again", restart at B), never in an exception; so does
a card that misses a command's deadline (:class:`~terminal.readers.base.
CardTimeoutError`). Each pass has the time budget of the configuration
(:class:`~terminal.kernel.bounds.Budget`, from the card's activation or the restart):
a card that spends it ends the application, with the reason. An answer the reader
itself cannot make sense of (:class:`~terminal.readers.base.ProtocolError`) ends the
application. :class:`~terminal.readers.base.ReaderUnavailableError` (the reader itself
is gone) and a :class:`NoCardError` while waiting for a card propagate: they are not
outcomes of a transaction.

:meth:`EntryPoint.process` switches the field off for an outcome's Field Off Request
and holds it off for the hold time before the next poll (Book A §6.2, Book B §3.5.1),
and when the transaction is over (Book A's removal procedure,
:meth:`~terminal.readers.base.Reader.field_off`); its record notes every change of the
field (:class:`~terminal.kernel.recording.RecordingReader`). A restart at A runs
pre-processing again; a restart at B with online response data selects the combination
selected before without the PPSE (Book B §3.3.2.1).
:meth:`EntryPoint.run` leaves that to the application, which first gives the
outcome's signal through the reader (an ACR122U's LED and buzzer commands reach the
reader best while the card is connected), then calls ``reader.field_off()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from terminal.kernel.bounds import TransactionTimeoutError
from terminal.kernel.config import TerminalConfig
from terminal.kernel.entry_point.combination_selection import (
    MAX_SELECTIONS,
    kernel_for,
    select_application,
    select_ppse,
)
from terminal.kernel.entry_point.kernel_activation import activate_kernel
from terminal.kernel.entry_point.outcome_processing import (
    MAX_RESTARTS,
    OnlineHandler,
    process_outcome,
    record_outcome,
)
from terminal.kernel.entry_point.pre_processing import (
    autorun_indicators,
    compile_combinations,
    pre_processing,
)
from terminal.kernel.entry_point.protocol_activation import present_card, wait_for_card
from terminal.kernel.entry_point.session import PassState, Session
from terminal.kernel.outcome import Outcome, Start
from terminal.kernel.recording import EntryPointRecord, RecordingReader
from terminal.kernel.registry import KernelRegistry, default_registry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import (
    CardTimeoutError,
    CommunicationError,
    NoCardError,
    ProtocolError,
    Reader,
    ReaderUnavailableError,
)

__all__ = ["EntryPoint", "run_entry_point"]


class EntryPoint:
    """Book B entry point over a :class:`TerminalConfig` and a :class:`KernelRegistry`.

    :meth:`run` is one pass from pre-processing to the first outcome (what ``terminal
    pay`` needs); :meth:`process` is the whole transaction with outcome processing and
    its restarts (Book B §3.5), returned as an
    :class:`~terminal.kernel.recording.EntryPointRecord`.

    ``rng`` (``n -> n random bytes``; a CSPRNG by default), ``clock`` (date and time)
    and ``timer`` (monotonic seconds) are injectable for replays and tests; ``trace``
    receives one masked line per step.
    """

    def __init__(
        self,
        config: TerminalConfig,
        registry: KernelRegistry | None = None,
        *,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        clock: Callable[[], datetime] = datetime.now,
        timer: Callable[[], float] = time.perf_counter,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._compiled = (config, compile_combinations(config))
        self.registry = registry if registry is not None else default_registry()
        self.rng = rng
        self.clock = clock
        self.timer = timer
        self.trace = trace

    def __repr__(self) -> str:
        return f"EntryPoint({len(self.config.combinations)} combinations, {self.registry!r})"

    def _session(self, record: EntryPointRecord | None = None) -> Session:
        return Session(
            self.config,
            self.registry,
            self.rng,
            self.clock,
            self.timer,
            self.trace,
            self.timer(),
            ui=record.ui if record is not None else [],
            record=record,
        )

    def _pre_processing(
        self, session: Session, transaction: Transaction
    ) -> tuple[PassState, TransactionResult | None]:
        """Start A (Book B §3.1.1) on the configuration's compiled combinations."""
        if self._compiled[0] is not self.config:  # the configuration was replaced
            self._compiled = (self.config, compile_combinations(self.config))
        processed, done = pre_processing(session, self._compiled[1], transaction)
        return PassState(processed), done

    def run(
        self,
        reader: Reader,
        transaction: Transaction,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> TransactionResult:
        """One pass from pre-processing to its outcome, no restart.

        ``wait`` makes the reader wait for (and activate) a card first, up to
        ``timeout`` seconds (:class:`NoCardError` when none comes); without it the card
        must already be activated. The card is left powered: the application gives
        its signal, then switches the field off (module docstring).
        """
        session = self._session()
        if transaction.when is None:
            transaction = transaction.at(self.clock())
        state, done = self._pre_processing(session, transaction)
        if done is not None:
            return done
        if wait:
            present_card(session, transaction, None)
            wait_for_card(session, reader, timeout)
        return self._pass(reader, transaction, state, session)

    def process(
        self,
        reader: Reader,
        transaction: Transaction,
        *,
        start: Start = Start.A,
        online: OnlineHandler | None = None,
        timeout: float | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> EntryPointRecord:
        """One whole transaction with outcome processing (Book B §3.5), recorded.

        ``start`` is :attr:`Start.A` (pre-processing, then protocol activation) or
        :attr:`Start.B` (Autorun: no pre-processing,
        :func:`~terminal.kernel.entry_point.pre_processing.autorun_indicators`). After
        each outcome :func:`~terminal.kernel.entry_point.outcome_processing.
        process_outcome` shows it, switches the field off for a Field Off Request, goes
        ``online`` when the outcome asks for it, and restarts at A, B, C or D, at most
        ``max_restarts`` times; the last outcome also
        stands when no card comes back within ``timeout`` at a restart (event ``no
        card``). Reader errors of :meth:`run` apply; :class:`NoCardError` while
        waiting for the first card propagates. The field goes off at the end.
        """
        if start not in (Start.A, Start.B):
            raise ValueError("an entry point transaction starts at A or at B (Autorun)")
        record = EntryPointRecord(start=start)
        session = self._session(record)
        recording = RecordingReader(reader, record, timer=self.timer)
        if transaction.when is None:
            transaction = transaction.at(self.clock())
        if start is Start.A:  # §3.1
            state, done = self._pre_processing(session, transaction)
            if done is not None:
                return record_outcome(record, done)
        else:
            state = PassState(autorun_indicators(self.config), entry=start)
            session.note("entry point: Autorun, started at B without pre-processing")
        try:
            self._passes(
                recording, transaction, state, session, record, online, timeout, max_restarts
            )
        finally:
            recording.field_off()  # Book A: the removal procedure ends the transaction
        return record

    def _passes(
        self,
        reader: RecordingReader,
        transaction: Transaction,
        state: PassState,
        session: Session,
        record: EntryPointRecord,
        online: OnlineHandler | None,
        timeout: float | None,
        max_restarts: int,
    ) -> None:
        """The passes of :meth:`process`, from protocol activation to the last outcome."""
        while True:
            if state.next is Start.A:  # §3.1 again: a restart at A
                fresh, done = self._pre_processing(session, transaction)
                if done is not None:
                    record_outcome(record, done)
                    return
                state.processed, state.candidates, state.current = fresh.processed, [], None
                state.next = Start.B
            if state.next is Start.B:  # §3.2
                present_card(session, transaction, state)
                try:
                    wait_for_card(session, reader, timeout)
                except NoCardError as exc:
                    if not state.restart:
                        raise
                    record.note("no card", reason=str(exc))  # the last outcome stands
                    return
            elif state.ui_on_restart is not None:
                session.ui.append(state.ui_on_restart)
            result = self._pass(reader, transaction, state, session)  # §3.3-§3.4
            if not process_outcome(
                session, record, result, state, online, max_restarts, reader.switch_off
            ):
                return  # §3.5

    def _pass(
        self, reader: Reader, transaction: Transaction, state: PassState, session: Session
    ) -> TransactionResult:
        """One pass from combination selection, within a new time budget; reader errors
        become outcomes (a card lost before the kernel is also flagged: Book B
        §3.3.3.7), and so does a spent budget."""
        state.in_kernel = state.lost_in_selection = False
        session.start_pass()
        try:
            return self._select_and_activate(reader, transaction, state, session)
        except ReaderUnavailableError:
            raise
        except TransactionTimeoutError as exc:
            if session.record is not None:
                session.record.note("time budget spent")
            return session.finish(transaction, Outcome.END_APPLICATION, str(exc))
        except NoCardError as exc:
            state.lost_in_selection = not state.in_kernel
            return session.finish(transaction, Outcome.TRY_AGAIN, f"card gone: {exc}")
        except CommunicationError as exc:
            state.lost_in_selection = not state.in_kernel
            if session.record is not None:
                silent = isinstance(exc, CardTimeoutError)
                session.record.note("card not answering" if silent else "card removed")
            return session.finish(
                transaction, Outcome.TRY_AGAIN, f"card removed or not answering: {exc}"
            )
        except ProtocolError as exc:
            return session.finish(
                transaction, Outcome.END_APPLICATION, f"reader protocol error: {exc}"
            )

    def _select_and_activate(
        self, reader: Reader, transaction: Transaction, state: PassState, session: Session
    ) -> TransactionResult:
        """Combination selection (§3.3) and kernel activation (§3.4); a Select Next
        outcome removes the candidate and selects the next one (§3.5, Start C). At a
        restart at B with online response data, the combination selected before is
        selected again without SELECT PPSE (§3.3.2.1, on from §3.3.3.3)."""
        if state.next is Start.D and state.current is not None:  # a restart at D
            current, selected = state.current
            return activate_kernel(session, reader, transaction, current, selected, b"", 0, state)
        if state.next is Start.B and state.online_response and state.current is not None:
            # §3.3.2.1: with online response data, the combination selected before,
            # without the PPSE (final selection from §3.3.3.3)
            state.candidates = [state.current[0]]
        elif state.next is not Start.C:
            ended = select_ppse(session, reader, transaction, state)
            if ended is not None:
                return ended
        candidates = state.candidates
        tried = 0
        skipped: list[str] = []
        while candidates:
            if tried >= MAX_SELECTIONS:
                break
            tried += 1
            cand = candidates[0]
            name = cand.entry.adf_name.hex().upper()
            answer = select_application(session, reader, cand)
            if answer.problem and state.online_response:
                return session.finish(
                    transaction,
                    Outcome.END_APPLICATION,
                    f"{name}: {answer.problem}: the application of the online request"
                    " cannot be selected again",
                    candidate=cand,
                )
            if answer.problem:
                skipped.append(f"{name}: {answer.problem}")
                session.note(f"entry point: {skipped[-1]}")
                candidates.pop(0)  # Book B §3.3.3.5
                continue
            assert answer.dfname is not None
            kernel_id = kernel_for(session, cand, answer.pdol)
            if kernel_id is None:
                skipped.append(f"{name}: Visa AID without TTQ in the PDOL, no kernel 1")
                session.note(f"entry point: {skipped[-1]} (Book B §3.3.3.6)")
                candidates.pop(0)
                continue
            if kernel_id != cand.kernel_id:
                cand = replace(cand, kernel_id=kernel_id)
                candidates[0] = cand
            result = activate_kernel(
                session, reader, transaction, cand, answer.dfname, answer.fci, answer.sw, state
            )
            if result.outcome is Outcome.SELECT_NEXT:
                skipped.append(f"{name}: " + ("; ".join(result.reasons) or "select next"))
                session.note("entry point: select next")
                candidates.pop(0)
                continue
            return result
        why = f" ({'; '.join(skipped)})" if skipped else ""
        return session.finish(
            transaction,
            Outcome.END_APPLICATION,
            f"no application of the card could be selected{why}",
        )


def run_entry_point(
    config: TerminalConfig,
    reader: Reader,
    transaction: Transaction,
    *,
    registry: KernelRegistry | None = None,
    start: Start = Start.A,
    online: OnlineHandler | None = None,
    timeout: float | None = None,
    clock: Callable[[], datetime] = datetime.now,
    trace: Callable[[str], None] | None = None,
) -> EntryPointRecord:
    """Run one entry point transaction and return its record.

    ``config`` the terminal configuration, ``reader`` holds the card (an
    :class:`~terminal.readers.emulated.EmulatedReader` of a scripted card, a PC/SC
    reader...), ``transaction`` the amount and type; ``registry`` the kernels (default:
    kernel 2 and kernel 3). See :meth:`EntryPoint.process` for ``start`` and ``online``.
    """
    entry = EntryPoint(config, registry, clock=clock, trace=trace)
    return entry.process(reader, transaction, start=start, online=online, timeout=timeout)
