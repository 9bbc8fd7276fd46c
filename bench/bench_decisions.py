"""Authorisation throughput with a program's decision endpoint that answers in 50 ms,
against none, in the same run (BENCHMARKS.md "Real-time decisions").

    .venv/bin/python bench/bench_decisions.py [--clients 192] [--procs 2] [--workers 2]
        [--seconds 15] [--rounds 2] [--program-ms 50] [--cards 1000] [--db URL]
        [--dev-plain-http] [--rate R]

Each round runs bench/load_issuer.py's plan twice, one after the other: a fresh issuer
without a decision endpoint, then a fresh one whose endpoint (``issuer decisions
set``'s, deadline 2 s, fallback ``issuer``) is a program in a process of its own on
loopback: asyncio on uvloop with httptools' parser, it checks each request's
signature (HMAC-SHA256 over ``"<t>.<body>"``, written here from the documented scheme),
waits ``--program-ms`` without blocking and approves, signing its answer. The same
terminals (``--clients``, one request in flight each, from ``--procs`` processes),
cards and pre-computed ARQCs; mutual TLS to the issuer unless ``--dev-plain-http``.
Each terminal's first request is answered before the clock starts (load_issuer.py
``--warm``: the service checks a terminal's credential once, about 45 ms of CPU, which
would otherwise fill the first seconds of a run of 192 terminals). ``--rate R`` offers
R authorisations per second in all instead (each terminal paced): below the service's
capacity, both runs should answer R per second, the endpoint's adding its time to
each latency only.

With the endpoint every authorisation is held ``--program-ms`` longer, so one terminal
makes fewer per second; with enough terminals in flight (Little's law: about rate x
(service time + program time)) the service's rate should not drop by more than the
CPU the program's requests cost it. The report gives both rates, latencies, the
server's CPU per authorisation, the program's requests, bad signatures and its own
CPU, and whether every authorisation's program answer was recorded (approve, no
fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_issuer import PASS, bench, own_schema  # noqa: E402


def _serve_program(conn: Connection, delay: float) -> None:
    """The program (module docstring), in its own process: sends its port, takes the
    secret, answers until told to stop, then sends its counts and CPU time."""
    import httptools
    import uvloop

    counts = {"requests": 0, "bad_signatures": 0, "connections": 0}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        secret = b""

        class Program(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                counts["connections"] += 1
                self.transport = transport
                self.parser = httptools.HttpRequestParser(self)
                self.signature = b""
                self.body = bytearray()

            def data_received(self, data: bytes) -> None:
                self.parser.feed_data(data)

            def on_message_begin(self) -> None:
                self.signature, self.body = b"", bytearray()

            def on_header(self, name: bytes, value: bytes) -> None:
                if name.lower() == b"tapstack-signature":
                    self.signature = value

            def on_body(self, body: bytes) -> None:
                self.body += body

            def on_message_complete(self) -> None:
                body = bytes(self.body)
                counts["requests"] += 1
                parts = dict(p.split(b"=", 1) for p in self.signature.split(b",") if b"=" in p)
                expected = hmac.new(
                    secret, parts.get(b"t", b"") + b"." + body, hashlib.sha256
                ).hexdigest()
                if not hmac.compare_digest(expected.encode(), parts.get(b"v1", b"")):
                    counts["bad_signatures"] += 1
                request_id = json.loads(body)["id"]
                loop.call_later(delay, self.answer, request_id)

            def answer(self, request_id: str) -> None:
                if self.transport.is_closing():
                    return
                body = json.dumps({"id": request_id, "approved": True}).encode()
                t = str(int(time.time())).encode()
                mac = hmac.new(secret, t + b"." + body, hashlib.sha256).hexdigest().encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Tapstack-Signature: t=" + t + b",v1=" + mac + b"\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )

        server = await loop.create_server(Program, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        secret = (await loop.run_in_executor(None, conn.recv)).encode()
        await loop.run_in_executor(None, conn.recv)  # stop
        server.close()

    uvloop.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send({**counts, "cpu_s": usage.ru_utime + usage.ru_stime})


def _with_program(delay: float, db: str | None) -> Any:
    """The ``configure`` hook of :func:`bench.load_issuer.bench`: start the program,
    set the issuer's decision endpoint to it."""

    def configure(home: Path) -> Any:
        import os

        from issuer.bootstrap import open_issuer
        from issuer.domain.program import set_endpoint

        ours, theirs = multiprocessing.Pipe()
        process = multiprocessing.Process(target=_serve_program, args=(theirs, delay))
        process.start()
        port = ours.recv()
        os.environ["TAPSTACK_KEYSTORE_KEY"] = PASS
        with open_issuer(home, db_url=db) as app:
            _, secret = set_endpoint(
                app.ledger, app.keys, f"http://127.0.0.1:{port}/decide", deadline_ms=2000
            )
        ours.send(secret)

        def finished(window_start: str) -> dict[str, Any]:
            ours.send("stop")
            counts = ours.recv()
            process.join(10)
            with open_issuer(home, db_url=db) as app:
                recorded = _recorded(app, window_start)
            return {"program": counts, "program_answers": recorded}

        return finished

    return configure


def _recorded(app: Any, since: str) -> dict[str, Any]:
    """The program's answers within the timed window (from ``since``) as the
    authorisations recorded them, by outcome and cause, and the median and 99th
    percentile of the time the issuer waited for them."""
    with app.ledger.unit_of_work(write=False) as uow:
        rows = uow.db.all(
            "SELECT outcome, COALESCE(cause, ''), COUNT(*) FROM authorisation_decisions"
            " WHERE created_at >= ? GROUP BY outcome, cause",
            (since,),
        )
        waits = sorted(int(r[0]) for r in uow.db.all(
            "SELECT latency_ms FROM authorisation_decisions WHERE created_at >= ?", (since,)
        ))  # fmt: skip
    out: dict[str, Any] = {f"{o}{':' + c if c else ''}": int(n) for o, c, n in rows}
    if waits:
        out["wait_p50_ms"] = waits[len(waits) // 2]
        out["wait_p99_ms"] = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=192)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--program-ms", type=float, default=50.0)
    parser.add_argument("--dev-plain-http", action="store_true")
    parser.add_argument(
        "--rate", type=float, default=0.0,
        help="an offered load (authorisations/s in all) instead of as fast as answered",
    )  # fmt: skip
    args = parser.parse_args()
    run = argparse.Namespace(
        db=args.db, workers=args.workers, clients=args.clients, procs=args.procs,
        cards=args.cards, client="raw", handshakes=0, dev_plain_http=args.dev_plain_http,
        warm=True, rate=args.rate,
    )  # fmt: skip
    seconds = min(args.seconds, 60.0)
    rows = []
    for round_ in range(1, args.rounds + 1):
        for mode in ("none", "program"):
            with own_schema(args.db, "bench") as run.db:
                configure = (
                    _with_program(args.program_ms / 1000, run.db) if mode == "program" else None
                )
                report = bench(run, seconds, configure)
            report.update(round=round_, endpoint=mode)
            rows.append(report)
            print(json.dumps(report), file=sys.stderr)
    print("| round | endpoint | auth/s | p50 | p99 | server CPU per auth | outcomes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['round']} | {r['endpoint']} | {r['per_second']:,.0f} | {r['p50_ms']} ms "
            f"| {r['p99_ms']} ms | {r['server_cpu_ms_per_auth_in_run']} ms | {r['outcomes']} |"
        )
    for r in rows:
        if r["endpoint"] == "program":
            p = r["program"]
            cpu = p["cpu_s"] * 1000 / max(1, p["requests"])
            print(
                f"round {r['round']}: program {p['requests']} requests, "
                f"{p['bad_signatures']} bad signatures, {p['connections']} connections, "
                f"{cpu:.3f} ms CPU each; "
                f"recorded {r['program_answers']}; ledger consistent {r['ledger_consistent']}"
            )


if __name__ == "__main__":
    main()
