"""Webhook deliveries on both ledgers, to a real HTTP receiver started by the test
(tests/support/webhooks.py), whose signature check is written from the documented
scheme: signed deliveries, a receiver that is down for a while, order per object,
the event id that de-duplicates, two workers that never send one delivery at once,
secret rotation, the terminal filter, giving up and resending, TLS verification.
Time is the test's (a clock the deliverer reads), so retries need no sleeping."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest

from emvwire.oda import SigningKey
from emvwire.tls import SERVER_CERT, SERVER_KEY
from issuer.bootstrap import IssuerApp
from issuer.domain.delivery import Deliverer, DeliveryPolicy, Report
from issuer.domain.events import Events
from issuer.domain.webhooks import Webhooks
from issuer.errors import InvalidStateError, ValidationError
from issuer.ledger.postgres import PostgresLedger
from issuer.ledger.repository import Ledger
from issuer.ledger.sqlite import SqliteLedger
from tests.issuer.helpers import make_world, send, tap
from tests.support.tls import TestPki
from tests.support.webhooks import Receiver, signature_valid

POLICY = DeliveryPolicy(retry_base=30.0, timeout=5.0, lease=60.0, batch=20)


class Clock:
    """The deliverer's time: now, moved by the test."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def receiver() -> object:
    with Receiver().start() as r:
        yield r


def _deliverer(app: IssuerApp, clock: Clock, ledger: Ledger | None = None) -> Deliverer:
    ledger = ledger or app.ledger
    return Deliverer(ledger, Webhooks(ledger, app.keys), POLICY, clock=clock)


def _once(app: IssuerApp, clock: Clock) -> Report:
    """One ``run_once`` of a new deliverer (closed after)."""
    with _deliverer(app, clock) as deliverer:
        return deliverer.run_once()


def _endpoint(app: IssuerApp, url: str, events: str = "*", **options: object) -> tuple[str, str]:
    endpoint, secret = Webhooks(app.ledger, app.keys).add(
        url,
        events.split(","),
        dev_plain_http=True,
        **options,  # type: ignore[arg-type]
    )
    return endpoint.id, secret


def _second_ledger(app: IssuerApp) -> Ledger:
    """Another process's connections to the same database."""
    if isinstance(app.ledger, SqliteLedger):
        return SqliteLedger(app.ledger.path)
    assert isinstance(app.ledger, PostgresLedger)
    return PostgresLedger(app.ledger.url, schema=app.ledger.schema)


def test_a_delivery_is_a_signed_post_of_the_event(issuer: IssuerApp, receiver: Receiver) -> None:
    clock = Clock()
    endpoint, secret = _endpoint(issuer, receiver.url)
    account = issuer.service.create_account("Ada")
    report = _once(issuer, clock)
    assert (report.dispatched, report.delivered) == (1, 1)
    (got,) = receiver.snapshot()
    assert got.path == "/hooks?src=tapstack"
    assert got.headers["content-type"] == "application/json"
    assert signature_valid(got.headers["tapstack-signature"], got.body, secret)
    assert not signature_valid(got.headers["tapstack-signature"], got.body + b" ", secret)
    assert not signature_valid(got.headers["tapstack-signature"], got.body, secret + "x")
    event = got.event
    assert event["id"] == got.event_id
    assert (event["object"], event["type"], event["sequence"]) == ("event", "account.created", 1)
    assert event["data"]["object"]["id"] == account.id
    _shown, deliveries = Events(issuer.ledger).get(event["id"])
    assert [(d.endpoint_id, d.status.value, d.attempts, d.last_status) for d in deliveries] == [
        (endpoint, "delivered", 1, 200)
    ]
    assert _once(issuer, clock).delivered == 0  # nothing twice


def test_a_receiver_down_for_a_while_gets_every_event_once_back(issuer: IssuerApp) -> None:
    clock = Clock()
    down = Receiver().reserve()
    _, secret = _endpoint(issuer, down.url)
    made = [issuer.service.create_account(f"Holder {i}").id for i in range(5)]
    deliverer = _deliverer(issuer, clock)
    report = deliverer.run_once()
    assert (report.dispatched, report.retried, report.delivered) == (5, 5, 0)
    for _ in range(3):  # still down at the next retries: the waits grow
        clock.advance(POLICY.retry_cap)
        assert deliverer.run_once().retried == 5
    event = Events(issuer.ledger).list(object_id=made[0]).events[0]
    (delivery,) = Events(issuer.ledger).get(event.id)[1]
    assert (delivery.status.value, delivery.attempts) == ("pending", 4)
    assert delivery.last_error == "connection refused"
    with down.start():
        clock.advance(POLICY.retry_cap)
        assert deliverer.run_once().delivered == 5
        clock.advance(POLICY.retry_cap)
        assert deliverer.run_once().delivered == 0
        got = down.snapshot()
    assert sorted(r.event["data"]["object"]["id"] for r in got) == sorted(made)
    assert len(set(down.ids())) == 5
    assert all(signature_valid(r.headers["tapstack-signature"], r.body, secret) for r in got)
    deliverer.close()


def test_an_objects_events_arrive_in_order(issuer: IssuerApp, receiver: Receiver) -> None:
    clock = Clock()
    _endpoint(issuer, receiver.url, "account.created,account.credited")
    account = issuer.service.create_account("Order")
    for amount in (100, 200, 300):
        issuer.service.credit_account(account.id, amount)
    other = issuer.service.create_account("Other")
    receiver.status = 500
    deliverer = _deliverer(issuer, clock)
    report = deliverer.run_once()
    # Only each object's first event is sent while it is not delivered.
    assert (report.claimed, report.retried) == (2, 2)
    assert sorted(r.event["data"]["object"]["id"] for r in receiver.snapshot()) == sorted(
        [account.id, other.id]
    )
    receiver.status = 200
    for _ in range(5):
        clock.advance(POLICY.retry_cap)
        deliverer.run_once()
    delivered = [
        r.event for r in receiver.snapshot()[2:] if r.event["data"]["object"]["id"] == account.id
    ]
    assert [e["sequence"] for e in delivered] == [1, 2, 3, 4]
    assert [e["data"]["object"]["balance"] for e in delivered] == [0, 100, 300, 600]
    deliverer.close()


def test_a_send_not_recorded_is_sent_again_with_the_same_event_id(
    issuer: IssuerApp, receiver: Receiver
) -> None:
    clock = Clock()
    _endpoint(issuer, receiver.url)
    issuer.service.create_account("Once")
    crashed = _deliverer(issuer, clock)
    assert crashed.cycle().claimed == 1  # claimed and sent; its outcome never recorded
    assert len(receiver.snapshot()) == 1
    with _deliverer(issuer, clock) as other:
        assert other.run_once().claimed == 0  # the lease keeps it from a second send
        clock.advance(POLICY.lease + 1)
        assert other.run_once().delivered == 1  # the lease ended: at least once
    crashed.close()
    first, second = receiver.snapshot()
    assert first.event_id == second.event_id == first.event["id"]
    assert first.body == second.body


def test_two_workers_never_send_one_delivery_at_once(issuer: IssuerApp, receiver: Receiver) -> None:
    clock = Clock()
    _endpoint(issuer, receiver.url)
    for i in range(60):
        issuer.service.create_account(f"Holder {i}")
    ledgers = [issuer.ledger, _second_ledger(issuer)]
    deliverers = [_deliverer(issuer, clock, ledger) for ledger in ledgers]
    errors: list[BaseException] = []

    def work(d: Deliverer) -> None:
        try:
            for _ in range(50):
                d.run_once()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in deliverers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in deliverers:
        d.close()
    ledgers[1].close()
    assert errors == []
    counts = Counter(receiver.ids())
    assert len(counts) == 60
    assert set(counts.values()) == {1}


def test_both_secrets_sign_during_a_rotations_grace(issuer: IssuerApp, receiver: Receiver) -> None:
    from datetime import timedelta

    clock = Clock()
    hooks = Webhooks(issuer.ledger, issuer.keys)
    endpoint, old = _endpoint(issuer, receiver.url)
    rotated, new = hooks.rotate_secret(endpoint, timedelta(hours=24))
    assert new != old
    assert new.startswith("whsec_")
    assert rotated.previous_secret_until is not None
    issuer.service.create_account("During grace")
    _once(issuer, clock)
    header = receiver.snapshot()[-1].headers["tapstack-signature"]
    assert header.count("v1=") == 2
    body = receiver.snapshot()[-1].body
    assert signature_valid(header, body, new)
    assert signature_valid(header, body, old)
    hooks.rotate_secret(endpoint, timedelta(0))  # the one before stops signing now
    _, newest = hooks.rotate_secret(endpoint, timedelta(0))
    issuer.service.create_account("After grace")
    _once(issuer, clock)
    last = receiver.snapshot()[-1]
    assert last.headers["tapstack-signature"].count("v1=") == 1
    assert signature_valid(last.headers["tapstack-signature"], last.body, newest)
    assert not signature_valid(last.headers["tapstack-signature"], last.body, new)


def test_a_merchants_endpoint_gets_its_terminals_payments_only(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], receiver: Receiver
) -> None:
    clock = Clock()
    w = make_world(issuer, rsa_keys)
    other_terminal, _ = issuer.service.add_terminal("Other shop", "5411")
    _endpoint(issuer, receiver.url, "authorisation.approved", terminal_id=w.terminal)
    _endpoint(issuer, receiver.url, "authorisation.approved", terminal_id=other_terminal.id)
    result = tap(w.card, 1_250)
    decision = send(w, result.authorisation_data, result.track2, "pay-1")
    issuer.service.create_account("Not for the merchant")
    report = _once(issuer, clock)
    assert report.delivered == 1
    (got,) = receiver.snapshot()
    assert got.event["type"] == "authorisation.approved"
    assert got.event["terminal"] == w.terminal
    paid = got.event["data"]["object"]
    assert (paid["id"], paid["amount"], paid["approved"]) == (decision["id"], 1_250, True)


def test_a_delivery_given_up_after_three_days_can_be_resent(
    issuer: IssuerApp, receiver: Receiver
) -> None:
    clock = Clock()
    endpoint, _ = _endpoint(issuer, receiver.url)
    issuer.service.create_account("Patient")
    receiver.status = 503
    with _deliverer(issuer, clock) as deliverer:
        reports = [deliverer.run_once()]
        for _ in range(3):  # a day later each time: due again (the waits are at most 1 h)
            clock.advance(86_400)
            reports.append(deliverer.run_once())
    assert [(r.retried, r.failed) for r in reports] == [(1, 0), (1, 0), (1, 0), (0, 1)]
    (event,) = Events(issuer.ledger).list(event_type="account.created").events[:1]
    (delivery,) = Events(issuer.ledger).get(event.id)[1]
    assert (delivery.status.value, delivery.last_status) == ("failed", 503)
    assert (delivery.attempts, delivery.last_error) == (4, "HTTP 503")
    receiver.status = 200
    assert Events(issuer.ledger).resend(event.id) == [endpoint]
    clock.now = __import__("time").time()
    assert _once(issuer, clock).delivered == 1


def test_disabled_endpoints_wait_and_bad_endpoints_are_refused(
    issuer: IssuerApp, receiver: Receiver, tmp_path: Path
) -> None:
    clock = Clock()
    hooks = Webhooks(issuer.ledger, issuer.keys)
    endpoint, _ = _endpoint(issuer, receiver.url)
    issuer.service.create_account("Before")
    hooks.disable(endpoint)
    with pytest.raises(InvalidStateError):
        hooks.disable(endpoint)
    assert _once(issuer, clock).delivered == 0
    issuer.service.create_account("While disabled")
    hooks.enable(endpoint)
    assert _once(issuer, clock).delivered == 1  # the one made before
    for url in ("http://example.com/hook", "ftp://127.0.0.1/x", "https://u:p@host/x",
                "https://host:0/x", "https://host/x#frag", "not a url"):  # fmt: skip
        with pytest.raises(ValidationError):
            hooks.add(url, ["*"], dev_plain_http=True)
    with pytest.raises(ValidationError):
        hooks.add("http://127.0.0.1:9/x", ["*"])  # plain HTTP needs the flag
    for events in ([], ["authorisation.requested"], ["*", "refund.created"]):
        with pytest.raises(ValidationError):
            hooks.add("https://hooks.example/x", events)
    hooks.remove(endpoint)
    assert hooks.list() == []


def test_tls_endpoints_are_verified(issuer: IssuerApp, tmp_path: Path) -> None:
    pki = TestPki(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.service.file(SERVER_CERT), pki.service.file(SERVER_KEY))
    clock = Clock()
    with Receiver(context).start() as tls_receiver:
        hooks = Webhooks(issuer.ledger, issuer.keys)
        trusted, secret = hooks.add(tls_receiver.url, ["*"], ca_file=pki.server_ca)
        untrusted, _ = hooks.add(tls_receiver.url, ["*"])  # the system's trust store
        issuer.service.create_account("Over TLS")
        report = _once(issuer, clock)
        assert (report.delivered, report.retried) == (1, 1)
        (got,) = tls_receiver.snapshot()
        assert signature_valid(got.headers["tapstack-signature"], got.body, secret)
        event = Events(issuer.ledger).list(limit=1).events[0]
        outcome = {d.endpoint_id: d for d in Events(issuer.ledger).get(event.id)[1]}
        assert outcome[trusted.id].status.value == "delivered"
        assert (outcome[untrusted.id].last_error or "").startswith("TLS: ")
        with pytest.raises(ValidationError):
            hooks.add(tls_receiver.url, ["*"], ca_file=pki.service.file(SERVER_KEY))
