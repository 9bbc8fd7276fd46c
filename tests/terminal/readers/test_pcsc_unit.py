"""The pcsc driver's decisions at the byte boundary, through a fake of pyscard's scard.

Error mapping (PC/SC codes onto the reader error tree), the retry policy after
transient failures (one reconnect and one re-send, only for commands whose repetition
cannot change the card), reader name resolution.
"""

from __future__ import annotations

import pytest

from emvwire import apdu
from terminal.readers import (
    CardRemovedError,
    CommunicationError,
    NoCardError,
    ReaderError,
    ReaderUnavailableError,
)
from terminal.readers.pcsc import (
    LEAVE_CARD,
    UNPOWER_CARD,
    PcscReader,
    ScardCode,
    is_retry_safe,
    list_pcsc_readers,
    resolve_reader,
)
from tests.terminal.readers.fake_scard import ATR, FakeScard

READ_RECORD = apdu.read_record(1, 1).encode()
GPO = apdu.get_processing_options(bytes(4)).encode()
NAMES = ["Virtual PCD 00 00", "Virtual PCD 00 01", "ACS ACR122U PICC Interface 00 00"]


def _connected(api: FakeScard) -> PcscReader:
    reader = PcscReader("Virtual PCD 00 00", api=api, removal_settle=0.05)
    assert reader.wait_for_card(1).atr == ATR
    return reader


def _api() -> FakeScard:
    return FakeScard(("Virtual PCD 00 00",))


def test_a_safe_command_is_resent_once_after_a_reconnect() -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [ScardCode.E_NOT_TRANSACTED]  # the ACR122U's ~40-byte glitch
    assert reader.transmit(READ_RECORD) == b"\x90\x00"
    assert api.calls[-3:] == [
        ("transmit", READ_RECORD),
        ("reconnect", LEAVE_CARD),  # SCardReconnect leaving the card as it is
        ("transmit", READ_RECORD),
    ]


def test_a_state_changing_command_is_never_resent() -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [ScardCode.F_COMM_ERROR]
    with pytest.raises(CommunicationError, match="not re-sent") as failure:
        reader.transmit(GPO)
    assert not isinstance(failure.value, CardRemovedError)
    assert api.transmits().count(GPO) == 1
    assert not any(c[0] == "reconnect" for c in api.calls)
    assert reader.transmit(READ_RECORD) == b"\x90\x00"  # still connected


def test_a_failure_with_the_card_gone_is_card_removed() -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [ScardCode.E_NOT_TRANSACTED]
    api.on_failure = api.remove  # pcscd sees the reader empty
    with pytest.raises(CardRemovedError, match="left"):
        reader.transmit(GPO)
    assert api.calls[-1] == ("disconnect", LEAVE_CARD)
    with pytest.raises(NoCardError):
        reader.transmit(GPO)


def test_a_safe_command_that_fails_twice_is_a_communication_error() -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [ScardCode.E_TIMEOUT, ScardCode.E_COMM_DATA_LOST]
    with pytest.raises(CommunicationError) as failure:
        reader.transmit(READ_RECORD)
    assert "not re-sent" not in str(failure.value)
    assert "0x8010002F" in str(failure.value)  # the second failure is reported
    assert api.transmits().count(READ_RECORD) == 2


def test_a_removed_card_is_card_removed_at_once() -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [ScardCode.W_REMOVED_CARD]
    with pytest.raises(CardRemovedError, match="0x80100069"):
        reader.transmit(READ_RECORD)
    assert api.transmits().count(READ_RECORD) == 1  # no retry for a removed card
    with pytest.raises(NoCardError, match="wait_for_card"):
        reader.transmit(READ_RECORD)


@pytest.mark.parametrize(
    "code", [ScardCode.E_READER_UNAVAILABLE, ScardCode.E_NO_SERVICE, ScardCode.E_INVALID_HANDLE]
)
def test_a_reader_gone_is_reader_unavailable(code: ScardCode) -> None:
    api = _api()
    reader = _connected(api)
    api.transmit_errors = [code]
    with pytest.raises(ReaderUnavailableError, match=f"0x{code:08X}"):
        reader.transmit(READ_RECORD)


def test_a_reader_unplugged_while_waiting_is_reader_unavailable() -> None:
    api = _api()
    api.present = False
    reader = PcscReader("0", api=api)
    api.reader_gone = True
    with pytest.raises(ReaderUnavailableError, match="no longer available"):
        reader.wait_for_card(1)


def test_a_card_held_exclusively_elsewhere_is_reader_unavailable() -> None:
    api = _api()
    api.connect_rc = ScardCode.E_SHARING_VIOLATION
    with pytest.raises(ReaderUnavailableError, match="another application"):
        PcscReader("0", api=api).wait_for_card(1)


def test_no_pcscd_is_reader_unavailable() -> None:
    api = FakeScard(context_rc=ScardCode.E_NO_SERVICE)
    with pytest.raises(ReaderUnavailableError, match="pcscd"):
        PcscReader("0", api=api)
    with pytest.raises(ReaderUnavailableError, match="pcscd"):
        list_pcsc_readers(api)
    assert list_pcsc_readers(FakeScard(())) == []


def test_no_card_within_the_time_out() -> None:
    api = _api()
    api.present = False
    reader = PcscReader("0", api=api)
    with pytest.raises(NoCardError, match=r"within 0\.05 s"):
        reader.wait_for_card(0.05)
    with pytest.raises(NoCardError):
        reader.repower()
    api.insert()
    assert reader.wait_for_card(0.05).atr == ATR
    assert not reader.wait_for_removal(0.02)
    api.remove()
    api.insert()  # another card in the same reader: the connected one has left
    assert not reader.card_present()
    assert reader.wait_for_removal(0.02)


def test_repower_unpowers_the_card() -> None:
    api = _api()
    reader = _connected(api)
    assert reader.repower().atr == ATR
    assert api.calls[-1] == ("reconnect", UNPOWER_CARD)
    api.present = False
    with pytest.raises(CardRemovedError):
        reader.repower()
    reader.close()
    reader.close()  # closing twice is harmless
    assert api.calls.count(("release",)) == 1


def test_status_words_are_followed_at_the_byte_boundary() -> None:
    answers = {
        bytes.fromhex("80CA9F1700"): bytes.fromhex("6C04"),
        bytes.fromhex("80CA9F1704"): bytes.fromhex("9F1701036100"),  # ...and 61xx after it
        bytes.fromhex("00C0000000"): bytes.fromhex("AA9000"),
    }
    api = FakeScard(("Virtual PCD 00 00",), answer=lambda c: answers[c])
    reader = _connected(api)
    assert reader.transmit(bytes.fromhex("80CA9F1700")) == bytes.fromhex("9F170103AA9000")
    assert api.transmits() == list(answers)


@pytest.mark.parametrize(
    ("command", "safe"),
    [
        ("00A404000E325041592E5359532E444446303100", True),  # SELECT PPSE
        ("00B2011400", True),  # READ RECORD
        ("00B0000000", True),  # READ BINARY
        ("80CA9F3600", True),  # GET DATA (EMV)
        ("00CA9F7F00", True),  # GET DATA (ISO)
        ("FFCA000000", True),  # the reader's GET DATA UID
        ("80A8000002830000", False),  # GET PROCESSING OPTIONS: the ATC moves
        ("80AE80000400000000", False),  # GENERATE AC
        ("0088000004AABBCCDD00", False),  # INTERNAL AUTHENTICATE
        ("80EA000004DEADBEEF00", False),  # EXCHANGE RELAY RESISTANCE DATA
        ("802A8E800400000000", False),  # COMPUTE CRYPTOGRAPHIC CHECKSUM
        ("0020008008241234FFFFFFFFFF", False),  # VERIFY: a PIN try
        ("84DA9F580900112233445566778899", False),  # PUT DATA (issuer script)
        ("FF00000004D44A0100", False),  # ACR122U direct transmit to the PN532
        ("00A4", False),  # not an APDU
    ],
)
def test_retry_safety(command: str, safe: bool) -> None:
    assert is_retry_safe(bytes.fromhex(command)) is safe


def test_reader_names_resolve() -> None:
    assert resolve_reader("1", NAMES) == "Virtual PCD 00 01"
    assert resolve_reader("Virtual PCD 00 00", NAMES) == "Virtual PCD 00 00"
    assert resolve_reader("acr122", NAMES) == NAMES[2]
    with pytest.raises(ReaderError, match="several"):
        resolve_reader("virtual", NAMES)
    with pytest.raises(ReaderUnavailableError, match="number 3"):
        resolve_reader("3", NAMES)
    with pytest.raises(ReaderUnavailableError, match="matches"):
        resolve_reader("omnikey", NAMES)
    with pytest.raises(ReaderError, match="names a reader"):
        resolve_reader("", NAMES)
    with pytest.raises(ReaderUnavailableError, match="readers: none"):
        resolve_reader("0", [])


def test_an_answer_without_status_word_is_a_lost_exchange() -> None:
    # vpcd answers success with no bytes for a card pulled before pcscd noticed.
    answers = iter([b"", b"", b"\x90\x00"])
    api = FakeScard(("Virtual PCD 00 00",), answer=lambda c: next(answers))
    reader = _connected(api)
    with pytest.raises(CommunicationError, match="no status word"):
        reader.transmit(READ_RECORD)  # re-sent once: empty again
    assert api.transmits().count(READ_RECORD) == 2
    assert reader.transmit(READ_RECORD) == b"\x90\x00"
