"""Stage 1 of a pass: new open taps to cards, riders and aggregations; and what joins
riders (one payment account reference) and puts a rider's cards on the deny list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from backoffice.database import Connection
from backoffice.engine.context import PassReport, Stage
from backoffice.store import Store, now_text

__all__ = ["PENDING_COLUMNS", "Riders", "deny_rider", "join_par"]

#: The columns of ``pending``, in the order the stages write them.
PENDING_COLUMNS: Final = (
    "seq", "tap_id", "time", "time_ms", "direction", "zone", "travel_day", "rider_id",
    "aggregation_id",
)  # fmt: skip
_INSERT_CARD: Final = (
    "INSERT INTO cards (card_reference, rider_id, masked_pan, token, scheme, first_seen) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (card_reference) DO NOTHING RETURNING 1"
)


class Riders(Stage):
    """Taps to riders (:mod:`backoffice.engine`, stage 1)."""

    def assign(self, report: PassReport) -> None:
        """New open taps -> cards, riders and aggregations (:mod:`backoffice.engine`,
        stage 1). New taps are those of the ``inbox``, claimed a chunk per transaction
        (:mod:`backoffice.schema`, migration 2: instances sharing a database claim
        disjoint chunks)."""
        total = int(self.store.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
        done = 0
        while True:
            count = self._assign_chunk(report)
            if not count:
                return
            done += count
            self.progress("riders", min(done, total), max(total, done))

    def _cards(self, conn: Connection, refs: Sequence[str]) -> dict[str, int]:
        """The riders of the known ``refs``."""
        return {
            ref: int(rider)
            for ref, rider in conn.rows_for_ids(
                "SELECT card_reference, rider_id FROM cards WHERE card_reference = ANY(?)", refs
            )
        }

    def _new_riders(
        self, w: Connection, rows: Iterable[tuple[Any, ...]], known: dict[str, int], at: str,
        report: PassReport,
    ) -> None:  # fmt: skip
        """Cards and riders for the references not ``known`` (added to it). Another
        instance may make the same card meanwhile: the card's unique key makes this
        transaction wait for its commit, its rider stands and ours is dropped."""
        first: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            if row[2] not in known:
                first.setdefault(row[2], row)
        if not first:
            return
        refs = sorted(first)  # one order for every instance: no deadlock on the cards
        ids = self.store.db.next_ids(w, "riders", len(refs))
        w.copy("riders", ("rider_id", "created_at"), [(rider, at) for rider in ids])
        made = w.inserted(_INSERT_CARD, [
            (ref, rider, first[ref][3], first[ref][4], first[ref][5], at)
            for ref, rider in zip(refs, ids, strict=True)
        ])  # fmt: skip
        lost = [(ref, rider) for ref, rider, new in zip(refs, ids, made, strict=True) if not new]
        if lost:
            w.for_ids("DELETE FROM riders WHERE rider_id = ANY(?)", [r for _, r in lost])
            known.update(self._cards(w, [ref for ref, _ in lost]))
        known.update((ref, rider) for ref, rider, new in zip(refs, ids, made, strict=True) if new)
        report.riders_new += len(refs) - len(lost)

    def _assign_chunk(self, report: PassReport) -> int:
        """Claim and assign one chunk of the inbox; how many taps it held."""
        db = self.store.db
        at = now_text()
        with self.store.write() as w:
            claimed = [
                seq
                for (seq,) in w.execute(
                    f"SELECT seq FROM inbox i ORDER BY seq LIMIT ?{db.claim('i')}",  # noqa: S608
                    (db.assign_chunk,),
                )
            ]
            rows = w.rows_for_ids(
                "SELECT seq, tap_id, card_reference, masked_pan, token, scheme, travel_day, "
                "time, time_ms, direction, zone, decision, track2_sealed IS NOT NULL "
                "FROM taps WHERE seq = ANY(?) ORDER BY seq",
                claimed,
            )
            if not claimed:
                return 0
            w.for_ids("DELETE FROM inbox WHERE seq = ANY(?)", claimed)
            boxed = [r[0] for r in rows if r[12]]
            taps = [r for r in rows if r[11] == "open"]
            taps.sort(key=lambda r: (r[8], r[0]))  # time order: the first tap authorises
            report.taps += len(taps)
            riders = self._cards(w, sorted({r[2] for r in taps}))
            self._new_riders(w, taps, riders, at, report)
            db.lock_riders(w, list(riders.values()))
            opened: dict[tuple[int, str], str] = {
                (r, d): a
                for r, d, a in w.execute(
                    "SELECT rider_id, travel_day, aggregation_id FROM aggregations "
                    "WHERE state = 'open'"
                )
            }
            work: list[tuple[Any, ...]] = []
            firsts: list[tuple[tuple[int, str], str, int]] = []  # new aggregations
            for seq, tap_id, ref, _, _, _, day, when, ms, way, zone, _, _ in taps:
                key = (riders[ref], day)
                if key not in opened:
                    opened[key] = ""  # named below, once the ids are taken
                    firsts.append((key, tap_id, seq))
                work.append((seq, tap_id, when, ms, way, zone, day, key))
            ids = db.next_ids(w, "aggregations", len(firsts))
            for (key, _, _), number in zip(firsts, ids, strict=True):
                opened[key] = f"agg_{self.instance}_{number}"
            report.aggregations_opened += len(firsts)
            w.copy(
                "aggregations",
                ("aggregation_id", "rider_id", "travel_day", "state", "auth_tap_id", "opened_at"),
                [(opened[key], key[0], key[1], "open", tap_id, at) for key, tap_id, _ in firsts],
            )
            pending = [(*r[:7], r[7][0], opened[r[7]]) for r in work]
            pending.sort(key=lambda r: (r[7], r[3], r[0]))  # the table's key order
            w.copy("pending", PENDING_COLUMNS, pending)
            w.for_ids(  # the first taps' boxes wait for their authorisation
                "INSERT INTO tap_boxes (seq, box) SELECT seq, track2_sealed FROM taps "
                "WHERE seq = ANY(?) AND track2_sealed IS NOT NULL ON CONFLICT (seq) DO NOTHING",
                [seq for _, _, seq in firsts],
            )
            w.for_ids(  # every other box of the chunk (denied taps too): erased
                "UPDATE taps SET track2_sealed = NULL WHERE seq = ANY(?)", boxed
            )
        return len(claimed)


def join_par(store: Store, w: Connection, rider: int, par: str, report: PassReport) -> int:
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
    store.db.lock_riders(w, [keep, rider])
    for table in ("cards", "pending", "trips", "aggregations", "deny_list"):
        w.execute(f"UPDATE {table} SET rider_id = ? WHERE rider_id = ?", (keep, rider))  # noqa: S608
    w.execute("UPDATE cards SET par = ? WHERE rider_id = ?", (par, keep))
    w.execute("UPDATE riders SET merged_into = ? WHERE rider_id = ?", (keep, rider))
    report.riders_merged += 1
    if w.execute("SELECT 1 FROM deny_list WHERE rider_id = ? LIMIT 1", (keep,)).fetchone():
        report.deny_added += deny_rider(store, w, keep, None, "debt")
    return keep


def deny_rider(store: Store, w: Connection, rider: int, agg: str | None, reason: str) -> int:
    """Put every card of ``rider`` on the deny list (in the caller's transaction), for
    ``reason`` and aggregation ``agg``; how many were added."""
    refs = [
        r for (r,) in w.execute("SELECT card_reference FROM cards WHERE rider_id = ?", (rider,))
    ]
    return store.deny_add(w, refs, reason=reason, rider_id=rider, aggregation_id=agg)
