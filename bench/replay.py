"""The readers of the kernel benchmarks: one records a card's answers, one replays them.

Kernel CPU time per tap is measured without the card (BENCHMARKS.md): a flow is
recorded once from a software card through :class:`RecordingReader`, then run again
and again against :class:`ReplayReader`, whose ``transmit`` only returns the next
recorded answer. With the random source and the clock fixed, the recorded signatures
and cryptograms stay valid.
"""

from __future__ import annotations

from typing import Any

from terminal.readers.base import CardInfo, Reader, RecordingFeedback
from terminal.readers.emulated import EmulatedReader

__all__ = ["RecordingReader", "ReplayReader"]


class RecordingReader(EmulatedReader):
    """An emulated reader that keeps the card's answers."""

    def __init__(self, card: Any) -> None:
        super().__init__(card)
        self.answers: list[bytes] = []

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        answer = super().transmit(c_apdu, timeout)
        self.answers.append(answer)
        return answer


class ReplayReader(Reader):
    """A reader that answers from a recording: the card costs nothing."""

    path = "replay:"

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.position = 0
        self.feedback = RecordingFeedback()

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        self.position = 0
        return CardInfo()

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        answer = self.answers[self.position]
        self.position += 1
        return answer

    def card_present(self) -> bool:
        return True

    def repower(self) -> CardInfo:
        return self.wait_for_card()

    def close(self) -> None:
        pass
