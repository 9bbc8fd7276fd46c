"""The ISO 8583 listener of the authorisation service: TCP (optionally TLS) with a
2-byte big-endian length header per message, on asyncio streams.

Each connection sends one message after another and gets each answer in turn; many
connections are served at once. Messages that arrive together from different
connections are answered together (:meth:`Iso8583Handler.prepare_many` then
:meth:`Iso8583Handler.finish_many` in one worker thread: the read phases, then the
authorisations' write phases in one group commit), while the event loop goes on
reading. An authorisation the program's decision endpoint is asked about waits for it
in a task of its own on the loop (:meth:`Iso8583Handler.consult`, bounded by the
endpoint's deadline) and is finished with a later batch: the others do not wait.

Limits and broken input (a log line for each; never a value of field 2, 35, 48 or 55):

- no header within ``idle_timeout`` seconds: the connection is closed;
- a message whose announced bytes do not all arrive within ``body_timeout`` seconds,
  a header above :data:`~emvwire.iso8583.MAX_MESSAGE` or below
  :data:`~emvwire.iso8583.MIN_MESSAGE`, or bytes that do not decode: answered with a
  format error (field 39 = 30, the STAN and field 7 echoed when readable) when its
  MTI can be read, and the connection stays open; before the answer, whatever else
  arrives within :data:`QUIET` seconds is dropped (the rest of a frame whose header
  lied), so the next message starts on a header again;
- a header that cannot even hold an MTI (below 4), or an MTI that cannot be read:
  the connection is closed.

With an ``ssl`` context the listener speaks TLS; ``identify`` turns the verified
client certificate (the connection's ``ssl.SSLObject``) into the terminal id it
names, which :class:`~issuer.service.iso8583.Session` then binds without a sign-on
credential. A handshake not done within ``handshake_timeout`` seconds is dropped, and
a closed connection waits :data:`TLS_CLOSE_GRACE` seconds at most for the peer's
close_notify (RFC 8446 §6.1: the closer need not wait for it), not asyncio's 60 s
and 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from emvwire import iso8583
from emvwire.iso8583 import FormatError, Message
from issuer.service.iso8583 import Iso8583Handler, IsoPrepared, Session

__all__ = ["QUIET", "TLS_CLOSE_GRACE", "Iso8583Server", "serve_iso8583"]

log = logging.getLogger("issuer.iso8583")

#: How long input must be quiet before a format error is answered (module docstring).
QUIET: Final = 0.05
#: Seconds a closed TLS connection waits for the peer's close_notify (module docstring).
TLS_CLOSE_GRACE: Final = 1.0
#: At most this much broken input is dropped before a format error is answered.
_DRAIN_MAX: Final = 1 << 16

Identify = Callable[[ssl.SSLObject], str | None]


class Iso8583Server:
    """The listener on a bound, listening ``sock`` (module docstring), with the
    life cycle of :class:`socketserver.BaseServer`: :meth:`serve_forever` in a thread,
    :meth:`shutdown` from another, then :meth:`server_close`."""

    def __init__(
        self,
        handler: Iso8583Handler,
        sock: socket.socket,
        *,
        ssl_context: ssl.SSLContext | None = None,
        identify: Identify | None = None,
        idle_timeout: float = 300.0,
        body_timeout: float = 2.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.handler = handler
        self.socket = sock
        self.server_address = sock.getsockname()
        self.ssl_context = ssl_context
        self.identify = identify
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.handshake_timeout = handshake_timeout
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="iso8583-batch")
        self._queue: list[tuple[Session, Message, asyncio.Future[Message | None]]] = []
        #: Authorisations the program answered (or whose deadline passed), to finish.
        self._consulted: list[tuple[IsoPrepared, asyncio.Future[Message | None]]] = []
        self._consulting: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- life cycle --------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Answer until :meth:`shutdown` (``poll_interval`` is not needed: the stop is
        an event of the loop)."""
        try:
            asyncio.run(self._main())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread) and wait for it."""
        self._started.wait(10)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(stop.set)
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and the worker thread."""
        self.socket.close()
        self._executor.shutdown(wait=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        tls = self.ssl_context is not None
        server = await asyncio.start_server(
            self._connection, sock=self.socket, ssl=self.ssl_context, limit=1 << 17,
            ssl_handshake_timeout=self.handshake_timeout if tls else None,
            ssl_shutdown_timeout=TLS_CLOSE_GRACE if tls else None,
        )  # fmt: skip
        batcher = asyncio.create_task(self._batches())
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batcher
            for task in list(self._consulting):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    # -- batches -----------------------------------------------------------------------

    async def _answer(self, session: Session, message: Message) -> Message | None:
        """The answer to ``message``, decided in the next batch."""
        assert self._loop is not None
        assert self._wake is not None
        future: asyncio.Future[Message | None] = self._loop.create_future()
        self._queue.append((session, message, future))
        self._wake.set()
        return await future

    async def _batches(self) -> None:
        """Answer what the connections queued, one batch at a time in the worker
        thread; what arrives meanwhile waits for the next batch. An authorisation to
        ask the program about leaves the batch for its own task and comes back to a
        later one (module docstring)."""
        assert self._loop is not None
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            fresh, self._queue = self._queue, []
            ready, self._consulted = self._consulted, []
            if fresh:
                items = [(session, message) for session, message, _ in fresh]
                try:
                    prepared = await self._loop.run_in_executor(
                        self._executor, self.handler.prepare_many, items
                    )
                except Exception as exc:  # the ledger is down: every message of the batch
                    log.error("a batch failed", exc_info=exc)
                    prepared = [
                        IsoPrepared(s, m, answered=True, answer=_system_error(m)) for s, m in items
                    ]
                for item, (_, _, future) in zip(prepared, fresh, strict=True):
                    if item.proposal is not None:
                        task = self._loop.create_task(self._consult(item, future))
                        self._consulting.add(task)
                        task.add_done_callback(self._consulting.discard)
                    else:
                        ready.append((item, future))
            if not ready:
                continue
            try:
                answers = await self._loop.run_in_executor(
                    self._executor, self.handler.finish_many, [item for item, _ in ready]
                )
            except Exception as exc:  # the ledger is down: every message of the batch
                log.error("a batch failed", exc_info=exc)
                answers = [_system_error(item.message) for item, _ in ready]
            for (_, future), answer in zip(ready, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    async def _consult(self, item: IsoPrepared, future: asyncio.Future[Message | None]) -> None:
        """Ask the program about one authorisation, then hand it to the next batch."""
        assert self._wake is not None
        try:
            await self.handler.consult(item)
        finally:
            self._consulted.append((item, future))
            self._wake.set()

    # -- one connection ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        session = Session(peer=peer, certified=self._certified(writer))
        self._writers.add(writer)
        try:
            while await self._exchange(session, reader, writer):
                pass
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", peer, type(exc).__name__)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _certified(self, writer: asyncio.StreamWriter) -> str | None:
        ssl_object = writer.get_extra_info("ssl_object")
        if self.identify is None or ssl_object is None:
            return None
        return self.identify(ssl_object)

    async def _exchange(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read one message and answer it; whether the connection stays open."""
        peer = session.peer
        try:
            async with asyncio.timeout(self.idle_timeout):
                header = await reader.readexactly(iso8583.HEADER_SIZE)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                log.warning("%s: closed inside a length header", peer)
            return False
        except TimeoutError:
            log.info("%s: idle for %.0f s: closed", peer, self.idle_timeout)
            return False
        length = int.from_bytes(header, "big")
        if length < 4:
            log.warning("%s: a length header of %d cannot hold a message: closed", peer, length)
            return False
        body, complete = await self._body(reader, length)
        problem = ""
        if length > iso8583.MAX_MESSAGE:
            problem = f"a length header of {length} is above {iso8583.MAX_MESSAGE}"
        elif not complete:
            problem = f"{len(body)} of the {length} bytes its header announced arrived"
        elif length < iso8583.MIN_MESSAGE:
            problem = f"a length header of {length} cannot hold an MTI and a bitmap"
        if problem:
            broken = FormatError(
                problem, mti=iso8583.readable_mti(body), echo=iso8583.salvage(body)
            )
            return await self._format_error(reader, writer, peer, broken)
        try:
            message = iso8583.decode(body)
        except FormatError as exc:
            return await self._format_error(reader, writer, peer, exc)
        answer = await self._answer(session, message)
        if answer is not None:
            await self._send(writer, answer)
        return True

    async def _body(self, reader: asyncio.StreamReader, length: int) -> tuple[bytes, bool]:
        """Up to ``length`` bytes, as many as arrive within ``body_timeout``; whether
        all did. Above :data:`~emvwire.iso8583.MAX_MESSAGE` only the first bytes are
        kept (the rest is read and dropped)."""
        if length <= iso8583.MAX_MESSAGE:
            try:
                async with asyncio.timeout(self.body_timeout):
                    return await reader.readexactly(length), True
            except asyncio.IncompleteReadError as exc:  # closed before the end
                return exc.partial, False
            except TimeoutError:  # what arrived is still in the reader's buffer
                try:
                    async with asyncio.timeout(QUIET):
                        return await reader.read(length), False
                except TimeoutError:
                    return b"", False
        assert self._loop is not None
        kept = bytearray()
        got = 0
        deadline = self._loop.time() + self.body_timeout
        while got < length:
            left = deadline - self._loop.time()
            if left <= 0:
                break
            try:
                part = await asyncio.wait_for(reader.read(min(length - got, 1 << 16)), left)
            except TimeoutError:
                break
            if not part:
                break
            got += len(part)
            if len(kept) < iso8583.MAX_MESSAGE:
                kept += part[: iso8583.MAX_MESSAGE - len(kept)]
        return bytes(kept), got == length

    async def _format_error(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        exc: FormatError,
    ) -> bool:
        """Answer a broken message with 39 = 30 when its MTI can be read and has an
        answer (else close); drop what else arrives until input is quiet."""
        answer_mti = iso8583.response_mti(exc.mti) if exc.mti else None
        if answer_mti is None:
            log.warning("%s: unreadable message (%s): closed", peer, exc)
            return False
        log.warning("%s: format error in %s: %s", peer, exc.mti, exc)
        dropped = 0
        while dropped < _DRAIN_MAX:
            try:
                part = await asyncio.wait_for(reader.read(1 << 16), QUIET)
            except TimeoutError:
                break
            if not part:
                break
            dropped += len(part)
        answer = Message(answer_mti, dict(exc.echo))
        answer.fields[39] = iso8583.FORMAT_ERROR
        answer.fields[44] = "format_error"
        await self._send(writer, answer)
        return True

    async def _send(self, writer: asyncio.StreamWriter, answer: Message) -> None:
        writer.write(iso8583.frame(iso8583.encode_message(answer)))
        async with asyncio.timeout(self.idle_timeout):
            await writer.drain()


def _system_error(message: Message) -> Message | None:
    if iso8583.response_mti(message.mti) is None:
        return None
    answer = iso8583.answer_to(message, iso8583.SYSTEM_ERROR)
    answer.fields[44] = "internal"
    return answer


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "?")


def serve_iso8583(
    handler: Iso8583Handler,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    identify: Identify | None = None,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve on ``host:port`` until SIGINT or SIGTERM; :class:`httpserve.ListenError`
    (one line) when the address cannot be listened on."""
    from httpserve.server import listen

    server = Iso8583Server(handler, listen(host, port), ssl_context=ssl_context, identify=identify)
    bound = server.server_address
    thread = threading.Thread(target=server.serve_forever, name="iso8583", daemon=True)
    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, interrupt)
    thread.start()
    if ready is not None:
        ready(bound[0], bound[1])
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
        thread.join(10)
