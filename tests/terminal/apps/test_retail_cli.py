"""``terminal retail`` through click's CliRunner: bad input gives a clear message and its
exit code (never a traceback), nothing recorded; a POS line stream with the software
card in process (emulated reader) and an issuer that does not answer asks for no card
and charges nothing ("issuer unreachable", exit 7). Approvals through the real service:
tests/e2e/."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from terminal.cli import cli

CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
CLEAN = {name: None for name in ("TAPSTACK_ISSUER_URL", "TAPSTACK_TERMINAL_ID",
                                 "TAPSTACK_TERMINAL_KEY", "TAPSTACK_READER")}  # fmt: skip


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Result]:
    url = _dead_url()

    def invoke(*args: str, online: bool = True, stdin: str | None = None) -> Result:
        creds = ["--issuer", url, "--terminal-id", "term_1", "--terminal-key", "k",
                 "--dev-plain-http"]  # fmt: skip
        home = ["--home", str(tmp_path / "till")]
        argv = ["retail", *args[:1], *home, *(creds if online else []), *args[1:]]
        if args and args[0].startswith("-"):
            argv = ["retail", *home, *(creds if online else []), *args]
        result = CliRunner(env=CLEAN).invoke(cli, argv, input=stdin)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result

    return invoke


def test_selling_needs_the_issuer_settings(run: Callable[..., Result]) -> None:
    result = run("--amount", "1.00", online=False)
    assert result.exit_code == 2
    assert "--issuer, --terminal-id and --terminal-key" in result.output


def test_a_bad_amount_is_a_usage_error_before_any_tap(run: Callable[..., Result]) -> None:
    result = run("--amount", "12.345", "--reader", "emulated:/nonexistent.json")
    assert result.exit_code == 2
    assert "more than 2 decimals" in result.output
    assert run("--amount", "1", "--stdin").exit_code == 2


def test_void_or_refund_of_an_unknown_sale_is_refused(run: Callable[..., Result]) -> None:
    void = run("void", "txn_nothing")
    assert void.exit_code == 3  # not found
    assert "no approved sale txn_nothing" in void.output
    assert "check the transaction id" in void.output
    refund = run("refund", "txn_nothing", "1.00")
    assert refund.exit_code == 3
    assert run("refund", "txn_nothing", "-1").exit_code == 2


def test_close_with_the_issuer_down_leaves_the_day_open(run: Callable[..., Result]) -> None:
    result = run("close")
    assert result.exit_code == 7
    assert "issuer unreachable: the day is not closed" in result.output


def test_a_pos_line_stream_with_the_issuer_down_charges_nothing(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    shutil.copy(CARDS / "visa-card.json", tmp_path / "visa-card.json")
    reader = f"emulated:{tmp_path / 'visa-card.json'}"
    lines = "sale 2.00\n\n# a comment\nfrobnicate\ntotals\nquit\nsale 3.00\n"
    result = run("--stdin", "--json", "--reader", reader, "--host-timeout", "0.5", stdin=lines)
    assert result.exit_code == 0, result.output
    docs = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    down, error, totals = docs
    # the issuer is checked before the card is asked for: no tap, nothing recorded
    assert down["line"] == "sale 2.00"
    assert down["error"]["code"] == "unreachable"
    assert down["error"]["exit"] == 7
    assert "no card was asked for, nothing was charged" in down["error"]["message"]
    assert "[display] Present card" not in result.stderr
    assert error["line"] == "frobnicate"
    assert error["error"]["code"] == "usage"
    assert totals["totals"]["no_charge"] == 0
    assert totals["totals"]["sales"] == {"count": 0, "amount": 0}
    offline = run("totals", "--json", online=False)
    assert offline.exit_code == 0
    assert json.loads(offline.stdout)["totals"]["no_charge"] == 0


def test_the_cashier_prompt_takes_the_same_lines(run: Callable[..., Result]) -> None:
    result = run(stdin="totals\nvoid txn_nothing\nquit\n")
    assert result.exit_code == 0
    assert "Amount (or void/refund/totals/close/quit)" in result.output
    assert "sales       0  0.00 EUR" in result.stdout
    assert "no approved sale txn_nothing" in result.stderr
