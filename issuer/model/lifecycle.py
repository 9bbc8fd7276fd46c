"""Life-cycle rules of accounts, cards and tokens, as data and checks.

- A card is ``active`` or ``paused`` until ``closed``, which is final. Resuming needs
  the account open. Closing a card deletes its tokens (they have nothing to fund them).
- A token is ``active`` or ``suspended`` until ``deleted``, which is final. Suspending
  a token leaves its card working (other tokens and the plastic go on). Resuming a token
  needs its card active.
- Closing an account closes its cards and so deletes all its tokens.

Transitions to the same state are refused too: the caller asked for a change that
cannot happen, and saying so beats a silent success (``card resume`` of an active card).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from issuer.errors import InvalidStateError
from issuer.model.entities import CardStatus, TokenStatus

__all__ = ["CARD_TRANSITIONS", "TOKEN_TRANSITIONS", "check_card_change", "check_token_change"]

#: Allowed card state changes.
CARD_TRANSITIONS: Final[Mapping[CardStatus, frozenset[CardStatus]]] = {
    CardStatus.ACTIVE: frozenset({CardStatus.PAUSED, CardStatus.CLOSED}),
    CardStatus.PAUSED: frozenset({CardStatus.ACTIVE, CardStatus.CLOSED}),
    CardStatus.CLOSED: frozenset(),
}

#: Allowed token state changes.
TOKEN_TRANSITIONS: Final[Mapping[TokenStatus, frozenset[TokenStatus]]] = {
    TokenStatus.ACTIVE: frozenset({TokenStatus.SUSPENDED, TokenStatus.DELETED}),
    TokenStatus.SUSPENDED: frozenset({TokenStatus.ACTIVE, TokenStatus.DELETED}),
    TokenStatus.DELETED: frozenset(),
}


def check_card_change(card_id: str, old: CardStatus, new: CardStatus) -> None:
    """Raise :class:`InvalidStateError` unless ``old -> new`` is allowed."""
    if new not in CARD_TRANSITIONS[old]:
        raise InvalidStateError(f"card {card_id} is {old.value}: cannot become {new.value}")


def check_token_change(token_id: str, old: TokenStatus, new: TokenStatus) -> None:
    """Raise :class:`InvalidStateError` unless ``old -> new`` is allowed."""
    if new not in TOKEN_TRANSITIONS[old]:
        raise InvalidStateError(f"token {token_id} is {old.value}: cannot become {new.value}")
