"""Bad input gets the exact ISO/IEC 7816-4 status word, and nothing makes the card raise.

Status words (ISO/IEC 7816-4 §5.1.3): 6700 wrong length, 6985 conditions of use not
satisfied, 6A80 bad data field, 6A82 not found, 6A83 record not found, 6A86 wrong P1-P2,
6A88 data not found, 6D00 unknown INS, 6E00 unknown CLA. The hypothesis properties feed
arbitrary bytes and mutated valid commands in every state of a transaction and require
an R-APDU of at least two bytes every time, and never 6F00 (the internal-error catch).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card.emv import EmvCard
from card.probe import DEFAULT_TRANSACTION, CardProbe
from emvwire import dol
from emvwire.apdu import (
    exchange_relay_resistance_data,
    generate_ac,
    get_data,
    get_processing_options,
    read_record,
    select,
)
from emvwire.profile import CardProfile, load_profile

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
NAMES = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
VISA_AID = bytes.fromhex("A0000000031010")
MC_AID = bytes.fromhex("A0000000041010")
EXPECTED_SWS = {0x9000, 0x6700, 0x6985, 0x6A80, 0x6A82, 0x6A83, 0x6A86, 0x6A88, 0x6D00, 0x6E00}

PROFILES: dict[str, CardProfile] = {n: load_profile(CARDS / f"{n}.json") for n in NAMES}


def sw(card: EmvCard, apdu: bytes) -> int:
    answer = card.process(apdu)
    assert len(answer) >= 2
    return int.from_bytes(answer[-2:], "big")


def _visa_pdol_data() -> bytes:
    return dol.build(PROFILES["visa-card"].applications[0].pdol, DEFAULT_TRANSACTION)


def _cdol1_data() -> bytes:
    cdol1 = PROFILES["mastercard-card"].applications[0].data[0x8C]
    return dol.build(cdol1, DEFAULT_TRANSACTION)


@pytest.fixture
def visa() -> EmvCard:
    return EmvCard(PROFILES["visa-card"])


@pytest.fixture
def mc() -> EmvCard:
    return EmvCard(PROFILES["mastercard-card"])


@pytest.mark.parametrize(
    "apdu",
    [b"", b"\x00", b"\x00\xa4", b"\x00\xa4\x04"],
    ids=["empty", "1 byte", "2 bytes", "3 bytes"],
)
def test_short_headers_are_wrong_lengths(visa: EmvCard, apdu: bytes) -> None:
    assert visa.process(apdu) == b"\x67\x00"


def test_class_and_instruction(visa: EmvCard) -> None:
    assert sw(visa, bytes.fromhex("B0A40400")) == 0x6E00  # unknown class
    assert sw(visa, bytes.fromhex("84A8000002830000")) == 0x6E00  # secure messaging
    assert sw(visa, bytes.fromhex("80A4040007") + VISA_AID) == 0x6E00  # SELECT is 00
    assert sw(visa, bytes.fromhex("00A8000002830000")) == 0x6E00  # GPO is 80
    assert sw(visa, bytes.fromhex("00200080")) == 0x6D00  # VERIFY: not offered
    assert sw(visa, bytes.fromhex("80CB9F3600")) == 0x6D00
    assert sw(visa, bytes.fromhex("00840000")) == 0x6D00  # GET CHALLENGE


def test_lc_and_extended_lengths(visa: EmvCard) -> None:
    name = b"2PAY.SYS.DDF01"
    assert sw(visa, bytes.fromhex("00A404000E") + name + b"\x00") == 0x9000  # case 4S
    assert sw(visa, bytes.fromhex("00A404000E") + name[:-1]) == 0x6700  # Lc over the data
    assert sw(visa, bytes.fromhex("00A40400FF0102")) == 0x6700  # Lc far beyond the data
    assert sw(visa, bytes.fromhex("00A404000E") + name + b"\x00\x00") == 0x6700  # one too many
    assert sw(visa, bytes.fromhex("00A4040000000E") + name) == 0x6700  # extended Lc
    assert sw(visa, bytes.fromhex("00A4040000000E") + name + b"\x00\x00") == 0x6700
    assert sw(visa, bytes.fromhex("00B2011C000100")) == 0x6700  # extended Le
    assert sw(visa, bytes.fromhex("00A40400FF") + bytes(255)) == 0x6700  # name over 16 bytes
    assert sw(visa, bytes.fromhex("00A4040000") + bytes(300)) == 0x6700  # 255+ needs extended
    assert sw(visa, bytes.fromhex("00A40400")) == 0x6700  # SELECT without a name


def test_select_parameters(visa: EmvCard) -> None:
    assert sw(visa, bytes.fromhex("00A4000007") + VISA_AID) == 0x6A86  # P1 00: by file id
    assert sw(visa, bytes.fromhex("00A4040C07") + VISA_AID) == 0x6A86  # no FCI wanted
    assert sw(visa, select(bytes.fromhex("A0000000999999")).encode()) == 0x6A82
    assert sw(visa, select("2PAY.SYS.DDF01", first=False).encode()) == 0x6A82
    assert sw(visa, select("3PAY.SYS.DDF01").encode()) == 0x6A82


def test_gpo_sequence_and_data(visa: EmvCard) -> None:
    pdol_data = _visa_pdol_data()
    good = get_processing_options(pdol_data).encode()
    assert sw(visa, good) == 0x6985  # GPO before SELECT
    assert sw(visa, select("2PAY.SYS.DDF01").encode()) == 0x9000
    assert sw(visa, good) == 0x6985  # only the PPSE is selected
    assert sw(visa, select(VISA_AID).encode()) == 0x9000
    assert sw(visa, bytes.fromhex("80A8010002830000")) == 0x6A86
    assert sw(visa, bytes.fromhex("80A80000")) == 0x6700  # no data at all
    assert sw(visa, get_processing_options(pdol_data[:-1]).encode()) == 0x6700  # short
    assert sw(visa, get_processing_options(pdol_data + b"\x00").encode()) == 0x6700  # long
    assert sw(visa, bytes.fromhex("80A800000284") + b"\x00\x00") == 0x6A80  # not 83
    assert sw(visa, bytes.fromhex("80A80000048302") + b"\x00") == 0x6700  # 83 runs past Lc
    assert sw(visa, bytes.fromhex("80A800000183")) == 0x6A80  # 83 without a length
    bad_amount = bytearray(pdol_data)
    bad_amount[4] = 0xAB  # a non-digit in 9F02
    assert sw(visa, get_processing_options(bytes(bad_amount)).encode()) == 0x6A80
    assert visa.counters().atc == 0  # nothing above was a transaction
    assert sw(visa, good) == 0x9000
    assert sw(visa, good) == 0x6985  # a second GPO
    assert visa.counters().atc == 1


def test_read_record_errors(visa: EmvCard) -> None:
    assert sw(visa, read_record(2, 1).encode()) == 0x6985  # nothing selected
    assert sw(visa, select(VISA_AID).encode()) == 0x9000
    assert sw(visa, read_record(2, 1).encode()) == 0x9000  # records may be read before GPO
    assert sw(visa, read_record(2, 9).encode()) == 0x6A83
    assert sw(visa, read_record(9, 1).encode()) == 0x6A82
    assert sw(visa, bytes.fromhex("00B2001400")) == 0x6A86  # record 0
    assert sw(visa, bytes.fromhex("00B2011000")) == 0x6A86  # P2 low bits 000
    assert sw(visa, bytes.fromhex("00B201FC00")) == 0x6A86  # SFI 31
    assert sw(visa, bytes.fromhex("00B201140100")) == 0x6700  # a data field


def test_get_data_errors(visa: EmvCard) -> None:
    assert sw(visa, get_data(0x9F36).encode()) == 0x6985
    assert sw(visa, select(VISA_AID).encode()) == 0x9000
    assert visa.process(get_data(0x9F36).encode()) == bytes.fromhex("9F360200009000")
    assert sw(visa, get_data(0x9F17).encode()) == 0x6A88
    assert sw(visa, bytes.fromhex("80CA9F360100")) == 0x6700


def test_visa_has_no_generate_ac_or_relay_resistance(visa: EmvCard) -> None:
    assert sw(visa, select(VISA_AID).encode()) == 0x9000
    assert sw(visa, generate_ac(0x80, _cdol1_data()).encode()) == 0x6D00
    assert sw(visa, exchange_relay_resistance_data(bytes(4)).encode()) == 0x6D00


def test_generate_ac_and_errd_errors(mc: EmvCard) -> None:
    cdol1_data = _cdol1_data()
    assert sw(mc, generate_ac(0x80, cdol1_data).encode()) == 0x6985  # nothing selected
    assert sw(mc, select(MC_AID).encode()) == 0x9000
    assert sw(mc, generate_ac(0x80, cdol1_data).encode()) == 0x6985  # before GPO
    assert sw(mc, exchange_relay_resistance_data(bytes(4)).encode()) == 0x6985  # before GPO
    assert sw(mc, get_processing_options().encode()) == 0x9000
    assert sw(mc, bytes.fromhex("80EA000003000000")) == 0x6700  # entropy of 3 bytes
    assert sw(mc, bytes.fromhex("80EA010004") + bytes(4)) == 0x6A86
    assert sw(mc, exchange_relay_resistance_data(bytes(4)).encode()) == 0x9000
    assert sw(mc, exchange_relay_resistance_data(bytes(4)).encode()) == 0x9000  # a retry
    assert sw(mc, generate_ac(0x80, cdol1_data[:-1]).encode()) == 0x6700  # short CDOL1 data
    assert sw(mc, generate_ac(0x80, cdol1_data + b"\x00").encode()) == 0x6700
    assert sw(mc, bytes.fromhex("80AEC00042") + cdol1_data) == 0x6A86  # AC type 11: RFU
    assert sw(mc, bytes.fromhex("80AE200042") + cdol1_data) == 0x6A86  # RFU bit
    assert sw(mc, bytes.fromhex("80AE800142") + cdol1_data) == 0x6A86  # P2 01
    assert sw(mc, bytes.fromhex("80AE8000")) == 0x6700  # no data
    assert mc.counters().atc == 0
    assert sw(mc, generate_ac(0x80, cdol1_data).encode()) == 0x9000
    assert sw(mc, exchange_relay_resistance_data(bytes(4)).encode()) == 0x6985  # after GEN AC
    assert mc.counters().atc == 1


def test_mastercard_gpo_with_data_for_an_empty_pdol(mc: EmvCard) -> None:
    assert sw(mc, select(MC_AID).encode()) == 0x9000
    assert sw(mc, get_processing_options(b"\x00").encode()) == 0x6700


def test_an_error_answer_has_no_data(visa: EmvCard) -> None:
    assert visa.process(read_record(2, 1).encode()) == b"\x69\x85"


# --- properties ----------------------------------------------------------------------


def _prepared(name: str, stage: int) -> EmvCard:
    """A card at a stage of a tap: 0 fresh, 1 PPSE, 2 AID selected, 3 after GPO."""
    card = EmvCard(PROFILES[name])
    probe = CardProbe(card)
    app = PROFILES[name].applications[0]
    if stage >= 1:
        probe.select_ppse()
    if stage >= 2:
        probe.expect(select(app.aid))
    if stage >= 3:
        probe.expect(get_processing_options(dol.build(app.pdol, DEFAULT_TRANSACTION)))
    return card


def _valid_commands(name: str) -> list[bytes]:
    app = PROFILES[name].applications[0]
    commands = [
        select("2PAY.SYS.DDF01").encode(),
        select("1PAY.SYS.DDF01").encode(),
        select(app.aid).encode(),
        get_processing_options(dol.build(app.pdol, DEFAULT_TRANSACTION)).encode(),
        get_data(0x9F36).encode(),
        *(read_record(r.sfi, r.number).encode() for r in app.records),
    ]
    if app.kernel == "mastercard":
        commands += [
            exchange_relay_resistance_data(bytes(4)).encode(),
            generate_ac(0x90, _cdol1_data()).encode(),
            generate_ac(0x40, _cdol1_data()).encode(),
        ]
    return commands


def _check(answer: bytes) -> None:
    assert len(answer) >= 2
    status = int.from_bytes(answer[-2:], "big")
    assert status in EXPECTED_SWS, f"SW {status:04X}"
    if status != 0x9000:
        assert len(answer) == 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(NAMES),
    stage=st.integers(0, 3),
    apdus=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
)
def test_arbitrary_bytes_never_raise(name: str, stage: int, apdus: list[bytes]) -> None:
    card = _prepared(name, stage)
    for apdu in apdus:
        _check(card.process(apdu))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    name = draw(st.sampled_from(NAMES))
    commands = _valid_commands(name)
    sequence = draw(st.lists(st.sampled_from(commands), min_size=1, max_size=8))
    index = draw(st.integers(0, len(sequence) - 1))
    apdu = bytearray(sequence[index])
    how = draw(st.sampled_from(["flip", "truncate", "extend", "set_lc", "header"]))
    if how == "flip":
        pos = draw(st.integers(0, len(apdu) - 1))
        apdu[pos] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        apdu = apdu[: draw(st.integers(0, len(apdu) - 1))]
    elif how == "extend":
        apdu += draw(st.binary(min_size=1, max_size=40))
    elif how == "set_lc" and len(apdu) > 4:
        apdu[4] = draw(st.integers(0, 255))
    else:
        apdu[draw(st.integers(0, 3))] = draw(st.integers(0, 255))
    sequence[index] = bytes(apdu)
    return name, sequence


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_mutated_valid_commands_never_raise(case: tuple[str, list[bytes]]) -> None:
    name, sequence = case
    card = EmvCard(PROFILES[name])
    card.power_on()
    for apdu in sequence:
        _check(card.process(apdu))


def test_an_internal_fault_is_6f00_and_logged_without_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dataclasses import replace

    app = PROFILES["visa-card"].applications[0]
    broken = replace(app, data={t: v for t, v in app.data.items() if t != 0x57})
    card = EmvCard(replace(PROFILES["visa-card"], applications=(broken,)))
    CardProbe(card).expect(select(VISA_AID))
    with caplog.at_level("DEBUG", logger="card"):
        answer = card.process(get_processing_options(_visa_pdol_data()).encode())
    assert answer == b"\x6f\x00"
    assert "KeyError" in caplog.text
    assert app.pan not in caplog.text
