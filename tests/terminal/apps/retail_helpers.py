"""Helpers of the retail till's tests: a fake issuer, as :class:`hostlink.HostClient`
answers the till, keeping the issuer's records of the terminal."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from emvwire.tlv import decode_flat
from hostlink.client import HostOutcome, HostUnreachableError

__all__ = ["FakeIssuer"]


class FakeIssuer:
    """The issuer service's answers as hostlink.HostClient returns them, kept as
    the issuer's records of this terminal (GET /v1/authorisations). ``down`` makes
    every call go unanswered; ``decline`` declines the next authorisations."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.down = False
        self.decline: str | None = None
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def _new(self, **values: Any) -> dict[str, Any]:
        record = {"id": f"txn_{next(self._ids):04d}", "kind": "authorisation",
                  "captured_amount": 0, "created_at": datetime.now(UTC).isoformat(),
                  **values}  # fmt: skip
        self.records.append(record)
        return record

    def _find(self, txn: str) -> dict[str, Any]:
        return next(r for r in self.records if r["id"] == txn)

    def _check(self, what: str, key: str) -> None:
        self.calls.append((what, key))
        if self.down:
            raise HostUnreachableError

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        assert request_id
        self.calls.append(("authorise", request_id))
        if self.down:
            return HostOutcome(False, "Z3", "NO_ANSWER", request_id, answered=False)
        amount = int(decode_flat(icc_data)[0x9F02].hex())
        approved = self.decline is None
        record = self._new(request_id=request_id, amount=amount, approved=approved,
                           status="pending" if approved else "closed")  # fmt: skip
        return HostOutcome(approved, "00" if approved else "51", self.decline, request_id,
                           transaction_id=record["id"], card="476173******0010")  # fmt: skip

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        self._check("reverse", transaction_id)
        record = self._find(transaction_id)
        record["status"] = "reversed"
        return dict(record)

    def reverse_request(self, request_id: str) -> bool:
        self.calls.append(("reverse_request", request_id))
        for record in self.records:
            if record.get("request_id") == request_id:
                record["status"] = "reversed"
        return not self.down

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        self._check("complete", transaction_id)
        record = self._find(transaction_id)
        if record["status"] != "closed":
            record["status"] = "closed"
            record["captured_amount"] = record["amount"] if amount is None else amount
        return dict(record)

    def refund(
        self, authorisation_id: str, amount: int, *, request_id: str | None = None
    ) -> dict[str, Any]:
        assert request_id
        self._check("refund", request_id)
        for record in self.records:
            if record.get("request_id") == request_id:
                return dict(record)
        parent = self._find(authorisation_id)
        assert parent["captured_amount"] > 0, "refund of an uncaptured authorisation"
        return self._new(kind="refund", request_id=request_id, amount=amount, approved=True,
                         status="closed", parent=authorisation_id)  # fmt: skip

    def transactions(self, *, limit: int = 1000, status: str | None = None) -> list[dict[str, Any]]:
        self._check("list", "")
        return [dict(r) for r in reversed(self.records)][:limit]
