"""Benchmark: back office aggregation of one million taps (goal under 60 s).

    .venv/bin/python bench/bench_backoffice.py [--taps 1000000] [--riders 50000]
                                               [--days 7] [--json]

A fresh back office home in a temporary folder (SQLite, WAL, synchronous=FULL) gets
``--taps`` open taps of ``--riders`` cards over ``--days`` travel days (60 % flat-fare
single taps, 40 % zone trips tapped on and off, a few taps on left without a tap off),
written straight into the database as the gates' uploads would have left them (with
field 55 and a track 2 the size of its sealed box each). Then, timed apart:

1. ``assign``: the engine's first stage over every tap (``Engine.riders``: cards,
   riders, one aggregation per rider and travel day);
2. the day's deferred authorisations are marked approved in one SQL statement (not
   timed: they happen through the day, one per rider and day, as taps arrive; their
   cost per call is measured apart in step 4);
3. ``aggregation``: trips built, fares priced with daily and weekly caps, every period
   closed and completed (``Engine.pricing`` + ``Engine.settlement``). **The issuer calls are
   excluded**: a stub answers each completion at once (one per aggregation); the
   number of calls is reported. Against ``issuer serve`` each is an HTTP round trip
   (about 2,000/s on this machine, BENCHMARKS.md);
4. ``authorise``: 2,000 deferred authorisations with real sealed track 2 (open the
   box, check the card reference, record the answer) against the stub: cost per call.

Printed: seconds per stage, taps per second of the aggregation, peak RSS of the
process (``ru_maxrss``), database size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backoffice.engine import Engine  # noqa: E402
from backoffice.engine.context import PassReport  # noqa: E402
from backoffice.store import TAP_COLUMNS, Home, Store  # noqa: E402
from emvwire.cardref import DEMO_CARD_REFERENCE_KEY, card_reference  # noqa: E402
from emvwire.seal import OVERHEAD as SEAL_OVERHEAD  # noqa: E402
from emvwire.seal import seal  # noqa: E402
from emvwire.tags import Tag  # noqa: E402
from emvwire.tlv import encode  # noqa: E402
from hostlink.client import HostOutcome  # noqa: E402


class StubIssuer:
    """Answers at once: approvals, completions, reversals (the issuer excluded)."""

    def __init__(self) -> None:
        self.calls = 0

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        self.calls += 1
        return HostOutcome(True, "00", None, request_id or "", transaction_id=f"t{self.calls}")

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        self.calls += 1
        return {"id": transaction_id, "status": "closed"}

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        self.calls += 1
        return {"id": transaction_id, "status": "reversed"}

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        self.calls += 1
        return HostOutcome(True, "00", None, request_id or "", transaction_id="r")


def _pan(i: int) -> str:
    body = f"476173{i:09d}"
    digits = [int(d) for d in body]
    total = 0
    for k, d in enumerate(reversed(digits)):
        d = d * 2 if k % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def generate(store: Store, taps: int, riders: int, days: int, seed: int = 6) -> int:
    """Write ``taps`` open taps (module docstring); how many rows were written."""
    rng = random.Random(seed)
    refs = [card_reference(DEMO_CARD_REFERENCE_KEY, _pan(i), b"\x00") for i in range(riders)]
    start = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
    icc = os.urandom(140)
    # A sealed box's size (track 2 of 19 bytes + the HPKE box's 48, emvwire.seal); the
    # engine moves or erases boxes but opens only those it authorises (step 4, apart).
    box = os.urandom(19 + SEAL_OVERHEAD)
    received = "2026-11-24T00:00:00.000Z"
    per_rider_day = taps / (riders * days)  # taps of a rider's day, on average
    rows: list[tuple[Any, ...]] = []
    seq = 0
    written = 0
    sql = (
        f"INSERT INTO taps ({', '.join(TAP_COLUMNS)}) VALUES ({', '.join('?' * len(TAP_COLUMNS))})"
    )
    for day in range(days):
        day_start = start + timedelta(days=day)
        day_text = day_start.date().isoformat()
        for r in range(riders):
            if written + len(rows) >= taps:
                break
            n = int(per_rider_day) + (rng.random() < per_rider_day % 1)
            t = day_start + timedelta(hours=6, minutes=rng.randrange(0, 240))
            k = 0
            while k < n and written + len(rows) < taps:
                seq += 1
                zoned = rng.random() < 0.4 and k + 1 < n
                moves = [("on", "1"), ("off", rng.choice("123"))] if zoned else [("single", None)]
                if zoned and rng.random() < 0.03:
                    moves = moves[:1]  # no tap off: an incomplete trip
                for direction, zone in moves:
                    seq += 1
                    ms = int(t.timestamp() * 1000)
                    rows.append((
                        f"G1:{seq}", "G1", t.strftime("%Y-%m-%dT%H:%M:%S.000Z"), ms, day_text,
                        direction, zone, refs[r], "476173******0000", 0, "visa",
                        "A0000000031010", "online_request", "not_performed", "open", None, 100,
                        "978", icc, received, box,
                    ))  # fmt: skip
                    t += timedelta(minutes=rng.randrange(10, 50))
                    k += 1
                t += timedelta(minutes=rng.randrange(30, 300))
            if len(rows) >= 50_000:
                with store.write() as w:
                    w.executemany(sql, rows)
                written += len(rows)
                rows = []
    if rows:
        with store.write() as w:
            w.executemany(sql, rows)
        written += len(rows)
    return written


def authorise_sample(home: Home, n: int) -> float:
    """Microseconds per deferred authorisation (unseal, check, record) with the stub."""
    with Store(home) as store:
        pub = home.sealing_public_key()
        store.add_gate("sample", None)
        taps = []
        for i in range(n):
            pan = _pan(900_000 + i)
            tap_id = f"G2:{i + 1}"
            text = f"{pan}D28122010000000000"
            taps.append({
                "tap_id": tap_id, "gate_id": "G2", "time": "2026-11-23T08:00:00.000Z",
                "mode": "transit", "direction": "single", "zone": None,
                "card_reference": card_reference(DEMO_CARD_REFERENCE_KEY, pan, b"\x00"),
                "masked_pan": "476173******0000", "token": False, "scheme": "visa",
                "aid": "A0000000031010", "outcome": "online_request", "oda": "not_performed",
                "decision": "open", "deny_reason": None, "amount": 100, "currency": "978",
                "icc_data": encode(Tag.PAN_SEQUENCE_NUMBER, b"\x00").hex(),
                "track2_sealed": seal(pub, bytes.fromhex(text), tap_id.encode()).hex(),
            })  # fmt: skip
        for i in range(0, n, 500):
            store.insert_taps("G2", taps[i : i + 500], home.fares())
        engine = Engine.for_home(store, StubIssuer())
        report = PassReport()
        engine.riders.assign(report)
        t0 = time.perf_counter()
        engine.authorisation.authorise(report)
        elapsed = time.perf_counter() - t0
        assert report.authorised == n, report
        return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--taps", type=int, default=1_000_000)
    parser.add_argument("--riders", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--auth-sample", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backoffice-") as folder:
        home = Home(Path(folder) / "home")
        home.init()
        result: dict[str, Any] = {"taps_requested": args.taps, "riders": args.riders,
                                  "days": args.days}  # fmt: skip
        with Store(home) as store:
            store.add_gate("bench", None)
            t0 = time.perf_counter()
            result["taps"] = generate(store, args.taps, args.riders, args.days)
            result["ingest_s"] = round(time.perf_counter() - t0, 2)
            issuer = StubIssuer()
            engine = Engine.for_home(store, issuer)
            report = PassReport()
            t0 = time.perf_counter()
            engine.riders.assign(report)
            result["assign_s"] = round(time.perf_counter() - t0, 2)
            with store.write() as w:  # the day's deferred authorisations (not timed)
                w.execute(
                    "UPDATE aggregations SET auth_state = 'approved', auth_amount = 100, "
                    "transaction_id = 'txn_' || rowid WHERE auth_state = 'pending'"
                )
            now = datetime(2026, 11, 16, tzinfo=UTC) + timedelta(days=args.days + 1)
            t0 = time.perf_counter()
            engine.pricing.price(report, now, close_all=False)
            result["price_s"] = round(time.perf_counter() - t0, 2)
            t1 = time.perf_counter()
            engine.settlement.close(report, now, close_all=False)
            result["close_s"] = round(time.perf_counter() - t1, 2)
            result["aggregation_s"] = round(time.perf_counter() - t0, 2)
            result["aggregation_taps_per_s"] = round(result["taps"] / result["aggregation_s"])
            result.update(
                trips=report.trips, aggregations=report.closed, completed=report.completed,
                reversed=report.reversed, fares_charged=report.fares_charged,
                issuer_calls_stubbed=issuer.calls, taps_left_waiting=report.taps_waiting,
            )  # fmt: skip
        result["authorise_us_per_call"] = round(authorise_sample(home, args.auth_sample), 1)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        result["db_mb"] = round(sum(f.stat().st_size for f in home.path.iterdir()) / 2**20)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:<26} {value}")


if __name__ == "__main__":
    main()
