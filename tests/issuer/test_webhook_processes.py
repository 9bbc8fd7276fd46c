"""Webhooks across real processes, on SQLite and PostgreSQL: ``kill -9`` of ``issuer
serve`` between a decision and its delivery loses no event (the restarted service
delivers it), and two ``issuer events deliver`` processes on one database send each
event once."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.domain.events import Events
from issuer.domain.webhooks import Webhooks
from tests.support.e2e import BIN
from tests.support.issuer_home import PASS, IssuerHome, arqc_request, stop_service
from tests.support.webhooks import Receiver, signature_valid, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """No URL (SQLite in the home), or a PostgreSQL schema of the test's own."""
    if request.param == "sqlite":
        yield None
        return
    import psycopg

    url = str(request.getfixturevalue("postgres_url"))
    schema = f"wh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _add_endpoint(setup: IssuerHome, url: str) -> str:
    with setup.open() as app:
        _, secret = Webhooks(app.ledger, app.keys).add(url, ["*"], dev_plain_http=True)
    return secret


def test_kill_9_between_a_decision_and_its_delivery_loses_no_event(
    tmp_path: Path, db_url: str | None
) -> None:
    setup = IssuerHome(tmp_path / "home", db_url, terminals=1, cards=1)
    receiver = Receiver().reserve()  # down: the delivery cannot happen yet
    secret = _add_endpoint(setup, receiver.url)
    proc, url = setup.serve("--webhook-retry-base", "0.05")
    mk, track2 = setup.cards[0]
    try:
        with setup.client(url, 0, timeout=10, retries=0) as host:
            decision = host.authorise(arqc_request(mk, 1, 100), track2)
        assert decision.approved
    finally:
        stop_service(proc, signal.SIGKILL)
    with setup.open() as app:
        (event,) = Events(app.ledger).list(event_type="authorisation.approved").events
        assert event.object_id == decision.transaction_id
    with receiver.start():
        proc, _ = setup.serve("--webhook-retry-base", "0.05")
        try:
            # At once, or (if the killed worker had claimed the delivery, and tried in
            # vain, just before) once its lease ends: DeliveryPolicy.lease, 60 s.
            assert wait_for(lambda: event.id in receiver.ids(), timeout=90)
        finally:
            stop_service(proc)
        got = next(r for r in receiver.snapshot() if r.event_id == event.id)
    assert signature_valid(got.headers["tapstack-signature"], got.body, secret)
    assert got.event["data"]["object"]["id"] == decision.transaction_id
    with setup.open() as app:
        (delivery,) = Events(app.ledger).get(event.id)[1]
        assert delivery.status.value == "delivered"


def test_two_delivery_processes_send_each_event_once(tmp_path: Path, db_url: str | None) -> None:
    setup = IssuerHome(tmp_path / "home", db_url, terminals=0, cards=0)
    with Receiver().start() as receiver:
        _add_endpoint(setup, receiver.url)
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(setup.home),
               "TAPSTACK_KEYSTORE_KEY": PASS}  # fmt: skip
        cmd = [str(BIN / "issuer"), *(["--db", db_url] if db_url else []), "events", "deliver"]
        workers = [
            subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
        ]
        try:
            for worker in workers:  # both running before the events are made
                assert worker.stderr is not None
                assert "delivering events" in worker.stderr.readline()
            with setup.open() as app:
                for i in range(60):
                    app.service.create_account(f"Holder {i}")
                # The home's own account's two events, and those of the 60 made here.
                made = {e.id for e in Events(app.ledger).list(limit=1000).events}
            assert wait_for(lambda: set(receiver.ids()) >= made, timeout=60)
        finally:
            for worker in workers:
                stop_service(worker)
        assert [w.returncode for w in workers] == [0, 0]
        counts = Counter(receiver.ids())
    assert len(made) == 62
    assert set(counts) == made
    assert set(counts.values()) == {1}
