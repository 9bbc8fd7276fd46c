"""A hostile client of the services' HTTP server, for the hostile-client suites
(tests/issuer/test_hostile_clients.py, tests/backoffice/test_hostile_clients.py).

:data:`MALFORMED_HEADS` are requests llhttp must refuse (each a 400);
:func:`exchange` sends raw bytes and reads one answer and whether the server closed;
:func:`assert_health` checks that a new connection gets ``GET <path>`` answered 200
within a second; :data:`SHORT` are limits short enough for a test to watch them act.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any, NamedTuple

from httpserve.limits import Limits

__all__ = [
    "MALFORMED_HEADS",
    "SHORT",
    "Exchange",
    "assert_health",
    "assert_refused",
    "closed_by_server",
    "exchange",
    "read_answer",
    "read_answers",
]

#: Limits a test can watch act: a second for a head, a body or an idle connection.
SHORT = Limits(head_timeout=0.5, body_timeout=0.5, idle_timeout=0.5, max_connections=64)

#: Request heads a conforming parser refuses (RFC 9112 §2-§6, RFC 9110 §8.6): id, bytes.
MALFORMED_HEADS: list[tuple[str, bytes]] = [
    ("non-ascii-digit-length", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: \xb2\r\n\r\n"),
    ("duplicate-length", b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    ("negative-length", b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
    ("plus-length", b"POST /x HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello"),
    ("huge-length", b"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
    (
        "chunked-and-length",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    ),
    ("bad-chunk", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("bracket-target", b"GET http://[ HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("non-ascii-target", b"GET /\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("space-in-header-name", b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n"),
    ("nul-in-header", b"GET /health HTTP/1.1\r\nX: a\x00b\r\n\r\n"),
    ("no-colon", b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n"),
    ("junk-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("bad-version", b"GET /health HTTP/9.9\r\n\r\n"),
    ("upgrade", b"GET /health HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"),
    ("connect", b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"),
    ("bare-lf-folding", b"GET /health HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
]


class Exchange(NamedTuple):
    """One answer as read off the socket, and whether the server then closed."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool

    def json(self) -> Any:
        return json.loads(self.body)


def read_answers(
    conn: socket.socket, count: int, timeout: float = 10.0
) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP/1.1 answers with ``Content-Length`` bodies, in order (status,
    headers with names in lower case, body); fewer if the server closes first."""
    conn.settimeout(timeout)
    data = b""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(data) >= end + 4 + length:
                out.append((int(lines[0].split(" ")[1]), headers, data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    return out


def read_answer(conn: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One answer (:func:`read_answers`); (0, {}, b"") if the server closed without one."""
    answers = read_answers(conn, 1, timeout)
    return answers[0] if answers else (0, {}, b"")


def closed_by_server(conn: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes ``conn`` within ``timeout`` seconds."""
    conn.settimeout(timeout)
    try:
        while True:
            if conn.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def exchange(address: tuple[str, int], raw: bytes, timeout: float = 10.0) -> Exchange:
    """Send ``raw`` on a new connection: the answer, and whether it was then closed."""
    with socket.create_connection(address, timeout=timeout) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(raw)
        status, headers, body = read_answer(conn, timeout)
        return Exchange(status, headers, body, closed_by_server(conn, timeout))


def assert_refused(answer: Exchange, status: int) -> None:
    """``answer`` is ``status`` in the APIs' error shape, and the connection closed."""
    assert answer.status == status, answer
    error = answer.json()["error"]
    assert set(error) == {"code", "message"}, error
    assert "Traceback" not in error["message"]
    assert answer.closed


def assert_health(address: tuple[str, int], path: str, within: float = 1.0) -> None:
    """A new connection gets ``GET path`` answered 200 within ``within`` seconds."""
    start = time.monotonic()
    with socket.create_connection(address, timeout=within) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, _, _ = read_answer(conn, within)
    took = time.monotonic() - start
    assert status == 200, f"health answered {status}"
    assert took < within, f"health took {took:.2f} s"
