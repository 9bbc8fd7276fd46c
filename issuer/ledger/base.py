"""What the SQLite and PostgreSQL ledgers share: units of work over a connection
source, migrations (:mod:`issuer.ledger.schema`) and the invariant check."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from issuer.errors import LedgerError
from issuer.ledger.repository import Discrepancy, Ledger, UnitOfWork
from issuer.ledger.schema import MIGRATIONS, statements_for
from issuer.ledger.sql import Dialect, SqlConnection, SqlRepositories, SqlUnitOfWork, check_ledger
from issuer.model.entities import utc_now

__all__ = ["SqlLedger"]

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)"
)


#: Connections whose repositories are kept (more: all are made again).
_MAX_CONNECTIONS_KEPT = 256


class SqlLedger(Ledger):
    """A :class:`Ledger` over an SQL database; subclasses give connections."""

    sql_dialect: Dialect
    #: The repositories of each driver connection, by its id (subclasses start it).
    _repositories: dict[int, SqlRepositories]

    @abstractmethod
    def _acquire(self, write: bool, snapshot: bool = True) -> tuple[Any, Callable[[bool], None]]:
        """A connection inside a new transaction (none if neither ``write`` nor
        ``snapshot``: statements in autocommit), and how to end it (commit or not)."""

    def unit_of_work(self, *, write: bool = True, snapshot: bool = True) -> SqlUnitOfWork:
        raw, finish = self._acquire(write, snapshot)
        repos = self._repos(raw)
        return SqlUnitOfWork(repos.db, finish, repos)

    def _repos(self, raw: Any) -> SqlRepositories:
        """The repositories of a driver connection, made once (a service opens two or
        three units of work per request); a closed connection's are dropped when its
        id is reused by another."""
        repos = self._repositories.get(id(raw))
        if repos is None or repos.db.raw is not raw:
            if len(self._repositories) >= _MAX_CONNECTIONS_KEPT:
                self._repositories.clear()
            repos = SqlRepositories(SqlConnection(raw, self.sql_dialect))
            self._repositories[id(raw)] = repos
        return repos

    def generation(self) -> int:
        uow = self.unit_of_work(write=False, snapshot=False)
        with uow:
            row = uow.db.one("SELECT generation FROM cache_generation WHERE id = 1")
        if row is None:
            raise LedgerError("the cache generation is missing: migrate the database")
        return int(row[0])

    def _migration_lock(self, db: SqlConnection) -> None:
        """Serialise concurrent migrations (SQLite: the write transaction does)."""

    def migrate(self) -> list[int]:
        applied_now: list[int] = []
        with self.unit_of_work(write=True) as uow:
            assert isinstance(uow, SqlUnitOfWork)
            db = uow.db
            self._migration_lock(db)
            db.run(_MIGRATIONS_TABLE)
            applied = {
                int(v): c for v, c in db.all("SELECT version, checksum FROM schema_migrations")
            }
            for migration in MIGRATIONS:
                checksum = migration.checksum(self.dialect)
                if migration.version in applied:
                    if applied[migration.version] != checksum:
                        raise LedgerError(
                            f"schema version {migration.version} differs from this code's"
                        )
                    continue
                for statement in statements_for(migration, self.dialect):
                    db.run(statement)
                db.run(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, checksum, utc_now()),
                )
                applied_now.append(migration.version)
            known = max(m.version for m in MIGRATIONS)
            if applied and max(applied) > known:
                raise LedgerError(f"the database is at schema {max(applied)}, newer than {known}")
            uow.commit()
        return applied_now

    def schema_version(self) -> int:
        with self.unit_of_work(write=False) as uow:
            assert isinstance(uow, SqlUnitOfWork)
            if not self._has_migrations_table(uow.db):
                return 0
            row = uow.db.one("SELECT MAX(version) FROM schema_migrations")
            return int(row[0]) if row and row[0] is not None else 0

    @abstractmethod
    def _has_migrations_table(self, db: SqlConnection) -> bool:
        """Whether ``schema_migrations`` exists."""

    def _check(self, uow: UnitOfWork) -> Sequence[Discrepancy]:
        assert isinstance(uow, SqlUnitOfWork)
        return check_ledger(uow.db)
