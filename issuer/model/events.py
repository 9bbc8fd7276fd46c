"""Events (the outbox of every state change) and webhook endpoints, as values.

An :class:`Event` says that an object changed: its ``type`` from the closed set
:class:`EventType` (Stripe's ``noun.verb`` style: ``authorisation.approved``), the
object as it is after the change (masked data only: the ``to_json`` of the record,
never a PAN, track 2, key or PIN) and, for an update, the attributes it had before
(``previous_attributes``, as Stripe's events carry them). ``sequence`` numbers the
events of one object from 1 in the order they were committed: a receiver orders by it.

A :class:`WebhookEndpoint` is a URL that receives the events of the types it
subscribes to (or ``*``), optionally only those of one terminal (the merchant's
notification); its secrets are sealed like PANs and never part of these values.
A :class:`Delivery` is one event for one endpoint: its attempts and outcome.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ALL_EVENTS",
    "EVENT_TYPES",
    "Delivery",
    "DeliveryStatus",
    "EndpointStatus",
    "Event",
    "EventType",
    "WebhookEndpoint",
]


class EventType(enum.StrEnum):
    """Every event type (closed set; README "Events and webhooks").

    An authorisation's request and its decision are one transaction, so one event
    (``approved`` or ``declined``) stands for both, as Stripe's
    ``issuing_authorization.created`` carries ``approved``. A resubmission (debt
    recovery) is a new authorisation and has the same two."""

    AUTHORISATION_APPROVED = "authorisation.approved"
    AUTHORISATION_DECLINED = "authorisation.declined"
    #: The merchant's (or the terminal's time-out) reversal released the hold.
    AUTHORISATION_REVERSED = "authorisation.reversed"
    #: Completion: captured wholly or in part, the rest released (status ``closed``).
    AUTHORISATION_CAPTURED = "authorisation.captured"
    #: The issuer released an uncaptured hold past its ``expires_at`` (not a reversal).
    AUTHORISATION_EXPIRED = "authorisation.expired"
    #: An incremental authorisation raised a pending hold (written by that operation
    #: with :func:`issuer.domain.events.authorisation_changed`).
    AUTHORISATION_INCREMENTED = "authorisation.incremented"
    REFUND_CREATED = "refund.created"
    CARD_STATUS_CHANGED = "card.status_changed"
    TOKEN_STATUS_CHANGED = "token.status_changed"  # noqa: S105 - not a secret
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_CREDITED = "account.credited"
    ACCOUNT_STATUS_CHANGED = "account.status_changed"


#: The type names, in declaration order.
EVENT_TYPES: Final = tuple(t.value for t in EventType)
#: An endpoint's subscription to every type.
ALL_EVENTS: Final = "*"


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the outbox (module docstring). ``data`` is the JSON text of
    ``{"object": ..., "previous_attributes": ...}``, written once with the change."""

    id: str
    type: EventType
    created_at: str
    object_type: str
    object_id: str
    data: str
    sequence: int = 0
    terminal_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the ``data`` text parsed)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "created_at": self.created_at,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "sequence": self.sequence,
            "terminal": self.terminal_id,
            "data": json.loads(self.data),
        }


class EndpointStatus(enum.StrEnum):
    """An endpoint receives events (enabled) or not for now (disabled)."""

    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A webhook endpoint (module docstring). ``events`` holds type names or ``*``;
    ``terminal_id`` limits it to one terminal's authorisations and refunds;
    ``ca_file`` is the CA that verifies its TLS certificate (``None``: the system's
    trust store). The sealed secrets stay in the ledger."""

    id: str
    url: str
    events: tuple[str, ...]
    status: EndpointStatus
    created_at: str
    description: str = ""
    terminal_id: str | None = None
    ca_file: str | None = None
    #: Until when the secret before the last rotation still signs (``None``: none does).
    previous_secret_until: str | None = None

    def subscribes(self, event_type: str, terminal_id: str | None) -> bool:
        """Whether an event of this type (and terminal) is for this endpoint."""
        if self.terminal_id is not None and terminal_id != self.terminal_id:
            return False
        return ALL_EVENTS in self.events or event_type in self.events

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never a secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "terminal": self.terminal_id,
            "status": self.status.value,
            "description": self.description,
            "ca_file": self.ca_file,
            "previous_secret_until": self.previous_secret_until,
            "created_at": self.created_at,
        }


class DeliveryStatus(enum.StrEnum):
    """A delivery is pending (to be sent, or sent again), delivered (a 2xx answer) or
    failed (given up after the retry period)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint: attempts so far, when the next is due, the last
    answer (HTTP status) or error, when it was delivered."""

    id: int
    event_id: str
    endpoint_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str
    created_at: str
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "event": self.event_id,
            "endpoint": self.endpoint_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at
            if self.status is DeliveryStatus.PENDING
            else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
            "created_at": self.created_at,
        }
