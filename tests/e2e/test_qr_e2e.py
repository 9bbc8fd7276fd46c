"""Paying by QR code end to end, as a user runs it, on SQLite and on PostgreSQL: ``issuer
serve`` with mutual TLS, the phone's ``card qr`` and ``card pay-qr`` (the wallet with
its own credential and certificate from ``issuer wallet add``), ``terminal retail``.

- A phone's consumer-presented code, piped to the till as a USB scanner types it, is
  approved over mutual TLS and recorded ``qr_cpm``; the same code scanned again is an
  ATC replay.
- The till shows a dynamic code (written as a PNG, read back by the phone with
  zxing-cpp), the phone pays it and the till hears of it by long poll; the merchant's
  static code (``issuer terminal qr --png``) is paid too and the till's close takes it
  in: MATCH, both counted as QR sales.
- The attacks: a tampered CRC and an unknown merchant refused by the wallet, a token
  kept off QR codes and an amount that is not the code's declined by the issuer.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from emvwire.qr.mpm import MerchantPresentedCode, Template
from emvwire.qr.tapstack import ACCOUNT_TEMPLATE, GUI, MERCHANT_ID
from tests.support.e2e import (
    BIN,
    PASS,
    TerminalCredentials,
    account_balance,
    assert_no_secrets,
    card_secrets,
    child_env,
    issuer_cli,
    new_account,
    provision_card,
    serve_issuer,
)

pytestmark = pytest.mark.slow


@dataclass
class Shop:
    """A served issuer with a shop terminal (with a city), a phone token on an account
    of 100.00 and its registered wallet."""

    env: dict[str, str]
    url: str
    terminal: TerminalCredentials
    wallet: list[str]
    phone: Path
    token: str
    account: str
    folder: Path

    def run(
        self, program: str, *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``program args`` as a user runs it (the test fails on an unexpected exit)."""
        env = {**child_env(), "TAPSTACK_STATE_DIR": self.env["TAPSTACK_STATE_DIR"],
               "TAPSTACK_RETAIL_HOME": str(self.folder / "till")}  # fmt: skip
        done = subprocess.run(
            [str(BIN / program), *args], env=env, input=stdin, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if ok:
            assert done.returncode == 0, done.stderr
        assert_no_secrets([done.stdout, done.stderr], card_secrets(self.phone))
        return done

    def till(self, *args: str, stdin: str | None = None, ok: bool = True) -> Any:
        done = self.run(
            "terminal", "retail", *args, *self.terminal.options(self.url), "--json",
            stdin=stdin, ok=ok,
        )  # fmt: skip
        documents = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        # The receipts, without a failure's own error document (--json).
        return done, [d for d in documents if set(d) != {"error"}]

    def pay(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("card", "pay-qr", str(self.phone), *args, *self.wallet, "--yes", ok=ok)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL schema of the test's own, as a database URL."""
    import psycopg

    schema = f"qr_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    env = {
        **os.environ,
        "TAPSTACK_ISSUER_HOME": str(tmp_path / "home"),
        "TAPSTACK_KEYSTORE_KEY": PASS,
        "TAPSTACK_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("TAPSTACK_DB", None)
    if request.param == "postgres":
        env["TAPSTACK_DB"] = request.getfixturevalue("pg_url")
    issuer_cli(env, "init", "--kdf-cost", "10")
    account = new_account(env, "Ada Lovelace", "100.00")
    made = provision_card(env, account, tmp_path / "phone.json", form="phone")
    added = issuer_cli(env, "terminal", "add", "--merchant", "Corner shop", "--mcc", "5411",
                       "--city", "Paris")  # fmt: skip
    cert = added["certificate"]
    terminal = TerminalCredentials(added["id"], added["credential"], cert["cert_file"],
                                   cert["key_file"], cert["issuer_ca_file"])  # fmt: skip
    wallet = issuer_cli(env, "wallet", "add", "--name", "Ada's phone")
    files = wallet["certificate"]
    with serve_issuer(env) as url:
        yield Shop(
            env, url, terminal,
            ["--issuer", url, "--wallet-id", wallet["id"], "--wallet-key", wallet["credential"],
             "--issuer-ca", files["issuer_ca_file"], "--cert", files["cert_file"],
             "--cert-key", files["key_file"]],
            tmp_path / "phone.json", made["token"]["id"], account, tmp_path,
        )  # fmt: skip


def test_a_phones_code_scanned_by_the_till_is_approved_once(shop: Shop) -> None:
    code = shop.run("card", "qr", str(shop.phone), "--text").stdout.strip()
    done, (receipt,) = shop.till("--amount", "12.50", "--scan", stdin=code + "\n")
    assert (receipt["status"], receipt["channel"], receipt["amount"]) == (
        "APPROVED",
        "qr_cpm",
        "12.50 EUR",
    )
    assert receipt["card"].startswith("489537")
    done, (again,) = shop.till("--amount", "12.50", "--scan", stdin=code + "\n", ok=False)
    assert done.returncode == 5
    assert (again["status"], again["reason"], again["response_code"]) == (
        "DECLINED",
        "ATC_REPLAYED",
        "59",
    )
    records = issuer_cli(shop.env, "txn", "list")
    assert sorted(r["channel"] for r in records) == ["qr_cpm", "qr_cpm"]
    assert account_balance(shop.env, shop.account) == (10_000, 1250)


def test_the_tills_code_and_the_static_code_paid_by_the_phone(shop: Shop) -> None:
    shown = shop.folder / "shown.png"
    till = subprocess.Popen(
        [str(BIN / "terminal"), "retail", "--amount", "9.99", "--show-code", "--code-png",
         str(shown), "--qr-wait", "60", "--json", *shop.terminal.options(shop.url)],
        env={**child_env(), "TAPSTACK_RETAIL_HOME": str(shop.folder / "till")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (shown.exists() and shown.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the PNG is whole
        paid = shop.pay("--image", str(shown), "--json")
        payment = json.loads(paid.stdout)
        assert (payment["approved"], payment["amount"]) == (True, 999)
        out, err = till.communicate(timeout=60)
    finally:
        if till.poll() is None:
            till.kill()
            till.wait()
    assert till.returncode == 0, err
    receipt = json.loads(out)
    assert (receipt["status"], receipt["channel"], receipt["transaction_id"]) == (
        "APPROVED",
        "qr_mpm",
        payment["transaction_id"],
    )
    static = shop.folder / "static.png"
    issuer_cli(shop.env, "terminal", "qr", shop.terminal.id, "--png", str(static))
    done = shop.pay("--image", str(static), "--amount", "3.20")
    assert "APPROVED  3.20 EUR to Corner shop" in done.stdout
    assert "merchant  Corner shop, Paris (MCC 5411, FR)" in done.stderr
    _, (report,) = shop.till("close")
    assert report["match"], report["differences"]
    assert (report["adopted"], report["till"]["qr"]) == (1, {"count": 2, "amount": 1319})


def test_the_attacks_are_declined(shop: Shop) -> None:
    static = issuer_cli(shop.env, "terminal", "qr", shop.terminal.id)["payload"]
    tampered = static[:-1] + ("0" if static[-1] != "0" else "1")
    done = shop.pay("--text", tampered, "--amount", "1.00", ok=False)
    assert done.returncode == 5
    assert "(field 63)" in done.stderr
    code = MerchantPresentedCode.decode(static)
    elsewhere = Template.of(ACCOUNT_TEMPLATE, GUI, {MERCHANT_ID: "term_aaaaaaaaaaaaaaaa"})
    stranger = replace(code, accounts=(elsewhere,)).encode()
    done = shop.pay("--text", stranger, "--amount", "1.00", ok=False)
    assert (done.returncode, "knows no merchant" in done.stderr) == (5, True)
    # A token kept off QR codes: the issuer declines its code.
    issuer_cli(shop.env, "token", "channels", shop.token, "contactless")
    text = shop.run("card", "qr", str(shop.phone), "--text").stdout.strip()
    done, (receipt,) = shop.till("--amount", "5.00", "--scan", stdin=text + "\n", ok=False)
    assert (receipt["status"], receipt["reason"]) == ("DECLINED", "TOKEN_DOMAIN_VIOLATION")
    done = shop.pay("--text", static, "--amount", "1.00", ok=False)
    assert "declined: TOKEN_DOMAIN_VIOLATION" in done.stderr
    issuer_cli(shop.env, "token", "channels", shop.token, "--all")
    # A dynamic code whose amount was changed (its CRC made anew): the sale's amount holds.
    till = subprocess.Popen(
        [str(BIN / "terminal"), "retail", "--amount", "9.99", "--show-code", "--qr-wait", "60",
         "--json", *shop.terminal.options(shop.url)],
        env={**child_env(), "TAPSTACK_RETAIL_HOME": str(shop.folder / "till")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert till.stderr is not None
        line = ""
        while "[display] code: " not in line:
            line = till.stderr.readline()
            assert line, "the till ended before showing its code"
        shown = line.split("[display] code: ", 1)[1].strip()
        cheap = replace(MerchantPresentedCode.decode(shown), amount="0.99").encode()
        done = shop.pay("--text", cheap, ok=False)
        assert "declined: AMOUNT_MISMATCH" in done.stderr
        assert "APPROVED  9.99 EUR" in shop.pay("--text", shown).stdout
        out, _ = till.communicate(timeout=60)
    finally:
        if till.poll() is None:
            till.kill()
            till.wait()
    assert json.loads(out)["status"] == "APPROVED"
