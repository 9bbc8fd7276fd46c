"""The issuer's ledger: repositories over SQLite (default) or PostgreSQL.

:func:`open_ledger` picks the adapter from a URL: ``postgresql://...`` (or
``postgres://``) for PostgreSQL, ``sqlite:PATH`` (``sqlite:///abs/path.db``) or a
plain file path for SQLite.
"""

from __future__ import annotations

from pathlib import Path

from issuer.ledger.repository import Discrepancy, Ledger, UnitOfWork
from issuer.ledger.sqlite import SqliteLedger

__all__ = ["Discrepancy", "Ledger", "SqliteLedger", "UnitOfWork", "open_ledger"]


def open_ledger(url: str | Path, *, schema: str | None = None) -> Ledger:
    """The ledger at ``url`` (module docstring); not migrated yet."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from issuer.ledger.postgres import PostgresLedger

        return PostgresLedger(text, schema=schema)
    if text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
        if text.startswith("//"):
            text = text[2:]
    return SqliteLedger(text)
