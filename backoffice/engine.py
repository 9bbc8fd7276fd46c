"""The back office's work: riders, deferred authorisation, trips and fares, aggregation,
the deny list and debt recovery (issue 6, "Transit gate and its back office";
/tmp/team/contract_transit.md "Back office -> issuer").

One :meth:`Engine.run` (a *pass*) does, in order:

1. **Riders** (:meth:`Engine.assign`): each new open tap's card reference maps to a
   card and a rider (new ones are made); each tap joins its rider's open aggregation
   for the tap's travel day, or opens one whose **authorisation tap** it is (the
   rider's first open tap of that travel day, or the first after the previous
   aggregation closed). The sealed track 2 of every other tap is erased: only the
   authorisation needs it.
2. **Deferred authorisation** (:meth:`Engine.authorise`): for each new aggregation,
   track 2 is unsealed (:func:`emvwire.seal.open_box`, context the tap id) just
   for the call, checked against the tap's card reference, and sent with the tap's
   field 55 (nominal amount, 9F02) to the issuer as an MCC 4111 terminal with request
   id ``bo:auth:<instance>:<tap_id>``. Then the box is erased. The answer's payment
   account reference (PAR) joins riders: a card and a phone of one account become one
   rider, so caps count both. A decline puts every card reference of the rider on the
   deny list. No answer: the aggregation waits for the next pass (same request id;
   no time-out reversal, nobody waits at a gate).
3. **Trips and fares** (:meth:`Engine.price`): for riders with no authorisation
   pending, taps become trips and micropayments (:mod:`backoffice.fares`),
   capped by the rider's daily and weekly totals so far.
4. **Aggregation** (:meth:`Engine.close`): an open aggregation whose travel day ended
   ``close_after`` ago (or every one, ``close_all``) and has no tap waiting for its
   trip is frozen (state ``closing``, total = the sum of its charges) in one commit,
   then completed at the issuer for the total (request id ``bo:cap:<aggregation>``,
   over-capture at MCC 4111) or reversed when nothing is due (``bo:rev:<...>``). A
   crash between the issuer's answer and the local commit is harmless: the next pass
   sends the same request id with the same frozen total and the issuer replays its
   answer, so a fare is never charged twice.
5. **Debt recovery** (:meth:`Engine.recover`): a closed aggregation with a declined
   authorisation is a debt: it is resubmitted (``bo:dr:<aggregation>:<n>``) at most
   ``debt_retry_max`` times within ``debt_retry_period``, every ``debt_retry_interval``;
   approved, the new authorisation is completed for the debt and the rider's cards leave
   the deny list (when no other debt remains). Refused for good: ``written_off``.

Aggregation states: ``open``, ``closing``, ``completed``, ``reversed`` (approved,
nothing due), ``void`` (declined, nothing due), ``debt``, ``recovered``,
``written_off``.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol

from backoffice.fares import (
    FareRules,
    TapPoint,
    Trip,
    build_trips,
    price_trips,
    week_of_day,
)
from backoffice.store import Store, now_text
from emvwire.cardref import card_reference
from emvwire.errors import EmvWireError
from emvwire.seal import SealError, open_box
from emvwire.tlv import decode_flat
from emvwire.track2 import track2_pan
from hostlink.client import UNREACHABLE, HostClient, HostError, HostOutcome

__all__ = [
    "Engine",
    "IssuerLike",
    "PassReport",
    "TransitHostClient",
    "instance_id",
]

#: Taps assigned per transaction (bounded memory on a million taps).
_ASSIGN_CHUNK: Final = 100_000
#: Riders priced per transaction (bounded memory on a million taps).
_RIDER_CHUNK: Final = 5000
#: Issuer answers recorded per commit (a crash before the commit is replayed safely).
_ANSWER_BATCH: Final = 500


class IssuerLike(Protocol):
    """What the engine needs of the issuer (:class:`hostlink.HostClient`)."""

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        """Authorise field 55 + track 2."""
        ...

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Capture."""
        ...

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Release the hold."""
        ...

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        """Debt recovery."""
        ...


class TransitHostClient(HostClient):
    """The host client as the back office uses it: a deferred authorisation that got no
    answer is not reversed (the next pass retries it with the same request id, and
    the issuer answers once)."""

    def reverse_request(self, request_id: str) -> bool:
        """No time-out reversal (class docstring)."""
        return False


@dataclass
class PassReport:
    """What one pass did (counts; amounts in minor units)."""

    taps: int = 0
    riders_new: int = 0
    aggregations_opened: int = 0
    authorised: int = 0
    declined: int = 0
    auth_failed: int = 0
    auth_waiting: int = 0
    riders_merged: int = 0
    trips: int = 0
    fares_charged: int = 0
    taps_waiting: int = 0
    closed: int = 0
    completed: int = 0
    captured: int = 0
    reversed: int = 0
    debts: int = 0
    recovered: int = 0
    written_off: int = 0
    deny_added: int = 0
    deny_removed: int = 0
    issuer_calls: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def instance_id(store: Store) -> str:
    """This back office's instance id (random, made once): it keeps the request ids of
    two back office homes on one issuer terminal apart."""
    conn = store.conn
    row = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
    if row:
        return str(row[0])
    with store.write() as w:
        w.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (secrets.token_hex(4),))
    return str(conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0])


Progress = Callable[[str, int, int], None]


class Engine:
    """One back office's engine (module docstring). ``issuer`` may be ``None``: the
    issuer steps are skipped (what waits for it waits)."""

    def __init__(
        self,
        store: Store,
        rules: FareRules,
        issuer: IssuerLike | None,
        *,
        sealing_key: bytes,
        card_reference_key: bytes,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.issuer = issuer
        self._sealing_key = sealing_key
        self._ref_key = card_reference_key
        self.progress = progress or (lambda stage, done, total: None)
        self.instance = instance_id(store)

    @classmethod
    def for_home(
        cls, store: Store, issuer: IssuerLike | None, progress: Progress | None = None
    ) -> Engine:
        """An engine with the keys and fares of the store's home."""
        home = store.home
        return cls(
            store, home.fares(), issuer, sealing_key=home.sealing_private_key(),
            card_reference_key=home.card_reference_key(), progress=progress,
        )  # fmt: skip

    # -- the pass ---------------------------------------------------------------------------

    def run(self, *, now: datetime | None = None, close_all: bool = False) -> PassReport:
        """One pass (module docstring). ``now`` (default the clock) decides which trips
        are incomplete and which periods are over; ``close_all`` closes every open
        aggregation now (its pending taps on become incomplete trips)."""
        now = now or datetime.now(UTC)
        report = PassReport()
        start = time.perf_counter()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("assign", lambda: self.assign(report)),
            ("authorise", lambda: self.authorise(report)),
            ("price", lambda: self.price(report, now, close_all)),
            ("close", lambda: self.close(report, now, close_all)),
            ("recover", lambda: self.recover(report, now)),
        ]
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            report.stage_seconds[name] = round(time.perf_counter() - t0, 3)
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    # -- 1. riders and aggregations ---------------------------------------------------------

    def assign(self, report: PassReport) -> None:
        """New open taps -> cards, riders and aggregations (module docstring, 1). New
        taps are those after the ``assigned_seq`` cursor (taps are numbered in commit
        order: SQLite has one writer)."""
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

    # -- 2. deferred authorisation ----------------------------------------------------------

    def authorise(self, report: PassReport) -> None:
        """Authorise each new aggregation's first tap (module docstring, 2)."""
        conn = self.store.conn
        rows = conn.execute(
            "SELECT a.aggregation_id, a.rider_id, t.tap_id, t.card_reference, t.icc_data, "
            "b.box, t.amount FROM aggregations a JOIN taps t ON t.tap_id = a.auth_tap_id "
            "LEFT JOIN tap_boxes b ON b.seq = t.seq WHERE a.auth_state = 'pending' "
            "ORDER BY t.time_ms"
        ).fetchall()
        if not rows:
            return
        if self.issuer is None:
            report.auth_waiting = len(rows)
            return
        self.progress("authorise", 0, len(rows))
        done: list[tuple[str, int, str, str, int, HostOutcome | str | None]] = []
        for i, (agg, rider, tap_id, ref, icc, box, amount) in enumerate(rows, 1):
            answer = self._authorise_one(tap_id, ref, icc, box, report)
            if answer is None:
                report.auth_waiting += 1
                continue
            done.append((agg, rider, tap_id, ref, amount, answer))
            if len(done) >= _ANSWER_BATCH:
                self._record_answers(done, report)
                done = []
                self.progress("authorise", i, len(rows))
        self._record_answers(done, report)
        self.progress("authorise", len(rows), len(rows))

    def _authorise_one(
        self, tap_id: str, ref: str, icc: bytes | None, box: bytes | None, report: PassReport
    ) -> HostOutcome | str | None:
        """The issuer's answer, an error text (the tap cannot be authorised), or
        ``None`` (no answer: later)."""
        assert self.issuer is not None
        if not icc or not box:
            return "the tap has no chip data or sealed track 2"
        try:
            track2 = open_box(self._sealing_key, box, context=tap_id.encode())
        except SealError:
            return "the sealed track 2 does not open with this back office's key"
        try:
            pan = track2_pan(track2)
            psn = decode_flat(icc).get(0x5F34)
        except EmvWireError:
            return "the tap's field 55 is not BER-TLV"
        if not pan or card_reference(self._ref_key, pan, psn) != ref:
            del track2
            return "the card reference does not match the card's track 2"
        request_id = f"bo:auth:{self.instance}:{tap_id}"
        report.issuer_calls += 1
        try:
            outcome = self.issuer.authorise(icc, track2, request_id=request_id)
        except HostError as exc:
            return f"the issuer refused the request: {exc}"
        except UNREACHABLE:
            return None
        finally:
            del track2
        if not outcome.answered:
            return None
        return outcome

    def _record_answers(
        self,
        done: Sequence[tuple[str, int, str, str, int, HostOutcome | str | None]],
        report: PassReport,
    ) -> None:
        if not done:
            return
        at = now_text()
        with self.store.write() as w:
            for agg, rider, tap_id, _ref, amount, answer in done:
                w.execute(
                    "DELETE FROM tap_boxes WHERE seq = (SELECT seq FROM taps WHERE tap_id = ?)",
                    (tap_id,),
                )
                if isinstance(answer, str):
                    report.auth_failed += 1
                    report.errors.append(f"{agg}: {answer}")
                    w.execute(
                        "UPDATE aggregations SET auth_state = 'failed', error = ? "
                        "WHERE aggregation_id = ?",
                        (answer, agg),
                    )
                    continue
                assert answer is not None
                state = "approved" if answer.approved else "declined"
                w.execute(
                    "UPDATE aggregations SET auth_state = ?, transaction_id = ?, auth_amount = ?, "
                    "response_code = ?, decline_reason = ? WHERE aggregation_id = ?",
                    (state, answer.transaction_id, amount, answer.response_code,
                     answer.reason, agg),
                )  # fmt: skip
                w.execute(
                    "INSERT OR REPLACE INTO authorisations VALUES (?,?,?,?,?,?,?,?,?)",
                    (answer.request_id, "authorisation", agg, answer.transaction_id,
                     int(answer.approved), answer.response_code, answer.reason, amount, at),
                )  # fmt: skip
                if answer.par:
                    rider = self._join_par(w, rider, answer.par, report)
                if answer.approved:
                    report.authorised += 1
                else:
                    report.declined += 1
                    report.deny_added += self._deny_rider(
                        w, rider, agg, answer.reason or "declined"
                    )

    def _join_par(self, w: sqlite3.Connection, rider: int, par: str, report: PassReport) -> int:
        """Riders with the same PAR are one (the one that had it first stays)."""
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
            report.deny_added += self._deny_rider(w, keep, None, "debt")
        return keep

    @staticmethod
    def _deny_rider(w: sqlite3.Connection, rider: int, agg: str | None, reason: str) -> int:
        refs = [
            r for (r,) in w.execute("SELECT card_reference FROM cards WHERE rider_id = ?", (rider,))
        ]
        return Store.deny_add(w, refs, reason=reason, rider_id=rider, aggregation_id=agg)

    # -- 3. trips and fares ----------------------------------------------------------------

    def price(self, report: PassReport, now: datetime, close_all: bool) -> None:
        """Trips and capped fares of riders with no authorisation pending (module
        docstring, 3)."""
        conn = self.store.conn
        riders = [
            r
            for (r,) in conn.execute(
                "SELECT DISTINCT rider_id FROM pending WHERE rider_id NOT IN "
                "(SELECT rider_id FROM aggregations WHERE auth_state = 'pending') ORDER BY rider_id"
            )
        ]
        if not riders:
            return
        now_ms = None if close_all else int(now.timestamp() * 1000)
        next_trip = int(conn.execute("SELECT COALESCE(MAX(trip_id), 0) FROM trips").fetchone()[0])
        total = len(riders)
        self.progress("trips", 0, total)
        for i in range(0, total, _RIDER_CHUNK):
            chunk = riders[i : i + _RIDER_CHUNK]
            next_trip = self._price_chunk(chunk, now_ms, next_trip, report)
            self.progress("trips", min(i + _RIDER_CHUNK, total), total)

    def _price_chunk(
        self, riders: Sequence[int], now_ms: int | None, next_trip: int, report: PassReport
    ) -> int:
        first, last = riders[0], riders[-1]
        with self.store.write() as w:
            taps = w.execute(
                "SELECT rider_id, seq, tap_id, time_ms, direction, zone, travel_day, "
                "aggregation_id, time FROM pending WHERE rider_id BETWEEN ? AND ? "
                "ORDER BY rider_id, time_ms, seq",
                (first, last),
            ).fetchall()
            wanted = set(riders)
            by_rider: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
            for row in taps:
                if row[0] in wanted:
                    by_rider[row[0]].append(row)
            days: dict[int, dict[str, int]] = defaultdict(dict)
            if by_rider:
                oldest = min(r[6] for rows in by_rider.values() for r in rows)
                since = (date.fromisoformat(oldest) - timedelta(days=7)).isoformat()
                for rider, day, charged in w.execute(
                    "SELECT rider_id, travel_day, SUM(charge) FROM trips WHERE rider_id BETWEEN ? "
                    "AND ? AND travel_day >= ? GROUP BY rider_id, travel_day",
                    (first, last, since),
                ):
                    days[rider][day] = charged
            trip_rows: list[tuple[Any, ...]] = []
            still: list[tuple[Any, ...]] = []
            totals: dict[str, int] = defaultdict(int)
            for rider, rows in by_rider.items():
                points = [TapPoint(r[1], r[3], r[4], r[5], r[6]) for r in rows]
                info = {r[1]: r for r in rows}
                trips, pending = build_trips(points, self.rules, now_ms)
                report.taps_waiting += len(pending)
                still += [info[p.key] for p in pending]
                if not trips:
                    continue
                day_totals = days.get(rider, {})
                week_totals: dict[str, int] = defaultdict(int)
                for day, charged in day_totals.items():
                    week_totals[week_of_day(day)] += charged
                priced = price_trips(trips, self.rules, day_totals, week_totals)
                for trip, fare in zip(trips, priced, strict=True):
                    next_trip += 1
                    trip_rows.append(self._trip_row(next_trip, rider, trip, fare.charge,
                                                    fare.adjustment, info))  # fmt: skip
                    totals[trip_rows[-1][13]] += fare.charge
                    report.fares_charged += fare.charge
            report.trips += len(trip_rows)
            w.executemany(
                "INSERT INTO trips (trip_id, rider_id, on_tap, off_tap, start_time, end_time, "
                "from_zone, to_zone, travel_day, fare_type, fare, charge, adjustment, "
                "aggregation_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                trip_rows,
            )
            # Every tap of these riders is now in a trip but those still waiting.
            w.execute(
                "DELETE FROM pending WHERE rider_id BETWEEN ? AND ? AND rider_id NOT IN "
                "(SELECT rider_id FROM aggregations WHERE auth_state = 'pending')",
                (first, last),
            )
            w.executemany(
                "INSERT INTO pending (rider_id, seq, tap_id, time_ms, direction, zone, "
                "travel_day, aggregation_id, time) VALUES (?,?,?,?,?,?,?,?,?)",
                still,
            )
            w.executemany(
                "UPDATE aggregations SET total = total + ? WHERE aggregation_id = ?",
                [(v, k) for k, v in totals.items()],
            )
        return next_trip

    @staticmethod
    def _trip_row(
        trip_id: int,
        rider: int,
        trip: Trip,
        charge: int,
        adjustment: str | None,
        info: dict[int, tuple[Any, ...]],
    ) -> tuple[Any, ...]:
        start = info[trip.start.key]
        end = info[trip.end.key] if trip.end is not None else None
        on_tap, start_time, from_zone = start[2], start[8], start[5]
        if trip.end is not None and trip.end.key == trip.start.key:  # an off with no on
            return (
                trip_id, rider, on_tap, on_tap, start_time, start_time, None, from_zone,
                trip.travel_day, trip.fare_type, trip.fare, charge, adjustment, start[7],
            )  # fmt: skip
        return (
            trip_id, rider, on_tap, end[2] if end else None, start_time, end[8] if end else None,
            from_zone, end[5] if end else None, trip.travel_day, trip.fare_type, trip.fare,
            charge, adjustment, start[7],
        )  # fmt: skip

    # -- 4. aggregation ----------------------------------------------------------------------

    def close(self, report: PassReport, now: datetime, close_all: bool) -> None:
        """Freeze the periods that are over, then complete or reverse each at the
        issuer (module docstring, 4)."""
        due = self._due_days(now, close_all)
        at = now_text(now)
        if due is not None or close_all:
            with self.store.write() as w:
                day_clause = "" if close_all else "AND travel_day <= ?"
                params: tuple[Any, ...] = (at,) if close_all else (at, due)
                cur = w.execute(
                    "UPDATE aggregations SET state = 'closing', closed_at = ? "  # noqa: S608
                    "WHERE state = 'open' AND auth_state != 'pending' "
                    f"{day_clause} AND aggregation_id NOT IN (SELECT aggregation_id FROM pending)",
                    params,
                )
                report.closed = cur.rowcount
        self._settle(report, now)

    def _due_days(self, now: datetime, close_all: bool) -> str | None:
        """The last travel day whose aggregations may close at ``now``."""
        if close_all:
            return None
        day = self.rules.travel_day(now - self.rules.close_after) - timedelta(days=1)
        return day.isoformat()

    def _settle(self, report: PassReport, now: datetime) -> None:
        rows = self.store.conn.execute(
            "SELECT aggregation_id, rider_id, auth_state, transaction_id, total "
            "FROM aggregations WHERE state = 'closing' ORDER BY aggregation_id"
        ).fetchall()
        if not rows:
            return
        self.progress("aggregate", 0, len(rows))
        results: list[tuple[str, int, str, int, str | None]] = []
        for i, (agg, rider, auth_state, txn, total) in enumerate(rows, 1):
            result = self._settle_one(agg, auth_state, txn, total, report)
            if result is not None:
                results.append((agg, rider, result[0], result[1], result[2]))
            if len(results) >= _ANSWER_BATCH:
                self._record_settled(results, report, now)
                results = []
                self.progress("aggregate", i, len(rows))
        self._record_settled(results, report, now)
        self.progress("aggregate", len(rows), len(rows))

    def _settle_one(
        self, agg: str, auth_state: str, txn: str | None, total: int, report: PassReport
    ) -> tuple[str, int, str | None] | None:
        """(new state, captured, error) or ``None`` when the issuer did not answer."""
        if auth_state == "failed":
            return ("written_off" if total else "void", 0, None)
        if auth_state == "declined":
            return ("debt" if total else "void", 0, None)
        if self.issuer is None or txn is None:
            return None
        report.issuer_calls += 1
        try:
            if total == 0:
                try:
                    self.issuer.reverse(txn, request_id=f"bo:rev:{agg}")
                except HostError as exc:  # e.g. expired at the issuer: nothing is held
                    return ("reversed", 0, str(exc))
                return ("reversed", 0, None)
            if total > self.rules.aggregation_limit:
                return ("debt", 0, f"total {total} is above the aggregation limit")
            self.issuer.complete(txn, total, request_id=f"bo:cap:{agg}")
            return ("completed", total, None)
        except HostError as exc:  # insufficient funds, limit: a debt (capture retried)
            return ("debt", 0, str(exc))
        except UNREACHABLE:
            return None

    def _record_settled(
        self, results: Iterable[tuple[str, int, str, int, str | None]], report: PassReport,
        now: datetime,
    ) -> None:  # fmt: skip
        results = list(results)
        if not results:
            return
        at = now_text(now)
        retry = now_text(now)  # the first recovery attempt: in this pass (step 5)
        with self.store.write() as w:
            w.executemany(
                "UPDATE aggregations SET state = ?, captured = ?, settled_at = ?, error = ?, "
                "next_retry_at = CASE WHEN ? = 'debt' THEN ? END WHERE aggregation_id = ? "
                "AND state = 'closing'",
                [(state, captured, at, error, state, retry, agg)
                 for agg, _, state, captured, error in results],
            )  # fmt: skip
            w.executemany(
                "INSERT OR REPLACE INTO authorisations (request_id, kind, aggregation_id, "
                "approved, amount, at) VALUES (?, 'completion', ?, 1, ?, ?)",
                [(f"bo:cap:{agg}", agg, captured, at)
                 for agg, _, state, captured, _ in results if state == "completed"],
            )  # fmt: skip
            for _agg, rider, state, captured, _error in results:
                if state == "completed":
                    report.completed += 1
                    report.captured += captured
                elif state == "reversed":
                    report.reversed += 1
                elif state == "debt":
                    report.debts += 1
                    report.deny_added += self._deny_rider(w, rider, _agg, "debt")
                elif state == "written_off":
                    report.written_off += 1

    # -- 5. debt recovery ----------------------------------------------------------------------

    def recover(self, report: PassReport, now: datetime) -> None:
        """Resubmit debts that are due (module docstring, 5)."""
        if self.issuer is None:
            return
        rows = self.store.conn.execute(
            "SELECT aggregation_id, rider_id, auth_state, transaction_id, total, opened_at, "
            "recovery_attempts, recovery_request, recovery_transaction_id FROM aggregations "
            "WHERE state = 'debt' AND (next_retry_at IS NULL OR next_retry_at <= ?) "
            "ORDER BY aggregation_id",
            (now_text(now),),
        ).fetchall()
        for row in rows:
            self._recover_one(report, now, *row)

    def _recover_one(
        self,
        report: PassReport,
        now: datetime,
        agg: str,
        rider: int,
        auth_state: str,
        txn: str,
        total: int,
        opened_at: str,
        attempts: int,
        in_flight: str | None,
        recovery_txn: str | None,
    ) -> None:
        assert self.issuer is not None
        rules = self.rules
        opened = datetime.fromisoformat(opened_at.replace("Z", "+00:00"))
        expired = now - opened > rules.debt_retry_period
        if in_flight is None and recovery_txn is None:
            if expired or attempts >= rules.debt_retry_max:
                self._write_off(agg, report, "debt recovery attempts exhausted")
                return
            attempts += 1
            in_flight = f"bo:dr:{agg}:{attempts}"
            with self.store.write() as w:  # the request id is on disk before it is sent
                w.execute(
                    "UPDATE aggregations SET recovery_attempts = ?, recovery_request = ? "
                    "WHERE aggregation_id = ?",
                    (attempts, in_flight, agg),
                )
        capture_on = recovery_txn
        if capture_on is None:
            report.issuer_calls += 1
            try:
                if auth_state == "approved":  # a refused capture: try the capture again
                    capture_on = txn
                else:
                    assert in_flight is not None
                    outcome = self.issuer.resubmit(txn, request_id=in_flight)
                    if not outcome.answered:
                        return
                    self._log_call(in_flight, "resubmission", agg, outcome, now)
                    if not outcome.approved:
                        with self.store.write() as w:
                            w.execute(
                                "UPDATE aggregations SET recovery_request = NULL, "
                                "next_retry_at = ?, error = ? WHERE aggregation_id = ?",
                                (now_text(now + rules.debt_retry_interval),
                                 f"resubmission declined: {outcome.reason}", agg),
                            )  # fmt: skip
                        return
                    capture_on = outcome.transaction_id
                    with self.store.write() as w:
                        w.execute(
                            "UPDATE aggregations SET recovery_transaction_id = ? "
                            "WHERE aggregation_id = ?",
                            (capture_on, agg),
                        )
            except HostError as exc:
                self._write_off(agg, report, f"the issuer refused the resubmission: {exc}")
                return
            except UNREACHABLE:
                return
        report.issuer_calls += 1
        try:
            self.issuer.complete(capture_on, total, request_id=f"bo:cap:{agg}")
        except HostError as exc:
            with self.store.write() as w:
                w.execute(
                    "UPDATE aggregations SET recovery_request = NULL, next_retry_at = ?, "
                    "error = ? WHERE aggregation_id = ?",
                    (now_text(now + rules.debt_retry_interval), str(exc), agg),
                )
            return
        except UNREACHABLE:
            return
        with self.store.write() as w:
            w.execute(
                "UPDATE aggregations SET state = 'recovered', captured = ?, settled_at = ?, "
                "recovery_request = NULL, error = NULL WHERE aggregation_id = ?",
                (total, now_text(now), agg),
            )
            report.recovered += 1
            report.captured += total
            still = w.execute(
                "SELECT 1 FROM aggregations WHERE rider_id = ? AND (state = 'debt' OR "
                "(auth_state = 'declined' AND state IN ('open', 'closing'))) LIMIT 1",
                (rider,),
            ).fetchone()
            if still is None:
                found = w.execute(
                    "SELECT card_reference FROM deny_list WHERE rider_id = ?", (rider,)
                )
                refs = [r for (r,) in found]
                report.deny_removed += Store.deny_remove(w, refs)

    def _write_off(self, agg: str, report: PassReport, why: str) -> None:
        with self.store.write() as w:
            w.execute(
                "UPDATE aggregations SET state = 'written_off', error = ?, recovery_request = NULL "
                "WHERE aggregation_id = ?",
                (why, agg),
            )
        report.written_off += 1

    def _log_call(self, request_id: str, kind: str, agg: str, outcome: HostOutcome,
                  now: datetime) -> None:  # fmt: skip
        with self.store.write() as w:
            w.execute(
                "INSERT OR REPLACE INTO authorisations VALUES (?,?,?,?,?,?,?,?,?)",
                (request_id, kind, agg, outcome.transaction_id, int(outcome.approved),
                 outcome.response_code, outcome.reason, None, now_text(now)),
            )  # fmt: skip
