"""Fare rules of the transit back office: taps to trips, trips to fares, fares capped.

Pure functions over plain values (no I/O besides :func:`load_fares` reading the
configuration), in the terms of the open-loop transit data model (Littlepay's, as
published by cal-itp): a **tap** is ``single``
(flat-fare gate), ``on`` or ``off`` (zone gates); a **trip** is one ride built from
taps; its **micropayment** has a nominal fare and a charge, the charge lowered by a
cap **adjustment** (``DAILY_CAP``, ``WEEKLY_CAP``); the micropayments of one rider's
period are **aggregated** into one charge at the issuer (:mod:`backoffice.engine`).

Trip building (:func:`build_trips`), for one rider's open taps in time order:

- ``single``: a trip of its own, ``FLAT_FARE``.
- ``on`` then ``off`` within ``max_trip_minutes``: ``COMPLETE_VARIABLE_FARE``, the zone
  fare between the two zones.
- an ``on`` followed by another ``on``, or by an ``off`` too late, or still alone
  ``max_trip_minutes`` after it (the resolution time ``now``): an
  ``INCOMPLETE_VARIABLE_FARE`` trip at ``incomplete_fare``; an ``off`` with no ``on``
  before it likewise.
- an ``on`` still within ``max_trip_minutes`` of ``now`` stays pending (its ``off`` may
  yet arrive from a gate that was offline).

Capping (:func:`cap_fare`): a rider never pays more than ``daily_cap`` over a travel day
nor ``weekly_cap`` over an ISO week (Monday to Sunday) of travel days; the charge of
a trip is its fare lowered to what is left under both caps, and the adjustment names
the cap that bound. Caps apply to what was charged before, in the order trips are
priced: the totals are always capped whatever the order taps arrive in.

A **travel day** is the calendar day in the configured time zone of a tap's time,
shifted back by ``travel_day_start`` (a tap at 02:00 with a 04:00 start belongs to
the day before).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backoffice.errors import FareError

__all__ = [
    "COMPLETE_VARIABLE_FARE",
    "DAILY_CAP",
    "FLAT_FARE",
    "INCOMPLETE_VARIABLE_FARE",
    "WEEKLY_CAP",
    "FareRules",
    "Priced",
    "TapPoint",
    "Trip",
    "build_trips",
    "cap_fare",
    "default_fares_text",
    "iso_week",
    "load_fares",
    "parse_fares",
    "price_trips",
    "week_of_day",
]

#: Micropayment types (Littlepay data model).
FLAT_FARE: Final = "FLAT_FARE"
COMPLETE_VARIABLE_FARE: Final = "COMPLETE_VARIABLE_FARE"
INCOMPLETE_VARIABLE_FARE: Final = "INCOMPLETE_VARIABLE_FARE"
#: Adjustment types.
DAILY_CAP: Final = "DAILY_CAP"
WEEKLY_CAP: Final = "WEEKLY_CAP"


@dataclass(frozen=True, slots=True)
class FareRules:
    """A fare configuration (module docstring); amounts in minor units."""

    currency: str = "978"
    timezone: str = "UTC"
    travel_day_start: timedelta = timedelta(0)
    flat_fare: int = 200
    zones: tuple[str, ...] = ()
    zone_fares: Mapping[frozenset[str], int] = field(default_factory=dict)
    incomplete_fare: int = 400
    max_trip: timedelta = timedelta(minutes=180)
    daily_cap: int | None = 600
    weekly_cap: int | None = 2000
    #: What the issuer lets a transit terminal capture on one authorisation.
    aggregation_limit: int = 1500
    #: How long after a travel day ends its aggregations close (late uploads, trips
    #: ending after midnight).
    close_after: timedelta = timedelta(minutes=240)
    debt_retry_interval: timedelta = timedelta(hours=48)
    debt_retry_max: int = 6
    debt_retry_period: timedelta = timedelta(days=14)

    def zone_fare(self, a: str | None, b: str | None) -> int | None:
        """The fare between zones ``a`` and ``b`` (either order), ``None`` if unknown."""
        if a is None or b is None:
            return None
        return self.zone_fares.get(frozenset((a, b)))

    def travel_day(self, when: datetime) -> date:
        """The travel day of an aware instant (module docstring)."""
        local = when.astimezone(ZoneInfo(self.timezone)) if self.timezone != "UTC" else when
        return (local - self.travel_day_start).date()

    def travel_day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC start and end of a travel day."""
        zone = UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)
        start = datetime(day.year, day.month, day.day, tzinfo=zone) + self.travel_day_start
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
        return start.astimezone(UTC), (end + self.travel_day_start).astimezone(UTC)


def _amount(obj: Mapping[str, Any], key: str, default: int | None, *, optional: bool) -> Any:
    value = obj.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FareError(f"{key}: a non-negative whole number of minor units, not {value!r}")
    return value


def parse_fares(obj: Any) -> FareRules:
    """Fare rules from a decoded JSON object (format of default_fares.json)."""
    if not isinstance(obj, dict):
        raise FareError("the fare configuration is a JSON object")
    known = {
        "_comment", "currency", "timezone", "travel_day_start", "flat_fare", "zones",
        "zone_fares", "incomplete_fare", "max_trip_minutes", "daily_cap", "weekly_cap",
        "aggregation_limit", "close_after_minutes", "debt_retry_hours", "debt_retry_max",
        "debt_retry_days",
    }  # fmt: skip
    unknown = sorted(set(obj) - known)
    if unknown:
        raise FareError(f"unknown field(s): {', '.join(unknown)}")
    currency = obj.get("currency", "978")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isdigit()):
        raise FareError(f"currency: an ISO 4217 numeric code such as '978', not {currency!r}")
    tz = obj.get("timezone", "UTC")
    try:
        if not isinstance(tz, str):
            raise ValueError
        ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        raise FareError(f"timezone: not a known time zone: {tz!r}") from None
    start_text = obj.get("travel_day_start", "00:00")
    try:
        hours, minutes = (int(x) for x in str(start_text).split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise FareError(f"travel_day_start: HH:MM, not {start_text!r}") from None
    zones = obj.get("zones", [])
    if not isinstance(zones, list) or not all(isinstance(z, str) and z for z in zones):
        raise FareError("zones: a list of zone names (strings)")
    if len(set(zones)) != len(zones):
        raise FareError("zones: a zone is listed twice")
    table: dict[frozenset[str], int] = {}
    for i, item in enumerate(obj.get("zone_fares", [])):
        where = f"zone_fares[{i}]"
        if not isinstance(item, dict) or set(item) != {"between", "fare"}:
            raise FareError(f"{where}: {{'between': [ZONE, ZONE], 'fare': N}}")
        pair = item["between"]
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in zones for p in pair)):
            raise FareError(f"{where}.between: two zones of 'zones', not {pair!r}")
        key = frozenset(pair)
        if key in table:
            raise FareError(f"{where}: the fare between {pair[0]} and {pair[1]} is given twice")
        table[key] = _amount(item, "fare", None, optional=False)
    missing = [f"{a}-{b}" for i, a in enumerate(zones) for b in zones[i:]
               if frozenset((a, b)) not in table]  # fmt: skip
    if missing:
        raise FareError(f"zone_fares: no fare between {', '.join(missing)}")

    def minutes_of(key: str, default: int) -> timedelta:
        return timedelta(minutes=_amount(obj, key, default, optional=False))

    rules = FareRules(
        currency=currency,
        timezone=tz,
        travel_day_start=timedelta(hours=hours, minutes=minutes),
        flat_fare=_amount(obj, "flat_fare", 200, optional=False),
        zones=tuple(zones),
        zone_fares=table,
        incomplete_fare=_amount(obj, "incomplete_fare", 400, optional=False),
        max_trip=minutes_of("max_trip_minutes", 180),
        daily_cap=_amount(obj, "daily_cap", None, optional=True),
        weekly_cap=_amount(obj, "weekly_cap", None, optional=True),
        aggregation_limit=_amount(obj, "aggregation_limit", 1500, optional=False),
        close_after=minutes_of("close_after_minutes", 240),
        debt_retry_interval=timedelta(hours=_amount(obj, "debt_retry_hours", 48, optional=False)),
        debt_retry_max=_amount(obj, "debt_retry_max", 6, optional=False),
        debt_retry_period=timedelta(days=_amount(obj, "debt_retry_days", 14, optional=False)),
    )
    if rules.max_trip <= timedelta(0):
        raise FareError("max_trip_minutes: at least 1")
    return rules


def default_fares_text() -> str:
    """The shipped default configuration (default_fares.json), as text."""
    return resources.files("backoffice").joinpath("default_fares.json").read_text()


def load_fares(path: str | Path | None = None) -> FareRules:
    """Fare rules from a JSON file (``None``: the shipped defaults)."""
    try:
        text = default_fares_text() if path is None else Path(path).read_text()
    except OSError as exc:
        raise FareError(f"cannot read {path}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise FareError(f"{path or 'default_fares.json'}: not JSON: {exc}") from None
    return parse_fares(obj)


@lru_cache(maxsize=4096)
def week_of_day(day: str) -> str:
    """:func:`iso_week` of a travel day given as ``YYYY-MM-DD`` (cached)."""
    return iso_week(date.fromisoformat(day))


def iso_week(day: date) -> str:
    """The ISO 8601 week of a travel day, e.g. ``2026-W48`` (weekly caps run Monday to
    Sunday)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class TapPoint(NamedTuple):
    """What trip building needs of an open tap: its key, time (ms since the epoch),
    direction, zone and travel day."""

    key: int
    time_ms: int
    direction: str
    zone: str | None
    travel_day: str


class Trip(NamedTuple):
    """One ride: its first tap (``start``), its tap off if any, the fare type and fare."""

    start: TapPoint
    end: TapPoint | None
    fare_type: str
    fare: int

    @property
    def travel_day(self) -> str:
        """The travel day of the trip: its first tap's."""
        return self.start.travel_day


def build_trips(
    taps: Sequence[TapPoint], rules: FareRules, now_ms: int | None
) -> tuple[list[Trip], list[TapPoint]]:
    """Trips of one rider's open taps in time order (module docstring), and the taps
    left pending (an ``on`` still awaiting its ``off``). ``now_ms=None`` resolves
    every pending ``on`` as incomplete (a forced close)."""
    trips: list[Trip] = []
    pending: TapPoint | None = None
    max_ms = int(rules.max_trip.total_seconds() * 1000)
    incomplete = rules.incomplete_fare
    for tap in taps:
        direction = tap.direction
        if direction == "single":
            trips.append(Trip(tap, None, FLAT_FARE, rules.flat_fare))
        elif direction == "on":
            if pending is not None:
                trips.append(Trip(pending, None, INCOMPLETE_VARIABLE_FARE, incomplete))
            pending = tap
        else:  # off
            if pending is not None and tap.time_ms - pending.time_ms <= max_ms:
                fare = rules.zone_fare(pending.zone, tap.zone)
                if fare is None:
                    trips.append(Trip(pending, tap, INCOMPLETE_VARIABLE_FARE, incomplete))
                else:
                    trips.append(Trip(pending, tap, COMPLETE_VARIABLE_FARE, fare))
                pending = None
                continue
            if pending is not None:
                trips.append(Trip(pending, None, INCOMPLETE_VARIABLE_FARE, incomplete))
                pending = None
            trips.append(Trip(tap, tap, INCOMPLETE_VARIABLE_FARE, incomplete))
    if pending is not None:
        if now_ms is None or now_ms - pending.time_ms > max_ms:
            trips.append(Trip(pending, None, INCOMPLETE_VARIABLE_FARE, incomplete))
        else:
            return trips, [pending]
    return trips, []


class Priced(NamedTuple):
    """A fare after capping: the charge and the adjustment that lowered it, if any."""

    charge: int
    adjustment: str | None


def cap_fare(fare: int, day_total: int, week_total: int, rules: FareRules) -> Priced:
    """The charge of a trip of ``fare`` for a rider who was charged ``day_total`` this
    travel day and ``week_total`` this ISO week so far (module docstring)."""
    charge, adjustment = fare, None
    if rules.daily_cap is not None and day_total + charge > rules.daily_cap:
        charge, adjustment = max(rules.daily_cap - day_total, 0), DAILY_CAP
    if rules.weekly_cap is not None and week_total + charge > rules.weekly_cap:
        charge, adjustment = max(rules.weekly_cap - week_total, 0), WEEKLY_CAP
    return Priced(charge, adjustment)


def price_trips(
    trips: Iterable[Trip],
    rules: FareRules,
    day_totals: dict[str, int],
    week_totals: dict[str, int],
) -> list[Priced]:
    """Cap each trip in turn, updating the rider's running ``day_totals`` (by travel
    day) and ``week_totals`` (by ISO week) in place."""
    out: list[Priced] = []
    for trip in trips:
        day = trip.travel_day
        week = week_of_day(day)
        priced = cap_fare(trip.fare, day_totals.get(day, 0), week_totals.get(week, 0), rules)
        day_totals[day] = day_totals.get(day, 0) + priced.charge
        week_totals[week] = week_totals.get(week, 0) + priced.charge
        out.append(priced)
    return out
