"""Whole taps on the four fixture cards, answered in-process by card.emv.EmvCard.

Each answer is decoded with emvwire.tlv and compared with the profile it came from:
PPSE and AID FCIs (Book B §3.3, Book 1 §11.3.4), the GPO template 77 of each kernel,
the records named by the AFL, ERRD and GENERATE AC for Mastercard, the PSE, and the ATC
counting up across taps, power cycles and processes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from card.emv import EmvCard, load_card
from card.probe import CardProbe
from card.state import default_state_path
from emvwire import tlv
from emvwire.apdu import generate_ac, get_data, read_record, select
from emvwire.mask import mask_pan
from emvwire.profile import Application, CardProfile, load_profile

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
NAMES = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")


@pytest.fixture(scope="module")
def profiles() -> dict[str, CardProfile]:
    return {n: load_profile(CARDS / f"{n}.json") for n in NAMES}


def _app(profile: CardProfile) -> Application:
    return profile.applications[0]


def _record(app: Application, sfi: int, number: int) -> bytes:
    rec = next(r for r in app.records if (r.sfi, r.number) == (sfi, number))
    return tlv.encode(0x70, b"".join(tlv.encode(t, app.data[t]) for t in rec.tags))


@pytest.mark.parametrize("name", NAMES)
def test_ppse_lists_the_application_with_its_kernel(
    profiles: dict[str, CardProfile], name: str
) -> None:
    app = _app(profiles[name])
    probe = CardProbe(EmvCard(profiles[name]))
    raw = probe.expect(select("2PAY.SYS.DDF01"))
    fci = tlv.decode_one(raw, 0x6F)
    assert [c.tag for c in fci.children] == [0x84, 0xA5]
    assert fci.children[0].value == b"2PAY.SYS.DDF01"
    bf0c = tlv.decode_one(fci.children[1].value, 0xBF0C)
    (entry,) = bf0c.children
    assert entry.tag == 0x61
    assert [(c.tag, c.value) for c in entry.children] == [
        (0x4F, app.aid),
        (0x50, app.label.encode()),
        (0x87, bytes((app.priority or 0,))),
        (0x9F2A, app.kernel_id),
    ]
    assert app.kernel_id == (b"\x03" if app.kernel == "visa" else b"\x02")


@pytest.mark.parametrize("name", NAMES)
def test_select_aid_answers_the_fci_with_the_pdol(
    profiles: dict[str, CardProfile], name: str
) -> None:
    app = _app(profiles[name])
    probe = CardProbe(EmvCard(profiles[name]))
    fci = tlv.decode_one(probe.expect(select(app.aid)), 0x6F)
    assert fci.children[0].tag == 0x84
    assert fci.children[0].value == app.aid
    a5 = fci.children[1]
    tags = [c.tag for c in a5.children]
    assert tags[:2] == [0x50, 0x87]
    if app.pdol:
        assert tlv.find([a5], 0x9F38) is not None
        assert tlv.flatten([a5])[0x9F38] == app.pdol
    else:
        assert 0x9F38 not in tags


def visa_gpo_tags(fdda: bool) -> list[int]:
    """The order of a qVSDC GPO answer: AFL and SDAD only with fDDA."""
    head = [0x82, 0x94] if fdda else [0x82]
    middle = [0x57, 0x5F20, 0x5F34, 0x9F10, 0x9F26, 0x9F27, 0x9F36]
    tail = [0x9F4B, 0x9F6C, 0x9F6E] if fdda else [0x9F6C, 0x9F6E]
    return head + middle + tail


@pytest.mark.parametrize("name", ["visa-card", "visa-phone"])
def test_visa_tap_offline_approval_with_fdda(profiles: dict[str, CardProfile], name: str) -> None:
    profile = profiles[name]
    app = _app(profile)
    card = EmvCard(profile)
    tap = CardProbe(card).tap()
    gpo = tlv.decode_one(tap.gpo, 0x77)
    assert [c.tag for c in gpo.children] == visa_gpo_tags(True)
    values = tlv.flatten([gpo])
    assert values[0x82] == app.aip
    assert values[0x94] == app.afl()
    assert values[0x57] == app.data[0x57]
    assert values[0x5F34] == app.data[0x5F34]
    assert values[0x9F27] == b"\x40"  # TC: within the offline limits, domestic
    assert values[0x9F36] == b"\x00\x01"
    assert values[0x9F6E] == app.data[0x9F6E]
    assert len(values[0x9F26]) == 8
    assert len(values[0x9F4B]) == 128  # 1024-bit ICC key
    # Every record the AFL names is the profile's record, except 9F69 filled per tap.
    assert set(tap.records) == {(r.sfi, r.number) for r in app.records}
    for (sfi, number), body in tap.records.items():
        if 0x9F69 in tlv.flatten(tlv.decode(body)):
            card_auth = tlv.flatten(tlv.decode(body))[0x9F69]
            assert card_auth[0] == 0x01
            assert card_auth[5:] == values[0x9F6C]
        else:
            assert body == _record(app, sfi, number)
    if app.token is not None:
        assert tap.data[0x9F19] == app.data[0x9F19]
        assert tap.data[0x9F24] == app.token.par.encode()
        assert tap.data[0x9F25] == bytes.fromhex(app.token.pan_last4)


@pytest.mark.parametrize("name", ["visa-card", "visa-phone"])
def test_visa_iad_layout_per_cvn(profiles: dict[str, CardProfile], name: str) -> None:
    app = _app(profiles[name])
    tap = CardProbe(EmvCard(profiles[name])).tap()
    iad = tap.data[0x9F10]
    if app.cvn == 22:
        # Format 2: 1F | CVN 22 | DKI | CVR(5) | IDD option | 23 bytes.
        assert len(iad) == 32
        assert iad[:3] == bytes.fromhex("1F2201")
        assert iad[3] == 0x90  # no 2nd GENERATE AC, TC
    else:
        assert iad[:4] == bytes((0x06, 0x01, 0x12, 0x03))
        assert len(iad) == 7
        assert iad[4] == 0x90


@pytest.mark.parametrize("name", ["mastercard-card", "mastercard-phone"])
def test_mastercard_tap_with_and_without_cda(profiles: dict[str, CardProfile], name: str) -> None:
    profile = profiles[name]
    app = _app(profile)
    card = EmvCard(profile, rng=lambda n: bytes(range(1, n + 1)))
    probe = CardProbe(card)
    tap = probe.tap(gen_ac=0x90)  # ARQC, CDA requested
    gpo = tlv.decode_one(tap.gpo, 0x77)
    assert [(c.tag, c.value) for c in gpo.children] == [(0x82, app.aip), (0x94, app.afl())]
    assert tap.pdol_data == b""
    for (sfi, number), body in tap.records.items():
        assert body == _record(app, sfi, number)
    assert set(tap.records) == {(r.sfi, r.number) for r in app.records}
    # ERRD: template 80 with the values concatenated (Book C-2 §5.3).
    errd = tlv.decode_one(tap.errd, 0x80)
    timings = app.data[0xDF8303] + app.data[0xDF8304] + app.data[0xDF8305]
    assert errd.value == bytes((1, 2, 3, 4)) + timings
    answer = tlv.decode_one(tap.gen_ac, 0x77)
    assert [c.tag for c in answer.children] == [0x9F27, 0x9F36, 0x9F4B, 0x9F10]
    values = tlv.flatten([answer])
    assert values[0x9F27] == b"\x80"
    assert values[0x9F36] == b"\x00\x01"
    iad = values[0x9F10]
    assert len(iad) == 18
    assert iad[:2] == bytes((0x01, {17: 0x11, 21: 0x15}[app.cvn]))
    assert iad[8:10] == bytes((1, 2))  # first two bytes of the ICC dynamic number
    # A second transaction without CDA: 9F26 in clear, no signature.
    card.power_on()
    tap2 = probe.tap(gen_ac=0x80)
    answer2 = tlv.decode_one(tap2.gen_ac, 0x77)
    assert [c.tag for c in answer2.children] == [0x9F27, 0x9F36, 0x9F26, 0x9F10]
    assert tlv.flatten([answer2])[0x9F36] == b"\x00\x02"
    assert tlv.flatten([answer2])[0x9F10][8:10] == b"\x00\x00"


@pytest.mark.parametrize("name", NAMES)
def test_atc_counts_across_power_cycles(profiles: dict[str, CardProfile], name: str) -> None:
    card = EmvCard(profiles[name])
    probe = CardProbe(card)
    seen = []
    for _ in range(3):
        card.power_on()
        tap = probe.tap()
        seen.append(int.from_bytes(tap.data[0x9F36], "big"))
        assert probe.get_data(0x9F36) == tap.data[0x9F36]
        card.power_off()
    assert seen == [1, 2, 3]
    assert card.counters().atc == 3


@pytest.mark.parametrize("name", NAMES)
def test_atc_persists_in_the_state_file_across_cards(
    profiles: dict[str, CardProfile], name: str, tmp_path: Path
) -> None:
    state = tmp_path / "card.state.json"
    first = EmvCard(profiles[name], state_path=state)
    CardProbe(first).tap()
    first.power_on()
    CardProbe(first).tap()
    first.power_on()
    CardProbe(first).tap()
    second = EmvCard(profiles[name], state_path=state)  # a new process, the same card
    second.power_on()
    tap = CardProbe(second).tap()
    assert tap.data[0x9F36] == b"\x00\x04"
    doc = json.loads(state.read_text())
    assert doc["schema"] == "tapstack.card-state/1"
    aid = _app(profiles[name]).aid.hex().upper()
    assert doc["applications"][aid]["atc"] == 4
    # The state file holds counters only: no PAN, no key.
    text = state.read_text()
    assert _app(profiles[name]).pan not in text
    assert _app(profiles[name]).keys.ac.hex().upper() not in text.upper()
    assert state.stat().st_mode & 0o077 == 0


def _state_atc(path: Path, aid: str = "A0000000031010") -> int:
    return int(json.loads(path.read_text())["applications"][aid]["atc"])


def test_a_fixture_card_counts_on_in_the_state_folder(card_state_dir: Path) -> None:
    """Loaded twice (as two processes would, through the ``tapstack.cards`` entry point),
    a fixture card counts on from its file in the state folder and leaves nothing
    beside the fixture."""
    profile = CARDS / "visa-card.json"
    beside = sorted(CARDS.iterdir())
    first = load_card(str(profile))
    assert isinstance(first, EmvCard)
    CardProbe(first).tap()
    state = default_state_path(profile)
    assert state.parent == card_state_dir
    assert _state_atc(state) == 1
    again = load_card(str(profile))
    assert isinstance(again, EmvCard)
    assert again.counters().atc == 1
    CardProbe(again).tap()
    assert _state_atc(state) == 2
    memory = EmvCard.from_file(profile, persist=False)
    CardProbe(memory).tap()
    assert _state_atc(state) == 2
    assert sorted(CARDS.iterdir()) == beside
    assert sorted(card_state_dir.iterdir()) == [state]


def test_get_data_last_online_atc_and_absent_objects(profiles: dict[str, CardProfile]) -> None:
    card = EmvCard(profiles["visa-card"])
    probe = CardProbe(card)
    probe.tap({0x9F66: bytes.fromhex("36804000")})  # online cryptogram required: ARQC
    assert probe.get_data(0x9F13) == b"\x00\x01"
    assert probe.get_data(0x9F36) == b"\x00\x01"
    for tag in (0x9F17, 0x9F4F, 0x5A, 0x57):
        assert probe.send(get_data(tag)).sw == 0x6A88


def test_pse_directory(profiles: dict[str, CardProfile]) -> None:
    profile = profiles["mastercard-card"]
    app = _app(profile)
    probe = CardProbe(EmvCard(profile))
    fci = tlv.decode_one(probe.expect(select("1PAY.SYS.DDF01")), 0x6F)
    assert tlv.flatten([fci])[0x84] == b"1PAY.SYS.DDF01"
    assert tlv.flatten([fci])[0x88] == b"\x01"
    record = tlv.decode_one(probe.expect(read_record(1, 1)), 0x70)
    (entry,) = record.children
    assert [(c.tag, c.value) for c in entry.children] == [
        (0x4F, app.aid),
        (0x50, app.label.encode()),
        (0x87, b"\x01"),
    ]
    assert probe.send(read_record(1, 2)).sw == 0x6A83
    assert probe.send(read_record(2, 1)).sw == 0x6A82
    no_pse = EmvCard(replace(profile, pse=False))
    assert CardProbe(no_pse).send(select("1PAY.SYS.DDF01")).sw == 0x6A82


def test_partial_selection_first_and_next(profiles: dict[str, CardProfile]) -> None:
    visa = _app(profiles["visa-card"])
    electron = replace(visa, aid=bytes.fromhex("A0000000032010"), label="VISA ELECTRON")
    card = EmvCard(replace(profiles["visa-card"], applications=(visa, electron)))
    probe = CardProbe(card)
    rid = bytes.fromhex("A000000003")
    fci = probe.expect(select(rid))
    assert tlv.flatten(tlv.decode(fci))[0x84] == visa.aid
    fci = probe.expect(select(rid, first=False))
    assert tlv.flatten(tlv.decode(fci))[0x84] == electron.aid
    assert card.selected is electron
    assert probe.send(select(rid, first=False)).sw == 0x6A82
    assert probe.send(select(bytes.fromhex("A0000000"))).sw == 0x6A82  # under 5 bytes
    assert probe.send(select(bytes.fromhex("A0000000041010"))).sw == 0x6A82
    # Two applications, two independent ATCs.
    CardProbe(card).tap(aid=electron.aid)
    assert card.counters(electron.aid).atc == 1
    assert card.counters(visa.aid).atc == 0


def test_mastercard_generate_ac_only_once(profiles: dict[str, CardProfile]) -> None:
    card = EmvCard(profiles["mastercard-card"])
    probe = CardProbe(card)
    tap = probe.tap(gen_ac=0x80)
    assert probe.send(generate_ac(0x80, tap.cdol1_data)).sw == 0x6985
    assert card.counters().atc == 1


@pytest.mark.parametrize("name", NAMES)
def test_nothing_logged_or_shown_holds_the_pan_or_keys(
    profiles: dict[str, CardProfile], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    profile = profiles[name]
    app = _app(profile)
    card = EmvCard(profile)
    with caplog.at_level("DEBUG"):
        CardProbe(card).tap()
        card.process(b"\x00\xb2")
    assert "C-APDU INS A8" in caplog.text  # the debug trace is there
    shown = caplog.text + repr(card) + repr(card.applications[0]) + repr(card.state.to_json())
    assert app.pan not in shown
    assert mask_pan(app.pan) in repr(card.applications[0])  # shown masked, if at all
    for key in (app.keys.ac, app.keys.smi, app.keys.smc):
        assert key.hex() not in shown.lower()
