"""`terminal read` and `terminal pay` through click's CliRunner on emulated cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from terminal.cli import cli
from tests.support.cards import CARDS, VISA_PAN

TRACK2_HEX = "4761739001010010D3012"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _profile(distribution: Path, name: str = "visa-card") -> str:
    target = distribution / f"{name}.json"
    shutil.copy(CARDS / f"{name}.json", target)
    return f"emulated:{target}"


def _no_secrets(*texts: str) -> None:
    for text in texts:
        assert VISA_PAN not in text
        assert TRACK2_HEX not in text.upper()


def test_pay_online_request_prints_the_authorisation_request(
    runner: CliRunner, distribution: Path
) -> None:
    reader = _profile(distribution)
    result = runner.invoke(cli, ["pay", "--reader", reader, "--amount", "12.34", "--verbose"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    first, second = out.splitlines()[:2]  # the verdict first
    assert first == "ONLINE REQUEST: 12.34 EUR, VISA CREDIT 476173******0010"
    assert second.startswith("  Authorising, please wait: no --issuer")
    assert "Authorisation request (field 55" in out
    assert "- byte 1 bit 8: Offline data authentication was not performed" in out
    assert "9F26 Application Cryptogram" in out
    assert "57 track 2 equivalent data: 476173******0010D" in out
    assert "Present a card" in result.stderr
    _no_secrets(result.stdout, result.stderr)


def test_pay_json_and_trace(runner: CliRunner, distribution: Path) -> None:
    reader = _profile(distribution)
    args = ["pay", "--reader", reader, "--amount", "60", "--json", "--trace"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "online request"
    assert doc["online_pin_required"] is True
    assert doc["cvm"] == "online PIN"
    assert doc["apdus"] == 3
    assert doc["amount"] == "60.00 EUR"
    assert len(doc["card_reference"]) == 32
    assert "GET PROCESSING OPTIONS" in result.stderr  # the APDU trace
    assert "kernel: entry point: activating kernel 3" in result.stderr
    _no_secrets(result.stdout, result.stderr)


def test_pay_not_completed_by_the_card_exits_8(runner: CliRunner, distribution: Path) -> None:
    """End application is no decline: the card could not complete (exit 8)."""
    profile = distribution / "expired.json"
    doc = json.loads((CARDS / "visa-card.json").read_text())
    doc["faults"] = {"wrong_sw": {"A8": "6A80"}}
    profile.write_text(json.dumps(doc))
    result = runner.invoke(cli, ["pay", "--reader", f"emulated:{profile}", "--amount", "1"])
    assert result.exit_code == 8, result.output
    assert result.stdout.startswith("END APPLICATION")
    assert "GET PROCESSING OPTIONS answered 6A80" in result.stderr
    assert "present the card again, or try another card" in result.stderr


def test_read_trace_shows_aids_whole_and_masks_the_pan(
    runner: CliRunner, distribution: Path
) -> None:
    result = runner.invoke(cli, ["read", "--reader", _profile(distribution), "--trace"])
    assert result.exit_code == 0, result.output
    trace = result.stderr
    assert "4F Application Identifier (AID) - card [7]: A0000000031010" in trace
    assert "SELECT A0000000031010" in trace
    assert "A00*" not in trace
    assert "5A Application Primary Account Number (PAN) [8]: 476173******0010" in trace
    _no_secrets(result.stdout, trace)


def test_pay_currency_type_and_other_amount(runner: CliRunner, distribution: Path) -> None:
    reader = _profile(distribution)
    args = ["pay", "--reader", reader, "--amount", "20", "--other-amount", "5", "--json"]
    result = runner.invoke(cli, [*args, "--currency", "978", "--type", "cashback"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert "9C" in doc["authorisation_tags"]
    assert "9C0109" in doc["authorisation_data"]
    assert "9F0306000000000500" in doc["authorisation_data"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--amount", "12.345"], 2, "more than 2 decimals"),
        (["--amount", "1", "--currency", "XXX"], 2, "unknown currency"),
        (["--amount", "1e3"], 2, "not an amount"),
        (["--amount", "1", "--config", "/no/such.json"], 10, "cannot read configuration"),
    ],
)
def test_pay_errors(
    runner: CliRunner, distribution: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(cli, ["pay", "--reader", _profile(distribution), *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_pay_with_a_bad_reader_exits_9(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["pay", "--reader", "emulated:/no/such.json", "--amount", "1"])
    assert result.exit_code == 9
    assert "no card profile" in result.output


def test_read_text_shows_the_card_masked(runner: CliRunner, distribution: Path) -> None:
    result = runner.invoke(cli, ["read", "--reader", _profile(distribution, "visa-phone")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Application A0000000031010  VISA PHONE" in out
    assert "PAN 489537******0013, expiry 2030-12" in out
    assert "Record SFI 2 #1 (9000):" in out
    assert "9F46" in out  # ICC public key certificate, named
    assert "Token Requestor ID" in out
    assert "4895370000000013" not in out + result.stderr
    assert "APDUs" in result.stderr


def test_read_json_and_no_gpo(runner: CliRunner, distribution: Path) -> None:
    reader = _profile(distribution)
    result = runner.invoke(cli, ["read", "--reader", reader, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [app] = doc["applications"]
    assert app["pan"] == "476173******0010"
    assert [r["sfi"] for r in app["records"]] == [2, 2, 2, 3]
    assert doc["apdus"] == 3 + 4
    _no_secrets(result.stdout)
    quiet = runner.invoke(cli, ["read", "--reader", reader, "--json", "--no-gpo"])
    doc = json.loads(quiet.stdout)
    assert doc["apdus"] == 2
    assert doc["applications"][0]["records"] == []


def test_pay_with_a_card_slower_than_the_deadline_ends_in_try_again(
    runner: CliRunner, distribution: Path
) -> None:
    """The hang of issue 17 in process: a card that holds each answer back (the
    profile's ``delay_ms`` fault, 3 s) no longer keeps ``terminal pay --timeout 10``
    running: the configuration's command deadline (200 ms here) ends it, exit code 5."""
    profile = json.loads((CARDS / "visa-card.json").read_text())
    profile["faults"] = {"delay_ms": 3000}
    card_file = distribution / "slow.json"
    card_file.write_text(json.dumps(profile))
    config = json.loads(Path("terminal/kernel/default_config.json").read_text())
    config["ca_keys"] = [str(Path("terminal/kernel").resolve() / key) for key in config["ca_keys"]]
    config["timing"] = {"command_ms": 200, "transaction_ms": 2000}
    config_file = distribution / "short.json"
    config_file.write_text(json.dumps(config))
    arguments = ["pay", "--reader", f"emulated:{card_file}", "--amount", "12.34", "--json"]
    result = runner.invoke(cli, [*arguments, "--config", str(config_file), "--timeout", "10"])
    assert result.exit_code == 5, result.output
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "try again"
    assert any("did not answer INS A4 in time" in r for r in summary["reasons"])
    assert "Traceback" not in result.output
