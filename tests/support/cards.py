"""Software cards as the terminal tests present them, and the commands they send.

- The fixture cards (``fixtures/cards``): :data:`CARDS`, :func:`visa_card`,
  :func:`pulled_after` (the Visa card leaving the field after n commands), and what the
  tests send to them (:data:`SELECT_PPSE`, :data:`VISA_AID`, :data:`PDOL_DATA`).
- :class:`TestCard`: any card with an ATR of its own, its power-ups counted and its
  commands kept; :class:`StatusWordCard`: a card answering with the T=0 status words
  61xx and 6Cxx (ISO/IEC 7816-4 §5.1.3).
- A card served in a thread of the test, as the fixtures ``vpcd`` and ``nfc_card`` of
  tests/terminal/conftest.py present it: :class:`VpcdCard` (through pcscd's vpcd),
  :class:`NfcCard` (over nfcpy's udp frontend, :data:`NFC_UID`, :func:`free_udp_port`).
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from card.emv import EmvCard
from card.nfc import ServeStats
from emvwire import apdu
from emvwire.profile import load_profile
from tests.support.e2e import wait_until_empty

__all__ = [
    "CARDS",
    "NFC_UID",
    "PDOL_DATA",
    "SELECT_PPSE",
    "VISA_AID",
    "VISA_PAN",
    "NfcCard",
    "StatusWordCard",
    "TestCard",
    "VpcdCard",
    "free_udp_port",
    "pulled_after",
    "unique_atr",
    "visa_card",
]

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
#: The PAN of fixtures/cards/visa-card.json (the public Visa test PAN of the transcripts).
VISA_PAN = "4761739001010010"
VISA_AID = bytes.fromhex("A0000000031010")
SELECT_PPSE = apdu.select("2PAY.SYS.DDF01").encode()
# PDOL data for the Visa fixture's PDOL 9F66 04 9F02 06 9F03 06 9F1A 02 95 05 5F2A 02
# 9A 03 9C 01 9F37 04: TTQ, 15.00, 0.00, country 0250, TVR 0, EUR, 2025-01-01, purchase, UN.
PDOL_DATA = bytes.fromhex("B6204000000000001500000000000000025000000000000978")
PDOL_DATA += bytes.fromhex("2501010001020304")
#: A fixed UID for the nfc test cards (ISO/IEC 14443-3 single size, random-UID prefix 08).
NFC_UID = bytes.fromhex("08C0FFEE")


def visa_card() -> EmvCard:
    """The Visa fixture card, counters in memory."""
    return EmvCard(load_profile(CARDS / "visa-card.json"))


def pulled_after(n: int, tmp_path: Path) -> EmvCard:
    """The Visa card with the profile fault ``pull_after`` = n (it raises CardRemoved)."""
    data = json.loads((CARDS / "visa-card.json").read_text())
    data["faults"] = {"pull_after": n}
    path = tmp_path / "pulled.json"
    path.write_text(json.dumps(data))
    return EmvCard(load_profile(path))


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


class StatusWordCard:
    """Answers like a T=0 card: SELECT with 61xx (300 bytes in two GET RESPONSEs),
    READ RECORD with 6C05 until Le is 5."""

    atr = b""
    LONG = bytes(i % 251 for i in range(300))

    def __init__(self) -> None:
        self.left = b""

    def power_on(self) -> None:
        self.left = b""

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        ins = c_apdu[1]
        if ins == 0xA4:
            self.left = self.LONG
            return b"\x61\x00"  # 256 bytes (and more) wait
        if ins == 0xC0:
            wanted = c_apdu[4] or 256
            chunk, self.left = self.left[:wanted], self.left[wanted:]
            return chunk + (bytes((0x61, len(self.left))) if self.left else b"\x90\x00")
        if ins == 0xB2:
            return b"\x6c\x05" if c_apdu[4:] != b"\x05" else b"\x01\x02\x03\x04\x05\x90\x00"
        return b"\x6d\x00"


@dataclass
class VpcdCard:
    """A card presented in vpcd reader ``reader`` by a thread."""

    reader: str
    card: TestCard
    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)
    removed: bool = False

    def remove(self) -> None:
        """Take the card away and wait until pcscd sees the reader empty; once (a card
        the test took away is not waited for again: another card may be in the reader
        by then)."""
        if self.removed:
            return
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the vpcd card never stopped"
        wait_until_empty(int(self.reader.rsplit(" ", 1)[1]))
        self.removed = True


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
