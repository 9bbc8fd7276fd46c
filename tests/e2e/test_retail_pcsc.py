"""End to end, the retail tap reader as a cashier and a POS run it: a real ``issuer serve``
on SQLite (temporary home, a Visa card provisioned by the issuer CLI, the shop's
terminal registered at MCC 5411), ``card serve --via pcsc`` presenting the card in a vpcd
reader of pcscd, and ``terminal retail`` as a subprocess: sales from standard input
(approved, and declined for funds), a void, a refund, the close of day matching the
issuer (MATCH, exit 0) and the ledger's balances agreeing; a card pulled away mid-tap
(not completed, nothing charged); the issuer down (found before the card is asked for:
"unreachable", exit 7, nothing charged). No full PAN in any output.

Needs pcscd with the vpcd readers (marker ``pcsc``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import e2e

pytestmark = pytest.mark.pcsc

#: Exit codes of terminal retail (clikit.exits: card, unreachable).
NOT_COMPLETED, ISSUER_DOWN = 8, 7


@dataclass
class Shop(e2e.IssuerService):
    account: str
    profile: Path
    pan: str
    tmp: Path

    def balance(self) -> tuple[int, int]:
        return self.account_balance(self.account)

    def retail(
        self, *args: str, stdin: str | None = None, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ, **self.terminal.environment(url or self.url),
            "TAPSTACK_RETAIL_HOME": str(self.tmp / "till"), "TAPSTACK_MERCHANT": "Corner Shop",
        }  # fmt: skip
        return subprocess.run(
            [str(e2e.BIN / "terminal"), "retail", *args], env=env, input=stdin,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("retail")
    env = e2e.init_issuer(tmp / "home")
    account = e2e.new_account(env, "Ada Lovelace", "60.00")
    terminal = e2e.add_terminal(env, "Corner Shop", "5411")
    profile = tmp / "visa-card.json"
    e2e.provision_card(env, account, profile)
    pan = json.loads(profile.read_text())["applications"][0]["pan"]
    with e2e.serve_issuer(env) as url:
        yield Shop(env, url, terminal, account, profile, pan, tmp)


def _card(profile: Path, taps: int, *extra: str) -> e2e.ServedCard:
    """``card serve`` on this process's vpcd reader for ``taps`` taps; a tap ends 0.4 s
    after the card's last answer (the customer takes the card away)."""
    number = e2e.free_vpcd_reader()
    return e2e.ServedCard(profile, taps, "--idle-timeout", "0.4", *extra, reader=number)


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _no_pan(shop: Shop, *texts: str) -> None:
    for text in texts:
        assert shop.pan not in text


@pytest.mark.slow
def test_a_day_of_sales_void_refund_and_close_matches_the_issuer(pcscd: str, shop: Shop) -> None:
    with _card(shop.profile, 4):
        day = shop.retail(
            "--reader", e2e.own_reader_path(), "--timeout", "20", "--stdin", "--json",
            stdin="sale 12.34\n7.00\nsale 45.00\nrefund nonsense\nsale 1.234\nsale 500.00\n",
        )  # fmt: skip
    assert day.returncode == 0, day.stderr
    out = _lines(day.stdout)
    sales = [o for o in out if o.get("kind") == "SALE"]
    assert [(s["status"], s["amount"]) for s in sales] == [
        ("APPROVED", "12.34 EUR"), ("APPROVED", "7.00 EUR"), ("DECLINED", "45.00 EUR"),
        ("NOT COMPLETED", "500.00 EUR"),
    ]  # fmt: skip
    first, second, third, fourth = sales
    assert first["merchant"] == "Corner Shop"
    assert re.fullmatch(r"476173\*{6}\d{4}", first["card"])
    assert first["last4"] == shop.pan[-4:]
    assert (first["aid"], first["label"]) == ("A0000000031010", "VISA CREDIT")
    assert re.fullmatch(r"[0-9A-F]{16}", first["cryptogram"])
    assert second["atc"] == first["atc"] + 1
    assert first["response_code"] == "00"
    assert third["reason"] == "INSUFFICIENT_FUNDS"  # 60.00 less 19.34 held
    assert "online PIN required" in fourth["reason"]  # above the CVM limit, no PIN pad
    errors = [o["line"] for o in out if "error" in o]
    assert errors == ["refund nonsense", "sale 1.234"]  # reported, nothing done
    for message in ("Present card", "Processing", "Approved", "Not authorised"):
        assert f"[display] {message}" in day.stderr
    assert shop.balance() == (6000, 1934)  # held, captured at close
    void = shop.retail("void", second["transaction_id"], "--json")
    assert void.returncode == 0, void.stderr
    assert shop.balance() == (6000, 1234)
    refund = shop.retail("refund", first["transaction_id"], "2.00", "--json")
    assert refund.returncode == 0, refund.stderr
    assert _lines(refund.stdout)[0]["kind"] == "REFUND"
    too_much = shop.retail("refund", first["transaction_id"], "11.00")
    assert too_much.returncode == 4  # conflict: the till refuses it
    assert "more than the 10.34 EUR left" in too_much.stderr
    close = shop.retail("close", "--json")
    assert close.returncode == 0, close.stderr + close.stdout
    report = _lines(close.stdout)[0]
    assert report["match"] is True
    assert report["till"] == report["issuer"] | {"no_charge": report["till"]["no_charge"]}
    assert report["till"]["sales"] == {"count": 1, "amount": 1234}
    assert report["till"]["refunds"] == {"count": 1, "amount": 200}
    assert report["till"]["voids"] == {"count": 1, "amount": 700}
    assert report["till"]["declined"] == 1
    assert report["till"]["net"] == 1034
    assert shop.balance() == (6000 - 1034, 0)
    text_close = shop.retail("close")  # the next day: nothing yet
    assert text_close.returncode == 0
    assert "MATCH" in text_close.stdout
    _no_pan(shop, day.stdout, day.stderr, void.stdout, refund.stdout, close.stdout)
    journal = (shop.tmp / "till" / "journal" / "journal.jsonl").read_text()
    _no_pan(shop, journal)


def test_a_card_pulled_away_mid_tap_is_not_charged(pcscd: str, shop: Shop) -> None:
    before = shop.balance()
    with _card(shop.profile, 3, "--pull-after", "2"):
        reader = e2e.own_reader_path()
        pulled = shop.retail("--reader", reader, "--timeout", "20", "--amount", "3.00")
    assert pulled.returncode == NOT_COMPLETED, pulled.stderr
    assert "[display] Present card again" in pulled.stderr
    assert "NOT COMPLETED" in pulled.stdout
    assert shop.balance() == before
    _no_pan(shop, pulled.stdout, pulled.stderr)


def test_issuer_down_asks_for_no_card_and_charges_nothing(pcscd: str, shop: Shop) -> None:
    before = shop.balance()
    with _card(shop.profile, 1) as card:
        down = shop.retail(
            "--reader", e2e.own_reader_path(), "--timeout", "20", "--amount", "4.00", "--json",
            "--host-timeout", "1", url=e2e.unused_url(),
        )  # fmt: skip
        card.stop()
        out, _ = card.finish()
    assert down.returncode == ISSUER_DOWN, down.stderr
    (error,) = _lines(down.stdout)
    assert (error["error"]["code"], error["error"]["exit"]) == ("unreachable", 7)
    assert "no card was asked for, nothing was charged" in down.stderr
    assert "[display] Present card" not in down.stderr
    assert out == ""  # the card served no tap
    assert shop.balance() == before
    # The till's day still closes against the issuer: the sale never began.
    close = shop.retail("close", "--json")
    assert close.returncode == 0, close.stdout + close.stderr
    assert _lines(close.stdout)[0]["till"]["no_charge"] == 0
