"""What a batch of authorisations costs on PostgreSQL, counted on the wire: the
server's ReadyForQuery messages (one per Sync or simple query, so one per round trip:
PostgreSQL's protocol, "Pipelining" and "Extended Query"), traced by libpq on every
connection of the ledger. A round of the write phases is two round trips, the
transaction's BEGIN going with the first and the events and COMMIT with the last
(issuer/domain/authorise.py ``Authoriser._record_many``). A request id taken in that
last round fails the commit: the batch then runs one by one and decides as it would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq

from emvwire.contract import Decision
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest, Authoriser
from issuer.domain.decisions import Decided
from issuer.ledger.postgres import PostgresLedger
from issuer.model.entities import Terminal
from tests.issuer.controls_kit import Payer, Shop


class _Wire:
    """The round trips of a ledger's connections while counting (:func:`_counting`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.traces: list[tuple[int, Path]] = []
        self.count = 0

    def trace(self, conn: Any) -> Any:
        path = self.folder / f"{len(self.traces)}.trace"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.traces.append((fd, path))
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return conn


@contextmanager
def _counting(
    ledger: PostgresLedger, monkeypatch: pytest.MonkeyPatch, folder: Path
) -> Iterator[_Wire]:
    """Trace the ledger's idle connections and those it opens meanwhile; at the end,
    the round trips they made (``count``)."""
    wire = _Wire(folder)
    idle = list(ledger._idle)
    for conn in idle:
        wire.trace(conn)
    connect = ledger._connect
    monkeypatch.setattr(ledger, "_connect", lambda: wire.trace(connect()))
    try:
        yield wire
    finally:
        monkeypatch.undo()
        for conn in {*idle, *ledger._idle}:
            if not conn.closed:
                conn.pgconn.untrace()
        for fd, path in wire.traces:
            os.close(fd)
            lines = path.read_text().splitlines()
            wire.count += sum(1 for line in lines if "\tReadyForQuery\t" in line)


def _postgres(app: IssuerApp) -> PostgresLedger:
    if not isinstance(app.ledger, PostgresLedger):
        pytest.skip("SQLite runs in the process: no round trips")
    return app.ledger


def _approved(decided: Decided | Exception) -> bool:
    assert not isinstance(decided, Exception), decided
    return decided.decision.approved


@pytest.mark.parametrize(("repeats", "rounds"), [(1, 1), (2, 2)])
def test_a_round_of_good_authorisations_costs_two_round_trips(
    issuer: IssuerApp,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    repeats: int,
    rounds: int,
) -> None:
    ledger = _postgres(issuer)
    authoriser = Authoriser(issuer, together=True)
    shop = Shop(issuer)  # one account: group commit keeps the batch's order
    payers = [shop.card() for _ in range(16)]
    batch: list[tuple[Terminal, AuthorisationRequest]] = [
        (shop.terminal, shop.request(payer, 100)) for payer in payers * repeats
    ]  # a card twice in a batch: its second request in the next round
    generation = issuer.cache.refresh()
    checked = [authoriser.check(t, r, generation=generation) for t, r in batch]
    with _counting(ledger, monkeypatch, tmp_path) as wire:
        decided = authoriser.decide_many(checked)
    assert all(_approved(d) for d in decided)
    assert len(decided) == 16 * repeats
    assert wire.count == 2 * rounds
    assert shop.balances() == (100_000, 1_600 * repeats)
    with ledger.unit_of_work(write=False) as uow:
        events = uow.db.one("SELECT COUNT(*) FROM events WHERE type = 'authorisation.approved'")
    assert events == (16 * repeats,)  # the outbox's, in the commit's round trip
    assert issuer.ledger.check() == []


def _answer(decided: Decided | Exception) -> tuple[bool, str, bool]:
    assert not isinstance(decided, Exception), decided
    d: Decision = decided.decision
    return d.approved, d.response_code, d.replayed


def test_a_request_id_taken_in_the_last_round_runs_the_batch_one_by_one(
    issuer: IssuerApp,
) -> None:
    authoriser = Authoriser(issuer, together=True)
    shop = Shop(issuer)
    payers = [shop.card() for _ in range(4)]
    d = payers[2]
    payers[2] = Payer(d.id, bytes(16), d.track2, d.pan)  # a wrong key: declined, no flag
    batch = [(shop.terminal, shop.request(payer, 100)) for payer in payers]
    generation = issuer.cache.refresh()
    checked = [authoriser.check(t, r, generation=generation) for t, r in batch]
    # Request 2 is decided and committed after the batch's read phase: in the batch's
    # only round (its last), its record's request id is taken, which only the commit
    # finds (nothing is sent between the records and the commit: no flag to set).
    assert not authoriser.authorise(*batch[2]).approved
    answers = [_answer(d) for d in authoriser.decide_many(checked)]
    assert answers == [
        (True, "00", False),
        (True, "00", False),
        (False, "82", True),  # the stored answer
        (True, "00", False),
    ]
    assert shop.balances() == (100_000, 300)
    assert [issuer.service.card(p.id).flag for p in payers] == [None] * 4
    assert issuer.ledger.check() == []
