"""The worker that lets a reader stop waiting for a call at its deadline
(terminal/readers/deadline.py), and the pcsc driver's use of it with a recording fake of
pyscard whose transmit never returns (tests/terminal/readers/fake_scard.py)."""

from __future__ import annotations

import threading

import pytest

import terminal.readers.deadline as deadline_module
from terminal.readers import CardTimeoutError, NoCardError, ReaderUnavailableError
from terminal.readers.deadline import DeadlineError, Worker, WorkerStuckError
from terminal.readers.pcsc import (
    LEAVE_CARD,
    SHARE_DIRECT,
    SHARE_SHARED,
    UNPOWER_CARD,
    PcscReader,
    ScardCode,
)
from tests.support.hostile_cards import wait_until
from tests.terminal.readers.fake_scard import FakeScard

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def test_a_call_returns_its_value_or_raises_its_error_here() -> None:
    worker = Worker("test")
    assert worker.call(lambda: 42, 5) == 42

    def fails() -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        worker.call(fails, 5)
    assert not worker.stuck
    worker.close()


def test_a_call_past_its_deadline_is_left_to_its_thread_and_cleaned_up_later() -> None:
    worker = Worker("test")
    release = threading.Event()
    cleaned: list[str] = []
    with pytest.raises(DeadlineError):
        worker.call(release.wait, 0.05)
    assert worker.stuck
    with pytest.raises(WorkerStuckError):  # no second thread behind the first
        worker.call(lambda: 1, 5)
    worker.after_stuck(lambda: cleaned.append("released"))
    assert not worker.wait(0.01)
    assert cleaned == []
    release.set()
    assert worker.wait(5)
    assert wait_until(lambda: cleaned == ["released"])
    assert not worker.stuck
    assert worker.call(lambda: "a new thread", 5) == "a new thread"
    worker.after_stuck(lambda: cleaned.append("at once"))  # nothing stuck: runs now
    assert cleaned == ["released", "at once"]


def test_an_idle_worker_thread_ends_and_the_next_call_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deadline_module, "IDLE_SECONDS", 0.01)
    worker = Worker("idle-test")
    assert worker.call(lambda: threading.current_thread().name, 5) == "idle-test"
    assert wait_until(lambda: not any(t.name == "idle-test" for t in threading.enumerate()))
    assert worker.call(lambda: 7, 5) == 7


# --- the pcsc driver with a transmit that never returns ---------------------------------


class _SilentScard(FakeScard):
    """A fake whose SCardTransmit blocks until ``answer`` is set (pcscd waiting for a
    silent card through vpcd), then fails as a removed card's would."""

    def __init__(self) -> None:
        super().__init__(("Virtual PCD 00 00",))
        self.answer_now = threading.Event()
        self.contexts = 0

    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:
        self.contexts += 1
        return 0, 0x1000 + self.contexts

    def SCardReleaseContext(self, context: int) -> int:
        self.calls.append(("release", context))
        return 0

    def SCardTransmit(self, card: int, protocol: int, apdu: list[int]) -> tuple[int, list[int]]:
        self.calls.append(("transmit", bytes(apdu)))
        self.answer_now.wait()
        self.present = False
        self.events += 1
        return 0x80100069, []  # SCARD_W_REMOVED_CARD


def test_a_transmit_stuck_in_pcscd_is_abandoned_with_its_context() -> None:
    api = _SilentScard()
    reader = PcscReader("0", api=api, command_timeout=0.1)
    reader.wait_for_card(1)
    with pytest.raises(CardTimeoutError, match="no answer within 100 ms"):
        reader.transmit(SELECT_PPSE)
    assert api.contexts == 2  # the stuck call keeps its context; the reader has a new one
    with pytest.raises(NoCardError):
        reader.transmit(SELECT_PPSE)  # the card handle went with the stuck call
    with pytest.raises(ReaderUnavailableError, match="never answered"):
        reader.reader_command(bytes.fromhex("FF00400E0400000000"))
    with pytest.raises(NoCardError, match="still holds it"):
        reader.wait_for_card(0.05)  # the silent card holds pcscd's reader
    api.answer_now.set()  # the card leaves: pcscd's transmit returns
    assert wait_until(lambda: ("release", 0x1001) in api.calls)
    assert ("disconnect", UNPOWER_CARD) in api.calls  # the stuck card's handle, unpowered
    api.insert()  # the next card
    assert reader.wait_for_card(1).protocol == "T=1"
    reader.close()


def test_field_off_and_close_unpower_the_card() -> None:
    api = FakeScard(("Virtual PCD 00 00",))
    reader = PcscReader("0", api=api)
    reader.wait_for_card(1)
    reader.field_off()
    assert api.calls[-1] == ("disconnect", UNPOWER_CARD)
    reader.wait_for_card(1)
    reader.close()
    assert ("disconnect", UNPOWER_CARD) in api.calls[-2:]
    assert ("disconnect", LEAVE_CARD) not in api.calls


class _PoweringUp(FakeScard):
    """A fake whose card pcscd has not powered up for the first ``times`` connections."""

    def __init__(self, times: int) -> None:
        super().__init__(("Virtual PCD 00 00",))
        self.times = times

    def SCardConnect(
        self, context: int, name: str, share: int, protocols: int
    ) -> tuple[int, int, int]:
        if share != SHARE_DIRECT and self.times:
            self.times -= 1
            self.calls.append(("connect", share))
            return ScardCode.W_UNPOWERED_CARD, 0, 0
        return super().SCardConnect(context, name, share, protocols)


def test_a_card_not_powered_up_yet_is_connected_to_again() -> None:
    api = _PoweringUp(times=2)
    reader = PcscReader("0", api=api)
    assert reader.wait_for_card(5).protocol == "T=1"
    assert api.calls.count(("connect", SHARE_SHARED)) == 3
    reader.close()


def test_a_card_never_powered_up_is_no_card_within_the_wait() -> None:
    api = _PoweringUp(times=10**9)
    reader = PcscReader("0", api=api)
    with pytest.raises(NoCardError):
        reader.wait_for_card(0.2)
    reader.close()
