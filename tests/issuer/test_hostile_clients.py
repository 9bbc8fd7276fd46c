"""The authorisation service against hostile clients, on its HTTP server over real
sockets, on both ledgers: malformed heads, slow and idle clients, connection floods,
nested JSON, 10 MB bodies, broken field 55. Each is refused with a 4xx in the API's
error shape (never a 500, never a traceback in the log), idle and slow sockets are
closed by the server itself, and a new client gets ``GET /health`` answered within a
second during and after each."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from tests.issuer.helpers import World, balances, edit, make_world, tap
from tests.support.hostile import (
    MALFORMED_HEADS,
    SHORT,
    assert_health,
    assert_refused,
    closed_by_server,
    exchange,
    read_answer,
)
from tests.support.servers import asgi_serving

Address = tuple[str, int]


@pytest.fixture
def served(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[World, Address]]:
    caplog.set_level(logging.DEBUG)
    w = make_world(issuer, rsa_keys)
    with asgi_serving(w.http, SHORT) as address:
        yield w, address
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


def _authorisation(w: World, blob: bytes, track2: bytes, key: str) -> bytes:
    body = json.dumps({"icc_data": blob.hex(), "track2": track2.hex()}).encode()
    return (
        f"POST /v1/authorisations HTTP/1.1\r\nHost: t\r\nAuthorization: {w.auth}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(("name", "raw"), MALFORMED_HEADS, ids=[n for n, _ in MALFORMED_HEADS])
def test_a_malformed_head_is_400_and_the_service_goes_on(
    served: tuple[World, Address], name: str, raw: bytes
) -> None:
    _, address = served
    assert_refused(exchange(address, raw), 400)
    assert_health(address, "/health")


def test_a_head_too_large_is_431(served: tuple[World, Address]) -> None:
    _, address = served
    many = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 100) for n in range(200))
    for raw in (
        b"GET /health HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\n" + many + b"\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    ):
        assert_refused(exchange(address, raw), 431)
    # A head that never ends, sent in pieces: refused once it passes the limit.
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nX: ")
        status = 0
        try:
            for _ in range(100):
                conn.sendall(b"a" * 1000)
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, _body = read_answer(conn)
        assert status in (431, 0)  # 0: reset before the answer could be read
    assert_health(address, "/health")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"icc_data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"icc_data": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
        b'{"icc_data": "00", "track2": "00", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["array", "in-a-field", "objects", "unknown-field"],
)
def test_nested_json_is_400(served: tuple[World, Address], body: bytes) -> None:
    w, address = served
    raw = (
        f"POST /v1/authorisations HTTP/1.1\r\nHost: t\r\nAuthorization: {w.auth}\r\n"
        f"Idempotency-Key: n1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    answer = exchange(address, raw)
    assert answer.status in (400, 413), answer
    assert answer.json()["error"]["code"] in ("invalid_json", "invalid_request", "too_large")
    assert_health(address, "/health")


def test_a_10_mb_body_is_413_at_once_while_health_answers(served: tuple[World, Address]) -> None:
    w, address = served
    size = 10 * 1024 * 1024
    head = (
        f"POST /v1/authorisations HTTP/1.1\r\nHost: t\r\nAuthorization: {w.auth}\r\n"
        f"Idempotency-Key: big\r\n"
    ).encode()
    # Declared: refused before a byte of the body is read.
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % size)
        status, _, body = read_answer(conn)
        assert (status, json.loads(body)["error"]["code"]) == (413, "too_large")
        assert closed_by_server(conn)
    # Chunked, sent as fast as the socket takes it: refused once past the limit.
    outcome: list[int] = []

    def send_chunked() -> None:
        with socket.create_connection(address, timeout=10) as conn:
            try:
                conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
                piece = b"%x\r\n%s\r\n" % (65536, b"0" * 65536)
                for _ in range(size // 65536):
                    conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            outcome.append(read_answer(conn)[0])

    sender = threading.Thread(target=send_chunked)
    sender.start()
    assert_health(address, "/health")
    sender.join(30)
    assert outcome, "the sender never finished"
    assert outcome[0] in (413, 0), outcome
    assert_health(address, "/health")


def test_slow_and_idle_clients_are_closed_by_the_server(served: tuple[World, Address]) -> None:
    w, address = served
    started = time.monotonic()
    idle = socket.create_connection(address)  # never sends a byte
    slow_head = socket.create_connection(address)
    slow_head.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # and no end of head
    slow_body = socket.create_connection(address)
    body = b'{"request_id": "x"}'
    slow_body.sendall(
        (
            f"POST /v1/reversals HTTP/1.1\r\nHost: t\r\nAuthorization: {w.auth}\r\n"
            f"Idempotency-Key: s1\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:5]
    )
    kept = socket.create_connection(address)  # a request, then nothing
    kept.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_answer(kept)[0] == 200
    # A slowloris: a byte of its head at a time, each well within any read time-out.
    loris = socket.create_connection(address)
    for byte in b"GET /health HTTP/1.1\r\nX: ":
        assert_health(address, "/health")
        try:
            loris.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.05)
    for conn, status in ((slow_head, 408), (slow_body, 408), (loris, 408)):
        got, _, answer = read_answer(conn, 5)
        assert got == status, (got, answer)
        assert json.loads(answer)["error"]["code"] == "timeout"
        assert closed_by_server(conn)
    assert closed_by_server(idle)
    assert closed_by_server(kept)
    assert time.monotonic() - started < 8
    for conn in (idle, slow_head, slow_body, kept, loris):
        conn.close()
    assert_health(address, "/health")
    assert balances(w) == (10_000, 0)


def test_a_connection_flood_does_not_keep_a_client_out(served: tuple[World, Address]) -> None:
    """Four times the connection limit, idle or with half a head each: every new client
    still gets its answer at once (the longest idle connection makes room)."""
    w, address = served
    flood: list[socket.socket] = []
    try:
        for n in range(4 * SHORT.max_connections):
            conn = socket.create_connection(address)
            if n % 2:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
            flood.append(conn)
            if n % 50 == 0:
                assert_health(address, "/health")
        assert_health(address, "/health")
        result = tap(w.card, 300)
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(_authorisation(w, result.authorisation_data, result.track2, "f1"))
            status, _, answer = read_answer(conn, 5)
        assert (status, json.loads(answer)["approved"]) == (200, True)
        closed = sum(closed_by_server(c, 0.01) for c in flood)
        assert closed >= len(flood) - SHORT.max_connections
    finally:
        for conn in flood:
            conn.close()
    assert_health(address, "/health")
    assert balances(w) == (10_000, 300)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"t9C": b""}, "9C (Transaction Type)"),
        ({"t9F36": b"\x01"}, "9F36"),
        ({"t9F27": b""}, "9F27"),
        ({"t9F26": b"\x00" * 4}, "9F26"),
        ({"t9F02": b"\x00" * 7}, "9F02"),
        ({"t9F10": b""}, "9F10"),
    ],
    ids=["9C-empty", "9F36-short", "9F27-empty", "9F26-short", "9F02-long", "9F10-empty"],
)
def test_field_55_with_a_required_element_wrong_is_400_naming_it(
    served: tuple[World, Address], changes: dict[str, bytes], named: str
) -> None:
    w, address = served
    result = tap(w.card, 500)
    blob = edit(result.authorisation_data, **changes)
    answer = exchange(address, _authorisation(w, blob, result.track2, "e1"))
    assert answer.status == 400, answer
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert named in error["message"]
    assert_health(address, "/health")
    assert balances(w) == (10_000, 0)


def test_field_55_missing_an_element_is_400_naming_it(served: tuple[World, Address]) -> None:
    from emvwire.tlv import decode_flat, encode

    w, address = served
    result = tap(w.card, 500)
    tags = decode_flat(result.authorisation_data)
    del tags[0x9F36]
    blob = b"".join(encode(t, v) for t, v in tags.items())
    answer = exchange(address, _authorisation(w, blob, result.track2, "m1"))
    assert (answer.status, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert "lacks 9F36" in answer.json()["error"]["message"]
