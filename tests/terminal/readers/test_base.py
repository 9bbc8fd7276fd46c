"""The reader interface's shared parts: T=0 status words, standard signals, outcomes."""

from __future__ import annotations

import pytest

from terminal.readers import (
    FAILURE,
    PROCESSING,
    REMOVE,
    SUCCESS,
    Feedback,
    ProtocolError,
    RecordingFeedback,
    Signal,
    signal_outcome,
)
from terminal.readers.base import GET_RESPONSE_LIMIT, OUTCOME_SIGNALS, complete_exchange


class Script:
    """A card answering from a table, recording what it was sent."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = {bytes.fromhex(k): bytes.fromhex(v) for k, v in answers.items()}
        self.sent: list[bytes] = []

    def __call__(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers[apdu]


@pytest.mark.parametrize(
    ("command", "resent"),
    [
        ("00B2010C00", "00B2010C1D"),  # case 2: Le replaced
        ("00B2010C", "00B2010C1D"),  # case 1: Le appended
        ("80CA9F36", "80CA9F361D"),
        ("00A4040002A00000", "00A4040002A0001D"),  # case 4: last byte replaced
        ("00A4040002A000", "00A4040002A0001D"),  # case 3: Le appended
    ],
)
def test_6cxx_resends_the_command_with_le(command: str, resent: str) -> None:
    card = Script({command: "6C1D", resent: "01029000"})
    assert complete_exchange(card, bytes.fromhex(command)) == bytes.fromhex("01029000")
    assert card.sent == [bytes.fromhex(command), bytes.fromhex(resent)]


def test_a_second_6cxx_is_returned_as_is() -> None:
    card = Script({"00B2010C00": "6C10", "00B2010C10": "6C11"})
    assert complete_exchange(card, bytes.fromhex("00B2010C00")) == bytes.fromhex("6C11")


def test_6cxx_on_an_extended_apdu_is_returned_as_is() -> None:
    card = Script({"00B2010C000000": "6C10"})
    assert complete_exchange(card, bytes.fromhex("00B2010C000000")) == bytes.fromhex("6C10")


def test_61xx_is_followed_with_get_response_until_the_end() -> None:
    card = Script(
        {
            "00A4040000": "AA6102",  # data, and 2 more bytes wait
            "00C0000002": "BBCC6101",  # GET RESPONSE Le 02: 2 bytes, and 1 more
            "00C0000001": "DD6283",  # the last byte, with a warning status word
        }
    )
    assert complete_exchange(card, bytes.fromhex("00A4040000")) == bytes.fromhex("AABBCCDD6283")


def test_6cxx_then_61xx() -> None:
    card = Script({"80CA9F1700": "6C04", "80CA9F1704": "6100", "00C0000000": "019000"})
    assert complete_exchange(card, bytes.fromhex("80CA9F1700")) == bytes.fromhex("019000")


def test_broken_answers_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="no status word"):
        complete_exchange(lambda apdu: b"\x90", bytes.fromhex("00A4040000"))
    with pytest.raises(ProtocolError, match=str(GET_RESPONSE_LIMIT)):
        complete_exchange(lambda apdu: b"\x61\x01", bytes.fromhex("00A4040000"))


def test_standard_signals_follow_book_a() -> None:
    assert Signal("green", 1, 500) == SUCCESS  # the success tone: one, about 500 ms
    assert Signal("red", 2, 200) == FAILURE  # the alert tone: two of about 200 ms
    assert PROCESSING.beeps == 0
    assert REMOVE.led == "green"


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("APPROVED", SUCCESS),
        ("approved", SUCCESS),
        ("ONLINE_REQUEST", REMOVE),
        ("Online Request", REMOVE),
        ("DECLINED", FAILURE),
        ("TRY AGAIN", FAILURE),
        ("END APPLICATION", FAILURE),
        ("TRY_ANOTHER_INTERFACE", FAILURE),
        ("SELECT NEXT", None),
    ],
)
def test_outcomes_give_their_signal(outcome: str, expected: Signal | None) -> None:
    feedback = RecordingFeedback()
    assert signal_outcome(feedback, outcome) == expected
    assert feedback.signals == ([] if expected is None else [expected])


def test_unknown_outcomes_and_broken_feedback() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        signal_outcome(RecordingFeedback(), "MAYBE")

    class Broken(Feedback):
        def signal(self, signal: Signal) -> None:
            raise OSError("LED driver crashed")

    assert signal_outcome(Broken(), "DECLINED") == FAILURE  # logged, never raised
    assert set(OUTCOME_SIGNALS) >= {"approved", "declined", "online request", "try again"}
