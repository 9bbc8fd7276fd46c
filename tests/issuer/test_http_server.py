"""The service on its HTTP server (uvicorn, :mod:`httpserve`) over real sockets, on
both ledgers: keep-alive, pipelined requests answered in order, chunked bodies,
malformed and oversized requests refused with a status in the API's error shape and a
closed connection; and group commit: authorisations that arrive together decided in
one batch, among them a retried request id and a replayed cryptogram, each as alone."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from emvwire.contract import Decision
from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest
from issuer.service.api import MAX_BODY
from tests.issuer.helpers import World, balances, make_world, tap
from tests.support.asgi import Call, call_many
from tests.support.hostile import read_answers
from tests.support.servers import asgi_serving


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.fixture
def served(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> Iterator[tuple[World, int]]:
    w = make_world(issuer, rsa_keys)
    with asgi_serving(w.http) as (_, port):
        yield w, port


def _closed(conn: socket.socket) -> bool:
    conn.settimeout(5)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_and_pipelined_requests_in_order(served: tuple[World, int]) -> None:
    w, port = served
    result = tap(w.card, 300)
    body = json.dumps(
        {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()}
    ).encode()
    auth = (
        f"POST /v1/authorisations HTTP/1.1\r\nHost: x\r\nAuthorization: {w.auth}\r\n"
        f"Idempotency-Key: p1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    listing = f"GET /v1/authorisations HTTP/1.1\r\nAuthorization: {w.auth}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(health + auth + listing)  # three requests in one segment
        answers = read_answers(conn, 3)
        assert [a[0] for a in answers] == [200, 200, 200]
        assert json.loads(answers[0][2])["status"] == "ok"
        decided = json.loads(answers[1][2])
        assert decided["approved"] is True
        # The listing, sent after the authorisation, sees it: answered in order.
        assert [a["id"] for a in json.loads(answers[2][2])["data"]] == [decided["id"]]
        assert answers[1][1]["content-type"] == "application/json"
        assert "server" not in answers[1][1]
        conn.sendall(health)  # the same connection, still open
        assert read_answers(conn, 1)[0][0] == 200
    assert balances(w) == (10_000, 300)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n", 400),
        (b"POST /v1/authorisations HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"POST /v1/authorisations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n0\r\n\r\n",
            400,
        ),
        (f"POST /v1/refunds HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), 413),
        (
            b"POST /v1/refunds HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % (MAX_BODY + 1)
            + b"a" * (MAX_BODY + 1)
            + b"\r\n0\r\n\r\n",
            413,
        ),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_a_status_and_a_closed_connection(
    served: tuple[World, int], raw: bytes, status: int
) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        answers = read_answers(conn, 1)
        assert [a[0] for a in answers] == [status]
        assert "error" in json.loads(answers[0][2])
        assert _closed(conn)


def test_a_chunked_body_is_read(served: tuple[World, int]) -> None:
    w, port = served
    result = tap(w.card, 120)
    body = json.dumps(
        {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()}
    ).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 50]), body[i : i + 50])
                      for i in range(0, len(body), 50))  # fmt: skip
    raw = (
        (
            f"POST /v1/authorisations HTTP/1.1\r\nHost: x\r\nAuthorization: {w.auth}\r\n"
            f"Idempotency-Key: c1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + chunks
        + b"0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        status, _, answer = read_answers(conn, 1)[0]
    assert (status, json.loads(answer)["approved"]) == (200, True)
    assert balances(w) == (10_000, 120)


def test_connection_close_and_http_1_0(served: tuple[World, int]) -> None:
    _, port = served
    for raw in (
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.0\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(raw)
            answers = read_answers(conn, 1)
            assert answers[0][0] == 200
            assert answers[0][1]["connection"] == "close"
            assert _closed(conn)


def test_a_batch_decides_each_request_as_alone(world: World) -> None:
    """One group-commit batch: eight taps, a retry of the first (same request id), a
    replay of the second's cryptogram under a new id, a request id reused for another
    request, and a malformed one: one transaction, each answered for itself."""
    taps = [tap(world.card, 100 + n) for n in range(8)]
    terminal = world.app.service.terminal(world.terminal)
    items = [
        (terminal, AuthorisationRequest(f"b{n}", t.authorisation_data, t.track2))
        for n, t in enumerate(taps)
    ]
    items.append((terminal, AuthorisationRequest("b0", taps[0].authorisation_data, taps[0].track2)))
    items.append((terminal, AuthorisationRequest("x1", taps[1].authorisation_data, taps[1].track2)))
    items.append((terminal, AuthorisationRequest("b2", taps[3].authorisation_data, taps[3].track2)))
    items.append((terminal, AuthorisationRequest("bad", b"\x9f\x26", taps[0].track2)))
    out = world.api.authoriser.authorise_many(items)
    decisions = [o for o in out[:8] if isinstance(o, Decision)]
    assert [d.approved for d in decisions] == [True] * 8
    retried = out[8]
    assert isinstance(retried, Decision)
    assert (retried.id, retried.replayed) == (decisions[0].id, True)
    replayed = out[9]
    assert isinstance(replayed, Decision)
    assert (replayed.approved, replayed.reason) == (False, "ATC_REPLAYED")
    assert type(out[10]).__name__ == "ConflictError"
    assert type(out[11]).__name__ == "ValidationError"
    assert balances(world) == (10_000, sum(100 + n for n in range(8)))
    assert world.app.ledger.check() == []


def test_requests_that_arrive_together_share_one_batch(world: World) -> None:
    """Eight authorisations, a refused credential, a health check and a request without
    Idempotency-Key in one turn of the loop: one group-commit batch (one
    ``finish_many``) decides the eight, the others are answered at once."""
    taps = [tap(world.card, 100 + n) for n in range(8)]
    headers = {"authorization": world.auth}

    def body(n: int) -> bytes:
        t = taps[n]
        return json.dumps(
            {"icc_data": t.authorisation_data.hex(), "track2": t.track2.hex()}
        ).encode()

    batches: list[int] = []
    real = world.api.finish_many

    def counted(prepared: Any) -> Any:
        batches.append(len(prepared))
        return real(prepared)

    world.api.finish_many = counted  # type: ignore[method-assign]
    requests = [
        Call("POST", "/v1/authorisations", {**headers, "idempotency-key": f"h{n}"}, body(n))
        for n in range(8)
    ]
    requests += [
        Call("POST", "/v1/authorisations", {"authorization": "Bearer x:y"}, body(0)),
        Call("GET", "/health"),
        Call("POST", "/v1/authorisations", headers, body(0)),
    ]
    answers = call_many(world.http, requests)
    assert [a.status for a in answers] == [200] * 8 + [401, 200, 400]
    assert all(json.loads(a.body)["approved"] for a in answers[:8])
    assert batches == [8]
    assert balances(world) == (10_000, sum(100 + n for n in range(8)))
