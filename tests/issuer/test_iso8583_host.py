"""The terminal's ISO 8583 host client (hostlink.Iso8583Client, chosen by
hostlink.connect for an iso8583:// URL) against the real listener on both ledgers:
approved, a lost answer repeated with the same STAN and time (one hold), no answer
ending in a reversal by field 90, completion, refund and reversal; and against a
fake issuer of the test that reads the client's messages with its own parser."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from emvwire.contract import NO_ANSWER_CODE
from emvwire.iso8583 import Message
from emvwire.oda import SigningKey
from emvwire.tls import DEV_PLAIN_HTTP, ClientTls, PlainHttpError
from hostlink import HostClient, HostError, HostRefusedError, Iso8583Client, connect
from issuer.bootstrap import IssuerApp
from issuer.service.iso8583 import Iso8583Handler
from issuer.service.iso8583_server import Iso8583Server
from tests.issuer.helpers import World, balances, make_world, tap
from tests.support.iso8583 import build, framed, lll, parse
from tests.support.servers import serving


@pytest.fixture
def served(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> Iterator[tuple[World, str, Any]]:
    w = make_world(issuer, rsa_keys)
    sock = socket.create_server(("127.0.0.1", 0))
    server = Iso8583Server(Iso8583Handler(w.app), sock)
    with serving(server):
        yield w, f"iso8583://127.0.0.1:{sock.getsockname()[1]}", server


def _client(w: World, url: str, **options: Any) -> Iso8583Client:
    terminal_id, key = w.auth.removeprefix("Bearer ").split(":", 1)
    client = connect(url, terminal_id, key, tls=DEV_PLAIN_HTTP, **options)
    assert isinstance(client, Iso8583Client)
    return client


def _drop_answers(server: Any, mti: str, count: int | None) -> list[str]:
    """Make ``server`` decide but never send ``count`` answers of type ``mti``
    (``None``: all); the STANs of those lost."""
    real = server._send
    lost: list[str] = []

    async def send(writer: asyncio.StreamWriter, answer: Message) -> None:
        if answer.mti == mti and (count is None or len(lost) < count):
            lost.append(answer.text(11))
            return
        await real(writer, answer)

    server._send = send
    return lost


def test_the_factory_picks_the_client_by_scheme() -> None:
    dev = DEV_PLAIN_HTTP
    assert isinstance(connect("http://127.0.0.1:1", "term_x", "k", tls=dev), HostClient)
    assert isinstance(connect("iso8583://127.0.0.1:1", "term_x", "k", tls=dev), Iso8583Client)
    for url in ("http://127.0.0.1:1", "iso8583://127.0.0.1:1"):  # in clear: a dev flag
        with pytest.raises(PlainHttpError, match="local development"):
            connect(url, "term_x", "k", tls=ClientTls())
    with pytest.raises(ValueError, match="iso8583"):
        Iso8583Client("iso8583://127.0.0.1", "term_x", "k")  # no port


def test_approved_and_a_refused_key(served: tuple[World, str, Any]) -> None:
    w, url, _ = served
    result = tap(w.card, 2500)
    with _client(w, url) as host:
        outcome = host.authorise(result.authorisation_data, result.track2)
        assert (outcome.approved, outcome.response_code, outcome.attempts) == (True, "00", 1)
        assert len(outcome.issuer_authentication_data) == 8
        assert outcome.arpc == outcome.issuer_authentication_data[:4]
        again = host.authorise(
            result.authorisation_data, result.track2, request_id=outcome.request_id
        )
        assert again.transaction_id == outcome.transaction_id
        assert host.echo()
    assert balances(w) == (10_000, 2500)
    terminal_id = w.auth.removeprefix("Bearer ").split(":", 1)[0]
    with Iso8583Client(url, terminal_id, "tsk_wrong") as bad, pytest.raises(HostRefusedError):
        bad.authorise(result.authorisation_data, result.track2)


def test_a_lost_answer_is_repeated_with_the_same_stan(served: tuple[World, str, Any]) -> None:
    w, url, server = served
    lost = _drop_answers(server, "0110", 1)
    result = tap(w.card, 700)
    with _client(w, url, timeout=0.5, retries=2, backoff=0.01) as host:
        outcome = host.authorise(result.authorisation_data, result.track2, request_id="rtl_1")
    assert outcome.approved
    assert outcome.attempts == 2
    assert outcome.request_id == "rtl_1"
    assert len(lost) == 1
    assert balances(w) == (10_000, 700)  # held once


def test_no_answer_ends_in_a_reversal_by_field_90(served: tuple[World, str, Any]) -> None:
    w, url, server = served
    _drop_answers(server, "0110", None)
    result = tap(w.card, 900)
    with _client(w, url, timeout=0.3, retries=1, backoff=0.01) as host:
        outcome = host.authorise(result.authorisation_data, result.track2)
    assert (outcome.approved, outcome.answered, outcome.reversed) == (False, False, True)
    assert outcome.response_code == NO_ANSWER_CODE
    assert balances(w) == (10_000, 0)  # decided, then released by the reversal
    with w.app.ledger.unit_of_work(write=False) as uow:
        found = uow.authorisations.find_by_request(
            w.auth.removeprefix("Bearer ").split(":", 1)[0], outcome.request_id
        )
    assert found is not None
    assert found.status.value == "reversed"


def test_completion_refund_and_reversal(served: tuple[World, str, Any]) -> None:
    w, url, _ = served
    with _client(w, url) as host:
        sale = host.authorise(*_blob(w, 1000))
        done = host.complete(sale.transaction_id, 600, request_id="cap:1")
        assert (done["id"], done["status"], done["captured_amount"]) == (
            sale.transaction_id, "closed", 600,
        )  # fmt: skip
        assert host.complete(sale.transaction_id, 600, request_id="cap:1")["status"] == "closed"
        refund = host.refund(sale.transaction_id, 100)
        assert refund["id"] != sale.transaction_id
        with pytest.raises(HostError, match="30"):
            host.refund(sale.transaction_id, 10_000)
        other = host.authorise(*_blob(w, 300))
        assert host.reverse(other.transaction_id)["status"] == "reversed"
        with pytest.raises(HostError, match="unsupported"):
            host.transactions()
    assert balances(w) == (10_000 - 600 + 100, 0)


def _blob(w: World, amount: int) -> tuple[bytes, bytes]:
    result = tap(w.card, amount)
    return result.authorisation_data, result.track2


class _FakeIssuer:
    """A listener of the test: reads the client's frames with the test's parser and
    answers hand-written messages."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.seen: list[tuple[str, dict[int, bytes]]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"iso8583://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.thread.join(10)
        self.sock.close()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while True:
                header = conn.recv(2)
                if len(header) < 2:
                    return
                size, body = int.from_bytes(header, "big"), b""
                while len(body) < size:
                    body += conn.recv(size - len(body))
                mti, fields = parse(body)
                self.seen.append((mti, fields))
                echo = {n: fields[n] for n in (7, 11, 41) if n in fields}
                if mti == "0800":
                    conn.sendall(framed(build("0810", {**echo, 39: "00", 70: fields[70]})))
                else:
                    answer = build("0110", {
                        **echo, 4: fields[4], 38: "ABC123", 39: "00", 49: "978",
                        55: lll(bytes.fromhex("910A11223344556677883030")),
                        56: lll("PAR0001"), 62: lll("txn_aaaaaaaaaaaaaaaa"),
                    })  # fmt: skip
                    conn.sendall(framed(answer))


def test_the_client_messages_read_by_the_test() -> None:
    fake = _FakeIssuer()
    icc = bytes.fromhex("9F02060000000012345F2A0209789C01005F340101")
    track2 = bytes.fromhex("4761739001010010D25122011143804400000F")
    clock = lambda: datetime(2026, 12, 6, 13, 45, 1, tzinfo=UTC)  # noqa: E731
    with Iso8583Client(fake.url, "term_abcdefghijklmnop", "tsk_key", clock=clock) as host:
        outcome = host.authorise(icc, track2)
    fake.close()
    (on_mti, on), (mti, auth) = fake.seen
    assert (on_mti, on[70], on[41]) == ("0800", b"001", b"ijklmnop")
    assert on[48] == b"term_abcdefghijklmnop:tsk_key"
    assert mti == "0100"
    assert (auth[3], auth[4], auth[7], auth[22], auth[41], auth[49]) == (
        b"000000", b"000000001234", b"1206134501", b"071", b"ijklmnop", b"978",
    )  # fmt: skip
    assert auth[35] == b"4761739001010010=25122011143804400000"
    assert auth[55] == icc
    assert auth[37][:6] == b"634013"  # year 6, day 340, hour 13
    assert 48 not in auth
    assert outcome.approved
    assert outcome.transaction_id == "txn_aaaaaaaaaaaaaaaa"
    assert outcome.arpc == bytes.fromhex("1122334455667788")
    assert outcome.par == "PAR0001"
    assert outcome.request_id == f"iso8583:1206134501:{auth[11].decode()}"
