"""The APDU trace: command names, status word meanings, decoded and masked responses."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from card.emv import EmvCard
from emvwire import apdu
from emvwire.tlv import decode, find
from terminal.readers import CardRemovedError, ReaderError
from terminal.readers.emulated import EmulatedReader
from terminal.readers.trace import (
    ListSink,
    TraceEntry,
    TracingReader,
    command_name,
    logging_sink,
    render_command,
    text_sink,
    traced,
)
from tests.support.cards import (
    PDOL_DATA,
    SELECT_PPSE,
    VISA_AID,
    VISA_PAN,
    pulled_after,
    visa_card,
)

#: The fixture card's track 2 image starts with the PAN and the separator.
TRACK2_START = VISA_PAN + "D"


def _tap(reader: TracingReader) -> None:
    """SELECT PPSE, SELECT the AID, GPO, and every record of the AFL."""
    reader.wait_for_card(0)
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    assert reader.transmit(apdu.select(VISA_AID).encode())[-2:] == b"\x90\x00"
    gpo = reader.transmit(apdu.get_processing_options(PDOL_DATA).encode())
    afl = find(decode(gpo[:-2]), 0x94)
    assert afl is not None
    for entry in apdu.parse_afl(afl.value):
        for record in entry.records:
            reader.transmit(apdu.read_record(entry.sfi, record).encode())


def test_a_tap_is_traced_with_names_meanings_and_decoded_data() -> None:
    sink = ListSink()
    _tap(TracingReader(EmulatedReader(visa_card(), path="emulated:visa"), sink))
    kinds = [e.kind for e in sink.entries]
    assert kinds[0] == "card"
    assert kinds[1:] == ["apdu"] * (len(kinds) - 1)
    commands = [e.command for e in sink.entries[1:]]
    assert commands[:3] == ["SELECT PPSE", "SELECT A0000000031010", "GET PROCESSING OPTIONS"]
    assert "READ RECORD SFI 2 record 1" in commands
    text = sink.text()
    assert "Normal processing: no further qualification" in text
    assert "Application Primary Account Number (PAN)" in text  # decoded by emvwire.dump
    assert "Track 2 Equivalent Data" in text
    assert "Application Label" in text
    assert all(e.elapsed_ms >= 0 for e in sink.entries)
    assert sink.entries[0].detail.startswith("UID ")


def test_no_full_pan_or_track_2_reaches_the_trace() -> None:
    sink = ListSink()
    _tap(TracingReader(EmulatedReader(visa_card()), sink))
    text = sink.text()
    assert VISA_PAN not in text
    assert TRACK2_START not in text
    assert "476173******0010" in text  # the PAN as emvwire.mask shows it
    for entry in sink.entries:  # nor in any field the sink gets
        assert VISA_PAN not in repr(entry)


def test_the_trace_masks_what_is_secret_and_nothing_else() -> None:
    """AIDs, the AFL, certificates and signatures, command headers and the terminal's
    PDOL data (an amount is 12 digits) are shown whole; PAN and track 2 masked."""
    sink = ListSink()
    _tap(TracingReader(EmulatedReader(visa_card()), sink))
    text = sink.text()
    assert "4F Application Identifier (AID) - card [7]: A0000000031010" in text
    assert "84 Dedicated File (DF) Name [7]: A0000000031010" in text
    assert "A00*" not in text
    gpo = next(e for e in sink.entries if e.command == "GET PROCESSING OPTIONS")
    assert gpo.c_apdu == "80A8000023" + "8321" + PDOL_DATA.hex().upper() + "00"
    afl = next(line for line in gpo.response if line.lstrip().startswith("94 "))
    assert "*" not in afl
    signed = [line for e in sink.entries for line in e.response if "9F4B" in line]
    assert signed
    assert all("*" not in line for line in signed)
    assert "476173******0010D" in text  # track 2, masked
    assert VISA_PAN not in text


class CdolCard:
    """A card whose CDOL1 asks for the PAN: the terminal's GENERATE AC data hold it."""

    atr = b"\x3b\x00"

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        if c_apdu[1] == 0xB2:  # a record: CDOL1 9F02 06 5A 08
            return bytes.fromhex("70078C059F02065A08") + b"\x90\x00"
        return bytes.fromhex("770A9F2701809F360200019000")


def test_dol_data_are_cut_by_the_cards_dol_and_a_pan_among_them_masked() -> None:
    sink = ListSink()
    reader = TracingReader(EmulatedReader(CdolCard()), sink)
    reader.wait_for_card()
    reader.transmit(apdu.read_record(1, 1).encode())
    amount = bytes.fromhex("000000001234")
    reader.transmit(bytes.fromhex("80AE80000E") + amount + bytes.fromhex(VISA_PAN) + b"\x00")
    generate = sink.entries[-1]
    assert generate.command == "GENERATE AC ARQC"
    assert generate.c_apdu == "80AE80000E" + "000000001234" + "*" * 16 + "00"
    assert VISA_PAN not in sink.text()


class RawCard:
    """Answers a non-TLV record: the PAN as packed BCD, and a PIN-taking VERIFY."""

    atr = b"\x3b\x00"

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        if c_apdu[1] == 0xB2:
            return bytes.fromhex(VISA_PAN) + b"\x90\x00"
        return b"\x63\xc2"


def test_undecodable_data_is_scrubbed_and_a_pin_block_hidden() -> None:
    sink = ListSink()
    reader = TracingReader(EmulatedReader(RawCard()), sink)
    reader.wait_for_card()
    reader.transmit(apdu.read_record(1, 1).encode())
    verify = bytes.fromhex("0020008008241234FFFFFFFFFF")  # VERIFY, plaintext PIN block
    reader.transmit(verify)
    text = sink.text()
    assert VISA_PAN not in text
    assert "not BER-TLV" in text
    assert "VERIFY -> 63C2" in text
    assert "tries left" in text  # 63Cx read by emvwire.apdu.describe_sw
    assert "<8 bytes hidden>" in text
    assert "241234" not in text


def test_errors_and_removals_are_traced(tmp_path: Path) -> None:
    sink = ListSink()
    reader = TracingReader(EmulatedReader(pulled_after(1, tmp_path)), sink)
    reader.wait_for_card()
    reader.transmit(SELECT_PPSE)
    with pytest.raises(CardRemovedError):
        reader.transmit(apdu.select(VISA_AID).encode())
    assert sink.entries[-1].kind == "removed"
    assert "SELECT A0000000031010" in sink.entries[-1].detail
    with pytest.raises(ReaderError):
        reader.repower()
    assert sink.entries[-1].kind == "removed"
    reader.wait_for_card()
    assert reader.repower().atr
    assert sink.entries[-1].kind == "repower"
    assert reader.wait_for_removal(0) is False


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("00A404000E325041592E5359532E444446303100", "SELECT PPSE"),
        ("00A404020E315041592E5359532E444446303100", "SELECT next PSE"),
        ("80AE90002100", "GENERATE AC ARQC CDA"),
        ("80AE00000000", "GENERATE AC AAC"),
        ("80CA9F3600", "GET DATA 9F36"),
        ("00C0000010", "GET RESPONSE"),
        ("80EA000004DEADBEEF00", "EXCHANGE RELAY RESISTANCE DATA"),
        ("84DA9F580100", "PUT DATA"),
        ("FFCA000000", "reader GET DATA (UID)"),
        ("FF00400D0400000000", "reader LED/BUZZER"),
        ("00FE000000", "INS FE"),
        ("00", "(not an APDU)"),
    ],
)
def test_command_names(command: str, name: str) -> None:
    assert command_name(bytes.fromhex(command)) == name


def test_command_data_shown_only_when_it_is_terminal_data() -> None:
    gpo = apdu.get_processing_options(PDOL_DATA).encode()
    assert render_command(gpo).startswith("80A8000023")
    assert render_command(bytes.fromhex("84DA9F58010000")) == "84DA9F5801 <1 bytes hidden> 00"
    assert render_command(bytes.fromhex("84DA9F580111")) == "84DA9F5801 <1 bytes hidden>"
    assert render_command(SELECT_PPSE) == SELECT_PPSE.hex().upper()
    # a body whose length is not its Lc: no structure to trust, scrubbed
    odd = bytes.fromhex("80AE800014000000001234" + VISA_PAN + "00")
    assert VISA_PAN not in render_command(odd)


def test_sinks(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    reader = traced(EmulatedReader(visa_card()), text_sink(stream))
    reader.wait_for_card()
    reader.transmit(SELECT_PPSE)
    assert "SELECT PPSE -> 9000" in stream.getvalue()
    plain = EmulatedReader(visa_card())
    assert traced(plain, None) is plain  # tracing is off unless asked for
    logger = logging.getLogger("tapstack.test.trace")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logged = traced(EmulatedReader(visa_card()), logging_sink(logger))
        logged.wait_for_card()
    assert "card: UID" in caplog.text


def test_a_failing_sink_never_changes_the_outcome() -> None:
    def broken(entry: TraceEntry) -> None:
        raise OSError("disk full")

    reader = TracingReader(EmulatedReader(visa_card()), broken)
    reader.wait_for_card()
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    assert reader.feedback is reader.reader.feedback
    assert reader.card_present()
    reader.close()
    assert not reader.card_present()


def test_emvcard_removed_fault_is_traced_once(tmp_path: Path) -> None:
    card: EmvCard = pulled_after(0, tmp_path)
    sink = ListSink()
    reader = TracingReader(EmulatedReader(card), sink)
    reader.wait_for_card()
    with pytest.raises(CardRemovedError):
        reader.transmit(SELECT_PPSE)
    assert [e.kind for e in sink.entries] == ["card", "removed"]
