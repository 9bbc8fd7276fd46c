"""``terminal retail``'s QR options and lines through click's CliRunner, with an issuer
that does not answer: a scanned code that does not read ends "not completed" with
nothing sent, a good one "issuer unreachable, no charge"; a shown code with no issuer
to open its sale ends "not completed"; bad combinations of options are usage errors.
Approvals through the real service: tests/e2e/test_qr_e2e.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from card.emv import EmvCard
from card.wallet import Wallet
from terminal.cli import cli

CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
CLEAN = {name: None for name in ("TAPSTACK_ISSUER_URL", "TAPSTACK_TERMINAL_ID",
                                 "TAPSTACK_TERMINAL_KEY", "TAPSTACK_READER")}  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Result]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there

    def invoke(*args: str, stdin: str | None = None) -> Result:
        argv = ["retail", "--home", str(tmp_path / "till"), "--issuer", url, "--terminal-id",
                "term_aaaaaaaaaaaaaaaa", "--terminal-key", "k", "--dev-plain-http",
                "--host-timeout", "0.5", "--json", *args]  # fmt: skip
        result = CliRunner(env=CLEAN).invoke(cli, argv, input=stdin)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result

    return invoke


@pytest.fixture
def code(tmp_path: Path) -> str:
    """A consumer-presented code of the Visa phone fixture."""
    shutil.copy(CARDS / "visa-phone.json", tmp_path / "phone.json")
    card = EmvCard.from_file(tmp_path / "phone.json", state_path=tmp_path / "phone.state")
    return Wallet(card).consumer_code().text


def _receipts(result: Result) -> list[dict[str, object]]:
    """The receipts printed (``--json``), without the failure's own error document."""
    documents = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    return [d for d in documents if set(d) != {"error"}]


def test_a_code_that_does_not_read_sends_nothing(run: Callable[..., Result]) -> None:
    result = run("--amount", "5.00", "--scan", stdin="hello world\n")
    assert result.exit_code == 8  # not completed (clikit.exits)
    (receipt,) = _receipts(result)
    assert (receipt["status"], receipt["channel"]) == ("NOT COMPLETED", "qr_cpm")
    assert str(receipt["reason"]).startswith("code not accepted")
    assert "[display] See phone for instructions: show your code" in result.stderr


def test_a_good_code_with_the_issuer_down_charges_nothing(
    run: Callable[..., Result], code: str
) -> None:
    result = run("--amount", "5.00", "--scan", stdin=code + "\n")
    assert result.exit_code == 7
    (receipt,) = _receipts(result)
    assert (receipt["status"], receipt["channel"], receipt["card"]) == (
        "NO CHARGE",
        "qr_cpm",
        "489537******0013",
    )
    assert "4895370000000013" not in result.output


def test_lines_scan_and_show(run: Callable[..., Result], code: str) -> None:
    lines = f"scan 5.00\n{code}\nscan 2.00 not-a-code\nshow 3.00\ntotals\n"
    result = run("--stdin", stdin=lines)
    assert result.exit_code == 0, result.output
    first, second, third, totals = _receipts(result)
    assert (first["status"], second["status"], third["status"]) == (
        "NO CHARGE",
        "NOT COMPLETED",
        "NOT COMPLETED",
    )
    assert (third["channel"], third["reason"]) == ("qr_mpm", "issuer unreachable, no charge")
    assert totals["totals"]["no_charge"] == 1  # type: ignore[index]


def test_qr_options_are_checked(run: Callable[..., Result], tmp_path: Path) -> None:
    assert run("--scan").exit_code == 2
    assert run("--amount", "1.00", "--image", "x.png").exit_code == 2
    missing = run("--amount", "1.00", "--scan", "--image", str(tmp_path / "none.png"))
    assert (missing.exit_code, "--image" in missing.output) == (2, True)
    (tmp_path / "blank.png").write_bytes(b"\x89PNG\r\n\x1a\nnothing")
    blank = run("--amount", "1.00", "--scan", "--image", str(tmp_path / "blank.png"))
    assert (blank.exit_code, "not an image" in blank.output) == (8, True)
    assert run("--amount", "1.00", "--scan", stdin="").exit_code == 8  # nothing scanned


def test_a_serial_scanner_s_code_is_read_from_its_port(
    run: Callable[..., Result], code: str
) -> None:
    """A scanner on a serial port (a pseudo-terminal here) sends the code ended by CR
    alone: read raw, it is the sale's code (the issuer is down: no charge, exit 7)."""
    leader, follower = os.openpty()
    try:
        os.write(leader, b"\r" + code.encode() + b"\r")  # an empty line first, then the code
        result = run("--amount", "5.00", "--scan", "--scanner", os.ttyname(follower))
    finally:
        os.close(leader)
        os.close(follower)
    assert result.exit_code == 7, result.output
    (receipt,) = _receipts(result)
    assert (receipt["status"], receipt["channel"], receipt["card"]) == (
        "NO CHARGE",
        "qr_cpm",
        "489537******0013",
    )


def test_a_silent_or_missing_scanner_ends_the_sale(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    leader, follower = os.openpty()
    try:
        silent = run("--amount", "5.00", "--scan", "--scanner", os.ttyname(follower),
                     "--timeout", "0.2")  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert (silent.exit_code, "no code within 0.2 s" in silent.output) == (8, True)
    missing = run("--amount", "5.00", "--scan", "--scanner", str(tmp_path / "ttyNONE"))
    assert (missing.exit_code, "No such file" in missing.output) == (8, True)
    assert "Traceback" not in silent.output + missing.output
