"""The ledger on SQLite and on PostgreSQL (every test runs on both).

Invariants: balances always equal the sum of their entries; journals balance;
journals, entries and authorisation events are append-only; an authorisation changes
only its state, and only out of ``pending``; a (terminal, request id) is recorded once;
an ATC is accepted once, even by concurrent transactions on separate connections.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from issuer.domain import funds
from issuer.errors import IntegrityError, InvalidStateError, TransientError, ValidationError
from issuer.ledger import base
from issuer.ledger.postgres import PostgresLedger
from issuer.ledger.qr_sql import qr_tables
from issuer.ledger.repository import Ledger
from issuer.ledger.schema import MIGRATIONS
from issuer.ledger.sql import SqlUnitOfWork
from issuer.ledger.sqlite import SqliteLedger
from issuer.model.entities import (
    Account,
    AccountKind,
    AccountStatus,
    AtcVerdict,
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Book,
    Entry,
    Journal,
    JournalKind,
    Terminal,
    TerminalStatus,
    new_id,
    utc_now,
)


def _account(ledger: Ledger, *, kind: AccountKind = AccountKind.DEBIT, limit: int = 0) -> Account:
    account = Account(new_id("acct"), "Ada", kind, "EUR", limit, AccountStatus.OPEN, utc_now())
    with ledger.unit_of_work() as uow:
        uow.accounts.add(account)
        uow.commit()
    return account


def _terminal(ledger: Ledger) -> Terminal:
    terminal = Terminal(new_id("term"), "Cafe", "5814", "x", TerminalStatus.ACTIVE, utc_now())
    with ledger.unit_of_work() as uow:
        uow.terminals.add(terminal)
        uow.commit()
    return terminal


def _credit(ledger: Ledger, account: Account, amount: int) -> None:
    with ledger.unit_of_work() as uow:
        funds.credit(uow, uow.accounts.get(account.id, for_update=True), amount)
        uow.commit()


def _authorise(
    ledger: Ledger, account: Account, terminal: Terminal, amount: int, request_id: str
) -> Authorisation:
    """What the service does for an approval: hold and record, in one transaction."""
    now = utc_now()
    auth = Authorisation(
        id=new_id("txn"),
        kind=AuthorisationKind.AUTHORISATION,
        terminal_id=terminal.id,
        request_id=request_id,
        request_hash="h",
        amount=amount,
        currency="EUR",
        approved=True,
        response_code="00",
        status=AuthorisationStatus.PENDING,
        created_at=now,
        updated_at=now,
        account_id=account.id,
        held_amount=amount,
        expires_at=funds.expiry_time(),
        response='{"code": "00"}',
    )
    with ledger.unit_of_work() as uow:
        assert uow.authorisations.add(auth)
        funds.hold(uow, account.id, amount, auth.id)
        uow.commit()
    return auth


def _raw(ledger: Ledger, sql: str, params: tuple[Any, ...] = ()) -> None:
    with ledger.unit_of_work() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        uow.db.run(sql, params)
        uow.commit()


def test_migrations_are_recorded_and_idempotent(ledger: Ledger) -> None:
    assert ledger.schema_version() == MIGRATIONS[-1].version
    assert ledger.migrate() == []
    with ledger.unit_of_work(write=False) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        rows = uow.db.all("SELECT version, checksum FROM schema_migrations")
    assert [(v, c) for v, c in rows] == [
        (m.version, m.checksum(ledger.dialect)) for m in MIGRATIONS
    ]


def test_credit_and_balances_equal_their_entries(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 10_000)
    _credit(ledger, account, 250)
    with ledger.unit_of_work(write=False) as uow:
        got = uow.accounts.get(account.id)
        entries = uow.journals.entries(account.id)
        funding = uow.accounts.get("sys_funding")
    assert got.balance == 10_250 == sum(e.amount for e in entries)
    assert funding.balance == -10_250
    assert ledger.check() == []


def test_an_unbalanced_journal_is_refused_and_nothing_is_written(ledger: Ledger) -> None:
    account = _account(ledger)
    journal = Journal(
        new_id("jrn"),
        JournalKind.CREDIT,
        (Entry(account.id, Book.POSTED, 100), Entry("sys_funding", Book.POSTED, -99)),
        utc_now(),
    )
    with ledger.unit_of_work() as uow, pytest.raises(IntegrityError, match="sums to 1"):
        uow.journals.post(journal)
    with ledger.unit_of_work(write=False) as uow:
        assert uow.accounts.get(account.id).balance == 0
        assert uow.journals.for_account(account.id) == []


def test_check_finds_a_balance_changed_behind_the_ledger(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 500)
    _raw(ledger, "UPDATE accounts SET balance = balance + 1 WHERE id = ?", (account.id,))
    problems = ledger.check()
    assert [(p.subject, p.expected, p.actual) for p in problems] == [(account.id, 500, 501)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
        "UPDATE journals SET memo = 'x'",
        "DELETE FROM journals",
        "UPDATE authorisation_events SET amount = 0",
        "DELETE FROM authorisation_events",
        "DELETE FROM authorisations",
        "UPDATE authorisations SET amount = 1",
        "UPDATE authorisations SET response_code = '05'",
    ],
)
def test_append_only_tables_refuse_changes(ledger: Ledger, statement: str) -> None:
    account = _account(ledger)
    _credit(ledger, account, 500)
    terminal = _terminal(ledger)
    _authorise(ledger, account, terminal, 100, "r1")
    reversed_ = _authorise(ledger, account, terminal, 100, "r2")
    with ledger.unit_of_work() as uow:
        funds.reverse(uow, reversed_.id)  # an event to refuse changes to
        uow.commit()
    with pytest.raises(IntegrityError, match="append-only"):
        _raw(ledger, statement)
    assert ledger.check() == []


def test_a_finished_authorisation_never_changes_state(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 500)
    auth = _authorise(ledger, account, _terminal(ledger), 100, "r1")
    with ledger.unit_of_work() as uow:
        funds.reverse(uow, auth.id)
        uow.commit()
    with pytest.raises(IntegrityError, match="pending"):
        _raw(ledger, "UPDATE authorisations SET status = 'pending' WHERE id = ?", (auth.id,))


def test_a_request_id_is_recorded_once_per_terminal(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 500)
    terminal, other = _terminal(ledger), _terminal(ledger)
    first = _authorise(ledger, account, terminal, 100, "same")
    with ledger.unit_of_work() as uow:
        assert not uow.authorisations.add(replace(first, id=new_id("txn"), amount=1))
        found = uow.authorisations.find_by_request(terminal.id, "same")
    assert found == first
    _authorise(ledger, account, other, 100, "same")  # another terminal's request id
    with ledger.unit_of_work(write=False) as uow:
        assert uow.accounts.get(account.id).held == 200


def test_hold_capture_and_partial_capture(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    terminal = _terminal(ledger)
    auth = _authorise(ledger, account, terminal, 400, "r1")
    with ledger.unit_of_work(write=False) as uow:
        held = uow.accounts.get(account.id)
    assert (held.balance, held.held, held.available) == (1_000, 400, 600)
    with ledger.unit_of_work() as uow:
        done = funds.capture(uow, auth.id, 250)
        uow.commit()
    assert (done.status, done.captured_amount, done.released_amount) == (
        AuthorisationStatus.CLOSED,
        250,
        400,
    )
    with ledger.unit_of_work(write=False) as uow:
        after = uow.accounts.get(account.id)
        settlement = uow.accounts.get("sys_settlement")
        events = [e.kind for e in uow.authorisations.events(auth.id)]
    assert (after.balance, after.held) == (750, 0)
    assert settlement.balance == 250
    assert events == ["captured"]
    with ledger.unit_of_work() as uow, pytest.raises(InvalidStateError):
        funds.capture(uow, auth.id)
    assert ledger.check() == []


def test_capture_more_than_held_is_refused(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    auth = _authorise(ledger, account, _terminal(ledger), 400, "r1")
    with ledger.unit_of_work() as uow, pytest.raises(ValidationError):
        funds.capture(uow, auth.id, 401)


def test_reversal_releases_the_hold_exactly_once(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    auth = _authorise(ledger, account, _terminal(ledger), 300, "r1")
    for _ in range(3):
        with ledger.unit_of_work() as uow:
            reversed_ = funds.reverse(uow, auth.id, request_id="rev-1")
            uow.commit()
        assert reversed_.status is AuthorisationStatus.REVERSED
    with ledger.unit_of_work(write=False) as uow:
        after = uow.accounts.get(account.id)
        journals = uow.journals.for_transaction(auth.id)
    assert (after.balance, after.held) == (1_000, 0)
    assert [j.kind for j in journals] == [JournalKind.HOLD, JournalKind.RELEASE]
    assert ledger.check() == []


def test_concurrent_reversals_release_once(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    auth = _authorise(ledger, account, _terminal(ledger), 300, "r1")

    def reverse() -> None:
        with ledger.unit_of_work() as uow:
            funds.reverse(uow, auth.id)
            uow.commit()

    _run_together(reverse, 4)
    with ledger.unit_of_work(write=False) as uow:
        assert uow.accounts.get(account.id).held == 0
        assert len(uow.journals.for_transaction(auth.id)) == 2
    assert ledger.check() == []


def test_issuer_side_expiry_is_apart_from_reversal(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    auth = _authorise(ledger, account, _terminal(ledger), 300, "r1")
    with ledger.unit_of_work() as uow:
        assert funds.expire_due(uow, "2000-01-01T00:00:00Z") == []
        assert funds.expire_due(uow, "2999-01-01T00:00:00Z") == [auth.id]
        assert funds.expire_due(uow, "2999-01-01T00:00:00Z") == []
        uow.commit()
    with ledger.unit_of_work(write=False) as uow:
        assert uow.authorisations.get(auth.id).status is AuthorisationStatus.EXPIRED
        assert uow.accounts.get(account.id).held == 0
    with ledger.unit_of_work() as uow, pytest.raises(InvalidStateError, match="expired"):
        funds.reverse(uow, auth.id)


def test_refunds_never_exceed_the_capture(ledger: Ledger) -> None:
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    terminal = _terminal(ledger)
    auth = _authorise(ledger, account, terminal, 400, "r1")
    with ledger.unit_of_work() as uow:
        funds.capture(uow, auth.id)
        uow.commit()
    with ledger.unit_of_work() as uow:
        first = funds.refund(uow, auth.id, 150, terminal_id=terminal.id, request_id="f1")
        again = funds.refund(uow, auth.id, 150, terminal_id=terminal.id, request_id="f1")
        uow.commit()
    assert again == first
    with ledger.unit_of_work() as uow, pytest.raises(ValidationError, match="exceed"):
        funds.refund(uow, auth.id, 251, terminal_id=terminal.id, request_id="f2")
    with ledger.unit_of_work(write=False) as uow:
        assert uow.accounts.get(account.id).balance == 750
    assert ledger.check() == []


def test_atc_window_decisions(ledger: Ledger) -> None:
    with ledger.unit_of_work() as uow:
        atcs = uow.atcs
        assert atcs.highest("card_x") is None
        assert atcs.check_and_record("card_x", 10, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 10, window=5) is AtcVerdict.REPLAYED
        assert atcs.check_and_record("card_x", 8, window=5) is AtcVerdict.NEW  # late, in window
        assert atcs.check_and_record("card_x", 8, window=5) is AtcVerdict.REPLAYED
        assert atcs.check_and_record("card_x", 5, window=5) is AtcVerdict.ROLLED_BACK
        assert atcs.check_and_record("card_x", 11, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 500, window=5, max_jump=100) is AtcVerdict.JUMPED
        assert atcs.check_and_record("card_y", 10, window=5) is AtcVerdict.NEW  # per card
        assert atcs.highest("card_x") == 11
        uow.commit()
    # What was seen is durable: the bitmap of the window below the highest (11).
    with ledger.unit_of_work() as uow:
        atcs = uow.atcs
        assert [atcs.check_and_record("card_x", a, window=5) for a in (11, 10, 9, 8, 7, 6)] == [
            AtcVerdict.REPLAYED, AtcVerdict.REPLAYED, AtcVerdict.NEW, AtcVerdict.REPLAYED,
            AtcVerdict.NEW, AtcVerdict.ROLLED_BACK,
        ]  # fmt: skip
        # A raise within the window keeps the bits below; a raise past it forgets them.
        assert atcs.check_and_record("card_x", 13, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 9, window=5) is AtcVerdict.REPLAYED
        assert atcs.check_and_record("card_x", 12, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 40, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 36, window=5) is AtcVerdict.NEW
        assert atcs.check_and_record("card_x", 35, window=5) is AtcVerdict.ROLLED_BACK
        assert atcs.check_and_record("card_y", 0xFFFF, window=63) is AtcVerdict.NEW
        assert atcs.check_and_record("card_y", 0xFFFF - 62, window=63) is AtcVerdict.NEW
        assert atcs.check_and_record("card_y", 0xFFFF - 62, window=63) is AtcVerdict.REPLAYED
        with pytest.raises(ValueError, match="window"):
            atcs.check_and_record("card_y", 1, window=64)
        uow.commit()


def _run_together(work: Callable[[], Any], count: int) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_concurrent_taps_accept_an_atc_once(ledger: Ledger) -> None:
    """Eight connections present the same ATCs at once: each is new exactly once."""

    def tap() -> list[AtcVerdict]:
        verdicts = []
        for atc in range(1, 11):
            with ledger.unit_of_work() as uow:
                verdicts.append(uow.atcs.check_and_record("card_c", atc, window=32))
                uow.commit()
        return verdicts

    results = _run_together(tap, 8)
    for atc in range(10):
        column = [r[atc] for r in results]
        assert column.count(AtcVerdict.NEW) == 1, (atc + 1, column)
        assert set(column) <= {AtcVerdict.NEW, AtcVerdict.REPLAYED}


def test_concurrent_holds_never_overdraw(ledger: Ledger) -> None:
    """The service's pattern: lock the account, check availability, hold, commit."""
    account = _account(ledger)
    _credit(ledger, account, 1_000)
    terminal = _terminal(ledger)
    counter = iter(range(1000))
    lock = threading.Lock()

    def spend() -> bool:
        with lock:
            request = f"r{next(counter)}"
        with ledger.unit_of_work() as uow:
            current = uow.accounts.get(account.id, for_update=True)
            if current.available < 300:
                return False
            now = utc_now()
            auth = Authorisation(
                id=new_id("txn"),
                kind=AuthorisationKind.AUTHORISATION,
                terminal_id=terminal.id,
                request_id=request,
                request_hash="",
                amount=300,
                currency="EUR",
                approved=True,
                response_code="00",
                status=AuthorisationStatus.PENDING,
                created_at=now,
                updated_at=now,
                account_id=account.id,
                held_amount=300,
            )
            uow.authorisations.add(auth)
            funds.hold(uow, account.id, 300, auth.id)
            uow.commit()
        return True

    results = _run_together(spend, 6)
    assert results.count(True) == 3
    with ledger.unit_of_work(write=False) as uow:
        final = uow.accounts.get(account.id)
    assert (final.held, final.available) == (900, 100)
    assert ledger.check() == []


def test_postgres_bounds_its_connections(postgres_url: str) -> None:
    from issuer.ledger.postgres import PostgresLedger

    ledger = PostgresLedger(postgres_url, max_connections=1, acquire_timeout=0.1)
    try:
        with ledger.unit_of_work(write=False), pytest.raises(TransientError, match="busy"):
            ledger.unit_of_work(write=False)
        with ledger.unit_of_work(write=False) as uow:  # the slot came back
            assert isinstance(uow, SqlUnitOfWork)
            assert uow.db.one("SELECT 1") == (1,)
    finally:
        ledger.close()


def test_reserve_holds_only_what_is_available(ledger: Ledger) -> None:
    """The service's one-statement funds check and hold: a credit account may use its
    limit; beyond the available amount nothing changes."""
    account = _account(ledger, kind=AccountKind.CREDIT, limit=500)
    _credit(ledger, account, 1_000)
    with ledger.unit_of_work() as uow:
        assert uow.accounts.reserve(account.id, 1_200) is True
        assert uow.accounts.reserve(account.id, 301) is False  # 300 left
        assert uow.accounts.reserve(account.id, 300) is True
        assert uow.accounts.reserve("sys_holds", 1) is False  # never a system account
        uow.commit()
    with ledger.unit_of_work(write=False) as uow:
        got = uow.accounts.get(account.id)
    assert (got.balance, got.held, got.available) == (1_000, 1_500, 0)
    # Held without its journal: the invariant check sees it.
    assert [d.what for d in ledger.check()] == ["held amount of"]


def _unmigrated(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Ledger:
    """A ledger of ``dialect`` with no schema yet (PostgreSQL: a schema of its own),
    for a test that migrates it step by step; :func:`_dispose` ends it."""
    if dialect == "sqlite":
        return SqliteLedger(tmp_path / "old.db")
    return PostgresLedger(
        request.getfixturevalue("postgres_url"), schema=f"m_{uuid.uuid4().hex[:12]}"
    )


def _dispose(old: Ledger) -> None:
    if isinstance(old, PostgresLedger):
        old.drop_schema()
    old.close()


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_4_keeps_the_atcs_seen(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema 3 (ATCs as rows of atc_seen) moves to the bitmap without
    forgetting an ATC of the window."""
    old = _unmigrated(dialect, tmp_path, request)
    try:
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:3])
        assert old.migrate() == [1, 2, 3]
        with old.unit_of_work() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            uow.db.run("INSERT INTO atc_state VALUES ('card_m', 20, 'x')")
            for atc in (20, 18, 15):
                uow.db.run("INSERT INTO atc_seen VALUES ('card_m', ?, NULL, 'x')", (atc,))
            uow.commit()
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:4])
        assert old.migrate() == [4]
        with old.unit_of_work() as uow:
            verdicts = [
                uow.atcs.check_and_record("card_m", a, window=16) for a in (20, 19, 18, 15, 4)
            ]
            uow.commit()
        assert verdicts == [
            AtcVerdict.REPLAYED, AtcVerdict.NEW, AtcVerdict.REPLAYED, AtcVerdict.REPLAYED,
            AtcVerdict.ROLLED_BACK,
        ]  # fmt: skip
    finally:
        _dispose(old)


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_6_gives_ranges_a_status_and_cards_key_version_1(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema 5 with a range and a card moves to 6: the range active, the
    card on key version 1; retiring a key version bumps the cache generation."""
    old = _unmigrated(dialect, tmp_path, request)
    try:
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:5])
        assert old.migrate() == [1, 2, 3, 4, 5]
        with old.unit_of_work() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            uow.db.run(
                "INSERT INTO bin_ranges VALUES ('476173', 'visa', 'card', 18, 16,"
                " 'rsa/issuer/visa', ?, 241, ?, ?, ?, 'x')",
                (b"\xa0\x00\x00\x00\x03", b"c", b"r", b"\x03"),
            )
            uow.db.run(
                "INSERT INTO accounts (id, holder, kind, currency, status, created_at)"
                " VALUES ('acct_m', 'Ada', 'debit', 'EUR', 'open', 'x')"
            )
            uow.db.run(
                "INSERT INTO cards (id, account_id, scheme, bin, pan_masked, pan_last4,"
                " pan_hash, pan_sealed, psn, expiry, cvn, par, status, origin, created_at)"
                " VALUES ('card_m', 'acct_m', 'visa', '476173', '476173******0010', '0010',"
                " ?, ?, '00', '2030-12-31', 18, 'V0010', 'active', 'registered', 'x')",
                (b"h" * 32, b"s"),
            )
            uow.commit()
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:6])
        assert old.migrate() == [6]
        with old.unit_of_work(write=False) as uow:
            card = uow.cards.get("card_m")
            bin_range = uow.bins.get("476173")
            assert uow.bins.retired_keys() == frozenset()
        assert card.key_version == 1
        assert (bin_range.status, bin_range.retired_at) == ("active", None)
        before = old.generation()
        with old.unit_of_work() as uow:
            uow.bins.retire_key("visa", "476173", 18, 1, "2026-01-01T00:00:00Z")
            uow.commit()
        assert old.generation() == before + 1
        with old.unit_of_work(write=False) as uow:
            assert uow.bins.retired_keys() == {("visa", "476173", 18, 1)}
    finally:
        _dispose(old)


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_10_records_channels_and_keeps_them(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema 6 with an authorisation moves to 10: the authorisation was
    a tap (channel contactless), written once like the rest of its record; terminals
    have no city yet; a token's channels, once set, bump the cache generation."""
    old = _unmigrated(dialect, tmp_path, request)
    try:
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:6])
        assert old.migrate() == [1, 2, 3, 4, 5, 6]
        with old.unit_of_work() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            uow.db.run(
                "INSERT INTO terminals (id, merchant, mcc, country, credential_hash, status,"
                " created_at) VALUES ('term_m', 'Shop', '5411', '0250', 'h', 'active', 'x')"
            )
            uow.db.run(
                "INSERT INTO authorisations (id, kind, terminal_id, request_id, request_hash,"
                " amount, currency, approved, response_code, status, response, created_at,"
                " updated_at) VALUES ('txn_m', 'authorisation', 'term_m', 'r1', 'h', 100,"
                " 'EUR', 0, '51', 'closed', '{}', 'x', 'x')"
            )
            uow.commit()
        monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS)
        assert old.migrate() == [m.version for m in MIGRATIONS[6:]]
        with old.unit_of_work(write=False) as uow:
            assert uow.authorisations.get("txn_m").channel == "contactless"
            terminal = uow.terminals.get("term_m")
        assert (terminal.city, terminal.currency) == (None, None)
        with old.unit_of_work() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            with pytest.raises(IntegrityError):
                uow.db.run("UPDATE authorisations SET channel = 'qr_cpm' WHERE id = 'txn_m'")
        before = old.generation()
        with old.unit_of_work() as uow:
            qr_tables(uow).set_terminal_place("term_m", "Paris", "EUR")
            uow.commit()
        assert old.generation() == before + 1
    finally:
        _dispose(old)


def test_the_newest_authorisations_are_read_through_an_index(ledger: Ledger) -> None:
    """Migration 11: the console's live list and the operator API read the newest
    authorisations from ``authorisations_recent``, not by sorting the whole table."""
    query = "SELECT id FROM authorisations ORDER BY created_at DESC, id DESC LIMIT 50"
    with ledger.unit_of_work(write=False) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        if ledger.dialect == "sqlite":
            plan = " ".join(str(r[-1]) for r in uow.db.all("EXPLAIN QUERY PLAN " + query))
            assert "authorisations_recent" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        else:
            uow.db.run("SET LOCAL enable_seqscan = off")
            plan = " ".join(str(r[0]) for r in uow.db.all("EXPLAIN " + query))
            assert "authorisations_recent" in plan, plan
