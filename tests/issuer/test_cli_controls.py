"""``issuer controls`` and ``issuer decisions`` through click's CliRunner: controls set,
merged, shown with what is used of them, refused when both lists of a kind would be
set, cleared; the decision endpoint's secret shown once and never again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from issuer.bootstrap import open_issuer
from issuer.cli import cli
from tests.issuer.cli_kit import PASS, Issuer, cli_runner


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-controls") / "home"
    result = cli_runner().invoke(
        cli, ["--home", str(home), "init", "--kdf-cost", "10"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def iss(initialised: Path, tmp_path: Path) -> Issuer:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(initialised, home)
    return Issuer(home, cli_runner())


def _card(iss: Issuer) -> tuple[str, str]:
    with open_issuer(iss.home, passphrase=PASS) as app:
        account = app.service.create_account("Ada", currency_code="EUR")
        return account.id, app.service.issue_card(account.id, "visa").card.id


def test_controls_set_show_and_clear(iss: Issuer) -> None:
    account, card = _card(iss)
    made = iss.json(
        "controls", "set", "--card", card, "--block-mcc", "7995,5411", "--daily", "50.00",
        "--daily-count", "3", "--allow-country", "250",
    )  # fmt: skip
    assert made["blocked_mccs"] == ["7995", "5411"]
    assert made["allowed_countries"] == ["0250"]
    assert made["limits"] == {"daily_amount": 5000, "daily_count": 3}
    # Other controls are kept; "none" removes one.
    merged = iss.json("controls", "set", "--card", card, "--daily", "none", "--weekly", "80")
    assert merged["limits"] == {"weekly_amount": 8000, "daily_count": 3}
    assert merged["blocked_mccs"] == ["7995", "5411"]
    refused = iss.run("controls", "set", "--card", card, "--allow-mcc", "5411", code=2)
    assert "never both" in refused.stderr
    iss.json("controls", "set", "--account", account, "--max-per-txn", "20.50")
    shown = iss.json("controls", "show", "--card", card)
    assert [(c["level"], c["used"]) for c in shown["controls"]] == [
        ("card", {"weekly_amount": 0, "daily_count": 0}),
        ("account", {}),
    ]
    assert shown["controls"][1]["max_per_transaction"] == 2050
    text = iss.run("controls", "show", "--card", card).stdout
    assert "blocked MCCs" in text
    assert "80.00 EUR  (used 0.00 EUR)" in text
    assert "20.50 EUR" in text
    cleared = iss.json("controls", "clear", "--card", card)
    assert cleared["removed"] is True
    assert [c["level"] for c in iss.json("controls", "show", "--card", card)["controls"]] == [
        "account"
    ]


def test_controls_refuse_bad_arguments(iss: Issuer) -> None:
    account, card = _card(iss)
    iss.run("controls", "set", "--block-mcc", "7995", code=2)
    iss.run("controls", "set", "--card", card, "--account", account, "--daily", "1", code=2)
    iss.run("controls", "set", "--card", card, "--daily-count", "two", code=2)
    iss.run("controls", "set", "--card", card, "--daily", "-5", code=2)
    iss.run("controls", "set", "--card", card, "--block-mcc", "79", code=2)
    missing = iss.run("controls", "show", "--card", "card_aaaaaaaaaaaaaaaa", "--json", code=3)
    assert json.loads(missing.stdout)["error"]["exit"] == 3


def test_decisions_set_shows_the_secret_once(iss: Issuer, tmp_path: Path) -> None:
    made = iss.json(
        "decisions", "set", "http://127.0.0.1:9/decide", "--deadline-ms", "500",
        "--fallback", "decline",
    )  # fmt: skip
    secret = made["secret"]
    assert secret.startswith("dsec_")
    assert (made["deadline_ms"], made["fallback"], made["ca"]) == (500, "decline", "system")
    shown = iss.json("decisions", "show")
    assert shown["url"] == "http://127.0.0.1:9/decide"
    assert "secret" not in shown
    text = iss.run("decisions", "show").stdout
    assert secret not in text
    kept = iss.json("decisions", "set", "http://127.0.0.1:9/other", "--keep-secret")
    assert kept["secret"] is None
    iss.run("decisions", "set", "http://example.com/decide", code=2)
    iss.run("decisions", "set", "https://example.com/d", "--ca", str(tmp_path / "none.pem"), code=2)
    iss.run("decisions", "answer", "txn_aaaaaaaaaaaaaaaa", code=3)
    assert iss.json("decisions", "clear") == {"removed": True}
    assert iss.json("decisions", "show") is None
    assert all(secret not in output for output in iss.outputs[1:])
