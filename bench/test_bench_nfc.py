"""card.nfc over nfcpy's udp frontend: APDU round trips reader -> card -> reader.

An unmodified nfcpy reader (``Type4ATag.send_apdu``) talks to :func:`card.nfc.serve_nfc`
on a loopback port. The card answers canned R-APDUs, so the figures are those of the
transport: nfcpy's reader stack, two datagrams per block, the ISO-DEP state machine.
"In-process" runs the card in a thread of the benchmark process (the GIL is shared, as
in the test suite); "subprocess" runs it in a Python process of its own, as a demo
terminal and card would. The sequence is SELECT PPSE, GPO with the 33-byte PDOL data of
the public Visa transcript, READ RECORD: a tap's APDUs without the cryptography.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nfc
import nfc.tag.tt4
import pytest

from card.nfc import serve_nfc, wait_listening

ROOT = Path(__file__).resolve().parents[1]

SELECT_PPSE = b"2PAY.SYS.DDF01"
GPO_DATA = bytes.fromhex("832124C0400000000000900000000000000008400000000000084020031600ABABABAB")
FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101")
GPO_RESP = bytes.fromhex(
    "7757820220005F34010157114761739001010010D221220111438444895F201656495341204352454449"
    "542F43415244484F4C4445529F100706010A03A000009F260848325309BE82CBA29F2701809F36020077"
    "9F6C0290 00".replace(" ", "")
)
RECORD = bytes.fromhex("7051") + bytes(range(0x51))


class CannedCard:
    """Fixed answers by INS: SELECT -> FCI, GPO -> template 77, READ RECORD -> 83 bytes."""

    atr = bytes.fromhex("3B8880010000000000718100F9")

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        ins = c_apdu[1]
        if ins == 0xA4:
            return FCI + b"\x90\x00"
        if ins == 0xA8:
            return GPO_RESP + b"\x90\x00"
        if ins == 0xB2:
            return RECORD + b"\x90\x00"
        return b"\x90\x00"


# The same card for a child process (python -c, repository root as working directory).
CHILD = f"""
import sys
from card.nfc import serve_nfc
FCI = bytes.fromhex({FCI.hex()!r})
GPO = bytes.fromhex({GPO_RESP.hex()!r})
RECORD = bytes.fromhex({RECORD.hex()!r})
class Card:
    atr = b""
    def power_on(self): pass
    def power_off(self): pass
    def process(self, c):
        return {{0xA4: FCI, 0xA8: GPO, 0xB2: RECORD}}.get(c[1], b"") + b"\\x90\\x00"
serve_nfc(Card(), path=sys.argv[1])
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _connect(path: str) -> tuple[Any, Any]:
    assert wait_listening(path, timeout=10)
    clf = nfc.ContactlessFrontend(path)
    deadline = time.monotonic() + 10
    tag = clf.connect(
        rdwr={"targets": ["106A"], "on-connect": lambda tag: False, "iterations": 1},
        terminate=lambda: time.monotonic() > deadline,
    )
    assert isinstance(tag, nfc.tag.tt4.Type4ATag)
    return clf, tag


def _tap_apdus(tag: Any) -> bytes:
    tag.send_apdu(0x00, 0xA4, 0x04, 0x00, SELECT_PPSE, mrl=256)
    tag.send_apdu(0x80, 0xA8, 0x00, 0x00, GPO_DATA, mrl=256)
    record: bytes = tag.send_apdu(0x00, 0xB2, 0x01, 0x0C, mrl=256)
    return record


@pytest.fixture(params=[False, True], ids=["inline", "wtx-worker"])
def in_process(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """A card thread (``wtx`` off: process inline; on: in a worker) and a connected tag."""
    path = f"udp:127.0.0.1:{_free_udp_port()}"
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_nfc,
        args=(CannedCard(),),
        kwargs={"path": path, "stop": stop, "wtx": request.param},
        daemon=True,
    )
    thread.start()
    clf, tag = _connect(path)
    yield path, tag
    clf.close()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def subprocess_tag() -> Iterator[Any]:
    """A card in a process of its own and a connected tag."""
    path = f"udp:127.0.0.1:{_free_udp_port()}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, path], cwd=ROOT)
    try:
        clf, tag = _connect(path)
        yield tag
        clf.close()
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_apdu_round_trip_in_process(benchmark: Any, in_process: tuple[str, Any]) -> None:
    _, tag = in_process
    assert benchmark(tag.send_apdu, 0x80, 0xCA, 0x9F, 0x36, None, 256) == b""


def test_apdu_round_trip_subprocess(benchmark: Any, subprocess_tag: Any) -> None:
    assert benchmark(subprocess_tag.send_apdu, 0x80, 0xCA, 0x9F, 0x36, None, 256) == b""


def test_select_gpo_read_record_in_process(benchmark: Any, in_process: tuple[str, Any]) -> None:
    _, tag = in_process
    assert benchmark(_tap_apdus, tag) == RECORD


def test_select_gpo_read_record_subprocess(benchmark: Any, subprocess_tag: Any) -> None:
    assert benchmark(_tap_apdus, subprocess_tag) == RECORD


@pytest.fixture
def listening_card() -> Iterator[tuple[str, Any]]:
    """A card thread serving taps for ever, and a reader frontend (not yet connected)."""
    path = f"udp:127.0.0.1:{_free_udp_port()}"
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_nfc, args=(CannedCard(),), kwargs={"path": path, "stop": stop}, daemon=True
    )
    thread.start()
    clf = nfc.ContactlessFrontend(path)
    yield path, clf
    clf.close()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def _activate(clf: Any) -> Any:
    deadline = time.monotonic() + 10
    return clf.connect(
        rdwr={"targets": ["106A"], "on-connect": lambda tag: False, "iterations": 1},
        terminate=lambda: time.monotonic() > deadline,
    )


def test_discovery_and_activation(benchmark: Any, listening_card: tuple[str, Any]) -> None:
    """SENS_REQ, anticollision, SEL_REQ, RATS/ATS; untimed: field off, card re-listens."""
    path, clf = listening_card

    def field_off_and_wait() -> None:
        clf.device.mute()
        assert wait_listening(path, timeout=10)

    tag = benchmark.pedantic(_activate, (clf,), setup=field_off_and_wait, rounds=100)
    assert isinstance(tag, nfc.tag.tt4.Type4ATag)


def test_tap_to_tap(benchmark: Any, listening_card: tuple[str, Any]) -> None:
    """One whole tap after another: wait until the card listens again, activate, three
    APDUs, field off (the card ends its session and re-binds its socket)."""
    path, clf = listening_card

    def tap() -> bytes:
        assert wait_listening(path, timeout=10)
        record = _tap_apdus(_activate(clf))
        clf.device.mute()
        return record

    assert benchmark.pedantic(tap, rounds=100, warmup_rounds=2) == RECORD
