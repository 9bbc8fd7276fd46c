"""The program's decision endpoint on both ledgers (issuer/domain/program.py,
issuer/service/program.py): the issuer served on a real socket asks a real HTTP
receiver of the test, which checks the issuer's signature itself from the documented
scheme and signs its answers the same way. The program approves, declines, approves in
part; past the deadline, with a bad signature, an error or down, the fallback stands
and is recorded with its cause; while one request waits for the program, another is
answered (over HTTP and over the ISO 8583 listener); nothing unmasked reaches the
program; a decision the issuer declined stays declined."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from emvwire.tls import DEV_PLAIN_HTTP
from hostlink import HostClient, HostOutcome
from issuer.bootstrap import IssuerApp
from issuer.domain.controls import Changes, set_controls
from issuer.domain.program import clear_endpoint, decision_of, set_endpoint
from issuer.errors import ValidationError
from issuer.model.controls import ControlLevel, Fallback, ProgramOutcome
from issuer.service.iso8583 import Iso8583Handler
from issuer.service.iso8583_server import Iso8583Server
from tests.issuer.controls_kit import Payer, Receiver, Shop
from tests.issuer.helpers import edit
from tests.support.iso8583 import Wire, build, framed, ll, lll
from tests.support.servers import asgi_serving, serving
from tests.support.tls import TestPki


class Served:
    """A shop served on a real socket, a card, and a host client per terminal asked."""

    def __init__(self, shop: Shop, url: str) -> None:
        self.shop, self.url = shop, url
        self.card = shop.card()
        terminal_id, self._key = shop.auth.removeprefix("Bearer ").split(":", 1)
        self._terminal = terminal_id

    def client(self) -> HostClient:
        return HostClient(self.url, self._terminal, self._key, tls=DEV_PLAIN_HTTP, timeout=30)

    def pay(self, amount: int, *, partial: bool = False, payer: Payer | None = None) -> HostOutcome:
        payer = payer or self.card
        with self.client() as client:
            return client.authorise(payer.blob(amount), payer.track2, partial_allowed=partial)


@pytest.fixture
def served(issuer: IssuerApp) -> Iterator[Served]:
    shop = Shop(issuer)
    with asgi_serving(shop.http) as (host, port):
        yield Served(shop, f"http://{host}:{port}")


@contextmanager
def _program(
    served: Served,
    answer: Any,
    *,
    deadline_ms: int = 5000,
    fallback: Fallback = Fallback.ISSUER,
    context: ssl.SSLContext | None = None,
    ca_pem: str | None = None,
) -> Iterator[Receiver]:
    receiver = Receiver(answer, context)
    try:
        _, secret = set_endpoint(
            served.shop.app.ledger, served.shop.app.keys, receiver.url,
            deadline_ms=deadline_ms, fallback=fallback, ca_pem=ca_pem,
        )  # fmt: skip
        assert secret is not None
        receiver.secret = secret
        yield receiver
    finally:
        receiver.close()


def _approve(request: dict[str, Any]) -> tuple[int, Any, bool]:
    return 200, {"id": request["id"], "approved": True}, True


def _recorded(served: Served, txn: str) -> tuple[str, int | None, str | None, str | None]:
    found = decision_of(served.shop.app.ledger, txn)
    assert found is not None
    fallback = None if found.fallback is None else found.fallback.value
    return found.outcome.value, found.amount, fallback, found.cause


def test_the_program_approves_and_sees_masked_data_only(served: Served) -> None:
    with _program(served, _approve) as receiver:
        outcome = served.pay(1234)
        assert (outcome.approved, outcome.response_code) == (True, "00")
        assert len(receiver.seen) == 1
        seen = receiver.seen[0]
        assert seen.verified, "the issuer's signature checks with the documented scheme"
        request = seen.json
        assert request["id"] == outcome.transaction_id
        assert request["type"] == "authorisation.request"
        assert request["card"] == outcome.card
        assert request["card"].count("*") == 6
        assert (request["amount"], request["currency"], request["mcc"]) == (1234, "EUR", "5411")
        assert request["terminal"] == served.shop.terminal.id
        assert request["proposed"] == {"approved": True, "reason": None, "control": None}
        text = seen.body.decode()
        card = served.card
        for secret in (card.pan, card.track2.hex(), card.track2.hex().upper()):
            assert secret not in text
        assert "icc" not in text
        assert "arqc" not in text.lower()
        assert _recorded(served, outcome.transaction_id) == ("approve", None, None, None)
        served.pay(10)
        served.pay(10)
        assert (len(receiver.seen), receiver.server.connections) == (3, 1)  # kept alive
    assert served.shop.balances() == (100_000, 1254)


def test_the_program_declines(served: Served) -> None:
    def decline(request: dict[str, Any]) -> tuple[int, Any, bool]:
        return 200, {"id": request["id"], "approved": False}, True

    with _program(served, decline):
        outcome = served.pay(500)
        assert (outcome.approved, outcome.reason, outcome.response_code) == (
            False,
            "PROGRAM_DECLINED",
            "05",
        )
        assert _recorded(served, outcome.transaction_id) == ("decline", None, None, None)
    assert served.shop.balances() == (100_000, 0)


def test_the_program_approves_in_part_where_the_terminal_allows_it(served: Served) -> None:
    def part(request: dict[str, Any]) -> tuple[int, Any, bool]:
        return 200, {"id": request["id"], "approved": True, "amount": 300}, True

    with _program(served, part) as receiver:
        outcome = served.pay(1000, partial=True)
        assert (outcome.approved, outcome.response_code, outcome.approved_amount) == (
            True,
            "10",
            300,
        )
        assert receiver.seen[0].json["partial_allowed"] is True
        assert _recorded(served, outcome.transaction_id) == ("partial", 300, None, None)
        assert served.shop.balances() == (100_000, 300)
        whole = served.pay(1000)
        assert (whole.approved, whole.reason) == (False, "PROGRAM_DECLINED")
    assert served.shop.balances() == (100_000, 300)


@pytest.mark.parametrize("fallback", [Fallback.ISSUER, Fallback.DECLINE])
def test_past_the_deadline_the_fallback_stands_and_is_recorded(
    served: Served, fallback: Fallback
) -> None:
    late = threading.Event()

    def slow(request: dict[str, Any]) -> tuple[int, Any, bool]:
        late.wait(30)  # answered only once the issuer has decided without it
        return _approve(request)

    with _program(served, slow, deadline_ms=150, fallback=fallback):
        outcome = served.pay(700)
        late.set()
        if fallback is Fallback.ISSUER:
            assert (outcome.approved, outcome.response_code) == (True, "00")
        else:
            assert (outcome.approved, outcome.reason) == (False, "PROGRAM_UNAVAILABLE")
        outcome_, amount, taken, cause = _recorded(served, outcome.transaction_id)
        assert (outcome_, amount, taken, cause) == ("none", None, fallback.value, "timeout")


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (lambda r: (200, {"id": r["id"], "approved": False}, False), "bad_signature"),
        (lambda r: (200, b'{"approved": false}', True), "invalid_answer"),
        (
            lambda r: (200, {"id": "txn_aaaaaaaaaaaaaaaa", "approved": False}, True),
            "invalid_answer",
        ),
        (lambda r: (200, {"id": r["id"], "approved": True, "amount": 0}, True), "invalid_answer"),
        (lambda r: (500, {"error": "down for maintenance"}, True), "http_500"),
        (lambda r: None, "unreachable"),  # the connection dropped without an answer
    ],
)
def test_an_unusable_answer_means_the_fallback(served: Served, answer: Any, cause: str) -> None:
    with _program(served, answer, fallback=Fallback.DECLINE):
        outcome = served.pay(400)
        assert (outcome.approved, outcome.reason) == (False, "PROGRAM_UNAVAILABLE")
        assert _recorded(served, outcome.transaction_id) == ("none", None, "decline", cause)


def test_a_forged_signature_is_refused(served: Served) -> None:
    with _program(served, _approve, fallback=Fallback.DECLINE) as receiver:
        receiver.secret = "dsec_not-the-issuers-secret"
        outcome = served.pay(400)
        assert outcome.reason == "PROGRAM_UNAVAILABLE"
        assert receiver.seen[0].verified is False  # the program cannot check it either
        assert _recorded(served, outcome.transaction_id)[3] == "bad_signature"


def test_a_program_that_is_down_means_the_fallback(served: Served) -> None:
    with _program(served, _approve) as receiver:
        receiver.close()
        outcome = served.pay(400)
        assert (outcome.approved, outcome.response_code) == (True, "00")
        assert _recorded(served, outcome.transaction_id) == ("none", None, "issuer", "unreachable")


def test_other_requests_keep_flowing_while_one_waits_for_the_program(served: Served) -> None:
    release = threading.Event()

    def program(request: dict[str, Any]) -> tuple[int, Any, bool]:
        if request["amount"] == 777:
            release.wait(30)  # held until the other request has been answered
        return _approve(request)

    other = served.shop.card()
    with _program(served, program, deadline_ms=20_000) as receiver:
        slow: list[HostOutcome] = []
        thread = threading.Thread(target=lambda: slow.append(served.pay(777)))
        thread.start()
        deadline = time.monotonic() + 30
        while not any(s.json.get("amount") == 777 for s in receiver.seen):
            assert time.monotonic() < deadline, "the slow request never reached the program"
            time.sleep(0.01)
        fast = served.pay(100, payer=other)  # answered while the slow one waits
        assert (fast.approved, slow) == (True, [])
        release.set()
        thread.join(30)
        assert slow[0].approved
        assert _recorded(served, slow[0].transaction_id) == ("approve", None, None, None)
    assert served.shop.balances() == (100_000, 877)


def test_the_program_cannot_approve_what_the_issuer_declined(served: Served) -> None:
    set_controls(
        served.shop.app.ledger,
        ControlLevel.CARD,
        served.card.id,
        Changes(blocked_mccs=["5411"]),
    )
    with _program(served, _approve) as receiver:
        outcome = served.pay(300)
        assert (outcome.approved, outcome.reason, outcome.control) == (
            False,
            "SPENDING_CONTROL",
            "card.blocked_mccs",
        )
        assert receiver.seen[0].json["proposed"] == {
            "approved": False,
            "reason": "SPENDING_CONTROL",
            "control": {"name": "blocked_mccs", "level": "card"},
        }
        assert _recorded(served, outcome.transaction_id)[0] == "approve"
        # A request that does not prove its cryptogram is never sent.
        forged = edit(served.card.blob(300), t9F02=bytes.fromhex("000000000001"))
        with served.client() as client:
            refused = client.authorise(forged, served.card.track2)
        assert refused.reason == "CRYPTOGRAM_INVALID"
        assert len(receiver.seen) == 1


def test_the_endpoint_set_and_cleared_reaches_the_running_service(served: Served) -> None:
    with _program(served, _approve) as receiver:
        assert served.pay(100).approved
        assert clear_endpoint(served.shop.app.ledger) is True
        assert served.pay(100).approved
        assert len(receiver.seen) == 1
        assert clear_endpoint(served.shop.app.ledger) is False


def test_an_https_endpoint_with_its_own_ca(served: Served, tmp_path: Any) -> None:
    pki = TestPki(tmp_path / "program")
    context = pki.service.server_context()
    context.verify_mode = ssl.CERT_NONE  # the program asks no client certificate
    ca = pki.server_ca.read_text()
    with _program(served, _approve, context=context, ca_pem=ca) as receiver:
        assert receiver.url.startswith("https://")
        outcome = served.pay(250)
        assert outcome.approved
        assert receiver.seen[0].verified
        assert _recorded(served, outcome.transaction_id)[0] == "approve"
    # Without the CA, the endpoint's certificate is not trusted: the fallback.
    with _program(served, _approve, context=context, fallback=Fallback.DECLINE) as receiver:
        outcome = served.pay(250)
        assert _recorded(served, outcome.transaction_id) == ("none", None, "decline", "unreachable")
        assert receiver.seen == []


def test_endpoint_urls_and_settings_are_checked(issuer: IssuerApp) -> None:
    ledger, keys = issuer.ledger, issuer.keys
    for url in ("ftp://example.com/x", "http://example.com/decide", "https://u:p@example.com/"):
        with pytest.raises(ValidationError):
            set_endpoint(ledger, keys, url)
    with pytest.raises(ValidationError):
        set_endpoint(ledger, keys, "https://example.com/decide", deadline_ms=0)
    with pytest.raises(ValidationError):
        set_endpoint(ledger, keys, "https://example.com/decide", ca_pem="not a certificate")
    with pytest.raises(ValidationError):
        set_endpoint(ledger, keys, "https://example.com/decide", keep_secret=True)
    record, secret = set_endpoint(ledger, keys, "https://example.com/decide")
    assert secret is not None
    assert secret.startswith("dsec_")
    assert secret.encode() not in record.secret_sealed
    assert "secret" not in json.dumps(record.to_json())
    kept, none = set_endpoint(ledger, keys, "http://127.0.0.1:9/d", keep_secret=True)
    assert (none, kept.secret_sealed) == (None, record.secret_sealed)
    assert ProgramOutcome("none") is ProgramOutcome.NONE


# -- over the ISO 8583 listener ---------------------------------------------------------

NOW = "1206134501"


def _iso_authorisation(shop: Shop, payer: Payer, amount: int, stan: str) -> bytes:
    track2 = payer.track2.hex().upper().rstrip("F").replace("D", "=")
    return build("0100", {
        3: "000000", 4: f"{amount:012d}", 7: NOW, 11: stan, 18: "5411", 22: "071",
        35: ll(track2), 41: shop.terminal.id[-8:], 49: "978", 55: lll(payer.blob(amount)),
    })  # fmt: skip


def _iso_signed_on(shop: Shop, address: tuple[str, int], stan: str) -> Wire:
    wire = Wire(address, timeout=30)
    terminal_id, credential = shop.auth.removeprefix("Bearer ").split(":", 1)
    sign_on = build("0800", {
        7: NOW, 11: stan, 41: terminal_id[-8:], 48: lll(f"{terminal_id}:{credential}"),
        70: "001",
    })  # fmt: skip
    assert wire.ask(sign_on)[1][39] == b"00"
    return wire


def test_the_iso8583_listener_asks_the_program_without_holding_the_others(
    issuer: IssuerApp,
) -> None:
    shop = Shop(issuer)
    card, other = shop.card(), shop.card()
    release = threading.Event()

    def program(request: dict[str, Any]) -> tuple[int, Any, bool]:
        if request["amount"] == 777:
            release.wait(30)
        return 200, {"id": request["id"], "approved": request["amount"] != 555}, True

    receiver = Receiver(program)
    _, secret = set_endpoint(issuer.ledger, issuer.keys, receiver.url, deadline_ms=20_000)
    assert secret is not None
    receiver.secret = secret
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        with (
            serving(Iso8583Server(Iso8583Handler(issuer), sock)),
            _iso_signed_on(shop, sock.getsockname()[:2], "000001") as slow,
            _iso_signed_on(shop, sock.getsockname()[:2], "000002") as fast,
        ):
            slow.send(framed(_iso_authorisation(shop, card, 777, "000010")))
            deadline = time.monotonic() + 30
            while not any(s.json.get("amount") == 777 for s in receiver.seen):
                assert time.monotonic() < deadline, "the slow request never reached the program"
                time.sleep(0.01)
            _, answer = fast.ask(_iso_authorisation(shop, other, 100, "000011"))
            assert answer[39] == b"00"  # answered while the other waits for the program
            _, declined = fast.ask(_iso_authorisation(shop, other, 555, "000012"))
            assert (declined[39], declined[44]) == (b"05", b"PROGRAM_DECLINED")
            release.set()
            _, answer = slow.read()
            assert answer[39] == b"00"
            found = decision_of(issuer.ledger, answer[62].decode())
            assert found is not None
            assert found.outcome is ProgramOutcome.APPROVE
        assert all(s.verified for s in receiver.seen)
    finally:
        receiver.close()
    assert shop.balances() == (100_000, 877)
