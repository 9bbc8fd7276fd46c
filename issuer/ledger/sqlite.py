"""The SQLite ledger (the default): one file, WAL, durable commits.

Each connection runs ``PRAGMA journal_mode=WAL`` (readers never block the writer),
``synchronous=FULL`` (the WAL is synced at every commit: an approved authorisation
survives a power cut; SQLite "PRAGMA synchronous"), ``foreign_keys=ON`` and a busy
time-out. Write units of work take the writer lock (an ``flock`` on ``NAME.lock``
beside the database, so writers of every process queue in the kernel rather than in
SQLite's sleeping busy handler), then start with ``BEGIN IMMEDIATE``, taking SQLite's
write lock at once, so that two writers never deadlock upgrading read locks; a lock
not obtained within the time-out is a :class:`~issuer.errors.TransientError`. Each
thread uses its own connection (sqlite3 objects are not shared between threads).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from issuer.errors import LedgerError, TransientError
from issuer.ledger.base import SqlLedger
from issuer.ledger.sql import Dialect, SqlConnection

__all__ = ["SQLITE_DIALECT", "SqliteLedger"]

#: WAL pages between two automatic checkpoints (SQLite default 1,000).
WAL_CHECKPOINT_PAGES: Final = 20_000
#: How often a waiting writer tries the writer lock again, seconds.
_LOCK_POLL: Final = 0.0001


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
        self._repositories = {}
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock_fds: list[int] = []
        self.lock_path = self.path.with_name(self.path.name + ".lock")
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
                # Checkpoint the WAL every 20,000 pages (80 MiB at 4 KiB), not 1,000:
                # the hot index pages of a busy service are copied far fewer times.
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot open the SQLite database: {exc}") from None
            except OSError as exc:
                raise LedgerError(f"cannot open the writer lock: {exc.strerror}") from None
            self._local.conn = conn
            self._local.lock_fd = lock_fd
            self._local.busy = False
            with self._lock:
                self._connections.append(conn)
                self._lock_fds.append(lock_fd)
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
        lock_fd: int = self._local.lock_fd
        if write:
            self._lock_writer(lock_fd)
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            if write:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
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
                if write:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)

        return conn, finish

    def _lock_writer(self, lock_fd: int) -> None:
        """Take the writer lock (``flock`` on ``NAME.lock``, shared by every process of
        the ledger) within the time-out, else :class:`TransientError`. Writers queue
        here, woken within half a millisecond, rather than in SQLite's busy handler,
        whose sleeps grow to 100 ms and make a long latency tail."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TransientError("the database is locked: retry") from None
                time.sleep(_LOCK_POLL)

    def try_writer(self) -> bool:
        self._connection()
        try:
            fcntl.flock(self._local.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release_writer(self) -> None:
        lock_fd = getattr(self._local, "lock_fd", None)
        if lock_fd is not None and not self._local.busy:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _has_migrations_table(self, db: SqlConnection) -> bool:
        row = db.one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        return row is not None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            fds, self._lock_fds = self._lock_fds, []
        for conn in connections:
            conn.close()
        self._repositories.clear()
        for fd in fds:
            os.close(fd)
        self._local = threading.local()
