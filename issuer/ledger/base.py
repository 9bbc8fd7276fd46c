"""What the SQLite and PostgreSQL ledgers share: units of work over a connection
source, migrations (:mod:`issuer.ledger.schema`) and the invariant check."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from issuer.domain.model import utc_now
from issuer.errors import LedgerError
from issuer.ledger.repository import Discrepancy, Ledger, UnitOfWork
from issuer.ledger.schema import MIGRATIONS, statements_for
from issuer.ledger.sql import Dialect, SqlConnection, SqlUnitOfWork, check_ledger

__all__ = ["SqlLedger"]

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)"
)


class SqlLedger(Ledger):
    """A :class:`Ledger` over an SQL database; subclasses give connections."""

    sql_dialect: Dialect

    @abstractmethod
    def _acquire(self, write: bool, snapshot: bool = True) -> tuple[Any, Callable[[bool], None]]:
        """A connection inside a new transaction (none if neither ``write`` nor
        ``snapshot``: statements in autocommit), and how to end it (commit or not)."""

    def unit_of_work(self, *, write: bool = True, snapshot: bool = True) -> SqlUnitOfWork:
        raw, finish = self._acquire(write, snapshot)
        return SqlUnitOfWork(SqlConnection(raw, self.sql_dialect), finish)

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
