"""The transit gate's offline decision and its tap record.

The gate decides offline, fast, from the kernel's result alone:

1. the card completed the kernel: offline data authentication passed, or an online
   cryptogram (ARQC, 9F26 with an online request) is present for the back office's
   deferred authorisation, and ODA did not fail (EMV Book C-2 §3.9, C-3 §5.4: a failed
   CDA/fDDA marks a card that is not what it claims; a failed ODA with an ARQC is
   denied here rather than left to the issuer);
2. its card reference (the keyed hash of :func:`emvwire.cardref.card_reference`,
   never the PAN) is not on the deny list (:mod:`.denylist`);
3. a card the back office does not know yet rides within ``first_ride_limit`` opens
   per card per travel day: the first-ride risk of open-loop transit, where the gate
   opens before any authorisation and a bad card rides until the back office's
   deferred authorisation declines it.
   A card is *known* once the back office acknowledged one of its open taps (the
   upload cursor passed it): from then on the deny list alone governs it, since a
   declined deferred authorisation puts it there.

Every decided tap is a TAP object of the gate protocol (its fields are listed in
backoffice/service.py, which takes them) and goes to the durable journal
(:mod:`.journal`, ``fsync``) **before** the gate signals: a gate that loses power after
opening has the tap on disk and uploads it later. Track 2 is in the TAP only sealed to
the back office's public key (:func:`emvwire.seal.seal`, RFC 9180 HPKE), with the tap
id as context, and only for open taps (a denied tap is not charged). A tap the kernel
did not complete (card pulled away: "try again"; no card reference; a kernel decline)
is shown and signalled but not journaled: there is nothing the back office could
charge or trace, and a TAP has no outcome for it.

The travel day of the first-ride limit is the UTC date of the tap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from emvwire.currency import currency_by_code
from emvwire.seal import seal
from terminal.apps.denylist import DenyList, DenyListError
from terminal.apps.gate import GateVerdict, utc_stamp
from terminal.apps.journal import Journal
from terminal.apps.stream import DenyListFollower, JetStreamLink, TapPublisher
from terminal.apps.uploader import BackOfficeClient, BackOfficeLinkError, DenyListPoller, Uploader
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import (
    OdaResult,
    Transaction,
    TransactionResult,
)

__all__ = [
    "DIRECTIONS",
    "TransitGate",
    "TransitLane",
    "TransitSettings",
    "kernel_accepts",
    "scheme_of",
]

#: Tap directions of the contract: flat-fare gates tap once, zoned ones on and off.
DIRECTIONS: Final = ("single", "on", "off")
#: Registered application provider identifiers (ISO 7816-5) -> the TAP's scheme.
_SCHEMES: Final = {"A000000003": "visa", "A000000004": "mastercard"}
_OUTCOME_NAMES: Final = {Outcome.APPROVED: "approved", Outcome.ONLINE_REQUEST: "online_request"}
_ODA_NAMES: Final = {
    OdaResult.PASSED: "passed",
    OdaResult.NOT_PERFORMED: "not_performed",
    OdaResult.FAILED: "failed",
}


@dataclass(frozen=True, slots=True)
class TransitSettings:
    """A transit gate's configuration (the options of ``terminal gate transit``).

    ``seal_key`` is the back office's X25519 public key (32 bytes);
    ``nominal_amount`` the 9F02 the kernel runs with, in minor units of ``currency``
    (ISO 4217 numeric, three digits).
    """

    gate_id: str
    seal_key: bytes = field(repr=False)
    zone: str | None = None
    direction: str = "single"
    nominal_amount: int = 100
    currency: str = "978"
    first_ride_limit: int = 2

    def __post_init__(self) -> None:
        if not self.gate_id or ":" in self.gate_id or len(self.gate_id) > 64:
            raise ValueError("a gate id is 1-64 characters without ':'")
        if len(self.seal_key) != 32:
            raise ValueError("the sealing key is the back office's 32-byte X25519 public key")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.direction != "single" and not self.zone:
            raise ValueError(f"a gate tapping {self.direction} needs its zone")
        if not (len(self.currency) == 3 and self.currency.isdigit()):
            raise ValueError("currency is ISO 4217 numeric, three digits")
        if self.first_ride_limit < 0 or self.nominal_amount < 0:
            raise ValueError("first-ride limit and nominal amount are >= 0")


def scheme_of(aid: bytes) -> str:
    """``visa`` / ``mastercard`` from the AID's RID (ISO 7816-5), else ``other``."""
    return _SCHEMES.get(aid[:5].hex().upper(), "other")


def kernel_accepts(result: TransactionResult) -> bool:
    """Rule 1 of the module docstring: the kernel completed with ODA passed, or with
    an online cryptogram present, and ODA did not fail; and the result carries what
    the back office's deferred authorisation needs (field 55 data and track 2)."""
    if result.outcome not in _OUTCOME_NAMES or result.oda is OdaResult.FAILED:
        return False
    if not result.authorisation_data or not result.track2:
        return False  # nothing the back office could authorise later
    if result.oda is OdaResult.PASSED:
        return True
    return result.outcome is Outcome.ONLINE_REQUEST and len(result.cryptogram) == 8


def _day(stamp: str) -> date:
    return date.fromisoformat(stamp[:10])


class TransitGate:
    """The decision and journaling of one transit gate (module docstring).

    ``journal`` is the gate's own (this object is its only writer); ``deny_list`` is
    updated by the poller thread meanwhile; ``clock`` gives aware UTC datetimes.
    """

    def __init__(
        self,
        settings: TransitSettings,
        journal: Journal,
        deny_list: DenyList,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.deny_list = deny_list
        self.clock = clock
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._opens_day: date | None = None
        self._opens: dict[str, int] = {}
        records = journal.records()
        for record in records:
            if record.get("gate_id") != settings.gate_id:
                raise ValueError(
                    f"the journal in {journal.directory} holds taps of gate "
                    f"{record.get('gate_id')!r}, not {settings.gate_id!r}"
                )
        self.acknowledged(records[: journal.acknowledged])
        today = self.clock().date()
        self._opens_day = today
        for record in records:
            if record["decision"] == "open" and _day(record["time"]) == today:
                ref = record["card_reference"]
                self._opens[ref] = self._opens.get(ref, 0) + 1

    def __repr__(self) -> str:
        return f"TransitGate({self.settings.gate_id!r}, {len(self._known)} cards known)"

    # -- what the back office knows -----------------------------------------------------

    def acknowledged(self, records: Iterable[Mapping[str, Any]]) -> None:
        """The back office holds ``records`` (called by the uploader after a 200): the
        cards of their open taps are known from now on."""
        with self._lock:
            for record in records:
                if record.get("decision") == "open":
                    self._known.add(record["card_reference"])

    def known(self, card_reference: str) -> bool:
        """Whether the back office has an open tap of this card."""
        return card_reference in self._known

    def opens_today(self, card_reference: str) -> int:
        """Open taps of this card at this gate on the current travel day."""
        with self._lock:
            return (
                self._opens.get(card_reference, 0) if self._opens_day == self.clock().date() else 0
            )

    # -- the decision ---------------------------------------------------------------------

    def decide(self, result: TransactionResult) -> GateVerdict:
        """Decide on one kernel result, journal it (``fsync``) and return the verdict;
        the caller signals only after this returns. ``OSError`` from the journal goes
        up: the tap is not recorded, so the gate must not open."""
        now = self.clock()
        reference = result.card_reference
        if result.outcome is Outcome.TRY_AGAIN or not reference:
            why = "; ".join(result.reasons) or result.outcome.label
            if result.outcome is Outcome.TRY_AGAIN:
                return GateVerdict("retry", "try_again", result.masked_pan, reference, detail=why)
            return GateVerdict("deny", "card_error", result.masked_pan, reference, detail=why)
        if result.outcome not in _OUTCOME_NAMES:
            why = "; ".join(result.reasons) or result.outcome.label
            return GateVerdict("deny", "card_error", result.masked_pan, reference, detail=why)
        reason: str | None = None
        if not kernel_accepts(result):
            reason = "card_error"
        elif reference in self.deny_list:
            reason = "deny_list"
        elif not self.known(reference) and self.opens_today(reference) >= (
            self.settings.first_ride_limit
        ):
            reason = "first_ride_limit"
        record = self._journal(result, now, reason)
        if reason is None:
            with self._lock:
                if self._opens_day != now.date():
                    self._opens_day, self._opens = now.date(), {}
                self._opens[reference] = self._opens.get(reference, 0) + 1
        return GateVerdict(
            "deny" if reason else "open", reason, result.masked_pan, reference, record=record
        )

    def tap_object(
        self, result: TransactionResult, seq: int, when: datetime, reason: str | None
    ) -> dict[str, Any]:
        """The TAP object (module docstring) of journal sequence number ``seq``."""
        s = self.settings
        tap_id = f"{s.gate_id}:{seq}"
        sealed = None
        if reason is None and result.track2:
            sealed = seal(s.seal_key, result.track2, context=tap_id.encode()).hex().upper()
        return {
            "tap_id": tap_id,
            "gate_id": s.gate_id,
            "time": utc_stamp(when),
            "mode": "transit",
            "direction": s.direction,
            "zone": s.zone,
            "card_reference": result.card_reference,
            "masked_pan": result.masked_pan,
            "token": result.token,
            "scheme": scheme_of(result.aid),
            "aid": result.aid.hex().upper(),
            "outcome": _OUTCOME_NAMES[result.outcome],
            "oda": _ODA_NAMES[result.oda],
            "decision": "deny" if reason else "open",
            "deny_reason": reason,
            "amount": s.nominal_amount,
            "currency": s.currency,
            "icc_data": result.authorisation_data.hex().upper() or None,
            "track2_sealed": sealed,
        }

    def _journal(
        self, result: TransactionResult, when: datetime, reason: str | None
    ) -> dict[str, Any]:
        seq = len(self.journal) + 1
        tap = self.tap_object(result, seq, when, reason)
        stored = self.journal.append(tap)
        if stored["seq"] != seq:  # another writer: the tap id would lie
            raise RuntimeError(f"journal {self.journal.directory} has another writer")
        return stored


# --- the gate at work -------------------------------------------------------------------


class TransitLane:
    """A transit gate at work: its state under ``home`` (the journal, the deny list and
    the decision of :class:`TransitGate`) and, with a back office, the store-and-forward
    threads of :mod:`terminal.apps.uploader` (HTTP) or :mod:`terminal.apps.stream`
    (NATS JetStream).

    ``backoffice`` is two clients of the back office, one for the uploads and one for
    the deny list (each is used by its own thread); ``nats`` the NATS server instead
    (taps published, the deny list followed); ``notice`` receives the messages
    for the operator. Opening raises :class:`~terminal.apps.journal.JournalError`,
    :class:`~terminal.apps.denylist.DenyListError`, ``ValueError`` (a journal of
    another gate) or ``OSError``, with nothing left open. The caller runs the taps
    (:func:`terminal.apps.gate.run_gate` with :meth:`transaction`, :attr:`gate`'s
    ``decide`` and :meth:`tapped`) between :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        settings: TransitSettings,
        home: Path | str,
        *,
        backoffice: tuple[BackOfficeClient, BackOfficeClient] | None = None,
        nats: JetStreamLink | None = None,
        deny_refresh: float = 60.0,
        notice: Callable[[str], None] = lambda text: None,
    ) -> None:
        if backoffice is not None and nats is not None:
            raise ValueError("a gate uploads over HTTP or NATS, not both")
        state = Path(home)
        self.journal = Journal(state / "journal")
        try:
            self.deny_list = DenyList(state / "denylist")
            self.gate = TransitGate(settings, self.journal, self.deny_list)
        except BaseException:
            self.journal.close()
            raise
        self.clients = backoffice
        self.nats = nats
        self.deny_refresh = deny_refresh
        self.notice = notice
        self.uploader: Uploader | TapPublisher | None = None
        self.poller: DenyListPoller | DenyListFollower | None = None
        self._currency = currency_by_code(settings.currency).code
        self._started = False

    def __repr__(self) -> str:
        link = "HTTP" if self.clients else "NATS" if self.nats else "no"
        return f"TransitLane({self.gate!r}, back office {link})"

    def transaction(self) -> Transaction:
        """What the kernel runs on every tap: the nominal amount (9F02) in the gate's
        currency (5F2A)."""
        return Transaction(self.gate.settings.nominal_amount, currency=self._currency)

    def start(self) -> None:
        """With a back office: refresh the deny list once (the newest list before the
        first tap, if the back office answers now), then start the uploader and the
        deny-list poller; with NATS, start the publisher and the deny-list follower."""
        self._started = True
        if self.nats is not None:
            self.uploader = TapPublisher(
                self.journal, self.nats, on_acknowledged=self.gate.acknowledged
            )
            self.poller = DenyListFollower(self.deny_list, self.nats)
            self.uploader.start()
            self.poller.start()
            return
        if self.clients is None:
            return
        uploads, deny = self.clients
        self.uploader = Uploader(self.journal, uploads, on_acknowledged=self.gate.acknowledged)
        self.poller = DenyListPoller(self.deny_list, deny, interval=self.deny_refresh)
        try:
            self.poller.poll_once()
        except (BackOfficeLinkError, DenyListError) as exc:
            self.notice(f"deny list not refreshed ({exc}): the gate uses its copy on disk")
        self.uploader.start()
        self.poller.start()

    def tapped(self, verdict: GateVerdict) -> None:
        """A tap was decided (and journaled): upload now rather than at the next poll."""
        if self.uploader is not None:
            self.uploader.notify()

    def close(self, drain: float = 5.0) -> None:
        """Wait up to ``drain`` s for the uploads to finish, stop the threads, close the
        connections and the journal; once started, the notice says how many taps are
        left to upload (they stay in the journal for the next run)."""
        try:
            if self.uploader is not None:
                if drain > 0 and not self.uploader.drain(drain):
                    self.notice(f"back office: {self.uploader.status}")
                self.uploader.stop()
            if self.poller is not None:
                self.poller.stop()
            for client in self.clients or ():
                client.close()
            left = len(self.journal.pending()) if self._started else 0
            if left:
                self.notice(f"{left} taps not uploaded yet: kept in {self.journal.directory}")
        finally:
            self.journal.close()
