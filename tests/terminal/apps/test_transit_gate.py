"""``terminal gate transit`` through click's runner with emulated cards, and the
gate loop (terminal.apps.gate): the journal is on disk before the signal, a card pulled
away is "try again" with nothing journaled, one line per tap, clear errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from card.emv import EmvCard
from emvwire.profile import load_profile
from emvwire.seal import generate_keypair
from terminal.apps.denylist import DenyList
from terminal.apps.gate import GateVerdict, format_line, run_gate
from terminal.apps.journal import JOURNAL_FILE, Journal
from terminal.apps.transit import TransitGate, TransitSettings
from terminal.cli import cli
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction
from terminal.readers import FAILURE, SUCCESS, Feedback, Signal
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[3]
CARDS = ROOT / "fixtures" / "cards"
_, PUBLIC = generate_keypair()
VISA_PAN = "4761739001010010"


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """A copy of the Visa card's profile: its counters file stays in tmp_path."""
    copy = tmp_path / "visa-card.json"
    shutil.copy(CARDS / "visa-card.json", copy)
    return copy


def _gate(home: Path, profile: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        cli,
        ["gate", "transit", "--reader", f"emulated:{profile}", "--home", str(home),
         "--gate-id", "G1", "--seal-key", PUBLIC.hex(), *extra],
        catch_exceptions=False,
    )  # fmt: skip


def test_without_a_seal_key_the_gate_refuses_to_start(tmp_path: Path, profile: Path) -> None:
    done = CliRunner().invoke(
        cli, ["gate", "transit", "--reader", f"emulated:{profile}",
              "--home", str(tmp_path / "g"), "--gate-id", "G1", "--taps", "1"],
        env={"TAPSTACK_SEAL_KEY": ""},
    )  # fmt: skip
    assert done.exit_code == 2
    assert "--seal-key" in done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "g").exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seal-key", "abcd"], "64 hex"),
        (["--direction", "on"], "zone"),
        (["--nominal-amount", "1.234"], "--nominal-amount"),
        (["--backoffice", "http://127.0.0.1:9"], "--gate-key"),
    ],
)
def test_bad_options_are_clear_errors(
    tmp_path: Path, profile: Path, args: list[str], message: str
) -> None:
    done = CliRunner().invoke(
        cli,
        ["gate", "transit", "--reader", f"emulated:{profile}", "--home", str(tmp_path),
         "--gate-id", "G1", "--seal-key", PUBLIC.hex(), "--taps", "1", *args],
        env={"TAPSTACK_GATE_KEY": ""},
    )  # fmt: skip
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert "Traceback" not in done.output


def test_three_taps_open_open_then_deny_over_the_first_ride_limit(
    tmp_path: Path, profile: Path
) -> None:
    done = _gate(tmp_path / "g", profile, "--taps", "3", "--first-ride-limit", "2", "--json")
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(t["decision"], t["reason"]) for t in lines] == [
        ("open", None), ("open", None), ("deny", "first_ride_limit"),
    ]  # fmt: skip
    assert [t["tap_id"] for t in lines] == ["G1:1", "G1:2", "G1:3"]
    assert {t["masked_pan"] for t in lines} == {"476173******0010"}
    assert all(t["ms"] > 0 for t in lines)
    assert "3 taps not uploaded yet" in done.stderr
    journal = (tmp_path / "g" / "journal" / JOURNAL_FILE).read_text()
    assert [json.loads(r)["decision"] for r in journal.splitlines()] == ["open", "open", "deny"]
    for text in (done.stdout, done.stderr, journal):
        assert VISA_PAN not in text
    # The same home again: the gate remembers today's rides of the card.
    again = _gate(tmp_path / "g", profile, "--taps", "1", "--first-ride-limit", "2")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("DENY   476173******0010")
    assert "first_ride_limit  G1:4" in again.stdout


def test_a_deny_list_on_disk_denies_without_any_network(tmp_path: Path, profile: Path) -> None:
    first = _gate(tmp_path / "g", profile, "--taps", "1", "--json")
    reference = json.loads(first.stdout)["card_reference"]
    DenyList(tmp_path / "g" / "denylist").apply({"version": 9, "add": [reference]})
    done = _gate(tmp_path / "g", profile, "--taps", "1", "--json")
    assert json.loads(done.stdout)["reason"] == "deny_list"
    assert "deny list version 9 (1 cards)" in done.stderr


def test_a_journal_of_another_gate_is_a_configuration_error(tmp_path: Path, profile: Path) -> None:
    assert _gate(tmp_path / "g", profile, "--taps", "1").exit_code == 0
    done = CliRunner().invoke(
        cli, ["gate", "transit", "--reader", f"emulated:{profile}",
              "--home", str(tmp_path / "g"), "--gate-id", "G2", "--seal-key", PUBLIC.hex(),
              "--taps", "1"],
    )  # fmt: skip
    assert done.exit_code == 10  # the gate's state belongs to another gate
    assert "G1" in done.output
    assert "Traceback" not in done.output


class JournalAtSignal(Feedback):
    """A reader's LED and buzzer that notes how many taps were on disk at each signal."""

    def __init__(self, journal_file: Path) -> None:
        self.file = journal_file
        self.seen: list[tuple[Signal, int]] = []

    def signal(self, signal: Signal) -> None:
        lines = self.file.read_text().splitlines() if self.file.exists() else []
        self.seen.append((signal, len(lines)))


class PulledAway:
    """A card that leaves the field after ``after`` C-APDUs (once), as card serve's
    --pull-after does."""

    def __init__(self, inner: EmvCard, after: int) -> None:
        self.inner, self.after, self.count = inner, after, 0
        self.atr = inner.atr

    def power_on(self) -> None:
        self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def process(self, c_apdu: bytes) -> bytes:
        self.count += 1
        if self.count == self.after:
            raise CardRemovedError

        return self.inner.process(c_apdu)


class CardRemovedError(Exception):
    """Marked as the emulated reader expects of a card leaving the field."""

    card_removed = True


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[TransitGate]:
    with Journal(tmp_path / "journal") as journal:
        yield TransitGate(TransitSettings("G1", PUBLIC), journal, DenyList())


def test_the_tap_is_on_disk_before_the_gate_signals_and_a_pull_is_try_again(
    tmp_path: Path, gate: TransitGate
) -> None:
    card = PulledAway(EmvCard(load_profile(CARDS / "visa-card.json")), after=3)
    reader = EmulatedReader(card, path="emulated:test")
    feedback = JournalAtSignal(tmp_path / "journal" / JOURNAL_FILE)
    reader.feedback = feedback
    verdicts: list[GateVerdict] = []
    rounds = run_gate(reader, EntryPoint(default_config()), lambda: Transaction(100),
                      gate.decide, verdicts.append, taps=3)  # fmt: skip
    assert rounds == 3
    assert [v.decision for v in verdicts] == ["retry", "open", "open"]
    assert verdicts[0].record is None
    # The first tap (pulled away) is signalled "present again" with nothing on disk; the
    # open taps are signalled with their record already written.
    assert feedback.seen == [(FAILURE, 0), (SUCCESS, 1), (SUCCESS, 2)]
    assert [r["tap_id"] for r in gate.journal.records()] == ["G1:1", "G1:2"]
    assert format_line(verdicts[0]).startswith("RETRY  476173******0010") or format_line(
        verdicts[0]
    ).startswith("RETRY  -")
    assert "try_again" in format_line(verdicts[0])
