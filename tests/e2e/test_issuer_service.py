"""``issuer serve`` as real processes: killed with SIGKILL during a load run and
restarted, nothing approved is lost and nothing is held twice; two services on one
PostgreSQL accept each ATC of a card exactly once under concurrent taps."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostlink import HostClient, HostOutcome
from tests.support.issuer_home import IssuerHome, arqc_request, stop_service

pytestmark = pytest.mark.slow


def test_kill_9_during_load_loses_nothing_and_holds_once(tmp_path: Path) -> None:
    setup = IssuerHome(tmp_path / "home", None, terminals=4, cards=4)
    proc, url = setup.serve()
    # Each terminal taps its own card: ATC 1, 2, ... (request ids known to the terminal).
    plan = [
        [(f"t{t}-{atc}", arqc_request(setup.cards[t][0], atc, 100 + atc)) for atc in range(1, 41)]
        for t in range(4)
    ]  # fmt: skip
    answers: dict[str, HostOutcome] = {}
    lock = threading.Lock()

    def drive(t: int, target: str, retries: int) -> None:
        with setup.client(target, t, timeout=2.0, retries=retries, backoff=0.05) as host:
            for request_id, blob in plan[t]:
                with lock:
                    if request_id in answers and answers[request_id].answered:
                        continue
                outcome = _authorise_no_reversal(host, blob, setup.cards[t][1], request_id)
                with lock:
                    answers[request_id] = outcome

    threads = [threading.Thread(target=drive, args=(t, url, 0)) for t in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(answers) < 20 and time.monotonic() < deadline:  # the run is under way
        time.sleep(0.005)
    stop_service(proc, signal.SIGKILL)
    for thread in threads:
        thread.join()
    answered_before = {k: v for k, v in answers.items() if v.answered}
    assert answered_before, "the service was killed before answering anything"
    assert len(answered_before) < 160, "the kill came after the run"
    # Restart; the terminals send again what got no answer, with the same request ids.
    proc, url = setup.serve()
    try:
        threads = [threading.Thread(target=drive, args=(t, url, 2)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_service(proc)
    assert all(v.answered for v in answers.values())
    with setup.open() as app:
        assert app.ledger.check() == []
        records = {a.request_id: a for a in app.service.transactions(limit=1000)}
        for request_id, before in answered_before.items():  # nothing answered is lost
            assert records[request_id].id == before.transaction_id
            assert records[request_id].approved == before.approved
        approved = [a for a in records.values() if a.approved]
        assert len(records) == len(answers) == 160
        account = app.service.account(setup.account)
        assert account.held == sum(a.amount for a in approved)  # each held once
        holds = [j for j in app.service.journals(setup.account, limit=1000) if j.kind == "hold"]
        assert len(holds) == len(approved)


def _authorise_no_reversal(
    host: HostClient, blob: bytes, track2: bytes, request_id: str
) -> HostOutcome:
    """The host client's authorise without its time-out reversal (the terminal here
    retries after the restart instead)."""
    host.reverse_request = lambda request_id: False  # type: ignore[method-assign]
    return host.authorise(blob, track2, request_id=request_id)


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    import psycopg

    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
def test_two_services_on_one_postgres_accept_each_atc_once(
    tmp_path: Path, pg_schema_url: str
) -> None:
    setup = IssuerHome(tmp_path / "home", pg_schema_url, terminals=4, cards=1)
    mk, track2 = setup.cards[0]
    blobs = [arqc_request(mk, atc, 100) for atc in range(1, 31)]
    first, url1 = setup.serve()
    second, url2 = setup.serve()
    results: list[tuple[int, HostOutcome]] = []
    lock = threading.Lock()

    def drive(t: int, url: str) -> None:
        with setup.client(url, t, timeout=10.0, retries=2) as host:
            for atc, blob in enumerate(blobs, start=1):
                outcome = host.authorise(blob, track2, request_id=f"t{t}-{atc}")
                with lock:
                    results.append((atc, outcome))

    try:
        threads = [threading.Thread(target=drive, args=(t, (url1, url2)[t % 2])) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_service(first)
        stop_service(second)
    assert len(results) == 4 * 30
    assert all(o.answered for _, o in results)
    for atc in range(1, 31):
        outcomes = [o for a, o in results if a == atc]
        assert sum(o.approved for o in outcomes) == 1, atc
        assert {o.reason for o in outcomes if not o.approved} <= {
            "ATC_REPLAYED",
            "ATC_ROLLED_BACK",
        }
    with setup.open() as app:
        assert app.ledger.check() == []
        assert app.service.account(setup.account).held == 30 * 100
