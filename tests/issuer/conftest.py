"""Fixtures of the issuer tests: ledgers on SQLite and PostgreSQL, key stores in a file
and in SoftHSM, and an issuer set up on them.

RSA keys cost 0.1-1 s each to generate, so the issuer and ICC keys are generated once
per session and imported where a test needs them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.config import IssuerConfig
from issuer.domain.service import IssuerService
from issuer.keys.base import KeyStore
from issuer.keys.file import FileKeyStore
from issuer.ledger.repository import Ledger
from issuer.ledger.sqlite import SqliteLedger
from issuer.model.entities import BinRange
from tests.issuer.helpers import PASSPHRASE, make_file_store, open_softhsm_store, set_up


@pytest.fixture(scope="session")
def rsa_keys() -> dict[str, SigningKey]:
    """Issuer and ICC RSA keys, generated once per session."""
    return {
        "issuer/visa": SigningKey.generate(1024, 3),
        "issuer/mastercard": SigningKey.generate(1152, 65537),
        "icc/visa": SigningKey.generate(1024, 3),
        "icc/mastercard": SigningKey.generate(1024, 65537),
        "issuer/amex": SigningKey.generate(1024, 3),
        "icc/amex": SigningKey.generate(1024, 3),
        "issuer/unionpay": SigningKey.generate(1024, 3),
        "icc/unionpay": SigningKey.generate(1024, 3),
    }


_SCHEMAS: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    """Drop the PostgreSQL schemas of the session's tests, all at the end."""
    yield
    if not _SCHEMAS:
        return
    import psycopg
    from psycopg import sql

    url = os.environ.get("TAPSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
    with psycopg.connect(url, autocommit=True) as conn:
        # A few per statement: one DROP of a hundred schemas runs out of lock slots
        # (max_locks_per_transaction).
        for i in range(0, len(_SCHEMAS), 8):
            names = sql.SQL(", ").join(sql.Identifier(n) for n in _SCHEMAS[i : i + 8])
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(names))
    _SCHEMAS.clear()


def _postgres_ledger(url: str) -> Iterator[Ledger]:
    """A migrated ledger in a new schema (dropped at the end of the session)."""
    from issuer.ledger.postgres import PostgresLedger

    name = f"t_{uuid.uuid4().hex[:16]}"
    _SCHEMAS.append(name)
    ledger = PostgresLedger(url, schema=name)
    ledger.migrate()
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A migrated ledger: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield from _sqlite_ledger(tmp_path / "issuer.db")
    else:
        yield from _postgres_ledger(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """A migrated SQLite ledger (for tests about the file itself)."""
    db = SqliteLedger(tmp_path / "issuer.db")
    db.migrate()
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(params=["file", pytest.param("pkcs11", marks=pytest.mark.hsm)])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    """A fresh key store: encrypted file, or SoftHSM through PKCS#11."""
    if request.param == "file":
        store: KeyStore = make_file_store(tmp_path / "keystore.json")
    else:
        store = open_softhsm_store(request.getfixturevalue("softhsm"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def file_keys(tmp_path: Path) -> Iterator[FileKeyStore]:
    """A fresh file key store."""
    store = make_file_store(tmp_path / "keystore.json")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def issuer_template(
    tmp_path_factory: pytest.TempPathFactory, rsa_keys: dict[str, SigningKey]
) -> tuple[Path, Path, list[BinRange]]:
    """An issuer set up once per session (key store file, SQLite file, its ranges):
    tests copy it instead of signing certificates again."""
    folder = tmp_path_factory.mktemp("issuer-template")
    keys = make_file_store(folder / "keystore.json")
    db = SqliteLedger(folder / "issuer.db")
    db.migrate()
    app = set_up(keys, db, rsa_keys, folder)
    ranges = app.service.bin_ranges()
    app.close()  # the last connection checkpoints the WAL into the file
    return folder / "keystore.json", folder / "issuer.db", ranges


@pytest.fixture
def issuer(
    request: pytest.FixtureRequest,
    issuer_template: tuple[Path, Path, list[BinRange]],
    tmp_path: Path,
) -> Iterator[IssuerApp]:
    """An issuer with the default ranges and a file key store, on each ledger (SQLite,
    PostgreSQL): a copy of :func:`issuer_template`. ``pkcs11``: a fresh SoftHSM key
    store on SQLite, set up from scratch (the service tests run on it too)."""
    backend = request.param if hasattr(request, "param") else "sqlite"
    if backend == "pkcs11":
        hsm = open_softhsm_store(request.getfixturevalue("softhsm"))
        db = SqliteLedger(tmp_path / "issuer.db")
        db.migrate()
        app = set_up(hsm, db, request.getfixturevalue("rsa_keys"), tmp_path)
        try:
            yield app
        finally:
            hsm.close()
            db.close()
        return
    keystore_file, db_file, ranges = issuer_template
    shutil.copy(keystore_file, tmp_path / "keystore.json")
    keys = FileKeyStore.open(tmp_path / "keystore.json", PASSPHRASE)
    ledgers: Iterator[Ledger]
    if backend == "sqlite":
        shutil.copy(db_file, tmp_path / "issuer.db")
        ledgers = _sqlite_ledger(tmp_path / "issuer.db")
    else:
        ledgers = _postgres_ledger(request.getfixturevalue("postgres_url"))
    ledger = next(ledgers)
    if backend != "sqlite":
        with ledger.unit_of_work() as uow:
            for bin_range in ranges:
                uow.bins.add(bin_range)
            uow.commit()
    try:
        yield IssuerApp(IssuerConfig(home=tmp_path), ledger, keys)
    finally:
        keys.close()
        for _ in ledgers:  # runs the ledger's clean-up
            pass


@pytest.fixture
def other(issuer: IssuerApp) -> Iterator[IssuerService]:
    """The issuer's domain service on a ledger object of its own on the same database:
    another process's connections (the CLI's), sharing nothing with ``issuer``'s."""
    ledger: Ledger
    if isinstance(issuer.ledger, SqliteLedger):
        ledger = SqliteLedger(issuer.ledger.path)
    else:
        from issuer.ledger.postgres import PostgresLedger

        assert isinstance(issuer.ledger, PostgresLedger)
        ledger = PostgresLedger(issuer.ledger.url, schema=issuer.ledger.schema)
    try:
        yield IssuerService(ledger, issuer.keys)
    finally:
        ledger.close()


def _sqlite_ledger(path: Path) -> Iterator[Ledger]:
    db = SqliteLedger(path)
    db.migrate()
    try:
        yield db
    finally:
        db.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test using ``issuer`` on SQLite and on PostgreSQL; the authorisation
    service's tests also with the PKCS#11 (SoftHSM) key store."""
    if "issuer" in metafunc.fixturenames:
        backends = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
        if metafunc.module.__name__.rpartition(".")[2] == "test_service":
            backends.append(pytest.param("pkcs11", marks=pytest.mark.hsm))
        if metafunc.module.__name__.rpartition(".")[2] == "test_console_browser":
            backends = ["sqlite"]  # the browser's part is the same on both
        metafunc.parametrize("issuer", backends, indirect=True)
