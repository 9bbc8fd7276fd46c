"""``issuer operator add|list|show|revoke`` and ``issuer audit list`` through click's
CliRunner: the credential printed once and never again, the operator's certificate
and key written (key mode 0600), every state-changing command audited as the OS
user's with masked details, the audit log paged, filtered, and nothing unmasked in
any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emvwire.pki import identity_of
from issuer.cli import cli
from issuer.domain.audit import cli_actor
from tests.issuer.cli_kit import Issuer, all_commands, cli_runner
from tests.issuer.operator_kit import PAN


@pytest.fixture
def iss(tmp_path: Path) -> Issuer:
    made = Issuer(tmp_path / "home", cli_runner())
    made.run("init", "--kdf-cost", "10")
    return made


def test_the_new_commands_are_there() -> None:
    commands = list(all_commands(cli))
    for command in (["operator", "add"], ["operator", "list"], ["operator", "show"],
                    ["operator", "revoke"], ["audit", "list"]):  # fmt: skip
        assert command in commands  # --help and --json: test_cli.test_help_everywhere


def test_an_operator_made_shown_and_revoked(iss: Issuer, tmp_path: Path) -> None:
    text = iss.run("operator", "add", "Ada", "--scope", "read", "--scope", "operations").stdout
    assert "shown once" in text
    made = iss.json("operator", "add", "Bob", "--scope", "keys", "--out", str(tmp_path / "bob"))
    credential = made["credential"]
    assert credential.startswith("osk_")
    assert (made["scopes"], made["status"]) == (["keys"], "active")
    cert = made["certificate"]
    assert Path(cert["key_file"]).stat().st_mode & 0o777 == 0o600
    assert Path(cert["cert_file"]).parent == tmp_path / "bob"
    identity = identity_of(Path(cert["cert_file"]).read_bytes())
    assert (identity.kind, identity.id, identity.serial) == (
        "operator", made["id"], made["certificate_serial"],
    )  # fmt: skip
    assert (iss.home / "operators").is_dir()  # Ada's, by default

    listed = iss.json("operator", "list")
    assert [o["name"] for o in listed] == ["Bob", "Ada"]
    shown = iss.json("operator", "show", made["id"])
    assert (shown["name"], shown["certificate_serial"]) == ("Bob", cert["serial"])
    revoked = iss.json("operator", "revoke", made["id"])
    assert (revoked["status"], revoked["revoked_at"] is not None) == ("revoked", True)
    iss.run("operator", "revoke", made["id"], code=4)
    iss.run("operator", "show", "op_aaaaaaaaaaaaaaaa", code=3)
    iss.run("operator", "add", "Eve", "--scope", "root", code=2)
    iss.run("operator", "add", " ", "--scope", "read", code=2)
    later = "".join(iss.outputs[3:])  # after init and the two adds
    assert credential not in later  # printed once, by the command that made it
    assert "argon2" not in "".join(iss.outputs)


def test_every_change_of_the_cli_is_audited_and_paged(iss: Issuer) -> None:
    actor = cli_actor()
    account = iss.json("account", "create", "--holder", "Grace")["id"]
    iss.run("account", "credit", account, "--amount", "12.50")
    register = ("card", "register", "--account", account, "--scheme", "visa",
                "--expiry", "2031-12", "--cvn", "18", "--json")  # fmt: skip
    card = json.loads(iss.run(*register, input=PAN + "\n").stdout)["id"]
    iss.run("card", "suspend", card)
    terminal = iss.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411")["id"]
    iss.run("terminal", "revoke", terminal)
    iss.run("range", "add", "--scheme", "visa", "--prefix", "455123", "--cvn", "18")

    page = iss.json("audit", "list", "--limit", "100")
    assert (page["object"], page["has_more"]) == ("list", False)
    seen = [(r["action"], r["object_id"]) for r in page["data"]]
    assert seen == [
        ("range.add", "455123"), ("terminal.revoke", terminal), ("terminal.add", terminal),
        ("card.suspend", card), ("card.register", card), ("account.credit", account),
        ("account.create", account), ("issuer.init", str(iss.home)),
    ]  # fmt: skip
    assert {r["actor"] for r in page["data"]} == {actor}
    assert {r["outcome"] for r in page["data"]} == {"succeeded"}
    credit = page["data"][5]["details"]
    assert (credit["amount"], credit["currency"]) == (1250, "EUR")
    assert page["data"][4]["details"]["pan"] == "476173******0010"

    first = iss.json("audit", "list", "--limit", "3")
    assert first["has_more"] is True
    assert [r["id"] for r in first["data"]] == [r["id"] for r in page["data"][:3]]
    rest = iss.json("audit", "list", "--limit", "100", "--starting-after", first["data"][-1]["id"])
    assert [r["id"] for r in rest["data"]] == [r["id"] for r in page["data"][3:]]
    about_card = iss.json("audit", "list", "--object", card)
    assert [r["action"] for r in about_card["data"]] == ["card.suspend", "card.register"]
    assert iss.json("audit", "list", "--actor", "operator:op_aaaaaaaaaaaaaaaa")["data"] == []
    text = iss.run("audit", "list", "--limit", "2").stdout
    assert "range.add" in text
    assert "--starting-after" in text  # how to get the next page
    iss.run("audit", "list", "--starting-after", "aud_aaaaaaaaaaaaaaaa", code=3)
    iss.run("audit", "list", "--limit", "0", code=2)
    assert PAN not in "".join(iss.outputs)
