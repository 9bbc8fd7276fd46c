"""PostgreSQL databases of the back office tests: a schema per test in the test
database (``TAPSTACK_TEST_PG``), reached through the URL's ``search_path`` option, as
a deployment would give its own database."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import psycopg
from psycopg import sql

from backoffice.store import Home

__all__ = ["drop_schemas", "home_args", "postgres_home_url"]

_SCHEMAS: list[str] = []


def postgres_home_url(url: str) -> str:
    """A new, empty schema of the test database, as a URL whose tables live there."""
    name = f"bo_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    _SCHEMAS.append(name)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={name}')}"


def drop_schemas() -> None:
    """Drop the schemas made by :func:`postgres_home_url` (a few per statement: one
    DROP of a hundred schemas runs out of lock slots)."""
    if not _SCHEMAS:
        return
    url = os.environ.get("TAPSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(0, len(_SCHEMAS), 4):
            names = sql.SQL(", ").join(sql.Identifier(n) for n in _SCHEMAS[i : i + 4])
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(names))
    _SCHEMAS.clear()


def home_args(home: Home) -> list[str]:
    """The ``backoffice`` options that open ``home`` (its database too)."""
    return ["--home", str(home.path), *(["--db", home.db_url] if home.db_url else [])]
