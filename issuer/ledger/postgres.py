"""The PostgreSQL ledger (psycopg 3), chosen by a ``postgresql://`` URL.

At most ``max_connections`` connections are open at once (a unit of work waits for one,
then fails as transient); idle ones are kept in a small pool. Connections are in
autocommit mode, each unit of work an explicit ``BEGIN`` (``READ COMMITTED``; ``BEGIN
READ ONLY`` for reads) and ``COMMIT`` (durable with the server's default
``synchronous_commit = on``). The ``BEGIN`` goes in the round trip of the unit of work's
first statement, and the statements whose answers nobody reads (the outbox's events, the
last round of a batch's records: :meth:`~issuer.ledger.sql.SqlConnection.later`) in the
``COMMIT``'s; a unit of work that sent nothing sends neither. A connection whose
pipeline failed is closed rather than kept
(:meth:`~issuer.ledger.sql.SqlConnection.each`). Rows are locked with ``SELECT ... FOR
UPDATE`` (or an upsert, which locks the same way) where the repositories ask: the ATC
state of a card, an account being debited; so concurrent services decide each ATC and
each hold once. Statements whose answers can wait go together in psycopg's pipeline
mode, one round trip for many (:meth:`~issuer.ledger.sql.SqlConnection.each`: the write
phases of a batch of authorisations,
:meth:`~issuer.ledger.repository.UnitOfWork.check_and_reserve` and
:meth:`~issuer.ledger.repository.UnitOfWork.record_many`). ``schema`` puts the tables in
a schema of their own (created if needed; tests use one per test). Serialisation
failures, deadlocks and lock time-outs are :class:`~issuer.errors.TransientError`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql

from issuer.config import redact_url
from issuer.errors import LedgerError, TransientError
from issuer.ledger.base import SqlLedger
from issuer.ledger.sql import Dialect, SqlConnection

__all__ = ["POSTGRES_DIALECT", "PostgresLedger"]

_TRANSIENT = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Key of the advisory lock held while migrating ("tapstack" in ASCII, as a bigint).
_MIGRATION_LOCK = 0x7461707374616B

POSTGRES_DIALECT = Dialect(
    name="postgresql",
    placeholder="%s",
    for_update=" FOR UPDATE",
    is_unique_violation=lambda exc: isinstance(exc, pg_errors.UniqueViolation),
    is_transient=lambda exc: isinstance(exc, _TRANSIENT),
    is_driver_error=lambda exc: isinstance(exc, psycopg.Error),
    pipelines=True,
)


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database (module docstring)."""

    dialect = "postgresql"
    sql_dialect = POSTGRES_DIALECT
    pipelines = True

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 8,
        max_connections: int = 32,
        connect_timeout: int = 10,
        acquire_timeout: float = 10.0,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise LedgerError("a schema name is lower-case letters, digits and _")
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.acquire_timeout = acquire_timeout
        self._repositories = {}
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False

    def __repr__(self) -> str:
        where = f", schema {self.schema}" if self.schema else ""
        return f"PostgresLedger({redact_url(self.url)!r}{where})"

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise LedgerError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from None
        if self.schema is not None:
            name = pg_sql.Identifier(self.schema)
            conn.execute(pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            conn.execute(pg_sql.SQL("SET search_path TO {}").format(name))
        return conn

    def _take(self) -> psycopg.Connection[Any]:
        """A connection, waiting up to ``acquire_timeout`` seconds for one of the
        ``max_connections`` slots (then :class:`TransientError`)."""
        if self._closed:
            raise LedgerError("the ledger is closed")
        if not self._slots.acquire(timeout=self.acquire_timeout):
            raise TransientError("all database connections are busy: retry")
        try:
            with self._lock:
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and not conn.broken:
                        return conn
            return self._connect()
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        self._slots.release()
        keep = False
        if not conn.closed and not conn.broken:
            with self._lock:
                if not self._closed and len(self._idle) < self.pool_size:
                    self._idle.append(conn)
                    keep = True
        if not keep:
            conn.close()

    def _acquire(self, write: bool, snapshot: bool = True) -> tuple[Any, Callable[[bool], None]]:
        conn = self._take()
        if not write and not snapshot:

            def give_back(commit: bool) -> None:
                self._give_back(conn)

            return conn, give_back
        db = self._repos(conn).db
        db.forget()
        begin = "BEGIN" if write else "BEGIN READ ONLY"
        db.later(begin)  # sent with the first statement, in its round trip

        def finish(commit: bool) -> None:
            try:
                unsent = db.unsent()
                if unsent == [begin] or (not commit and unsent[:1] == [begin]):
                    db.forget()  # nothing was sent, nothing to send: no transaction
                elif commit:
                    try:
                        db.run("COMMIT")  # with what is queued (an outbox's events)
                    except Exception as exc:
                        if not conn.broken and not conn.closed:
                            conn.execute("ROLLBACK")
                        if isinstance(exc, TransientError):
                            raise TransientError("commit failed on a conflict: retry") from None
                        raise
                else:
                    db.forget()
                    if not conn.broken and not conn.closed:
                        conn.execute("ROLLBACK")
            finally:
                self._give_back(conn)

        return conn, finish

    def _migration_lock(self, db: SqlConnection) -> None:
        db.one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _has_migrations_table(self, db: SqlConnection) -> bool:
        row = db.one("SELECT to_regclass('schema_migrations') IS NOT NULL")
        return bool(row and row[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._repositories.clear()

    def drop_schema(self) -> None:
        """Drop this ledger's schema and everything in it (tests)."""
        if self.schema is None:
            raise LedgerError("no schema of its own to drop")
        conn = self._connect()
        try:
            conn.execute(
                pg_sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    pg_sql.Identifier(self.schema)
                )
            )
        finally:
            conn.close()
