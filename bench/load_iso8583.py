"""Load generator: authorisations per second over ISO 8583 against ``issuer
serve-iso8583``.

    .venv/bin/python bench/load_iso8583.py [--db URL] [--clients 32] [--procs 2]
        [--seconds 20] [--cards 400] [--dev-plain-http]

``bench/load_issuer.py --client iso8583``: the same issuer, terminals, cards,
pre-computed ARQC stream and report, against ``issuer serve-iso8583`` on a free
loopback port, over mutual TLS (``iso8583s://``, each terminal with its certificate)
unless ``--dev-plain-http``. Its generator (:func:`drive`): ``--procs`` processes with
``--clients`` connections in all, each a terminal that signs on (``0800``) and then
sends one ``0100`` after another (pre-encoded, with a 2-byte length header), from one
selectors loop per process; an answer is counted by its fields 39 and 44. Loopback
only.
"""

from __future__ import annotations

import selectors
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_issuer import Job, Terminal, main, receive  # noqa: E402
from emvwire import iso8583  # noqa: E402
from emvwire.iso8583 import Message, Mti, Network  # noqa: E402


def _frames(term: Terminal, stream: list[tuple[str, str]]) -> list[bytes]:
    """The sign-on and the authorisations of one terminal, framed."""
    now = datetime.now(UTC)
    transmitted = now.strftime("%m%d%H%M%S")
    code = iso8583.terminal_code(term.id)
    sign_on = Message(Mti.NETWORK, {
        7: transmitted, 11: "000000", 41: code, 48: f"{term.id}:{term.key}",
        70: Network.SIGN_ON,
    })  # fmt: skip
    out = [iso8583.frame(iso8583.encode_message(sign_on))]
    for n, (icc, track2) in enumerate(stream, start=1):
        message = iso8583.authorisation_message(
            bytes.fromhex(icc), bytes.fromhex(track2), mti=Mti.AUTHORISATION,
            stan=f"{n:06d}", transmitted=transmitted, terminal=code, local=now,
        )  # fmt: skip
        out.append(iso8583.frame(iso8583.encode_message(message)))
    return out


def drive(job: Job) -> Any:
    """One loop, one connection per terminal (over TLS with its certificate for an
    ``iso8583s://`` URL), one request in flight per connection; an answer is counted by
    its fields 39 and 44. The run lasts ``seconds`` from when every message is encoded
    and every connection open; (latencies, outcomes, the run's duration)."""
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    class Conn:
        def __init__(self, term: Terminal, stream: list[tuple[str, str]]) -> None:
            self.sock = job.connect(term)
            self.frames = _frames(term, stream)
            self.next = 0
            self.inbox = b""
            self.start = 0.0

        def send(self) -> bool:
            if self.next >= len(self.frames) or (self.next and time.monotonic() > deadline):
                return False
            self.start = time.perf_counter()
            self.sock.sendall(self.frames[self.next])
            self.next += 1
            return True

        def answer(self) -> Message | None:
            if len(self.inbox) < 2:
                return None
            size = int.from_bytes(self.inbox[:2], "big")
            if len(self.inbox) < 2 + size:
                return None
            body, self.inbox = self.inbox[2 : 2 + size], self.inbox[2 + size :]
            return iso8583.decode(body)

    live = 0
    conns = [Conn(term, stream) for term, stream in zip(job.terms, job.streams, strict=True)]
    start = time.perf_counter()
    deadline = time.monotonic() + job.seconds
    for conn in conns:
        if conn.send():
            sel.register(conn.sock, selectors.EVENT_READ, conn)
            live += 1
    while live:
        for key, _ in sel.select(1.0):
            conn = key.data
            data = receive(conn.sock)
            if data is None:
                continue
            if not data:
                outcomes["error:closed"] = outcomes.get("error:closed", 0) + 1
                sel.unregister(conn.sock)
                live -= 1
                continue
            conn.inbox += data
            got = conn.answer()
            if got is None:
                continue
            if got.mti == Mti.AUTHORISATION_RESPONSE:
                latencies.append(time.perf_counter() - conn.start)
                name = "approved" if got.text(39) == "00" else f"{got.text(39)}:{got.text(44)}"
                outcomes[name] = outcomes.get(name, 0) + 1
            elif got.text(39) != "00":
                outcomes["error:sign-on"] = outcomes.get("error:sign-on", 0) + 1
            if not conn.send():
                sel.unregister(conn.sock)
                conn.sock.close()
                live -= 1
    return latencies, outcomes, time.perf_counter() - start


if __name__ == "__main__":
    main("iso8583")
