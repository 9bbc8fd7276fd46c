"""One voice for the four tools (clikit.exits, clikit.errors): the same table of exit
codes in each tool's ``--help`` and in README, each error class on its code, and a
failure shown the same way by each tool: a message on stderr and, with ``--json``, one
``{"error": {"code", "message", "exit"}}`` object on stdout. Through click's runner."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import terminal.commands.readers
from backoffice.cli import HomeFailure, IssuerFailure, backoffice
from card.cli import ReaderFailure as CardReaderFailure
from card.cli import cli as card_cli
from clikit.errors import DEBUG_ENV, ToolFailure
from clikit.exits import Exit, markdown_table
from issuer import errors as issuer_errors
from issuer.cli import cli as issuer_cli
from issuer.commands.common import CliError
from terminal.cli import cli as terminal_cli
from terminal.commands import common as terminal_common
from terminal.commands import retail, transit

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "fixtures" / "cards"
TOOLS = {"terminal": terminal_cli, "issuer": issuer_cli, "card": card_cli, "backoffice": backoffice}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_each_tools_help_ends_with_the_table(tool: str) -> None:
    result = CliRunner().invoke(TOOLS[tool], ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    help_text = result.output
    table = help_text[help_text.index("Exit codes") :]
    for code in Exit:
        assert f"{code.value:>2} {code.code_name}" in table, (tool, code)
        assert code.meaning in " ".join(table.split()), (tool, code)


def test_readme_shows_the_same_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Exit codes") :]
    assert markdown_table() in section


def test_the_codes_keep_their_meanings() -> None:
    """A script may rely on these numbers: they change only with this test."""
    assert {code.code_name: code.value for code in Exit} == {
        "ok": 0, "internal": 1, "usage": 2, "not_found": 3, "conflict": 4, "declined": 5,
        "refused": 6, "unreachable": 7, "card": 8, "reader": 9, "config": 10, "storage": 11,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error", "code"),
    [
        # terminal
        (terminal_common.ReaderFailure, Exit.READER),
        (terminal_common.CardFailure, Exit.CARD),
        (terminal_common.NoCardEvent, Exit.CARD),
        (terminal_common.ConfigFailure, Exit.CONFIG),
        (terminal_common.NotCompleted, Exit.DECLINED),
        (terminal_common.CardNotCompleted, Exit.CARD),
        (terminal_common.HostUnreachableFailure, Exit.UNREACHABLE),
        (terminal_common.HostRefusedFailure, Exit.REFUSED),
        (retail.CloseMismatch, Exit.CONFLICT),
        (retail.Refused, Exit.CONFLICT),
        (retail.UnknownSale, Exit.NOT_FOUND),
        (retail.JournalFailure, Exit.STORAGE),
        (transit.JournalFailure, Exit.STORAGE),
        # issuer: its domain errors and the CLI errors they become
        (issuer_errors.IssuerError, Exit.INTERNAL),
        (issuer_errors.ValidationError, Exit.USAGE),
        (issuer_errors.NotFoundError, Exit.NOT_FOUND),
        (issuer_errors.ConflictError, Exit.CONFLICT),
        (issuer_errors.InvalidStateError, Exit.CONFLICT),
        (issuer_errors.KeyStoreError, Exit.REFUSED),
        (issuer_errors.KcvMismatchError, Exit.REFUSED),
        (issuer_errors.ConfigError, Exit.CONFIG),
        (issuer_errors.LedgerError, Exit.STORAGE),
        (issuer_errors.TransientError, Exit.STORAGE),
        # card and back office
        (CardReaderFailure, Exit.READER),
        (HomeFailure, Exit.CONFIG),
        (IssuerFailure, Exit.USAGE),
    ],
)
def test_each_error_class_has_its_code(error: type[Exception], code: Exit) -> None:
    assert error.exit_code == code  # type: ignore[attr-defined]
    if issubclass(error, issuer_errors.IssuerError):
        made = error("why") if error is not issuer_errors.RefusedError else error("c", "m")
        assert CliError.from_issuer(made).exit_code == code


def test_a_decline_and_a_transaction_the_card_could_not_complete_differ() -> None:
    declined = terminal_common.not_completed("declined", ["AAC"], declined=True)
    ended = terminal_common.not_completed("try again", ["card removed"], declined=False)
    assert (declined.exit_code, ended.exit_code) == (Exit.DECLINED, Exit.CARD)
    assert "present the card again" in ended.message
    assert ToolFailure.of("taken", Exit.CONFLICT).exit_code == Exit.CONFLICT


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _json_failure(result: Result, code: Exit) -> dict[str, object]:
    """The one JSON object on stdout, in the shape of every tool; the message is on
    stderr too."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    (line,) = result.stdout.splitlines()
    error = json.loads(line)["error"]
    assert set(error) == {"code", "message", "exit"}
    assert (error["code"], error["exit"]) == (code.code_name, int(code))
    assert f"Error: {error['message']}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return dict(error)


def test_the_json_failure_of_each_tool(tmp_path: Path) -> None:
    runner = CliRunner()
    reader = runner.invoke(
        terminal_cli, ["pay", "--reader", "emulated:/no/such.json", "--amount", "1", "--json"]
    )
    assert "no card profile" in str(_json_failure(reader, Exit.READER)["message"])
    home = tmp_path / "issuer"
    missing = runner.invoke(issuer_cli, ["--home", str(home), "account", "list", "--json"])
    assert "issuer init" in str(_json_failure(missing, Exit.CONFIG)["message"])
    vpcd = runner.invoke(
        card_cli, ["serve", str(CARDS / "visa-card.json"), "--via", "pcsc", "--port",
                   str(_closed_port()), "--no-persist", "--json"],
    )  # fmt: skip
    assert "vpcd is not listening" in str(_json_failure(vpcd, Exit.READER)["message"])
    office = runner.invoke(backoffice, ["--home", str(tmp_path / "bo"), "gate", "list", "--json"])
    assert "backoffice init" in str(_json_failure(office, Exit.CONFIG)["message"])


def test_a_usage_error_with_json_is_json_too() -> None:
    result = CliRunner().invoke(terminal_cli, ["pay", "--amount", "1e3", "--json"])
    error = _json_failure(result, Exit.USAGE)
    assert "'1e3' is not an amount" in str(error["message"])
    assert "pay [OPTIONS]" in result.stderr  # a person still gets the usage line
    plain = CliRunner().invoke(terminal_cli, ["pay", "--amount", "1e3"])
    assert plain.exit_code == Exit.USAGE
    assert plain.stdout == ""  # without --json nothing on stdout


def test_an_unexpected_exception_is_one_line_without_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault of the tool itself: exit 1 with its type and place, never a traceback nor
    its message (it might hold what a message must not)."""
    monkeypatch.delenv(DEBUG_ENV)

    def broken() -> object:
        raise RuntimeError("PAN 4761739001010010")

    monkeypatch.setattr(terminal.commands.readers, "scan_readers", broken)
    result = CliRunner().invoke(terminal_cli, ["readers", "--json"])
    error = _json_failure(result, Exit.INTERNAL)
    assert str(error["message"]).startswith("internal error (RuntimeError at test_exit_codes.py:")
    assert "4761739001010010" not in result.stdout + result.stderr
    monkeypatch.setenv(DEBUG_ENV, "1")  # for a developer: the exception itself
    raised = CliRunner().invoke(terminal_cli, ["readers"])
    assert isinstance(raised.exception, RuntimeError)
