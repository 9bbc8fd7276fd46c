"""``terminal reader feedback``: an ACR122U's LED and buzzer command tried by hand, with
libccid's escape control code and then the vendor driver's (a recording fake of
pyscard's scard module stands for pcscd and the reader)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

import terminal.commands.common
from terminal.cli import cli
from terminal.readers.emulated import EmulatedReader
from terminal.readers.pcsc import ESCAPE_CODES, LIBCCID_ESCAPE, VENDOR_ESCAPE, PcscReader
from tests.support.cards import visa_card
from tests.terminal.readers.fake_scard import FakeScard

ACR122U = "ACS ACR122U PICC Interface 00 00"


def _invoke(monkeypatch: pytest.MonkeyPatch, reader: Any, *arguments: str) -> Any:
    monkeypatch.setattr(terminal.commands.common, "open_reader", lambda path, **_: reader)
    return CliRunner().invoke(cli, ["reader", "feedback", "--reader", "x", *arguments])


def test_the_led_and_buzzer_command_goes_with_the_code_the_reader_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeScard((ACR122U,), present=False)
    api.refused_codes = {ESCAPE_CODES[0]}  # the first code refused: the other is tried
    result = _invoke(
        monkeypatch, PcscReader(ACR122U, api=api), "--led", "red", "--beep", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # Red on, blinking with two tones of 200 ms (T1 = T2 = 02, N = 02, buzzer during T1).
    assert report["apdu"] == "FF00405D0402020201"
    assert report["escape_code"] == f"0x{ESCAPE_CODES[1]:08X}"
    assert (report["sent"], report["ok"], report["answer"]) == (True, True, "9000")
    controls = [c for c in api.calls if c[0] == "control"]
    assert [c[1] for c in controls] == list(ESCAPE_CODES)
    assert {c[2].hex().upper() for c in controls} == {"FF00405D0402020201"}
    assert ("connect", 3) in api.calls  # SCARD_SHARE_DIRECT: no card needed
    assert {LIBCCID_ESCAPE, VENDOR_ESCAPE} == {0x42000001, 0x42000DAC}


def test_text_output_names_the_escape_code(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeScard((ACR122U,), present=False)
    result = _invoke(monkeypatch, PcscReader(ACR122U, api=api), "--led", "green", "--beep", "0")
    assert result.exit_code == 0, result.output
    assert f"escape code 0x{ESCAPE_CODES[0]:08X}" in result.stdout
    assert "FF00400E0400000000" in result.stdout  # green on (masks 0C, green 02), no tone


def test_a_reader_that_takes_neither_code_is_a_reader_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeScard((ACR122U,), present=False)
    api.refused_codes = set(ESCAPE_CODES)
    result = _invoke(monkeypatch, PcscReader(ACR122U, api=api), "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert (report["sent"], report["ok"]) == (False, False)
    assert "neither escape control code" in report["problem"]
    assert "Traceback" not in result.output


def test_a_reader_that_refuses_the_command_is_a_reader_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeScard((ACR122U,), present=False)
    api.control_answer = b"\x63\x00"
    result = _invoke(monkeypatch, PcscReader(ACR122U, api=api))
    assert result.exit_code == 3
    assert "refused the command (6300)" in result.output


def test_a_reader_without_led_says_signals_are_recorded_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _invoke(monkeypatch, EmulatedReader(visa_card(), path="emulated:x"), "--json")
    assert result.exit_code == 3
    assert "recorded only" in json.loads(result.stdout)["problem"]


def test_bad_options_are_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["reader", "feedback", "--led", "blue"]).exit_code == 2
    assert runner.invoke(cli, ["reader", "feedback", "--beep", "256"]).exit_code == 2
    help_text = runner.invoke(cli, ["reader", "feedback", "--help"]).output
    for option in ("--led", "--beep", "--duration", "--json"):
        assert option in help_text
    assert "feedback" in runner.invoke(cli, ["reader", "--help"]).output
