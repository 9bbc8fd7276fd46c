"""Issuer ledger write and read paths on SQLite (WAL, synchronous=FULL) and PostgreSQL.

Each benchmark is one durable unit of work (commit included), as the authorisation
service will run them. Groups (compare SQLite with PostgreSQL within a group):

* ``credit``: a balanced two-entry journal and the account balance update.
* ``atc``: the ATC window check of a card (state row locked, ATC recorded).
* ``authorise-write``: what an approval writes: ATC check, account locked, the
  authorisation record with its event, the hold journal.
* ``vault-lookup``: a read-only de-tokenisation by keyed PAN hash (key store + select).

PostgreSQL runs on 127.0.0.1:5432 (``TAPSTACK_TEST_PG`` overrides the URL), each run in
a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.domain import funds
from issuer.ledger.repository import Ledger
from issuer.ledger.sqlite import SqliteLedger
from issuer.model.entities import (
    Account,
    AccountKind,
    AccountStatus,
    AtcVerdict,
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Terminal,
    TerminalStatus,
    new_id,
    utc_now,
)

PG_URL = os.environ.get("TAPSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    if request.param == "sqlite":
        made: Ledger = SqliteLedger(folder / "issuer.db")
    else:
        if not _pg_up():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        from issuer.ledger.postgres import PostgresLedger

        made = PostgresLedger(PG_URL, schema=f"bench_{uuid.uuid4().hex[:12]}")
    made.migrate()
    try:
        yield made
    finally:
        made.close()
        if request.param != "sqlite":
            made.drop_schema()  # type: ignore[attr-defined]
        shutil.rmtree(folder, ignore_errors=True)


def _account(ledger: Ledger) -> Account:
    account = Account(
        new_id("acct"), "Bench", AccountKind.DEBIT, "EUR", 0, AccountStatus.OPEN, utc_now()
    )
    terminal = Terminal("term_bench", "Bench", "5814", "x", TerminalStatus.ACTIVE, utc_now())
    with ledger.unit_of_work() as uow:
        uow.accounts.add(account)
        if not uow.terminals.list():
            uow.terminals.add(terminal)
        funds.credit(uow, uow.accounts.get(account.id), 10**12)
        uow.commit()
    return account


def test_credit(benchmark: pytest.FixtureRequest, ledger: Ledger) -> None:
    benchmark.group = "credit"  # type: ignore[attr-defined]
    benchmark.name = ledger.dialect  # type: ignore[attr-defined]
    account = _account(ledger)

    def one() -> None:
        with ledger.unit_of_work() as uow:
            funds.credit(uow, uow.accounts.get(account.id, for_update=True), 1)
            uow.commit()

    benchmark(one)  # type: ignore[operator]
    assert ledger.check() == []


def test_atc(benchmark: pytest.FixtureRequest, ledger: Ledger) -> None:
    benchmark.group = "atc"  # type: ignore[attr-defined]
    benchmark.name = ledger.dialect  # type: ignore[attr-defined]
    atcs = itertools.count(1)
    card = new_id("card")

    def one() -> AtcVerdict:
        with ledger.unit_of_work() as uow:
            verdict = uow.atcs.check_and_record(card, next(atcs) % 65536, window=64)
            uow.commit()
        return verdict

    assert benchmark(one) is AtcVerdict.NEW  # type: ignore[operator]


def test_authorise_write(benchmark: pytest.FixtureRequest, ledger: Ledger) -> None:
    benchmark.group = "authorise-write"  # type: ignore[attr-defined]
    benchmark.name = ledger.dialect  # type: ignore[attr-defined]
    account = _account(ledger)
    counter = itertools.count(1)
    card = new_id("card")

    def one() -> None:
        n = next(counter)
        with ledger.unit_of_work() as uow:
            uow.atcs.check_and_record(card, n % 65536, window=64)
            current = uow.accounts.get(account.id, for_update=True)
            assert current.available >= 100
            now = utc_now()
            auth = Authorisation(
                id=new_id("txn"),
                kind=AuthorisationKind.AUTHORISATION,
                terminal_id="term_bench",
                request_id=f"{card}-{n}",
                request_hash="",
                amount=100,
                currency="EUR",
                approved=True,
                response_code="00",
                status=AuthorisationStatus.PENDING,
                created_at=now,
                updated_at=now,
                account_id=account.id,
                held_amount=100,
                atc=n % 65536,
                response='{"code": "00"}',
            )
            uow.authorisations.add(auth)
            funds.hold(uow, account.id, 100, auth.id)
            uow.commit()

    benchmark(one)  # type: ignore[operator]
    assert ledger.check() == []


def test_vault_lookup(benchmark: pytest.FixtureRequest, ledger: Ledger, tmp_path: Path) -> None:
    from datetime import date

    from issuer.domain.service import IssuerService
    from issuer.domain.vault import TokenVault
    from issuer.keys.file import FileKeyStore
    from issuer.personalisation.ranges import RangeSpec

    benchmark.group = "vault-lookup"  # type: ignore[attr-defined]
    benchmark.name = ledger.dialect  # type: ignore[attr-defined]
    keys = FileKeyStore.create(tmp_path / "k.json", b"bench", cost_log2=10)
    keys.ensure_data_keys()
    keys.generate_set("visa", "476173", 18)
    from issuer.model.entities import BinRange

    with ledger.unit_of_work() as uow:
        if not any(r.prefix == "476173" for r in uow.bins.list()):
            spec = RangeSpec("476173", "visa", "card", 18)
            uow.bins.add(
                BinRange(spec.prefix, spec.scheme, spec.kind, spec.cvn, 16, "rsa/issuer/visa",
                         bytes.fromhex("A000000003"), 0xF1, b"\x01", b"", b"\x03", utc_now())
            )  # fmt: skip
            uow.commit()
    service = IssuerService(ledger, keys)
    account = service.create_account("Bench")
    issued = [service.issue_card(account.id, "visa") for _ in range(50)]
    pans = itertools.cycle([i.pan for i in issued])
    vault = TokenVault(keys)

    def one() -> object:
        with ledger.unit_of_work(write=False) as uow:
            return vault.detokenise(uow, next(pans), today=date(2026, 6, 1))

    assert benchmark(one) is not None  # type: ignore[operator]
