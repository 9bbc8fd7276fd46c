"""A tap through the emulated reader to the issuer's ISO 8583 listener, on both
ledgers: ``terminal pay`` and ``terminal retail`` with an ``iso8583://`` issuer URL
(hostlink.connect picks the ISO 8583 client), approved and held at the issuer."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.personalisation import provision, write_profile
from issuer.service.iso8583 import Iso8583Handler
from issuer.service.iso8583_server import Iso8583Server
from terminal.cli import cli
from tests.issuer.helpers import World, balances, make_world
from tests.support.servers import serving

CLEAN = {name: None for name in ("TAPSTACK_ISSUER_URL", "TAPSTACK_TERMINAL_ID",
                                 "TAPSTACK_TERMINAL_KEY", "TAPSTACK_READER")}  # fmt: skip


@pytest.fixture
def listening(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], tmp_path: Path
) -> Iterator[tuple[World, list[str], str]]:
    w = make_world(issuer, rsa_keys)
    made = provision(w.app.service, w.account, "visa", "card", icc_key=rsa_keys["icc/visa"])
    profile = write_profile(made.profile, tmp_path / "card.json")
    terminal_id, key = w.auth.removeprefix("Bearer ").split(":", 1)
    sock = socket.create_server(("127.0.0.1", 0))
    with serving(Iso8583Server(Iso8583Handler(w.app), sock)):
        url = f"iso8583://127.0.0.1:{sock.getsockname()[1]}"
        issuer = ["--issuer", url, "--terminal-id", terminal_id, "--terminal-key", key]
        yield w, [*issuer, "--dev-plain-http"], str(profile)


def test_terminal_pay_over_iso8583(listening: tuple[World, list[str], str]) -> None:
    w, issuer, profile = listening
    argv = ["pay", "--reader", f"emulated:{profile}", "--amount", "12.34", "--json", *issuer]
    result = CliRunner(env=CLEAN).invoke(cli, argv)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "approved"
    online = summary["online"]
    assert (online["approved"], online["response_code"]) == (True, "00")
    assert online["request_id"].startswith("iso8583:")
    assert balances(w) == (10_000, 1234)
    with w.app.ledger.unit_of_work(write=False) as uow:
        record = uow.authorisations.get(online["transaction_id"])
    assert (record.request_id, record.amount, record.mcc) == (online["request_id"], 1234, "5411")
    assert "4761739001010010" not in result.output


def test_a_retail_sale_and_void_over_iso8583(
    listening: tuple[World, list[str], str], tmp_path: Path
) -> None:
    w, issuer, profile = listening
    home = ["--home", str(tmp_path / "till")]
    argv = ["retail", *home, *issuer, "--stdin", "--json", "--reader", f"emulated:{profile}"]
    result = CliRunner(env=CLEAN).invoke(cli, argv, input="sale 7.00\nquit\n")
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.stdout.splitlines()[0])
    assert (receipt["status"], receipt["response_code"]) == ("APPROVED", "00")
    assert balances(w) == (10_000, 700)
    void = CliRunner(env=CLEAN).invoke(
        cli, ["retail", "void", *home, *issuer, receipt["transaction_id"]]
    )
    assert void.exit_code == 0, void.output
    assert balances(w) == (10_000, 0)
