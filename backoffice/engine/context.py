"""What the stages of an engine pass share: the back office's store, fare rules,
issuer and instance id (:class:`EngineContext`, :class:`Stage`), the pass's report
(:class:`PassReport`) and the issuer as the engine uses it (:class:`IssuerLike`,
:class:`TransitHostClient`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from backoffice.fares import FareRules
from backoffice.store import Store
from hostlink.client import HostClient, HostOutcome

__all__ = [
    "ANSWER_BATCH",
    "LOG_CALL",
    "EngineContext",
    "IssuerLike",
    "PassReport",
    "Progress",
    "Stage",
    "TransitHostClient",
    "instance_id",
]

#: Issuer answers recorded per commit (a crash before the commit is replayed safely).
ANSWER_BATCH: Final = 500
#: One call to the issuer into ``authorisations`` (its request id once: a replayed
#: answer overwrites the row).
LOG_CALL: Final = (
    "INSERT INTO authorisations (request_id, kind, aggregation_id, transaction_id, approved, "
    "response_code, reason, amount, at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (request_id) "
    "DO UPDATE SET kind = excluded.kind, aggregation_id = excluded.aggregation_id, "
    "transaction_id = excluded.transaction_id, approved = excluded.approved, "
    "response_code = excluded.response_code, reason = excluded.reason, "
    "amount = excluded.amount, at = excluded.at"
)
#: ``progress(stage, done, total)``: how far a long stage is (for a person watching).
Progress = Callable[[str, int, int], None]


class IssuerLike(Protocol):
    """What the engine needs of the issuer (:class:`hostlink.HostClient`)."""

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        """Authorise field 55 + track 2."""
        ...

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Capture."""
        ...

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Release the hold."""
        ...

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        """Debt recovery."""
        ...


class TransitHostClient(HostClient):
    """The host client as the back office uses it: a deferred authorisation that got no
    answer is not reversed (the next pass retries it with the same request id, and
    the issuer answers once)."""

    def reverse_request(self, request_id: str) -> bool:
        """No time-out reversal (class docstring)."""
        return False


@dataclass
class PassReport:
    """What one pass did (counts; amounts in minor units)."""

    taps: int = 0
    riders_new: int = 0
    aggregations_opened: int = 0
    authorised: int = 0
    declined: int = 0
    auth_failed: int = 0
    auth_waiting: int = 0
    riders_merged: int = 0
    trips: int = 0
    fares_charged: int = 0
    taps_waiting: int = 0
    closed: int = 0
    completed: int = 0
    captured: int = 0
    reversed: int = 0
    debts: int = 0
    recovered: int = 0
    written_off: int = 0
    deny_added: int = 0
    deny_removed: int = 0
    issuer_calls: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def instance_id(store: Store) -> str:
    """This back office's instance id (random, made once): it keeps the request ids of
    two back office homes on one issuer terminal apart."""
    conn = store.conn
    row = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
    if row:
        return str(row[0])
    with store.write() as w:
        w.execute(
            "INSERT INTO meta VALUES ('instance', ?) ON CONFLICT (key) DO NOTHING",
            (secrets.token_hex(4),),
        )
    return str(conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0])


@dataclass(frozen=True, slots=True)
class EngineContext:
    """What every stage of one engine works on: the back office's ``store``, fare
    ``rules`` and ``issuer`` (``None``: the issuer steps are skipped and what waits for
    it waits); ``instance`` keeps the request ids of two back office homes on one
    issuer terminal apart (:func:`instance_id`); ``progress`` reports on long stages."""

    store: Store
    rules: FareRules
    issuer: IssuerLike | None
    instance: str
    progress: Progress


class Stage:
    """A stage of the pass, on the engine's :class:`EngineContext` (its fields are the
    stage's attributes)."""

    def __init__(self, context: EngineContext) -> None:
        self.store = context.store
        self.rules = context.rules
        self.issuer = context.issuer
        self.instance = context.instance
        self.progress = context.progress

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store.home.path}, instance {self.instance})"
