"""The issuer's QR commands through click's CliRunner: ``terminal qr`` (the static code,
its PNG read back by zxing-cpp), ``terminal add --city`` and ``terminal set``, ``token
channels``, ``wallet add | list | revoke`` (its certificate naming the wallet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emvwire.pki import identity_of
from emvwire.qr import image
from emvwire.qr.mpm import MerchantPresentedCode
from emvwire.qr.tapstack import merchant_id
from issuer.cli import cli
from tests.issuer.cli_kit import Issuer, cli_runner


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-qr") / "home"
    result = cli_runner().invoke(
        cli, ["--home", str(home), "init", "--kdf-cost", "10"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def iss(initialised: Path, tmp_path: Path) -> Issuer:
    home = tmp_path / "home"
    shutil.copytree(initialised, home)
    return Issuer(home, cli_runner())


def test_a_terminals_static_code_as_text_drawing_and_png(iss: Issuer, tmp_path: Path) -> None:
    added = iss.json("terminal", "add", "--merchant", "Boulangerie Émile", "--mcc", "5462",
                     "--city", "Lyon")  # fmt: skip
    assert (added["city"], added["currency"]) == ("Lyon", None)
    png = tmp_path / "static.png"
    shown = iss.run("terminal", "qr", added["id"], "--png", str(png))
    lines = shown.stdout.splitlines()
    text = lines[-1]
    assert set("".join(lines[:-1])) <= {"█", "▀", "▄", " "}
    assert image.read(png.read_bytes()) == text
    code = MerchantPresentedCode.decode(text)
    assert (merchant_id(code), code.point_of_initiation, code.amount) == (added["id"], "11", None)
    assert (code.merchant_name, code.merchant_city, code.merchant_category_code) == (
        "Boulangerie Emile",
        "Lyon",
        "5462",
    )
    assert (code.currency, code.country) == ("978", "FR")
    assert iss.json("terminal", "qr", added["id"])["payload"] == text


def test_a_terminal_without_a_city_needs_one_for_its_code(iss: Issuer) -> None:
    added = iss.json("terminal", "add", "--merchant", "Kiosk", "--mcc", "5994")
    refused = iss.run("terminal", "qr", added["id"], code=4)
    assert f"issuer terminal set {added['id']} --city CITY" in refused.stderr
    assert "Nice" in iss.json("terminal", "qr", added["id"], "--city", "Nice")["payload"]
    changed = iss.json("terminal", "set", added["id"], "--city", "Nice", "--currency", "chf")
    assert (changed["city"], changed["currency"]) == ("Nice", "CHF")
    code = MerchantPresentedCode.decode(iss.json("terminal", "qr", added["id"])["payload"])
    assert (code.merchant_city, code.currency) == ("Nice", "756")
    iss.run("terminal", "set", added["id"], code=2)
    iss.run("terminal", "set", added["id"], "--currency", "XYZ", code=2)
    iss.run("terminal", "qr", "term_aaaaaaaaaaaaaaaa", code=3)


def test_token_channels(iss: Issuer, tmp_path: Path) -> None:
    account = iss.json("account", "create", "--holder", "Ada")["id"]
    made = iss.json("card", "provision", "--account", account, "--scheme", "visa", "--form",
                    "phone", "--out", str(tmp_path / "phone.json"))  # fmt: skip
    token = made["token"]["id"]
    assert made["token"]["channels"] is None
    narrowed = iss.json("token", "channels", token, "qr_mpm", "contactless")
    assert narrowed["channels"] == ["contactless", "qr_mpm"]  # in the channels' order
    assert "pays on contactless, qr_mpm" in iss.run("token", "show", token).stdout
    assert iss.json("token", "channels", token, "--all")["channels"] is None
    iss.run("token", "channels", token, code=2)
    iss.run("token", "channels", token, "qr_cpm", "--all", code=2)
    iss.run("token", "channels", token, "nfc", code=2)
    iss.run("token", "channels", "tok_aaaaaaaaaaaaaaaa", "qr_cpm", code=3)


def test_wallets(iss: Issuer, tmp_path: Path) -> None:
    added = iss.json("wallet", "add", "--name", "Ada's phone", "--cert-dir", str(tmp_path))
    assert added["credential"].startswith("tsk_")
    cert = added["certificate"]
    who = identity_of(Path(cert["cert_file"]).read_bytes())
    assert (who.kind, who.id) == ("wallet", added["id"])
    assert Path(cert["key_file"]).stat().st_mode & 0o777 == 0o600
    listed = iss.run("wallet", "list").stdout
    assert added["id"] in listed
    assert added["credential"] not in listed
    assert iss.json("wallet", "revoke", added["id"])["status"] == "revoked"
    iss.run("wallet", "revoke", "wlt_aaaaaaaaaaaaaaaa", code=3)
    iss.run("wallet", "add", "--name", " ", code=2)
