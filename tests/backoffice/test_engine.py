"""The back office engine against a fake issuer (the layer above the host client):
riders, deferred authorisation, trips and capped fares, aggregation into one
completion, declines to the deny list, debt recovery, riders joined by PAR, and
crash safety (a completion whose answer was lost is never charged twice)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backoffice.engine import Engine
from backoffice.errors import TapError
from backoffice.store import Home, Store
from tests.backoffice.taps import OTHER_PAN, VISA_PAN, FakeIssuer, plain_tap

DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
NEXT_MORNING = DAY + timedelta(days=1, hours=2)  # day 1 closed (00:00 + 240 min), day 2 not


def upload(store: Store, home: Home, taps: list[dict[str, Any]]) -> None:
    gates = {t["gate_id"] for t in taps}
    known = {g["gate_id"] for g in store.gates()}
    for _ in range(len(gates - known)):
        store.add_gate("gate", None)
    for gate in sorted(gates):
        mine = [t for t in taps if t["gate_id"] == gate]
        store.insert_taps(gate, mine, home.fares())


def engine(store: Store, issuer: FakeIssuer | None) -> Engine:
    return Engine.for_home(store, issuer)


def flat_day(home: Home, n: int, start: datetime = DAY, pan: str = VISA_PAN,
             first_seq: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    pub = home.sealing_public_key()
    return [plain_tap(pub, "G1", first_seq + i, start + timedelta(hours=i), pan=pan)
            for i in range(n)]  # fmt: skip


def one(store: Store, sql: str, *params: Any) -> Any:
    return store.conn.execute(sql, params).fetchone()


def test_a_day_of_flat_fares_is_one_authorisation_and_one_capped_completion(
    home: Home, store: Store
) -> None:
    issuer = FakeIssuer()
    upload(store, home, flat_day(home, 5))
    report = engine(store, issuer).run(now=DAY + timedelta(hours=6))
    assert (report.taps, report.riders_new, report.authorised) == (5, 1, 1)
    assert (report.trips, report.fares_charged, report.closed) == (5, 600, 0)  # day not over
    assert [a.request_id for a in issuer.answers.values() if hasattr(a, "request_id")] == [
        f"bo:auth:{engine(store, None).instance}:G1:1"
    ]
    charges = [r[0] for r in store.conn.execute("SELECT charge FROM trips ORDER BY trip_id")]
    assert charges == [200, 200, 200, 0, 0]
    report = engine(store, issuer).run(now=NEXT_MORNING)
    assert (report.closed, report.completed, report.captured) == (1, 1, 600)
    assert issuer.captures == [
        ("txn_1", 600, f"bo:cap:{one(store, 'SELECT aggregation_id FROM aggregations')[0]}")
    ]
    # No track 2 is kept, sealed or not, once the authorisation has its answer.
    assert one(store, "SELECT COUNT(*) FROM tap_boxes")[0] == 0
    assert one(store, "SELECT COUNT(*) FROM taps WHERE track2_sealed IS NOT NULL")[0] == 0
    # A second pass changes nothing and calls nobody.
    again = engine(store, issuer).run(now=NEXT_MORNING)
    assert (again.taps, again.trips, again.closed, again.issuer_calls) == (0, 0, 0, 0)
    assert len(issuer.captures) == 1


def test_each_travel_day_is_its_own_aggregation_and_the_week_is_capped(
    home: Home, store: Store
) -> None:
    issuer = FakeIssuer()
    taps = []
    for d in range(5):  # Tuesday to Saturday, 4 rides a day
        taps += flat_day(home, 4, start=DAY + timedelta(days=d), first_seq=1 + 4 * d)
    upload(store, home, taps)
    report = engine(store, issuer).run(now=DAY + timedelta(days=6))
    assert (report.authorised, report.closed, report.completed) == (5, 5, 4)
    # 600 a day, the weekly cap of 2000 reached on the fourth day.
    assert sorted(a for _, a, _ in issuer.captures) == sorted([600, 600, 600, 200])
    assert report.reversed == 1  # the fifth day: nothing due, the hold released
    rows = store.query("SELECT adjustment, COUNT(*) AS n FROM trips GROUP BY adjustment")
    assert {r["adjustment"]: r["n"] for r in rows} == {None: 10, "DAILY_CAP": 3, "WEEKLY_CAP": 7}


def test_zone_trips_pair_on_and_off_across_uploads(home: Home, store: Store) -> None:
    issuer = FakeIssuer()
    pub = home.sealing_public_key()
    store.add_gate("Central", "1")
    store.add_gate("Airport", "3")
    store.insert_taps("G1", [plain_tap(pub, "G1", 1, DAY, direction="on", zone="1")], home.fares())
    first = engine(store, issuer).run(now=DAY + timedelta(minutes=5))
    assert (first.authorised, first.trips, first.taps_waiting) == (1, 0, 1)
    off = plain_tap(pub, "G2", 1, DAY + timedelta(minutes=40), direction="off", zone="3")
    store.insert_taps("G2", [off], home.fares())
    second = engine(store, issuer).run(now=DAY + timedelta(minutes=45))
    assert (second.trips, second.fares_charged, second.issuer_calls) == (1, 350, 0)
    trip = store.query("SELECT on_tap, off_tap, from_zone, to_zone, fare_type FROM trips")[0]
    assert trip == {"on_tap": "G1:1", "off_tap": "G2:1", "from_zone": "1", "to_zone": "3",
                    "fare_type": "COMPLETE_VARIABLE_FARE"}  # fmt: skip


def test_a_decline_denies_the_card_and_debt_recovery_lifts_it(home: Home, store: Store) -> None:
    issuer = FakeIssuer(declined={VISA_PAN}, recover_after=2)
    upload(store, home, flat_day(home, 2))
    eng = engine(store, issuer)
    report = eng.run(now=DAY + timedelta(hours=3))
    assert (report.declined, report.deny_added) == (1, 1)
    ref = flat_day(home, 1)[0]["card_reference"]
    listed = store.deny_changes(0)
    assert listed["add"] == [ref]
    assert listed["full"]
    assert listed["version"] == 1
    # The period closes: the fares are a debt; recovery starts with that pass.
    report = eng.run(now=NEXT_MORNING)
    assert (report.closed, report.debts) == (1, 1)
    assert issuer.resubmissions == 1
    assert issuer.captures == []
    assert eng.run(now=NEXT_MORNING + timedelta(hours=1)).issuer_calls == 0  # not yet due
    report = eng.run(now=NEXT_MORNING + timedelta(hours=49))
    assert (report.recovered, report.captured, report.deny_removed) == (1, 400, 1)
    assert issuer.captures == [("txn_r2", 400, issuer.captures[0][2])]
    assert store.deny_changes(1) == {"version": 2, "full": False, "add": [], "remove": [ref]}
    agg = store.query("SELECT state, recovery_attempts FROM aggregations")[0]
    assert agg == {"state": "recovered", "recovery_attempts": 2}


def test_debt_recovery_stops_after_six_attempts(home: Home, store: Store) -> None:
    issuer = FakeIssuer(declined={VISA_PAN}, recover_after=99)
    upload(store, home, flat_day(home, 1))
    eng = engine(store, issuer)
    eng.run(now=NEXT_MORNING)
    for k in range(1, 8):
        eng.run(now=NEXT_MORNING + timedelta(hours=49 * k))
    assert issuer.resubmissions == 6
    assert store.query("SELECT state FROM aggregations") == [{"state": "written_off"}]
    assert store.deny_changes(0)["add"]  # still denied


def test_card_and_phone_of_one_account_are_one_rider_by_par(home: Home, store: Store) -> None:
    issuer = FakeIssuer(par={VISA_PAN: "V001" + "0" * 25, OTHER_PAN: "V001" + "0" * 25})
    pub = home.sealing_public_key()
    store.add_gate("G", None)
    taps = [plain_tap(pub, "G1", i + 1, DAY + timedelta(hours=i),
                      pan=VISA_PAN if i % 2 else OTHER_PAN) for i in range(4)]  # fmt: skip
    store.insert_taps("G1", taps, home.fares())
    report = engine(store, issuer).run(now=NEXT_MORNING)
    assert (report.riders_new, report.riders_merged) == (2, 1)
    riders = store.query("SELECT DISTINCT rider_id FROM trips")
    assert len(riders) == 1
    # Caps count both: 4 rides of 200 cost 600, whatever card paid.
    assert report.fares_charged == 600
    # Two authorisations (one per card), each completed for its own trips.
    assert sorted(a for _, a, _ in issuer.captures) == [200, 400]


def test_a_completion_whose_answer_was_lost_is_not_charged_twice(home: Home, store: Store) -> None:
    issuer = FakeIssuer(lose_next=True)
    upload(store, home, flat_day(home, 2))
    report = engine(store, issuer).run(now=NEXT_MORNING)
    assert (report.closed, report.completed) == (1, 0)  # the issuer took it; no answer came
    assert store.query("SELECT state, total FROM aggregations") == [
        {"state": "closing", "total": 400}
    ]
    report = engine(store, issuer).run(now=NEXT_MORNING + timedelta(minutes=1))
    assert (report.completed, report.captured) == (1, 400)
    assert len(issuer.captures) == 1  # the same request id: replayed, not charged again


def test_no_issuer_nothing_is_priced_or_closed_until_it_answers(home: Home, store: Store) -> None:
    upload(store, home, flat_day(home, 3))
    report = engine(store, None).run(now=NEXT_MORNING)
    assert (report.auth_waiting, report.trips, report.closed) == (1, 0, 0)
    down = FakeIssuer(unreachable=True)
    report = engine(store, down).run(now=NEXT_MORNING)
    assert (report.auth_waiting, report.trips) == (1, 0)
    assert one(store, "SELECT COUNT(*) FROM tap_boxes")[0] == 1  # the first tap's, until
    assert one(store, "SELECT COUNT(*) FROM taps WHERE track2_sealed IS NOT NULL")[0] == 0
    up = FakeIssuer()
    report = engine(store, up).run(now=NEXT_MORNING)
    assert (report.authorised, report.trips, report.completed, report.captured) == (1, 3, 1, 600)


def test_a_box_sealed_to_another_key_or_a_false_reference_is_written_off(
    home: Home, store: Store, tmp_path: Any
) -> None:
    other = Home(tmp_path / "other")
    other.init()
    issuer = FakeIssuer()
    bad_seal = plain_tap(other.sealing_public_key(), "G1", 1, DAY)
    liar = plain_tap(home.sealing_public_key(), "G1", 2, DAY, pan=OTHER_PAN)
    liar["card_reference"] = "ab" * 16
    upload(store, home, [bad_seal, liar])
    report = engine(store, issuer).run(now=NEXT_MORNING)
    assert report.auth_failed == 2
    assert report.issuer_calls == 0
    assert report.written_off == 2
    assert issuer.captures == []
    assert any("does not open" in e for e in report.errors)
    assert any("card reference does not match" in e for e in report.errors)


def test_uploads_are_idempotent_and_all_or_nothing(home: Home, store: Store) -> None:
    store.add_gate("G", None)
    store.add_gate("H", None)
    taps = flat_day(home, 3)
    first = store.insert_taps("G1", taps[:2], home.fares())
    assert (first.accepted, first.duplicates) == (["G1:1", "G1:2"], [])
    again = store.insert_taps("G1", taps, home.fares())
    assert (again.accepted, again.duplicates) == (["G1:3"], ["G1:1", "G1:2"])
    broken = flat_day(home, 2, first_seq=10)
    broken[1]["masked_pan"] = VISA_PAN  # a full PAN must never be stored
    with pytest.raises(TapError, match="masked_pan"):
        store.insert_taps("G1", broken, home.fares())
    with pytest.raises(PermissionError):
        store.insert_taps("G2", flat_day(home, 1, first_seq=20), home.fares())
    assert one(store, "SELECT COUNT(*) FROM taps")[0] == 3


def test_denied_taps_are_kept_but_make_no_trip(home: Home, store: Store) -> None:
    pub = home.sealing_public_key()
    taps = [*flat_day(home, 1), plain_tap(pub, "G1", 2, DAY, decision="deny")]
    upload(store, home, taps)
    report = engine(store, FakeIssuer()).run(now=NEXT_MORNING)
    assert (report.taps, report.trips, report.captured) == (1, 1, 200)
    assert one(store, "SELECT decision FROM taps WHERE tap_id = 'G1:2'")[0] == "deny"
    assert one(store, "SELECT COUNT(*) FROM pending")[0] == 0
