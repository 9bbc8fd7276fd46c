"""Events: every state change written as an event in the transaction of the change
(the outbox, :mod:`issuer.ledger.schema` migration 7), and what operators do with
them (list, show, resend).

The domain emits them where the changes happen: the authorisation's write phase
(:mod:`issuer.domain.authorise`: approved or declined), the operations after it
(:mod:`issuer.domain.clearing` and :mod:`issuer.domain.funds`: reversed, captured,
expired, refund created, a resubmission's decision) and the operator's changes
(:mod:`issuer.domain.service`: account created, credited, closed; card and token
status). Each event carries its object as the record's ``to_json`` after the change
(masked data only) and, for an update, ``previous_attributes`` (Stripe's event
shape); :class:`~issuer.model.events.EventType` is the closed set of types.

An event is for webhook endpoints (:mod:`issuer.domain.webhooks`) to receive:
:mod:`issuer.domain.delivery` makes and sends its deliveries.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from issuer.errors import InvalidStateError, ValidationError
from issuer.model.entities import (
    Account,
    Authorisation,
    AuthorisationKind,
    Card,
    Token,
    new_id,
    utc_now,
)
from issuer.model.events import (
    EVENT_TYPES,
    Delivery,
    EndpointStatus,
    Event,
    EventType,
)

if TYPE_CHECKING:
    from issuer.domain.audit import Acting
    from issuer.ledger.repository import Ledger, UnitOfWork

__all__ = [
    "EventPage",
    "Events",
    "account_created",
    "account_credited",
    "account_status_changed",
    "authorisation_changed",
    "authorisation_decided",
    "card_status_changed",
    "emit",
    "refund_created",
    "token_status_changed",
]

_encode = msgspec.json.Encoder().encode


def emit(
    uow: UnitOfWork,
    event_type: EventType,
    object_type: str,
    obj: dict[str, Any],
    *,
    first: bool = False,
    terminal_id: str | None = None,
    previous: dict[str, Any] | None = None,
) -> Event:
    """Write an event of ``obj`` (its ``to_json``: masked data only) in ``uow``, the
    transaction of the change. ``first``: the object's first event (a new record:
    numbered 1 and queued for the transaction's one INSERT of events); otherwise it
    is numbered after the object's last. ``previous``: the attributes the object had
    before the change."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    event = Event(
        new_id("evt"), event_type, utc_now(), object_type, str(obj["id"]),
        _encode(data).decode(), 1 if first else 0, terminal_id,
    )  # fmt: skip
    uow.events.add(event)
    return event


def authorisation_decided(uow: UnitOfWork, record: Authorisation) -> Event:
    """``authorisation.approved`` or ``.declined`` of a new authorisation record."""
    kind = EventType.AUTHORISATION_APPROVED if record.approved else EventType.AUTHORISATION_DECLINED
    return emit(
        uow, kind, "authorisation", record.to_json(), first=True, terminal_id=record.terminal_id
    )


def authorisation_changed(
    uow: UnitOfWork, record: Authorisation, event_type: EventType, previous: dict[str, Any]
) -> Event:
    """An authorisation reversed, captured, expired or incremented: its record after
    the change, and what changed as it was before (``{"status": "pending"}``; an
    incremental authorisation gives ``{"amount": ..., "held_amount": ...}``)."""
    return emit(
        uow, event_type, "authorisation", record.to_json(), terminal_id=record.terminal_id,
        previous=previous,
    )  # fmt: skip


def refund_created(uow: UnitOfWork, record: Authorisation) -> Event:
    """``refund.created`` of a new refund record (its ``parent`` the authorisation)."""
    assert record.kind is AuthorisationKind.REFUND
    return emit(
        uow, EventType.REFUND_CREATED, "refund", record.to_json(), first=True,
        terminal_id=record.terminal_id,
    )  # fmt: skip


def card_status_changed(uow: UnitOfWork, card: Card, previous_status: str) -> Event:
    """``card.status_changed`` (the card after the change; its PAN masked)."""
    return emit(
        uow, EventType.CARD_STATUS_CHANGED, "card", card.to_json(),
        previous={"status": previous_status},
    )  # fmt: skip


def token_status_changed(uow: UnitOfWork, token: Token, previous_status: str) -> Event:
    """``token.status_changed`` (the token after the change; its number masked)."""
    return emit(
        uow, EventType.TOKEN_STATUS_CHANGED, "token", token.to_json(),
        previous={"status": previous_status},
    )  # fmt: skip


def account_created(uow: UnitOfWork, account: Account) -> Event:
    """``account.created``."""
    return emit(uow, EventType.ACCOUNT_CREATED, "account", account.to_json(), first=True)


def account_credited(uow: UnitOfWork, account: Account, previous_balance: int) -> Event:
    """``account.credited`` (the account after the credit)."""
    return emit(
        uow, EventType.ACCOUNT_CREDITED, "account", account.to_json(),
        previous={"balance": previous_balance},
    )  # fmt: skip


def account_status_changed(uow: UnitOfWork, account: Account, previous_status: str) -> Event:
    """``account.status_changed``."""
    return emit(
        uow, EventType.ACCOUNT_STATUS_CHANGED, "account", account.to_json(),
        previous={"status": previous_status},
    )  # fmt: skip


def check_event_type(name: str) -> str:
    """``name`` if it is an event type, else :class:`ValidationError` listing them."""
    if name not in EVENT_TYPES:
        raise ValidationError(f"no event type {name!r}; the types: {', '.join(EVENT_TYPES)}")
    return name


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of events, newest first, and whether older ones follow (``starting_after``
    the last id for the next page)."""

    events: list[Event]
    has_more: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the operator API's list shape)."""
        return {"data": [e.to_json() for e in self.events], "has_more": self.has_more}


class Events:
    """What operators do with events (the CLI's ``issuer events`` and the operator
    API's ``/v1/issuing/events``): list, show with deliveries, resend (audited in its
    transaction with ``acting``: :mod:`issuer.domain.audit`)."""

    def __init__(self, ledger: Ledger, acting: Acting | None = None) -> None:
        self.ledger = ledger
        self.acting = acting

    def list(
        self,
        *,
        event_type: str | None = None,
        object_id: str | None = None,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> EventPage:
        """Events newest first, of one type or object if given (cursor pagination:
        ``limit`` 1 to 1000, ``starting_after`` an event id)."""
        if event_type is not None:
            check_event_type(event_type)
        if not 1 <= limit <= 1000:
            raise ValidationError("a limit is 1 to 1000")
        with self.ledger.unit_of_work(write=False) as uow:
            found, more = uow.events.list(
                type=event_type, object_id=object_id, limit=limit, starting_after=starting_after
            )
        return EventPage(found, more)

    def get(self, event_id: str) -> tuple[Event, builtins.list[Delivery]]:
        """One event and its deliveries."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.events.get(event_id), uow.webhooks.deliveries(event_id)

    def resend(self, event_id: str, endpoint_id: str | None = None) -> builtins.list[str]:
        """Deliver an event again, due now: to ``endpoint_id`` (enabled; whatever it
        subscribes to), or to every enabled endpoint that subscribes to it. The
        endpoint ids; :class:`InvalidStateError` if there is none."""
        now = utc_now()
        with self.ledger.unit_of_work() as uow:
            event = uow.events.locate(event_id)
            if endpoint_id is not None:
                endpoint = uow.webhooks.get(endpoint_id)
                if endpoint.status is not EndpointStatus.ENABLED:
                    raise InvalidStateError(f"webhook endpoint {endpoint_id} is disabled")
                targets = [endpoint.id]
            else:
                targets = [
                    e.id
                    for e in uow.webhooks.list()
                    if e.status is EndpointStatus.ENABLED
                    and e.subscribes(event.type, event.terminal_id)
                ]
            if not targets:
                raise InvalidStateError(f"no enabled webhook endpoint subscribes to {event_id}")
            for target in targets:
                uow.webhooks.schedule(event, target, now)
            if self.acting is not None:
                self.acting.record(uow, "event.resend", "event", event.id, {"endpoints": targets})
            uow.commit()
        return targets
