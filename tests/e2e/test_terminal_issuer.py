"""``terminal pay`` against a real ``issuer serve`` over mutual TLS (a temporary home on
SQLite, a Visa card provisioned by ``issuer card provision`` and tapped in process,
``emulated:``): the issuer is checked before the card is asked for, so a wrong
terminal key or a CA that is not the issuer's costs no tap (the card's ATC, read by
``card show`` from the state folder, does not move; exit 6); then the verdict first,
approved (exit 0) or declined for funds (exit 5), with the detail under --verbose; a card
the issuer did not issue is declined CARD_NOT_FOUND with what to tap instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from card.cli import cli as card_cli
from terminal.cli import cli
from tests.support import e2e

#: No issuer or TLS setting of the environment leaks into these runs.
CLEAN: dict[str, str | None] = {name: None for name in e2e.TERMINAL_SETTINGS}


@dataclass
class Shop:
    url: str
    terminal: e2e.TerminalCredentials
    profile: Path
    tmp: Path

    def pay(self, amount: str, *options: str, key: str | None = None) -> Result:
        args = self.terminal.options(self.url)
        if key is not None:
            args[args.index("--terminal-key") + 1] = key
        return CliRunner(env=CLEAN).invoke(
            cli, ["pay", "--reader", f"emulated:{self.profile}", "--amount", amount, *args,
                  *options],
        )  # fmt: skip

    def atc(self) -> int:
        shown = CliRunner().invoke(card_cli, ["show", str(self.profile), "--json"])
        assert shown.exit_code == 0, shown.output
        return int(json.loads(shown.stdout)["applications"][0]["counters"]["atc"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("issuer-check")
    env = e2e.init_issuer(tmp / "home")
    account = e2e.new_account(env, "Ada Lovelace", "20.00")
    terminal = e2e.add_terminal(env, "Corner Shop", "5411")
    profile = tmp / "ada-visa.json"
    e2e.provision_card(env, account, profile)
    with e2e.serve_issuer(env) as url:
        yield Shop(url, terminal, profile, tmp)


def test_a_wrong_terminal_key_is_found_before_the_tap(shop: Shop) -> None:
    before = shop.atc()
    refused = shop.pay("1.00", "--json", key="tsk_wrong")
    assert refused.exit_code == 6, refused.output
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "refused"
    assert f"refused terminal {shop.terminal.id}" in error["message"]
    assert "no card was asked for" in error["message"]
    assert "--terminal-key" in error["message"]
    assert "Present a card" not in refused.stderr
    assert shop.atc() == before
    assert shop.terminal.key not in refused.output


def test_a_ca_that_is_not_the_issuers_is_found_before_the_tap(shop: Shop) -> None:
    before = shop.atc()
    # the terminal's own certificate as the CA: it never signed the server's
    refused = shop.pay("1.00", "--issuer-ca", shop.terminal.cert_file)
    assert refused.exit_code == 6, refused.output
    assert "TLS with the issuer" in refused.stderr
    assert "--issuer-ca" in refused.stderr
    assert shop.atc() == before


def test_approved_then_declined_with_the_verdict_first(shop: Shop) -> None:
    before = shop.atc()
    approved = shop.pay("12.34")
    assert approved.exit_code == 0, approved.output
    first, second = approved.stdout.splitlines()
    assert first == "APPROVED: 12.34 EUR, VISA CREDIT " + first.rsplit(" ", 1)[1]
    assert first.rsplit(" ", 1)[1].startswith("476173******")
    assert second.startswith("  issuer 00 approved, transaction ")
    declined = shop.pay("99.00", "--verbose")
    assert declined.exit_code == 5, declined.output
    lines = declined.stdout.splitlines()
    assert lines[0].startswith("DECLINED: 99.00 EUR, VISA CREDIT 476173******")
    assert lines[1].startswith("  issuer 51 declined INSUFFICIENT_FUNDS, not charged, transaction ")
    assert "Authorisation request (field 55, masked where sensitive):" in declined.stdout
    assert "Issuer answer: request " in declined.stdout
    assert "declined by the issuer: 51 INSUFFICIENT_FUNDS" in declined.stderr
    assert shop.atc() == before + 2


def test_a_card_of_another_issuer_is_declined_with_what_to_do(shop: Shop) -> None:
    stranger = shop.tmp / "visa-card.json"  # the fixture card: not this issuer's
    stranger.write_bytes((e2e.ROOT / "fixtures" / "cards" / "visa-card.json").read_bytes())
    args = shop.terminal.options(shop.url)
    declined = CliRunner(env=CLEAN).invoke(
        cli, ["pay", "--reader", f"emulated:{stranger}", "--amount", "1.00", *args]
    )
    assert declined.exit_code == 5, declined.output
    assert declined.stdout.splitlines()[1].startswith("  issuer 14 declined CARD_NOT_FOUND")
    assert "this issuer knows no such card; tap one it issued (`issuer card provision`" in (
        declined.stderr
    )
