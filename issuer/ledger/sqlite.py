"""The SQLite ledger (the default): one file, WAL, durable commits.

Each connection runs ``PRAGMA journal_mode=WAL`` (readers never block the writer),
``synchronous=FULL`` (the WAL is synced at every commit: an approved authorisation
survives a power cut; SQLite "PRAGMA synchronous"), ``foreign_keys=ON`` and a busy
time-out. Write units of work start with ``BEGIN IMMEDIATE``, taking the write lock at
once, so that two writers never deadlock upgrading read locks; a lock not obtained
within the time-out is a :class:`~issuer.errors.TransientError`. Each thread uses its
own connection (sqlite3 objects are not shared between threads).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from issuer.errors import LedgerError, TransientError
from issuer.ledger.base import SqlLedger
from issuer.ledger.sql import Dialect, SqlConnection

__all__ = ["SQLITE_DIALECT", "SqliteLedger"]


def _transient(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _unique(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


SQLITE_DIALECT = Dialect(
    name="sqlite",
    placeholder="?",
    for_update="",
    is_unique_violation=_unique,
    is_transient=_transient,
    is_driver_error=lambda exc: isinstance(exc, sqlite3.Error),
)


class SqliteLedger(SqlLedger):
    """The ledger in an SQLite file (module docstring)."""

    dialect = "sqlite"
    sql_dialect = SQLITE_DIALECT

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Sealed PANs and hashes live here: owner only (the WAL inherits the mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))

    def __repr__(self) -> str:
        return f"SqliteLedger({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot open the SQLite database: {exc}") from None
            self._local.conn = conn
            self._local.busy = False
            with self._lock:
                self._connections.append(conn)
        return conn

    def _acquire(self, write: bool, snapshot: bool = True) -> tuple[Any, Callable[[bool], None]]:
        conn = self._connection()
        if self._local.busy:
            raise LedgerError("a unit of work is already open in this thread")
        if not write and not snapshot:
            self._local.busy = True

            def leave(commit: bool) -> None:
                self._local.busy = False

            return conn, leave
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            if _transient(exc):
                raise TransientError("the database is locked: retry") from None
            raise LedgerError(f"cannot begin a transaction: {exc}") from None
        self._local.busy = True

        def finish(commit: bool) -> None:
            try:
                if commit:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error:
                        conn.execute("ROLLBACK")
                        raise
                else:
                    conn.execute("ROLLBACK")
            finally:
                self._local.busy = False

        return conn, finish

    def _has_migrations_table(self, db: SqlConnection) -> bool:
        row = db.one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        return row is not None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
