"""The pcsc driver through the real pcscd and vpcd, with software cards in a thread."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emvwire import apdu
from emvwire.tlv import decode, find
from terminal.readers import CardRemovedError, NoCardError, open_reader
from terminal.readers.pcsc import PcscReader
from tests.support.cards import (
    PDOL_DATA,
    SELECT_PPSE,
    VISA_AID,
    StatusWordCard,
    TestCard,
    VpcdCard,
    visa_card,
)

pytestmark = pytest.mark.pcsc


def _open(served: VpcdCard) -> PcscReader:
    reader = PcscReader(served.reader, removal_settle=3.0)
    info = reader.wait_for_card(10)
    assert info.atr == served.card.atr, "another process's card is in the reader"
    return reader


def test_select_ppse_on_a_fixture_card(vpcd: Callable[..., VpcdCard]) -> None:
    served = vpcd(visa_card())
    with _open(served) as reader:
        assert reader.path == f"pcsc:{served.reader}"
        assert reader.card_present()
        answer = reader.transmit(SELECT_PPSE)
        assert answer[-2:] == b"\x90\x00"
        aid = find(decode(answer[:-2]), 0x4F)
        assert aid is not None
        assert aid.value == VISA_AID
        assert served.card.seen == [SELECT_PPSE]


def test_61xx_is_followed_with_get_response_through_vpcd(vpcd: Callable[..., VpcdCard]) -> None:
    served = vpcd(StatusWordCard())
    with _open(served) as reader:
        answer = reader.transmit(SELECT_PPSE)
        assert answer == StatusWordCard.LONG + b"\x90\x00"
        assert served.card.seen == [
            SELECT_PPSE,
            bytes.fromhex("00C0000000"),  # GET RESPONSE, Le 00 = 256 (SW 6100)
            bytes.fromhex("00C000002C"),  # GET RESPONSE for the last 44 (SW 612C)
        ]


def test_6cxx_resends_with_the_right_le_through_vpcd(vpcd: Callable[..., VpcdCard]) -> None:
    served = vpcd(StatusWordCard())
    with _open(served) as reader:
        assert reader.transmit(bytes.fromhex("00B2010C00")) == bytes.fromhex("01020304059000")
        assert served.card.seen == [
            bytes.fromhex("00B2010C00"),  # READ RECORD, Le 256 -> 6C05
            bytes.fromhex("00B2010C05"),  # the same with Le 05 -> data, 9000
        ]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(apdu.get_processing_options(PDOL_DATA).encode(), id="GPO-not-resent"),
        pytest.param(apdu.read_record(2, 1).encode(), id="READ-RECORD-retried"),
    ],
)
def test_a_card_pulled_mid_session_is_card_removed(
    vpcd: Callable[..., VpcdCard], command: bytes
) -> None:
    served = vpcd(visa_card(), max_apdus=2)  # answers SELECT twice, then leaves
    with _open(served) as reader:
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
        assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
        with pytest.raises(CardRemovedError, match="left"):
            reader.transmit(command)
        assert not reader.card_present()
        with pytest.raises(NoCardError):
            reader.transmit(SELECT_PPSE)  # the handle is gone with the card
    assert served.card.seen.count(command) == 0  # vpcd never got it to the card


def test_repower_resets_the_card(vpcd: Callable[..., VpcdCard]) -> None:
    served = vpcd(visa_card())
    with _open(served) as reader:
        assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
        gpo = reader.transmit(apdu.get_processing_options(PDOL_DATA).encode())
        assert gpo[-2:] == b"\x90\x00"
        ons, offs = served.card.power_ons, served.card.power_offs
        info = reader.repower()
        assert info.atr == served.card.atr
        assert served.card.power_ons == ons + 1
        assert served.card.power_offs == offs + 1
        # Nothing is selected after a power cycle: READ RECORD is out of sequence.
        assert reader.transmit(apdu.read_record(2, 1).encode())[-2:] == b"\x69\x85"


def test_wait_for_card_times_out_without_a_card(free_vpcd_reader: str) -> None:
    with open_reader(f"pcsc:{free_vpcd_reader}") as reader:
        assert not reader.card_present()
        with pytest.raises(NoCardError, match="no card"):
            reader.wait_for_card(0.2)
        assert reader.wait_for_removal(0.1)


def test_wait_for_removal_sees_the_card_leave(vpcd: Callable[..., VpcdCard]) -> None:
    served = vpcd(TestCard(visa_card()))
    with _open(served) as reader:
        assert not reader.wait_for_removal(0.1)  # still there
        served.stop.set()
        assert reader.wait_for_removal(10)
        assert not reader.card_present()


def test_recording_feedback_on_a_reader_without_led(vpcd: Callable[..., VpcdCard]) -> None:
    from terminal.readers import SUCCESS, RecordingFeedback, signal_outcome

    served = vpcd(visa_card())
    with _open(served) as reader:
        assert isinstance(reader.feedback, RecordingFeedback)
        assert signal_outcome(reader.feedback, "APPROVED") == SUCCESS
        assert reader.feedback.signals == [SUCCESS]
        assert served.card.seen == []  # no pseudo-APDU reached the card
