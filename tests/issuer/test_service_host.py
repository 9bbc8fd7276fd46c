"""The terminal's host client against the real HTTP server (a thread on a free port)
on both ledgers: approved over a socket; a lost answer (a batch that fails after its
commit: 503) is retried with the same request id (one hold); a service that never
answers leads to a time-out reversal; a connection idle past the server's limit is
opened anew, not reused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from emvwire.contract import NO_ANSWER_CODE
from emvwire.oda import SigningKey
from emvwire.tls import DEV_PLAIN_HTTP
from hostlink import HostClient, HostRefusedError
from httpserve.limits import Limits
from issuer.bootstrap import IssuerApp
from issuer.service.api import Prepared
from tests.issuer.helpers import World, balances, make_world, tap
from tests.support.servers import asgi_serving


@pytest.fixture
def served(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> Iterator[tuple[World, str]]:
    w = make_world(issuer, rsa_keys)
    with asgi_serving(w.http) as (host, port):
        yield w, f"http://{host}:{port}"


def _client(w: World, url: str, **options: Any) -> HostClient:
    terminal_id, key = w.auth.removeprefix("Bearer ").split(":", 1)
    return HostClient(url, terminal_id, key, tls=DEV_PLAIN_HTTP, **options)


def test_approved_over_http_and_refused_key(served: tuple[World, str]) -> None:
    w, url = served
    result = tap(w.card, 2500)
    with _client(w, url) as host:
        outcome = host.authorise(result.authorisation_data, result.track2, request_id="r1")
        assert (outcome.approved, outcome.response_code, outcome.attempts) == (True, "00", 1)
        assert len(outcome.issuer_authentication_data) == 8
        again = host.authorise(result.authorisation_data, result.track2, request_id="r1")
        assert again.transaction_id == outcome.transaction_id
    assert balances(w) == (10_000, 2500)
    terminal_id = w.auth.removeprefix("Bearer ").split(":", 1)[0]
    bad = HostClient(url, terminal_id, "tsk_wrong", tls=DEV_PLAIN_HTTP)
    with bad, pytest.raises(HostRefusedError):
        bad.authorise(result.authorisation_data, result.track2)


def test_a_lost_answer_is_retried_with_the_same_request_id(served: tuple[World, str]) -> None:
    w, url = served
    real = w.api.finish_many
    calls: list[str] = []

    def lose_first(prepared: list[Prepared]) -> Any:
        answers = real(prepared)  # the issuer decides and records
        calls.extend(p.checked.request.request_id for p in prepared if p.checked)
        if len(calls) == 1:
            raise ConnectionAbortedError  # ... but the answer never reaches the terminal
        return answers

    w.api.finish_many = lose_first  # type: ignore[method-assign]
    result = tap(w.card, 700)
    with _client(w, url, timeout=2, retries=2, backoff=0.01) as host:
        outcome = host.authorise(result.authorisation_data, result.track2)
    assert outcome.approved
    assert outcome.attempts == 2
    assert calls[0] == calls[1] == outcome.request_id
    assert balances(w) == (10_000, 700)  # held once


def test_no_answer_ends_in_a_time_out_reversal(served: tuple[World, str]) -> None:
    w, url = served
    real = w.api.finish_many

    def swallow(prepared: list[Prepared]) -> Any:
        answers = real(prepared)
        if any(p.checked for p in prepared):  # an authorisation: decided, answer lost
            raise ConnectionAbortedError
        return answers

    w.api.finish_many = swallow  # type: ignore[method-assign]
    result = tap(w.card, 900)
    with _client(w, url, timeout=2, retries=1, backoff=0.01) as host:
        outcome = host.authorise(result.authorisation_data, result.track2)
    assert (outcome.approved, outcome.response_code, outcome.answered) == (
        False,
        NO_ANSWER_CODE,
        False,
    )
    assert outcome.reversed
    assert balances(w) == (10_000, 0)  # the hold the issuer made is released
    assert w.app.ledger.check() == []


def test_a_connection_idle_past_the_servers_limit_is_reopened_not_reused(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    """The server closes a connection idle for its ``idle_timeout``; the host client
    opens a new one for a request after ``reuse_within`` idle seconds, so that request
    is answered at its first attempt (no failure, no retry, no reversal), where reusing
    the closed connection fails it."""
    w = make_world(issuer, rsa_keys)
    first, second = tap(w.card, 100), tap(w.card, 200)
    with asgi_serving(w.http, Limits(idle_timeout=0.3)) as (host, port):
        url = f"http://{host}:{port}"
        with _client(w, url, retries=0, reuse_within=0.1) as fresh:
            assert fresh.authorise(first.authorisation_data, first.track2).approved
            time.sleep(0.8)  # the server closed the idle connection
            outcome = fresh.authorise(second.authorisation_data, second.track2)
            assert (outcome.approved, outcome.attempts) == (True, 1)
        third = tap(w.card, 300)
        with _client(w, url, retries=0, reuse_within=60) as stale:
            assert stale.authorise(third.authorisation_data, third.track2).approved
            time.sleep(0.8)
            fourth = tap(w.card, 400)
            lost = stale.authorise(fourth.authorisation_data, fourth.track2)
            assert not lost.answered  # sent on the closed connection: no answer
    assert balances(w) == (10_000, 600)
