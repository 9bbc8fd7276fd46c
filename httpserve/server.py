"""Serving an ASGI application with uvicorn (httptools, uvloop) from one or more
processes, with the limits of :class:`~httpserve.limits.Limits`, and their life.

:func:`serve` binds the address (one line if it cannot: :class:`ListenError`), forks
``workers - 1`` processes after binding, and runs one uvicorn server with
:class:`~httpserve.protocol.Protocol` in every process, the first included, on the
one listening socket. ``open_app`` runs in each process after the fork (each opens
its own key store and database connections); the application's ``close()``, if it
has one, runs when its server has stopped.

Process life:

- **SIGTERM or SIGINT** (any process): stop accepting, close idle connections, let
  the requests under way finish and answer (at most ``drain_timeout`` seconds), then
  close the application and exit. The first process, on its way out, sends SIGTERM to
  the others and waits for them.
- **The first process dies** (even by SIGKILL): every other notices within half a
  second (its parent is gone), drains as on SIGTERM and exits, so that the port is
  free again and a new start does not fail.
- **SIGHUP** to the first process: ``reload()`` runs in it and in every other (it
  passes the signal on), e.g. to take up a renewed server certificate in the TLS
  context: handshakes from then on present it, open connections keep theirs.

Over TLS the event loop (:class:`TlsLoop`, uvloop's) times out a handshake after the
limits' ``handshake_timeout`` and waits ``tls_close_grace`` for a closing peer's
close_notify: uvicorn leaves both at the loop's defaults (60 s and 30 s), which let
sockets that never finish a handshake, or never answer a close, pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import resource
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, Final, cast

import uvicorn
import uvloop

from httpserve.asgi import ASGIApp
from httpserve.errors import ListenError
from httpserve.limits import Limits
from httpserve.protocol import LimitedConfig, Protocol

__all__ = ["Server", "TlsLoop", "listen", "make_server", "parse_bind", "serve"]

#: Descriptors a worker keeps for itself (database, key store, logs) beyond its
#: connections.
_RESERVED_FDS: Final = 64
#: How often (event-loop ticks of 0.1 s) a worker looks whether its parent is alive.
_PARENT_TICKS: Final = 5
#: How long the first process waits for the others to exit after SIGTERM.
_CHILD_GRACE: Final = 60.0
_DEFAULTS: Final = Limits()


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as (host, port); :class:`ValueError`
    unless the host is there and the port is ASCII digits up to 65535 (a digit such as
    ``²`` that ``str.isdigit`` accepts and ``int`` refuses is refused here)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def listen(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free one);
    :class:`ListenError` with one line saying why not (RFC 9293 §3.5: the address in
    use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = (
                "the address is in use (another server listens on it): stop that server, "
                "or choose another port (0: any free one)"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "the address is not one of this machine's: choose one of its addresses"
        elif exc.errno == errno.EACCES:
            why = "permission denied: a port below 1024 needs privileges, choose a higher one"
        else:
            why = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {host}:{port}: {why}", exc.errno) from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise ListenError(
            f"cannot listen on {host}:{port}: {exc}; give an address of this machine"
        ) from None
    return sock


def _raise_fd_limit(limits: Limits) -> Limits:
    """Raise this process's open-file limit to its hard limit, and keep
    ``max_connections`` below it (a worker never fails to accept)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    room = max(1, soft - _RESERVED_FDS)
    if limits.max_connections <= room:
        return limits
    return dataclasses.replace(limits, max_connections=room)


class TlsLoop(uvloop.Loop):
    """uvloop's event loop whose TLS servers end a handshake after
    ``handshake_timeout`` seconds and wait ``close_grace`` seconds for a closing peer's
    close_notify (module docstring); :class:`Server` sets both from its limits."""

    handshake_timeout: float = _DEFAULTS.handshake_timeout
    close_grace: float = _DEFAULTS.tls_close_grace

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout)
            kwargs.setdefault("ssl_shutdown_timeout", self.close_grace)
        return await super().create_server(*args, **kwargs)


class Server(uvicorn.Server):
    """uvicorn's server that also stops when the process that started it is gone
    (``parent``: its pid; ``None``: not watched), and gives its :class:`TlsLoop` the
    TLS time-outs of its limits before it listens."""

    def __init__(self, config: uvicorn.Config, parent: int | None = None) -> None:
        super().__init__(config)
        self.parent = parent

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        limits = cast(LimitedConfig, self.config).limits
        if isinstance(loop, TlsLoop):
            loop.handshake_timeout = limits.handshake_timeout
            loop.close_grace = limits.tls_close_grace
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        if self.parent is not None and counter % _PARENT_TICKS == 0 and os.getppid() != self.parent:
            self.should_exit = True
        return await super().on_tick(counter)


def make_server(
    app: ASGIApp,
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    *,
    parent: int | None = None,
) -> Server:
    """A uvicorn server of ``app`` with :class:`~httpserve.protocol.Protocol` and
    ``limits``; ``server.run(sockets=[sock])`` serves a listening socket until
    ``server.should_exit`` (SIGTERM and SIGINT set it in the main thread)."""
    return Server(_config(app, limits or Limits(), ssl_context), parent)


def _config(app: ASGIApp, limits: Limits, context: ssl.SSLContext | None) -> LimitedConfig:
    config = LimitedConfig(
        app,
        limits,
        http=Protocol,
        ws="none",
        lifespan="off",
        loop="httpserve.server:TlsLoop",  # uvicorn's custom loop factory
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(limits.drain_timeout)),
    )
    config.load()
    config.ssl = context
    return config


def _run(
    open_app: Callable[[], ASGIApp],
    sock: socket.socket,
    limits: Limits,
    context: ssl.SSLContext | None,
    parent: int | None,
) -> None:
    """One process's server until it is told to stop (module docstring)."""
    app = open_app()
    try:
        if not _STOP:
            make_server(app, limits, context, parent=parent).run(sockets=[sock])
    finally:
        close = getattr(app, "close", None)
        if callable(close):
            close()


#: SIGTERM or SIGINT received outside uvicorn's own handlers (while the application
#: opens, or raised again by uvicorn once it has drained).
_STOP: list[int] = []


def _note(signum: int, frame: Any) -> None:
    """The handler outside uvicorn's: note the signal; the caller has its own clean-up
    to do, and a worker told to stop while its application opened does not serve."""
    _STOP.append(signum)


def serve(
    open_app: Callable[[], ASGIApp],
    host: str,
    port: int,
    *,
    workers: int = 1,
    ssl_context: ssl.SSLContext | None = None,
    limits: Limits | None = None,
    ready: Callable[[str, int], None] | None = None,
    reload: Callable[[], None] | None = None,
) -> None:
    """Serve ``open_app()``'s application on ``host``:``port`` until SIGTERM or SIGINT
    (module docstring); ``ssl_context``: a server-side TLS context (``None``: plain
    HTTP); ``ready(host, port)`` once listening; ``reload()`` on SIGHUP in every
    process. :class:`ListenError` if the address cannot be had."""
    limits = _raise_fd_limit(limits or Limits())
    sock = listen(host, port)
    bound = sock.getsockname()
    first = os.getpid()
    children: list[int] = []
    _STOP.clear()
    previous = {sig: signal.signal(sig, _note) for sig in (signal.SIGTERM, signal.SIGINT)}

    def hang_up(signum: int, frame: Any) -> None:
        try:
            if reload is not None:
                reload()
        except Exception as exc:  # a bad new certificate: the old one stays in use
            print(f"reload refused: {exc}", file=sys.stderr)
        if os.getpid() == first:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)

    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hang_up)
    try:
        for _ in range(max(1, workers) - 1):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _run(open_app, sock, limits, ssl_context, first)
                except Exception as exc:  # one line, as the first process would say it
                    print(f"worker {os.getpid()} stopped: {exc}", file=sys.stderr)
                    code = 1
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            children.append(pid)
        if ready is not None:
            ready(bound[0], bound[1])
        _run(open_app, sock, limits, ssl_context, None)
    finally:
        sock.close()
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(children: list[int]) -> None:
    """SIGTERM to each child, then wait for them (SIGKILL after :data:`_CHILD_GRACE`)."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _CHILD_GRACE
    waiting = set(children)
    while waiting:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                waiting.discard(pid)
        if waiting and time.monotonic() > deadline:
            for pid in waiting:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        if waiting:
            time.sleep(0.05)
