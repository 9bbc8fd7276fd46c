"""`terminal readers` and `terminal watch` through click's CliRunner."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import terminal.commands.common
from terminal.cli import cli
from terminal.readers import ReaderScan
from tests.support.cards import CARDS
from tests.support.e2e import ServedCard


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.pcsc
def test_readers_json_lists_the_vpcd_readers(runner: CliRunner, pcscd: str) -> None:
    result = runner.invoke(cli, ["readers", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    listed = {r["name"]: r for r in document["readers"]}
    assert pcscd in listed
    assert listed[pcscd]["path"] == f"pcsc:{pcscd}"
    assert listed[pcscd]["driver"] == "pcsc"
    assert listed[pcscd]["feedback"] == "recording"
    assert [r["index"] for r in document["readers"]] == list(range(len(document["readers"])))
    assert isinstance(document["problems"], list)


@pytest.mark.pcsc
def test_readers_text_is_a_numbered_list_with_paths(runner: CliRunner, pcscd: str) -> None:
    result = runner.invoke(cli, ["readers"])
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if f"pcsc:{pcscd}" in line)
    assert line.split(":", 1)[0].strip().isdigit()
    assert "feedback: recording" in line


def test_readers_says_why_a_driver_found_nothing(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)  # as if pyscard were not installed
    result = runner.invoke(cli, ["readers"])
    assert result.exit_code == 0
    assert "pyscard is not installed" in result.stderr
    result = runner.invoke(cli, ["readers", "--json"])
    assert any("pyscard" in p for p in json.loads(result.stdout)["problems"])


def _watch_json(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.pcsc
def test_watch_count_ends_after_n_cards_of_card_serve(free_vpcd_reader: str) -> None:
    """``card serve --taps 2`` in a vpcd reader and ``terminal watch --count 2``: the
    watch lets each card go once reported (pcscd powers it down, card serve ends the
    tap and presents the card again), so it sees two cards and ends; it never waits
    for a command that takes the card away."""
    number = int(free_vpcd_reader.rsplit(" ", 1)[1])
    with ServedCard(CARDS / "visa-card.json", 2, "--no-persist", reader=number) as card:
        result = CliRunner().invoke(
            cli, ["watch", "--reader", f"pcsc:{free_vpcd_reader}", "--count", "2",
                  "--timeout", "20", "--json"],
        )  # fmt: skip
        _, card_err = card.finish(timeout=15)
    assert result.exit_code == 0, result.output
    events = _watch_json(result.stdout)
    assert [e["event"] for e in events] == ["arrived", "left", "arrived"]
    assert events[0]["atr"] == events[2]["atr"] != ""
    assert events[0]["reader"] == f"pcsc:{free_vpcd_reader}"
    assert events[0]["protocol"] == "T=1"
    assert events[0]["time"] < events[1]["time"] < events[2]["time"]
    assert card_err.count("tap ") == 2, card_err


@pytest.mark.pcsc
def test_watch_times_out_with_exit_code_8(runner: CliRunner, free_vpcd_reader: str) -> None:
    result = runner.invoke(
        cli, ["watch", "--reader", f"pcsc:{free_vpcd_reader}", "--timeout", "0.2"]
    )
    assert result.exit_code == 8
    assert "no card arrived" in result.output
    assert "Traceback" not in result.output


def test_watch_on_an_emulated_card_text_output(runner: CliRunner, distribution: Path) -> None:
    profile = distribution / "visa-card.json"
    shutil.copy(CARDS / "visa-card.json", profile)
    result = runner.invoke(cli, ["watch", "--reader", f"emulated:{profile}", "--count", "1"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert "card arrived" in line
    assert "ATR 3B" in line
    assert "UID " in line
    assert " card: " not in result.stderr  # no trace unless asked for
    traced = runner.invoke(
        cli, ["watch", "--reader", f"emulated:{profile}", "--count", "1", "--trace"]
    )
    assert traced.exit_code == 0, traced.output
    assert f"emulated:{profile} card: UID" in traced.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--reader", "bogus"], "bad reader path"),
        (["watch", "--reader", "pcsc:"], "names a reader"),
        (["watch", "--reader", "nfc:usb:04e6:5591"], "no contactless frontend"),
        (["watch", "--reader", "emulated:/no/such.json"], "no card profile"),
    ],
)
def test_watch_errors_are_messages_with_exit_code_9(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 9, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_watch_without_any_reader(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(terminal.commands.common.READER_ENV, raising=False)
    empty = ReaderScan((), ("pcsc: pcscd is not running",))
    monkeypatch.setattr(terminal.commands.common, "scan_readers", lambda: empty)
    result = runner.invoke(cli, ["watch"])
    assert result.exit_code == 9
    assert "no reader found (pcsc: pcscd is not running)" in result.output


def test_watch_reader_from_the_environment_and_ctrl_c(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    class Interrupted:
        path = "emulated:x"

        def wait_for_card(self, timeout: float | None = None) -> Any:
            raise KeyboardInterrupt

        def close(self) -> None:
            opened.append("closed")

    def fake_open(path: str, **options: Any) -> Any:
        opened.append(path)
        return Interrupted()

    monkeypatch.setattr(terminal.commands.common, "open_reader", fake_open)
    result = runner.invoke(
        cli, ["watch"], env={terminal.commands.common.READER_ENV: "pcsc:Some Reader"}
    )
    assert result.exit_code == 0
    assert opened == ["pcsc:Some Reader", "closed"]
    assert "stopped" in result.stderr


def test_count_and_timeout_are_checked(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["watch", "--count", "0"]).exit_code == 2
    assert runner.invoke(cli, ["watch", "--timeout", "-1"]).exit_code == 2
