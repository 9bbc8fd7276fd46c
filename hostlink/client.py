"""An HTTP client of the issuer's authorisation service (issuer/service/openapi.py).

Standard library only (``http.client``): one keep-alive connection per client,
re-opened after a failure. A request that gets no answer within ``timeout`` (or a
503) is sent again with the **same** request id, at most ``retries`` more times; the
issuer answers a retry with its stored decision and changes nothing. When all
attempts fail, the client sends a reversal by request id (``POST /v1/reversals``)
and reports the transaction declined with ``Z3`` ("unable to go online, offline
declined", EMV Book 4 §A6 authorisation response codes).
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = [
    "NO_ANSWER_CODE",
    "UNREACHABLE",
    "HostClient",
    "HostError",
    "HostLinkError",
    "HostOutcome",
    "HostRefusedError",
    "HostUnreachableError",
]

#: Authorisation response code of a terminal that could not go online (Book 4 §A6).
NO_ANSWER_CODE: Final = "Z3"


class HostLinkError(Exception):
    """Base of every error of the host link."""


class HostError(HostLinkError):
    """The issuer refused the request itself (not a decline): bad request, conflict."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"issuer answered {status} {code}: {message}")


class HostRefusedError(HostError):
    """The issuer does not know this terminal or its key (401)."""


class HostUnreachableError(HostLinkError):
    """No answer from the issuer: time-out, broken connection or 503, after the
    retries. Nothing is known to have changed; the request may be sent again with its
    request id."""


#: What an application catches for "the issuer did not answer" (the client's own
#: error, and a socket error from outside its exchange).
UNREACHABLE: Final = (HostUnreachableError, OSError)


@dataclass(frozen=True, slots=True)
class HostOutcome:
    """The final outcome of an online authorisation."""

    approved: bool
    response_code: str
    reason: str | None
    request_id: str
    transaction_id: str = ""
    arpc: bytes = b""
    issuer_authentication_data: bytes = field(default=b"", repr=False)
    card: str = ""
    attempts: int = 1
    reversed: bool = False
    answered: bool = True
    #: Payment account reference of the card or token (EMVCo PAR), when the issuer
    #: answers it: a card and the phone tokens of one account share it.
    par: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the card masked as the issuer masked it)."""
        return {
            "approved": self.approved,
            "response_code": self.response_code,
            "reason": self.reason,
            "request_id": self.request_id,
            "transaction_id": self.transaction_id,
            "arpc": self.arpc.hex().upper(),
            "issuer_authentication_data": self.issuer_authentication_data.hex().upper(),
            "card": self.card,
            "attempts": self.attempts,
            "reversed": self.reversed,
            "answered": self.answered,
            "par": self.par,
        }


class HostClient:
    """The issuer service at ``url`` for terminal ``terminal_id`` (module docstring)."""

    def __init__(
        self,
        url: str,
        terminal_id: str,
        terminal_key: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the issuer URL is http(s)://HOST[:PORT]")
        if not terminal_id or not terminal_key or ":" in terminal_id:
            raise ValueError("a terminal id and key are needed")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._auth = f"Bearer {terminal_id}:{terminal_key}"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:
        return f"HostClient({self._host}:{self._port})"

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def request(
        self, method: str, path: str, body: dict[str, Any] | None, key: str | None
    ) -> tuple[int, Any]:
        """One exchange: (status, JSON). :class:`HostUnreachableError` on a time-out or a
        broken connection (the connection is dropped)."""
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        conn = self._connection()
        try:
            conn.request(method, path, body=data if body is not None else None, headers=headers)
            answer = conn.getresponse()
            raw = answer.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise HostUnreachableError from None
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        return answer.status, payload

    def _call(self, method: str, path: str, body: dict[str, Any] | None, key: str) -> Any:
        """A request with retries (same key); :class:`HostUnreachableError` if none answered."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            try:
                status, payload = self.request(method, path, body, key)
            except HostUnreachableError:
                continue
            if status == 503:
                continue
            self._attempts = attempt + 1
            if status >= 400:
                error = payload.get("error", {}) if isinstance(payload, dict) else {}
                cls = HostRefusedError if status == 401 else HostError
                raise cls(status, str(error.get("code", "")), str(error.get("message", "")))
            return payload
        self._attempts = self.retries + 1
        raise HostUnreachableError

    # -- operations --------------------------------------------------------------------

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        """Authorise online (module docstring): the final outcome."""
        request_id = request_id or "req_" + secrets.token_hex(12)
        body = {"icc_data": icc_data.hex().upper(), "track2": track2.hex().upper()}
        try:
            answer = self._call("POST", "/v1/authorisations", body, request_id)
        except HostUnreachableError:
            attempts = self._attempts
            reversed_ = self.reverse_request(request_id)
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id,
                attempts=attempts, reversed=reversed_, answered=False,
            )  # fmt: skip
        return self._outcome(answer, request_id)

    def _outcome(self, answer: Any, request_id: str) -> HostOutcome:
        """The outcome of an answered decision (authorisation or resubmission: the
        OpenAPI schema Decision); ARPC and issuer authentication data when present."""
        return HostOutcome(
            approved=bool(answer.get("approved")),
            response_code=str(answer.get("response_code", "")),
            reason=answer.get("reason"),
            request_id=request_id,
            transaction_id=str(answer.get("id", "")),
            arpc=bytes.fromhex(answer.get("arpc", "") or ""),
            issuer_authentication_data=bytes.fromhex(
                answer.get("issuer_authentication_data", "") or ""
            ),
            card=str(answer.get("card", "")),
            attempts=self._attempts,
            par=answer.get("par") or None,
        )

    def reverse_request(self, request_id: str) -> bool:
        """Time-out reversal of a request id; whether the issuer confirmed it."""
        try:
            self._call(
                "POST", "/v1/reversals", {"request_id": request_id}, f"reversal:{request_id}"
            )
        except (HostUnreachableError, HostError):
            return False
        return True

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Reverse an authorisation (releases its hold once)."""
        key = request_id or "rev_" + secrets.token_hex(12)
        result: dict[str, Any] = self._call(
            "POST", f"/v1/authorisations/{transaction_id}/reversal", {}, key
        )
        return result

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Capture an authorisation wholly (``amount=None``) or in part."""
        key = request_id or "cap_" + secrets.token_hex(12)
        body = {} if amount is None else {"amount": amount}
        result: dict[str, Any] = self._call(
            "POST", f"/v1/authorisations/{transaction_id}/complete", body, key
        )
        return result

    def refund(
        self, authorisation_id: str, amount: int, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Refund ``amount`` (minor units) of a captured authorisation of this terminal
        (``POST /v1/refunds``); the refund record. Retried with the same request id."""
        key = request_id or "rfd_" + secrets.token_hex(12)
        body = {"authorisation": authorisation_id, "amount": amount}
        result: dict[str, Any] = self._call("POST", "/v1/refunds", body, key)
        return result

    def transactions(self, *, limit: int = 1000, status: str | None = None) -> list[dict[str, Any]]:
        """This terminal's transactions at the issuer, newest first
        (``GET /v1/authorisations``; at most ``limit``, 1-1000)."""
        query = f"?limit={int(limit)}" + (f"&status={status}" if status else "")
        answer = self._call("GET", "/v1/authorisations" + query, None, "list")
        data = answer.get("data", []) if isinstance(answer, dict) else []
        return [dict(item) for item in data if isinstance(item, dict)]

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        """One transaction of this terminal (``GET /v1/authorisations/{id}``)."""
        result: dict[str, Any] = self._call(
            "GET", f"/v1/authorisations/{transaction_id}", None, "get"
        )
        return result

    _attempts: int = 0

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        """Debt recovery (``POST /v1/authorisations/{id}/resubmit``): the issuer decides
        again on a declined transit authorisation without new chip data (shared/notes/
        emv.md "Open-loop transit": at most 6 times in 14 days). The answer is a new
        authorisation; a request that gets no answer is not reversed (the caller
        retries with the same ``request_id``): ``answered`` false, code ``Z3``.
        :class:`HostError` when the issuer refuses (409 ``not_resubmittable``)."""
        request_id = request_id or "rsb_" + secrets.token_hex(12)
        body = {} if amount is None else {"amount": amount}
        try:
            answer = self._call(
                "POST", f"/v1/authorisations/{transaction_id}/resubmit", body, request_id
            )
        except HostUnreachableError:
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id, attempts=self._attempts,
                answered=False,
            )  # fmt: skip
        return self._outcome(answer, request_id)
