"""The nfc driver through nfcpy's own device drivers for the PN533 and the ACR122U.

No hardware: nfcpy's ``nfc.clf.pn533.init`` and ``nfc.clf.acr122.init`` run over a
byte-level double of the USB transport (tests/support/pn53x_double.py), as nfcpy's own
tests do, so everything between the terminal and the USB frames is nfcpy's real code:
polling, ISO-DEP activation, blocks, retransmissions, waiting time extensions. The
tests assert the frames on the wire where they matter, the outcome of whole taps, and
that a card which never answers, or asks for more time for ever, ends by the command's
deadline (nfcpy alone would wait up to its frame waiting time and retries, or for
ever). The deadlines are short so that the tests finish fast; none asserts a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emvwire.apdu import PPSE, select
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction
from terminal.readers import CardTimeoutError
from terminal.readers.nfc import NfcReader
from tests.support.cards import NFC_UID
from tests.support.hostile_cards import short_timing
from tests.support.kernel import WHEN, card
from tests.support.pn53x_double import (
    ACK,
    PN532_FIRMWARE,
    PN533_FIRMWARE,
    Acr122Usb,
    Pn53xChip,
    Pn533Usb,
    acr122u_escape,
    pn533_frame,
)

SELECT_PPSE = select(PPSE).encode()


class Frontend:
    """A reader on nfcpy's driver for ``kind`` (``pn533`` or ``acr122u``) over the
    transport double, with ``chip`` and ``transport`` for the assertions."""

    def __init__(self, kind: str, the_card: Any, **chip: Any) -> None:
        import nfc.clf.acr122
        import nfc.clf.pn533

        self.kind = kind
        if kind == "pn533":
            self.chip = Pn53xChip(PN533_FIRMWARE, the_card, **chip)
            self.transport: Pn533Usb | Acr122Usb = Pn533Usb(self.chip)
            device = nfc.clf.pn533.init(self.transport)
        else:
            self.chip = Pn53xChip(PN532_FIRMWARE, the_card, **chip)
            self.transport = Acr122Usb(self.chip)
            device = nfc.clf.acr122.init(self.transport)
        self.reader = NfcReader("usb", device=device, targets=("106A",), command_timeout=0.3)

    def host_frame(self, code: int, data: bytes) -> bytes:
        """The USB frame carrying PN53x command ``code`` with ``data``, as the driver
        must write it: a PN533 frame, or a PN532 command inside the ACR122U's direct
        transmit pseudo-APDU inside a CCID escape."""
        if self.kind == "pn533":
            return pn533_frame(0xD4, code, data)
        command = bytes((0xD4, code)) + data
        return acr122u_escape(bytes((0xFF, 0x00, 0x00, 0x00, len(command))) + command)


@pytest.fixture(params=["pn533", "acr122u"])
def frontend(request: pytest.FixtureRequest) -> Callable[..., Frontend]:
    made: list[Frontend] = []

    def make(the_card: Any, **chip: Any) -> Frontend:
        made.append(Frontend(request.param, the_card, **chip))
        return made[-1]

    yield make  # type: ignore[misc]
    for f in made:
        f.reader.close()


def test_the_drivers_set_up_their_device_as_nfcpy_does(frontend: Callable[..., Frontend]) -> None:
    f = frontend(card("visa-card"))
    written = f.transport.written
    if f.kind == "pn533":
        assert written[0] == ACK  # a soft reset first (nfc/clf/pn533.py init)
        # Diagnose, communication line test (NumTst 00) with the longest data a PN533
        # frame takes (265 - 3 bytes): an extended frame, echoed by the chip.
        line_test = b"\x00" + bytes(range(256)) + bytes(range(6))
        assert written[1] == pn533_frame(0xD4, 0x00, line_test)
        assert written[1][:8] == bytes.fromhex("0000FFFFFF0109F6")  # extended, LEN 265
        assert pn533_frame(0xD4, 0x02, b"") in written  # GetFirmwareVersion
    else:
        assert written[0] == acr122u_escape(bytes.fromhex("FF00480000"))  # firmware version
        assert written[1] == bytes.fromhex("62000000000000000000")  # ICC power on
        assert written[2] == acr122u_escape(bytes.fromhex("FF00517F00"))  # no auto polling
        assert f.transport.pseudo_apdus[:3] == [  # type: ignore[union-attr]
            bytes.fromhex("FF00480000"),
            bytes.fromhex("FF00517F00"),
            bytes.fromhex("FF00400E0400000000"),  # LED: green only, buzzer off
        ]
    # Both leave the field off after their set-up (RFConfiguration item 01: 02).
    assert (0x32, b"\x01\x02") in f.chip.commands
    assert not f.chip.field_on


def test_a_whole_tap_through_nfcpys_driver(frontend: Callable[..., Frontend]) -> None:
    f = frontend(card("visa-card"))
    info = f.reader.wait_for_card(5)
    assert (info.uid, info.protocol) == (NFC_UID, "ISO-DEP 106A")
    assert f.chip.rf[0][0] in (b"\xe0\x80", b"\xe0\x70")  # RATS, FSD 256 (or 128)
    result = EntryPoint(short_timing(), clock=lambda: WHEN).run(
        f.reader, Transaction(1234), wait=False
    )
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    # The first C-APDU went in an I-block (PCB 02) of InCommunicateThru (42), byte for
    # byte, in the device's own framing.
    assert f.chip.rf[1][0] == b"\x02" + SELECT_PPSE
    assert f.host_frame(0x42, b"\x02" + SELECT_PPSE) in f.transport.written
    sent = [frame[1:] for frame, _ in f.chip.rf[1:] if frame[0] & 0xE2 == 0x02]
    assert [apdu[1] for apdu in sent] == [0xA4, 0xA4, 0xA8]


@pytest.mark.parametrize("fwi", [8, 14], ids=["fwt-77ms", "fwt-4.9s"])
def test_a_silent_card_ends_by_the_deadline_with_the_field_reset(
    frontend: Callable[..., Frontend], fwi: int
) -> None:
    """FWI 14 lets a card take 4.9 s per frame: nfcpy alone would wait that long (with
    retries for shorter ones); the command's deadline (0.3 s here) ends it first."""
    f = frontend(card("visa-card"), behaviour="silent", fwi=fwi)
    f.reader.wait_for_card(5)
    offs = f.chip.power_offs
    asked = len(f.chip.timeouts)
    with pytest.raises(CardTimeoutError, match="did not answer INS A4 in time"):
        f.reader.transmit(SELECT_PPSE)
    # The chip was never asked to wait past the deadline (nfcpy rounds a response
    # time-out up to the next 100 us x 2**n: under twice the 0.3 s asked).
    assert max(f.chip.timeouts[asked:]) < 0.6
    assert f.chip.power_offs == offs + 1  # the field was reset
    assert not f.chip.field_on
    assert f.chip.rf[-1][1] is None  # the card never answered


def test_a_card_asking_for_more_time_for_ever_ends_by_the_deadline(
    frontend: Callable[..., Frontend],
) -> None:
    """nfcpy grants S(WTX) requests as long as a card sends them (nfc/tag/tt4.py):
    without the deadline this card would hold the reader for good."""
    f = frontend(card("visa-card"), behaviour="wtx")
    f.reader.wait_for_card(5)
    with pytest.raises(CardTimeoutError):
        f.reader.transmit(SELECT_PPSE)
    wtx = [frame for frame, _ in f.chip.rf if frame[0] == 0xF2]
    assert len(wtx) >= 2  # it asked, was granted, asked again...
    assert not f.chip.field_on


def test_after_a_silent_card_the_reader_serves_the_next_tap(
    frontend: Callable[..., Frontend],
) -> None:
    f = frontend(card("visa-card"), behaviour="silent")
    entry = EntryPoint(short_timing(), clock=lambda: WHEN)
    result = entry.run(f.reader, Transaction(1234), timeout=5)
    assert result.outcome is Outcome.TRY_AGAIN, result.reasons
    assert "did not answer" in "; ".join(result.reasons)
    f.chip.behaviour = "answer"  # another card, one that answers
    result = entry.run(f.reader, Transaction(1234), timeout=5)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons


def test_field_off_then_the_removal_poll(frontend: Callable[..., Frontend]) -> None:
    f = frontend(card("visa-card"))
    f.reader.wait_for_card(5)
    assert f.reader.card_present()  # ISO-DEP presence check
    f.reader.field_off()
    assert not f.chip.field_on
    polls = sum(1 for code, _ in f.chip.commands if code == 0x4A)
    assert f.reader.card_present()  # one poll with the field on: still there
    assert sum(1 for code, _ in f.chip.commands if code == 0x4A) == polls + 1
    assert not f.chip.field_on  # and the field off again
    f.chip.present = False  # the card leaves
    assert f.reader.wait_for_removal(5)
    assert not f.reader.card_present()
