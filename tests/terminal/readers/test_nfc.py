"""The nfc driver through nfcpy's udp frontend, with card.nfc.serve_nfc in a thread."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emvwire import apdu
from emvwire.tlv import decode, find
from terminal.readers import CardRemovedError, NoCardError, ReaderError, open_reader
from terminal.readers.nfc import NfcReader, check_nfc_path
from tests.support.cards import (
    NFC_UID,
    PDOL_DATA,
    SELECT_PPSE,
    VISA_AID,
    NfcCard,
    StatusWordCard,
    free_udp_port,
    visa_card,
)


def _open(served: NfcCard) -> NfcReader:
    reader = open_reader(f"nfc:{served.path}")
    assert isinstance(reader, NfcReader)
    info = reader.wait_for_card(10)
    assert info.uid == NFC_UID
    assert info.protocol == "ISO-DEP 106A"
    return reader


def test_select_ppse_on_a_fixture_card(nfc_card: Callable[..., NfcCard]) -> None:
    served = nfc_card(visa_card())
    with _open(served) as reader:
        assert reader.card_present()  # ISO-DEP presence check answered
        answer = reader.transmit(SELECT_PPSE)
        assert answer[-2:] == b"\x90\x00"
        aid = find(decode(answer[:-2]), 0x4F)
        assert aid is not None
        assert aid.value == VISA_AID
        assert served.card.seen == [SELECT_PPSE]


def test_61xx_and_6cxx_are_followed_over_iso_dep(nfc_card: Callable[..., NfcCard]) -> None:
    served = nfc_card(StatusWordCard())
    with _open(served) as reader:
        assert reader.transmit(SELECT_PPSE) == StatusWordCard.LONG + b"\x90\x00"
        assert reader.transmit(bytes.fromhex("00B2010C00")) == bytes.fromhex("01020304059000")
        assert served.card.seen == [
            SELECT_PPSE,
            bytes.fromhex("00C0000000"),  # GET RESPONSE for 256 (SW 6100)
            bytes.fromhex("00C000002C"),  # GET RESPONSE for the last 44 (SW 612C)
            bytes.fromhex("00B2010C00"),  # READ RECORD, Le 256 -> 6C05
            bytes.fromhex("00B2010C05"),  # again with Le 05
        ]


def test_a_card_pulled_mid_session_is_card_removed(nfc_card: Callable[..., NfcCard]) -> None:
    # The card answers two C-APDUs and falls silent; nfcpy retries R(NAK), then gives up.
    served = nfc_card(visa_card(), max_apdus=2)
    with _open(served) as reader:
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
        assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
        with pytest.raises(CardRemovedError, match="stopped answering"):
            reader.transmit(apdu.get_processing_options(PDOL_DATA).encode())
        assert not reader.card_present()
        with pytest.raises(CardRemovedError):
            reader.transmit(SELECT_PPSE)


def test_repower_resets_the_card(nfc_card: Callable[..., NfcCard]) -> None:
    served = nfc_card(visa_card())
    with _open(served) as reader:
        assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
        assert reader.transmit(apdu.get_processing_options(PDOL_DATA).encode())[-2:] == (
            b"\x90\x00"
        )
        info = reader.repower()
        assert info.uid == NFC_UID
        assert served.card.power_ons == 2
        assert served.card.power_offs == 1
        # A new activation: nothing selected, READ RECORD is out of sequence.
        assert reader.transmit(apdu.read_record(2, 1).encode())[-2:] == b"\x69\x85"


def test_wait_for_card_times_out_without_a_card() -> None:
    with NfcReader(f"udp:127.0.0.1:{free_udp_port()}") as reader:
        with pytest.raises(NoCardError, match="no ISO-DEP card"):
            reader.wait_for_card(0.1)
        assert not reader.card_present()
        with pytest.raises(NoCardError):
            reader.transmit(SELECT_PPSE)
        with pytest.raises(NoCardError):
            reader.repower()


def test_a_new_wait_activates_the_card_afresh(nfc_card: Callable[..., NfcCard]) -> None:
    served = nfc_card(visa_card())
    with _open(served) as reader:
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
        assert reader.wait_for_card(10).uid == NFC_UID
        assert served.card.power_ons == 2
        assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"


@pytest.mark.parametrize(
    "spec",
    ["usb", "usb:072f:2200", "usb:001:004", "tty:USB0", "tty:USB0:pn532", "udp:localhost:54321"],
)
def test_nfc_paths_are_accepted(spec: str) -> None:
    assert check_nfc_path(spec) == spec


@pytest.mark.parametrize("spec", ["", "usb:", "usb:72f:2200", "tty:", "udp:host", "pcsc:0", "x"])
def test_bad_nfc_paths_are_refused(spec: str) -> None:
    with pytest.raises(ReaderError, match="bad nfc path"):
        check_nfc_path(spec)
