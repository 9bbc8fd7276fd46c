"""Load generator: authorisations per second over ISO 8583 against ``issuer
serve-iso8583``.

    .venv/bin/python bench/load_iso8583.py [--db URL] [--clients 32] [--procs 2]
        [--seconds 20] [--cards 400]

The same issuer, terminals, cards and pre-computed ARQC stream as
``bench/load_issuer.py`` (its :func:`setup`). It starts ``issuer serve-iso8583`` on a
free loopback port and drives it from ``--procs`` processes with ``--clients``
connections in all, each a terminal that signs on (``0800``) and then sends one
``0100`` after another (pre-encoded, with a 2-byte length header) for at most
``--seconds`` (<= 60), from one selectors loop per process. It prints
authorisations/s, p50/p99 latency, the outcomes (field 39 and 44), the ledger check,
the server's and the clients' CPU time per authorisation and the machine's 1-minute
load average before the run. Loopback only. Every request is verified by the service
(ARQC, ATC, funds, hold, durable commit).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_issuer import PASS, setup  # noqa: E402
from emvwire import iso8583  # noqa: E402
from emvwire.iso8583 import Message, Mti, Network  # noqa: E402


def _frames(term: tuple[str, str], stream: list[tuple[str, str]]) -> list[bytes]:
    """The sign-on and the authorisations of one terminal, framed."""
    now = datetime.now(UTC)
    transmitted = now.strftime("%m%d%H%M%S")
    code = iso8583.terminal_code(term[0])
    sign_on = Message(Mti.NETWORK, {
        7: transmitted, 11: "000000", 41: code, 48: f"{term[0]}:{term[1]}",
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


def _drive(args: tuple[str, list[tuple[str, str]], list[list[tuple[str, str]]], float]) -> Any:
    """One loop, one connection per terminal, one request in flight per connection;
    an answer is counted by its fields 39 and 44."""
    url, terms, streams, deadline = args
    host, port = url.removeprefix("iso8583://").split(":")
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    class Conn:
        def __init__(self, term: tuple[str, str], stream: list[tuple[str, str]]) -> None:
            self.sock = socket.create_connection((host, int(port)))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.setblocking(False)
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
    for term, stream in zip(terms, streams, strict=True):
        conn = Conn(term, stream)
        if conn.send():
            sel.register(conn.sock, selectors.EVENT_READ, conn)
            live += 1
    while live:
        for key, _ in sel.select(1.0):
            conn = key.data
            data = conn.sock.recv(65536)
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
    return latencies, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cards", type=int, default=400)
    args = parser.parse_args()
    seconds = min(args.seconds, 60.0)
    schema = None
    if args.db:  # a schema of its own, dropped at the end (libpq search_path option)
        import psycopg

        schema = f"bench_{os.getpid()}"
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in args.db else "?"
        base, args.db = args.db, f"{args.db}{sep}options=-csearch_path%3D{schema}"
    try:
        _bench(args, seconds)
    finally:
        if schema is not None:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _bench(args: argparse.Namespace, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        load = os.getloadavg()[0]  # what else ran on the machine (before this run)
        plan = setup(home, args.db, args.clients, args.cards)
        total = sum(len(s) for s in plan["streams"])
        print(f"setup {time.perf_counter() - t0:.1f} s: {total} requests ready", file=sys.stderr)
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(home), "TAPSTACK_KEYSTORE_KEY": PASS}
        cmd = [str(Path(sys.executable).parent / "issuer"), "serve-iso8583", "--bind",
               "127.0.0.1:0"]  # fmt: skip
        if args.db:
            cmd[1:1] = ["--db", args.db]
        server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stderr is not None
            match = re.search(r"iso8583://[\d.]+:\d+", server.stderr.readline())
            assert match, "the service did not start"
            url = match.group(0)
            time.sleep(0.5)
            procs = max(1, args.procs)
            terms, streams = plan["terminals"], plan["streams"]
            start = time.perf_counter()
            deadline = time.monotonic() + seconds
            jobs = [(url, terms[i::procs], streams[i::procs], deadline) for i in range(procs)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            with multiprocessing.Pool(procs) as pool:
                results = pool.map(_drive, jobs)
                pool.close()
                pool.join()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            elapsed = time.perf_counter() - start
        finally:
            server.terminate()
            _, status, usage = os.wait4(server.pid, 0)
            server.returncode = os.waitstatus_to_exitcode(status)
            if server.stderr is not None:
                server.stderr.close()
        latencies = sorted(x for lat, _ in results for x in lat)
        outcomes: dict[str, int] = {}
        for _, counts in results:
            for k, v in counts.items():
                outcomes[k] = outcomes.get(k, 0) + v
        from issuer.bootstrap import open_issuer

        with open_issuer(home, db_url=args.db) as app:
            problems = [str(p) for p in app.ledger.check()]
        n = len(latencies)
        report = {
            "ledger": "postgresql" if args.db else "sqlite",
            "protocol": "iso8583",
            "clients": args.clients,
            "requests": n,
            "seconds": round(elapsed, 2),
            "per_second": round(n / elapsed, 1),
            "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
            "server_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "server_cpu_ms_per_auth": round((usage.ru_utime + usage.ru_stime) * 1000 / n, 3)
            if n
            else None,
            "client_cpu_ms_per_auth": round(client_cpu * 1000 / n, 3) if n else None,
            "outcomes": outcomes,
            "ledger_consistent": not problems,
            "machine_load_1min_before": round(load, 2),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
