"""The limits a server holds its clients to, with their HTTP answers
(:mod:`httpserve.protocol` enforces them; the body's is the application's,
:func:`httpserve.asgi.read_body`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a client may do, per connection and per worker process.

    - ``max_head``: request line and headers, bytes (431 beyond);
    - ``head_timeout``: seconds from a head's first byte to its end (408 beyond);
    - ``body_timeout``: seconds from a head's end to its body's end (408 beyond);
    - ``idle_timeout``: seconds a connection may wait with no request under way, before
      its first request and between requests (keep-alive; closed beyond);
    - ``max_connections``: open connections per worker (the longest idle one is closed
      for a newcomer; 503 if none is idle);
    - ``drain_timeout``: on SIGTERM, seconds the requests under way have to finish;
    - ``handshake_timeout``: seconds from a TLS connection's accept to the end of its
      handshake (closed beyond; until then it is no connection of ``max_connections``);
    - ``tls_close_grace``: seconds a TLS connection being closed (idle, refused, at
      shutdown) waits for the peer's close_notify before it is dropped: the closer need
      not wait for it (RFC 8446 §6.1), and a peer that never answers holds a descriptor
      and a draining worker as long as this.
    """

    max_head: int = 16 * 1024
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int = 1000
    drain_timeout: float = 30.0
    handshake_timeout: float = 10.0
    tls_close_grace: float = 1.0
