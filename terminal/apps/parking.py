"""The parking gate (``terminal gate parking``, :mod:`terminal.commands.parking`).

**Entry**: the card (or phone) is tapped; the kernel runs for the tariff's
**pre-authorisation** amount (its daily maximum unless ``--max-amount`` says
otherwise) with merchant category 7523 (9F15; the issuer terminal is registered with
``--mcc 7523``, an MCC the issuer's transit checks accept); the issuer holds that
amount; the session is written to the gate's durable journal, keyed by the kernel's
**card reference** (a keyed hash of PAN or token and PSN, never the PAN); then the
barrier opens.

**Exit**: the same card or the same phone is tapped (its card reference finds the
session; the exit tap's own cryptogram identifies the card and is not sent). The fee
comes from the tariff and the stay's duration; the gate **completes** the entry's
authorisation for the fee, which releases the rest of the hold (a free stay reverses
it: nothing charged); the barrier opens.

Defined outcomes (each tested):

- **exit with no entry** (at an exit lane): barrier stays closed, "no entry found:
  see attendant". A phone and the card of the same account are *different* card
  references (a phone pays with a token): leave with the one you came in with.
- **entry declined** (by the card offline or by the issuer): barrier stays closed,
  "Not authorised"; no session.
- **stay over the maximum** (fee above the pre-authorisation): the pre-authorised
  amount is captured (no more can be), the session is flagged ``overstay`` with the
  amount still owed, for the operator; the barrier opens (the car is not held in).
- **issuer down at entry**: the host client retries then sends the time-out reversal;
  the barrier stays closed ("issuer unreachable: see attendant") - without a hold the
  car park has no guarantee of payment.
- **issuer down at exit**: the barrier opens (the hold guarantees the fee), the session
  is closed and its completion **queued** in the journal; the gate sends it again
  (same request id: the issuer completes it once) at start, every ``RETRY_INTERVAL``
  s while idle, and after each tap that did not itself just queue one.
- **card pulled away mid-tap**: "Please present card again"; nothing decided.

Lanes (``lane``; environment ``TAPSTACK_PARKING_LANE``): ``entry``, ``exit``, or
``auto`` (the default: one reader for both ways; a card with an open session exits,
any other enters). Lanes of one car park share ``home``: the session journal is
read and appended under an ``flock`` so two gate processes see each other's sessions.

Times come from an injectable clock (tests run a stay of days in no time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final, Protocol

from emvwire.currency import Currency, currency_by_code, format_amount, parse_amount
from emvwire.tags import Tag
from hostlink.client import UNREACHABLE, HostError, HostOutcome
from terminal.apps.errors import AppError
from terminal.apps.journal import JOURNAL_FILE, Journal
from terminal.apps.retail import (
    utc_now,
)
from terminal.kernel.config import TerminalConfig
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome, UiMessage
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
)
from terminal.readers import NoCardError, Reader, signal_outcome

__all__ = [
    "LANES",
    "PARKING_MCC",
    "ParkingDecision",
    "ParkingGate",
    "ParkingHost",
    "Tariff",
    "TariffError",
    "lane_config",
    "load_tariff",
    "run_lane",
]

#: Merchant category code of automobile parking lots and garages (ISO 18245).
PARKING_MCC: Final = "7523"
#: The lanes a parking reader can serve.
LANES: Final = ("auto", "entry", "exit")
#: Seconds between attempts to send queued completions while no card comes.
RETRY_INTERVAL: Final = 30.0
TARIFF_SCHEMA: Final = "tapstack.parking-tariff/1"

NO_ENTRY_TEXT: Final = "no entry found: see attendant"
ISSUER_DOWN_TEXT: Final = "issuer unreachable: barrier stays closed, see attendant"


# -- tariff ---------------------------------------------------------------------------


class TariffError(AppError, ValueError):
    """A tariff file that cannot be read or is invalid."""


@dataclass(frozen=True, slots=True)
class Tariff:
    """A car park tariff: ``free_minutes`` free, then ``per_started_hour`` (minor units)
    for every started hour, at most ``daily_maximum`` per 24 hours; ``pre_authorisation``
    is what an entry holds (default: ``daily_maximum``)."""

    currency: Currency
    free_minutes: int
    per_started_hour: int
    daily_maximum: int
    pre_authorisation: int

    def fee(self, duration: timedelta) -> int:
        """The fee of a stay of ``duration`` (minor units): the class docstring's
        tariff."""
        if duration <= timedelta(minutes=self.free_minutes):
            return 0
        days, rest = divmod(duration, timedelta(hours=24))
        hours = math.ceil(rest / timedelta(hours=1))
        return days * self.daily_maximum + min(self.daily_maximum, hours * self.per_started_hour)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (amounts in minor units)."""
        return {
            "currency": self.currency.alpha,
            "free_minutes": self.free_minutes,
            "per_started_hour": self.per_started_hour,
            "daily_maximum": self.daily_maximum,
            "pre_authorisation": self.pre_authorisation,
        }


def parse_tariff(obj: Any) -> Tariff:
    """A tariff from its JSON document (schema ``tapstack.parking-tariff/1``)."""
    if not isinstance(obj, dict):
        raise TariffError("a tariff is a JSON object")
    if obj.get("schema", TARIFF_SCHEMA) != TARIFF_SCHEMA:
        raise TariffError(f"schema {obj.get('schema')!r} is not {TARIFF_SCHEMA}")
    try:
        currency = currency_by_code(str(obj.get("currency", "EUR")))
    except ValueError as exc:
        raise TariffError(f"currency: {exc}") from None

    def amount(name: str, default: int | None = None) -> int:
        value = obj.get(name)
        if value is None and default is not None:
            return default
        if not isinstance(value, str):
            raise TariffError(f'{name}: an amount as a string, e.g. "2.50"')
        try:
            return parse_amount(value, currency.exponent)
        except ValueError as exc:
            raise TariffError(f"{name}: {exc}") from None

    free = obj.get("free_minutes", 0)
    if isinstance(free, bool) or not isinstance(free, int) or free < 0:
        raise TariffError("free_minutes: a whole number of minutes >= 0")
    per_hour, daily = amount("per_started_hour"), amount("daily_maximum")
    if daily <= 0:
        raise TariffError("daily_maximum: must be above zero")
    pre = amount("pre_authorisation", daily)
    if pre <= 0:
        raise TariffError("pre_authorisation: must be above zero")
    return Tariff(currency, free, per_hour, daily, pre)


def load_tariff(path: str | Path | None = None) -> Tariff:
    """The tariff in ``path``, or the built-in ``terminal/apps/default_tariff.json``."""
    try:
        if path is None:
            text = resources.files("terminal.apps").joinpath("default_tariff.json").read_text()
        else:
            text = Path(path).read_text()
    except OSError as exc:
        raise TariffError(f"cannot read tariff {path}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TariffError(f"tariff {path} is not JSON: line {exc.lineno}: {exc.msg}") from None
    return parse_tariff(obj)


# -- sessions -------------------------------------------------------------------------


class ParkingHost(Protocol):
    """What the gate needs of the issuer (:class:`hostlink.HostClient`)."""

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome: ...

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]: ...

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]: ...


@dataclass(slots=True)
class _State:
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # card reference -> entry
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # session -> exit


def _apply(state: _State, record: Mapping[str, Any]) -> None:
    """One journal record's effect on the sessions."""
    kind = record.get("type")
    if kind == "entry":
        state.open[str(record["card_reference"])] = dict(record)
    elif kind == "exit":
        state.open.pop(str(record["card_reference"]), None)
        state.pending[str(record["session"])] = dict(record)
    elif kind == "settled":
        state.pending.pop(str(record["session"]), None)


class _Store:
    """The session journal in ``home``, read and appended under an ``flock`` (lanes
    in other processes append to the same journal).

    The journal stays open with the sessions folded from it; under the lock, a
    journal file that is no longer the size this process left it (another lane
    appended) is read again, else the cached sessions serve (a tap costs no re-read).
    """

    def __init__(self, home: Path, *, durable: bool = True) -> None:
        self.home = home
        self.durable = durable
        home.mkdir(parents=True, exist_ok=True)
        self._lock_path = home / "parking.lock"
        self._file = home / "sessions" / JOURNAL_FILE
        self._journal: Journal | None = None
        self._state = _State()
        self._size = -1

    def _size_now(self) -> int:
        try:
            return self._file.stat().st_size
        except FileNotFoundError:
            return -1

    @contextlib.contextmanager
    def open(self) -> Iterator[tuple[Journal, _State]]:
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if self._journal is None or self._size_now() != self._size:
                    self.close()
                    self._journal = Journal(self.home / "sessions", durable=self.durable)
                    self._state = _State()
                    for record in self._journal.records():
                        _apply(self._state, record)
                yield self._journal, self._state
                self._size = self._size_now()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the journal (it is opened again when needed)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def state(self) -> _State:
        with self.open() as (_, state):
            return _State(dict(state.open), dict(state.pending))

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        with self.open() as (journal, state):
            stored = journal.append(record)
            _apply(state, stored)
            return stored


# -- the gate -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkingDecision:
    """What the gate decided on one tap."""

    action: str  # entry, exit, deny, try again
    open: bool
    message: str
    time: str
    card: str = ""
    card_reference: str = ""
    session: str = ""
    transaction_id: str = ""
    reason: str = ""
    amount: int = 0  # entry: held; exit: the fee
    captured: int = 0
    overstay: int = 0
    queued: bool = False
    duration_s: int | None = None
    currency: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (one line per tap of ``--json``)."""
        return {
            "mode": "parking",
            "action": self.action,
            "open": self.open,
            "message": self.message,
            "time": self.time,
            "card": self.card,
            "card_reference": self.card_reference,
            "session": self.session,
            "transaction_id": self.transaction_id,
            "reason": self.reason,
            "amount": self.amount,
            "captured": self.captured,
            "overstay": self.overstay,
            "queued": self.queued,
            "duration_s": self.duration_s,
            "currency": self.currency,
        }

    def text(self) -> str:
        """One line for a person."""
        barrier = "OPEN" if self.open else "CLOSED"
        parts = [f"{self.action.upper():8} barrier {barrier:6} {self.message}"]
        if self.card:
            parts.append(f"card {self.card}")
        if self.duration_s is not None:
            parts.append(f"stay {timedelta(seconds=self.duration_s)}")
        cur = currency_by_code(self.currency or "EUR")

        def money(value: int) -> str:
            return format_amount(value, cur)

        if self.action == "entry" and self.open:
            parts.append(f"held {money(self.amount)}")
        if self.action == "exit":
            parts.append(f"fee {money(self.amount)}, captured {money(self.captured)}")
        if self.overstay:
            parts.append(f"OVERSTAY {money(self.overstay)} owed")
        if self.queued:
            parts.append("completion queued")
        if self.reason and self.reason != self.message:
            parts.append(f"({self.reason})")
        return "; ".join(parts)


class ParkingGate:
    """One parking lane (module docstring): :meth:`decide` a tap's kernel result,
    :meth:`settle_pending` the queued completions."""

    def __init__(
        self,
        home: Path | str,
        host: ParkingHost,
        tariff: Tariff,
        *,
        lane: str = "auto",
        clock: Callable[[], datetime] = utc_now,
        display: Callable[[UiMessage, str], None] | None = None,
        durable: bool = True,
    ) -> None:
        if lane not in LANES:
            raise ValueError(f"lane is one of {', '.join(LANES)}, not {lane!r}")
        self.store = _Store(Path(home), durable=durable)
        self.host = host
        self.tariff = tariff
        self.lane = lane
        self.clock = clock
        self.display = display or (lambda message, detail: None)

    def close(self) -> None:
        """Close the session journal."""
        self.store.close()

    @property
    def transaction(self) -> Transaction:
        """What the kernel runs on every tap: the pre-authorisation amount."""
        return Transaction(self.tariff.pre_authorisation, currency=self.tariff.currency.code)

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def _decision(self, action: str, opened: bool, message: str, **values: Any) -> ParkingDecision:
        shown = {True: UiMessage.APPROVED, False: UiMessage.NOT_AUTHORISED}[opened]
        if action == "try again":
            shown = UiMessage.PRESENT_CARD_AGAIN
        self.display(shown, message)
        return ParkingDecision(
            action, opened, message, self._now().isoformat(timespec="seconds"),
            currency=self.tariff.currency.alpha, **values,
        )  # fmt: skip

    def open_sessions(self) -> dict[str, dict[str, Any]]:
        """The stays in progress, by card reference."""
        return self.store.state().open

    def pending(self) -> dict[str, dict[str, Any]]:
        """Exits whose completion the issuer has not confirmed, by session."""
        return self.store.state().pending

    def decide(self, result: TransactionResult) -> ParkingDecision:
        """Entry or exit for one tap (module docstring)."""
        if result.outcome is Outcome.TRY_AGAIN or not result.card_reference:
            why = "; ".join(result.reasons) or result.outcome.label
            return self._decision("try again", False, "please present card again", reason=why)
        reference = result.card_reference
        session = self.store.state().open.get(reference)
        if self.lane == "exit" or (self.lane == "auto" and session is not None):
            if session is None:
                return self._deny(result, NO_ENTRY_TEXT)
            return self._exit(result, session)
        if session is not None:
            return self._deny(result, "a stay is already open for this card: see attendant")
        return self._entry(result)

    def _deny(self, result: TransactionResult, reason: str, **values: Any) -> ParkingDecision:
        self.store.append(
            {"type": "denied", "card_reference": result.card_reference, "card": result.masked_pan,
             "reason": reason, "time": self._now().isoformat()}
        )  # fmt: skip
        return self._decision(
            "deny", False, values.pop("message", reason), card=result.masked_pan,
            card_reference=result.card_reference, reason=reason, **values,
        )  # fmt: skip

    def _entry(self, result: TransactionResult) -> ParkingDecision:
        if result.outcome is not Outcome.ONLINE_REQUEST or result.online_pin_required:
            why = "; ".join(result.reasons) or result.outcome.label
            if result.online_pin_required:
                why = "online PIN required: this gate has no PIN pad"
            elif result.outcome is Outcome.APPROVED:
                why = "offline approval: an entry needs the issuer's pre-authorisation"
            return self._deny(result, why, message="Not authorised")
        request_id = "prk_" + secrets.token_hex(12)
        self.display(UiMessage.PROCESSING, "pre-authorising")
        try:
            answer = self.host.authorise(
                result.authorisation_data, result.track2, request_id=request_id
            )
        except HostError as exc:
            return self._deny(result, str(exc), message="Not authorised")
        if not answer.answered:
            return self._deny(result, ISSUER_DOWN_TEXT, transaction_id="")
        if not answer.approved:
            return self._deny(
                result, f"declined: {answer.reason or answer.response_code}",
                message="Not authorised", transaction_id=answer.transaction_id,
            )  # fmt: skip
        session = "pks_" + secrets.token_hex(8)
        amount = self.tariff.pre_authorisation
        self.store.append(
            {"type": "entry", "session": session, "card_reference": result.card_reference,
             "card": result.masked_pan, "transaction_id": answer.transaction_id,
             "request_id": request_id, "amount": amount, "time": self._now().isoformat()}
        )  # fmt: skip
        return self._decision(
            "entry", True, "Welcome: barrier opens", card=result.masked_pan,
            card_reference=result.card_reference, session=session,
            transaction_id=answer.transaction_id, amount=amount,
        )  # fmt: skip

    def _exit(self, result: TransactionResult, entry: Mapping[str, Any]) -> ParkingDecision:
        entered = datetime.fromisoformat(str(entry["time"]))
        duration = max(timedelta(0), self._now() - entered)
        fee = self.tariff.fee(duration)
        held = int(entry["amount"])
        capture = min(fee, held)
        overstay = fee - capture
        record = {
            "type": "exit", "session": entry["session"], "card_reference": entry["card_reference"],
            "transaction_id": entry["transaction_id"], "fee": fee, "capture": capture,
            "overstay": overstay, "duration_s": int(duration.total_seconds()),
            "time": self._now().isoformat(),
        }  # fmt: skip
        self.store.append(record)
        settled = self._settle(record)
        message = "Goodbye: barrier opens"
        if overstay:
            message = "overstay: see operator; barrier opens"
        return self._decision(
            "exit", True, message, card=result.masked_pan, card_reference=result.card_reference,
            session=str(entry["session"]), transaction_id=str(entry["transaction_id"]),
            amount=fee, captured=capture, overstay=overstay, queued=not settled,
            duration_s=record["duration_s"],
            reason="" if settled else "issuer unreachable: completion queued",
        )  # fmt: skip

    def _settle(self, exit_record: Mapping[str, Any]) -> bool:
        """Complete (or, for a free stay, reverse) a session's authorisation; whether
        the issuer confirmed it (else it stays queued)."""
        txn, capture = str(exit_record["transaction_id"]), int(exit_record["capture"])
        key = f"park:{exit_record['session']}"
        try:
            if capture > 0:
                done = self.host.complete(txn, capture, request_id=key)
            else:
                done = self.host.reverse(txn, request_id=key)
        except HostError as exc:
            # Refused for good (e.g. the hold expired): the operator must act; not retried.
            done = {"error": str(exc)}
        except UNREACHABLE:
            return False
        self.store.append(
            {"type": "settled", "session": exit_record["session"], "transaction_id": txn,
             "captured": int(done.get("captured_amount", 0) or 0),
             "status": str(done.get("status", "")), "error": done.get("error"),
             "time": self._now().isoformat()}
        )  # fmt: skip
        return True

    def settle_pending(self) -> int:
        """Send the queued completions again; how many the issuer confirmed."""
        return sum(self._settle(record) for record in list(self.pending().values()))


# -- the lane at work -------------------------------------------------------------------


def lane_config(base: TerminalConfig, tariff: Tariff) -> TerminalConfig:
    """The terminal configuration of a parking lane: ``base`` with merchant category
    code 7523 (9F15, EMV Book 3 Annex A; the category the issuer terminal is registered
    with). :class:`TariffError` when the tariff's currency is not the terminal's (5F2A)."""
    config = replace(
        base, terminal_data={**base.terminal_data, Tag.MCC: bytes.fromhex(PARKING_MCC)}
    )
    terminal_currency = currency_by_code(config.currency)
    if terminal_currency != tariff.currency:
        raise TariffError(
            f"tariff in {tariff.currency.alpha}, terminal in {terminal_currency.alpha}"
        )
    return config


def run_lane(
    gate: ParkingGate,
    reader: Reader,
    entry_point: EntryPoint,
    report: Callable[[ParkingDecision], None],
    *,
    taps: int | None = None,
    timeout: float | None = None,
) -> int:
    """Run a parking lane: wait for a card, run the kernel (amount: the
    pre-authorisation, :attr:`ParkingGate.transaction`), decide entry or exit, give the
    signal (EMV Book A §9.3), ``report`` the decision, wait for the card to leave,
    repeat; return after ``taps`` taps (a card pulled away counts; ``None``: for
    ever). Queued completions are sent at the start, every :data:`RETRY_INTERVAL` s
    while no card comes, and after each tap that did not itself queue one.

    ``timeout`` bounds the wait for a card (:class:`~terminal.readers.NoCardError`) and
    for its removal (``TimeoutError``); other reader errors go up as they are.
    """
    emulated = reader.path.startswith("emulated:")
    done = 0
    gate.settle_pending()
    while taps is None or done < taps:
        if done and not emulated and reader.card_present():
            gate.display(UiMessage.REMOVE_CARD, "")
            if not reader.wait_for_removal(timeout):
                raise TimeoutError(f"the card did not leave {reader.path}")
        gate.display(UiMessage.PRESENT_CARD, f"{gate.lane} lane")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = RETRY_INTERVAL if left is None else min(RETRY_INTERVAL, left)
            try:
                reader.wait_for_card(wait)
                break
            except NoCardError:
                if left is not None and left <= RETRY_INTERVAL:
                    raise NoCardError(f"no card at {reader.path} within {timeout:g} s") from None
                gate.settle_pending()
        result = entry_point.run(reader, gate.transaction, wait=False)
        decision = gate.decide(result)
        signal = "try again" if decision.action == "try again" else None
        signal_outcome(reader.feedback, signal or ("approved" if decision.open else "declined"))
        reader.field_off()  # Book A: the removal procedure, once the signal is given
        report(decision)
        done += 1
        if not decision.queued and gate.pending():
            gate.settle_pending()
    return done
