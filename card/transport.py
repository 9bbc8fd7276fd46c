"""What every card transport (vpcd, nfcpy, in-process) needs of a software card.

The transports present a card to a reader: card/vpcd.py through pcscd (ISO/IEC 7816-3
power control and ATR), card/nfc.py over an ISO/IEC 14443-4 contactless link. Both drive
the same :class:`CardApplication`: power control at activation and deactivation, and
ISO/IEC 7816-4 C-APDU in, R-APDU out.
"""

from __future__ import annotations

from typing import Protocol

from card.errors import CardError

__all__ = ["CardApplication", "CardRemoved"]


class CardRemoved(CardError):  # noqa: N818 - the name the transports and card share
    """The card left the field (a pulled card): raised by ``process`` instead of an answer.

    A software card raises it when its profile asks it to leave the field
    (``faults.pull_after``); it stays away until the next ``power_on``. A transport
    ends the presentation as a real removal would: vpcd closes its socket, the NFC
    transport stops answering the reader.

    ``away_seconds``: how long the card stays out of the field (0: it may come back at
    once); a reader that models the field (the in-process one) polls in vain until then.
    """

    away_seconds: float = 0.0


class CardApplication(Protocol):
    """What a reader needs of a card: an ATR, power control and APDU processing."""

    @property
    def atr(self) -> bytes:
        """The answer to reset."""
        ...

    def power_on(self) -> None:
        """The field came on (or a reset): volatile state starts afresh."""
        ...

    def power_off(self) -> None:
        """The field went off."""
        ...

    def process(self, c_apdu: bytes) -> bytes:
        """Answer one C-APDU with an R-APDU (data || SW1 SW2)."""
        ...
