"""An in-process reader around a software card (the path ``emulated:PROFILE_PATH``).

The emulated reader is a real driver, as nfcpy's ``udp`` frontend is: the kernel,
the trace and the CLI run against it exactly as against PC/SC or nfcpy. It holds any
object with the shape of a card application (``atr``, ``power_on()``, ``power_off()``,
``process(c_apdu) -> r_apdu``, optionally ``uid``); it never imports ``card/`` (card,
terminal and issuer import emvwire, never each other).

``emulated:PROFILE`` finds its card through the Python entry point group
``tapstack.cards``, name ``profile``: a callable ``(path: str) -> card``. The
distribution that provides the card (tapstack itself) registers it in its metadata.

A card leaves the field when its ``process`` raises an exception whose class is named
``CardRemoved`` or carries ``card_removed = True`` (card/transport.py defines one; it
is matched by name so the terminal needs no import of it): the exchange fails with
:class:`~terminal.readers.base.CardRemovedError`, and :meth:`EmulatedReader.card_present`
is false until the next :meth:`EmulatedReader.wait_for_card`, which powers it on again;
an exception that also carries ``away_seconds`` (a card that stays away a while) takes
the card out of the field for that long: polls find no card until it is back.
:meth:`EmulatedReader.take_away` and :meth:`EmulatedReader.present` move the card out
of and into the field from another thread (taps for ``terminal watch`` and demos).

The card's ``process`` runs in a worker thread (:class:`~terminal.readers.deadline.
Worker`), so that a card that never answers costs the command's deadline and no more:
:class:`~terminal.readers.base.CardTimeoutError`, and the card is powered off (the
field is reset; a card that keeps its ``process`` running after that is left to it).
:meth:`EmulatedReader.field_off` powers the card off at the end of a transaction; it
stays in the field (:meth:`~EmulatedReader.card_present`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Protocol

from emvwire.mask import scrub
from terminal.readers.base import (
    CardInfo,
    CardRemovedError,
    CardTimeoutError,
    CommunicationError,
    NoCardError,
    Reader,
    ReaderError,
    ReaderUnavailableError,
    RecordingFeedback,
    complete_exchange,
)
from terminal.readers.deadline import DeadlineError, Worker, WorkerStuckError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENTRY_POINT_NAME",
    "CardLike",
    "EmulatedReader",
    "card_factory",
    "is_card_removed",
    "open_emulated",
]

#: Entry point group and name of the card factory (``(path: str) -> card``).
ENTRY_POINT_GROUP: Final = "tapstack.cards"
ENTRY_POINT_NAME: Final = "profile"
#: The distribution whose factory wins when several register one.
_HOME_DISTRIBUTION: Final = "tapstack"


class CardLike(Protocol):
    """What the emulated reader needs of a card (card/transport.py CardApplication)."""

    @property
    def atr(self) -> bytes:
        """The answer to reset."""
        ...

    def power_on(self) -> None:
        """The field came on."""
        ...

    def power_off(self) -> None:
        """The field went off."""
        ...

    def process(self, c_apdu: bytes) -> bytes:
        """Answer one C-APDU."""
        ...


def is_card_removed(exc: BaseException) -> bool:
    """Whether ``exc`` says the card left the field (class ``CardRemoved`` or the
    ``card_removed`` attribute), anywhere in its class hierarchy."""
    if getattr(exc, "card_removed", False) is True:
        return True
    return any(cls.__name__ == "CardRemoved" for cls in type(exc).__mro__)


class EmulatedReader(Reader):
    """A reader with ``card`` in its field, in process (module docstring)."""

    def __init__(
        self,
        card: CardLike,
        *,
        path: str = "emulated:",
        present: bool = True,
        command_timeout: float | None = None,
    ) -> None:
        self.card = card
        self.path = path
        self.feedback = RecordingFeedback()
        if command_timeout is not None:
            self.command_timeout = command_timeout
        self._cond = threading.Condition()
        self._in_field = present  # the card is held to the reader
        self._powered = False  # the card is powered (activated, field on)
        self._left = False  # the card said it left (CardRemoved) since its activation
        self._closed = False
        self._worker = Worker(f"card in {path}")
        self._back: threading.Timer | None = None  # brings a card that left back

    def __repr__(self) -> str:
        return f"EmulatedReader({self.path!r})"

    # --- moving the card (tests, demos) ----------------------------------------------

    def present(self) -> None:
        """Bring the card into the field (a ``wait_for_card`` in progress returns)."""
        with self._cond:
            self._in_field = True
            self._cond.notify_all()

    def take_away(self) -> None:
        """Take the card out of the field: its power goes, exchanges fail."""
        with self._cond:
            self._in_field = False
            self._power_off()
            self._cond.notify_all()

    def _away(self, seconds: object) -> None:
        """The card that left stays out of the field ``seconds``, then comes back
        (:meth:`present`); the condition held."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            return
        self._in_field = False
        if self._back is not None:
            self._back.cancel()
        self._back = threading.Timer(seconds, self.present)
        self._back.daemon = True
        self._back.start()

    def _power_off(self) -> None:
        if self._powered:
            self._powered = False
            self.card.power_off()

    # --- Reader ----------------------------------------------------------------------

    def _info(self) -> CardInfo:
        uid = getattr(self.card, "uid", b"")
        return CardInfo(atr=bytes(self.card.atr), uid=bytes(uid) if uid else b"")

    def _power_cycle(self) -> CardInfo:
        self._power_off()
        self.card.power_on()
        self._powered, self._left = True, False
        return self._info()

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """Wait until the card is in the field, power it on (afresh) and activate it.

        A card still busy with a command it never answered (its field was reset) is
        waited for first, within ``timeout``."""
        if not self._worker.wait(timeout):
            raise NoCardError(
                f"no card on {self.path} within {timeout:g} s: the card that stopped "
                "answering has not let go"
            )
        with self._cond:
            if self._closed:
                raise ReaderUnavailableError(f"{self.path} is closed")
            if not self._cond.wait_for(lambda: self._in_field or self._closed, timeout):
                raise NoCardError(f"no card on {self.path} within {timeout:g} s")
            if self._closed:
                raise ReaderUnavailableError(f"{self.path} is closed")
            return self._power_cycle()

    def wait_for_removal(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Wait until the card leaves (taken away, or it said so); ``False`` on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: self._left or not self._in_field, timeout)

    def card_present(self) -> bool:
        """Whether the card is in the field and has not said it left since it was
        activated (a card whose field went off is still present; a closed reader
        senses none)."""
        with self._cond:
            return self._in_field and not self._left and not self._closed

    def repower(self) -> CardInfo:
        """Power the card off and on again (it resets its volatile state)."""
        with self._cond:
            if not (self._in_field and self._powered):
                raise CardRemovedError(f"no card in the field of {self.path}")
            return self._power_cycle()

    def field_off(self) -> None:
        """Power the card off (it stays in the field: the next wait_for_card powers it
        on afresh)."""
        with self._cond:
            self._power_off()
            self._cond.notify_all()

    def _send(self, apdu: bytes, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise DeadlineError
            answer = self._worker.call(lambda: self.card.process(apdu), left)
        except (DeadlineError, WorkerStuckError) as exc:
            self.field_off()  # Book D: reset the field after a time-out error
            raise CardTimeoutError(
                f"the card did not answer INS {apdu[1]:02X} in time on {self.path}"
            ) from exc
        except Exception as exc:
            if is_card_removed(exc):
                with self._cond:
                    self._left = True
                    self._power_off()
                    self._away(getattr(exc, "away_seconds", 0.0))
                    self._cond.notify_all()
                raise CardRemovedError(f"the card left the field of {self.path}") from exc
            raise CommunicationError(
                f"the card failed on INS {apdu[1]:02X}: {type(exc).__name__}"
            ) from exc
        return bytes(answer)

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        """Pass the C-APDU to the card; 61xx/6Cxx followed as by every driver, all
        within ``timeout`` s (module docstring)."""
        with self._cond:
            if not self._in_field or not self._powered:
                if not self._in_field:
                    raise CardRemovedError(f"no card in the field of {self.path}")
                raise NoCardError(f"no card activated on {self.path}: call wait_for_card first")
        deadline = time.monotonic() + (self.command_timeout if timeout is None else timeout)
        return complete_exchange(lambda apdu: self._send(apdu, deadline), bytes(c_apdu))

    def release(self) -> None:
        """Power the card off: it counts as gone for :meth:`wait_for_removal`, and the
        next :meth:`wait_for_card` is a new presentation of the card in the field."""
        with self._cond:
            if self._powered:
                self._powered = False
                self.card.power_off()
            self._cond.notify_all()

    def close(self) -> None:
        """Power the card off; waits in progress end with ReaderUnavailableError."""
        with self._cond:
            self._closed = True
            self._power_off()
            if self._back is not None:
                self._back.cancel()
            self._cond.notify_all()
        self._worker.close()


def card_factory() -> Callable[[str], Any]:
    """The ``tapstack.cards`` / ``profile`` entry point, loaded.

    :class:`ReaderUnavailableError` when no installed distribution registers one (the
    source tree is not installed: ``pip install -e .``).
    """
    found = [
        ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == ENTRY_POINT_NAME
    ]
    if not found:
        raise ReaderUnavailableError(
            f"no card factory: no installed package has the entry point "
            f"{ENTRY_POINT_GROUP}/{ENTRY_POINT_NAME} (install tapstack: pip install -e .)"
        )
    home = [ep for ep in found if ep.dist is not None and ep.dist.name == _HOME_DISTRIBUTION]
    entry = (home or found)[0]
    try:
        factory = entry.load()
    except Exception as exc:
        raise ReaderUnavailableError(
            f"the card factory {entry.value!r} cannot be loaded: {exc}"
        ) from exc
    if not callable(factory):
        raise ReaderUnavailableError(f"the card factory {entry.value!r} is not callable")
    return factory  # type: ignore[no-any-return]


def open_emulated(
    profile: str, *, factory: Callable[[str], Any] | None = None, present: bool = True
) -> EmulatedReader:
    """An :class:`EmulatedReader` holding the card of profile file ``profile``.

    ``factory`` replaces the entry point (``(path) -> card``). A profile the factory
    refuses is a :class:`ReaderError` naming the file (never its contents).
    """
    if not profile:
        raise ReaderError("an emulated path names a card profile: emulated:PROFILE_PATH")
    if not Path(profile).is_file():
        raise ReaderError(f"no card profile {profile!r} (not a file)")
    make = card_factory() if factory is None else factory
    try:
        card = make(profile)
    except Exception as exc:
        # scrub: a message about a bad field must not carry a PAN or track 2 image
        raise ReaderError(
            f"card profile {profile!r} could not be loaded: {type(exc).__name__}: {scrub(str(exc))}"
        ) from exc
    for needed in ("atr", "power_on", "power_off", "process"):
        if not hasattr(card, needed):
            raise ReaderError(f"the card factory gave {type(card).__name__}, without {needed}")
    return EmulatedReader(card, path=f"emulated:{profile}", present=present)
