"""The write phases of a batch run together (issuer/domain/authorise.py
``Authoriser._record_many``: a few round trips per round on PostgreSQL, one after
another on SQLite) decide exactly as they do one by one (``Authoriser._record``), on
both ledgers: the same requests give the same answers, balances, flags and ledger;
a taken request id, a declined amount, a replayed ATC and a bad cryptogram in a
batch of good ones; cards of one account reserving in order, a partial approval
among them; one ATC replayed across two concurrent batches is approved once;
group commit's ``together`` takes a failed job out and falls back job by job."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from emvwire.contract import Decision
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest, Authoriser
from issuer.domain.group_commit import GroupCommit
from issuer.errors import ConflictError
from issuer.ledger.repository import UnitOfWork
from issuer.model.entities import Account, Terminal
from tests.issuer.controls_kit import Payer, Shop

Answer = tuple[bool, str, str | None, int | None, bool]


def _answer(decision: Decision | Exception) -> Answer:
    assert not isinstance(decision, Exception), decision
    reason = decision.reason.value if decision.reason else None
    return (
        decision.approved,
        decision.response_code,
        reason,
        decision.approved_amount,
        decision.replayed,
    )


def _scenario(app: IssuerApp, *, together: bool) -> tuple[list[Answer], list[Any]]:
    """One batch mixing what a round must keep apart, through a fresh set of shops
    (accounts, cards, a token): its answers, then balances, flags and counts."""
    authoriser = Authoriser(app, together=together)
    rich, poor, replays, twice = Shop(app), Shop(app, funds=1_000), Shop(app), Shop(app)
    a, b, c = rich.card(), poor.card(), replays.card()
    token = poor.token(poor.card().id)
    d = twice.card()
    shared = Shop(app, funds=1_000)  # one account, three cards: reservations in order
    e, f, g, h = shared.card(), shared.card(), shared.card(), shared.card()
    # ATC 1 of card c is used before the batch: the batch's second ATC 1 is replayed.
    assert authoriser.authorise(replays.terminal, replays.request(c, 100)).approved
    c.atc = 1
    forged = Payer(d.id, bytes(16), d.track2, d.pan)  # a wrong key: cryptogram invalid
    declined = poor.request(b, 5_000)
    batch: list[tuple[Terminal, AuthorisationRequest]] = [
        (rich.terminal, rich.request(a, 100)),
        (poor.terminal, declined),  # insufficient funds
        (replays.terminal, replays.request(c, 100)),  # replayed ATC
        (rich.terminal, rich.request(a, 200)),  # same card and account: next round
        (poor.terminal, poor.request(token, 1_500, partial=True)),  # partial: 1,000
        (twice.terminal, twice.request(d, 300)),
        (twice.terminal, twice.request(forged, 50)),
        (poor.terminal, declined),  # the same request id again: the stored answer
        (poor.terminal, poor.request(b, 10)),  # the account is empty by then
        (shared.terminal, shared.request(e, 600)),
        (shared.terminal, shared.request(f, 600)),  # 400 left: declined
        (shared.terminal, shared.request(h, 500, partial=True)),  # partial: the 400
        (shared.terminal, shared.request(g, 300)),  # nothing left
        (shared.terminal, shared.request(e, 100)),
    ]
    raised: list[BaseException] = []
    record_many = authoriser._record_many

    def watched(uow: UnitOfWork, writes: list[Any]) -> list[Any]:
        try:
            return record_many(uow, writes)
        except BaseException as exc:  # group commit would fall back job by job
            raised.append(exc)
            raise

    authoriser._record_many = watched  # type: ignore[method-assign]
    answers = [_answer(d) for d in authoriser.authorise_many(batch)]
    assert raised == []  # decided together, not job by job
    # An approved request twice in a batch: the second's record is not added, and its
    # hold refers to no record: the batch runs again job by job, the same answers.
    again = twice.request(d, 400)
    answers += [_answer(d) for d in authoriser.authorise_many([(twice.terminal, again)] * 2)]
    s = app.service
    state = [
        [shop.balances() for shop in (rich, poor, replays, twice, shared)],
        [s.card(x.id).flag for x in (a, b, c, d)],
        s.token(token.id).flag,
        app.ledger.check(),
    ]
    return answers, state


def test_a_batch_decides_together_as_one_by_one(issuer: IssuerApp) -> None:
    together = _scenario(issuer, together=True)
    alone = _scenario(issuer, together=False)
    assert together == alone
    answers, state = together
    assert answers == [
        (True, "00", None, 100, False),
        (False, "51", "INSUFFICIENT_FUNDS", None, False),
        (False, "59", "ATC_REPLAYED", None, False),
        (True, "00", None, 200, False),
        (True, "10", None, 1_000, False),
        (True, "00", None, 300, False),
        (False, "82", "CRYPTOGRAM_INVALID", None, False),
        (False, "51", "INSUFFICIENT_FUNDS", None, True),
        (False, "51", "INSUFFICIENT_FUNDS", None, False),
        (True, "00", None, 600, False),
        (False, "51", "INSUFFICIENT_FUNDS", None, False),
        (True, "10", None, 400, False),
        (False, "51", "INSUFFICIENT_FUNDS", None, False),
        (False, "51", "INSUFFICIENT_FUNDS", None, False),
        (True, "00", None, 400, False),
        (True, "00", None, 400, True),
    ]
    balances, flags, token_flag, discrepancies = state
    assert balances == [
        (100_000, 300),
        (1_000, 1_000),
        (100_000, 100),
        (100_000, 700),
        (1_000, 1_000),
    ]
    assert flags == [None, None, "ATC_REPLAYED", None]
    assert token_flag is None
    assert discrepancies == []


def test_one_atc_in_two_concurrent_batches_is_approved_once(issuer: IssuerApp) -> None:
    authoriser = Authoriser(issuer, together=True)
    shops = [Shop(issuer) for _ in range(3)]
    payers = [shop.card() for shop in shops]
    batches: list[list[tuple[Terminal, AuthorisationRequest]]] = [[], []]
    for side in (0, 1):
        for shop, payer in zip(shops, payers, strict=True):
            payer.atc = 7 + side * 10  # each batch's own ATC for every card...
            batches[side].append((shop.terminal, shop.request(payer, 100)))
    payers[0].atc = 3  # ...but card 0's ATC 3 in both
    for side in (0, 1):
        batches[side].append((shops[0].terminal, shops[0].request(payers[0], 100)))
        payers[0].atc = 3
    results: list[list[Decision | Exception]] = [[], []]
    start = threading.Barrier(2)

    def run(side: int) -> None:
        start.wait()
        results[side] = authoriser.authorise_many(batches[side])

    threads = [threading.Thread(target=run, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers = [[_answer(d) for d in r] for r in results]
    replays = [side[-1] for side in answers]
    assert sorted(replays) == [
        (False, "59", "ATC_REPLAYED", None, False),
        (True, "00", None, 100, False),
    ]
    assert all(a[0] for side in answers for a in side[:-1])
    assert issuer.service.card(payers[0].id).flag == "ATC_REPLAYED"
    assert shops[0].balances() == (100_000, 300)
    assert issuer.ledger.check() == []


@pytest.fixture
def account(issuer: IssuerApp) -> Account:
    """An account whose copies the group commit jobs insert."""
    return issuer.service.account(issuer.service.create_account("Ada").id)


def _job(account: Account, name: str) -> Callable[[UnitOfWork], str]:
    def work(uow: UnitOfWork) -> str:
        if name == "acc_bad":
            raise ConflictError("a bad job")
        uow.accounts.add(replace(account, id=name))
        return name

    return work


def _together(calls: list[int]) -> Callable[[UnitOfWork, list[Any]], list[Any]]:
    """Runs the works one after another, as ``together`` answers: up to the first
    that raised, its exception last."""

    def together(uow: UnitOfWork, works: list[Any]) -> list[Any]:
        calls.append(len(works))
        out: list[Any] = []
        for work in works:
            try:
                out.append(work(uow))
            except ConflictError as exc:
                out.append(exc)
                return out
        return out

    return together


def test_group_commit_together_takes_out_the_failed_job_only(
    issuer: IssuerApp, account: Account
) -> None:
    calls: list[int] = []
    jobs = [(_job(account, name), str(i)) for i, name in enumerate(["acc_1", "acc_bad", "acc_3"])]
    results = GroupCommit(issuer.ledger).run_batch(jobs, together=_together(calls))
    assert results[0] == "acc_1"
    assert results[2] == "acc_3"
    assert isinstance(results[1], ConflictError)
    assert calls == [3, 2]  # rolled back, then the two others again
    assert [issuer.service.account(n).holder for n in ("acc_1", "acc_3")] == ["Ada", "Ada"]


def test_group_commit_falls_back_job_by_job_when_together_raises(
    issuer: IssuerApp, account: Account
) -> None:
    def together(uow: UnitOfWork, works: list[Any]) -> list[Any]:
        for work in works:
            work(uow)
        raise RuntimeError("a statement of the batch failed")

    jobs = [(_job(account, "acc_x"), "1"), (_job(account, "acc_y"), "2")]
    results = GroupCommit(issuer.ledger).run_batch(jobs, together=together)
    assert results == ["acc_x", "acc_y"]
    assert issuer.service.account("acc_y").holder == "Ada"
