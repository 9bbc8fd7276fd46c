"""Benchmark: the back office console's pages on a big store (BENCHMARKS.md, "Back office
console").

    .venv/bin/python bench/bench_console_backoffice.py [--trips 100000] [--runs 31]
        [--db postgresql://...] [--json]

A fresh home is filled the way bench_backoffice_scale.py fills it (rounds of 50,000
open taps of 5,000 cards over seven new travel days, 60 % flat fare and 40 % zone
taps; the engine's stages run in this process with the issuer stubbed) until it holds
``--trips`` trips, with a few deny-list entries and one operator (on PostgreSQL then
``VACUUM ANALYZE``, what autovacuum does after a bulk load: the planner's statistics
and the visibility map that lets an index be read alone). Then ``backoffice
console`` serves it (a process of its own, HTTPS with the home's server certificate)
and one client signs in, then asks for each page ``--runs`` times over its kept-alive
TLS connection (two unmeasured requests first); printed are the median and quartiles
of the time from sending the request to the last byte of the answer, and the first
request of the overview after signing in on its own. ``--db`` puts the data on
PostgreSQL (a schema of its own, dropped after) instead of the home's SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backoffice.engine import Engine  # noqa: E402
from backoffice.engine.context import PassReport  # noqa: E402
from backoffice.operators import Operators  # noqa: E402
from backoffice.store import Home, Store  # noqa: E402
from bench.bench_backoffice import StubIssuer  # noqa: E402
from bench.bench_backoffice_scale import DAY0, approve, batch_rows, pg_schema, write_batch  # noqa: E402
from emvwire.tls import SERVER_CA  # noqa: E402
from tests.backoffice.consoles import serve_console  # noqa: E402
from tests.support.console import HttpsConsole  # noqa: E402

PAGES = ("/", "/riders", "/trips", "/aggregations", "/debts", "/deny-list", "/audit")
BATCH = 50_000
RIDERS = 5_000


def fill(home: Home, trips: int, say: Any) -> dict[str, int]:
    """Rounds of taps through the engine until the store holds ``trips`` trips."""
    with Store(home) as store:
        engine = Engine.for_home(store, StubIssuer())
        held = 0
        round_no = 0
        while held < trips:
            round_no += 1
            write_batch(store, batch_rows(round_no, BATCH, RIDERS))
            now = DAY0 + timedelta(days=(round_no + 1) * 7 + 1)
            report = PassReport()
            engine.riders.assign(report)
            approve(store)
            engine.pricing.price(report, now, close_all=False)
            engine.settlement.close(report, now, close_all=False)
            held = int(store.conn.execute("SELECT COUNT(*) FROM trips").fetchone()[0])
            say(f"  round {round_no}: {held} trips")
        refs = [r[0] for r in store.conn.execute("SELECT card_reference FROM cards LIMIT 20")]
        with store.write() as w:
            store.deny_add(w, refs, reason="INSUFFICIENT_FUNDS", rider_id=None,
                           aggregation_id=None)  # fmt: skip
        if store.dialect == "postgresql":  # what autovacuum does after a bulk load
            store.conn.execute("VACUUM ANALYZE")
        counts = {
            name: int(store.conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
            for name in ("taps", "trips", "riders", "aggregations", "deny_list")
        }
    return counts


def timed(browser: HttpsConsole, path: str) -> float:
    """Milliseconds from sending a GET to the last byte of its answer (status 200)."""
    t0 = time.perf_counter()
    answer = browser.request("GET", path)
    elapsed = (time.perf_counter() - t0) * 1000
    if answer.status != 200:
        raise RuntimeError(f"GET {path}: {answer.status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trips", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--db", help="a PostgreSQL URL (a schema of its own is made)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db_url = stack.enter_context(pg_schema(args.db)) if args.db else None
        home = Home(folder / "backoffice", db_url)
        home.init()
        t0 = time.perf_counter()
        counts = fill(home, args.trips, say)
        say(f"filled in {time.perf_counter() - t0:.0f} s: {counts}")
        with Store(home) as store:
            operator, credential = Operators(store).add("bench", ["operations"])
        url = stack.enter_context(serve_console(home))
        browser = HttpsConsole(url, home.tls.file(SERVER_CA))
        stack.callback(browser.close)
        if browser.sign_in(operator.id, credential).status != 303:
            raise RuntimeError("sign-in refused")
        first = timed(browser, "/")
        results: dict[str, Any] = {}
        for path in PAGES:
            for _ in range(2):
                timed(browser, path)
            times = sorted(timed(browser, path) for _ in range(args.runs))
            q1, median, q3 = statistics.quantiles(times, n=4)
            results[path] = {"median_ms": round(median, 1), "q1_ms": round(q1, 1),
                             "q3_ms": round(q3, 1)}  # fmt: skip
        out = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "database": "postgresql" if db_url else "sqlite",
            "store": counts,
            "first_overview_after_sign_in_ms": round(first, 1),
            "pages": results,
            "runs": args.runs,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['machine']}; {out['database']}; store {counts}")
    print(f"first overview after signing in: {out['first_overview_after_sign_in_ms']} ms")
    for path, r in results.items():
        print(f"  GET {path:<14} median {r['median_ms']:7.1f} ms  (quartiles {r['q1_ms']}-"
              f"{r['q3_ms']})")  # fmt: skip
    print(f"load average {out['load_average']}")


if __name__ == "__main__":
    main()
