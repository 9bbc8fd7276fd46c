"""card.nfc: the ISO-DEP card side, byte by byte and against nfcpy's own reader.

The first half drives :class:`IsoDepPicc` with exact frames, each commented with the
block it is (ISO/IEC 14443-4:2018 §7.2.2.1 PCB codings, frames without the EDC). The
second half runs :func:`serve_nfc` in a thread on a free loopback port and reads it with
an unmodified nfcpy reader on the ``udp`` frontend, or with raw frames through
``clf.exchange`` where nfcpy would not send them. Card-side waits use events and
nfcpy's own time-outs; nothing sleeps to let the other side catch up.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import nfc
import nfc.clf
import nfc.tag
import nfc.tag.tt4
import pytest

from card.nfc import (
    FS_TABLE,
    IsoDepPicc,
    PiccParameters,
    ServeStats,
    SessionEnd,
    Step,
    StepKind,
    fwt_seconds,
    parse_rats,
    serve_nfc,
    wait_listening,
)
from card.transport import CardApplication
from tests.support.cards import free_udp_port

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
LONG_RESPONSE = bytes(i % 251 for i in range(600))

# --------------------------------------------------------------------------------------
# Activation parameters
# --------------------------------------------------------------------------------------


def test_ats_announces_fsc_fwt_and_no_cid_nad() -> None:
    # TL=05, T0=78 (TA TB TC present, FSCI 8 = 256), TA=80, TB=90 (FWI 9, SFGI 0), TC=00
    assert PiccParameters().ats() == bytes.fromhex("0578809000")
    params = PiccParameters(fsci=5, fwi=4, sfgi=1, historical_bytes=b"\x80\x01")
    assert params.ats() == bytes.fromhex("07758041008001")
    assert params.fsc == 64


def test_frame_waiting_time_follows_fwi() -> None:
    assert fwt_seconds(0) == pytest.approx(302.1e-6, rel=1e-3)
    assert fwt_seconds(9) == pytest.approx(0.1547, rel=1e-3)
    assert fwt_seconds(14) == pytest.approx(4.949, rel=1e-3)
    with pytest.raises(ValueError, match="FWI"):
        fwt_seconds(15)


@pytest.mark.parametrize(
    ("rats", "expected"),
    [
        ("E080", (256, 0)),  # nfcpy's RATS: FSDI 8, CID 0
        ("E070", (128, 0)),  # nfcpy's RATS on a frontend without FSD 256
        ("E005", (16, 5)),
        ("E0C0", (256, 0)),  # FSDI beyond the table: read as 256
        ("E08F", None),  # CID 15 is RFU
        ("E0", None),
        ("E08000", None),
        ("5080", None),
    ],
)
def test_parse_rats(rats: str, expected: tuple[int, int] | None) -> None:
    assert parse_rats(bytes.fromhex(rats)) == expected


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="uid"):
        PiccParameters(uid=b"\x01\x02\x03")
    with pytest.raises(ValueError, match="cascade"):
        PiccParameters(uid=bytes.fromhex("88010203040506"))
    with pytest.raises(ValueError, match="fsci"):
        PiccParameters(fsci=9)
    with pytest.raises(ValueError, match="historical"):
        PiccParameters(historical_bytes=bytes(16))
    random_uid = PiccParameters().tap_uid()
    assert len(random_uid) == 4
    assert random_uid[0] == 0x08
    assert PiccParameters(uid=b"\x01\x02\x03\x04").tap_uid() == b"\x01\x02\x03\x04"


# --------------------------------------------------------------------------------------
# The block state machine, frame by frame
# --------------------------------------------------------------------------------------


def _picc(fsd: int = 256, fsc: int = 256) -> IsoDepPicc:
    return IsoDepPicc(fsd=fsd, fsc=fsc)


def test_i_blocks_alternate_block_numbers() -> None:
    picc = _picc()
    assert picc.block_number == 1  # rule C
    # I(0) carrying SELECT -> the application, then I(0) with the answer (rules D, 11)
    assert picc.receive(b"\x02" + SELECT_PPSE) == Step(StepKind.PROCESS, SELECT_PPSE)
    assert picc.respond(b"\x6f\x00\x90\x00") == b"\x02\x6f\x00\x90\x00"
    # I(1) -> I(1)
    assert picc.receive(b"\x03\x80\xca\x9f\x36\x00") == Step(
        StepKind.PROCESS, bytes.fromhex("80ca9f3600")
    )
    assert picc.respond(b"\x90\x00") == b"\x03\x90\x00"
    assert picc.block_number == 1


def test_command_chaining_is_acknowledged_and_reassembled() -> None:
    picc = _picc()
    # I(0) chaining -> R(ACK)(0); I(1) chaining -> R(ACK)(1); I(0) last -> whole APDU
    assert picc.receive(b"\x12\x00\xa4\x04") == Step(StepKind.SEND, b"\xa2")
    assert picc.receiving_chain
    assert picc.receive(b"\x13\x00\x07\xa0") == Step(StepKind.SEND, b"\xa3")
    step = picc.receive(b"\x02\x00\x00\x00\x03\x10\x10\x00")
    assert step == Step(StepKind.PROCESS, bytes.fromhex("00a4040007a000000003101000"))
    assert not picc.receiving_chain
    assert picc.respond(b"\x90\x00") == b"\x02\x90\x00"


def test_response_chaining_respects_fsd() -> None:
    picc = _picc(fsd=16)  # 16 - EDC 2 - PCB 1 = 13 bytes of INF per block
    r_apdu = bytes(range(28)) + b"\x90\x00"
    assert picc.receive(b"\x02\x00\xb2\x01\x0c\x00").kind is StepKind.PROCESS
    # I(0) chaining with 13 bytes; R(ACK)(1) -> I(1) chaining; R(ACK)(0) -> I(0) last
    assert picc.respond(r_apdu) == b"\x12" + r_apdu[:13]
    assert picc.chaining
    assert picc.receive(b"\xa3") == Step(StepKind.SEND, b"\x13" + r_apdu[13:26])
    assert picc.receive(b"\xa2") == Step(StepKind.SEND, b"\x02" + r_apdu[26:])
    assert not picc.chaining
    # Nothing left: a further R(ACK)(1) is invalid
    assert picc.receive(b"\xa3") == Step(StepKind.IGNORE)


def test_r_nak_and_r_ack_recover_the_last_block() -> None:
    picc = _picc(fsd=16)
    picc.receive(b"\x02\x00\xb2\x01\x0c\x00")
    first = picc.respond(bytes(20) + b"\x90\x00")
    # R(NAK)(0), the PICC's number: the last block again (rule 11/12)
    assert picc.receive(b"\xb2") == Step(StepKind.SEND, first)
    # R(ACK)(0), the PICC's number: the last block again as well
    assert picc.receive(b"\xa2") == Step(StepKind.SEND, first)
    # R(ACK)(1): the chain goes on
    assert picc.receive(b"\xa3").data[0] == 0x03
    # R(NAK)(0), the other number: R(ACK) with the PICC's number (presence check)
    assert picc.receive(b"\xb2") == Step(StepKind.SEND, b"\xa3")


def test_presence_checks() -> None:
    picc = _picc()
    # nfcpy's presence check right after activation: R(NAK)(0) -> R(ACK)(1)
    assert picc.receive(b"\xb2") == Step(StepKind.SEND, b"\xa3")
    # R(NAK)(1) before any I-block: nothing to repeat, acknowledge
    assert picc.receive(b"\xb3") == Step(StepKind.SEND, b"\xa3")
    # Method 1: an empty I-block is answered with an empty I-block, not by the application
    assert picc.receive(b"\x02") == Step(StepKind.SEND, b"\x02")
    assert picc.receive(b"\x03") == Step(StepKind.SEND, b"\x03")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("", "empty frame"),
        ("0A0000A404", "I-block with CID (not supported)"),
        ("060000A404", "I-block with NAD (not supported)"),
        ("0300A40400", "I-block with the PICC's current block number"),
        ("2200A40400", "I-block with the RFU bit 6 set"),
        ("A200", "R-block with an INF field"),
        ("AA", "R(ACK) with CID"),
        ("A2", "R(ACK) with the other number, nothing being chained"),
        ("F201", "S(WTX) response nobody asked for"),
        ("F0", "S(PARAMETERS), not supported"),
        ("C200", "S(DESELECT) with an INF field"),
        ("CA00", "S(DESELECT) with CID"),
        ("40", "no block type"),
        ("02" + "00" * 254, "frame larger than FSC"),
    ],
)
def test_invalid_blocks_are_ignored_and_change_nothing(frame: str, why: str) -> None:
    picc = _picc()
    assert picc.receive(bytes.fromhex(frame)) == Step(StepKind.IGNORE), why
    assert picc.block_number == 1
    assert picc.receive(b"\x02\x00\xa4\x04\x00") == Step(StepKind.PROCESS, b"\x00\xa4\x04\x00")


def test_deselect_and_a_new_command_during_chaining() -> None:
    picc = _picc(fsd=16)
    picc.receive(b"\x02\x00\xb2\x01\x0c\x00")
    picc.respond(bytes(40) + b"\x90\x00")
    assert picc.chaining
    # A new I-block(1) instead of R(ACK): the rest of the chain is dropped
    assert picc.receive(b"\x03\x00\xc0\x00\x00\x00").kind is StepKind.PROCESS
    assert not picc.chaining
    assert picc.respond(b"\x90\x00") == b"\x03\x90\x00"
    # S(DESELECT) request -> S(DESELECT) response
    assert picc.receive(b"\xc2") == Step(StepKind.DESELECT, b"\xc2")


def test_waiting_time_extension() -> None:
    picc = _picc()
    picc.receive(b"\x02\x00\xb2\x01\x0c\x00")
    # S(WTX) request, WTXM 2
    assert picc.wtx_request(2) == b"\xf2\x02"
    # While it is pending: an I-block is invalid, R(NAK) repeats the request
    assert picc.receive(b"\x03\x00") == Step(StepKind.IGNORE)
    assert picc.receive(b"\xb2") == Step(StepKind.SEND, b"\xf2\x02")
    assert picc.receive(b"\xf2\x03") == Step(StepKind.IGNORE)  # wrong WTXM
    # S(WTX) response with the same WTXM
    assert picc.receive(b"\xf2\x02") == Step(StepKind.WTX_GRANTED)
    assert picc.respond(b"\x90\x00") == b"\x02\x90\x00"
    with pytest.raises(ValueError, match="WTXM"):
        picc.wtx_request(60)


def test_frame_sizes_below_the_minimum_are_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        IsoDepPicc(fsd=8, fsc=256)
    assert min(FS_TABLE) == 16


# --------------------------------------------------------------------------------------
# Over nfcpy's udp frontend
# --------------------------------------------------------------------------------------


class EchoCard:
    """A test card: answers with INS, the power-on count and the APDU count since power-on.

    INS B2 answers 600 bytes of data (longer than any frame); INS EE raises; every other
    INS echoes the command data after those three bytes.
    """

    atr = bytes.fromhex("3B8880010000000000718100F9")

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.powered_on = 0
        self.powered_off = 0
        self.since_power_on = 0
        self.seen: list[bytes] = []
        self.off = threading.Event()

    def power_on(self) -> None:
        self.powered_on += 1
        self.since_power_on = 0

    def power_off(self) -> None:
        self.powered_off += 1
        self.off.set()

    def process(self, c_apdu: bytes) -> bytes:
        self.seen.append(c_apdu)
        self.since_power_on += 1
        if self.delay:
            time.sleep(self.delay)  # the application under test is slow, on purpose
        ins = c_apdu[1]
        if ins == 0xEE:
            raise RuntimeError("the application failed")
        head = bytes((ins, self.powered_on, self.since_power_on))
        if ins == 0xB2:
            return head + LONG_RESPONSE + b"\x90\x00"
        data = c_apdu[5 : 5 + c_apdu[4]] if len(c_apdu) > 5 else b""
        return head + data + b"\x90\x00"


_card_type_check: type[CardApplication] = EchoCard


@dataclass
class Served:
    path: str
    card: EchoCard
    stats: ServeStats
    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def join(self) -> int:
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the card never stopped"
        if "error" in self.outcome:
            raise self.outcome["error"]
        answered: int = self.outcome["answered"]
        return answered


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start serve_nfc in a thread on a free port; waits until the card answers polls."""
    running: list[Served] = []

    def start(card: EchoCard | None = None, **options: Any) -> Served:
        path = f"udp:127.0.0.1:{free_udp_port()}"
        card = card or EchoCard()
        stats = ServeStats()
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["answered"] = serve_nfc(card, path=path, stop=stop, stats=stats, **options)
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="test-card", daemon=True)
        served = Served(path, card, stats, stop, thread, outcome)
        thread.start()
        running.append(served)
        assert wait_listening(path, timeout=10), "the card never listened"
        return served

    yield start
    for served in running:
        served.stop.set()
        served.join()


@pytest.fixture
def reader() -> Iterator[Callable[[str], Any]]:
    """nfcpy ContactlessFrontends on udp paths, closed (field off) at the end."""
    opened: list[Any] = []

    def open_reader(path: str) -> Any:
        clf = nfc.ContactlessFrontend(path)
        opened.append(clf)
        return clf

    yield open_reader
    for clf in opened:
        clf.close()


def _connect(clf: Any) -> Any:
    """Poll until a Type 4A tag is activated (nfcpy sends RATS E0 80, FSD 256)."""
    deadline = time.monotonic() + 10
    tag = clf.connect(
        rdwr={"targets": ["106A"], "on-connect": lambda tag: False, "iterations": 1},
        terminate=lambda: time.monotonic() > deadline,
    )
    assert isinstance(tag, nfc.tag.tt4.Type4ATag), f"no Type 4A tag: {tag!r}"
    return tag


def test_select_is_answered_over_nfcpy(serve: Callable[..., Served], reader: Any) -> None:
    served = serve(taps=1)
    clf = reader(served.path)
    tag = _connect(clf)
    # nfcpy read FSC 256 from the ATS (minus PCB and EDC: 253 bytes a block) and FWI 9
    assert str(tag) == f"Type4ATag MIU=253 FWT={fwt_seconds(9):f}"
    answer = tag.send_apdu(0x00, 0xA4, 0x04, 0x00, SELECT_PPSE[5:-1], mrl=256)
    assert answer == b"\xa4\x01\x01" + SELECT_PPSE[5:-1]
    assert served.card.seen == [SELECT_PPSE]
    assert tag.is_present  # nfcpy's R(NAK) presence check gets an R(ACK)
    clf.device.mute()  # RFOFF: the field goes, the tap ends
    assert served.join() == 1
    assert served.stats.ends == [SessionEnd.FIELD_OFF]
    assert (served.card.powered_on, served.card.powered_off) == (1, 1)


def test_long_response_and_long_command_are_chained(
    serve: Callable[..., Served], reader: Any
) -> None:
    served = serve(taps=1)
    clf = reader(served.path)
    tag = _connect(clf)
    # 603-byte R-APDU: three I-blocks of at most 253 bytes, two with the chaining bit
    assert tag.send_apdu(0x00, 0xB2, 0x01, 0x0C, mrl=256) == b"\xb2\x01\x01" + LONG_RESPONSE
    # 261-byte C-APDU: nfcpy chains it in two I-blocks
    data = bytes(range(255))
    answer = tag.send_apdu(0x80, 0xDA, 0x00, 0x00, data, mrl=256)
    assert answer == b"\xda\x01\x02" + data
    assert served.card.seen[-1] == b"\x80\xda\x00\x00\xff" + data + b"\x00"
    # ...and the block numbers are still in step afterwards
    assert tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"\xa0", mrl=256) == b"\xa4\x01\x03\xa0"
    clf.device.mute()
    assert served.join() == 3


def test_three_taps_each_power_the_card_afresh(serve: Callable[..., Served], reader: Any) -> None:
    served = serve(taps=3)
    clf = reader(served.path)
    for tap in (1, 2, 3):
        tag = _connect(clf)
        # Power-on count = tap number; the APDU count restarts at 1 every tap
        answer = tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"\xa0", mrl=256)
        assert answer == bytes((0xA4, tap, 1, 0xA0))
        assert tag.send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == bytes((0xCA, tap, 2))
        clf.device.mute()
        if tap < 3:
            assert wait_listening(served.path, timeout=10)
    assert served.join() == 6
    assert served.stats.taps == 3
    assert served.card.powered_on == served.card.powered_off == served.stats.activations


def test_a_card_pulled_away_makes_the_reader_time_out(
    serve: Callable[..., Served], reader: Any
) -> None:
    # FWI 8 (77 ms): nfcpy gives up after 5 R(NAK) retries, about half a second
    served = serve(taps=1, max_apdus=2, params=PiccParameters(fwi=8))
    clf = reader(served.path)
    tag = _connect(clf)
    assert tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"\xa0", mrl=256)[:3] == b"\xa4\x01\x01"
    assert tag.send_apdu(0x00, 0xB2, 0x01, 0x0C, mrl=256)[3:] == LONG_RESPONSE  # whole
    assert served.join() == 2  # the card is gone, without waiting for the reader
    with pytest.raises(nfc.tag.tt4.Type4TagCommandError) as failure:
        tag.send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256)
    assert failure.value.errno == nfc.tag.TIMEOUT_ERROR
    assert not tag.is_present
    assert served.stats.ends == [SessionEnd.PULLED_AWAY]
    assert served.card.powered_off == 1


def test_application_errors_are_answered_6f00(serve: Callable[..., Served], reader: Any) -> None:
    served = serve(taps=1)
    clf = reader(served.path)
    tag = _connect(clf)
    assert tag.send_apdu(0x00, 0xEE, 0x00, 0x00, mrl=256, check_status=False) == b"\x6f\x00"
    assert tag.send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == b"\xca\x01\x02"
    clf.device.mute()
    assert served.join() == 2


def test_slow_application_gets_waiting_time_extensions(
    serve: Callable[..., Served], reader: Any
) -> None:
    # FWT 77 ms; the application takes 200 ms; S(WTX) goes out after FWT/2, then every
    # FWT while the reader waits 2 x FWT for each
    served = serve(EchoCard(delay=0.2), taps=1, wtx=True, params=PiccParameters(fwi=8))
    clf = reader(served.path)
    tag = _connect(clf)
    assert tag.send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == b"\xca\x01\x01"
    assert served.stats.wtx_requests >= 2
    assert tag.send_apdu(0x00, 0xCA, 0x9F, 0x13, mrl=256) == b"\xca\x01\x02"
    clf.device.mute()
    assert served.join() == 2


def test_a_reader_that_polls_anew_ends_the_old_session(
    serve: Callable[..., Served], reader: Any
) -> None:
    served = serve(taps=2)
    first = reader(served.path)
    assert _connect(first).send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == b"\xca\x01\x01"
    # A second reader (the first one crashed, say: no RFOFF): its SENS_REQ ends the session
    second = reader(served.path)
    assert wait_listening(served.path, timeout=10)
    assert _connect(second).send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == b"\xca\x02\x01"
    second.device.mute()
    assert served.join() == 2
    assert served.stats.ends == [SessionEnd.FIELD_OFF] * 2


def test_idle_time_out_counts_as_field_loss(serve: Callable[..., Served], reader: Any) -> None:
    served = serve(idle_timeout=0.2)
    tag = _connect(reader(served.path))
    assert tag.is_present  # one block: this is a tap
    assert served.card.off.wait(10)
    assert served.stats.ends == [SessionEnd.IDLE]
    served.stop.set()
    assert served.join() == 0


def test_stop_ends_a_session_and_a_listen(serve: Callable[..., Served], reader: Any) -> None:
    served = serve()
    tag = _connect(reader(served.path))
    assert tag.is_present
    served.stop.set()
    assert served.join() == 0
    assert served.stats.ends == [SessionEnd.STOPPED]
    assert served.card.powered_off == 1

    idle = serve()  # stopped while listening, before any reader came
    idle.stop.set()
    assert idle.join() == 0
    assert idle.stats.activations == 0


# --------------------------------------------------------------------------------------
# Raw frames from the reader side (nfcpy's clf.exchange after sense + RATS by hand)
# --------------------------------------------------------------------------------------


def _raw_session(clf: Any, rats: bytes) -> bytes:
    """Anticollision by nfcpy, then RATS by hand; returns the ATS."""
    target = None
    deadline = time.monotonic() + 10
    while target is None and time.monotonic() < deadline:
        target = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
    assert target is not None, "no Type A target"
    assert target.sel_res == b"\x20"  # SAK: ISO/IEC 14443-4 compliant
    assert target.sens_res == b"\x04\x00"  # ATQA: single-size UID
    assert target.sdd_res[0] == 0x08  # random UID
    return bytes(clf.exchange(bytearray(rats), 1.0))


def _rest_of_chain(clf: Any, frame: bytes, number: int) -> tuple[bytes, int]:
    """Acknowledge a PICC chain that began with ``frame`` (block ``number``) to its end.

    Checks every block: the expected number, at most FSD 16 - EDC 2 = 14 bytes. Returns
    the INF fields joined and the reader's next block number.
    """
    got = bytearray()
    while True:
        assert frame[0] & 0xEF == 0x02 | number, f"unexpected block {frame.hex()}"
        assert len(frame) <= 14
        got += frame[1:]
        number ^= 1
        if not frame[0] & 0x10:
            return bytes(got), number
        frame = bytes(clf.exchange(bytearray((0xA2 | number,)), 1.0))  # R(ACK)


def test_small_fsd_chains_in_exact_frames(serve: Callable[..., Served], reader: Any) -> None:
    served = serve(taps=1)
    clf = reader(served.path)
    assert _raw_session(clf, b"\xe0\x00") == PiccParameters().ats()  # RATS: FSD 16, CID 0
    r_apdu = b"\xb2\x01\x01" + LONG_RESPONSE + b"\x90\x00"
    # I(0) READ RECORD -> I(0) with chaining and 13 bytes
    frame = bytes(clf.exchange(bytearray(b"\x02\x00\xb2\x01\x0c\x00"), 1.0))
    assert frame == b"\x12" + r_apdu[:13]
    # R(NAK)(0): the same block again
    assert bytes(clf.exchange(bytearray(b"\xb2"), 1.0)) == frame
    got, number = _rest_of_chain(clf, frame, 0)
    assert got == r_apdu
    # A chained command in 5-byte pieces: R(ACK) for each, then the answer (chained too)
    command = b"\x80\xda\x00\x00\x0a" + bytes(range(10)) + b"\x00"
    pieces = [command[i : i + 5] for i in range(0, len(command), 5)]
    for i, piece in enumerate(pieces[:-1]):
        ack = bytes(clf.exchange(bytearray((0x12 | number,)) + piece, 1.0))
        assert ack == bytes((0xA2 | number,)), f"piece {i}"
        number ^= 1
    first = bytes(clf.exchange(bytearray((0x02 | number,)) + pieces[-1], 1.0))
    answer, number = _rest_of_chain(clf, first, number)
    assert answer == b"\xda\x01\x02" + bytes(range(10)) + b"\x90\x00"
    assert served.card.seen[-1] == command
    # S(DESELECT) -> S(DESELECT); the card powers off and the tap is over
    assert bytes(clf.exchange(bytearray(b"\xc2"), 1.0)) == b"\xc2"
    assert served.join() == 2
    assert served.stats.ends == [SessionEnd.DESELECTED]
    assert served.card.powered_off == 1


def test_malformed_blocks_get_no_answer_and_the_card_goes_on(
    serve: Callable[..., Served], reader: Any
) -> None:
    served = serve(taps=1)
    port = int(served.path.rsplit(":", 1)[1])
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # A datagram the udp driver cannot even parse, while the card listens
    stranger.sendto(b"106A zz", ("127.0.0.1", port))
    assert wait_listening(served.path, timeout=10)
    clf = reader(served.path)
    _raw_session(clf, b"\xe0\x80")
    garbage = [
        b"",  # nothing at all
        b"\x0a\x00\xa4\x04\x00",  # I-block with CID
        b"\x06\x00\xa4\x04\x00",  # I-block with NAD
        b"\x03\x00\xa4\x04\x00",  # I-block(1): the PICC's own number
        b"\xa2\x00",  # R-block with data
        b"\xf2\x01",  # S(WTX) response nobody asked for
        b"\xe0\x80",  # a second RATS
        b"\x02" + bytes(260),  # larger than FSC 256
        b"\xff",  # no block at all
    ]
    for frame in garbage:
        clf.exchange(bytearray(frame), 0)  # send only
    # ...and one in the session, from another socket
    with stranger:
        stranger.sendto(b"106A zz", ("127.0.0.1", port))
    # Had the card answered any of them, that answer would come first: frames stay in order
    answer = bytes(clf.exchange(bytearray(b"\x02\x00\xca\x9f\x36\x00"), 1.0))
    assert answer == b"\x02\xca\x01\x01\x90\x00"
    assert served.stats.ignored_blocks == len(garbage) + 1
    assert bytes(clf.exchange(bytearray(b"\xc2"), 1.0)) == b"\xc2"
    assert served.join() == 1


def test_a_fixed_double_size_uid_goes_through_two_cascade_levels(
    serve: Callable[..., Served], reader: Any
) -> None:
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    served = serve(taps=1, params=PiccParameters(uid=uid))
    clf = reader(served.path)
    tag = _connect(clf)
    assert tag.identifier == uid
    assert tag.target.sens_res == b"\x44\x00"  # ATQA: double-size UID
    assert tag.send_apdu(0x00, 0xCA, 0x9F, 0x36, mrl=256) == b"\xca\x01\x01"
    clf.device.mute()
    assert served.join() == 1


def test_serve_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="taps"):
        serve_nfc(EchoCard(), taps=0)
    with pytest.raises(ValueError, match="max_apdus"):
        serve_nfc(EchoCard(), max_apdus=0)
    with pytest.raises(ValueError, match="udp"):
        wait_listening("usb:054c:06c3")


def test_card_removed_by_the_application_ends_the_tap_silently() -> None:
    """A card whose application raises CardRemoved (the pull fault) stops answering:
    the reader sees a time-out, not an error status word."""
    from card.transport import CardRemoved

    class PulledCard:
        atr = b""

        def __init__(self) -> None:
            self.answered = 0

        def power_on(self) -> None:
            pass

        def power_off(self) -> None:
            pass

        def process(self, c_apdu: bytes) -> bytes:
            if self.answered >= 1:
                raise CardRemoved("left")
            self.answered += 1
            return b"\x90\x00"

    port = free_udp_port()
    stop = threading.Event()
    card = PulledCard()
    server = threading.Thread(
        target=serve_nfc, args=(card,), kwargs={"path": f"udp:127.0.0.1:{port}", "taps": 1,
                                                "stop": stop}, daemon=True)  # fmt: skip
    server.start()
    assert wait_listening(f"udp:127.0.0.1:{port}")
    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
    try:
        tag = clf.connect(rdwr={"targets": ["106A"], "on-connect": lambda t: False})
        assert tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00\x00\x00\x03") == b""
        with pytest.raises(nfc.tag.tt4.Type4TagCommandError) as err:
            tag.send_apdu(0x00, 0xB2, 0x01, 0x0C)
        assert err.value.errno == nfc.tag.TIMEOUT_ERROR
    finally:
        clf.close()
        stop.set()
        server.join(timeout=5)
