"""Start B, protocol activation (EMV Book B §3.2): "Present card" and a card to talk to.

The display shows "Present card" (Ready to Read) with the amount, or at a restart the
outcome's UI Request on Restart (§3.2.1.2); the reader polls for a card (§3.2.1.3); a
collision of two cards (:func:`is_collision`) shows "Please present one card only"
(Processing Error), then the same with Ready to Read once it is over (§3.2.1.4-
§3.2.1.5).
"""

from __future__ import annotations

from typing import Final

from emvwire.tags import Tag
from terminal.kernel.entry_point.session import PassState, Session
from terminal.kernel.outcome import Status, UiMessage, UiRequest
from terminal.kernel.transaction import Transaction
from terminal.readers.base import NoCardError, Reader

__all__ = ["MAX_COLLISIONS", "CollisionError", "is_collision", "present_card", "wait_for_card"]

#: Most collision reports in a row before protocol activation gives up (Book B §3.2.1.4).
MAX_COLLISIONS: Final = 8


class CollisionError(NoCardError):
    """More than one card in the field (Book D collision; Book B §3.2.1.4)."""


def is_collision(exc: BaseException) -> bool:
    """Whether ``exc`` reports a collision: a :class:`CollisionError`, a class named
    ``CardCollision`` (a software card's; matched by name, terminal never imports card),
    or an exception with ``card_collision = True``."""
    if isinstance(exc, CollisionError) or getattr(exc, "card_collision", False) is True:
        return True
    return any(cls.__name__ == "CardCollision" for cls in type(exc).__mro__)


def present_card(session: Session, transaction: Transaction, state: PassState | None) -> None:
    """Book B §3.2.1.2: the retained UI Request on Restart, else "Present card"."""
    if state is not None and state.restart and state.ui_on_restart is not None:
        session.ui.append(state.ui_on_restart)
        return
    currency = transaction.currency or session.config.data(Tag.TRANSACTION_CURRENCY_CODE)
    session.ui.append(
        UiRequest(
            UiMessage.PRESENT_CARD,
            Status.READY_TO_READ,
            value=transaction.amount,
            currency=currency,
        )
    )


def wait_for_card(session: Session, reader: Reader, timeout: float | None) -> None:
    """Book B §3.2.1.3-§3.2.1.5: poll for a card; a collision shows "Please present
    one card only" (Processing Error), and once it is over the same message with
    Ready to Read. :class:`CollisionError` after :data:`MAX_COLLISIONS` in a row."""
    collided = 0
    while True:
        try:
            reader.wait_for_card(timeout)
        except Exception as exc:
            if not is_collision(exc):
                raise
            if not collided:
                session.ui.append(
                    UiRequest(UiMessage.PRESENT_ONE_CARD_ONLY, Status.PROCESSING_ERROR)
                )
            collided += 1
            if session.record is not None:
                session.record.note("collision")
            session.note("entry point: collision, more than one card in the field")
            if collided >= MAX_COLLISIONS:
                raise CollisionError(f"{collided} collisions in a row on {reader.path}") from exc
            continue
        break
    if collided:
        session.ui.append(UiRequest(UiMessage.PRESENT_ONE_CARD_ONLY, Status.READY_TO_READ))
