"""The services' server over mutual TLS against hostile clients at the TLS layer: a
socket that never sends a ClientHello, bytes that are not TLS, a handshake without a
client certificate or with one of another CA, and an idle TLS client that never
answers the server's close. Each is closed by the server itself within its limit
(``handshake_timeout``, ``idle_timeout`` + ``tls_close_grace``), nothing is logged
above debug, the server stops at once with such a client open, and a good client gets
``/health`` answered within a second during and after each."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from httpserve.asgi import send_json
from httpserve.limits import Limits
from tests.support.hostile import closed_by_server, read_answer
from tests.support.servers import asgi_serving
from tests.support.tls import TestPki

LIMITS = Limits(handshake_timeout=0.5, idle_timeout=0.5, tls_close_grace=0.3)
Address = tuple[str, int]


async def _health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send_json(send, 200, b'{"status":"ok"}')


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return TestPki(tmp_path)


@pytest.fixture
def served(pki: TestPki, caplog: pytest.LogCaptureFixture) -> Iterator[Address]:
    caplog.set_level(logging.DEBUG)
    with asgi_serving(_health, LIMITS, pki.service.server_context()) as address:
        yield address
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


def _good(pki: TestPki) -> ssl.SSLContext:
    return pki.client("terminal", "term_good").tls(pki.server_ca).context()


def _health_within(address: Address, context: ssl.SSLContext, within: float = 1.0) -> None:
    start = time.monotonic()
    with (
        socket.create_connection(address, timeout=within) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _ = read_answer(conn, within)
    assert status == 200
    assert time.monotonic() - start < within


def test_a_socket_that_never_says_hello_is_closed_after_the_handshake_timeout(
    served: Address, pki: TestPki
) -> None:
    silent = [socket.create_connection(served, timeout=5) for _ in range(20)]
    try:
        _health_within(served, _good(pki))
        start = time.monotonic()
        assert all(closed_by_server(s, 5.0) for s in silent)
        assert time.monotonic() - start < 3.0  # 0.5 s, not the event loop's 60 s
    finally:
        for s in silent:
            s.close()
    _health_within(served, _good(pki))


@pytest.mark.parametrize(
    "garbage",
    [b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
     bytes(range(256)) * 4],
    ids=["plain-http", "truncated-hello", "noise"],
)  # fmt: skip
def test_bytes_that_are_not_tls_are_closed_and_the_server_goes_on(
    served: Address, pki: TestPki, garbage: bytes
) -> None:
    with socket.create_connection(served, timeout=5) as conn:
        conn.sendall(garbage)
        assert closed_by_server(conn, 3.0)
    _health_within(served, _good(pki))


@pytest.mark.parametrize("who", ["none", "foreign", "expired"])
def test_no_request_gets_through_without_a_valid_client_certificate(
    served: Address, pki: TestPki, who: str
) -> None:
    if who == "none":
        context = ssl.create_default_context(cafile=pki.server_ca)
    else:
        client = (
            pki.foreign("terminal", "term_x")
            if who == "foreign"
            else pki.expired("terminal", "term_x")
        )
        context = client.tls(pki.server_ca).context()
    assert _no_answer(served, context)
    _health_within(served, _good(pki))


def _no_answer(address: Address, context: ssl.SSLContext) -> bool:
    """Whether a request with ``context`` gets no answer: the handshake fails, or
    (TLS 1.3: the client's certificate is checked after the client finished) the
    connection is closed before an answer."""
    try:
        with (
            socket.create_connection(address, timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            return read_answer(conn, 5)[0] == 0
    except (ssl.SSLError, ConnectionError):
        return True


class _QuietTls:
    """A TLS client over a socket it keeps (``ssl.SSLObject`` on memory BIOs): it
    never answers the server's close_notify, and it sees when the server's TCP
    connection ends."""

    def __init__(self, address: Address, context: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        self._step(self.tls.do_handshake)

    def _step(self, action: Any) -> Any:
        while True:
            try:
                result = action()
            except ssl.SSLWantReadError:
                self._flush()
                self.incoming.write(self.sock.recv(65536))
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def health(self) -> bytes:
        self._step(lambda: self.tls.write(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"))
        return bytes(self._step(lambda: self.tls.read(65536)))

    def server_closed_within(self, seconds: float) -> bool:
        """Whether the server's end of the TCP connection closes within ``seconds``
        (its close_notify read and not answered)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


def test_an_idle_tls_client_that_never_answers_the_close_is_dropped(
    served: Address, pki: TestPki
) -> None:
    """The server closes the idle connection (close_notify) and drops it once its grace
    for the client's alert is over (not the event loop's 30 s)."""
    client = _QuietTls(served, _good(pki))
    try:
        assert client.health().startswith(b"HTTP/1.1 200")
        assert client.server_closed_within(LIMITS.idle_timeout + LIMITS.tls_close_grace + 1.5)
    finally:
        client.close()


def test_the_server_stops_at_once_with_a_silent_tls_client_open(pki: TestPki) -> None:
    limits = Limits(idle_timeout=60, tls_close_grace=0.3)
    with asgi_serving(_health, limits, pki.service.server_context()) as address:
        client = _QuietTls(address, _good(pki))
        assert client.health().startswith(b"HTTP/1.1 200")
        start = time.monotonic()
    took = time.monotonic() - start  # the drain: the idle client never answers the close
    client.close()
    assert took < 5.0, f"the server took {took:.1f} s to stop"
