"""Outcome processing (EMV Book B §3.5): show the outcome, go online, restart or end.

After each outcome (:func:`process_outcome`):

- the UI Request on Outcome is shown (§3.5.1.1); a Field Off Request switches the field
  off for its hold time (Book A §6.2: the reader holds it off, then polls again at the
  restart) and a removal time-out is noted;
- an Online Request whose Start is B or C and whose Online Response Data is not N/A
  goes online through the application's :data:`OnlineHandler` (``result -> data`` of
  91/71/72, ``None`` when no answer came: the transaction ends there); the data go to
  the kernel at the restart (:attr:`KernelContext.online_response`);
- Start A restarts at pre-processing (§3.1, the indicators made again), then protocol
  activation; Start B at protocol activation (§3.2: the retained UI Request on Restart,
  else "Present card"; the card is polled again) and, with online response data,
  straight to the combination selected before, without the PPSE (§3.3.2.1); Start C
  at final combination selection on the retained candidate list (§3.3.3), Start D at
  kernel activation without FCI (§3.4.1.3); the restart flag is set;
- anything else ends the transaction. One that ends with an Online Request leaves the
  card out of the rest (its issuer's answer will not come back to it): the reader
  shows "Card read OK, please remove card" with status Card Read Successfully (Book A
  §9.4, message 17; :func:`card_read`), unless the outcome's own UI request said so.

A card lost during protocol activation or combination selection (before any kernel)
returns to Start B without the restart flag (§3.3.3.7): "Present card", the candidate
list built afresh. At most ``max_restarts`` restarts (:data:`MAX_RESTARTS`); then the
last outcome stands (event ``restart limit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from terminal.kernel.entry_point.session import PassState, Session
from terminal.kernel.outcome import OnlineResponse, Outcome, Start, Status, UiMessage, UiRequest
from terminal.kernel.recording import EntryPointRecord
from terminal.kernel.transaction import TransactionResult

__all__ = ["CARD_READ_OK", "MAX_RESTARTS", "OnlineHandler", "card_read", "process_outcome",
           "record_outcome"]  # fmt: skip

#: Most restarts (Book B §3.5) of one transaction before its last outcome stands: a
#: card that asks to be presented again for ever must not hold the reader.
MAX_RESTARTS: Final = 4
#: Online response data passed back to the kernel: ``result -> data`` (91, 71, 72...)
#: or ``None`` when no answer came (the transaction ends with its online request).
OnlineHandler = Callable[[TransactionResult], "bytes | None"]
#: What the reader shows once the card is no longer needed after an online request
#: (Book A §9.4: message 17 with status Card Read Successfully).
CARD_READ_OK: Final = UiRequest(UiMessage.CARD_READ_OK, Status.CARD_READ_SUCCESSFULLY)


def record_outcome(record: EntryPointRecord, result: TransactionResult) -> EntryPointRecord:
    """Keep ``result`` as the transaction's outcome and show its UI Request on Outcome
    (Book B §3.5.1.1)."""
    record.result = result
    record.outcome = result.parameters
    if result.parameters.ui_on_outcome is not None:
        record.ui.append(result.parameters.ui_on_outcome)
    return record


def card_read(record: EntryPointRecord) -> None:
    """A transaction ended with an Online Request: its issuer's answer does not come
    back to the card, which may leave the field. Show "Card read OK" (module docstring)
    unless the outcome's UI request was that message already."""
    shown = record.outcome.ui_on_outcome if record.outcome is not None else None
    if shown is None or shown.message is not UiMessage.CARD_READ_OK:
        record.ui.append(CARD_READ_OK)


def _restart_allowed(record: EntryPointRecord, max_restarts: int) -> bool:
    if record.restarts >= max_restarts:
        record.note("restart limit", restarts=record.restarts)
        return False
    record.restarts += 1
    return True


def process_outcome(
    session: Session,
    record: EntryPointRecord,
    result: TransactionResult,
    state: PassState,
    online: OnlineHandler | None,
    max_restarts: int,
    switch_off: Callable[[int], None] | None = None,
) -> bool:
    """Book B §3.5 for one outcome (module docstring): ``True`` when the transaction
    restarts (``state`` says where), ``False`` when ``result`` is its last outcome.
    ``switch_off(hold_time_ms)`` switches the field off for a Field Off Request."""
    restarts = _process(session, record, result, state, online, max_restarts, switch_off)
    if not restarts and result.outcome is Outcome.ONLINE_REQUEST:
        card_read(record)
    return restarts


def _process(
    session: Session,
    record: EntryPointRecord,
    result: TransactionResult,
    state: PassState,
    online: OnlineHandler | None,
    max_restarts: int,
    switch_off: Callable[[int], None] | None,
) -> bool:
    record_outcome(record, result)
    params = result.parameters
    if params.field_off_request_ms is not None:
        record.note("field off", hold_time_ms=params.field_off_request_ms)
        if switch_off is not None:
            switch_off(params.field_off_request_ms)
    if params.removal_timeout_ms:
        record.note("removal timeout", ms=params.removal_timeout_ms)
    if state.lost_in_selection:
        # §3.3.3.7: a communication error before the kernel returns to Start B, not as
        # an outcome: no restart flag, "Present card" again.
        if not _restart_allowed(record, max_restarts):
            return False
        record.note("restart", start="B")
        state.next, state.ui_on_restart = Start.B, None
        return True
    restart_at = params.start
    if restart_at is Start.NA:
        return False
    response = b""
    if (
        result.outcome is Outcome.ONLINE_REQUEST
        and params.online_response_kind is not OnlineResponse.NA
    ):
        answer = online(result) if online is not None else None
        record.note("online", response=answer.hex().upper() if answer else None)
        if answer is None:
            return False
        response = bytes(answer)
    if not _restart_allowed(record, max_restarts):
        return False
    record.note("restart", start=restart_at.name)
    session.note(f"entry point: restart at {restart_at.name}")
    state.restart = True
    state.entry = restart_at
    state.next = restart_at
    state.ui_on_restart = params.ui_on_restart
    state.online_response = response
    return True
