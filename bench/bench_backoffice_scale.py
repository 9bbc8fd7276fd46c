"""Benchmark: the transit back office past one machine (BENCHMARKS.md, "Transit back
office past one machine").

    .venv/bin/python bench/bench_backoffice_scale.py [--ingest 30000] [--batch 100000]
        [--sizes 100000,1000000] [--riders 5000] [--pg URL] [--nats URL] [--json]
        [--only ingest|aggregate] [--modes sqlite_1,postgres_1,postgres_2]

1. **Ingestion**, every path in the same run, ``--ingest`` taps from three gates (three
   publishing or uploading threads in this process, each from its own journal, no
   fsync: the gates' side is not what is measured) into a fresh database: HTTP upload
   (``backoffice serve``, batches of 500) to SQLite and to PostgreSQL; NATS JetStream
   (``backoffice consume``, fetches of 500) to SQLite, to PostgreSQL with one instance
   and with two. Timed from the first tap sent to the last one committed in the
   database; for JetStream also to the last publish acknowledgement.
2. **Aggregation**, the engine's work with the issuer stubbed (as bench_backoffice.py):
   rounds of ``--batch`` taps (new travel days each round, ``--riders`` cards) are
   written into the database, then aggregated, timed: taps to riders and periods
   (``assign``), then (the deferred authorisations marked approved, untimed) trips,
   caps, closing and completion (``price`` + ``close``). On SQLite with one engine, on
   PostgreSQL with one engine and with two engine processes working at once. Rounds go
   on until the tap table holds each of ``--sizes``; the rate of every round is
   printed, so the curve shows how it holds as the table grows. At each size, the
   store's own ingestion path (``Store.store_taps``, transactions of 500 taps, what a
   consumer commits per fetch) is timed on 20,000 more taps.

NATS and PostgreSQL are the local services (127.0.0.1:4222 without TLS, :5432): the
stream, consumer and bucket names carry a random suffix and are deleted after; the
PostgreSQL tables live in a schema of their own in the database of ``--pg``, dropped
after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql as pg_sql  # noqa: E402

from backoffice.engine import Engine  # noqa: E402
from backoffice.engine.context import PassReport  # noqa: E402
from backoffice.store import TAP_COLUMNS, Home, Store  # noqa: E402
from backoffice.stream import Names, NatsLink, setup  # noqa: E402
from bench.bench_backoffice import StubIssuer, _pan  # noqa: E402
from emvwire.cardref import DEMO_CARD_REFERENCE_KEY, card_reference  # noqa: E402
from emvwire.seal import OVERHEAD as SEAL_OVERHEAD  # noqa: E402
from emvwire.tls import DEV_PLAIN_HTTP  # noqa: E402
from terminal.apps.journal import Journal  # noqa: E402
from terminal.apps.stream import JetStreamLink, TapPublisher  # noqa: E402
from terminal.apps.uploader import BackOfficeClient, Uploader  # noqa: E402

BIN = Path(sys.executable).parent
GATES = ("G1", "G2", "G3")
DAY0 = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday


# --- databases ---------------------------------------------------------------------------


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A URL whose tables live in a new schema of ``url``'s database, dropped after."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pg_sql.SQL("CREATE SCHEMA {}").format(pg_sql.Identifier(name)))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(pg_sql.SQL("DROP SCHEMA {} CASCADE").format(pg_sql.Identifier(name)))


def new_home(folder: Path, db_url: str | None) -> tuple[Home, dict[str, str]]:
    """A fresh home with the three gates; their keys."""
    home = Home(folder / uuid.uuid4().hex[:8], db_url)
    home.init()
    keys = {}
    with Store(home) as store:
        for gate in GATES:
            made, key = store.add_gate(gate, None)
            keys[made] = key
    return home, keys


def home_args(home: Home) -> list[str]:
    return ["--home", str(home.path), *(["--db", home.db_url] if home.db_url else [])]


def count_taps(home: Home) -> int:
    with Store(home) as store:
        return int(store.conn.execute("SELECT COUNT(*) FROM taps").fetchone()[0])


# --- 1. ingestion -----------------------------------------------------------------------------


def tap_objects(n: int) -> dict[str, list[dict[str, Any]]]:
    """``n`` TAP objects over the three gates (flat fare, one travel day)."""
    rng = random.Random(16)
    refs = [card_reference(DEMO_CARD_REFERENCE_KEY, _pan(i), b"\x00") for i in range(5000)]
    icc = os.urandom(140).hex()
    box = os.urandom(19 + SEAL_OVERHEAD).hex()
    taps: dict[str, list[dict[str, Any]]] = {g: [] for g in GATES}
    for i in range(n):
        gate = GATES[i % 3]
        seq = len(taps[gate]) + 1
        when = DAY0 + timedelta(hours=6, milliseconds=i * 50)
        taps[gate].append({
            "tap_id": f"{gate}:{seq}", "gate_id": gate,
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "mode": "transit", "direction": "single", "zone": None,
            "card_reference": rng.choice(refs), "masked_pan": "476173******0000",
            "token": False, "scheme": "visa", "aid": "A0000000031010",
            "outcome": "online_request", "oda": "not_performed", "decision": "open",
            "deny_reason": None, "amount": 100, "currency": "978", "icc_data": icc,
            "track2_sealed": box,
        })  # fmt: skip
    return taps


def journals(folder: Path, taps: dict[str, list[dict[str, Any]]]) -> dict[str, Journal]:
    out = {}
    for gate, mine in taps.items():
        journal = Journal(folder / f"{gate}-{uuid.uuid4().hex[:6]}", durable=False)
        for tap in mine:
            journal.append(tap)
        out[gate] = journal
    return out


def start(cmd: list[str], ready: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if ready not in line:
        proc.kill()
        raise RuntimeError(f"{cmd[3:6]}: {line}{proc.stderr.read()}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe empty
    return proc, line


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)


def wait_stored(home: Home, total: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while count_taps(home) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count_taps(home)} of {total} taps stored")
        time.sleep(0.05)
    return time.perf_counter()


def ingest_http(folder: Path, db_url: str | None, taps: dict[str, list[dict[str, Any]]]) -> (
    dict[str, Any]
):  # fmt: skip
    home, keys = new_home(folder, db_url)
    total = sum(map(len, taps.values()))
    proc, line = start(
        [str(BIN / "backoffice"), *home_args(home), "serve", "--bind", "127.0.0.1:0",
         "--dev-plain-http", "--no-engine"],
        "listening",
    )  # fmt: skip
    url = re.search(r"http://\S+", line)
    assert url is not None
    logs = journals(folder, taps)
    uploaders = [
        Uploader(logs[g], BackOfficeClient(url[0], g, keys[g], tls=DEV_PLAIN_HTTP, timeout=60))
        for g in GATES
    ]
    try:
        t0 = time.perf_counter()
        for uploader in uploaders:
            uploader.start()
        for uploader in uploaders:
            assert uploader.drain(600), uploader.status
        t1 = wait_stored(home, total)
    finally:
        for uploader in uploaders:
            uploader.stop()
            uploader.client.close()
        for journal in logs.values():
            journal.close()
        stop([proc])
    return {"taps": total, "stored_s": round(t1 - t0, 2), "taps_per_s": round(total / (t1 - t0))}


def ingest_nats(
    folder: Path, db_url: str | None, taps: dict[str, list[dict[str, Any]]], nats_url: str,
    instances: int,
) -> dict[str, Any]:  # fmt: skip
    home, _ = new_home(folder, db_url)
    total = sum(map(len, taps.values()))
    operator = f"b{uuid.uuid4().hex[:10]}"
    link = NatsLink(nats_url, Names(operator))
    asyncio.run(setup(link))
    procs = []
    logs = journals(folder, taps)
    publishers = [
        TapPublisher(logs[g], JetStreamLink(nats_url, operator, g), batch=500) for g in GATES
    ]
    try:
        for _ in range(instances):
            procs.append(start(
                [str(BIN / "backoffice"), *home_args(home), "consume", "--nats", nats_url,
                 "--operator", operator, "--dev-plain-http", "--no-engine", "--batch", "500"],
                "consuming",
            )[0])  # fmt: skip
        done: list[float] = []
        t0 = time.perf_counter()
        for publisher in publishers:
            publisher.start()

        def published() -> None:
            for publisher in publishers:
                assert publisher.drain(600), publisher.status
            done.append(time.perf_counter())

        waiter = threading.Thread(target=published)
        waiter.start()
        t1 = wait_stored(home, total)
        waiter.join()
    finally:
        for publisher in publishers:
            publisher.stop()
        for journal in logs.values():
            journal.close()
        stop(procs)
        asyncio.run(remove(nats_url, operator))
    return {
        "taps": total, "instances": instances, "published_s": round(done[0] - t0, 2),
        "stored_s": round(t1 - t0, 2), "taps_per_s": round(total / (t1 - t0)),
    }  # fmt: skip


async def remove(nats_url: str, operator: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    names = Names(operator)
    await js.delete_stream(names.stream)
    await js.delete_key_value(names.bucket)
    await nc.close()


# --- 2. aggregation as the table grows --------------------------------------------------------

_INSERT = (
    f"INSERT INTO taps ({', '.join(TAP_COLUMNS)}) VALUES ({', '.join('?' * len(TAP_COLUMNS))})"
)


def batch_rows(round_no: int, taps: int, riders: int, days: int = 7) -> Iterator[tuple[Any, ...]]:
    """``taps`` open taps of ``riders`` cards over ``days`` new travel days (round
    ``round_no``): 60 % flat fare, 40 % zone trips on and off."""
    rng = random.Random(round_no)
    refs = [card_reference(DEMO_CARD_REFERENCE_KEY, _pan(i), b"\x00") for i in range(riders)]
    icc = os.urandom(140)
    box = os.urandom(19 + SEAL_OVERHEAD)
    per_day = taps // days
    gate = f"R{round_no}"
    made = 0
    for day in range(days):
        start_day = DAY0 + timedelta(days=round_no * days + day)
        day_text = start_day.date().isoformat()
        for _ in range(per_day if day < days - 1 else taps - made):
            made += 1
            t = start_day + timedelta(hours=5, milliseconds=rng.randrange(16 * 3600 * 1000))
            zoned = rng.random() < 0.4
            direction, zone = (rng.choice(("on", "off")), rng.choice("123")) if zoned else (
                "single", None)  # fmt: skip
            yield (
                f"{gate}:{made}", gate, t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                int(t.timestamp() * 1000), day_text, direction, zone, rng.choice(refs),
                "476173******0000", 0, "visa", "A0000000031010", "online_request",
                "not_performed", "open", None, 100, "978", icc, "2026-12-06T00:00:00.000Z", box,
            )  # fmt: skip


def write_batch(store: Store, rows: Iterator[tuple[Any, ...]]) -> None:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == 20_000:
            with store.write() as w:
                w.executemany(_INSERT, chunk)
            chunk = []
    if chunk:
        with store.write() as w:
            w.executemany(_INSERT, chunk)


def approve(store: Store) -> None:
    """The deferred authorisations of the batch, approved (untimed, bench_backoffice.py)."""
    with store.write() as w:
        w.execute(
            "UPDATE aggregations SET auth_state = 'approved', auth_amount = 100, "
            "transaction_id = 'txn_' || aggregation_id WHERE auth_state = 'pending'"
        )


def worker(home: Home, commands: Any, answers: Any) -> None:
    """An engine process: runs the stage it is told, answers with its report."""
    with Store(home) as store:
        engine = Engine.for_home(store, StubIssuer())
        while True:
            command, now = commands.get()
            if command == "stop":
                return
            report = PassReport()
            try:
                if command == "assign":
                    engine.riders.assign(report)
                else:
                    engine.pricing.price(report, now, close_all=False)
                    engine.settlement.close(report, now, close_all=False)
                answers.put(("ok", report.taps, report.trips, report.completed))
            except Exception as exc:  # reported, not hidden
                answers.put(("error", repr(exc), 0, 0))


def ingest_store(store: Store, round_no: int, n: int = 20_000) -> float:
    """Taps per second through ``Store.store_taps`` in transactions of 500."""
    rows = [
        (row[0].replace(":", "i:", 1), *row[1:])  # other ids than the round's
        for row in batch_rows(1000 + round_no, n, 5000, days=1)
    ]
    t0 = time.perf_counter()
    for i in range(0, n, 500):
        store.store_taps(rows[i : i + 500])
    return n / (time.perf_counter() - t0)


def aggregate_growth(
    name: str, home: Home, engines: int, batch: int, riders: int, sizes: list[int],
    say: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    ctx = mp.get_context("spawn")
    commands = [ctx.Queue() for _ in range(engines)]
    answers = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(home, q, answers)) for q in commands]
    for proc in procs:
        proc.start()
    rounds: list[dict[str, Any]] = []
    ingest: dict[int, int] = {}

    def run(command: str, now: datetime) -> float:
        t0 = time.perf_counter()
        for q in commands:
            q.put((command, now))
        for _ in commands:
            status, *rest = answers.get()
            if status != "ok":
                raise RuntimeError(f"{name} {command}: {rest[0]}")
        return time.perf_counter() - t0

    try:
        with Store(home) as store:
            held = 0
            for round_no in range(1, 10_000):
                if held >= max(sizes):
                    break
                write_batch(store, batch_rows(round_no, batch, riders))
                now = DAY0 + timedelta(days=(round_no + 1) * 7 + 1)
                assign_s = run("assign", now)
                approve(store)
                price_s = run("price_close", now)
                held += batch
                row = {
                    "table_taps": held, "assign_s": round(assign_s, 2),
                    "price_close_s": round(price_s, 2),
                    "taps_per_s": round(batch / (assign_s + price_s)),
                }  # fmt: skip
                rounds.append(row)
                say(f"  {name}: {row}")
                for size in sizes:
                    if held == size:
                        ingest[size] = round(ingest_store(store, round_no))
                        say(f"  {name}: store_taps at {size}: {ingest[size]}/s")
    finally:
        for q in commands:
            q.put(("stop", None))
        for proc in procs:
            proc.join(60)
    return {"engines": engines, "rounds": rounds, "store_taps_per_s_at": ingest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ingest", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--riders", type=int, default=5_000)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--only", choices=("ingest", "aggregate"))
    parser.add_argument("--modes", default="sqlite_1,postgres_1,postgres_2",
                        help="the aggregation runs: sqlite_1, postgres_1, postgres_2")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, Any] = {"load_average_before": os.getloadavg()}

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="bench-bo-scale-"))
    try:
        if args.only != "aggregate":
            taps = tap_objects(args.ingest)
            ingest: dict[str, Any] = {}
            ingest["http_sqlite"] = ingest_http(folder, None, taps)
            say(f"http_sqlite {ingest['http_sqlite']}")
            with pg_schema(args.pg) as url:
                ingest["http_postgres"] = ingest_http(folder, url, taps)
            say(f"http_postgres {ingest['http_postgres']}")
            ingest["nats_sqlite_1"] = ingest_nats(folder, None, taps, args.nats, 1)
            say(f"nats_sqlite_1 {ingest['nats_sqlite_1']}")
            for n in (1, 2):
                with pg_schema(args.pg) as url:
                    ingest[f"nats_postgres_{n}"] = ingest_nats(folder, url, taps, args.nats, n)
                say(f"nats_postgres_{n} {ingest[f'nats_postgres_{n}']}")
            result["ingest"] = ingest
        if args.only != "ingest":
            aggregate: dict[str, Any] = {}
            modes = args.modes.split(",")
            if "sqlite_1" in modes:
                home, _ = new_home(folder, None)
                aggregate["sqlite_1"] = aggregate_growth(
                    "sqlite_1", home, 1, args.batch, args.riders, sizes, say
                )
            for n in (1, 2):
                if f"postgres_{n}" not in modes:
                    continue
                with pg_schema(args.pg) as url:
                    home, _ = new_home(folder, url)
                    aggregate[f"postgres_{n}"] = aggregate_growth(
                        f"postgres_{n}", home, n, args.batch, args.riders, sizes, say
                    )
            result["aggregate"] = aggregate
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
