"""Who is acting on the issuer, and how what they do is written to the audit log.

Every change made through :class:`~issuer.domain.service.IssuerService` by someone
known (an :class:`Acting`: an operator of the API, or the OS user running the CLI) is
written to the append-only audit log (:mod:`issuer.ledger.schema`, migration 8) in the
transaction of the change itself (:meth:`Acting.record`): the record exists if and
only if the change does. For a request of the operator API the same transaction
records its ``Idempotency-Key`` (:class:`RequestKey`), so a retry finds the change it
made, never a half. What is refused or fails is recorded on its own (the change, if
any, rolled back): :meth:`~issuer.domain.service.IssuerService.record_outcome`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from issuer.model.entities import new_id, utc_now
from issuer.model.operators import AuditRecord, masked_details

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = ["Acting", "RequestKey", "cli_actor"]


def cli_actor() -> str:
    """The actor of a CLI command: ``cli:<the OS user's name>`` (its uid if it has no
    name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An operator POST's ``Idempotency-Key``, the hash of its request and the status
    its answer has: recorded with the change it makes."""

    operator_id: str
    key: str
    request_hash: str
    status: int


@dataclass(frozen=True, slots=True)
class Acting:
    """Who acts (``operator:op_...``, ``cli:<user>``), and the request key of an
    operator API request."""

    actor: str
    request: RequestKey | None = None

    def record(
        self,
        uow: UnitOfWork,
        action: str,
        object_type: str,
        object_id: str,
        details: Mapping[str, Any] | None = None,
        outcome: str = "succeeded",
    ) -> AuditRecord:
        """Append the audit record of ``action`` in ``uow``'s transaction, and the
        request key of a succeeded request (module docstring)."""
        record = AuditRecord(
            new_id("aud"),
            utc_now(),
            self.actor,
            action,
            object_type,
            object_id,
            masked_details(details),
            outcome,
        )
        uow.audit.append(record)
        if self.request is not None and outcome == "succeeded":
            r = self.request
            uow.operator_requests.add(
                r.operator_id, r.key, r.request_hash, r.status, object_type, object_id
            )
        return record
