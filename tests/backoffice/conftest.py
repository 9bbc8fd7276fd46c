"""Fixtures of the back office tests: a fresh home with its store, on SQLite (the
home's file) and on PostgreSQL (a schema of its own in the test database, dropped at
the end of the session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backoffice.store import Home, Store
from tests.backoffice.databases import drop_schemas, postgres_home_url

#: Every test taking ``home`` (or ``store``) runs on both databases.
DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", autouse=True)
def _drop_backoffice_schemas() -> Iterator[None]:
    yield
    drop_schemas()


@pytest.fixture(params=DIALECTS)
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Home:
    url = None
    if request.param == "postgres":
        url = postgres_home_url(request.getfixturevalue("postgres_url"))
    made = Home(tmp_path / "backoffice", url)
    made.init()
    return made


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store(home) as opened:
        yield opened
