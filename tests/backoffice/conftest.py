"""Fixtures of the back office tests: a fresh home with its store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backoffice.store import Home, Store


@pytest.fixture
def home(tmp_path: Path) -> Home:
    made = Home(tmp_path / "backoffice")
    made.init()
    return made


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store(home) as opened:
        yield opened
