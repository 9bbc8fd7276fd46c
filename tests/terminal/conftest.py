"""Fixtures of the terminal tests: software cards presented through vpcd and nfcpy's udp.

pcscd is shared with every other process on the machine (other test runs may hold a
card in a vpcd reader), so a card here gets an ATR of its own, is presented in a vpcd
reader that holds no card, and counts as presented only once vpcd asks it for its ATR.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from card.nfc import PiccParameters, ServeStats, serve_nfc, wait_listening
from card.vpcd import VPCD_PORT, serve_tap
from emvwire.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
_GROUP, _NAME = "tapstack.cards", "profile"  # terminal.readers.emulated's entry point
CARDS = ROOT / "fixtures" / "cards"
#: The PAN of fixtures/cards/visa-card.json (the public Visa test PAN of the transcripts).
VISA_PAN = "4761739001010010"
REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")


def unique_atr() -> bytes:
    """A valid ATR (T=0 then T=1 offered) with four random historical bytes and its TCK."""
    body = bytes.fromhex("848001") + secrets.token_bytes(4)  # T0 (4 hist. bytes), TD1, TD2
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


class TestCard:
    """Wraps a card: an ATR of its own, power counts, and an event once vpcd polls it."""

    __test__ = False  # not a test class

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._atr = unique_atr()
        self.polled = threading.Event()
        self.powered = threading.Event()
        self.power_ons = 0
        self.power_offs = 0
        self.seen: list[bytes] = []

    @property
    def atr(self) -> bytes:
        self.polled.set()
        return self._atr

    @property
    def uid(self) -> bytes:
        return bytes(getattr(self.inner, "uid", b""))

    def power_on(self) -> None:
        self.power_ons += 1
        self.inner.power_on()
        self.powered.set()

    def power_off(self) -> None:
        self.power_offs += 1
        self.inner.power_off()

    def process(self, c_apdu: bytes) -> bytes:
        self.seen.append(bytes(c_apdu))
        return bytes(self.inner.process(c_apdu))


def visa_card() -> EmvCard:
    """The Visa fixture card, counters in memory."""
    return EmvCard(load_profile(CARDS / "visa-card.json"))


# --- vpcd --------------------------------------------------------------------------------


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _present(name: str) -> bool:
    from terminal.readers.pcsc import PcscReader

    with PcscReader(name) as reader:
        return reader.card_present()


def _vpcd_readers() -> list[str]:
    from terminal.readers.pcsc import list_pcsc_readers

    # The second reader first: the card tests use the first.
    return sorted((n for n in list_pcsc_readers() if n.startswith("Virtual PCD")), reverse=True)


def _port(name: str) -> int:
    return VPCD_PORT + int(name.rsplit(" ", 1)[1])


def _wait_empty(name: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _present(name):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def free_vpcd_reader(pcscd: str) -> str:
    """The name of a vpcd reader with no card in it now."""
    for _ in range(2):
        for name in _vpcd_readers():
            if not _present(name):
                return name
        time.sleep(2)
    _missing("every vpcd reader holds another process's card")
    raise AssertionError  # unreachable


@dataclass
class VpcdCard:
    """A card presented in vpcd reader ``reader`` by a thread."""

    reader: str
    card: TestCard
    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def remove(self) -> None:
        """Take the card away and wait until pcscd sees the reader empty."""
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the vpcd card never stopped"
        _wait_empty(self.reader)


@pytest.fixture
def vpcd(pcscd: str) -> Iterator[Callable[..., VpcdCard]]:
    """Present a card through vpcd: ``vpcd(card, max_apdus=None, **serve_tap options)``."""
    running: list[VpcdCard] = []

    def present(card: Any, **options: Any) -> VpcdCard:
        test_card = card if isinstance(card, TestCard) else TestCard(card)
        for name in _vpcd_readers():
            if _present(name):
                continue
            stop = threading.Event()
            served = VpcdCard(name, test_card, stop, threading.Thread())

            def run(served: VpcdCard = served, name: str = name) -> None:
                try:
                    served.outcome["tap"] = serve_tap(
                        test_card, port=_port(name), stop=served.stop, **options
                    )
                except BaseException as exc:
                    served.outcome["error"] = exc

            served.thread = threading.Thread(target=run, name="vpcd-card", daemon=True)
            served.thread.start()
            if test_card.polled.wait(5):
                running.append(served)
                return served
            served.remove()  # vpcd never spoke to us: another card holds that reader
        _missing("no vpcd reader free for a test card (other processes hold cards)")
        raise AssertionError  # unreachable

    yield present
    for served in running:
        served.remove()


# --- the card factory entry point -------------------------------------------------------


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution on sys.path whose metadata registers card.emv's loader.

    importlib.metadata finds *.dist-info folders on sys.path: this is the mechanism an
    installed tapstack uses, without installing anything.
    """
    site = tmp_path / "site"
    info = site / "tapstack_test_cards-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tapstack-test-cards\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{_GROUP}]\n{_NAME} = card.emv:EmvCard.from_file\n")
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


# --- nfcpy udp ---------------------------------------------------------------------------


def free_udp_port() -> int:
    """A loopback UDP port nobody uses now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NfcCard:
    """A card served by :func:`card.nfc.serve_nfc` on ``path`` in a thread."""

    path: str
    card: TestCard
    stats: ServeStats
    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def remove(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the nfc card never stopped"


#: A fixed UID for the nfc test cards (ISO/IEC 14443-3 single size, random-UID prefix 08).
NFC_UID = bytes.fromhex("08C0FFEE")


@pytest.fixture
def nfc_card() -> Iterator[Callable[..., NfcCard]]:
    """Serve a card over nfcpy udp: ``nfc_card(card, **serve_nfc options)`` -> NfcCard."""
    running: list[NfcCard] = []

    def present(card: Any, **options: Any) -> NfcCard:
        test_card = card if isinstance(card, TestCard) else TestCard(card)
        options.setdefault("params", PiccParameters(uid=NFC_UID, fwi=8))
        path = f"udp:127.0.0.1:{free_udp_port()}"
        served = NfcCard(path, test_card, ServeStats(), threading.Event(), threading.Thread())

        def run() -> None:
            try:
                served.outcome["apdus"] = serve_nfc(
                    test_card, path=path, stop=served.stop, stats=served.stats, **options
                )
            except BaseException as exc:
                served.outcome["error"] = exc

        served.thread = threading.Thread(target=run, name="nfc-card", daemon=True)
        served.thread.start()
        running.append(served)
        assert wait_listening(path, timeout=10), "the nfc card never listened"
        return served

    yield present
    for served in running:
        served.remove()
