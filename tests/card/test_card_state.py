"""The card's non-volatile counters: the state file, its checks, another process, a spent ATC,
the state folder and the file a profile gets there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.probe import CardProbe
from card.state import STATE_DIR_ENV, CardState, StateError, default_state_path, state_dir
from emvwire.apdu import generate_ac, get_processing_options, select
from emvwire.profile import CardProfile, load_profile

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "fixtures" / "cards"


def _profile(name: str = "visa-card") -> CardProfile:
    return load_profile(CARDS / f"{name}.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"schema": "other"}', "tapstack.card-state/1"),
        ('{"schema": "tapstack.card-state/1", "applications": []}', "applications"),
        (
            '{"schema": "tapstack.card-state/1", "applications": {"A0000000031010": {"atc": -1}}}',
            "atc",
        ),
        (
            '{"schema": "tapstack.card-state/1", "applications": '
            '{"A0000000031010": {"atc": 70000}}}',
            "atc",
        ),
        (
            '{"schema": "tapstack.card-state/1", "applications": '
            '{"A0000000031010": {"blocked": "yes"}}}',
            "blocked",
        ),
        ('{"schema": "tapstack.card-state/1", "applications": {"zz": {}}}', "AID"),
    ],
)
def test_a_bad_state_file_is_refused_at_construction(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateError, match=message):
        EmvCard(_profile(), state_path=path)


def test_state_of_other_applications_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "schema": "tapstack.card-state/1",
                "applications": {"A0000000999999": {"atc": 9}, "A0000000031010": {"atc": 7}},
            }
        )
    )
    card = EmvCard(_profile(), state_path=path)
    assert card.counters().atc == 7


def test_saves_are_atomic_files_without_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    card = EmvCard(_profile(), state_path=path)
    for _ in range(5):
        card.power_on()
        CardProbe(card).tap()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["applications"]["A0000000031010"] == {
        "atc": 5,
        "last_online_atc": 4,  # the 4th tap was beyond the 3 offline taps
        "offline_count": 1,
        "offline_amount": 1000,
        "blocked": False,
    }


def test_power_on_rereads_what_another_card_object_did(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    a = EmvCard(_profile(), state_path=path)
    b = EmvCard(_profile(), state_path=path)
    CardProbe(a).tap()
    b.power_on()
    assert CardProbe(b).tap().data[0x9F36] == b"\x00\x02"


def test_another_process_continues_the_atc(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    card = EmvCard(_profile("mastercard-card"), state_path=path)
    CardProbe(card).tap()
    script = (
        "import sys\n"
        "from card.emv import EmvCard\n"
        "from card.probe import CardProbe\n"
        "from emvwire.profile import load_profile\n"
        "card = EmvCard(load_profile(sys.argv[1]), state_path=sys.argv[2])\n"
        "card.power_on()\n"
        "print(CardProbe(card).tap().data[0x9F36].hex())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(CARDS / "mastercard-card.json"), str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    assert out.stdout.strip() == "0002"
    card.power_on()
    assert CardProbe(card).tap().data[0x9F36] == b"\x00\x03"


def test_the_state_folder_comes_from_the_environment(tmp_path: Path) -> None:
    home = Path.home()
    user = home / ".local" / "state" / "tapstack" / "cards"
    assert state_dir({STATE_DIR_ENV: str(tmp_path), "XDG_STATE_HOME": "/elsewhere"}) == tmp_path
    assert state_dir({"XDG_STATE_HOME": "/var/lib/me"}) == Path("/var/lib/me/tapstack/cards")
    assert state_dir({"XDG_STATE_HOME": "relative/path"}) == user  # not absolute: ignored
    assert state_dir({STATE_DIR_ENV: "", "XDG_STATE_HOME": ""}) == user
    assert state_dir({}) == user
    # the test-wide fixture (tests/conftest.py) points every test at a folder of its own
    assert state_dir() == Path(os.environ[STATE_DIR_ENV])


def test_a_profile_file_is_named_from_its_path_never_from_its_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = CARDS / "visa-card.json"
    path = default_state_path(profile, tmp_path)
    assert path.parent == tmp_path
    assert path.name.startswith("visa-card-")
    assert path.name.endswith(".state.json")
    assert _profile().applications[0].pan not in path.name
    monkeypatch.chdir(CARDS)  # the same file, however the profile is named
    assert default_state_path("visa-card.json", tmp_path) == path
    assert default_state_path(CARDS / ".." / "cards" / "visa-card.json", tmp_path) == path
    copy = tmp_path / "copy" / "visa-card.json"  # another card of the same name
    assert default_state_path(copy, tmp_path) != path
    assert default_state_path(profile) == state_dir() / path.name


def test_the_state_folder_is_made_private_on_first_save(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "cards"
    card = EmvCard(_profile(), state_path=folder / "card.state.json")
    assert not folder.exists()  # reading made nothing
    CardProbe(card).tap()
    assert (folder / "card.state.json").is_file()
    assert folder.stat().st_mode & 0o077 == 0


def test_without_a_path_the_state_stays_in_memory(tmp_path: Path) -> None:
    state = CardState(_profile().applications)
    state.save()  # nothing to write, nothing raised
    assert state.path is None
    assert state.to_json()["applications"]["A0000000031010"]["atc"] == 0


def test_a_spent_atc_refuses_transactions(tmp_path: Path) -> None:
    for name in ("visa-card", "mastercard-card"):
        card = EmvCard(_profile(name))
        card.state[card.profile.applications[0].aid].atc = 0xFFFF
        probe = CardProbe(card)
        app = card.profile.applications[0]
        probe.expect(select(app.aid))
        if app.kernel == "visa":
            answer = card.process(get_processing_options(bytes(33)).encode())
        else:
            probe.expect(get_processing_options())
            answer = card.process(generate_ac(0x80, bytes(66)).encode())
        assert answer == b"\x69\x85"
        assert card.counters().atc == 0xFFFF


def test_personalised_counters_are_the_starting_point() -> None:
    from dataclasses import replace

    from emvwire.profile import Counters

    base = _profile()
    app = replace(base.applications[0], counters=Counters(atc=41, last_online_atc=40))
    card = EmvCard(replace(base, applications=(app,)))
    assert CardProbe(card).tap().data[0x9F36] == b"\x00\x2a"
