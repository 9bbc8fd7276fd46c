"""Every fault of a profile (emvwire.profile.Faults) and what it does to the card."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.probe import CardProbe
from card.transport import CardRemoved
from emvwire import tlv
from emvwire.apdu import get_data, get_processing_options, read_record, select
from emvwire.crypto import verify_arqc
from emvwire.errors import DecodeError, VerificationError
from emvwire.profile import CardProfile, load_profile

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
VISA_AID = bytes.fromhex("A0000000031010")


def _profile(name: str = "visa-card") -> CardProfile:
    return load_profile(CARDS / f"{name}.json")


def _counting_rng() -> Callable[[int], bytes]:
    state = {"n": 0}

    def rng(n: int) -> bytes:
        state["n"] += 1
        return bytes((state["n"] & 0xFF,)) * n

    return rng


def test_pull_after_removes_the_card_until_the_next_power_on() -> None:
    card = EmvCard(_profile().with_faults(pull_after=2))
    card.power_on()
    assert card.process(select("2PAY.SYS.DDF01").encode())[-2:] == b"\x90\x00"
    assert card.process(select(VISA_AID).encode())[-2:] == b"\x90\x00"
    with pytest.raises(CardRemoved):
        card.process(get_data(0x9F36).encode())
    with pytest.raises(CardRemoved):  # gone is gone
        card.process(b"")
    card.power_on()  # the next tap
    assert card.process(select(VISA_AID).encode())[-2:] == b"\x90\x00"
    assert card.selected is not None


def test_pull_after_zero_and_a_pulled_tap_counts_no_transaction() -> None:
    card = EmvCard(_profile().with_faults(pull_after=0))
    card.power_on()
    with pytest.raises(CardRemoved):
        card.process(select("2PAY.SYS.DDF01").encode())
    mc = EmvCard(_profile("mastercard-card").with_faults(pull_after=4))  # before GENERATE AC
    mc.power_on()
    with pytest.raises(CardRemoved):
        CardProbe(mc).tap()
    assert mc.counters().atc == 0


def test_pull_after_set_in_the_profile_file(tmp_path: Path) -> None:
    doc = json.loads((CARDS / "visa-card.json").read_text())
    doc["faults"]["pull_after"] = 1
    path = tmp_path / "pulled.json"
    path.write_text(json.dumps(doc))
    card = EmvCard.from_file(path, persist=False)
    card.power_on()
    card.process(select("2PAY.SYS.DDF01").encode())
    with pytest.raises(CardRemoved):
        card.process(select(VISA_AID).encode())


def test_delay_holds_every_answer_back() -> None:
    slept: list[float] = []
    card = EmvCard(_profile().with_faults(delay_ms=40), sleep=slept.append)
    card.process(select("2PAY.SYS.DDF01").encode())
    card.process(b"\x00")  # an error answer is held back too
    assert slept == [0.04, 0.04]
    EmvCard(_profile(), sleep=slept.append).process(select("2PAY.SYS.DDF01").encode())
    assert slept == [0.04, 0.04]


def test_wrong_sw_answers_the_status_word_and_does_nothing() -> None:
    card = EmvCard(_profile().with_faults(wrong_sw={0xA8: 0x6985, 0xB2: 0x6A83}))
    probe = CardProbe(card)
    probe.expect(select(VISA_AID))
    pdol_data = bytes(33)
    assert card.process(get_processing_options(pdol_data).encode()) == b"\x69\x85"
    assert card.process(read_record(2, 1).encode()) == b"\x6a\x83"
    assert card.counters().atc == 0
    assert probe.get_data(0x9F36) == b"\x00\x00"  # other instructions are honest


def test_corrupt_truncate_cuts_the_last_quarter_of_the_data() -> None:
    honest = EmvCard(_profile(), rng=_counting_rng())
    broken = EmvCard(_profile().with_faults(corrupt={0xA8: "truncate"}), rng=_counting_rng())
    for card in (honest, broken):
        CardProbe(card).expect(select(VISA_AID))
    gpo = get_processing_options(bytes.fromhex("36004000") + bytes(29)).encode()
    good, bad = honest.process(gpo), broken.process(gpo)
    data = good[:-2]
    cut = len(data) // 4
    assert bad == data[:-cut] + b"\x90\x00"
    with pytest.raises(DecodeError):
        tlv.decode(bad[:-2])


def test_corrupt_garble_breaks_the_outer_length() -> None:
    card = EmvCard(_profile().with_faults(corrupt={0xB2: "garble"}))
    honest = EmvCard(_profile())
    for c in (card, honest):
        CardProbe(c).expect(select(VISA_AID))
    bad = card.process(read_record(2, 1).encode())
    good = honest.process(read_record(2, 1).encode())
    assert bad[0] == good[0] == 0x70
    assert bad[1] == good[1] + 16
    assert bad[2:] == good[2:]
    with pytest.raises(DecodeError):
        tlv.decode(bad[:-2])


def test_wrong_key_cryptogram_does_not_verify_under_the_card_key() -> None:
    profile = _profile("mastercard-card")
    for faulty, verifies in ((False, True), (True, False)):
        card = EmvCard(profile.with_faults(wrong_key=faulty))
        tap = CardProbe(card).tap(gen_ac=0x80)
        data = tap.cryptogram_data()
        key = profile.applications[0].keys.ac
        if verifies:
            verify_arqc(17, key, data, tap.data[0x9F26])
        else:
            with pytest.raises(VerificationError):
                verify_arqc(17, key, data, tap.data[0x9F26])


def test_atc_rollback_replays_old_counter_values(tmp_path: Path) -> None:
    state = tmp_path / "clone.state.json"
    card = EmvCard(_profile().with_faults(atc_rollback=2), state_path=state)
    atcs = []
    for _ in range(3):
        tap = CardProbe(card).tap()  # no power on yet: no rollback
        atcs.append(tap.data[0x9F36])
        card.power_off()
    assert atcs == [b"\x00\x01", b"\x00\x02", b"\x00\x03"]
    card.power_on()  # the clone's counter goes back 3 -> 1
    assert card.counters().atc == 1
    assert json.loads(state.read_text())["applications"]["A0000000031010"]["atc"] == 1
    tap = CardProbe(card).tap()
    assert tap.data[0x9F36] == b"\x00\x02"  # an ATC the issuer has seen before
    card.power_on()
    card.power_on()
    assert card.counters().atc == 0  # never below zero
