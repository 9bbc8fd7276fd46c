"""The record of one entry point transaction, as EMVCo's entry point tests observe it.

EMVCo certifies an entry point (EMV Book B) by watching what crosses its boundaries:
the commands a (scripted) card receives and the status words it answers, what each
kernel is activated with (Book B §3.4.1: the selected combination, the FCI and status
word of the SELECT, the Entry Point Pre-Processing Indicators of Book A Table 5-3 with
the copy of the TTQ, the start point, the transaction data, and at a restart the online
response data), the outcome with its parameters (Book A §6.2), every User Interface
Request sent to the display (Book A §9.4, Book B §3.2.1.2-§3.2.1.5, §3.5) with its value
qualifier (amount or balance), and the state of the field: switched on to poll, off at a
Field Off Request (Book A §6.2, Book B §3.5.1) or at the end, and how long it was held
off before it came on again.

:attr:`EntryPointRecord.sequence` puts all of that in the order it happened (the UI
requests among the SELECTs, the field between two presentations), as a test lab's
trace shows it.

:class:`EntryPointRecord` holds exactly that for one transaction, including its
restarts, and :meth:`EntryPointRecord.to_json` gives it as JSON-ready data (what
``terminal entry-point --json`` prints). Nothing sensitive goes in: a command other
than SELECT is recorded by its instruction byte and status word only, never its data
or the card's answer (a GPO answer holds track 2 equivalent data).

:class:`RecordingReader` is the :class:`~terminal.readers.base.Reader` the entry point
wraps around the real one to fill :attr:`EntryPointRecord.exchanges`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from emvwire.apdu import command_name
from terminal.kernel.outcome import OutcomeParameters, Start, UiRequest
from terminal.kernel.registry import KernelContext, PreProcessing
from terminal.kernel.transaction import TransactionResult
from terminal.readers.base import CardInfo, CardTimeoutError, Reader

__all__ = [
    "Activation",
    "EntryPointRecord",
    "Exchange",
    "FieldChange",
    "RecordingReader",
    "indicators_json",
]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command and the status word of its answer.

    ``name`` is the DF name of a SELECT (``2PAY.SYS.DDF01`` as text, an AID in hex),
    empty for any other command; ``next`` says SELECT next occurrence (P2 02).
    """

    command: str
    sw: str
    name: str = ""
    next: bool = False

    @classmethod
    def of(cls, c_apdu: bytes, r_apdu: bytes) -> Exchange:
        """The exchange of ``c_apdu`` answered by ``r_apdu`` (no data kept)."""
        sw = r_apdu[-2:].hex().upper() if len(r_apdu) >= 2 else ""
        command = command_name(c_apdu)
        if command != "SELECT" or len(c_apdu) < 5:
            return cls(command, sw)
        body = c_apdu[5 : 5 + c_apdu[4]]
        text = body.decode("ascii", "replace") if body.startswith(b"2PAY.") else body.hex().upper()
        return cls(command, sw, text, c_apdu[3] == 0x02)

    def to_json(self) -> dict[str, Any]:
        """``{"command", "sw"}``, with ``name`` (and ``next``) for a SELECT."""
        out: dict[str, Any] = {"command": self.command, "sw": self.sw}
        if self.command == "SELECT":
            out["name"] = self.name
            if self.next:
                out["next"] = True
        return out

    def step_json(self) -> dict[str, Any]:
        """The exchange as a step of :attr:`EntryPointRecord.sequence`: ``{"select":
        name, "sw"}`` for a SELECT, ``{"command": name, "sw"}`` for any other."""
        if self.command != "SELECT":
            return {"command": self.command, "sw": self.sw}
        out: dict[str, Any] = {"select": self.name, "sw": self.sw}
        if self.next:
            out["next"] = True
        return out


@dataclass(frozen=True, slots=True)
class FieldChange:
    """The field switched ``on`` (to poll for a card, Book B §3.2.1.3) or ``off``
    (a Field Off Request, Book A §6.2 and Book B §3.5.1, with its ``hold_time_ms``; or
    the end of the transaction, hold ``None``). ``off_ms`` for ``on``: how long the
    field was off before (``None`` the first time)."""

    state: Literal["on", "off"]
    hold_time_ms: int | None = None
    off_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"state", "hold_time_ms"}`` for off, ``{"state", "off_ms"}`` for on."""
        if self.state == "off":
            return {"state": "off", "hold_time_ms": self.hold_time_ms}
        off = None if self.off_ms is None else round(self.off_ms, 1)
        return {"state": "on", "off_ms": off}


def indicators_json(ind: PreProcessing) -> dict[str, Any]:
    """The Entry Point Pre-Processing Indicators (Book A Table 5-3) by their names."""
    return {
        "status_check_requested": ind.status_check_requested,
        "contactless_application_not_allowed": ind.not_allowed,
        "zero_amount": ind.zero_amount,
        "reader_cvm_required_limit_exceeded": ind.cvm_required_limit_exceeded,
        "reader_contactless_floor_limit_exceeded": ind.floor_limit_exceeded,
        "ttq": ind.ttq.hex().upper() if ind.ttq is not None else None,
    }


@dataclass(frozen=True, slots=True)
class Activation:
    """What a kernel was activated with (Book B §3.4.1.1-§3.4.1.3)."""

    kernel_id: bytes
    kernel: str
    aid: bytes
    fci: bytes
    fci_sw: int
    indicators: PreProcessing
    start: Start
    restart: bool
    transaction: Mapping[int, bytes]
    online_response: bytes
    combination_aid: bytes

    @classmethod
    def from_context(cls, ctx: KernelContext, kernel: str) -> Activation:
        """The activation a :class:`KernelContext` describes."""
        currency = ctx.config.currency
        return cls(
            kernel_id=bytes(ctx.kernel_id or ctx.combination.kernel_id),
            kernel=kernel,
            aid=bytes(ctx.aid),
            fci=bytes(ctx.fci),
            fci_sw=ctx.fci_sw,
            indicators=ctx.indicators,
            start=ctx.start,
            restart=ctx.restart,
            transaction=ctx.transaction.data(currency),
            online_response=bytes(ctx.online_response),
            combination_aid=bytes(ctx.combination.aid),
        )

    @property
    def ttq(self) -> bytes | None:
        """The copy of the TTQ the kernel received."""
        return self.indicators.ttq

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: hex for bytes, tags as hex keys of ``transaction``."""
        return {
            "kernel_id": self.kernel_id.hex().upper(),
            "kernel": self.kernel,
            "aid": self.aid.hex().upper(),
            "combination_aid": self.combination_aid.hex().upper(),
            "fci": self.fci.hex().upper(),
            "sw": f"{self.fci_sw:04X}" if self.fci else None,
            "indicators": indicators_json(self.indicators),
            "start": self.start.name,
            "restart": self.restart,
            "transaction": {f"{t:X}": v.hex().upper() for t, v in self.transaction.items()},
            "online_response": self.online_response.hex().upper(),
        }


@dataclass(slots=True)
class EntryPointRecord:
    """Everything observable of one entry point transaction (module docstring).

    ``events`` notes what is neither an exchange nor an activation: collisions, card
    removals, field-off requests, the online request's answer, restarts (each a small
    dict with an ``event`` key). ``field_states`` is every change of the field's state.

    The UI requests are appended to :attr:`ui` by whoever shows them (the entry point
    and the kernels share that list); the others go through :meth:`add_exchange`,
    :meth:`note` and :meth:`field_change`, which place them in :attr:`sequence` after
    the UI requests shown before them.
    """

    start: Start = Start.A
    exchanges: list[Exchange] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)
    ui: list[UiRequest] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    field_states: list[FieldChange] = field(default_factory=list)
    outcome: OutcomeParameters | None = None
    result: TransactionResult | None = None
    restarts: int = 0
    #: The order of it all: (``"exchange"``, ``"ui"``, ``"event"`` or ``"field"``,
    #: index in that list); the UI requests are placed lazily (:meth:`_place_ui`).
    _steps: list[tuple[str, int]] = field(default_factory=list, repr=False)
    _ui_placed: int = field(default=0, repr=False)

    def __repr__(self) -> str:
        label = self.outcome.outcome.label if self.outcome is not None else "none"
        return (
            f"EntryPointRecord({label}, {len(self.exchanges)} exchanges, "
            f"{len(self.activations)} activations, {self.restarts} restarts)"
        )

    @property
    def selects(self) -> list[tuple[str, str]]:
        """The SELECT sequence: (DF name, status word) in order."""
        return [(e.name, e.sw) for e in self.exchanges if e.command == "SELECT"]

    @property
    def messages(self) -> list[int]:
        """The message identifiers of the UI requests, in order (Book A §9.4)."""
        return [int(u.message) for u in self.ui]

    def _place_ui(self) -> None:
        """Put the UI requests shown since the last step into :attr:`sequence`."""
        for index in range(self._ui_placed, len(self.ui)):
            self._steps.append(("ui", index))
        self._ui_placed = len(self.ui)

    def _add(self, kind: str, items: list[Any], item: Any) -> None:
        self._place_ui()
        self._steps.append((kind, len(items)))
        items.append(item)

    def add_exchange(self, exchange: Exchange) -> None:
        """Add one command and its status word."""
        self._add("exchange", self.exchanges, exchange)

    def note(self, event: str, **details: Any) -> None:
        """Add an event."""
        self._add("event", self.events, {"event": event, **details})

    def field_change(self, change: FieldChange) -> None:
        """Add a change of the field's state."""
        self._add("field", self.field_states, change)

    @property
    def sequence(self) -> list[dict[str, Any]]:
        """Exchanges, UI requests, events and field changes in the order they happened,
        JSON-ready: ``{"select": name, "sw"}``, ``{"command", "sw"}``, ``{"ui": message
        id, "status", "value", "value_qualifier", ...}``, ``{"event", ...}`` and
        ``{"field": "on"|"off", ...}``."""
        self._place_ui()
        out: list[dict[str, Any]] = []
        for kind, index in self._steps:
            if kind == "exchange":
                out.append(self.exchanges[index].step_json())
            elif kind == "ui":
                shown = self.ui[index].to_json()
                out.append({"ui": shown.pop("message"), **shown})
            elif kind == "event":
                out.append(dict(self.events[index]))
            else:
                change = self.field_states[index].to_json()
                out.append({"field": change.pop("state"), **change})
        return out

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (masked: no PAN, no track 2, no card answer)."""
        result = self.result
        return {
            "start": self.start.name,
            "selects": [e.to_json() for e in self.exchanges if e.command == "SELECT"],
            "exchanges": [e.to_json() for e in self.exchanges],
            "activations": [a.to_json() for a in self.activations],
            "outcome": self.outcome.to_json() if self.outcome is not None else None,
            "reasons": list(result.reasons) if result is not None else [],
            "kernel": result.kernel if result is not None else "",
            "ui": [u.to_json() for u in self.ui],
            "events": list(self.events),
            "field": [f.to_json() for f in self.field_states],
            "sequence": self.sequence,
            "restarts": self.restarts,
        }


class RecordingReader(Reader):
    """A reader that notes every exchange and every change of the field in ``record``
    and passes them on to ``inner``.

    :meth:`switch_off` is a Field Off Request (Book A §6.2, Book B §3.5.1): the field
    goes off and stays off for the hold time; the next :meth:`wait_for_card` (the poll
    of protocol activation, Book B §3.2.1.3) first waits for what is left of it
    (``sleep``), then switches the field on and records how long it was off
    (``timer``, monotonic seconds). A card that misses a command's deadline makes the
    driver reset the field (:class:`~terminal.readers.base.CardTimeoutError`): that is
    recorded as the field going off too.
    """

    def __init__(
        self,
        inner: Reader,
        record: EntryPointRecord,
        *,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.record = record
        self.path = inner.path
        self.feedback = inner.feedback
        self.timer = timer
        self.sleep = sleep
        self._on = False
        self._off_at: float | None = None
        self._hold_until = 0.0

    def __repr__(self) -> str:
        return f"RecordingReader({self.inner!r})"

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """As the inner reader's, the field switched on first (recorded when it was
        off), after the hold time of a Field Off Request (class docstring)."""
        if not self._on:
            left = self._hold_until - self.timer()
            if left > 0:
                self.sleep(left)
            now = self.timer()
            off = None if self._off_at is None else (now - self._off_at) * 1000.0
            self.record.field_change(FieldChange("on", off_ms=off))
            self._on = True
        return self.inner.wait_for_card(timeout)

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        """As the inner reader's; the exchange is recorded (a failed one with ``sw``
        empty: no answer came)."""
        try:
            answer = self.inner.transmit(c_apdu, timeout)
        except CardTimeoutError:
            self.record.add_exchange(Exchange.of(bytes(c_apdu), b""))
            self._went_off(None)  # the driver reset the field (Book D time-out error)
            raise
        except Exception:
            self.record.add_exchange(Exchange.of(bytes(c_apdu), b""))
            raise
        self.record.add_exchange(Exchange.of(bytes(c_apdu), answer))
        return answer

    def switch_off(self, hold_time_ms: int | None) -> None:
        """Switch the field off, to stay off ``hold_time_ms`` (a Field Off Request,
        Book B §3.5.1; ``None`` the end of the transaction). Recorded when it was on."""
        self.inner.field_off()
        self._went_off(hold_time_ms)

    def _went_off(self, hold_time_ms: int | None) -> None:
        """Record that the field went off (when it was on)."""
        if not self._on:
            return
        self._on = False
        self._off_at = self.timer()
        self._hold_until = self._off_at + (hold_time_ms or 0) / 1000.0
        self.record.field_change(FieldChange("off", hold_time_ms=hold_time_ms))

    def card_present(self) -> bool:
        """As the inner reader's."""
        return self.inner.card_present()

    def repower(self) -> CardInfo:
        """As the inner reader's."""
        return self.inner.repower()

    def wait_for_removal(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """As the inner reader's."""
        return self.inner.wait_for_removal(timeout, poll)

    def field_off(self) -> None:
        """As the inner reader's (the end of the transaction: no hold time)."""
        self.switch_off(None)

    def close(self) -> None:
        """As the inner reader's."""
        self.inner.close()
