"""What the operator API's tests share (tests/issuer/test_operator_*.py): operators
made through the domain, requests with their credential, and the audit log read back."""

from __future__ import annotations

import itertools
import json
from typing import Any

from issuer.bootstrap import IssuerApp
from issuer.model.operators import AuditRecord
from tests.issuer.helpers import World
from tests.support.asgi import call

#: A PAN of the default Visa range (476173, 16 digits, Luhn-valid) registered in tests.
PAN = "4761739001010010"
_keys = (f"op-key-{n}" for n in itertools.count())


def operator(app: IssuerApp, *scopes: str, name: str = "Ops") -> tuple[str, str]:
    """A new operator holding ``scopes``: its id and its ``Authorization`` header."""
    made, credential = app.service.add_operator(name, scopes)
    return made.id, f"Bearer {made.id}:{credential}"


def send(
    w: World,
    method: str,
    path: str,
    auth: str,
    body: Any = None,
    key: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One request of the operator API: (status, JSON answer, headers). A POST gets a
    fresh Idempotency-Key unless ``key``; ``body`` bytes are sent as they are."""
    headers = {"authorization": auth}
    raw = b""
    if method == "POST":
        headers["idempotency-key"] = key or next(_keys)
        raw = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    answer = call(w.http, method, path, headers, raw)
    return answer.status, json.loads(answer.body), answer.headers


def audit(app: IssuerApp, **filters: str) -> list[AuditRecord]:
    """Every audit record (by ``actor`` or ``object_id``), newest first."""
    page = app.service.audit_page(limit=1000, **filters)
    assert not page.has_more
    return page.data
