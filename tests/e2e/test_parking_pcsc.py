"""End to end, the parking gate through pcscd + vpcd against a real ``issuer serve`` on
SQLite: the car park's terminal registered at MCC 7523, cards provisioned by the
issuer CLI and presented by ``card serve --via pcsc`` in a vpcd reader, the lane run by
:func:`terminal.commands.parking.run_parking` (in process, with a fake clock: a stay of
days in no time) and, once, by ``terminal gate parking`` as a subprocess.

Shown: entry pre-authorises the maximum and exit completes the fee and releases the
rest (the ledger's balance and hold say so); an exit with no entry, a declined
pre-authorisation and the issuer down at entry keep the barrier closed; a stay over the
maximum captures the maximum and flags the overstay; the issuer down at exit opens,
queues the completion and a restarted gate completes it once; a card pulled away
mid-tap decides nothing.

Needs pcscd with the vpcd readers (marker ``pcsc``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from terminal.apps.parking import ISSUER_DOWN_TEXT, NO_ENTRY_TEXT
from terminal.commands.parking import run_parking
from tests.support import e2e

pytestmark = pytest.mark.pcsc


@dataclass
class CarPark(e2e.IssuerService):
    rich: str
    poor: str
    card: Path
    poor_card: Path

    def balance(self, account: str | None = None) -> tuple[int, int]:
        return self.account_balance(account or self.rich)


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CarPark]:
    tmp = tmp_path_factory.mktemp("parking")
    env = e2e.init_issuer(tmp / "home")
    rich = e2e.new_account(env, "Ada Lovelace", "200.00")
    poor = e2e.new_account(env, "Charles Babbage", "5.00")
    terminal = e2e.add_terminal(env, "City Car Park", "7523")
    card, poor_card = tmp / "visa-card.json", tmp / "mastercard-card.json"
    e2e.provision_card(env, rich, card)
    e2e.provision_card(env, poor, poor_card, scheme="mastercard")
    with e2e.serve_issuer(env) as url:
        yield CarPark(env, url, terminal, rich, poor, card, poor_card)


def _card(profile: Path, taps: int, *extra: str) -> e2e.ServedCard:
    """``card serve`` on this process's vpcd reader for ``taps`` taps (a tap ends 0.4 s
    after the card's last answer: the driver takes the card away)."""
    number = e2e.free_vpcd_reader()
    return e2e.ServedCard(profile, taps, "--idle-timeout", "0.4", *extra, reader=number)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Lane:
    """run_parking for one tap at a time on this process's vpcd reader, output parsed."""

    def __init__(self, park: CarPark, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.park, self.home, self.capsys = park, home, capsys
        self.clock = Clock()

    def tap(self, *, lane: str = "auto", url: str | None = None, taps: int = 1) -> Any:
        self.capsys.readouterr()
        run_parking(
            reader_path=e2e.own_reader_path(), config_path=None, home=str(self.home),
            issuer_url=url or self.park.url, terminal_id=self.park.terminal_id,
            terminal_key=self.park.key, tariff_path=None, max_amount=None, taps=taps,
            timeout=20, as_json=True, lane=lane, clock=self.clock, tls=self.park.terminal.tls,
        )  # fmt: skip
        lines = [json.loads(x) for x in self.capsys.readouterr().out.splitlines() if x.strip()]
        return lines[0] if taps == 1 else lines


@pytest.fixture
def lane(park: CarPark, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Lane:
    return Lane(park, tmp_path / "gate", capsys)


def _txn(park: CarPark, txn: str) -> dict[str, Any]:
    found = [t for t in park.run("txn", "list") if t["id"] == txn]
    assert found, txn
    record: dict[str, Any] = found[0]
    return record


def test_entry_holds_the_maximum_and_exit_completes_the_fee(pcscd: str, park: CarPark,
                                                            lane: Lane) -> None:  # fmt: skip
    balance, held = park.balance()
    with _card(park.card, 2) as card:
        entry = lane.tap()
        assert (entry["action"], entry["open"], entry["amount"]) == ("entry", True, 2000)
        assert park.balance() == (balance, held + 2000)
        lane.clock.now += timedelta(hours=2, minutes=10)
        card.next()
        leave = lane.tap()
    assert (leave["action"], leave["open"], leave["queued"]) == ("exit", True, False)
    assert (leave["amount"], leave["captured"], leave["overstay"]) == (750, 750, 0)
    assert leave["session"] == entry["session"]
    assert park.balance() == (balance - 750, held)  # the rest of the hold released
    record = _txn(park, entry["transaction_id"])
    assert (record["status"], record["captured_amount"], record["mcc"]) == ("closed", 750, "7523")


def test_no_entry_and_a_declined_pre_authorisation_keep_the_barrier_closed(
    pcscd: str, park: CarPark, lane: Lane
) -> None:
    before = park.balance(), park.balance(park.poor)
    with _card(park.card, 1):
        denied = lane.tap(lane="exit")
    assert (denied["action"], denied["open"], denied["message"]) == ("deny", False, NO_ENTRY_TEXT)
    with _card(park.poor_card, 1):
        declined = lane.tap(lane="entry")
    assert (declined["action"], declined["open"]) == ("deny", False)
    assert "INSUFFICIENT_FUNDS" in declined["reason"]
    assert (park.balance(), park.balance(park.poor)) == before


@pytest.mark.slow
def test_a_stay_over_the_maximum_captures_it_and_flags_the_overstay(
    pcscd: str, park: CarPark, lane: Lane
) -> None:
    balance, held = park.balance()
    with _card(park.card, 2) as card:
        entry = lane.tap()
        lane.clock.now += timedelta(days=2, hours=3)
        card.next()
        leave = lane.tap()
    assert entry["open"]
    assert (leave["action"], leave["open"]) == ("exit", True)
    assert (leave["amount"], leave["captured"], leave["overstay"]) == (4750, 2000, 2750)
    assert "overstay" in leave["message"]
    assert park.balance() == (balance - 2000, held)


@pytest.mark.slow
def test_issuer_down_closed_at_entry_queued_at_exit_completed_once_later(
    pcscd: str, park: CarPark, lane: Lane
) -> None:
    balance, held = park.balance()
    dead = e2e.unused_url()
    with _card(park.card, 3) as card:
        refused = lane.tap(url=dead)
        assert (refused["action"], refused["open"]) == ("deny", False)
        assert refused["message"] == ISSUER_DOWN_TEXT
        card.next()
        entry = lane.tap()
        assert (entry["action"], entry["open"]) == ("entry", True)
        lane.clock.now += timedelta(hours=1)
        card.next()
        leave = lane.tap(url=dead)
    assert (leave["action"], leave["open"], leave["queued"]) == ("exit", True, True)
    assert park.balance() == (balance, held + 2000)  # not completed yet: still held
    lane.tap(taps=0)  # a restarted gate sends the queued completion first
    assert park.balance() == (balance - 250, held)
    lane.tap(taps=0)  # nothing queued any more: nothing changes
    assert park.balance() == (balance - 250, held)
    assert _txn(park, entry["transaction_id"])["captured_amount"] == 250


def test_a_card_pulled_away_mid_tap_decides_nothing(pcscd: str, park: CarPark, lane: Lane) -> None:
    before = park.balance()
    with _card(park.card, 1, "--pull-after", "2"):
        pulled = lane.tap()
    assert (pulled["action"], pulled["open"]) == ("try again", False)
    assert park.balance() == before


@pytest.mark.slow
def test_terminal_gate_parking(pcscd: str, park: CarPark, tmp_path: Path) -> None:
    """The gate command as an operator runs it: entry then exit on one reader (auto
    lane), a tariff without free time (a started hour: 2.50)."""
    tariff = tmp_path / "tariff.json"
    tariff.write_text(json.dumps({"schema": "tapstack.parking-tariff/1", "currency": "EUR",
                                  "free_minutes": 0, "per_started_hour": "2.50",
                                  "daily_maximum": "15.00"}))  # fmt: skip
    balance, held = park.balance()
    env = {**os.environ, **park.terminal.environment(park.url)}
    with _card(park.card, 2):
        gate = subprocess.run(
            [str(e2e.BIN / "terminal"), "gate", "parking", "--reader", e2e.own_reader_path(),
             "--home", str(tmp_path / "gate"), "--tariff", str(tariff), "--taps", "2",
             "--timeout", "20", "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert gate.returncode == 0, gate.stderr
    entry, leave = (json.loads(line) for line in gate.stdout.splitlines())
    assert (entry["action"], entry["amount"]) == ("entry", 1500)
    assert (leave["action"], leave["amount"], leave["captured"]) == ("exit", 250, 250)
    assert park.balance() == (balance - 250, held)
    pan = json.loads(park.card.read_text())["applications"][0]["pan"]
    assert pan not in gate.stdout + gate.stderr
