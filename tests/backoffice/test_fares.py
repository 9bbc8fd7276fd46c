"""Fare rules (backoffice.fares): trips from taps, zone fares, incomplete
trips, daily and weekly caps, travel days, and the configuration's checks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from backoffice.errors import FareError
from backoffice.fares import (
    COMPLETE_VARIABLE_FARE,
    DAILY_CAP,
    FLAT_FARE,
    INCOMPLETE_VARIABLE_FARE,
    WEEKLY_CAP,
    TapPoint,
    build_trips,
    cap_fare,
    default_fares_text,
    iso_week,
    load_fares,
    parse_fares,
    price_trips,
)

RULES = load_fares()  # the shipped defaults: flat 200, caps 600 / 2000, zones 1-3
T0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)
MIN = 60_000


def tap(key: int, minutes: int, direction: str = "single", zone: str | None = None,
        day: str = "2026-11-24") -> TapPoint:  # fmt: skip
    return TapPoint(key, MS + minutes * MIN, direction, zone, day)


def test_the_shipped_defaults() -> None:
    assert (RULES.flat_fare, RULES.daily_cap, RULES.weekly_cap) == (200, 600, 2000)
    assert RULES.zone_fare("1", "3") == RULES.zone_fare("3", "1") == 350
    assert RULES.aggregation_limit == 1500
    assert RULES.daily_cap is not None
    assert RULES.daily_cap <= RULES.aggregation_limit


def test_single_taps_are_flat_fares_capped_daily() -> None:
    trips, pending = build_trips([tap(i, i * 30) for i in range(5)], RULES, MS + 10**9)
    assert pending == []
    assert [t.fare_type for t in trips] == [FLAT_FARE] * 5
    priced = price_trips(trips, RULES, {}, {})
    assert [p.charge for p in priced] == [200, 200, 200, 0, 0]
    assert [p.adjustment for p in priced] == [None, None, None, DAILY_CAP, DAILY_CAP]


def test_a_cap_lowers_the_fare_that_crosses_it() -> None:
    assert cap_fare(350, 500, 500, RULES) == cap_fare(350, 500, 0, RULES)
    assert (cap_fare(350, 500, 500, RULES).charge, cap_fare(350, 500, 500, RULES).adjustment) == (
        100, DAILY_CAP,
    )  # fmt: skip
    weekly = cap_fare(200, 0, 1900, RULES)
    assert (weekly.charge, weekly.adjustment) == (100, WEEKLY_CAP)
    assert cap_fare(200, 0, 2000, RULES).charge == 0


def test_the_weekly_cap_spans_the_travel_days_of_an_iso_week() -> None:
    monday = date(2026, 11, 23)
    days: dict[str, int] = {}
    weeks: dict[str, int] = {}
    charged: list[int] = []
    for d in range(7):  # 3 rides a day, 600 a day: 2000 reached on Thursday
        day = (monday + timedelta(days=d)).isoformat()
        trips, _ = build_trips([tap(d * 10 + i, d * 1440 + i * 60, day=day) for i in range(3)],
                               RULES, None)  # fmt: skip
        charged.append(sum(p.charge for p in price_trips(trips, RULES, days, weeks)))
    assert charged == [600, 600, 600, 200, 0, 0, 0]
    assert weeks == {"2026-W48": 2000}
    # The next Monday is a new week.
    trips, _ = build_trips([tap(99, 7 * 1440, day="2026-11-30")], RULES, None)
    assert price_trips(trips, RULES, days, weeks)[0].charge == 200
    assert iso_week(date(2026, 11, 30)) == "2026-W49"


def test_zone_trips_complete_and_incomplete() -> None:
    taps = [
        tap(1, 0, "on", "1"), tap(2, 20, "off", "3"),  # complete 1->3
        tap(3, 60, "on", "2"), tap(4, 70, "on", "2"),  # the first on has no off
        tap(5, 80, "off", "2"),  # completes the second on: 2->2
        tap(6, 100, "off", "1"),  # an off with no on
        tap(7, 120, "on", "1"), tap(8, 120 + 181, "off", "2"),  # off too late
    ]  # fmt: skip
    trips, pending = build_trips(taps, RULES, MS + 10**9)
    assert pending == []
    got = [(t.start.key, t.end.key if t.end else None, t.fare_type, t.fare) for t in trips]
    assert got == [
        (1, 2, COMPLETE_VARIABLE_FARE, 350),
        (3, None, INCOMPLETE_VARIABLE_FARE, 400),
        (4, 5, COMPLETE_VARIABLE_FARE, 160),
        (6, 6, INCOMPLETE_VARIABLE_FARE, 400),
        (7, None, INCOMPLETE_VARIABLE_FARE, 400),
        (8, 8, INCOMPLETE_VARIABLE_FARE, 400),
    ]


def test_a_recent_tap_on_waits_for_its_tap_off() -> None:
    on = tap(1, 0, "on", "1")
    trips, pending = build_trips([on], RULES, MS + 179 * MIN)
    assert (trips, pending) == ([], [on])
    trips, pending = build_trips([on], RULES, MS + 181 * MIN)
    assert pending == []
    assert trips[0].fare_type == INCOMPLETE_VARIABLE_FARE
    trips, pending = build_trips([on], RULES, None)  # a forced close
    assert pending == []
    assert trips[0].fare == 400


def test_travel_day_in_the_configured_zone_and_start() -> None:
    obj = json.loads(default_fares_text())
    rules = parse_fares({**obj, "timezone": "Europe/Paris", "travel_day_start": "04:00"})
    # 02:30 UTC = 03:30 in Paris: still the day before.
    assert rules.travel_day(datetime(2026, 11, 24, 2, 30, tzinfo=UTC)) == date(2026, 11, 23)
    assert rules.travel_day(datetime(2026, 11, 24, 3, 0, tzinfo=UTC)) == date(2026, 11, 24)
    start, end = rules.travel_day_bounds(date(2026, 11, 24))
    assert (start.hour, end - start) == (3, timedelta(days=1))
    assert RULES.travel_day(datetime(2026, 11, 24, 23, 59, tzinfo=UTC)) == date(2026, 11, 24)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"flat_fare": -1}, "flat_fare"),
        ({"flat_fare": "2.00"}, "flat_fare"),
        ({"daily_cap": True}, "daily_cap"),
        ({"zone_fares": [{"between": ["1", "2"], "fare": 250}]}, "no fare between 1-1"),
        ({"zone_fares": [{"between": ["1", "9"], "fare": 250}]}, "two zones"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"travel_day_start": "25:00"}, "travel_day_start"),
        ({"currency": "EUR"}, "currency"),
        ({"surcharge": 5}, "unknown field"),
        ({"max_trip_minutes": 0}, "max_trip_minutes"),
    ],
)
def test_bad_configurations_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    obj = json.loads(default_fares_text())
    with pytest.raises(FareError, match=message):
        parse_fares({**obj, **change})


def test_caps_may_be_absent() -> None:
    rules = parse_fares({"flat_fare": 300, "daily_cap": None, "weekly_cap": None})
    assert cap_fare(300, 10_000, 10_000, rules).charge == 300
