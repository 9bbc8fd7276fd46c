"""Load generator: authorisations per second over HTTPS against ``issuer serve``.

    .venv/bin/python bench/load_issuer.py [--db URL] [--workers 2] [--clients 32]
        [--procs 2] [--seconds 20] [--cards 400] [--client raw|host|iso8583]
        [--handshakes 200] [--dev-plain-http] [--webhook] [--instances 1]

Makes a fresh issuer in a temporary home (file key store, the default ranges, its TLS
folder), opens accounts with ample money, ``--clients`` terminals each with its TLS
client certificate, and ``--cards`` Visa CVN 18 cards, and pre-computes a stream of
ARQCs (ATC 1, 2, ... per card) as field 55 blobs, so that the generator spends no time
on cryptography. Then it starts ``issuer serve --workers N`` on a free loopback port
(``--instances M``: M separate ``issuer serve`` processes, each on a port of its own,
on the same database; load process i drives instance i mod M, and there are at least M),
with mutual TLS as deployed (``--dev-plain-http``: plain HTTP), and drives it from
``--procs`` processes with ``--clients`` keep-alive connections in all, each a
terminal presenting its certificate and sending one request after another, for at
most ``--seconds`` (bounded: <= 60; with ``--warm``, from when every terminal has had
its first request answered: the service checks a terminal's credential once, at
about 45 ms of CPU; ``--rate R``: each terminal sends its next request no sooner than
its share of R per second, an offered load rather than as fast as answers come).
``--client host`` drives it with the terminal's
:class:`~hostlink.HostClient` (a thread per terminal, http.client, JSON both ways:
about as much CPU per request as the service itself); ``--client raw`` (default) with
pre-encoded HTTP/1.1 requests on keep-alive sockets from one selectors loop per
process, which leaves the shared cores to the service; ``--client iso8583`` drives
``issuer serve-iso8583`` instead (bench/load_iso8583.py).

It prints authorisations/s, p50/p99 latency, errors, the ledger check and the server's
CPU time per authorisation (its processes' user + system time: less noisy than the
rate on a shared machine) and the machine's 1-minute load average before the run (what
else was running); on PostgreSQL also the CPU time of the server backends that
served the issuer's connections while the load ran (found by their application name in
``pg_stat_activity``, read from /proc: PostgreSQL on this machine). Over HTTPS it
first measures what a new connection costs
(:func:`handshake_cost`): ``--handshakes`` requests each on a new connection (TCP,
the mutual TLS handshake, ``GET /health``) against as many on one keep-alive
connection. Loopback only. Every authorisation is verified by the service (ARQC, ATC,
funds, hold, durable commit).

``--webhook``: one webhook endpoint subscribed to every event, on a receiver started in
this process (plain HTTP on loopback), which the service's events worker delivers to
while the load runs; the report adds how many events there were, how many the receiver
had at the end of the load and how long the rest took to arrive
(bench/bench_events.py compares runs with and without).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import multiprocessing
import os
import re
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emvwire.crypto.cryptogram import CryptogramData, generate_arqc  # noqa: E402
from emvwire.tls import DEV_PLAIN_HTTP, SERVER_CA, ClientTls  # noqa: E402
from emvwire.tlv import encode  # noqa: E402
from hostlink import HostClient  # noqa: E402
from issuer.bootstrap import init_issuer  # noqa: E402
from issuer.keys.base import MasterKeyRef  # noqa: E402
from issuer.pki import TLS_DIR, add_terminal, tls_folder  # noqa: E402

PASS = "bench passphrase"
PER_CARD = 45  # under the service's velocity rule (50 per 10 minutes)
_SCHEMAS = itertools.count()
_SECURE = ("https", "iso8583s")


@dataclass(frozen=True)
class Terminal:
    """A terminal of the plan: its id and key, its certificate and key files."""

    id: str
    key: str
    cert: str
    cert_key: str


@dataclass(frozen=True)
class Job:
    """One load process's share: the server's URL and CA, its terminals and their
    request streams, and how long to run."""

    url: str
    terms: list[Terminal]
    streams: list[list[tuple[str, str]]]
    seconds: float
    server_ca: str | None = None
    #: ``--warm``: every terminal's first request answered before the clock starts
    #: (the service verifies a terminal's credential once, about 45 ms of CPU), then
    #: every load process waits for the others and the caller at this barrier.
    warm: Any = None
    #: ``--rate``: seconds from one request of a terminal to its next (0: at once).
    pace: float = 0.0

    def tls(self, term: Terminal) -> ClientTls:
        """The terminal's side of mutual TLS, or plain HTTP for an ``http://`` URL."""
        if not self.url.startswith(_SECURE):
            return DEV_PLAIN_HTTP
        return ClientTls(self.server_ca, term.cert, term.cert_key)

    def connect(self, term: Terminal) -> socket.socket:
        """A non-blocking connection of ``term`` to the server, its TLS handshake done."""
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 443
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme in _SECURE:
            sock = self.tls(term).context().wrap_socket(sock, server_hostname=host)
        sock.setblocking(False)
        return sock


def receive(sock: socket.socket) -> bytes | None:
    """What arrived on a non-blocking socket that select found readable: ``b""`` at
    its end, ``None`` when only part of a TLS record did."""
    try:
        data = sock.recv(65536)
    except ssl.SSLWantReadError:
        return None
    if isinstance(sock, ssl.SSLSocket):
        while data and sock.pending():
            data += sock.recv(sock.pending())
    return data


def _blob(mk: bytes, atc: int, amount: int) -> bytes:
    values = {
        0x9F02: amount.to_bytes(6, "big").hex().zfill(12),
        0x9F03: "000000000000",
        0x9F1A: "0250",
        0x95: "0000000000",
        0x5F2A: "0978",
        0x9A: date.today().strftime("%y%m%d"),
        0x9C: "00",
        0x9F37: os.urandom(4).hex(),
        0x82: "2000",
        0x9F36: f"{atc:04x}",
        0x9F10: "06011203a00000",
    }
    raw = {t: bytes.fromhex(v) for t, v in values.items()}
    raw[0x9F02] = bytes.fromhex(f"{amount:012d}")
    data = CryptogramData(
        tag_9f02=raw[0x9F02], tag_9f03=raw[0x9F03], tag_9f1a=raw[0x9F1A], tag_95=raw[0x95],
        tag_5f2a=raw[0x5F2A], tag_9a=raw[0x9A], tag_9c=raw[0x9C], tag_9f37=raw[0x9F37],
        tag_82=raw[0x82], tag_9f36=raw[0x9F36], tag_9f10=raw[0x9F10],
    )  # fmt: skip
    arqc = generate_arqc(18, mk, data)
    out = encode(0x9F26, arqc) + encode(0x9F27, b"\x80")
    out += b"".join(encode(t, v) for t, v in raw.items())
    return out + encode(0x9F34, bytes.fromhex("1F0002"))


def _track2(pan: str, expiry: date) -> bytes:
    text = f"{pan}D{expiry:%y%m}2010000000000"
    return bytes.fromhex(text + ("F" if len(text) % 2 else ""))


def setup(home: Path, db: str | None, clients: int, cards: int) -> dict[str, Any]:
    """The issuer, its terminals (each with its client certificate, under
    ``home/terminals``), the server's CA file and the request streams."""
    os.environ["TAPSTACK_KEYSTORE_KEY"] = PASS
    app = init_issuer(home, db_url=db, kdf_cost=10)
    s = app.service
    folder = tls_folder(home, app.keys)
    terminals: list[Terminal] = []
    for i in range(clients):
        made, key, issued = add_terminal(s, folder, f"Shop {i}", "5411")
        files = issued.write(home / "terminals", made.id)
        terminals.append(Terminal(made.id, key, files["cert_file"], files["key_file"]))
    streams: list[list[tuple[str, str]]] = [[] for _ in range(clients)]
    n = 0
    for i in range(cards):
        if i % 50 == 0:
            account = s.create_account(f"Holder {i}")
            s.credit_account(account.id, 10**12)
        issued = s.issue_card(account.id, "visa")
        card = issued.card
        ref = MasterKeyRef("visa", card.bin, card.cvn, "ac")
        mk = app.keys.derive_icc_mk(ref, issued.pan, card.psn)
        track2 = _track2(issued.pan, card.expiry).hex()
        for atc in range(1, PER_CARD + 1):
            streams[i % clients].append((_blob(mk, atc, 100 + atc).hex(), track2))
            n += 1
    app.close()
    return {
        "terminals": terminals,
        "streams": streams,
        "server_ca": str(home / TLS_DIR / SERVER_CA),
    }


def _drive(job: Job) -> Any:
    start = time.perf_counter()
    deadline = time.monotonic() + job.seconds
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def run(term: Terminal, stream: list[tuple[str, str]]) -> None:
        mine: list[float] = []
        counts: dict[str, int] = {}
        with HostClient(job.url, term.id, term.key, tls=job.tls(term), timeout=10,
                        retries=3) as host:  # fmt: skip
            for icc, track2 in stream:
                if time.monotonic() > deadline:
                    break
                start = time.perf_counter()
                try:
                    out = host.authorise(bytes.fromhex(icc), bytes.fromhex(track2))
                    key = "approved" if out.approved else f"declined:{out.reason}"
                except Exception as exc:
                    key = f"error:{type(exc).__name__}"
                mine.append(time.perf_counter() - start)
                counts[key] = counts.get(key, 0) + 1
        with lock:
            latencies.extend(mine)
            for k, v in counts.items():
                outcomes[k] = outcomes.get(k, 0) + v

    threads = [
        threading.Thread(target=run, args=(t, s))
        for t, s in zip(job.terms, job.streams, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, outcomes, time.perf_counter() - start


def _drive_raw(job: Job) -> Any:
    """The raw client: one loop, one keep-alive socket per terminal (over TLS with its
    certificate for an ``https://`` URL), one request in flight per socket; an answer
    is counted by its status and ``approved`` field. The run lasts ``seconds`` from
    when every request is encoded and every socket open; (latencies, outcomes, the
    run's duration)."""
    host = urlsplit(job.url).hostname
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    class Conn:
        def __init__(self, term: Terminal, stream: list[tuple[str, str]]) -> None:
            self.sock = job.connect(term)
            auth = f"Authorization: Bearer {term.id}:{term.key}\r\n"
            self.requests = []
            for n, (icc, track2) in enumerate(stream):
                body = f'{{"icc_data":"{icc}","track2":"{track2}"}}'.encode()
                head = (
                    f"POST /v1/authorisations HTTP/1.1\r\nHost: {host}\r\n{auth}"
                    f"Idempotency-Key: {term.id}-{n}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                self.requests.append(head.encode() + body)
            self.next = 0
            self.inbox = b""
            self.start = 0.0

        def send(self) -> bool:
            if self.next >= len(self.requests) or time.monotonic() > deadline:
                return False
            self.start = time.perf_counter()
            self.sock.sendall(self.requests[self.next])
            self.next += 1
            return True

        def answer(self) -> bytes | None:
            end = self.inbox.find(b"\r\n\r\n")
            if end < 0:
                return None
            head = self.inbox[:end]
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.inbox) < end + 4 + length:
                return None
            body = self.inbox[end + 4 : end + 4 + length]
            self.inbox = self.inbox[end + 4 + length :]
            status = head[9:12]
            if status != b"200":
                return b"error:" + status
            if b'"approved":true' in body:
                return b"approved"
            reason = body.split(b'"reason":"')[1].split(b'"')[0] if b'"reason":"' in body else b""
            return b"declined:" + reason

    live = 0
    conns = [Conn(term, stream) for term, stream in zip(job.terms, job.streams, strict=True)]
    if job.warm is not None:
        deadline = time.monotonic() + 600
        for conn in conns:
            conn.send()
        waiting = {conn.sock: conn for conn in conns}
        for conn in conns:
            sel.register(conn.sock, selectors.EVENT_READ, conn)
        while waiting:
            for key, _ in sel.select(1.0):
                conn = key.data
                data = receive(conn.sock)
                if data:
                    conn.inbox += data
                    if conn.answer() is not None:
                        sel.unregister(conn.sock)
                        del waiting[conn.sock]
        job.warm.wait()
    start = time.perf_counter()
    deadline = time.monotonic() + job.seconds
    due: list[tuple[float, int, Any]] = []  # paced: (when, tie, conn) of the next sends
    for n, conn in enumerate(conns):
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        live += 1
        if job.pace:
            heapq.heappush(due, (start + job.pace * n / len(conns), n, conn))
        elif not conn.send():
            sel.unregister(conn.sock)
            live -= 1
    while live:
        now = time.perf_counter()
        while due and due[0][0] <= now:
            conn = heapq.heappop(due)[2]
            if not conn.send():
                sel.unregister(conn.sock)
                conn.sock.close()
                live -= 1
        wait = max(0.0, due[0][0] - now) if due else 1.0
        for key, _ in sel.select(wait):
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
            latencies.append(time.perf_counter() - conn.start)
            name = got.decode()
            outcomes[name] = outcomes.get(name, 0) + 1
            if job.pace and conn.start + job.pace > time.perf_counter():
                heapq.heappush(due, (conn.start + job.pace, id(conn), conn))
            elif not conn.send():
                sel.unregister(conn.sock)
                conn.sock.close()
                live -= 1
    return latencies, outcomes, time.perf_counter() - start


def main(client: str = "raw") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cards", type=int, default=400)
    parser.add_argument("--client", choices=["raw", "host", "iso8583"], default=client)
    parser.add_argument(
        "--handshakes",
        type=int,
        default=200,
        help="new connections timed before the run (HTTPS; 0: none)",
    )
    parser.add_argument(
        "--dev-plain-http",
        action="store_true",
        help="serve and drive plain HTTP / ISO 8583 without TLS",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="one webhook endpoint (every event) delivered to a receiver in this process",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="raw client: each terminal's first request answered before the clock starts",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="separate issuer serve processes on the same database (the load spread)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="raw client: offer this many authorisations/s in all (each terminal paced; "
        "0: each sends its next at once)",
    )
    args = parser.parse_args()
    seconds = min(args.seconds, 60.0)
    with own_schema(args.db, "bench") as args.db:
        print(json.dumps(bench(args, seconds), indent=2))


@contextlib.contextmanager
def own_schema(url: str | None, prefix: str) -> Iterator[str | None]:
    """``url`` on a PostgreSQL schema of its own (libpq's search_path option), dropped
    at the end; ``None`` (SQLite) stays ``None``."""
    if not url:
        yield None
        return
    import psycopg

    schema = f"{prefix}_{os.getpid()}_{next(_SCHEMAS)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _cpu_ticks(pid: int) -> int:
    """User + system clock ticks of process ``pid`` and its children (the workers)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5))
    return total


def _backend_ticks(db: str, application: str) -> dict[int, int]:
    """Clock ticks (user + system) of each PostgreSQL backend whose connection has
    ``application`` as its application name (PostgreSQL on this machine: /proc)."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
            )
        ]
    out: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])
    return out


def handshake_cost(job: Job, server_pid: int, count: int) -> dict[str, Any]:
    """What a new connection costs: ``count`` ``GET /health`` requests each on a new
    connection (TCP connect, the mutual TLS handshake, the request) against ``count``
    on one keep-alive connection, one at a time; their medians and the server's CPU
    time per request of each (its processes' ticks from /proc)."""
    host = urlsplit(job.url).hostname or "127.0.0.1"
    term = job.terms[0]
    context = job.tls(term).context()
    request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    port = urlsplit(job.url).port or 443

    def ask(conn: ssl.SSLSocket) -> None:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            answer += chunk

    def timed(new: bool) -> tuple[list[float], float]:
        times: list[float] = []
        ticks = _cpu_ticks(server_pid)
        kept = None if new else context.wrap_socket(
            socket.create_connection((host, port)), server_hostname=host
        )  # fmt: skip
        try:
            for _ in range(count):
                start = time.perf_counter()
                if kept is None:
                    with context.wrap_socket(
                        socket.create_connection((host, port)), server_hostname=host
                    ) as conn:
                        ask(conn)
                else:
                    ask(kept)
                times.append(time.perf_counter() - start)
        finally:
            if kept is not None:
                kept.close()
        cpu = (_cpu_ticks(server_pid) - ticks) / os.sysconf("SC_CLK_TCK")
        return sorted(times), cpu * 1000 / count

    new, new_cpu = timed(True)
    kept, kept_cpu = timed(False)
    return {
        "requests": count,
        "new_connection_p50_ms": round(new[count // 2] * 1000, 2),
        "new_connection_p99_ms": round(new[min(count - 1, int(count * 0.99))] * 1000, 2),
        "keep_alive_p50_ms": round(kept[count // 2] * 1000, 2),
        "server_cpu_ms_new_connection": round(new_cpu, 2),
        "server_cpu_ms_keep_alive": round(kept_cpu, 2),
    }


def _webhook_receiver(home: Path, db: str | None) -> Any:
    """A receiver on loopback (tests/support/webhooks.py) and an endpoint of the issuer
    subscribed to every event, delivered to over plain HTTP."""
    from issuer.bootstrap import open_issuer
    from issuer.domain.webhooks import Webhooks
    from tests.support.webhooks import Receiver

    receiver = Receiver().start()
    with open_issuer(home, db_url=db) as app:
        Webhooks(app.ledger, app.keys).add(receiver.url, ["*"], dev_plain_http=True)
    return receiver


def _drain(receiver: Any, home: Path, db: str | None, limit: float = 30.0) -> dict[str, Any]:
    """What the receiver had when the load ended, and how long the rest of the events
    took to arrive (at most ``limit`` seconds)."""
    from issuer.bootstrap import open_issuer
    from issuer.ledger.sql import SqlUnitOfWork

    at_end = len(receiver.ids())
    start = time.perf_counter()
    with open_issuer(home, db_url=db) as app:
        with app.ledger.unit_of_work(write=False) as uow:
            assert isinstance(uow, SqlUnitOfWork)
            row = uow.db.one("SELECT COUNT(*) FROM events")
        events = int(row[0]) if row else 0
    while len(set(receiver.ids())) < events and time.perf_counter() - start < limit:
        time.sleep(0.05)
    received = receiver.ids()
    receiver.stop()
    return {
        "events": events,
        "delivered_at_end_of_load": at_end,
        "delivered": len(set(received)),
        "duplicates": len(received) - len(set(received)),
        "drain_seconds": round(time.perf_counter() - start, 2),
    }


def _driver(client: str) -> Any:
    """The load generator of ``--client``."""
    if client == "iso8583":
        from bench.load_iso8583 import drive

        return drive
    return _drive_raw if client == "raw" else _drive


#: What a run may set up beside the issuer once its home is made (the program's decision
#: endpoint: bench/bench_decisions.py): called with the home before the service
#: starts, it answers what to call once the run is over (with the UTC time the timed
#: window started, as records carry it), whose dict joins the report.
Configure = Callable[[Path], Callable[[str], dict[str, Any]]]


def bench(
    args: argparse.Namespace, seconds: float, configure: Configure | None = None
) -> dict[str, Any]:
    """One run (module docstring): its report."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        load = os.getloadavg()[0]  # what else ran on the machine (before this run)
        plan = setup(home, args.db, args.clients, args.cards)
        total = sum(len(s) for s in plan["streams"])
        print(f"setup {time.perf_counter() - t0:.1f} s: {total} requests ready", file=sys.stderr)
        receiver = _webhook_receiver(home, args.db) if getattr(args, "webhook", False) else None
        finished = configure(home) if configure is not None else None
        # libpq takes the application name from PGAPPNAME: the backends of the
        # service's connections are found by it.
        application = f"tapstack-bench-{os.getpid()}"
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(home), "TAPSTACK_KEYSTORE_KEY": PASS,
               "PGAPPNAME": application}  # fmt: skip
        iso = args.client == "iso8583"
        serve = ["serve-iso8583"] if iso else ["serve", "--workers", str(args.workers)]
        cmd = [str(Path(sys.executable).parent / "issuer"), *serve, "--bind", "127.0.0.1:0"]
        if args.dev_plain_http:
            cmd.append("--dev-plain-http")
        if args.db:
            cmd[1:1] = ["--db", args.db]
        instances = max(1, getattr(args, "instances", 1))
        servers: list[subprocess.Popen[str]] = []
        handshake: dict[str, Any] | None = None
        usage_total = [0.0, 0.0]  # user, system seconds of every instance
        try:
            urls = []
            for _ in range(instances):
                server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
                servers.append(server)
                assert server.stderr is not None
                line = server.stderr.readline()
                match = re.search(r"(https?|iso8583s?)://[\d.]+:\d+", line)
                assert match, f"the service did not start: {line}"
                urls.append(match.group(0))
            url = urls[0]
            server = servers[0]
            time.sleep(0.5)
            procs = max(1, args.procs, instances)
            terms, streams = plan["terminals"], plan["streams"]
            if url.startswith("https") and args.handshakes > 0:
                handshake = handshake_cost(
                    Job(url, terms[:1], [], 0, plan["server_ca"]), server.pid, args.handshakes
                )
            warm = None
            if getattr(args, "warm", False):
                manager = multiprocessing.Manager()
                warm = manager.Barrier(procs + 1)
            rate = getattr(args, "rate", 0.0)
            pace = len(terms) / rate if rate else 0.0
            jobs = [
                Job(urls[i % instances], terms[i::procs], streams[i::procs], seconds,
                    plan["server_ca"], warm, pace)
                for i in range(procs)
            ]  # fmt: skip
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            with multiprocessing.Pool(procs) as pool:
                running = pool.map_async(_driver(args.client), jobs)
                if warm is not None:
                    warm.wait()  # every terminal answered once: the window starts
                window_start = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                ticks = sum(_cpu_ticks(one.pid) for one in servers)
                backends = _backend_ticks(args.db, application) if args.db else {}
                results = running.get()
                ended = sum(_cpu_ticks(one.pid) for one in servers)
                window_cpu = (ended - ticks) / os.sysconf("SC_CLK_TCK")
                backend_cpu = None
                if args.db:
                    after_ticks = _backend_ticks(args.db, application)
                    backend_cpu = sum(
                        t - backends.get(pid, 0) for pid, t in after_ticks.items()
                    ) / os.sysconf("SC_CLK_TCK")
                pool.close()
                pool.join()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            elapsed = max(took for _, _, took in results)
            webhook = _drain(receiver, home, args.db) if receiver is not None else None
        finally:
            for one in servers:
                one.terminate()
            for one in servers:
                # wait4: the server's CPU time, its worker processes' included.
                _, status, usage = os.wait4(one.pid, 0)
                one.returncode = os.waitstatus_to_exitcode(status)
                usage_total[0] += usage.ru_utime
                usage_total[1] += usage.ru_stime
                if one.stderr is not None:
                    one.stderr.close()
            extra = finished(window_start) if finished is not None else {}
        latencies = sorted(x for lat, _, _ in results for x in lat)
        outcomes: dict[str, int] = {}
        for _, counts, _ in results:
            for k, v in counts.items():
                outcomes[k] = outcomes.get(k, 0) + v
        from issuer.bootstrap import open_issuer

        with open_issuer(home, db_url=args.db) as app:
            problems = [str(p) for p in app.ledger.check()]
        n = len(latencies)
        report = {
            "ledger": "postgresql" if args.db else "sqlite",
            "transport": urlsplit(url).scheme,
            "workers": 1 if iso else args.workers,
            "clients": args.clients,
            "client": args.client,
            "requests": n,
            "seconds": round(elapsed, 2),
            "per_second": round(n / elapsed, 1),
            "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
            "instances": instances,
            "server_cpu_s": round(sum(usage_total), 2),
            "server_user_s": round(usage_total[0], 2),
            "server_cpu_ms_per_auth": round(sum(usage_total) * 1000 / n, 3) if n else None,
            "client_cpu_ms_per_auth": round(client_cpu * 1000 / n, 3) if n else None,
            # The server's CPU while the load ran (its processes' ticks from /proc):
            # with --warm, without the first request of each terminal.
            "server_cpu_ms_per_auth_in_run": round(window_cpu * 1000 / n, 3) if n else None,
            # PostgreSQL's backends of the service's connections, while the load ran
            # (a connection opened and closed within the run is not counted).
            "postgres_backend_cpu_ms_per_auth_in_run": round(backend_cpu * 1000 / n, 3)
            if n and backend_cpu is not None
            else None,
            "outcomes": outcomes,
            "ledger_consistent": not problems,
            "new_connection": handshake,
            "webhook": webhook,
            "machine_load_1min_before": round(load, 2),
            **extra,
        }
        return report


if __name__ == "__main__":
    main()
