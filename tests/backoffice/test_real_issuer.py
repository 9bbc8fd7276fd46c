"""The back office against a real ``issuer serve`` (SQLite) as an MCC 4111 terminal:
taps made by the kernel against software cards provisioned with the issuer CLI,
deferred authorisation, one capped completion per period (over-capture), a card and
its phone joined by PAR, a decline on the deny list served to gates, debt recovery,
and ``kill -9`` of the back office in the middle of an aggregation: after a restart
every aggregation is captured exactly once."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backoffice.engine import Engine
from backoffice.engine.context import TransitHostClient
from backoffice.store import Home, Store
from card.emv import EmvCard
from emvwire.profile import load_profile
from emvwire.tls import ClientTls
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.backoffice.databases import home_args
from tests.backoffice.taps import kernel_tap, transit_config
from tests.support.e2e import BIN, IssuerService, add_terminal, init_issuer, serve_issuer

pytestmark = pytest.mark.slow

PASS = "backoffice e2e passphrase"


@dataclass
class RealIssuer(IssuerService):
    """``issuer serve`` on a fresh SQLite home, the back office its MCC 4111 terminal
    (over mutual TLS, with the terminal's certificate)."""

    home: Path

    def account(self, funds: int, folder: Path, *, phone: bool = False) -> Holder:
        """A new account with ``funds`` (minor units), a Visa card, and a phone token
        bound to it if asked."""
        account = self.run("account", "create", "--holder", "Rider")["id"]
        if funds:
            self.run("account", "credit", account, "--amount", f"{funds / 100:.2f}")
        folder.mkdir(parents=True, exist_ok=True)
        made = self.run("card", "provision", "--account", account, "--scheme", "visa",
                        "--form", "card", "--out", str(folder / "card.json"))  # fmt: skip
        cards = [EmvCard(load_profile(folder / "card.json"))]
        if phone:
            self.run("card", "provision", "--account", account, "--scheme", "visa",
                     "--form", "phone", "--card", made["card"]["id"],
                     "--out", str(folder / "phone.json"))  # fmt: skip
            cards.append(EmvCard(load_profile(folder / "phone.json")))
        return Holder(self, account, cards)

    def client_env(self) -> dict[str, str]:
        """The back office's issuer settings as environment variables."""
        return self.terminal.environment(self.url)

    def client(self) -> TransitHostClient:
        return TransitHostClient(
            self.url, self.terminal_id, self.key, tls=self.terminal.tls, timeout=10.0
        )

    def transactions(self, account: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.run("txn", "list", "--account", account,
                                               "--limit", "1000")  # fmt: skip
        return found


@dataclass
class Holder:
    """An issuer account and its cards (in-process software cards)."""

    issuer: RealIssuer
    account: str
    cards: list[EmvCard]

    def balance(self) -> tuple[int, int]:
        return self.issuer.account_balance(self.account)

    def tap(self, pub: bytes, gate: str, seq: int, when: datetime, card: int = 0,
            **kw: Any) -> dict[str, Any]:  # fmt: skip
        """The kernel's transaction with the card at a transit gate, as the gate uploads it."""
        reader = EmulatedReader(self.cards[card])
        reader.wait_for_card()
        result = EntryPoint(transit_config()).run(reader, Transaction(100), wait=False)
        assert result.outcome is Outcome.ONLINE_REQUEST, result
        return kernel_tap(pub, gate, seq, when, result, **kw)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealIssuer]:
    home = tmp_path_factory.mktemp("issuer") / "home"
    env = init_issuer(home, PASS)
    with serve_issuer(env, stop_timeout=20) as url:
        yield RealIssuer(env, url, add_terminal(env, "Metro", "4111"), home)


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[Home, Store]]:
    home = Home(tmp_path / "backoffice")
    home.init()
    with Store(home) as store:
        store.add_gate("Central", None)
        yield home, store


def _ledger_consistent(issuer: RealIssuer) -> None:
    assert issuer.run("ledger", "check") == {"consistent": True, "problems": []}


def test_card_and_phone_ride_a_day_for_one_capped_charge(
    issuer: RealIssuer, office: tuple[Home, Store], tmp_path: Path
) -> None:
    home, store = office
    ada = issuer.account(100_00, tmp_path / "ada", phone=True)
    pub = home.sealing_public_key()
    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    taps = [ada.tap(pub, "G1", i + 1, today + timedelta(hours=2 * i)) for i in range(4)]
    taps.append(ada.tap(pub, "G1", 5, today + timedelta(hours=12), card=1))  # the phone
    assert taps[4]["token"] is True
    assert taps[4]["card_reference"] != taps[0]["card_reference"]
    store.insert_taps("G1", taps, home.fares())
    with issuer.client() as client:
        report = Engine.for_home(store, client).run(close_all=True)
    assert (report.authorised, report.declined, report.riders_merged) == (2, 0, 1), report
    assert (report.trips, report.fares_charged) == (5, 600)  # the daily cap counts both
    assert (report.completed, report.captured, report.reversed) == (1, 600, 1)
    # The issuer: one authorisation captured for the day's 600 (above its 100 hold:
    # transit over-capture), the phone's released, nothing held.
    assert ada.balance() == (100_00 - 600, 0)
    txns = sorted(issuer.transactions(ada.account), key=lambda t: t["created_at"])
    assert [(t["status"], t["amount"], t["captured_amount"], t["mcc"]) for t in txns] == [
        ("closed", 100, 600, "4111"),
        ("reversed", 100, 0, "4111"),
    ]
    rider = store.query("SELECT par FROM riders WHERE merged_into IS NULL")
    assert len(rider) == 1
    assert rider[0]["par"]
    _ledger_consistent(issuer)


def test_a_declined_card_is_denied_and_debt_recovery_collects_the_fares(
    issuer: RealIssuer, office: tuple[Home, Store], tmp_path: Path
) -> None:
    home, store = office
    bob = issuer.account(50, tmp_path / "bob")  # 0.50: less than the nominal 1.00
    pub = home.sealing_public_key()
    start = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0)
    taps = [bob.tap(pub, "G1", i + 1, start + timedelta(hours=i)) for i in range(2)]
    store.insert_taps("G1", taps, home.fares())
    with issuer.client() as client:
        engine = Engine.for_home(store, client)
        report = engine.run(now=start + timedelta(hours=3))
        assert (report.declined, report.deny_added) == (1, 1)
        assert store.deny_changes(0)["add"] == [taps[0]["card_reference"]]
        report = engine.run(close_all=True)  # a debt: the first resubmission, declined
        assert (report.debts, report.recovered) == (1, 0)
        issuer.run("account", "credit", bob.account, "--amount", "10.00")
        report = engine.run(now=datetime.now(UTC) + timedelta(hours=49))
    assert (report.recovered, report.captured, report.deny_removed) == (1, 400, 1)
    assert store.deny_changes(0)["add"] == []
    assert bob.balance() == (50 + 10_00 - 400, 0)
    txns = sorted(issuer.transactions(bob.account), key=lambda t: t["created_at"])
    assert [
        (t["approved"], t["decline_reason"], t["status"], t["captured_amount"]) for t in txns
    ] == [
        (False, "INSUFFICIENT_FUNDS", "closed", 0),
        (False, "INSUFFICIENT_FUNDS", "closed", 0),
        (True, None, "closed", 400),
    ]
    assert txns[2]["parent"] == txns[0]["id"]
    _ledger_consistent(issuer)


def _http(
    url: str, tls: ClientTls, method: str, path: str, auth: str, body: Any = None
) -> tuple[int, Any]:
    host, port = url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=tls.context())
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Authorization": auth,
                                                   "Content-Type": "application/json"})  # fmt: skip
    answer = conn.getresponse()
    payload = json.loads(answer.read())
    conn.close()
    return answer.status, payload


def _backoffice(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [str(BIN / "backoffice"), "--home", str(home), *args, "--json"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_served_back_office_puts_a_declined_card_on_the_gates_deny_list(
    issuer: RealIssuer, tmp_path: Path
) -> None:
    bo_home = tmp_path / "bo"
    _backoffice(bo_home, "init")
    gate = _backoffice(bo_home, "gate", "add", "--name", "Central")
    auth = f"Bearer {gate['gate_id']}:{gate['key']}"
    cert = gate["certificate"]
    tls = ClientTls(cert["backoffice_ca_file"], cert["cert_file"], cert["key_file"])
    env = {**os.environ, **issuer.client_env()}
    server = subprocess.Popen(
        [str(BIN / "backoffice"), "--home", str(bo_home), "serve", "--bind",
         "127.0.0.1:0", "--interval", "60"], env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        match = re.search(r"https://[\d.]+:\d+", server.stderr.readline())
        assert match
        url = match.group(0)
        carl = issuer.account(0, tmp_path / "carl")
        tap = carl.tap(bytes.fromhex(gate["sealing_public_key"]), gate["gate_id"], 1,
                       datetime.now(UTC))  # fmt: skip
        status, version0 = _http(url, tls, "GET", "/v1/deny-list?since=0", auth)
        assert (status, version0["add"]) == (200, [])
        assert _http(url, tls, "POST", "/v1/taps", auth, {"taps": [tap]}) == (
            200, {"accepted": [tap["tap_id"]], "duplicates": []},
        )  # fmt: skip
        # The upload wakes the engine (not the 60 s interval): the decline reaches the
        # list a gate polls well within its poll interval.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, delta = _http(url, tls, "GET", f"/v1/deny-list?since={version0['version']}", auth)
            if delta["add"]:
                break
            time.sleep(0.2)
        assert delta["add"] == [tap["card_reference"]]
        assert delta["version"] > version0["version"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        if server.stderr is not None:
            server.stderr.close()


#: ``backoffice`` with the host client's completion wrapped: the process
#: SIGKILLs itself right after the issuer answered its KILL_AFTER-th capture, before
#: the back office could commit it (the worst moment for a double charge).
_KILLER = """
import os, signal
from hostlink.client import HostClient
real, seen = HostClient.complete, []
def complete(self, *args, **kwargs):
    answer = real(self, *args, **kwargs)
    seen.append(1)
    if len(seen) == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return answer
HostClient.complete = complete
from backoffice.cli import main
main()
"""


def test_kill_9_during_aggregation_charges_no_fare_twice(
    issuer: RealIssuer, office: tuple[Home, Store], tmp_path: Path
) -> None:
    home, store = office
    dana = issuer.account(100_00, tmp_path / "dana")
    pub = home.sealing_public_key()
    first_day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    taps = []
    for d in range(8):  # eight travel days, one or two rides each: eight aggregations
        when = first_day - timedelta(days=8 - d)
        taps.append(dana.tap(pub, "G1", 2 * d + 1, when))
        if d % 2:
            taps.append(dana.tap(pub, "G1", 2 * d + 2, when + timedelta(hours=9)))
    store.insert_taps("G1", taps, home.fares())
    env = {**os.environ, **issuer.client_env(), "KILL_AFTER": "3"}
    cmd = [*home_args(home), "aggregate", "--all"]
    killed = subprocess.run([sys.executable, "-c", _KILLER, *cmd], env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    states = store.query("SELECT state, COUNT(*) AS n FROM aggregations GROUP BY state")
    assert {s["state"]: s["n"] for s in states} == {"closing": 8}  # none recorded yet
    captured_before = [t for t in issuer.transactions(dana.account) if t["status"] == "closed"]
    assert len(captured_before) == 3  # ... but three were captured at the issuer
    # Restart: the same pass again, as an operator (or the service) would.
    report = _backoffice(home.path, "aggregate", "--all", env=env | {"KILL_AFTER": "0"})
    assert report["completed"] == 8
    aggregations = store.query("SELECT transaction_id, total, captured, state FROM aggregations")
    assert {a["state"] for a in aggregations} == {"completed"}
    totals = {a["transaction_id"]: a["total"] for a in aggregations}
    assert sum(totals.values()) == 8 * 200 + 4 * 200
    txns = issuer.transactions(dana.account)
    assert len(txns) == 8  # one authorisation per aggregation, none made twice
    assert {t["id"]: t["captured_amount"] for t in txns} == totals
    assert all(t["status"] == "closed" for t in txns)
    assert dana.balance() == (100_00 - sum(totals.values()), 0)
    from issuer.bootstrap import open_issuer

    with open_issuer(issuer.home, passphrase=PASS) as app:
        captures = [j for j in app.service.journals(dana.account, limit=1000)
                    if j.kind == "capture"]  # fmt: skip
    assert len(captures) == 8  # one capture per aggregation
    _ledger_consistent(issuer)
