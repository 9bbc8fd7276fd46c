"""The back office's work: riders, deferred authorisation, trips and fares, aggregation,
the deny list and debt recovery, each a stage of its own module, at the issuer through
:class:`hostlink.HostClient` (the terminal-issuer contract of :mod:`emvwire.contract`)
as a transit terminal (MCC 4111).

One :meth:`Engine.run` (a *pass*) runs the stages in order:

1. **Riders** (:class:`~backoffice.engine.riders.Riders`): each new open tap's card
   reference maps to a card and a rider (new ones are made); each tap joins its
   rider's open aggregation for the tap's travel day, or opens one whose
   **authorisation tap** it is (the rider's first open tap of that travel day, or the
   first after the previous aggregation closed). The sealed track 2 of every other tap
   is erased: only the authorisation needs it.
2. **Deferred authorisation** (:class:`~backoffice.engine.authorisation.
   DeferredAuthorisation`): for each new aggregation, track 2 is unsealed
   (:func:`emvwire.seal.open_box`, RFC 9180 HPKE, context the tap id) just for the
   call, checked against the tap's card reference, and sent with the tap's field 55
   (nominal amount, 9F02) to the issuer with request id
   ``bo:auth:<instance>:<tap_id>``. Then the box is erased. The answer's payment
   account reference (PAR) joins riders: a card and a phone of one account become one
   rider, so caps count both. A decline puts every card reference of the rider on the
   deny list. No answer: the aggregation waits for the next pass (same request id; no
   time-out reversal, nobody waits at a gate: :class:`~backoffice.engine.context.
   TransitHostClient`).
3. **Trips and fares** (:class:`~backoffice.engine.pricing.Pricing`): for riders with
   no authorisation pending, taps become trips and micropayments
   (:mod:`backoffice.fares`), capped by the rider's daily and weekly totals so far.
4. **Aggregation** (:class:`~backoffice.engine.settlement.Settlement`): an open
   aggregation whose travel day ended ``close_after`` ago (or every one,
   ``close_all``) and has no tap waiting for its trip is frozen (state ``closing``,
   total = the sum of its charges) in one commit, then completed at the issuer for the
   total (request id ``bo:cap:<aggregation>``, over-capture at MCC 4111) or reversed
   when nothing is due (``bo:rev:<...>``). A crash between the issuer's answer and the
   local commit is harmless: the next pass sends the same request id with the same
   frozen total and the issuer replays its answer, so a fare is never charged twice.
5. **Debt recovery** (:class:`~backoffice.engine.recovery.DebtRecovery`): a closed
   aggregation with a declined authorisation is a debt: it is resubmitted
   (``bo:dr:<aggregation>:<n>``) at most ``debt_retry_max`` times within
   ``debt_retry_period``, every ``debt_retry_interval``; approved, the new
   authorisation is completed for the debt and the rider's cards leave the deny list
   (when no other debt remains). Refused for good: ``written_off``.

Aggregation states: ``open``, ``closing``, ``completed``, ``reversed`` (approved,
nothing due), ``void`` (declined, nothing due), ``debt``, ``recovered``,
``written_off``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from backoffice.engine.authorisation import DeferredAuthorisation
from backoffice.engine.context import (
    EngineContext,
    IssuerLike,
    PassReport,
    Progress,
    instance_id,
)
from backoffice.engine.pricing import Pricing
from backoffice.engine.recovery import DebtRecovery
from backoffice.engine.riders import Riders
from backoffice.engine.settlement import Settlement
from backoffice.fares import FareRules
from backoffice.store import Store

__all__ = ["Engine"]


class Engine:
    """One back office's engine (module docstring): its five stages on one store, fare
    rules and issuer. ``issuer`` may be ``None``: the issuer steps are skipped (what
    waits for it waits)."""

    def __init__(
        self,
        store: Store,
        rules: FareRules,
        issuer: IssuerLike | None,
        *,
        sealing_key: bytes,
        card_reference_key: bytes,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.instance = instance_id(store)
        context = EngineContext(store, rules, issuer, self.instance, progress or _silent)
        self.riders = Riders(context)
        self.authorisation = DeferredAuthorisation(
            context, sealing_key=sealing_key, card_reference_key=card_reference_key
        )
        self.pricing = Pricing(context)
        self.settlement = Settlement(context)
        self.recovery = DebtRecovery(context)

    def __repr__(self) -> str:
        return f"Engine({self.store.home.path}, instance {self.instance})"

    @classmethod
    def for_home(
        cls, store: Store, issuer: IssuerLike | None, progress: Progress | None = None
    ) -> Engine:
        """An engine with the keys and fares of the store's home."""
        home = store.home
        return cls(
            store, home.fares(), issuer, sealing_key=home.sealing_private_key(),
            card_reference_key=home.card_reference_key(), progress=progress,
        )  # fmt: skip

    def run(self, *, now: datetime | None = None, close_all: bool = False) -> PassReport:
        """One pass (module docstring). ``now`` (default the clock) decides which trips
        are incomplete and which periods are over; ``close_all`` closes every open
        aggregation now (its pending taps on become incomplete trips)."""
        now = now or datetime.now(UTC)
        report = PassReport()
        start = time.perf_counter()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("assign", lambda: self.riders.assign(report)),
            ("authorise", lambda: self.authorisation.authorise(report)),
            ("price", lambda: self.pricing.price(report, now, close_all)),
            ("close", lambda: self.settlement.close(report, now, close_all)),
            ("recover", lambda: self.recovery.recover(report, now)),
        ]
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            report.stage_seconds[name] = round(time.perf_counter() - t0, 3)
        report.seconds = round(time.perf_counter() - start, 3)
        return report


def _silent(stage: str, done: int, total: int) -> None:
    """No progress shown."""
