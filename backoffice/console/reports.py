"""What the back office console shows and does, without the web: pages of riders,
trips, aggregations, debts and the deny list, the counts of the overview, the data of
its two charts, and the one action (an entry taken off the deny list, audited).

Every list is a page of at most :data:`PAGE` rows, newest (or lowest id) first, read
by an index (keyset pagination: ``after`` / ``before`` an id, never an offset), so a
page costs the same on a store of a thousand trips or of millions. Card references
are shown masked (:func:`mask_reference`); masked PANs are stored masked already
(:func:`backoffice.store.validate_tap`). A deny-list entry is named by its version
(one per entry), so no page holds a full card reference, not even in a form.

Charts (data only; the page draws them):

- **taps per hour** of one travel day (default the day of the newest tap): the taps
  whose time falls in each hour of that day, in the fare rules' time zone, the day
  starting at ``travel_day_start`` (:meth:`backoffice.fares.FareRules.
  travel_day_bounds`); every tap counts, opened or denied.
- **revenue per day**: the fares charged (``trips.charge``, after caps) and the
  trips per travel day, over :data:`REVENUE_DAYS` days up to the newest travel day
  with a trip; days without trips count 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from backoffice.fares import FareRules
from backoffice.operators import Operator, Operators
from backoffice.store import Store

__all__ = [
    "PAGE",
    "REVENUE_DAYS",
    "ConsoleData",
    "Removal",
    "mask_reference",
]

#: Rows per page of a list.
PAGE: Final = 50
#: Days of the revenue chart.
REVENUE_DAYS: Final = 30
#: Digits of a card reference shown (of 32 hex digits).
_REFERENCE_SHOWN: Final = 8


def mask_reference(reference: str | None) -> str:
    """A card reference as pages show it: its first 8 hex digits (enough to tell cards
    apart on a page, not to find a card elsewhere)."""
    if not reference:
        return "-"
    return reference[:_REFERENCE_SHOWN] + "\u2026"


@dataclass(frozen=True, slots=True)
class Removal:
    """What became of a deny-list removal: ``outcome`` as the audit log says it, the
    masked reference, the audit record's id."""

    outcome: str
    reference: str
    audit_id: int


class ConsoleData:
    """The console's reads and its action on one store (module docstring)."""

    def __init__(self, store: Store, rules: FareRules) -> None:
        self.store = store
        self.rules = rules
        self.operators = Operators(store)

    # -- overview and charts ----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many riders, open aggregations, debts and deny-list entries (each an
        index's count; the trips are counted by :meth:`revenue_per_day`, over its
        days only: a count of every trip ever grows with the store)."""
        row = self.store.conn.execute(
            "SELECT (SELECT COUNT(*) FROM riders WHERE merged_into IS NULL), "
            "(SELECT COUNT(*) FROM aggregations WHERE state = 'open'), "
            "(SELECT COUNT(*) FROM aggregations WHERE state = 'debt'), "
            "(SELECT COUNT(*) FROM deny_list)"
        ).fetchone()
        names = ("riders", "open", "debts", "denied")
        return {n: int(v) for n, v in zip(names, row, strict=True)}

    def latest_tap_day(self) -> date | None:
        """The travel day of the newest tap (``None``: no taps)."""
        row = self.store.conn.execute("SELECT MAX(time_ms) FROM taps").fetchone()
        if row[0] is None:
            return None
        return self.rules.travel_day(datetime.fromtimestamp(int(row[0]) / 1000, UTC))

    def taps_per_hour(self, day: date) -> list[tuple[str, int]]:
        """(local hour ``HH:00``, taps) for each hour of travel day ``day`` (module
        docstring)."""
        start, end = self.rules.travel_day_bounds(day)
        start_ms = int(start.timestamp() * 1000)
        hours = round((end - start).total_seconds() / 3600)
        counts = {
            int(h): int(n)
            for h, n in self.store.conn.execute(
                "SELECT (time_ms - ?) / 3600000 AS h, COUNT(*) FROM taps "
                "WHERE time_ms >= ? AND time_ms < ? GROUP BY h",
                (start_ms, start_ms, int(end.timestamp() * 1000)),
            )
        }
        zone = UTC if self.rules.timezone == "UTC" else ZoneInfo(self.rules.timezone)
        return [
            ((start + timedelta(hours=h)).astimezone(zone).strftime("%H:00"), counts.get(h, 0))
            for h in range(hours)
        ]

    def revenue_per_day(self, days: int = REVENUE_DAYS) -> list[tuple[str, int, int]]:
        """(travel day, fares charged in minor units, trips) for the ``days`` travel
        days up to the newest with a trip (module docstring); empty when there are no
        trips. One range of the ``trips_day`` index (travel day, charge)."""
        row = self.store.conn.execute("SELECT MAX(travel_day) FROM trips").fetchone()
        if row[0] is None:
            return []
        last = date.fromisoformat(row[0])
        first = last - timedelta(days=days - 1)
        sums = {
            d: (int(s), int(n))
            for d, s, n in self.store.conn.execute(
                "SELECT travel_day, SUM(charge), COUNT(*) FROM trips WHERE travel_day >= ? "
                "GROUP BY travel_day",
                (first.isoformat(),),
            )
        }
        out = []
        for n in range(days):
            day = (first + timedelta(days=n)).isoformat()
            charged, trips = sums.get(day, (0, 0))
            out.append((day, charged, trips))
        return out

    # -- lists ---------------------------------------------------------------------------------

    def riders(self, after: int = 0) -> list[dict[str, Any]]:
        """A page of riders by id after ``after``: cards (masked PAN and reference),
        trips, fares charged, amount captured, debts, whether on the deny list."""
        riders = self.store.query(
            "SELECT r.rider_id, r.par IS NOT NULL AS has_par, "
            "(SELECT COUNT(*) FROM trips t WHERE t.rider_id = r.rider_id) AS trips, "
            "(SELECT CAST(COALESCE(SUM(charge), 0) AS BIGINT) FROM trips t "
            "WHERE t.rider_id = r.rider_id) AS charged, "
            "(SELECT CAST(COALESCE(SUM(captured), 0) AS BIGINT) FROM aggregations a "
            "WHERE a.rider_id = r.rider_id) AS captured, "
            "(SELECT COUNT(*) FROM aggregations a WHERE a.rider_id = r.rider_id "
            "AND a.state = 'debt') AS debts, "
            "EXISTS (SELECT 1 FROM deny_list d WHERE d.rider_id = r.rider_id) AS denied "
            "FROM riders r WHERE r.merged_into IS NULL AND r.rider_id > ? "
            "ORDER BY r.rider_id LIMIT ?",
            (after, PAGE),
        )
        cards: dict[int, list[dict[str, Any]]] = {}
        if riders:
            for card in self.store.query(
                "SELECT rider_id, card_reference, masked_pan, token, scheme FROM cards "
                "WHERE rider_id BETWEEN ? AND ? ORDER BY first_seen, card_reference",
                (riders[0]["rider_id"], riders[-1]["rider_id"]),
            ):
                cards.setdefault(card["rider_id"], []).append({
                    "reference": mask_reference(card["card_reference"]),
                    "masked_pan": card["masked_pan"], "token": bool(card["token"]),
                    "scheme": card["scheme"],
                })  # fmt: skip
        for r in riders:
            r["cards"] = cards.get(r["rider_id"], [])
            r["denied"] = bool(r["denied"])
            r["has_par"] = bool(r["has_par"])
        return riders

    def trips(self, before: int | None = None, rider: int | None = None) -> list[dict[str, Any]]:
        """A page of trips, newest first (by id, before ``before``), of one rider or all."""
        where, params = ["1 = 1"], []
        if before is not None:
            where.append("trip_id < ?")
            params.append(before)
        if rider is not None:
            where.append("rider_id = ?")
            params.append(rider)
        return self.store.query(
            "SELECT trip_id, rider_id, travel_day, start_time, end_time, from_zone, "  # noqa: S608
            "to_zone, fare_type, fare, charge, adjustment, aggregation_id FROM trips "
            f"WHERE {' AND '.join(where)} ORDER BY trip_id DESC LIMIT ?",
            [*params, PAGE],
        )

    _AGGREGATION_COLUMNS: Final = (
        "aggregation_id, rider_id, travel_day, state, auth_state, decline_reason, total, "
        "captured, recovery_attempts, next_retry_at, opened_at, closed_at, error"
    )

    def aggregations(
        self, state: str | None = None, rider: int | None = None,
        before: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """A page of aggregations, newest first (by opening time and id, before
        ``before``), of one state and one rider or all."""
        where, params = ["1 = 1"], []
        for column, value in (("state", state), ("rider_id", rider)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("(opened_at, aggregation_id) < (?, ?)")
            params.extend(before)
        return self.store.query(
            f"SELECT {self._AGGREGATION_COLUMNS} FROM aggregations "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY opened_at DESC, aggregation_id DESC "
            "LIMIT ?",
            [*params, PAGE],
        )

    def debts(self) -> list[dict[str, Any]]:
        """The aggregations in debt recovery, the next attempt due first."""
        return self.store.query(
            f"SELECT {self._AGGREGATION_COLUMNS} FROM aggregations "  # noqa: S608
            "WHERE state = 'debt' ORDER BY next_retry_at, aggregation_id LIMIT ?",
            (PAGE * 4,),
        )

    def deny_list(self, after: int = 0) -> list[dict[str, Any]]:
        """A page of deny-list entries by version after ``after``, references masked."""
        rows = self.store.query(
            "SELECT d.version, d.card_reference, d.rider_id, d.reason, d.aggregation_id, "
            "d.added_at, c.masked_pan FROM deny_list d LEFT JOIN cards c "
            "USING (card_reference) WHERE d.version > ? ORDER BY d.version LIMIT ?",
            (after, PAGE),
        )
        for row in rows:
            row["reference"] = mask_reference(row.pop("card_reference"))
        return rows

    def deny_entry(self, version: int) -> dict[str, Any] | None:
        """The deny-list entry of this version (reference masked), with the rider's debts
        in recovery; ``None`` if it is not on the list."""
        rows = self.store.query(
            "SELECT d.version, d.card_reference, d.rider_id, d.reason, d.aggregation_id, "
            "d.added_at, c.masked_pan, (SELECT COUNT(*) FROM aggregations a WHERE "
            "a.rider_id = d.rider_id AND a.state = 'debt') AS debts FROM deny_list d "
            "LEFT JOIN cards c USING (card_reference) WHERE d.version = ?",
            (version,),
        )
        if not rows:
            return None
        rows[0]["reference"] = mask_reference(rows[0].pop("card_reference"))
        return rows[0]

    def audit(self, limit: int = PAGE) -> list[dict[str, Any]]:
        """The newest audit records."""
        return [r.to_json() for r in self.operators.audit(limit)]

    # -- the action ---------------------------------------------------------------------------

    def remove_deny_entry(self, operator: Operator, version: int) -> Removal:
        """Take the deny-list entry of ``version`` off the list for ``operator`` (who
        holds ``operations``), and write it in the audit log in the same transaction:
        the change is a new deny-list version, which gates fetch
        (``GET /v1/deny-list``) and ``backoffice consume`` publishes to the NATS bucket,
        like a removal by debt recovery. An entry gone already is audited as failed."""
        actor = f"operator:{operator.id}"
        with self.store.write() as w:
            row = w.execute(
                "SELECT card_reference, rider_id FROM deny_list WHERE version = ?", (version,)
            ).fetchone()
            if row is None:
                audit_id = self.operators.record(
                    w, actor, "deny_list.remove", "deny_list_entry", f"v{version}", "failed",
                    {"why": "not on the deny list"},
                )  # fmt: skip
                return Removal("failed", "-", audit_id)
            reference = mask_reference(row[0])
            self.store.deny_remove(w, [row[0]])
            audit_id = self.operators.record(
                w, actor, "deny_list.remove", "deny_list_entry", f"v{version}", "succeeded",
                {"reference": reference, "rider_id": row[1]},
            )  # fmt: skip
        return Removal("succeeded", reference, audit_id)

    def refused(self, operator_id: str, what: str, scope: str) -> None:
        """Write down a request refused for want of ``scope`` (audit outcome
        ``refused``)."""
        with self.store.write() as w:
            self.operators.record(
                w, f"operator:{operator_id}", what, "console", "-", "refused",
                {"scope_needed": scope},
            )  # fmt: skip
