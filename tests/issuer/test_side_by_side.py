"""Several ``issuer serve`` instances side by side: separate processes (not workers of
one), each over mutual TLS, on one PostgreSQL schema, as a deployment behind a load
balancer runs them. A card suspended through one instance's operator API is declined
by the very next request on the other (the ledger's cache generation,
issuer.domain.cache), and resumed by the CLI is approved again on both; one request
(one terminal, one request id) sent to both at the same moment is decided once, both
answers the same; two requests with one ATC of a card sent to both at once are
approved once, the other ``ATC_REPLAYED``; an instance killed with SIGKILL while
terminals tap on both loses nothing: every answer a terminal got is in the ledger as
answered, each approval held once, and a terminal that lost its answer sends the same
request id to the other instance and gets the one decision."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emvwire.tls import SERVER_CA, ClientTls
from hostlink import HostClient, HostOutcome
from issuer.pki import TLS_DIR, add_operator, tls_folder
from tests.support.e2e import BIN
from tests.support.issuer_home import PASS, IssuerHome, arqc_request, stop_service

pytestmark = pytest.mark.slow


@dataclass
class SideBySide:
    """An issuer home on a PostgreSQL schema, and two ``issuer serve`` processes of it."""

    setup: IssuerHome
    procs: list[subprocess.Popen[str]]
    urls: list[str]

    def client(self, instance: int, terminal: int, **options: float) -> HostClient:
        """Terminal ``terminal``'s host client to instance ``instance`` (0: A, 1: B),
        its connection open (one authenticated request answered)."""
        host = self.setup.client(self.urls[instance], terminal, **options)
        host.check()
        return host

    def card_ids(self) -> list[str]:
        """The ids of :attr:`setup`'s cards, in its order (matched by the PAN's last
        four digits of each track 2)."""
        with self.setup.open() as app:
            by_last4 = {card.pan_last4: card.id for card in app.service.cards()}
        return [by_last4[t2.hex().upper().split("D")[0][-4:]] for _, t2 in self.setup.cards]


@pytest.fixture
def side(tmp_path: Path, pg_schema_url: str) -> Iterator[SideBySide]:
    setup = IssuerHome(tmp_path / "home", pg_schema_url, terminals=8, cards=8)
    served = [setup.serve(), setup.serve()]
    try:
        yield SideBySide(setup, [p for p, _ in served], [u for _, u in served])
    finally:
        for proc, _ in served:
            stop_service(proc)


def _at_once(*calls: Callable[[], HostOutcome]) -> list[HostOutcome]:
    """Each call in a thread of its own, all released at the same moment; their
    outcomes in order."""
    barrier = threading.Barrier(len(calls))
    out: list[HostOutcome | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(o is not None for o in out)
    return [o for o in out if o is not None]


def _operator_pause(side: SideBySide, instance: int, card_id: str) -> None:
    """``POST /v1/issuing/cards/{id}`` ``paused`` through instance ``instance``'s
    operator API, by an operator with its client certificate."""
    home = side.setup.home
    with side.setup.open() as app:
        folder = tls_folder(home, app.keys)
        ops, key, issued = add_operator(app.service, folder, "Ops", ["operations"])
    files = issued.write(home / "clients", ops.id)
    tls = ClientTls(home / TLS_DIR / SERVER_CA, Path(files["cert_file"]), Path(files["key_file"]))
    where = urlsplit(side.urls[instance])
    conn = http.client.HTTPSConnection(
        where.hostname or "127.0.0.1", where.port, context=tls.context(), timeout=10
    )
    try:
        body = json.dumps({"status": "paused"}).encode()
        headers = {"Authorization": f"Bearer {ops.id}:{key}", "Idempotency-Key": "pause-1",
                   "Content-Type": "application/json"}  # fmt: skip
        conn.request("POST", f"/v1/issuing/cards/{card_id}", body=body, headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["status"]) == (200, "paused")
    finally:
        conn.close()


def test_a_card_paused_through_one_instance_declines_at_once_on_the_other(
    side: SideBySide,
) -> None:
    mk, track2 = side.setup.cards[0]
    card_id = side.card_ids()[0]
    with side.client(0, 0, timeout=10, retries=0) as a, side.client(1, 0, timeout=10,
                                                                    retries=0) as b:  # fmt: skip
        # Both instances have the terminal and the card's instrument cached.
        assert a.authorise(arqc_request(mk, 1, 100), track2).approved
        assert b.authorise(arqc_request(mk, 2, 100), track2).approved
        _operator_pause(side, 0, card_id)
        on_b = b.authorise(arqc_request(mk, 3, 100), track2)
        assert (on_b.approved, on_b.reason) == (False, "CARD_PAUSED")
        on_a = a.authorise(arqc_request(mk, 4, 100), track2)
        assert (on_a.approved, on_a.reason) == (False, "CARD_PAUSED")
        # Resumed by the CLI in a third process: the next request on each is approved.
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(side.setup.home),
               "TAPSTACK_KEYSTORE_KEY": PASS, "TAPSTACK_DB": str(side.setup.db)}  # fmt: skip
        subprocess.run([str(BIN / "issuer"), "card", "resume", card_id], env=env,
                       capture_output=True, timeout=60, check=True)  # fmt: skip
        assert b.authorise(arqc_request(mk, 5, 100), track2).approved
        assert a.authorise(arqc_request(mk, 6, 100), track2).approved
    with side.setup.open() as app:
        assert app.service.account(side.setup.account).held == 400
        assert app.ledger.check() == []


def test_one_request_sent_to_both_instances_at_once_is_decided_once(side: SideBySide) -> None:
    mk, track2 = side.setup.cards[1]
    rounds = 12
    with side.client(0, 1, timeout=10, retries=0) as a, side.client(1, 1, timeout=10,
                                                                    retries=0) as b:  # fmt: skip
        for n in range(1, rounds + 1):
            blob, request_id = arqc_request(mk, n, 100 + n), f"same-{n}"
            one, two = _at_once(
                partial(a.authorise, blob, track2, request_id=request_id),
                partial(b.authorise, blob, track2, request_id=request_id),
            )
            assert (one.answered, one.approved) == (True, True), one
            # The same decision: the same record, response code, ARPC and amount.
            assert dataclasses.replace(two, attempts=one.attempts) == one
    card_id = side.card_ids()[1]
    with side.setup.open() as app:
        records = app.service.transactions(card_id=card_id, limit=100)
        assert sorted(r.request_id for r in records) == sorted(
            f"same-{n}" for n in range(1, rounds + 1)
        )
        holds = [j for j in app.service.journals(side.setup.account, limit=100) if j.kind == "hold"]
        assert sorted(j.transaction_id or "" for j in holds) == sorted(r.id for r in records)
        expected = sum(100 + n for n in range(1, rounds + 1))
        assert app.service.account(side.setup.account).held == expected
        assert app.service.card(card_id).flag is None  # no replay was seen
        assert app.ledger.check() == []


def test_one_atc_sent_to_both_instances_at_once_is_approved_once(side: SideBySide) -> None:
    """Two terminals, one on each instance, send two different requests (amounts,
    unpredictable numbers, request ids) with the same ATC of one card at once."""
    mk, track2 = side.setup.cards[2]
    rounds = 12
    approved: list[HostOutcome] = []
    with side.client(0, 2, timeout=10, retries=0) as a, side.client(1, 3, timeout=10,
                                                                    retries=0) as b:  # fmt: skip
        for atc in range(1, rounds + 1):
            to_a, to_b = arqc_request(mk, atc, 100), arqc_request(mk, atc, 200)
            outcomes = _at_once(
                partial(a.authorise, to_a, track2, request_id=f"a-{atc}"),
                partial(b.authorise, to_b, track2, request_id=f"b-{atc}"),
            )
            assert all(o.answered for o in outcomes)
            assert sorted((o.approved, o.reason) for o in outcomes) == [
                (False, "ATC_REPLAYED"),
                (True, None),
            ], (atc, outcomes)
            approved += [o for o in outcomes if o.approved]
    with side.setup.open() as app:
        records = app.service.transactions(card_id=side.card_ids()[2], limit=100)
        assert len(records) == 2 * rounds
        assert sorted(r.id for r in records if r.approved) == sorted(
            o.transaction_id for o in approved
        )
        held = sum(r.amount for r in records if r.approved)
        assert app.service.account(side.setup.account).held == held
        assert app.ledger.check() == []


def _authorise_no_reversal(
    host: HostClient, blob: bytes, track2: bytes, request_id: str
) -> HostOutcome:
    """The host client's authorise without its time-out reversal: the terminal sends
    the same request id again instead."""
    host.reverse_request = lambda request_id: False  # type: ignore[method-assign]
    return host.authorise(blob, track2, request_id=request_id)


def test_an_instance_killed_under_load_loses_nothing(side: SideBySide) -> None:
    """Eight terminals tap as fast as they can, four on each instance; A is killed
    with SIGKILL mid-run. A's terminals send what got no answer to B, with the same
    request ids, then go on there."""
    setup, per_terminal = side.setup, 40
    plan = [
        [(f"t{t}-{atc}", arqc_request(setup.cards[t][0], atc, 100 + atc))
         for atc in range(1, per_terminal + 1)]
        for t in range(8)
    ]  # fmt: skip
    answers: dict[str, HostOutcome] = {}
    lost: set[str] = set()  # sent to A, no answer
    lock = threading.Lock()

    def drive(t: int, instance: int) -> None:
        with setup.client(side.urls[instance], t, timeout=5.0, retries=0) as host:
            for request_id, blob in plan[t]:
                if request_id in answers:
                    continue
                outcome = _authorise_no_reversal(host, blob, setup.cards[t][1], request_id)
                with lock:
                    if outcome.answered:
                        answers[request_id] = outcome
                    else:
                        lost.add(request_id)
                        return

    threads = [threading.Thread(target=drive, args=(t, t // 4)) for t in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(answers) < 60 and time.monotonic() < deadline:  # under way on both
        time.sleep(0.005)
    stop_service(side.procs[0], signal.SIGKILL)
    for thread in threads:
        thread.join(120)
    before_kill = dict(answers)
    assert lost, "no request was in flight on A when it was killed"
    assert len(before_kill) < 8 * per_terminal, "the kill came after the run"
    assert all(request_id.split("-")[0] in {"t0", "t1", "t2", "t3"} for request_id in lost)
    # A's terminals go on on B: what got no answer first, with its request id.
    again = [threading.Thread(target=drive, args=(t, 1)) for t in range(4)]
    for thread in again:
        thread.start()
    for thread in again:
        thread.join(120)
    assert len(answers) == 8 * per_terminal
    # Answers A gave before it died, asked again of B (as by a terminal that lost
    # them): the stored decisions.
    from_a = [k for k in before_kill if k.split("-")[0] in {"t0", "t1", "t2", "t3"}]
    assert from_a
    for request_id in from_a[:8]:
        t = int(request_id.split("-")[0][1:])
        blob = dict(plan[t])[request_id]
        with side.client(1, t, timeout=5.0, retries=0) as host:
            again_b = _authorise_no_reversal(host, blob, setup.cards[t][1], request_id)
        assert dataclasses.replace(again_b, attempts=1) == dataclasses.replace(
            before_kill[request_id], attempts=1
        )
    with setup.open() as app:
        assert app.ledger.check() == []
        records = {r.request_id: r for r in app.service.transactions(limit=1000)}
        assert set(records) == set(answers)  # one record per request, nothing doubled
        for request_id, outcome in answers.items():  # every answer as recorded
            assert records[request_id].id == outcome.transaction_id
            assert records[request_id].approved == outcome.approved
        assert all(outcome.approved for outcome in answers.values())  # one ATC each
        holds = [j for j in app.service.journals(setup.account, limit=1000) if j.kind == "hold"]
        # One hold per approval, none without its record.
        assert sorted(j.transaction_id or "" for j in holds) == sorted(
            r.id for r in records.values()
        )
        held = sum(r.amount for r in records.values())
        assert app.service.account(setup.account).held == held
        flagged = [c.flag for c in app.service.cards() if c.flag is not None]
        assert flagged == []  # no retry was taken for a replayed ATC
