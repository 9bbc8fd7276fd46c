"""Authorisations per second as the ledger grows (BENCHMARKS.md "Issuer ledger growth").

    .venv/bin/python bench/bench_ledger_growth.py [--db URL] [--sizes 100000,1000000]
        [--seconds 20] [--workers 2] [--clients 32] [--procs 2] [--cards 800]

For each size N of ``--sizes``: a fresh issuer as bench/load_issuer.py makes it (its
terminals, cards and pre-computed ARQCs), whose ledger is then filled with N past
authorisations by set-based SQL (:func:`prefill`, timed), then the same load run as
load_issuer.py's (``issuer serve`` over mutual TLS, the raw client, each terminal's
first request answered before the clock starts) against that ledger. One JSON report
per size: the prefill's time and the database's size, then load_issuer.py's report
(authorisations/s, p50/p99, the server's CPU per authorisation, the ledger check).

What one past authorisation is (the rows an approved tap writes, then those of its
hold released, so that :meth:`~issuer.ledger.repository.Ledger.check` holds): an
``authorisations`` record (approved, status ``expired``, its hold released, its stored
answer), its ``hold`` and ``release`` journals with two ``held`` entries each, and its
``authorisation.approved`` event (dispatched). They are spread over 90 days before
now, 100 per card (one card per account: N / 100 cards and accounts, with
``atc_state`` rows) and over 1,000 terminals. The simplification: no capture journals
(clearing would add a journal and four posted entries per capture) and no declines;
the indexes an authorisation writes are all there and as large as N of them make them.
On PostgreSQL the prefill runs without foreign key checks (``session_replication_role
= replica``: a superuser's setting; the rows are consistent by construction) and ends
with ``VACUUM ANALYZE`` of the tables it filled and a ``CHECKPOINT``; on SQLite with a
page cache of 2 GiB and ``synchronous = OFF`` (a prefill cut short is thrown away),
then ``ANALYZE`` and a checkpoint of its WAL. Both end with ``sync``: the load run does
not share the disk with the prefill's writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_issuer import bench, own_schema  # noqa: E402

#: Past authorisations per card (and per account).
PER_CARD = 100
#: Terminals the past authorisations are spread over.
TERMINALS = 1000
#: Past authorisations inserted per transaction.
CHUNK = 500_000
#: Days before now the past authorisations are spread over.
DAYS = 90

#: The stored answer and the event's data of a past authorisation: as long as the real
#: ones (``{n}``: its number).
_RESPONSE = (
    '{{"id":"txn_0{n}","approved":true,"response_code":"00","amount":100,'
    '"currency":"EUR","status":"pending","reason":null,"arpc":"13205974",'
    '"issuer_authentication_data":"1320597400800000","card":"476173******0000",'
    '"par":"V001G4HJEL9U8MPBYVDBM9AY47GF0","original_id":null,"replayed":false,'
    '"approved_amount":100,"control":null}}'
)
_EVENT = (
    '{{"object":{{"id":"txn_0{n}","kind":"authorisation","channel":"contactless",'
    '"terminal":"term_0000000000000","request_id":"req_0{n}","card":"card_00000000000",'
    '"token":null,"account":"acct_00000000000","parent":null,"amount":100,'
    '"currency":"EUR","mcc":"4111","approved":true,"decline_reason":null,'
    '"response_code":"00","status":"pending","atc":1,"held_amount":100,'
    '"captured_amount":0,"released_amount":0,"created_at":"2026-09-01T00:00:00.000000Z",'
    '"updated_at":"2026-09-01T00:00:00.000000Z","expires_at":"2026-09-08T00:00:00.000000Z"}}}}'
)


#: The tables the prefill writes.
_TABLES = ("terminals", "accounts", "cards", "atc_state", "authorisations", "journals",
           "entries", "events")  # fmt: skip


class Dialect:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def series(self, start: int, stop: int) -> str:
        """A row source ``s(i)`` of the integers ``start`` to ``stop - 1``."""
        if self.postgres:
            return f"generate_series({start}, {stop - 1}) AS s(i)"
        return (
            f"(WITH RECURSIVE r(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM r"
            f" WHERE i < {stop - 1}) SELECT i FROM r) AS s"
        )

    def pad(self, expr: str, width: int = 12) -> str:
        """``expr`` as ``width`` decimal digits."""
        if self.postgres:
            return f"lpad(({expr})::text, {width}, '0')"
        return f"printf('%0{width}d', {expr})"

    def hexbytes(self, expr: str) -> str:
        """32 hex digits that differ with ``expr``."""
        if self.postgres:
            return f"md5(({expr})::text)"
        return "lower(hex(randomblob(16)))"

    def blob(self, expr: str) -> str:
        """16 bytes that differ with ``expr`` (unique for unique ``expr``)."""
        if self.postgres:
            return f"decode(md5(({expr})::text), 'hex')"
        return f"CAST(printf('%016d', {expr}) AS BLOB)"

    def time(self, expr: str, start: datetime, step: float) -> str:
        """The ISO time ``start + expr * step`` seconds, as the ledger writes times."""
        base = start.strftime("%Y-%m-%d %H:%M:%S")
        if self.postgres:
            return (
                f"to_char(timestamp '{base}' + ({expr}) * interval '{step:.6f} seconds',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
            )
        offset = f"'+' || (({expr}) * {step:.6f}) || ' seconds'"
        return f"strftime('%Y-%m-%dT%H:%M:%fZ', '{base}', {offset})"

    def text(self, template: str, n: str) -> str:
        """``template`` with ``{n}`` filled by the SQL expression ``n``."""
        parts = template.format(n="\x00").split("\x00")
        return f" || {n} || ".join(f"'{part}'" for part in parts)


def _statements(d: Dialect, start: int, stop: int, total: int, bin_prefix: str) -> list[str]:
    """The inserts of past authorisations ``start`` to ``stop - 1`` (of ``total``) and
    of their cards and accounts (module docstring)."""
    t0 = datetime.now(UTC) - timedelta(days=DAYS)
    step = DAYS * 86400 / max(total, 1)
    when = d.time("i", t0, step)
    card = d.pad(f"i / {PER_CARD}", 11)
    txn = d.pad("i")
    first, last = start // PER_CARD, (stop - 1) // PER_CARD + 1
    cards = d.series(first, last)
    day0 = t0.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return [
        "INSERT INTO accounts (id, holder, kind, currency, status, created_at)"
        f" SELECT 'acct_0' || {d.pad('i', 11)}, 'Past holder ' || i, 'debit', 'EUR', 'open',"
        f" '{day0}' FROM {cards}",
        "INSERT INTO cards (id, account_id, scheme, bin, pan_masked, pan_last4, pan_hash,"
        " pan_sealed, psn, expiry, cvn, par, status, origin, created_at)"
        f" SELECT 'card_0' || {d.pad('i', 11)}, 'acct_0' || {d.pad('i', 11)}, 'visa',"
        f" '{bin_prefix}', '{bin_prefix}******' || {d.pad('i % 10000', 4)},"
        f" {d.pad('i % 10000', 4)}, {d.blob('i')}, {d.blob('-1 - i')}, '00', '2030-12-31',"
        f" 18, 'V001PAST' || {d.pad('i', 21)}, 'active', 'provisioned', '{day0}'"
        f" FROM {cards}",
        "INSERT INTO atc_state (instrument_id, highest_atc, updated_at)"
        f" SELECT 'card_0' || {d.pad('i', 11)}, {PER_CARD}, '{day0}' FROM {cards}",
        "INSERT INTO authorisations (id, kind, terminal_id, request_id, request_hash, card_id,"
        " account_id, amount, currency, mcc, approved, response_code, status, atc,"
        " held_amount, released_amount, response, created_at, updated_at, expires_at)"
        f" SELECT 'txn_0' || {txn}, 'authorisation', 'term_0' || {d.pad(f'i % {TERMINALS}')},"
        f" 'req_0' || {txn}, {d.hexbytes('i')} || {d.hexbytes('-i')}, 'card_0' || {card},"
        f" 'acct_0' || {card}, 100 + i % 5000, 'EUR', '4111', 1, '00', 'expired',"
        f" i % {PER_CARD} + 1, 100 + i % 5000, 100 + i % 5000, {d.text(_RESPONSE, txn)},"
        f" {when}, {when}, {when} FROM {d.series(start, stop)}",
        "INSERT INTO journals (id, kind, transaction_id, memo, created_at)"
        f" SELECT 'jrn_0' || {txn} || k.kind, k.kind, 'txn_0' || {txn}, '', {when}"
        f" FROM {d.series(start, stop)}"
        " CROSS JOIN (SELECT 'hold' AS kind UNION ALL SELECT 'release') AS k",
        "INSERT INTO entries (journal_id, account_id, book, amount)"
        f" SELECT 'jrn_0' || {txn} || e.kind, CASE WHEN e.mine = 1 THEN 'acct_0' || {card}"
        " ELSE 'sys_holds' END, 'held', e.sign * (100 + i % 5000)"
        f" FROM {d.series(start, stop)} CROSS JOIN (SELECT 'hold' AS kind, 1 AS mine,"
        " 1 AS sign UNION ALL SELECT 'hold', 0, -1 UNION ALL SELECT 'release', 1, -1"
        " UNION ALL SELECT 'release', 0, 1) AS e",
        "INSERT INTO events (id, type, object_type, object_id, object_seq, terminal_id, data,"
        " created_at, dispatched)"
        f" SELECT 'evt_0' || {txn}, 'authorisation.approved', 'authorisation',"
        f" 'txn_0' || {txn}, 1, 'term_0' || {d.pad(f'i % {TERMINALS}')},"
        f" {d.text(_EVENT, txn)}, {when}, 1 FROM {d.series(start, stop)}",
    ]


def prefill(home: Path, db: str | None, total: int) -> dict[str, Any]:
    """``total`` past authorisations (module docstring) in the ledger of ``home`` (or of
    the PostgreSQL ``db``), :data:`CHUNK` per transaction, then the planner's
    statistics: the seconds it took and the database's size."""
    start = time.perf_counter()
    d = Dialect(db is not None)
    conn: Any
    if db is not None:
        import psycopg

        conn = psycopg.connect(db)
        # The rows are consistent by construction: no per-row foreign key checks (the
        # triggers PostgreSQL checks them with), no waiting for each commit's flush.
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
    else:
        conn = sqlite3.connect(home / "issuer.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        # A page cache that holds the indexes being filled (2 GiB), no fsync per chunk.
        conn.execute("PRAGMA cache_size = -2000000")
        conn.execute("PRAGMA synchronous = OFF")
    try:
        (bin_prefix,) = conn.execute(
            "SELECT prefix FROM bin_ranges WHERE scheme = 'visa' AND kind = 'card'"
            " ORDER BY prefix LIMIT 1"
        ).fetchone()
        if not d.postgres:
            conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO terminals (id, merchant, mcc, country, credential_hash, status,"
            f" created_at) SELECT 'term_0' || {d.pad('i')}, 'Past shop ' || i, '4111',"
            f" 'FR', 'none', 'active', '2026-01-01T00:00:00.000000Z'"
            f" FROM {d.series(0, TERMINALS)}"
        )
        conn.execute("COMMIT") if not d.postgres else conn.commit()
        for low in range(0, total, CHUNK):
            high = min(total, low + CHUNK)
            if not d.postgres:
                conn.execute("BEGIN")
            for statement in _statements(d, low, high, total, bin_prefix):
                conn.execute(statement)
            conn.execute("COMMIT") if not d.postgres else conn.commit()
            print(
                f"prefill {high:,} of {total:,}: {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )
        if d.postgres:
            conn.autocommit = True
            for table in _TABLES:
                conn.execute(f"VACUUM ANALYZE {table}")
            conn.execute("CHECKPOINT")
            (size,) = conn.execute(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            ).fetchone()
        else:
            conn.execute("ANALYZE")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = (home / "issuer.db").stat().st_size
    finally:
        conn.close()
    os.sync()  # the run starts with nothing of the prefill left to write
    return {
        "past_authorisations": total,
        "prefill_seconds": round(time.perf_counter() - start, 1),
        "database_mb": round(int(size) / 2**20),
    }


def _configure(args: argparse.Namespace, total: int) -> Callable[[Path], Any]:
    """load_issuer.py's hook: fills the ledger before the service starts."""

    def configure(home: Path) -> Callable[[str], dict[str, Any]]:
        filled = prefill(home, args.db, total)
        return lambda _window_start: filled

    return configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument(
        "--sizes",
        default="100000,1000000,10000000",
        help="past authorisations of each run, comma-separated (a fresh ledger each)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="each run's length (<= 60)")
    parser.add_argument("--workers", type=int, default=2, help="issuer serve --workers")
    parser.add_argument("--clients", type=int, default=32, help="terminals, one request each")
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--cards",
        type=int,
        default=800,
        help="cards of the load, 45 requests each (800: 20 s at 1,800/s)",
    )
    args = parser.parse_args()
    args.client, args.handshakes, args.dev_plain_http, args.warm = "raw", 0, False, True
    url = args.db
    for total in (int(s) for s in args.sizes.split(",")):
        with own_schema(url, "growth") as args.db:
            report = bench(args, min(args.seconds, 60.0), configure=_configure(args, total))
        print(json.dumps(report, indent=2), flush=True)
        os.sync()


if __name__ == "__main__":
    main()
