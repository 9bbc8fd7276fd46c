"""Rows the authorisation service keeps between requests, valid while the ledger's
cache generation stays the same.

A terminal's record (with its credential hash) and a card's or token's instrument (card,
account, token rows) change rarely, but each request needs them. The ledger keeps a
*cache generation* (:mod:`issuer.ledger.schema`, migration 2): database triggers raise
it in the very transaction that changes a status, a credential or any other column the
read phase takes from these rows, whichever process commits it (``issuer card suspend``
in a shell, another ``issuer serve`` worker). The service reads it once per event-loop
turn (:meth:`ReadCache.refresh`, one indexed read of one row, its own round trip: it
cannot go with a write transaction's, which comes after the read phase that needs it;
nor with the previous turn's commit, which would let a change committed in between go
unseen for a turn) and drops every cached row when it moved. So a pause, a suspension, a
closed account or a revoked terminal is seen from the first turn that starts after its
commit, exactly as the read phase saw it before rows were cached: the bound is zero
turns, no time-to-live.

Only what the read phase decides on is taken from here. Balances are not: the cached
:class:`~issuer.model.entities.Account` carries the balance it was read with, and funds
are checked and held by the write phase in SQL, under the row lock
(:meth:`~issuer.ledger.repository.AccountRepository.reserve`).

A row read in a turn is stored under the generation read at the start of that turn;
if the generation moved meanwhile (another thread refreshed), it is not stored, so a
row read before a change can never outlive the change.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from issuer.ledger.repository import Ledger

__all__ = ["CACHE_SIZE", "ReadCache"]

#: Rows kept at most (then all are dropped and read again): terminals and cards.
CACHE_SIZE: Final = 200_000


class ReadCache:
    """Rows by key, dropped when the ledger's cache generation moves (module
    docstring). Thread-safe."""

    def __init__(self, ledger: Ledger, *, size: int = CACHE_SIZE) -> None:
        self._ledger = ledger
        self._size = max(1, size)
        self._items: dict[Hashable, Any] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()

    @property
    def generation(self) -> int | None:
        """The generation the cached rows belong to (``None`` before a refresh)."""
        return self._generation

    def refresh(self) -> int:
        """Read the ledger's generation; drop every row if it moved. The generation to
        give :meth:`put` for rows read from now on."""
        generation = self._ledger.generation()
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._generation = generation
        return generation

    def get(self, key: Hashable) -> Any:
        """The row cached under ``key``, or ``None``."""
        return self._items.get(key)

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        """Keep ``value``, read after :meth:`refresh` answered ``generation``, unless
        the generation has moved since (then it may be stale: not kept)."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[key] = value

    def clear(self) -> None:
        """Drop every row (the next :meth:`refresh` reads the generation again)."""
        with self._lock:
            self._items.clear()
            self._generation = None

    def __len__(self) -> int:
        return len(self._items)
