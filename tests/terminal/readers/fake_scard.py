"""A recording fake of the part of pyscard's ``smartcard.scard`` the pcsc driver uses.

It keeps the PC/SC call shapes of pyscard 2.3 (``(hresult, ...)`` tuples, APDUs as
lists of ints) and records every call, so tests assert the exact bytes the driver
sends. An optional ACR122U firmware answers class ``FF`` pseudo-APDUs as the ACS API
manual v2.04 says; anything else goes to the card callable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from terminal.readers.pcsc import (
    PROTOCOL_T1,
    SHARE_DIRECT,
    STATE_CHANGED,
    STATE_EMPTY,
    STATE_PRESENT,
    STATE_UNKNOWN,
    UNPOWER_CARD,
    ScardCode,
)

ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")  # PC/SC Part 3 ATR of a PICC
UID = bytes.fromhex("04A1B2C3D4E5F6")


def acr122u_firmware(card: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """``card`` behind an ACR122U: class FF answered by the reader (API v2.04 §4-§6)."""

    def answer(apdu: bytes) -> bytes:
        if apdu[0] != 0xFF:
            return card(apdu)
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins == 0xCA and p1 == 0x00:
            return UID + b"\x90\x00"
        if ins == 0x00 and p1 == 0x40:
            return bytes((0x90, p2 & 0x03))  # 90, the LED state
        if ins == 0x00 and p1 in (0x51, 0x52):
            return bytes((0x90, p2))
        return b"\x63\x00"

    return answer


def plain_card(apdu: bytes) -> bytes:
    """A card without reader commands: class FF is unknown to it (6E00)."""
    if apdu[0] == 0xFF:
        return b"\x6e\x00"
    return b"\x90\x00"


class FakeScard:
    """pyscard's scard functions over one fake reader; every call lands in ``calls``."""

    def __init__(
        self,
        readers: tuple[str, ...] = ("ACS ACR122U PICC Interface 00 00",),
        *,
        answer: Callable[[bytes], bytes] | None = None,
        present: bool = True,
        context_rc: int = 0,
    ) -> None:
        self.readers = list(readers)
        self.answer = answer or acr122u_firmware(plain_card)
        self.present = present
        self.events = 1  # pcsc-lite's event counter (upper 16 bits of the state)
        self.context_rc = context_rc
        self.reader_gone = False
        self.calls: list[tuple[Any, ...]] = []
        #: Return codes for the next transmits (popped in order); bytes ends a failure run.
        self.transmit_errors: list[int] = []
        #: Called after a failed transmit (a test makes the card leave there).
        self.on_failure: Callable[[], None] | None = None
        self.connect_rc = 0
        self.control_answer = b"\x90\x00"
        #: Escape control codes the reader's driver refuses (SCARD_E_UNSUPPORTED_FEATURE).
        self.refused_codes: set[int] = set()

    # --- the card moves ---

    def remove(self) -> None:
        self.present = False
        self.events += 1

    def insert(self) -> None:
        self.present = True
        self.events += 1

    def transmits(self) -> list[bytes]:
        """The APDUs sent with SCardTransmit, in order."""
        return [c[1] for c in self.calls if c[0] == "transmit"]

    # --- smartcard.scard ---

    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:
        return self.context_rc, 0x1234

    def SCardReleaseContext(self, context: int) -> int:
        self.calls.append(("release",))
        return 0

    def SCardListReaders(self, context: int, groups: list[str]) -> tuple[int, list[str]]:
        if not self.readers:
            return ScardCode.E_NO_READERS_AVAILABLE, []
        return 0, list(self.readers)

    def SCardGetStatusChange(
        self, context: int, timeout_ms: int, states: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        name, known = states[0]
        if self.reader_gone:
            return 0, [(name, STATE_UNKNOWN | STATE_CHANGED, [])]
        state = (self.events << 16) | (STATE_PRESENT if self.present else STATE_EMPTY)
        if known and known & ~STATE_CHANGED == state:
            time.sleep(min(timeout_ms, 5) / 1000)
            return ScardCode.E_TIMEOUT, [(name, known, [])]
        return 0, [(name, state | STATE_CHANGED, list(ATR) if self.present else [])]

    def SCardConnect(
        self, context: int, name: str, share: int, protocols: int
    ) -> tuple[int, int, int]:
        self.calls.append(("connect", share))
        if share == SHARE_DIRECT:
            return 0, 0x77, 0
        if self.connect_rc:
            return self.connect_rc, 0, 0
        if not self.present:
            return ScardCode.E_NO_SMARTCARD, 0, 0
        return 0, 0x55, PROTOCOL_T1

    def SCardReconnect(self, card: int, share: int, protocols: int, init: int) -> tuple[int, int]:
        self.calls.append(("reconnect", init))
        if not self.present:
            return ScardCode.W_REMOVED_CARD, 0
        return 0, PROTOCOL_T1

    def SCardDisconnect(self, card: int, disposition: int) -> int:
        self.calls.append(("disconnect", disposition))
        return 0

    def SCardStatus(self, card: int) -> tuple[int, str, int, int, list[int]]:
        if not self.present:
            return ScardCode.W_REMOVED_CARD, "", 0, 0, []
        return 0, self.readers[0], 0x34, PROTOCOL_T1, list(ATR)

    def SCardTransmit(self, card: int, protocol: int, apdu: list[int]) -> tuple[int, list[int]]:
        self.calls.append(("transmit", bytes(apdu)))
        if self.transmit_errors:
            rc = self.transmit_errors.pop(0)
            if self.on_failure is not None:
                self.on_failure()
            return rc, []
        if not self.present:
            return ScardCode.W_REMOVED_CARD, []
        return 0, list(self.answer(bytes(apdu)))

    def SCardControl(self, card: int, code: int, data: list[int]) -> tuple[int, list[int]]:
        self.calls.append(("control", code, bytes(data)))
        if code in self.refused_codes:
            return ScardCode.E_UNSUPPORTED_FEATURE, []
        return 0, list(self.control_answer)

    def SCardGetErrorMessage(self, rc: int) -> str:
        return "fake PC/SC error."


# Keep UNPOWER_CARD importable from here for tests that assert dispositions.
__all__ = ["ATR", "UID", "UNPOWER_CARD", "FakeScard", "acr122u_firmware", "plain_card"]
