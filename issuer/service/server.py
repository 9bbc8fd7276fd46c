"""HTTP/1.1 transport of the authorisation service (RFC 9112), on the standard library.

One listening socket; ``workers`` processes (``os.fork`` after binding, each opening
its own key store and ledger connections) each run one event loop on it
(:mod:`selectors`), so that cryptography and JSON use more than one core despite the
GIL; they share the connections evenly (:class:`WorkerLoads`). A request goes
through two stages (:meth:`~issuer.service.api.Api.prepare_many`, then
:meth:`~issuer.service.api.Api.finish_many`): a loop turn reads every connection that
has data, takes at most one complete request from each and runs its read phase
(credential, fields, ARQC, status checks); then, once the ledger's writer is free
(SQLite: no other worker writing; it does not wait but serves more requests
meanwhile), the write phases of every request prepared so far run in one ledger
transaction with one durable commit (group commit), and only then are their answers
written. A connection has one request in stage two at a time: pipelined requests are
answered in order, and the requests of a batch are independent. One thread per
process: no lock convoy on the GIL.

Keep-alive connections; bodies need ``Content-Length`` (no chunked requests: 411);
a head above 16 KiB is 431, a body above :data:`~issuer.service.api.MAX_BODY` 413,
a malformed request 400, each closing the connection. Every other failure is an
answer from :class:`~issuer.service.api.Api`, never a traceback to the client.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from issuer.errors import IssuerError
from issuer.service.api import MAX_BODY, Api, Prepared, Request, Response, error_answer

__all__ = ["HttpServer", "WorkerLoads", "make_server", "serve"]

log = logging.getLogger("issuer.service")

#: Largest request line plus headers.
MAX_HEAD: Final = 16 * 1024
_READ: Final = 65536
#: How soon a loop waiting for the ledger's writer (another process's) looks again.
_WRITER_RETRY: Final = 0.0002
#: A worker whose load was not updated for this long (seconds) is not compared with.
_LOAD_STALE: Final = 2.0


class WorkerLoads:
    """How many connections each worker process holds, in memory shared across the
    fork (an anonymous shared mapping: a count and a timestamp per worker).

    Workers accept from one listening socket, and whoever wakes first takes the
    connections that are waiting: eight terminals connecting at once can end as six
    and two. Each worker's writes go to the ledger in one batch per turn (group
    commit), so a worker with few connections commits small batches, and a commit
    costs the same for one authorisation as for eight. A worker therefore listens only
    while no other live worker holds fewer connections than it does, and accepts one
    connection at a time: connections spread evenly. A worker whose entry is older
    than :data:`_LOAD_STALE` seconds (dead, or stuck) is left out of the comparison,
    so the others never all stop listening.
    """

    _ENTRY = struct.Struct("<qd")

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._map = mmap.mmap(-1, self._ENTRY.size * self.workers)

    def update(self, index: int, connections: int) -> None:
        """Record worker ``index``'s connection count, now."""
        self._ENTRY.pack_into(self._map, index * self._ENTRY.size, connections, time.monotonic())

    def fewest_elsewhere(self, index: int) -> int | None:
        """The fewest connections a live worker other than ``index`` holds (``None``:
        no other live worker)."""
        now = time.monotonic()
        fewest: int | None = None
        for other in range(self.workers):
            if other == index:
                continue
            count, stamp = self._ENTRY.unpack_from(self._map, other * self._ENTRY.size)
            if stamp and now - stamp <= _LOAD_STALE and (fewest is None or count < fewest):
                fewest = count
        return fewest


class _Connection:
    """One client connection: what was read and not yet parsed, what is left to send."""

    __slots__ = ("busy", "closing", "inbox", "outbox", "sock", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.busy = False  # a request of it waits for stage two
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.closing = False  # close once the outbox is sent
        self.waiting = False  # registered for writing


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


def encode_response(answer: Response, *, close: bool) -> bytes:
    """The bytes of an HTTP/1.1 answer with a JSON body (RFC 9112 §4, §6.3)."""
    body = answer.encode()
    head = [
        _status_line(answer.status),
        b"Server: tapstack-issuer\r\nContent-Type: application/json\r\n",
        b"Content-Length: %d\r\n" % len(body),
    ]
    for name, value in answer.headers.items():
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


class _BadRequestError(IssuerError):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(message)


def _parse(inbox: bytearray) -> tuple[Request, bool, int] | None:
    """The first complete request of ``inbox``: (request, keep alive, bytes used), or
    ``None`` if incomplete; :class:`_BadRequestError` if malformed (RFC 9112 §2-§6)."""
    end = inbox.find(b"\r\n\r\n")
    if end < 0:
        if len(inbox) > MAX_HEAD:
            raise _BadRequestError(431, "the request head is too large")
        return None
    if end > MAX_HEAD:
        raise _BadRequestError(431, "the request head is too large")
    try:
        lines = bytes(inbox[:end]).decode("latin-1").split("\r\n")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequestError(400, "undecodable request head") from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise _BadRequestError(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequestError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _BadRequestError(411, "a body needs Content-Length")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _BadRequestError(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise _BadRequestError(413, "the request body is too large")
    start = end + 4
    if len(inbox) < start + length:
        return None
    body = bytes(inbox[start : start + length])
    connection = headers.get("connection", "").lower()
    keep = connection != "close" and (version != "HTTP/1.0" or connection == "keep-alive")
    return Request(method, target, headers, body), keep, start + length


class HttpServer:
    """The event loop of one process on a bound listening socket (module docstring)."""

    def __init__(
        self, api: Api, sock: socket.socket, loads: tuple[WorkerLoads, int] | None = None
    ) -> None:
        self.api = api
        self.socket = sock
        self._loads = loads
        self._listening = True
        self.server_address = sock.getsockname()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._connections: dict[int, _Connection] = {}
        self._pending = False  # a complete request waits in an inbox: do not block
        # Requests through stage one, waiting for stage two (the ledger's writer).
        self._prepared: list[tuple[_Connection, Prepared, bool]] = []

    # -- life cycle --------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Answer requests until :meth:`shutdown` (or KeyboardInterrupt)."""
        self.socket.setblocking(False)
        self._wake_r.setblocking(False)
        self._selector.register(self.socket, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop.is_set():
                self._turn(0.0 if self._pending else poll_interval)
        finally:
            if self._listening:
                self._selector.unregister(self.socket)
            self._selector.unregister(self._wake_r)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread) and wait for it."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        """Close every connection and the listening socket."""
        for conn in list(self._connections.values()):
            self._close(conn)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self.socket.close()

    # -- the loop ----------------------------------------------------------------------

    def _balance(self) -> None:
        """Listen only while no other worker holds fewer connections
        (:class:`WorkerLoads`)."""
        if self._loads is None:
            return
        loads, index = self._loads
        mine = len(self._connections)
        loads.update(index, mine)
        fewest = loads.fewest_elsewhere(index)
        listen = fewest is None or mine <= fewest
        if listen != self._listening:
            self._listening = listen
            if listen:
                self._selector.register(self.socket, selectors.EVENT_READ, "listen")
            else:
                self._selector.unregister(self.socket)

    def _turn(self, timeout: float) -> None:
        self._balance()
        if self._prepared:  # waiting for the ledger's writer: look again soon
            timeout = min(timeout, _WRITER_RETRY)
        for key, mask in self._selector.select(timeout):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            else:
                conn: _Connection = key.data
                if mask & selectors.EVENT_WRITE:
                    self._flush(conn)
                if mask & selectors.EVENT_READ and not conn.closing:
                    self._receive(conn)
        # Stage one: one request per connection (pipelined ones wait, in order).
        self._pending = False
        taken: list[tuple[_Connection, Request, bool]] = []
        for conn in list(self._connections.values()):
            if conn.closing or conn.busy or not conn.inbox:
                continue
            try:
                found = _parse(conn.inbox)
            except _BadRequestError as bad:
                conn.inbox.clear()
                conn.closing = True
                answer = error_answer(bad.status, "bad_request", bad.message)
                self._send(conn, encode_response(answer, close=True))
                continue
            if found is None:
                continue
            request, keep, used = found
            del conn.inbox[:used]
            taken.append((conn, request, keep))
        if taken:
            prepared_all = self.api.prepare_many([request for _, request, _ in taken])
            for (conn, _, keep), prepared in zip(taken, prepared_all, strict=True):
                if prepared.answer is not None:
                    self._reply(conn, prepared.answer, keep)
                else:
                    conn.busy = True
                    self._prepared.append((conn, prepared, keep))
        # Stage two, once the ledger's writer is free: everything prepared so far.
        if not self._prepared or not self.api.ready_to_write():
            return
        batch, self._prepared = self._prepared, []
        try:
            answers = self.api.finish_many([p for _, p, _ in batch])
        except Exception:  # a transport-level failure: the clients retry
            log.debug("batch dropped", exc_info=True)
            for conn, _, _ in batch:
                self._close(conn)
            return
        for (conn, _, keep), answer in zip(batch, answers, strict=True):
            conn.busy = False
            self._reply(conn, answer, keep)

    def _reply(self, conn: _Connection, answer: Response, keep: bool) -> None:
        conn.closing = not keep
        self._send(conn, encode_response(answer, close=not keep))
        if keep and conn.inbox:
            try:
                self._pending = self._pending or _parse(conn.inbox) is not None
            except _BadRequestError:
                self._pending = True

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: try again on the next turn
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept a connection: %s", exc.strerror)
                    return
                raise
            sock.setblocking(False)
            # Headers and body leave in one write; no Nagle delay on small answers.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            if self._loads is not None:
                return  # one at a time: the next turn balances again

    def _receive(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.inbox += data
        if len(conn.inbox) > MAX_HEAD + MAX_BODY + 4:
            # More than one whole request unanswered: a client that never reads.
            self._close(conn)

    def _send(self, conn: _Connection, data: bytes) -> None:
        conn.outbox += data
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        while conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(conn)
                return
            del conn.outbox[:sent]
        if conn.outbox and not conn.waiting:
            conn.waiting = True
            self._selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        elif not conn.outbox:
            if conn.closing:
                self._close(conn)
            elif conn.waiting:
                conn.waiting = False
                self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0 or self._connections.get(fd) is not conn:
            return
        del self._connections[fd]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()


def make_server(
    api: Api, sock: socket.socket, loads: tuple[WorkerLoads, int] | None = None
) -> HttpServer:
    """An HTTP server answering ``api`` on an already bound, listening ``sock``;
    ``loads`` (the shared table and this worker's index) when several processes
    serve the socket."""
    return HttpServer(api, sock, loads)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(
    open_api: Callable[[], Api],
    host: str,
    port: int,
    *,
    workers: int = 1,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. ``open_api`` runs in each worker (after the fork)."""
    sock = _bind(host, port)
    bound = sock.getsockname()
    children: list[int] = []
    shared = WorkerLoads(workers) if workers > 1 else None
    for index in range(1, max(1, workers)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, _interrupt)
            _run(open_api, sock, (shared, index) if shared is not None else None)
            os._exit(0)
        children.append(pid)
    if ready is not None:
        ready(bound[0], bound[1])
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run(open_api, sock, (shared, 0) if shared is not None else None)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run(
    open_api: Callable[[], Api], sock: socket.socket, loads: tuple[WorkerLoads, int] | None
) -> None:
    api = open_api()
    server = make_server(api, sock, loads)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        api.app.close()
        sys.stderr.flush()
