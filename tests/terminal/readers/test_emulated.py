"""The emulated driver: a software card in process, found through an entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from card.scripted import ScriptedCard
from emvwire import apdu
from terminal.readers import (
    CardRemovedError,
    CardTimeoutError,
    CommunicationError,
    NoCardError,
    ReaderError,
    ReaderUnavailableError,
    open_reader,
)
from terminal.readers.emulated import (
    ENTRY_POINT_GROUP,
    ENTRY_POINT_NAME,
    EmulatedReader,
    is_card_removed,
    open_emulated,
)
from tests.support.cards import (
    CARDS,
    PDOL_DATA,
    SELECT_PPSE,
    VISA_AID,
    StatusWordCard,
    pulled_after,
    visa_card,
)


def test_a_fixture_card_answers_through_the_reader() -> None:
    card = visa_card()
    reader = EmulatedReader(card, path="emulated:visa")
    info = reader.wait_for_card(0)
    assert info.atr == card.atr
    assert info.uid == card.uid
    assert reader.card_present()
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
    gpo = reader.transmit(apdu.get_processing_options(PDOL_DATA).encode())
    assert gpo[-2:] == b"\x90\x00"
    assert card.counters().atc == 1
    reader.close()
    assert not reader.card_present()


def test_61xx_and_6cxx_are_followed_as_by_every_driver() -> None:
    reader = EmulatedReader(StatusWordCard())
    reader.wait_for_card()
    assert reader.transmit(SELECT_PPSE) == StatusWordCard.LONG + b"\x90\x00"
    assert reader.transmit(bytes.fromhex("00B2010C00")) == bytes.fromhex("01020304059000")


def test_card_removed_by_the_card_itself(tmp_path: Path) -> None:
    reader = EmulatedReader(pulled_after(1, tmp_path))
    reader.wait_for_card()
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    with pytest.raises(CardRemovedError, match="left the field"):
        reader.transmit(apdu.select(VISA_AID).encode())
    assert not reader.card_present()
    assert reader.wait_for_removal(0)
    with pytest.raises(NoCardError):
        reader.transmit(SELECT_PPSE)
    with pytest.raises(CardRemovedError):
        reader.repower()
    # The next wait powers it on again, and it answers again.
    reader.wait_for_card(0)
    assert reader.card_present()
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"


def test_card_removed_is_matched_by_name_or_attribute() -> None:
    class CardRemoved(Exception):  # noqa: N818 - the name is the contract
        pass

    class GoneError(Exception):
        card_removed = True

    class Subclass(CardRemoved):
        pass

    assert is_card_removed(CardRemoved())
    assert is_card_removed(Subclass())
    assert is_card_removed(GoneError())
    assert not is_card_removed(ValueError("CardRemoved"))


def test_a_card_that_leaves_for_a_while_is_not_found_until_it_is_back() -> None:
    """A scripted card that leaves the field after two commands and stays away 300 ms
    (its CardRemoved carries ``away_seconds``): polls in that time find no card."""
    scripted = ScriptedCard(
        {
            "schema": "tapstack.scripted-card/1",
            "ppse": {"entries": [{"aid": "A0000000031010"}]},
            "events": {"remove_after": 1, "away_ms": 300},
        }
    )
    reader = EmulatedReader(scripted)
    reader.wait_for_card(1)
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    with pytest.raises(CardRemovedError):
        reader.transmit(SELECT_PPSE)
    assert not reader.card_present()
    with pytest.raises(NoCardError):
        reader.wait_for_card(0.05)  # still away
    reader.wait_for_card(2)  # back after 300 ms
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    assert scripted.activations == 2
    reader.close()


def test_a_mute_card_costs_the_deadline_then_answers_at_the_next_presentation() -> None:
    scripted = ScriptedCard(
        {
            "schema": "tapstack.scripted-card/1",
            "ppse": {"entries": [{"aid": "A0000000031010"}]},
            "events": {"mute_after": 0},
        }
    )
    reader = EmulatedReader(scripted, command_timeout=0.1)
    reader.wait_for_card(1)
    with pytest.raises(CardTimeoutError):
        reader.transmit(SELECT_PPSE)
    reader.wait_for_card(1)  # the field was reset: the card let go of the command
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    reader.close()


def test_a_failing_card_is_a_communication_error() -> None:
    class Broken(StatusWordCard):
        def process(self, c_apdu: bytes) -> bytes:
            raise RuntimeError("bug")

    reader = EmulatedReader(Broken())
    reader.wait_for_card()
    with pytest.raises(CommunicationError, match="RuntimeError") as failure:
        reader.transmit(SELECT_PPSE)
    assert not isinstance(failure.value, CardRemovedError)


def test_repower_resets_the_card() -> None:
    card = visa_card()
    reader = EmulatedReader(card)
    reader.wait_for_card()
    assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
    reader.repower()
    assert reader.transmit(apdu.read_record(2, 1).encode())[-2:] == b"\x69\x85"


def test_taps_from_another_thread() -> None:
    reader = EmulatedReader(visa_card(), present=False)
    with pytest.raises(NoCardError):
        reader.wait_for_card(0.01)
    with pytest.raises(CardRemovedError):
        reader.transmit(SELECT_PPSE)
    threading.Timer(0.05, reader.present).start()
    assert reader.wait_for_card(10).atr
    assert not reader.wait_for_removal(0.01)
    threading.Timer(0.05, reader.take_away).start()
    assert reader.wait_for_removal(10)
    with pytest.raises(CardRemovedError):
        reader.transmit(SELECT_PPSE)
    threading.Timer(0.05, reader.close).start()
    with pytest.raises(ReaderUnavailableError, match="closed"):
        reader.wait_for_card(10)


# --- the entry point ---------------------------------------------------------------------


def _registered() -> list[metadata.EntryPoint]:
    return [
        ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == ENTRY_POINT_NAME
    ]


def test_installed_metadata_registers_the_card_factory(tmp_path: Path) -> None:
    if not _registered():
        pytest.skip(
            f"no installed distribution registers {ENTRY_POINT_GROUP}/{ENTRY_POINT_NAME} yet "
            "(tapstack is not pip-installed here, or pyproject.toml lacks the entry point)"
        )
    profile = tmp_path / "visa-card.json"
    shutil.copy(CARDS / "visa-card.json", profile)
    with open_reader(f"emulated:{profile}") as reader:
        reader.wait_for_card(0)
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"


def test_emulated_path_resolves_the_entry_point(distribution: Path) -> None:
    profile = distribution / "visa-card.json"
    shutil.copy(CARDS / "visa-card.json", profile)  # counters: the test's state folder
    with open_reader(f"emulated:{profile}") as reader:
        assert isinstance(reader, EmulatedReader)
        assert reader.path == f"emulated:{profile}"
        reader.wait_for_card(0)
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    with pytest.raises(ReaderError, match="no card profile"):
        open_reader(f"emulated:{distribution / 'missing.json'}")


def test_a_bad_profile_is_named_without_its_contents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    data: dict[str, Any] = json.loads((CARDS / "visa-card.json").read_text())
    data["applications"][0]["pan"] = "4761739001010010X"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReaderError, match="could not be loaded") as failure:
        open_emulated(str(bad), factory=lambda p: EmvCard.from_file(p, persist=False))
    assert "4761739001010010" not in str(failure.value)


def test_no_entry_point_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "entry_points", lambda **_: [])
    with pytest.raises(ReaderUnavailableError, match="pip install"):
        open_reader(f"emulated:{CARDS / 'visa-card.json'}")


def test_factory_must_give_a_card() -> None:
    profile = str(CARDS / "visa-card.json")
    with pytest.raises(ReaderError, match="without"):
        open_emulated(profile, factory=lambda p: object())
    with pytest.raises(ReaderError, match="names a card profile"):
        open_emulated("")


def test_the_terminal_never_imports_card() -> None:
    """Dependency rule: card, terminal and issuer import emvwire, never each other."""
    code = (
        "import sys, terminal.readers, terminal.readers.pcsc, terminal.readers.nfc, "
        "terminal.readers.emulated, terminal.readers.trace, terminal.cli\n"
        "print(sorted(m for m in sys.modules if m == 'card' or m.startswith('card.')))"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
