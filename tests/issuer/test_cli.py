"""The ``issuer`` command end to end through click's CliRunner.

An issuer home is initialised once per session (``issuer init``) and copied for each
test. Every output of every command is kept and searched: no full PAN or token number
may appear unless ``--reveal`` asked for it.
"""

from __future__ import annotations

import json
import shutil
import socket
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from emvwire.crypto.cryptogram import verify_arqc
from emvwire.crypto.des import kcv
from emvwire.profile import load_profile
from issuer.bootstrap import open_issuer
from issuer.cli import cli
from issuer.keys.base import MasterKeyRef
from issuer.ledger.sql import SqlUnitOfWork
from tests.issuer.cli_kit import PASS, Issuer, all_commands, cli_runner
from tests.issuer.helpers import PUBLISHED_IMK, tap_arqc

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="session")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli") / "home"
    result = cli_runner().invoke(
        cli, ["--home", str(home), "init", "--kdf-cost", "10"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "issuer initialised" in result.stdout
    return home


@pytest.fixture
def iss(initialised: Path, tmp_path: Path) -> Issuer:
    home = tmp_path / "home"
    shutil.copytree(initialised, home)
    return Issuer(home, cli_runner())


def _secrets(home: Path) -> list[str]:
    """Every PAN and token number of the issuer, opened from their sealed copies."""
    with open_issuer(home, passphrase=PASS) as app:
        s = app.service
        return [s.reveal(c) for c in s.cards()] + [s.reveal(t) for t in s.tokens()]


def test_help_everywhere() -> None:
    runner = CliRunner()
    commands = list(all_commands(cli))
    assert ["card", "provision"] in commands
    assert ["terminal", "revoke"] in commands
    for command in [[], *commands]:
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage:" in result.stdout
        leaf: click.Command | None = cli
        for part in command:
            assert isinstance(leaf, click.Group)
            leaf = leaf.get_command(click.Context(leaf), part)
        if not isinstance(leaf, click.Group):
            assert "--json" in result.stdout, command


def test_init_wrote_a_home(initialised: Path) -> None:
    assert (initialised / "config.json").is_file()
    assert (initialised / "keystore.json").stat().st_mode & 0o777 == 0o600
    ca = json.loads((initialised / "ca.json").read_text())
    assert ca["format"] == "tapstack-capk/1"
    assert {(k["rid"], k["index"]) for k in ca["keys"]} == {
        ("A000000003", "F1"),
        ("A000000004", "99"),
        ("A000000025", "E4"),
        ("A000000333", "E7"),
    }
    assert PASS not in "".join(p.read_text(errors="replace") for p in initialised.glob("*.json"))


def test_provision_cards_and_phones_end_to_end(iss: Issuer, tmp_path: Path) -> None:
    account = iss.json("account", "create", "--holder", "Ada Lovelace")
    assert account["kind"] == "debit"
    credited = iss.json("account", "credit", account["id"], "--amount", "250.00")
    assert credited["account"]["balance"] == 25_000
    profiles = {}
    made_as = [(s, f) for s in ("visa", "mastercard", "unionpay") for f in ("card", "phone")]
    for scheme, form in [*made_as, ("amex", "card")]:
        out = tmp_path / f"{scheme}-{form}.json"
        made = iss.json(
            "card", "provision", "--account", account["id"], "--scheme", scheme,
            "--form", form, "--out", str(out),
        )  # fmt: skip
        assert made["profile"] == str(out)
        assert (made["token"] is not None) == (form == "phone")
        profiles[(scheme, form)] = out
    # What the terminal and the authorisation service will do with them.
    with open_issuer(iss.home, passphrase=PASS) as app:
        for (scheme, _form), path in profiles.items():
            profile = load_profile(path)
            application = profile.applications[0]
            data, arqc = tap_arqc(profile)
            with app.ledger.unit_of_work(write=False) as uow:
                inst = app.vault.detokenise(uow, application.pan, today=TODAY, mcc="5814")
            assert inst.scheme == scheme
            icc_ac = app.keys.derive_icc_mk(inst.key_ref, application.pan, inst.psn)
            verify_arqc(application.cvn, icc_ac, data, arqc)
    # Reading it all back, in text and JSON.
    cards = iss.json("card", "list", "--account", account["id"])
    assert len(cards) == 4  # the phones' tokens bind to the plastic cards
    amex_pan = load_profile(profiles[("amex", "card")]).applications[0].pan
    assert (amex_pan[:6], len(amex_pan)) == ("374245", 15)  # the default Amex range
    unionpay_pan = load_profile(profiles[("unionpay", "card")]).applications[0].pan
    assert (unionpay_pan[:6], len(unionpay_pan)) == ("625800", 19)
    tokens = iss.json("token", "list", "--account", account["id"])
    assert len(tokens) == 3
    for c in cards:
        iss.run("card", "show", c["id"])
    for t in tokens:
        iss.run("token", "show", t["id"])
    for args in (["card", "list"], ["token", "list"], ["account", "list"],
                 ["account", "show", account["id"]], ["keys", "list"], ["txn", "list"],
                 ["ledger", "check"]):  # fmt: skip
        iss.run(*args)
        iss.run(*args, "--json")
    numbers = _secrets(iss.home)
    assert len(numbers) == 7
    for output in iss.outputs:
        for number in numbers:
            assert number not in output
    # --reveal is the one way to see a PAN.
    shown = iss.run("card", "show", cards[0]["id"], "--reveal").stdout
    assert any(number in shown for number in numbers)


def test_card_and_token_life_cycle(iss: Issuer, tmp_path: Path) -> None:
    account = iss.json("account", "create", "--holder", "Ada")["id"]
    made = iss.json(
        "card", "provision", "--account", account, "--scheme", "visa", "--form", "phone",
        "--out", str(tmp_path / "p.json"), "--allowed-mcc", "4111", "--allowed-mcc", "4131",
    )  # fmt: skip
    card, token = made["card"]["id"], made["token"]["id"]
    assert made["funding_card_created"] is True
    assert made["token"]["allowed_mccs"] == ["4111", "4131"]
    assert iss.json("token", "suspend", token)["status"] == "suspended"
    assert iss.json("card", "show", card)["status"] == "active"  # the card goes on working
    assert iss.json("token", "resume", token)["status"] == "active"
    assert iss.json("card", "suspend", card)["status"] == "paused"
    iss.run("card", "suspend", card, code=4)
    assert iss.json("card", "resume", card)["status"] == "active"
    assert iss.json("card", "close", card)["status"] == "closed"
    assert iss.json("token", "show", token)["status"] == "deleted"
    err = iss.run("card", "resume", card, code=4).stderr
    assert "closed" in err
    iss.run("token", "resume", token, code=4)


def test_account_close_stops_everything(iss: Issuer, tmp_path: Path) -> None:
    account = iss.json("account", "create", "--holder", "Ada")["id"]
    iss.run("card", "provision", "--account", account, "--scheme", "mastercard", "--form", "phone",
            "--out", str(tmp_path / "p.json"))  # fmt: skip
    iss.run("account", "close", account, code=2)  # no terminal to confirm
    assert iss.json("account", "close", account, "--yes")["status"] == "closed"
    assert {c["status"] for c in iss.json("card", "list", "--account", account)} == {"closed"}
    assert {t["status"] for t in iss.json("token", "list", "--account", account)} == {"deleted"}
    iss.run("account", "credit", account, "--amount", "1", code=4)


def test_keys_generate_import_list_kcv(iss: Issuer) -> None:
    made = iss.json("keys", "generate", "--scheme", "visa", "--bin", "476173", "--cvn", "10")
    assert [k["id"] for k in made] == [
        "imk/visa/476173/10/ac", "imk/visa/476173/10/smi", "imk/visa/476173/10/smc",
    ]  # fmt: skip
    iss.run("keys", "generate", "--scheme", "visa", "--bin", "476173", "--cvn", "10", code=4)
    args = ("keys", "import", "--scheme", "mastercard", "--bin", "541333", "--cvn", "16",
            "--purpose", "ac")  # fmt: skip
    bad = iss.run(*args, "--kcv", "08D7B5", input=PUBLISHED_IMK.hex() + "\n", code=6)
    assert "does not match" in bad.stderr
    good = iss.run(*args, "--kcv", "08D7", input=PUBLISHED_IMK.hex() + "\n")
    assert "08D7B4" in good.stdout
    assert iss.json("keys", "kcv", "imk/mastercard/541333/16/ac")["kcv"] == "08D7B4"
    listed = iss.run("keys", "list").stdout
    assert "imk/visa/476173/10/smc" in listed
    for output in iss.outputs:
        assert PUBLISHED_IMK.hex() not in output.lower()
        assert PUBLISHED_IMK.hex().upper() not in output
    iss.run("keys", "kcv", "imk/visa/999999/18/ac", code=3)
    ref = MasterKeyRef("mastercard", "541333", 16, "ac")
    with open_issuer(iss.home, passphrase=PASS) as app:
        icc = app.keys.derive_icc_mk(ref, "9901234567890123", "45")
    assert kcv(icc, 2) == bytes.fromhex("1DA5")  # the published vector, after import


def test_card_register(iss: Issuer) -> None:
    from issuer.model.pan import generate_pan

    account = iss.json("account", "create", "--holder", "Ada")["id"]
    pan = generate_pan("541333")
    args = ("card", "register", "--account", account, "--scheme", "mastercard",
            "--expiry", "2030-12", "--cvn", "17", "--psn", "01")  # fmt: skip
    registered = json.loads(iss.run(*args, "--json", input=pan + "\n").stdout)
    assert registered["origin"] == "registered"
    assert registered["pan"] == pan[:6] + "******" + pan[-4:]
    iss.run(*args, input=pan + "\n", code=4)  # registered already
    iss.run(*args, input="4111111111111111\n", code=2)  # not in a range of this issuer
    iss.run(*args, input="\n", code=2)
    for output in iss.outputs:
        assert pan not in output


def test_terminals(iss: Issuer) -> None:
    added = iss.json("terminal", "add", "--merchant", "Metro gate 4", "--mcc", "4111")
    assert added["credential"].startswith("tsk_")
    listed = iss.run("terminal", "list").stdout + iss.run("terminal", "list", "--json").stdout
    assert added["id"] in listed
    assert added["credential"] not in listed
    assert iss.json("terminal", "revoke", added["id"])["status"] == "revoked"
    iss.run("terminal", "revoke", added["id"], code=4)
    iss.run("terminal", "add", "--merchant", "X", "--mcc", "41111", code=2)


def test_txn_list_reads_the_records(iss: Issuer, tmp_path: Path) -> None:
    from issuer.domain import funds
    from issuer.model.entities import (
        Authorisation,
        AuthorisationKind,
        AuthorisationStatus,
        new_id,
        utc_now,
    )

    account = iss.json("account", "create", "--holder", "Ada")["id"]
    iss.run("account", "credit", account, "--amount", "20")
    made = iss.json("card", "provision", "--account", account, "--scheme", "visa", "--form",
                    "card", "--out", str(tmp_path / "c.json"))  # fmt: skip
    terminal = iss.json("terminal", "add", "--merchant", "Cafe", "--mcc", "5814")["id"]
    with open_issuer(iss.home, passphrase=PASS) as app, app.ledger.unit_of_work() as uow:
        now = utc_now()
        auth = Authorisation(
            id=new_id("txn"), kind=AuthorisationKind.AUTHORISATION, terminal_id=terminal,
            request_id="r1", request_hash="", amount=450, currency="EUR", approved=True,
            response_code="00", status=AuthorisationStatus.PENDING, created_at=now,
            updated_at=now, card_id=made["card"]["id"], account_id=account, held_amount=450,
        )  # fmt: skip
        uow.authorisations.add(auth)
        funds.hold(uow, account, 450, auth.id)
        uow.commit()
    for flag, value in (
        ("--card", made["card"]["id"]),
        ("--account", account),
        ("--terminal", terminal),
    ):
        records = iss.json("txn", "list", flag, value)
        assert [r["id"] for r in records] == [auth.id]
    assert "4.50 EUR" in iss.run("txn", "list").stdout
    assert iss.json("account", "show", account)["available"] == 1_550
    iss.run("txn", "list", "--card", "card_nope", code=3)
    iss.run("txn", "list", "--card", "a", "--account", "b", code=2)


def test_ledger_check_fails_on_a_tampered_balance(iss: Issuer) -> None:
    account = iss.json("account", "create", "--holder", "Ada")["id"]
    iss.run("account", "credit", account, "--amount", "10")
    assert iss.json("ledger", "check")["consistent"] is True
    with open_issuer(iss.home, passphrase=PASS) as app, app.ledger.unit_of_work() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        uow.db.run("UPDATE accounts SET balance = 5 WHERE id = ?", (account,))
        uow.commit()
    result = iss.run("ledger", "check", code=11)
    assert f"balance of {account}: expected 1000, found 5" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["account", "create"], 2, "Missing option '--holder'"),
        (["account", "create", "--holder", "A", "--currency", "XYZ"], 2, "XYZ"),
        (["account", "create", "--holder", "A", "--credit-limit", "5"], 2, "no credit limit"),
        (["account", "show", "acct_missing"], 3, "no account"),
        (["account", "credit", "acct_missing", "--amount", "1"], 3, "no account"),
        (["card", "provision", "--account", "acct_x", "--scheme", "jcb", "--form", "card",
          "--out", "x.json"], 2, "jcb"),
        (["card", "provision", "--account", "acct_x", "--scheme", "visa", "--form", "card",
          "--out", "x.json", "--allowed-mcc", "4111"], 2, "need --form phone"),
        (["card", "provision", "--account", "acct_x", "--scheme", "visa", "--form", "card",
          "--out", "/nonexistent/x.json"], 2, "no such folder"),
        (["card", "show", "card_missing"], 3, "no card"),
        (["token", "delete", "tok_missing"], 3, "no token"),
        (["keys", "generate", "--scheme", "visa", "--bin", "47", "--cvn", "18"], 2, "BIN"),
        (["keys", "generate", "--scheme", "visa", "--bin", "476173", "--cvn", "17"], 2, "CVN 17"),
        (["keys", "import", "--scheme", "visa", "--bin", "476173", "--cvn", "18",
          "--purpose", "ac", "--kcv", "zz"], 2, "not hexadecimal"),
        (["card", "register", "--account", "acct_x", "--scheme", "visa", "--expiry", "2030-13",
          "--cvn", "18"], 2, "expiry month"),
        (["terminal", "revoke", "term_missing"], 3, "no terminal"),
    ],
)  # fmt: skip
def test_bad_arguments_give_clear_errors(
    iss: Issuer, args: list[str], code: int, message: str
) -> None:
    result = iss.run(*args, code=code, input="\n")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_provision_in_bulk_writes_one_profile_per_card(
    iss: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--count N: N cards of the account, one profile each in the --out folder, and a
    progress bar on standard error when it is a terminal (never on standard output)."""
    monkeypatch.setattr("clikit.progress._tty", lambda: True)
    account = iss.json("account", "create", "--holder", "Bulk")["id"]
    folder = tmp_path / "cards"
    args = ["card", "provision", "--account", account, "--scheme", "visa", "--form", "card",
            "--out", str(folder), "--count", "3"]  # fmt: skip
    made = iss.run(*args, "--json")
    listed = json.loads(made.stdout)["provisioned"]
    assert [Path(c["profile"]).name for c in listed] == [
        "visa-card-0001.json", "visa-card-0002.json", "visa-card-0003.json",
    ]  # fmt: skip
    assert len({c["card"]["id"] for c in listed}) == 3
    assert all((folder / Path(c["profile"]).name).stat().st_mode & 0o077 == 0 for c in listed)
    assert "provisioning 3 cards" in made.stderr
    assert len(iss.json("card", "list", "--account", account)) == 3
    again = iss.run(*args, code=4)
    assert "use --force" in again.stderr
    one = iss.run(*args[:-2], "--name", "x", "--count", "2", code=2)
    assert "--name names one profile" in one.stderr


@pytest.mark.parametrize("command", ["serve", "serve-iso8583"])
def test_serving_on_a_busy_port_is_one_line_and_exit_4(iss: Issuer, command: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = iss.run(command, "--bind", f"127.0.0.1:{port}", "--json", code=4)
    assert busy.stderr.splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: the address is in use (another server "
        "listens on it): stop that server, or choose another port (0: any free one)"
    ]
    assert json.loads(busy.stdout)["error"]["code"] == "conflict"


def test_json_errors(iss: Issuer) -> None:
    """With --json the failure is also a JSON object on stdout, in the one shape of the
    four tools (clikit.errors); stderr keeps the message for a person."""
    result = iss.run("card", "show", "card_missing", "--json", code=3)
    error = json.loads(result.stdout)["error"]
    assert error == {"code": "not_found", "message": "no card 'card_missing'", "exit": 3}
    assert result.stderr == "Error: no card 'card_missing'\n"


def test_missing_home_passphrase_and_wrong_passphrase(iss: Issuer, tmp_path: Path) -> None:
    runner = cli_runner()
    result = runner.invoke(cli, ["--home", str(tmp_path / "none"), "account", "list"])
    assert result.exit_code == 10
    assert "issuer init" in result.stderr
    result = runner.invoke(
        cli, ["--home", str(iss.home), "account", "list"], env={"TAPSTACK_KEYSTORE_KEY": None}
    )
    assert result.exit_code == 10
    assert "TAPSTACK_KEYSTORE_KEY" in result.stderr
    result = runner.invoke(
        cli, ["--home", str(iss.home), "account", "list"], env={"TAPSTACK_KEYSTORE_KEY": "nope"}
    )
    assert result.exit_code == 6
    assert "wrong key store passphrase" in result.stderr
    result = runner.invoke(cli, ["account", "list"], env={"TAPSTACK_ISSUER_HOME": str(iss.home)})
    assert result.exit_code == 0  # the home from the environment


def test_init_refuses_an_initialised_home(iss: Issuer) -> None:
    assert "initialised" in iss.run("init", "--kdf-cost", "10", code=4).stderr


@pytest.mark.hsm
def test_init_on_softhsm_and_provision(softhsm: dict[str, str], tmp_path: Path) -> None:
    import pkcs11

    pkcs11.lib(softhsm["module"]).reinitialize()
    runner = CliRunner(env={"TAPSTACK_PKCS11_PIN": softhsm["pin"], "TAPSTACK_DB": None})
    home = tmp_path / "hsm-home"
    iss = Issuer(home, runner)
    made = iss.json(
        "init", "--keystore", "pkcs11", "--pkcs11-module", softhsm["module"],
        "--pkcs11-token", softhsm["label"],
    )  # fmt: skip
    assert made["keystore"] == "pkcs11"
    assert not (home / "keystore.json").exists()
    account = iss.json("account", "create", "--holder", "Ada")["id"]
    out = tmp_path / "card.json"
    iss.run("card", "provision", "--account", account, "--scheme", "visa", "--form", "card",
            "--out", str(out))  # fmt: skip
    profile = load_profile(out)
    data, arqc = tap_arqc(profile)
    with open_issuer(home, pin=softhsm["pin"]) as app:
        with app.ledger.unit_of_work(write=False) as uow:
            inst = app.vault.detokenise(uow, profile.applications[0].pan, today=TODAY)
        icc_ac = app.keys.derive_icc_mk(inst.key_ref, profile.applications[0].pan, inst.psn)
        verify_arqc(profile.applications[0].cvn, icc_ac, data, arqc)
    result = runner.invoke(
        cli, ["--home", str(home), "keys", "list"], env={"TAPSTACK_PKCS11_PIN": "0000"}
    )
    assert result.exit_code == 6
