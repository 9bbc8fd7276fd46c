"""ACR122U feedback at the byte boundary (ACS ACR122U API v2.04 §6.2, §6.5, §6.7).

The layer above pyscard is driven by a recording fake of its ``smartcard.scard``
calls; every expected byte string is commented with the fields it carries.
"""

from __future__ import annotations

import pytest

from terminal.readers import FAILURE, IDLE, PROCESSING, REMOVE, SUCCESS, Signal
from terminal.readers.acr122u import (
    EMV_PICC_PARAMETER,
    Acr122uFeedback,
    configure_picc,
    detection_buzzer_apdu,
    led_buzzer_apdu,
    picc_parameter_apdu,
)
from terminal.readers.base import RecordingFeedback
from terminal.readers.pcsc import (
    ESCAPE_CODES,
    LEAVE_CARD,
    LIBCCID_ESCAPE,
    UNPOWER_CARD,
    VENDOR_ESCAPE,
    PcscReader,
)
from tests.terminal.readers.fake_scard import UID, FakeScard, acr122u_firmware, plain_card


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        # P2 AE: final green on (b1), red and green state masks (b2, b3), green starts on
        # (b5) and blinks (b7); T1 500 ms, T2 100 ms, once, buzzer during T1.
        (SUCCESS, "FF 00 40 AE 04 05 01 01 01"),
        # P2 5D: final red on (b0), both masks, red starts on (b4) and blinks (b6);
        # T1 = T2 = 200 ms, twice, buzzer during T1: the alert tone.
        (FAILURE, "FF 00 40 5D 04 02 02 02 01"),
        # P2 AE again: green; one 200 ms tone, then 100 ms.
        (REMOVE, "FF 00 40 AE 04 02 01 01 01"),
        # P2 0F: both LEDs on (orange), both masks; no blinking, no buzzer.
        (PROCESSING, "FF 00 40 0F 04 00 00 00 00"),
        # P2 0C: both masks, both off.
        (IDLE, "FF 00 40 0C 04 00 00 00 00"),
        # The manual's example (red, 1 Hz, three times, buzzer in T1) with the final
        # state set as well: P2 50 | 0D.
        (Signal("red", 3, 500), "FF 00 40 5D 04 05 05 03 01"),
        # Buzzer only: LEDs off, no blink mask; T1 the longest, 255 x 100 ms.
        (Signal("off", 1, 25_500), "FF 00 40 0C 04 FF 01 01 01"),
        # A zero duration still sounds for one unit.
        (Signal("green", 1, 0), "FF 00 40 AE 04 01 01 01 01"),
    ],
)
def test_led_buzzer_bytes(signal: Signal, expected: str) -> None:
    assert led_buzzer_apdu(signal) == bytes.fromhex(expected)


def test_picc_parameter_and_detection_buzzer_bytes() -> None:
    # E3: auto polling (b7), auto ATS (b6), 250 ms (b5), Type B (b1), Type A (b0)
    assert EMV_PICC_PARAMETER == 0xE3
    assert picc_parameter_apdu() == bytes.fromhex("FF 00 51 E3 00")
    assert picc_parameter_apdu(0xFF) == bytes.fromhex("FF 00 51 FF 00")
    assert detection_buzzer_apdu(False) == bytes.fromhex("FF 00 52 00 00")
    assert detection_buzzer_apdu(True) == bytes.fromhex("FF 00 52 FF 00")
    with pytest.raises(ValueError, match="one byte"):
        picc_parameter_apdu(0x100)


def test_signals_are_checked() -> None:
    with pytest.raises(ValueError, match="colour"):
        Signal("blue", 1, 100)
    with pytest.raises(ValueError, match="beeps"):
        Signal("red", 300, 100)
    with pytest.raises(ValueError, match="duration"):
        Signal("red", 1, 30_000)


def test_feedback_sends_and_records() -> None:
    sent: list[bytes] = []

    def send(apdu: bytes) -> bytes:
        sent.append(apdu)
        return b"\x90\x02"  # 90, then the LED state (green on): only SW1 counts

    feedback = Acr122uFeedback(send)
    feedback.signal(SUCCESS)
    feedback.signal(FAILURE)
    assert sent == [led_buzzer_apdu(SUCCESS), led_buzzer_apdu(FAILURE)]
    assert feedback.signals == [SUCCESS, FAILURE]
    assert not feedback.degraded


@pytest.mark.parametrize("answer", ["6D00", "6E00", "6E81", "90"])
def test_a_reader_without_the_command_degrades_at_once(answer: str) -> None:
    sent: list[bytes] = []

    def send(apdu: bytes) -> bytes:
        sent.append(apdu)
        return bytes.fromhex(answer)

    feedback = Acr122uFeedback(send)
    feedback.signal(SUCCESS)
    feedback.signal(FAILURE)
    assert feedback.degraded
    assert "does not know" in feedback.reason
    assert sent == [led_buzzer_apdu(SUCCESS)]  # nothing more after the refusal
    assert feedback.signals == [SUCCESS, FAILURE]  # but everything is recorded


def test_errors_degrade_only_when_they_repeat() -> None:
    answers: list[bytes | OSError] = [OSError("card gone"), b"\x90\x00", b"\x63\x00", OSError("x")]
    answers.append(OSError("y"))

    def send(apdu: bytes) -> bytes:
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    feedback = Acr122uFeedback(send, max_errors=3)
    for _ in range(4):
        feedback.signal(SUCCESS)
        assert not feedback.degraded  # error, ok (resets), 63 00, error: two in a row
    feedback.signal(SUCCESS)
    assert feedback.degraded  # third in a row
    assert len(feedback.signals) == 5
    with pytest.raises(ValueError, match="max_errors"):
        Acr122uFeedback(send, max_errors=0)


def test_configure_picc_reports_refusals() -> None:
    sent: list[bytes] = []

    def good(apdu: bytes) -> bytes:
        sent.append(apdu)
        return bytes((0x90, apdu[3]))

    assert configure_picc(good)
    assert sent == [bytes.fromhex("FF0051E300"), bytes.fromhex("FF00520000")]
    assert not configure_picc(lambda apdu: b"\x6e\x00")

    def broken(apdu: bytes) -> bytes:
        raise OSError("unplugged")

    assert not configure_picc(broken)


# --- through the pcsc driver (a recording fake of pyscard's scard module) ---------------


def test_an_acr122u_is_set_up_and_signals_through_the_card_connection() -> None:
    api = FakeScard()
    reader = PcscReader("acr122", api=api)
    assert isinstance(reader.feedback, Acr122uFeedback)
    info = reader.wait_for_card(1)
    assert info.uid == UID
    assert info.protocol == "T=1"
    assert api.transmits() == [
        bytes.fromhex("FF 00 51 E3 00"),  # PICC operating parameter: EMV polling
        bytes.fromhex("FF 00 52 00 00"),  # no reader beep on card detection
        bytes.fromhex("FF CA 00 00 00"),  # GET DATA: the UID
    ]
    reader.feedback.signal(SUCCESS)
    assert api.transmits()[-1] == bytes.fromhex("FF 00 40 AE 04 05 01 01 01")
    # The next activation reads the UID again but does not set the reader up again.
    reader.wait_for_card(1)
    assert api.transmits()[-1] == bytes.fromhex("FF CA 00 00 00")
    assert api.transmits().count(bytes.fromhex("FF 00 51 E3 00")) == 1
    assert ("disconnect", UNPOWER_CARD) in api.calls  # a fresh power-up per activation
    reader.close()


def test_without_a_card_signals_go_as_a_ccid_escape() -> None:
    api = FakeScard(present=False)
    reader = PcscReader("ACR122", api=api)
    reader.feedback.signal(FAILURE)
    assert api.calls[-3:] == [
        ("connect", 3),  # SCARD_SHARE_DIRECT: no card needed
        ("control", ESCAPE_CODES[0], bytes.fromhex("FF 00 40 5D 04 02 02 02 01")),
        ("disconnect", LEAVE_CARD),
    ]
    assert isinstance(reader.feedback, Acr122uFeedback)
    assert not reader.feedback.degraded


def test_the_escape_control_codes_are_libccids_and_the_vendors() -> None:
    # SCARD_CTL_CODE(1) and SCARD_CTL_CODE(3500) of pcsc-lite (0x42000000 + code).
    assert (LIBCCID_ESCAPE, VENDOR_ESCAPE) == (0x42000001, 0x42000DAC)
    assert set(ESCAPE_CODES) == {LIBCCID_ESCAPE, VENDOR_ESCAPE}


def test_an_escape_code_the_driver_refuses_is_followed_by_the_other() -> None:
    api = FakeScard(present=False)
    api.refused_codes = {ESCAPE_CODES[0]}
    reader = PcscReader("ACR122", api=api)
    reader.feedback.signal(FAILURE)
    led = bytes.fromhex("FF 00 40 5D 04 02 02 02 01")
    controls = [c for c in api.calls if c[0] == "control"]
    assert controls == [("control", ESCAPE_CODES[0], led), ("control", ESCAPE_CODES[1], led)]
    assert reader.escape_code == ESCAPE_CODES[1]
    assert isinstance(reader.feedback, Acr122uFeedback)
    assert not reader.feedback.degraded
    # The code the reader took goes first from now on.
    reader.feedback.signal(SUCCESS)
    assert [c for c in api.calls if c[0] == "control"][-1][1] == ESCAPE_CODES[1]
    assert len([c for c in api.calls if c[0] == "control"]) == 3


def test_a_reader_that_takes_neither_escape_code_degrades_to_recording() -> None:
    api = FakeScard(present=False)
    api.refused_codes = set(ESCAPE_CODES)
    reader = PcscReader("ACR122", api=api)
    for _ in range(3):
        reader.feedback.signal(FAILURE)
    assert isinstance(reader.feedback, Acr122uFeedback)
    assert reader.feedback.degraded
    assert "0x42000" in reader.feedback.reason
    assert reader.escape_code is None


def test_an_acr122u_name_whose_firmware_refuses_degrades_to_recording() -> None:
    def refuses(apdu: bytes) -> bytes:  # a clone that passes everything to the card
        return plain_card(apdu)

    api = FakeScard(answer=refuses)
    reader = PcscReader("0", api=api)
    info = reader.wait_for_card(1)
    assert info.uid == b""  # GET DATA UID answered 6E00
    reader.feedback.signal(SUCCESS)
    reader.feedback.signal(FAILURE)
    assert isinstance(reader.feedback, Acr122uFeedback)
    assert reader.feedback.degraded
    assert reader.feedback.signals == [SUCCESS, FAILURE]
    assert api.transmits().count(led_buzzer_apdu(FAILURE)) == 0


def test_other_readers_record_and_send_no_pseudo_apdu() -> None:
    api = FakeScard(("Virtual PCD 00 00",), answer=acr122u_firmware(plain_card))
    reader = PcscReader("Virtual PCD 00 00", api=api)
    assert isinstance(reader.feedback, RecordingFeedback)
    assert not isinstance(reader.feedback, Acr122uFeedback)
    assert reader.wait_for_card(1).uid == b""
    reader.feedback.signal(SUCCESS)
    assert api.transmits() == []
    assert reader.feedback.signals == [SUCCESS]
