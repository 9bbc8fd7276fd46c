"""Stage 3 of a pass: taps to trips, trips to capped fares (:mod:`backoffice.fares`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final

from backoffice.engine.context import PassReport, Stage
from backoffice.fares import TapPoint, Trip, build_trips, price_trips, week_of_day

__all__ = ["Pricing"]

_TRIP_COLUMNS: Final = (
    "trip_id", "rider_id", "on_tap", "off_tap", "start_time", "end_time", "from_zone",
    "to_zone", "travel_day", "fare_type", "fare", "charge", "adjustment", "aggregation_id",
)  # fmt: skip
#: The columns of the pending rows a chunk leaves waiting, as read back.
_STILL_COLUMNS: Final = (
    "rider_id", "seq", "tap_id", "time_ms", "direction", "zone", "travel_day",
    "aggregation_id", "time",
)  # fmt: skip


class Pricing(Stage):
    """Trips and fares (:mod:`backoffice.engine`, stage 3)."""

    def price(self, report: PassReport, now: datetime, close_all: bool) -> None:
        """Trips and capped fares of riders with no authorisation pending
        (:mod:`backoffice.engine`, stage 3)."""
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
        total = len(riders)
        self.progress("trips", 0, total)
        step = self.store.db.rider_chunk  # bounded memory on a million taps
        for i in range(0, total, step):
            self._price_chunk(riders[i : i + step], now_ms, report)
            self.progress("trips", min(i + step, total), total)

    def _price_chunk(self, chosen: Sequence[int], now_ms: int | None, report: PassReport) -> None:
        with self.store.write() as w:
            # Riders another instance works on are left to it (PostgreSQL); one whose
            # authorisation became pending meanwhile waits for it.
            riders = self.store.db.lock_riders(w, chosen, skip=True)
            if not riders:
                return
            first, last = riders[0], riders[-1]
            waiting = {
                r
                for (r,) in w.execute(
                    "SELECT rider_id FROM aggregations WHERE auth_state = 'pending' "
                    "AND rider_id BETWEEN ? AND ?",
                    (first, last),
                )
            }
            taps = w.execute(
                "SELECT rider_id, seq, tap_id, time_ms, direction, zone, travel_day, "
                "aggregation_id, time FROM pending WHERE rider_id BETWEEN ? AND ? "
                "ORDER BY rider_id, time_ms, seq",
                (first, last),
            ).fetchall()
            wanted = set(riders) - waiting
            by_rider: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
            for row in taps:
                if row[0] in wanted:
                    by_rider[row[0]].append(row)
            days: dict[int, dict[str, int]] = defaultdict(dict)
            if by_rider:
                oldest = min(r[6] for rows in by_rider.values() for r in rows)
                since = (date.fromisoformat(oldest) - timedelta(days=7)).isoformat()
                for rider, day, charged in w.execute(
                    "SELECT rider_id, travel_day, CAST(SUM(charge) AS BIGINT) FROM trips "
                    "WHERE rider_id BETWEEN ? AND ? AND travel_day >= ? "
                    "GROUP BY rider_id, travel_day",
                    (first, last, since),
                ):
                    days[rider][day] = int(charged)
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
                    trip_rows.append(self._trip_row(0, rider, trip, fare.charge,
                                                    fare.adjustment, info))  # fmt: skip
                    totals[trip_rows[-1][13]] += fare.charge
                    report.fares_charged += fare.charge
            report.trips += len(trip_rows)
            ids = self.store.db.next_ids(w, "trips", len(trip_rows))
            trip_rows = [(i, *row[1:]) for i, row in zip(ids, trip_rows, strict=True)]
            w.copy("trips", _TRIP_COLUMNS, trip_rows)
            # Every tap of these riders is now in a trip but those still waiting.
            w.for_ids("DELETE FROM pending WHERE rider_id = ANY(?)", sorted(by_rider))
            w.copy("pending", _STILL_COLUMNS, still)
            w.for_ids(  # an aggregation's total: the sum of its trips' charges
                "UPDATE aggregations SET total = (SELECT COALESCE(SUM(t.charge), 0) FROM trips t "
                "WHERE t.rider_id = aggregations.rider_id AND t.travel_day = "
                "aggregations.travel_day AND t.aggregation_id = aggregations.aggregation_id) "
                "WHERE aggregation_id = ANY(?)",
                sorted(totals),
            )

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
