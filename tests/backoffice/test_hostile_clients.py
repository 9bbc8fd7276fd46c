"""The back office's gate API against hostile clients, on its HTTP server over real
sockets: malformed heads, nested JSON, a 10 MB body, a slow body, a deny-list version
beyond any integer, a busy port. Each is refused with a 4xx in the API's error shape,
never a 500 or a traceback in the log, and a new client gets ``GET /v1/health``
answered within a second after each."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.service import MAX_BODY, make_app
from backoffice.store import Home, Store
from tests.backoffice.databases import home_args
from tests.backoffice.taps import plain_tap
from tests.support.hostile import (
    MALFORMED_HEADS,
    SHORT,
    assert_health,
    assert_refused,
    exchange,
    read_answer,
)
from tests.support.servers import asgi_serving

Address = tuple[str, int]
DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@pytest.fixture
def served(home: Home, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Address, str]]:
    caplog.set_level(logging.DEBUG)
    with Store(home) as store:
        gate, key = store.add_gate("North", None)
    app = make_app(home)
    with closing(app), asgi_serving(app, SHORT) as address:
        yield address, f"Bearer {gate}:{key}"
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


def _post(auth: str, body: bytes, path: str = "/v1/taps") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(("name", "raw"), MALFORMED_HEADS, ids=[n for n, _ in MALFORMED_HEADS])
def test_a_malformed_head_is_400(served: tuple[Address, str], name: str, raw: bytes) -> None:
    address, _ = served
    assert_refused(exchange(address, raw), 400)
    assert_health(address, "/v1/health")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"taps": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"taps": [{"tap_id": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001 + b"]}",
        b'{"taps": [' + b"{}," * 10 + b"[[[[[[[[[[]]]]]]]]]]]}",
        b"\xff\xfe not json",
        b"",
    ],
    ids=["array", "taps", "in-a-tap", "after-taps", "not-utf8", "empty"],
)
def test_nested_or_broken_json_is_400(served: tuple[Address, str], body: bytes) -> None:
    address, auth = served
    answer = exchange(address, _post(auth, body))
    assert (answer.status, answer.json()["error"]["code"]) == (400, "bad_request"), answer
    assert_health(address, "/v1/health")


def test_a_10_mb_body_is_413(served: tuple[Address, str]) -> None:
    address, auth = served
    head = f"POST /v1/taps HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n".encode()
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % (10 * 1024 * 1024))
        status, _, body = read_answer(conn)
    assert (status, json.loads(body)["error"]["code"]) == (413, "too_large")
    big = b'{"taps": [' + b'{"x": "' + b"a" * (MAX_BODY + 10) + b'"}]}'
    assert exchange(address, _post(auth, big)).status == 413
    assert_health(address, "/v1/health")


def test_a_slow_body_is_408(served: tuple[Address, str], home: Home) -> None:
    address, auth = served
    tap = json.dumps({"taps": [plain_tap(home.sealing_public_key(), "G1", 1, DAY)]}).encode()
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_post(auth, tap)[: -len(tap) // 2])
        status, _, body = read_answer(conn, 5)
    assert (status, json.loads(body)["error"]["code"]) == (408, "timeout")
    with Store(home) as store:
        assert store.query("SELECT COUNT(*) AS n FROM taps") == [{"n": 0}]


@pytest.mark.parametrize(
    "query", ["?since=" + "9" * 40, "?since=-1", "?since=%C2%B2", "?since=x", "?until=3"]
)
def test_a_bad_deny_list_version_is_400(served: tuple[Address, str], query: str) -> None:
    address, auth = served
    raw = f"GET /v1/deny-list{query} HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n\r\n"
    answer = exchange(address, raw.encode())
    assert (answer.status, answer.json()["error"]["code"]) == (400, "bad_request")


def test_a_busy_port_is_one_line(home: Home, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            backoffice, [*home_args(home), "serve", "--bind", f"127.0.0.1:{port}"]
        )
    assert result.exit_code == 4  # conflict: the address is taken
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: the address is in use (another server "
        "listens on it): stop that server, or choose another port (0: any free one)"
    ]
    assert "Traceback" not in result.output
