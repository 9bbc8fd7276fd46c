"""The back office's migrations (backoffice/schema.py): a home made before them (the
SQLite schema of migration 1, an ``assigned_seq`` cursor) is taken up where it was, and
a database whose applied migration differs from this code's is refused."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backoffice.errors import StoreError
from backoffice.schema import MIGRATIONS, statements_for
from backoffice.store import Home, Store
from tests.backoffice.taps import plain_tap

DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def test_a_home_of_the_first_schema_keeps_its_assigned_taps(tmp_path: Path) -> None:
    home = Home(tmp_path / "bo")
    home.init()
    with Store(home) as store:
        store.add_gate("north", None)
        pub = home.sealing_public_key()
        taps = [plain_tap(pub, "G1", i, DAY + timedelta(minutes=i)) for i in range(1, 6)]
        store.insert_taps("G1", taps, home.fares())
        rows = store.conn.execute("SELECT * FROM taps ORDER BY seq").fetchall()
        gate = store.conn.execute("SELECT * FROM gates").fetchone()
    # The same taps in a database as the back office left it before migration 2: its
    # engine had assigned the first three (its cursor), not the last two.
    home.db.unlink()
    with sqlite3.connect(home.db) as old:
        for statement in statements_for(MIGRATIONS[0], "sqlite"):
            old.execute(statement)
        old.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('assigned_seq', '3')")
        old.execute(f"INSERT INTO gates VALUES ({','.join('?' * len(gate))})", gate)
        old.executemany(f"INSERT INTO taps VALUES ({','.join('?' * len(rows[0]))})", rows)
    old.close()
    with Store(home) as store:
        inbox = [r[0] for r in store.conn.execute("SELECT seq FROM inbox ORDER BY seq")]
        assert inbox == [4, 5]
        versions = [r[0] for r in store.conn.execute("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in MIGRATIONS]
        cursor = store.conn.execute("SELECT 1 FROM meta WHERE key = 'assigned_seq'").fetchone()
        assert cursor is None
        # A new tap joins the inbox as it is stored.
        store.insert_taps("G1", [plain_tap(pub, "G1", 6, DAY + timedelta(hours=1))],
                          home.fares())  # fmt: skip
        assert store.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 3


def test_a_database_migrated_otherwise_is_refused(home: Home) -> None:
    with Store(home) as store, store.write() as w:
        w.execute("UPDATE schema_migrations SET checksum = 'elsewhere' WHERE version = 1")
    with pytest.raises(StoreError, match="schema version 1 differs"):
        Store(home)
