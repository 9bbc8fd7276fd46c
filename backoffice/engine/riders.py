"""Stage 1 of a pass: new open taps to cards, riders and aggregations; and what joins
riders (one payment account reference) and puts a rider's cards on the deny list."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from backoffice.engine.context import PassReport, Stage
from backoffice.store import Store, now_text

__all__ = ["Riders", "deny_rider", "join_par"]

#: Taps assigned per transaction (bounded memory on a million taps).
_ASSIGN_CHUNK: Final = 100_000


class Riders(Stage):
    """Taps to riders (:mod:`backoffice.engine`, stage 1)."""

    def assign(self, report: PassReport) -> None:
        """New open taps -> cards, riders and aggregations (:mod:`backoffice.engine`,
        stage 1). New taps are those after the ``assigned_seq`` cursor (taps are
        numbered in commit order: SQLite has one writer)."""
        conn = self.store.conn
        total = conn.execute(
            "SELECT COUNT(*) FROM taps WHERE seq > (SELECT COALESCE(MAX(CAST(value AS INTEGER)), "
            "0) FROM meta WHERE key = 'assigned_seq')"
        ).fetchone()[0]
        done = 0
        while True:
            found = conn.execute("SELECT value FROM meta WHERE key = 'assigned_seq'").fetchone()
            rows = conn.execute(
                "SELECT seq, tap_id, card_reference, masked_pan, token, scheme, travel_day, "
                "time, time_ms, direction, zone, decision FROM taps WHERE seq > ? ORDER BY seq "
                "LIMIT ?",
                (int(found[0]) if found else 0, _ASSIGN_CHUNK),
            ).fetchall()
            if not rows:
                return
            self._assign_chunk(rows, report)
            done += len(rows)
            self.progress("riders", done, total)

    def _assign_chunk(self, rows: list[Any], report: PassReport) -> None:
        conn = self.store.conn
        first_seq, last_seq = rows[0][0], rows[-1][0]
        rows = [r for r in rows if r[11] == "open"]
        rows.sort(key=lambda r: (r[8], r[0]))  # time order: the first tap authorises
        report.taps += len(rows)
        refs = sorted({r[2] for r in rows})
        riders: dict[str, int] = {}
        for i in range(0, len(refs), 500):
            chunk = refs[i : i + 500]
            marks = ",".join("?" * len(chunk))
            riders.update(
                conn.execute(
                    f"SELECT card_reference, rider_id FROM cards WHERE card_reference IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
            )
        opened: dict[tuple[int, str], str] = {
            (r, d): a
            for r, d, a in conn.execute(
                "SELECT rider_id, travel_day, aggregation_id FROM aggregations WHERE state = 'open'"
            )
        }
        at = now_text()
        with self.store.write() as w:
            found = w.execute("SELECT value FROM meta WHERE key = 'aggregations'").fetchone()
            counter = int(found[0]) if found else 0
            found = w.execute("SELECT COALESCE(MAX(rider_id), 0) FROM riders").fetchone()
            next_rider = int(found[0])
            new_riders: list[tuple[int, str]] = []
            new_cards: list[tuple[Any, ...]] = []
            new_aggs: list[tuple[Any, ...]] = []
            work: list[tuple[Any, ...]] = []
            keep_box: list[tuple[int]] = []
            for seq, tap_id, ref, masked, token, scheme, day, when, ms, way, zone, _ in rows:
                rider = riders.get(ref)
                if rider is None:
                    next_rider += 1
                    rider = riders[ref] = next_rider
                    new_riders.append((rider, at))
                    new_cards.append((ref, rider, masked, token, scheme, at))
                key = (rider, day)
                agg = opened.get(key)
                if agg is None:
                    counter += 1
                    agg = opened[key] = f"agg_{self.instance}_{counter}"
                    new_aggs.append((agg, rider, day, tap_id, at))
                    keep_box.append((seq,))
                work.append((seq, tap_id, when, ms, way, zone, day, rider, agg))
            report.riders_new += len(new_riders)
            report.aggregations_opened += len(new_aggs)
            w.executemany("INSERT INTO riders (rider_id, created_at) VALUES (?, ?)", new_riders)
            w.executemany(
                "INSERT INTO cards (card_reference, rider_id, masked_pan, token, scheme, "
                "first_seen) VALUES (?,?,?,?,?,?)",
                new_cards,
            )
            w.executemany(
                "INSERT INTO aggregations (aggregation_id, rider_id, travel_day, state, "
                "auth_tap_id, opened_at) VALUES (?,?,?,'open',?,?)",
                new_aggs,
            )
            work.sort(key=lambda r: (r[7], r[3], r[0]))  # the table's key order
            w.executemany(
                "INSERT INTO pending (seq, tap_id, time, time_ms, direction, zone, travel_day, "
                "rider_id, aggregation_id) VALUES (?,?,?,?,?,?,?,?,?)",
                work,
            )
            w.executemany(  # the first taps' boxes wait for their authorisation
                "INSERT OR IGNORE INTO tap_boxes SELECT seq, track2_sealed FROM taps "
                "WHERE seq = ? AND track2_sealed IS NOT NULL",
                keep_box,
            )
            w.execute(  # every other box of the chunk (denied taps too): erased
                "UPDATE taps SET track2_sealed = NULL WHERE seq BETWEEN ? AND ? "
                "AND track2_sealed IS NOT NULL",
                (first_seq, last_seq),
            )
            w.execute("INSERT OR REPLACE INTO meta VALUES ('aggregations', ?)", (str(counter),))
            w.execute("INSERT OR REPLACE INTO meta VALUES ('assigned_seq', ?)", (str(last_seq),))


def join_par(w: sqlite3.Connection, rider: int, par: str, report: PassReport) -> int:
    """Join ``rider`` to the rider of payment account reference ``par`` (in the
    caller's transaction): riders with the same PAR are one, the one that had it first
    stays (the one returned)."""
    row = w.execute("SELECT rider_id FROM riders WHERE par = ?", (par,)).fetchone()
    if row is None:
        w.execute("UPDATE riders SET par = ? WHERE rider_id = ? AND par IS NULL", (par, rider))
        found = w.execute("SELECT par FROM riders WHERE rider_id = ?", (rider,)).fetchone()
        if found and found[0] != par:  # a second PAR for one rider: keep both apart
            report.errors.append(f"rider {rider} has two payment account references")
        w.execute("UPDATE cards SET par = ? WHERE rider_id = ?", (par, rider))
        return rider
    keep = int(row[0])
    if keep == rider:
        return rider
    for table in ("cards", "pending", "trips", "aggregations", "deny_list"):
        w.execute(f"UPDATE {table} SET rider_id = ? WHERE rider_id = ?", (keep, rider))  # noqa: S608
    w.execute("UPDATE cards SET par = ? WHERE rider_id = ?", (par, keep))
    w.execute("UPDATE riders SET merged_into = ? WHERE rider_id = ?", (keep, rider))
    report.riders_merged += 1
    if w.execute("SELECT 1 FROM deny_list WHERE rider_id = ? LIMIT 1", (keep,)).fetchone():
        report.deny_added += deny_rider(w, keep, None, "debt")
    return keep


def deny_rider(w: sqlite3.Connection, rider: int, agg: str | None, reason: str) -> int:
    """Put every card of ``rider`` on the deny list (in the caller's transaction), for
    ``reason`` and aggregation ``agg``; how many were added."""
    refs = [
        r for (r,) in w.execute("SELECT card_reference FROM cards WHERE rider_id = ?", (rider,))
    ]
    return Store.deny_add(w, refs, reason=reason, rider_id=rider, aggregation_id=agg)
