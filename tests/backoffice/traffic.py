"""A small known traffic for the back office console's tests: two riders over two
travel days, priced by the engine against a fake issuer that declines one of them
(so there is a debt and a deny-list entry), with the chart values it must give."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backoffice.engine import Engine
from backoffice.store import Home, Store
from tests.backoffice.taps import OTHER_PAN, VISA_PAN, FakeIssuer, plain_tap

__all__ = ["DAY", "Traffic", "known_traffic"]

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
