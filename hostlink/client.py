"""An HTTPS client of the issuer's authorisation service (issuer/service/openapi.py).

Its requests and the answers it reads are the terminal-issuer contract's messages
(:mod:`emvwire.contract`). One keep-alive connection per client (``http.client``),
re-opened after a failure. The connection is TLS (:mod:`emvwire.tls`: TLS 1.2 or 1.3,
the issuer's certificate verified against the configured CA and host name, the
terminal's client certificate presented); every request still carries the bearer
credential ``Authorization: Bearer <terminal id>:<credential>``: the credential names
the terminal, its certificate proves it. An ``http://`` URL is refused unless the
client is told it is local development (:data:`emvwire.tls.DEV_PLAIN_HTTP`).

A request that gets no answer within ``timeout`` (or a 503) is sent again with the
**same** request id, at most ``retries`` more times; the issuer answers a retry with
its stored decision and changes nothing. When all attempts fail, the client sends a
reversal by request id (``POST /v1/reversals``) and reports the transaction declined
with :data:`~emvwire.contract.NO_ANSWER_CODE` (``Z3``, "unable to go online, offline
declined", EMV Book 4 §A6 authorisation response codes). An answer that is not the
contract's message is no answer: the issuer's decision cannot be known from it.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from emvwire import contract
from emvwire.contract import NO_ANSWER_CODE
from emvwire.tls import REUSE_WITHIN, ClientTls, KeptConnection

__all__ = [
    "UNREACHABLE",
    "HostClient",
    "HostError",
    "HostLinkError",
    "HostOutcome",
    "HostRefusedError",
    "HostTlsError",
    "HostUnreachableError",
]

M = TypeVar("M")

log = logging.getLogger(__name__)


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
    """No answer from the issuer: time-out, broken connection or 503 after the
    retries, or an answer that is not the contract's. Nothing is known to have
    changed; the request may be sent again with its request id."""


class HostTlsError(HostUnreachableError):
    """The TLS handshake with the issuer failed: its certificate is not one the
    configured CA vouches for, or it refused this terminal's certificate. Nothing was
    served; it will not heal by itself (the settings must change)."""


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
    #: Approved: the amount held (less than asked in a partial approval, code 10).
    approved_amount: int | None = None
    #: The spending control that declined or limited it (``card.daily_amount``).
    control: str | None = None

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
            "approved_amount": self.approved_amount,
            "control": self.control,
        }


def outcome_of(answer: contract.Decision, request_id: str, attempts: int) -> HostOutcome:
    """The outcome of an answered decision (authorisation or resubmission, over HTTP or
    ISO 8583) after ``attempts`` tries; ARPC and issuer authentication data when
    present."""
    return HostOutcome(
        approved=answer.approved,
        response_code=answer.response_code,
        reason=answer.reason.value if answer.reason is not None else None,
        request_id=request_id,
        transaction_id=answer.id,
        arpc=bytes.fromhex(answer.arpc),
        issuer_authentication_data=bytes.fromhex(answer.issuer_authentication_data),
        card=answer.card,
        attempts=attempts,
        par=answer.par or None,
        approved_amount=answer.approved_amount,
        control=f"{answer.control.level}.{answer.control.name}" if answer.control else None,
    )


class HostClient:
    """The issuer service at ``url`` (``https://HOST[:PORT]``) for terminal
    ``terminal_id``, over TLS as ``tls`` says (the issuer's CA, the terminal's
    certificate and key; module docstring). :class:`ValueError` for a URL that is not
    https (unless ``tls.dev_plain_http``), a missing credential, or TLS files that do
    not load."""

    def __init__(
        self,
        url: str,
        terminal_id: str,
        terminal_key: str,
        *,
        tls: ClientTls | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        reuse_within: float = REUSE_WITHIN,
    ) -> None:
        if not terminal_id or not terminal_key or ":" in terminal_id:
            raise ValueError("a terminal id and key are needed")
        parts, context = (tls or ClientTls()).for_url(url, "issuer")
        self._host = parts.hostname or ""
        self._port = parts.port or (80 if context is None else 443)
        self._auth = f"Bearer {terminal_id}:{terminal_key}"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._link = KeptConnection(self._host, self._port, context, reuse_within=reuse_within)

    def __repr__(self) -> str:
        return f"HostClient({self._host}:{self._port})"

    def close(self) -> None:
        """Close the connection."""
        self._link.close()

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any | None,
        key: str | None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One exchange: (status, body). ``body`` is a contract message (sent as JSON);
        ``timeout`` replaces the client's for this exchange (a long poll).
        :class:`HostUnreachableError` on a time-out or a broken connection (the
        connection is dropped)."""
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        data = None
        if body is not None:
            data = contract.encode(body)
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        wait = self.timeout if timeout is None else timeout
        conn = self._link.connection(wait)
        conn.timeout = wait
        if conn.sock is not None:
            conn.sock.settimeout(wait)
        try:
            conn.request(method, path, body=data, headers=headers)
            answer = conn.getresponse()
            raw = answer.read()
        except ssl.SSLError as exc:
            # A server this client does not trust, or one that refused its certificate:
            # no request was served. Said once in the log, as it will not heal alone.
            self.close()
            log.warning("TLS with the issuer %s:%s failed: %s", self._host, self._port, exc)
            raise HostTlsError(f"TLS: {exc}") from None
        except (OSError, http.client.HTTPException):
            self.close()
            raise HostUnreachableError from None
        return answer.status, raw

    def _call(
        self,
        method: str,
        path: str,
        body: Any | None,
        key: str,
        kind: type[M],
        *,
        timeout: float | None = None,
    ) -> M:
        """A request with retries (same key), its answer read as the contract message
        ``kind``; :class:`HostUnreachableError` if none answered (or not with a
        ``kind``), :class:`HostError` if the issuer refused the request."""
        why: tuple[object, ...] = ()
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            try:
                status, raw = self.request(method, path, body, key, timeout=timeout)
            except HostUnreachableError as exc:
                why = exc.args
                continue
            if status == 503:
                why = ("503",)
                continue
            self._attempts = attempt + 1
            if status >= 400:
                try:
                    error = contract.decode(raw, contract.Error).error
                except contract.ContractError:
                    error = contract.ErrorBody(code="", message="")
                cls = HostRefusedError if status == 401 else HostError
                raise cls(status, error.code, error.message)
            try:
                return contract.decode(raw, kind)
            except contract.ContractError:
                raise HostUnreachableError from None
        self._attempts = self.retries + 1
        raise HostUnreachableError(*why)

    def _record(self, method: str, path: str, body: Any | None, key: str) -> dict[str, Any]:
        """:meth:`_call` for a transaction record, as JSON-ready data."""
        return msgspec.structs.asdict(self._call(method, path, body, key, contract.Transaction))

    # -- operations --------------------------------------------------------------------

    def check(self) -> None:
        """Whether the issuer answers this terminal, before a card is asked for: one
        cheap authenticated request (``GET /v1/authorisations?limit=1``), sent once.
        Raises :class:`HostTlsError` (a certificate refused either way),
        :class:`HostUnreachableError` (no answer, or 503), :class:`HostRefusedError`
        (401: unknown terminal, wrong credential, a certificate that does not prove
        this terminal) or :class:`HostError` (any other refusal); returns when the
        issuer accepted the terminal."""
        status, raw = self.request("GET", "/v1/authorisations?limit=1", None, None)
        if status == 503:
            raise HostUnreachableError("503")
        if status >= 400:
            try:
                error = contract.decode(raw, contract.Error).error
            except contract.ContractError:
                error = contract.ErrorBody(code="", message="")
            cls = HostRefusedError if status == 401 else HostError
            raise cls(status, error.code, error.message)

    def authorise(
        self,
        icc_data: bytes,
        track2: bytes,
        *,
        request_id: str | None = None,
        channel: contract.Channel = contract.Channel.CONTACTLESS,
        amount: int | None = None,
        partial_allowed: bool = False,
    ) -> HostOutcome:
        """Authorise online (module docstring): the final outcome. ``channel`` says how
        the card's data came (``qr_cpm``: a phone's code scanned), ``amount`` the sale's
        when a code was made without one. With ``partial_allowed`` the issuer may approve
        less than the amount (code ``10``, ``approved_amount``): the terminal collects the
        rest another way."""
        request_id = request_id or "req_" + secrets.token_hex(12)
        body = contract.AuthorisationRequest(
            icc_data=icc_data.hex().upper(), track2=track2.hex().upper(), channel=channel,
            amount=amount, partial_allowed=partial_allowed,
        )  # fmt: skip
        try:
            answer = self._call("POST", "/v1/authorisations", body, request_id, contract.Decision)
        except HostUnreachableError:
            attempts = self._attempts
            reversed_ = self.reverse_request(request_id)
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id,
                attempts=attempts, reversed=reversed_, answered=False,
            )  # fmt: skip
        return outcome_of(answer, request_id, self._attempts)

    def reverse_request(self, request_id: str) -> bool:
        """Time-out reversal of a request id; whether the issuer confirmed it."""
        body = contract.ReversalRequest(request_id=request_id)
        try:
            # The reversed transaction, or a ReversalNotFound: confirmed either way.
            self._call("POST", "/v1/reversals", body, f"reversal:{request_id}", dict)
        except (HostUnreachableError, HostError):
            return False
        return True

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Reverse an authorisation (releases its hold once)."""
        key = request_id or "rev_" + secrets.token_hex(12)
        body = contract.AuthorisationReversalRequest()
        return self._record("POST", f"/v1/authorisations/{transaction_id}/reversal", body, key)

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Capture an authorisation wholly (``amount=None``) or in part."""
        key = request_id or "cap_" + secrets.token_hex(12)
        body = contract.CompletionRequest(amount=amount)
        return self._record("POST", f"/v1/authorisations/{transaction_id}/complete", body, key)

    def increment(
        self,
        transaction_id: str,
        amount: int,
        *,
        request_id: str | None = None,
        partial_allowed: bool = False,
    ) -> dict[str, Any]:
        """Raise a pending authorisation's hold by ``amount`` (minor units; ``POST
        /v1/authorisations/{id}/increment``): the issuer's answer
        (:class:`~emvwire.contract.IncrementDecision` as JSON-ready data: ``approved``,
        ``approved_amount``, ``authorised_amount``...). A declined increment leaves the
        hold as it was. Retried with the same request id; :class:`HostUnreachableError`
        if no answer came (send it again with the same ``request_id``), :class:`HostError`
        if the authorisation is not pending (409)."""
        key = request_id or "inc_" + secrets.token_hex(12)
        body = contract.IncrementRequest(amount=amount, partial_allowed=partial_allowed)
        answer = self._call(
            "POST",
            f"/v1/authorisations/{transaction_id}/increment",
            body,
            key,
            contract.IncrementDecision,
        )
        found: dict[str, Any] = msgspec.to_builtins(answer)
        return found

    def refund(
        self, authorisation_id: str, amount: int, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Refund ``amount`` (minor units) of a captured authorisation of this terminal
        (``POST /v1/refunds``); the refund record. Retried with the same request id."""
        key = request_id or "rfd_" + secrets.token_hex(12)
        body = contract.RefundRequest(authorisation=authorisation_id, amount=amount)
        return self._record("POST", "/v1/refunds", body, key)

    def transactions(self, *, limit: int = 1000, status: str | None = None) -> list[dict[str, Any]]:
        """This terminal's transactions at the issuer, newest first
        (``GET /v1/authorisations``; at most ``limit``, 1-1000)."""
        query = f"?limit={int(limit)}" + (f"&status={status}" if status else "")
        answer = self._call(
            "GET", "/v1/authorisations" + query, None, "list", contract.TransactionList
        )
        return [msgspec.structs.asdict(item) for item in answer.data]

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        """One transaction of this terminal (``GET /v1/authorisations/{id}``)."""
        return self._record("GET", f"/v1/authorisations/{transaction_id}", None, "get")

    _attempts: int = 0

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        """Debt recovery (``POST /v1/authorisations/{id}/resubmit``): the issuer decides
        again on a declined transit authorisation without new chip data (Visa's rule
        for open-loop transit: at most 6 times in 14 days). The answer is a new
        authorisation; a request that gets no answer is not reversed (the caller
        retries with the same ``request_id``): ``answered`` false, code ``Z3``.
        :class:`HostError` when the issuer refuses (409 ``not_resubmittable``)."""
        request_id = request_id or "rsb_" + secrets.token_hex(12)
        body = contract.ResubmissionRequest(amount=amount)
        try:
            answer = self._call(
                "POST",
                f"/v1/authorisations/{transaction_id}/resubmit",
                body,
                request_id,
                contract.Decision,
            )
        except HostUnreachableError:
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id, attempts=self._attempts,
                answered=False,
            )  # fmt: skip
        return outcome_of(answer, request_id, self._attempts)

    # -- QR code sales (emvwire.qr; the issuer's issuer.service.qr) ----------------------

    def open_sale(self, bill: str, amount: int, *, expires_in: int = 120) -> contract.QrSale:
        """Open the sale of a dynamic merchant-presented code (``POST /v1/qr/sales``):
        the sale, with the text of the code to show. Retried with the bill as the key
        (the same bill and amount is the same sale)."""
        body = contract.QrSaleRequest(bill=bill, amount=amount, expires_in=expires_in)
        return self._call("POST", "/v1/qr/sales", body, f"sale:{bill}", contract.QrSale)

    def wait_sale(self, bill: str, wait: float) -> contract.QrSale:
        """The sale ``bill`` once it is no longer open, or after ``wait`` seconds (the
        issuer's long poll, ``GET /v1/qr/sales/{bill}?wait=N``)."""
        return self._call(
            "GET", f"/v1/qr/sales/{bill}?wait={wait:g}", None, "sale", contract.QrSale,
            timeout=wait + self.timeout,
        )  # fmt: skip

    def cancel_sale(self, bill: str) -> contract.QrSale:
        """End the open sale ``bill`` unpaid; the sale as it ends (paid if a payment
        came first). :class:`HostError` 409 ``sale_being_paid`` while one is under way."""
        body = contract.QrSaleCancelRequest()
        return self._call(
            "POST", f"/v1/qr/sales/{bill}/cancel", body, f"cancel:{bill}", contract.QrSale
        )
