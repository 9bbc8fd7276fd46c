"""A small known traffic for the back office console's tests: two riders over two
travel days, priced by the engine against a fake issuer that declines one of them
(so there is a debt and a deny-list entry), with the chart values it must give."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backoffice.engine import Engine
from backoffice.store import Home, Store
from tests.backoffice.taps import OTHER_PAN, VISA_PAN, FakeIssuer, plain_tap

__all__ = ["DAY", "Traffic", "busy_week", "known_traffic"]

#: The first travel day (fares in UTC, days from midnight).
DAY = datetime(2026, 11, 24, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Traffic:
    """What :func:`known_traffic` stored and what the charts must say of it."""

    taps_per_hour: dict[str, int]  # of DAY, hours with taps
    revenue: dict[str, int]  # per travel day, minor units
    denied_reference: str


def known_traffic(home: Home, store: Store) -> Traffic:
    """Day 1: VISA_PAN taps at 07:00, 08:00, 09:00, 10:00 (200 each, capped at
    600 a day: 200, 200, 200, 0); OTHER_PAN (declined by the issuer, so on the
    deny list) at 07:30 and 17:00 (200 each), then is denied at a gate at 18:00 (a tap,
    no trip). Day 2: VISA_PAN at 08:15 (200). The engine runs on the morning of day 3:
    days 1 and 2 are closed, the aggregation of OTHER_PAN is a debt."""
    pub = home.sealing_public_key()
    store.add_gate("Central", None)
    at = [
        (VISA_PAN, DAY + timedelta(hours=h), "open") for h in (7, 8, 9, 10)
    ] + [
        (OTHER_PAN, DAY + timedelta(hours=7, minutes=30), "open"),
        (OTHER_PAN, DAY + timedelta(hours=17), "open"),
        (VISA_PAN, DAY + timedelta(days=1, hours=8, minutes=15), "open"),
    ]  # fmt: skip
    taps = [plain_tap(pub, "G1", n + 1, when, pan=pan, decision=decision)
            for n, (pan, when, decision) in enumerate(at)]  # fmt: skip
    store.insert_taps("G1", taps, home.fares())
    issuer = FakeIssuer(declined={OTHER_PAN}, recover_after=99)
    Engine.for_home(store, issuer).run(now=DAY + timedelta(hours=12))
    denied = plain_tap(pub, "G1", 8, DAY + timedelta(hours=18), pan=OTHER_PAN, decision="deny")
    store.insert_taps("G1", [denied], home.fares())
    Engine.for_home(store, issuer).run(now=DAY + timedelta(days=2, hours=6))
    return Traffic(
        taps_per_hour={"07:00": 2, "08:00": 1, "09:00": 1, "10:00": 1, "17:00": 1, "18:00": 1},
        revenue={"2026-11-24": 1000, "2026-11-25": 200},
        denied_reference=taps[4]["card_reference"],
    )


def busy_week(home: Home, store: Store, riders: int = 40) -> str:
    """A week of commuters (for the browser test's screenshots): ``riders`` cards, each
    tapping on the way in (07:00-09:59) and back (16:00-18:59) on weekdays, some at
    lunch too, over the seven travel days up to ``DAY``; one card declined by the
    issuer (on the deny list, a debt). The engine runs the morning after. The masked
    PAN of the declined card."""
    pub = home.sealing_public_key()
    store.add_gate("Central", None)
    taps = []
    declined = ""
    for n in range(riders):
        pan = f"4761739001{n:04d}10"
        declined = declined or pan
        for d in range(7):
            day = DAY - timedelta(days=6 - d)
            if day.weekday() >= 5 and n % 3:
                continue
            minutes = [7 * 60 + (n * 37 + d * 11) % 180, 16 * 60 + (n * 53 + d * 7) % 180]
            if (n + d) % 4 == 0:
                minutes.insert(1, 12 * 60 + (n * 13) % 60)
            for m in minutes:
                taps.append((pan, day + timedelta(minutes=m)))
    taps.sort(key=lambda t: t[1])
    store.insert_taps(
        "G1",
        [plain_tap(pub, "G1", i + 1, when, pan=pan) for i, (pan, when) in enumerate(taps)],
        home.fares(),
    )
    issuer = FakeIssuer(declined={declined}, recover_after=99)
    Engine.for_home(store, issuer).run(now=DAY + timedelta(days=1, hours=6))
    return declined[:6] + "******" + declined[-4:]
