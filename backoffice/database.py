"""The back office's database, SQLite (default) or PostgreSQL by URL: connections,
transactions, locks and migrations (:mod:`backoffice.schema`) behind one interface.

The store and the engine write their SQL once, with ``?`` placeholders and the
syntax both dialects share (``INSERT ... ON CONFLICT``, ``RETURNING``, partial
indexes); a :class:`Connection` hands it to the driver (``%s`` for psycopg). What
differs is a method of the :class:`Database`:

- **SQLite** (a file of the home): WAL mode, ``synchronous=FULL`` (a commit is on
  disk before it is acknowledged), one writer at a time (``BEGIN IMMEDIATE``); so
  locks are no-ops and the next id of a table is its largest plus one.
- **PostgreSQL** (``postgresql://...``): connections in autocommit mode, each write an
  explicit ``BEGIN`` ... ``COMMIT`` (``READ COMMITTED``, durable with the server's
  default ``synchronous_commit = on``). Several back office instances work on one
  database at once; what keeps them apart is per rider and per row, never a lock one
  instance holds for a night: the rows of the riders a transaction works on are
  locked (``SELECT ... FOR UPDATE`` on ``riders``, in rider order; row locks live in
  the rows, so a chunk of 100,000 riders needs no slot of the server's lock table,
  which ``pg_advisory_xact_lock`` per rider would exhaust at
  ``max_locks_per_transaction`` x ``max_connections``), work lists are claimed with
  ``FOR UPDATE SKIP LOCKED`` (two instances take disjoint parts), an aggregation in
  debt recovery by a session advisory lock on a hash of its id, and ids come from
  sequences. Only deny-list changes take one advisory lock for the whole database,
  for the rest of their transaction (a few milliseconds, on a decline): versions are
  then numbered in commit order, so a gate asking for the changes after version N
  never misses one committed late with a smaller number.

Work on many rows is one statement, not one per row (a round trip each on
PostgreSQL): over a list of ids (:meth:`Connection.for_ids`: an array, or SQLite's
``json_each``), a list of rows (:meth:`Connection.for_rows`: ``VALUES``), or new rows
(:meth:`Connection.copy`: PostgreSQL's ``COPY``).

A URL's ``options=-csearch_path%3DNAME`` puts the tables in schema ``NAME`` (tests
make one per test).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from backoffice.errors import StoreError
from backoffice.schema import MIGRATIONS, statements_for

__all__ = [
    "IDS",
    "Connection",
    "Cursor",
    "Database",
    "PostgresDatabase",
    "SqliteDatabase",
    "lock_key",
    "open_database",
    "redact_url",
]

_MIGRATIONS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
#: Advisory lock keys ("bo:migr", "bo:deny" in ASCII as a bigint).
_MIGRATION_LOCK: Final = 0x626F3A6D696772
_DENY_LOCK: Final = 0x626F3A64656E79


class _Ids:
    """The place of the id list in the parameters of :meth:`Connection.for_ids`."""

    def __repr__(self) -> str:
        return "IDS"


#: Where :meth:`Connection.for_ids` puts the ids (each ``= ANY(?)`` of the statement).
IDS: Final = _Ids()


class Cursor(Protocol):
    """What a driver's cursor gives (sqlite3 and psycopg alike)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement."""
        ...

    @property
    def description(self) -> Any:
        """The result's columns (``d[0]`` is a name)."""
        ...

    def fetchone(self) -> Any:
        """The next row or ``None``."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


def lock_key(text: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` from a text (the first 8 bytes of
    its SHA-256)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


class Connection:
    """One driver connection as the store uses it: ``execute`` and ``executemany`` of
    ``?`` statements, whatever the driver's placeholder."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._rewrite = dialect != "sqlite"
        self._texts: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        if not self._rewrite:
            return sql
        found = self._texts.get(sql)
        if found is None:
            found = self._texts[sql] = sql.replace("%", "%%").replace("?", "%s")
        return found

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement; the driver's cursor."""
        cursor: Cursor = self.raw.execute(self._sql(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement for each of ``rows`` (psycopg: pipelined); rows changed."""
        if not rows:
            return 0
        if not self._rewrite:
            return int(self.raw.executemany(sql, rows).rowcount)
        with self.raw.cursor() as cursor:
            cursor.executemany(self._sql(sql), rows)
            return int(cursor.rowcount)

    def for_ids(self, sql: str, ids: Sequence[Any], params: Sequence[Any] = (IDS,)) -> int:
        """Run ``sql`` once over every id of ``ids``: each ``= ANY(?)`` takes the id list
        where :data:`IDS` stands in ``params`` (PostgreSQL: an array; SQLite: ``IN
        (SELECT value FROM json_each(?))`` of a JSON array); rows changed."""
        if not ids:
            return 0
        return int(self._over_ids(sql, ids, params).rowcount)

    def rows_for_ids(self, sql: str, ids: Sequence[Any]) -> list[Any]:
        """The rows of a query whose ``= ANY(?)`` takes ``ids`` (as :meth:`for_ids`)."""
        return self._over_ids(sql, ids, (IDS,)).fetchall() if ids else []

    def _over_ids(self, sql: str, ids: Sequence[Any], params: Sequence[Any]) -> Cursor:
        if self._rewrite:
            return self.execute(sql, [list(ids) if p is IDS else p for p in params])
        listed = json.dumps(list(ids))
        text = sql.replace("= ANY(?)", "IN (SELECT value FROM json_each(?))")
        return self.execute(text, [listed if p is IDS else p for p in params])

    def for_rows(self, sql: str, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> int:
        """Run ``sql`` once per 500 of ``rows``: its ``(VALUES)`` becomes a list of rows
        whose columns (``v.column1``, ``v.column2``... in both dialects) are cast to
        ``types``; rows changed."""
        row_sql = "(" + ", ".join(f"CAST(? AS {t})" for t in types) + ")"
        changed = 0
        for i in range(0, len(rows), 500):
            chunk = rows[i : i + 500]
            values = "(VALUES " + ", ".join([row_sql] * len(chunk)) + ")"
            params = [value for row in chunk for value in row]
            changed += int(self.execute(sql.replace("(VALUES)", values), params).rowcount)
        return changed

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` into ``table`` (no conflict expected): PostgreSQL ``COPY``,
        SQLite one ``INSERT`` per row."""
        if not rows:
            return
        names = ", ".join(columns)
        if not self._rewrite:
            marks = ", ".join("?" * len(columns))
            self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
            return
        with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def inserted(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING RETURNING 1`` for each row;
        whether each row was inserted (psycopg: pipelined)."""
        if not self._rewrite:
            return [self.raw.execute(sql, row).fetchone() is not None for row in rows]
        out: list[bool] = []
        if not rows:
            return out
        with self.raw.cursor() as cursor:
            cursor.executemany(self._sql(sql), rows, returning=True)
            while True:
                out.append(cursor.fetchone() is not None)
                if not cursor.nextset():
                    break
        return out


class Database:
    """Where a store's data lives (module docstring); one connection per thread."""

    dialect: str
    #: Taps the engine assigns per transaction: SQLite's one writer takes big chunks
    #: (bounded memory on a million taps); on PostgreSQL smaller ones let instances
    #: share the work.
    assign_chunk: int = 100_000
    #: Riders the engine prices or closes per transaction (PostgreSQL: smaller, shared).
    rider_chunk: int = 5000

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Connection] = []
        self._all_lock = threading.Lock()

    def _connect(self) -> Connection:
        raise NotImplementedError

    @property
    def conn(self) -> Connection:
        """This thread's connection (autocommit: :meth:`write` makes transactions)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(conn.raw, "broken", False):  # the server went away
            with contextlib.suppress(Exception):
                conn.raw.close()
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection opened (from any thread)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.raw.close()
        self._local = threading.local()

    # -- transactions -------------------------------------------------------------------

    _BEGIN_WRITE = "BEGIN"
    _BEGIN_SNAPSHOT = "BEGIN"

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed at the end, rolled back on error). Inside
        another of this thread, it is part of that one."""
        conn = self.conn
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute(self._BEGIN_WRITE)
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        conn.execute("COMMIT")

    def claiming(self) -> contextlib.AbstractContextManager[Connection]:
        """Where a batch of work is claimed (:meth:`claim`), done and recorded. SQLite:
        no transaction (the issuer's answers are recorded in a :meth:`write` of their
        own, so uploads never wait for the issuer); PostgreSQL: one write transaction,
        so the claimed rows stay locked until the answers are committed (a
        :meth:`write` inside is part of it)."""
        return contextlib.nullcontext(self.conn)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction: every statement sees the same committed state."""
        conn = self.conn
        conn.execute(self._BEGIN_SNAPSHOT)
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- what differs ---------------------------------------------------------------------

    def claim(self, alias: str) -> str:
        """The clause that ends a ``SELECT`` claiming work rows of ``alias`` for the
        caller's transaction (PostgreSQL: locked, rows another instance holds are left
        to it; SQLite: nothing, the writer is alone)."""
        return ""

    def lock_riders(self, conn: Connection, riders: Sequence[int], *, skip: bool = False) -> (
        list[int]
    ):  # fmt: skip
        """Lock the rows of ``riders`` for the caller's transaction, in rider order;
        those locked (``skip``: those no other transaction holds; else all, waiting)."""
        return sorted(set(riders))

    def lock_deny_list(self, conn: Connection) -> None:
        """Number deny-list changes in commit order (module docstring)."""

    def try_lock(self, conn: Connection, key: str) -> bool:
        """Take the session lock ``key`` if free (:meth:`unlock` gives it back)."""
        return True

    def unlock(self, conn: Connection, key: str) -> None:
        """Give back a lock of :meth:`try_lock`."""

    def next_ids(self, conn: Connection, kind: str, count: int) -> list[int]:
        """``count`` new ids of ``kind`` (``riders``, ``trips``, ``aggregations``), in
        the caller's transaction."""
        raise NotImplementedError

    @contextlib.contextmanager
    def engine_lock(self, *, wait: bool = True) -> Iterator[bool]:
        """Held during an engine pass where passes must not overlap; yields whether it
        was taken (always, with ``wait``)."""
        yield True

    # -- migrations --------------------------------------------------------------------------

    def _migration_lock(self, conn: Connection) -> None:
        """Serialise concurrent migrations (SQLite: the write transaction does)."""

    def migrate(self, applied_at: str) -> list[int]:
        """Apply the migrations this database lacks (module docstring of
        :mod:`backoffice.schema`); the versions applied now."""
        done: list[int] = []
        with self.write() as conn:
            self._migration_lock(conn)
            conn.execute(_MIGRATIONS_TABLE)
            applied = {
                int(v): c
                for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            for migration in MIGRATIONS:
                checksum = migration.checksum(self.dialect)
                if migration.version in applied:
                    if applied[migration.version] != checksum:
                        raise StoreError(
                            f"schema version {migration.version} differs from this code's"
                        )
                    continue
                for statement in statements_for(migration, self.dialect):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                    "VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, checksum, applied_at),
                )
                done.append(migration.version)
            known = max(m.version for m in MIGRATIONS)
            if applied and max(applied) > known:
                raise StoreError(f"the database is at schema {max(applied)}, newer than {known}")
        return done


class SqliteDatabase(Database):
    """The database in an SQLite file (module docstring)."""

    dialect = "sqlite"
    _BEGIN_WRITE = "BEGIN IMMEDIATE"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def __repr__(self) -> str:
        return f"SqliteDatabase({str(self.path)!r})"

    def _connect(self) -> Connection:
        try:
            raw = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("PRAGMA busy_timeout=30000")
        raw.execute("PRAGMA cache_size=-65536")  # 64 MiB: a night's aggregation
        return Connection(raw, self.dialect)

    _COUNTERS: Final = {"riders": ("riders", "rider_id"), "trips": ("trips", "trip_id")}

    def next_ids(self, conn: Connection, kind: str, count: int) -> list[int]:
        if kind == "aggregations":  # a counter: aggregation ids are text
            found = conn.execute("SELECT value FROM meta WHERE key = 'aggregations'").fetchone()
            first = (int(found[0]) if found else 0) + 1
            conn.execute(
                "INSERT INTO meta VALUES ('aggregations', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(first + count - 1),),
            )
            return list(range(first, first + count))
        table, column = self._COUNTERS[kind]
        found = conn.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").fetchone()  # noqa: S608
        return list(range(int(found[0]) + 1, int(found[0]) + 1 + count))

    @contextlib.contextmanager
    def engine_lock(self, *, wait: bool = True) -> Iterator[bool]:
        """One engine pass at a time across the processes of the home (``flock``)."""
        fd = os.open(self.path.with_name("engine.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


class PostgresDatabase(Database):
    """The database on a PostgreSQL server (module docstring)."""

    dialect = "postgresql"
    assign_chunk = 10_000
    rider_chunk = 1000
    _BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"PostgresDatabase({redact_url(self.url)!r})"

    def _connect(self) -> Connection:
        import psycopg

        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {first}"
            ) from None
        return Connection(raw, self.dialect)

    def claim(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    def claiming(self) -> contextlib.AbstractContextManager[Connection]:
        return self.write()

    def lock_riders(
        self, conn: Connection, riders: Sequence[int], *, skip: bool = False
    ) -> list[int]:
        wanted = sorted(set(riders))
        locked: list[int] = []
        tail = " SKIP LOCKED" if skip else ""
        for i in range(0, len(wanted), 10_000):
            locked += [
                int(r)
                for (r,) in conn.execute(
                    "SELECT rider_id FROM riders WHERE rider_id = ANY(?) ORDER BY rider_id "  # noqa: S608
                    f"FOR UPDATE{tail}",
                    (wanted[i : i + 10_000],),
                )
            ]
        return locked

    def lock_deny_list(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_DENY_LOCK,))

    def try_lock(self, conn: Connection, key: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(?)", (lock_key(key),)).fetchone()
        return bool(row[0])

    def unlock(self, conn: Connection, key: str) -> None:
        conn.execute("SELECT pg_advisory_unlock(?)", (lock_key(key),))

    _SEQUENCES: Final = {
        "riders": "rider_ids",
        "trips": "trip_ids",
        "aggregations": "aggregation_ids",
    }

    def next_ids(self, conn: Connection, kind: str, count: int) -> list[int]:
        if count == 0:
            return []
        rows = conn.execute(
            f"SELECT nextval('{self._SEQUENCES[kind]}') FROM generate_series(1, ?)",  # noqa: S608
            (count,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _migration_lock(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))


def open_database(url: str | None, home_db: Path) -> Database:
    """The database of a home: ``url`` ``postgresql://...`` (or ``postgres://``), or
    ``None`` for the SQLite file ``home_db``; :class:`StoreError` for another URL."""
    if url is None or url == "":
        return SqliteDatabase(home_db)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StoreError(
        f"{redact_url(url)}: a database URL is postgresql://USER@HOST:PORT/NAME "
        "(default: the home's SQLite file)"
    )
