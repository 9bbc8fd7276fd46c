"""The HTTP API of the authorisation service, free of any transport.

A :class:`Request` names its route (:data:`issuer.service.routes.ROUTES`, which the
router of :mod:`issuer.service.app` matched) with its headers, body, path parameters
and query; :meth:`Api.prepare` and :meth:`Api.finish_many` answer it with a
:class:`Response` (status, a message of the terminal-issuer contract,
:mod:`emvwire.contract`). Every request but ``/health`` and ``/openapi.json`` carries
``Authorization: Bearer <terminal id>:<credential>`` (RFC 6750 bearer token): an
unknown terminal, a wrong credential or a revoked terminal is 401. Served over mutual
TLS (``require_certificate``), the connection's verified client certificate must name
that terminal and be its recorded, unrevoked certificate
(:meth:`issuer.domain.certificates.ClientCertificates.allowed`), else 401 too: a
credential presented with another terminal's certificate is refused. A POST carries
``Idempotency-Key`` (1-255 characters, Stripe's convention), the request id of the
domain, and a body the contract decodes: broken JSON is 400 ``invalid_json``, a bad
field 400 ``invalid_request`` with a message naming it (the body's contract message and
the query's struct are the route's, as declared); an unexpected failure is 500 with no
detail (never a traceback).

The operator routes (``/v1/issuing/...``, :attr:`issuer.service.routes.Route.scopes`)
take an operator's credential and certificate instead, never a terminal's
(:mod:`issuer.service.operator_api`).
The QR code routes (:mod:`issuer.service.qr`) are answered alike; those of a phone
wallet (``Route.principal``) take the wallet's credential and certificate instead of a
terminal's, and a QR sale's long poll is awaited by the HTTP application
(``Prepared.wait``).
With a program's decision endpoint set (``issuer decisions set``), an authorisation
the read phase authenticated is :attr:`Prepared.proposal`: the caller awaits
:meth:`Api.consult` (the program asked on the event loop, within its deadline) before
the write phase, and other requests go on meanwhile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import parse_qs

import msgspec

from emvwire import contract
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest, Authoriser, Checked
from issuer.domain.cache import ReadCache
from issuer.domain.clearing import Clearing
from issuer.domain.credentials import CredentialCache
from issuer.domain.program import Endpoint, ProgramRequest
from issuer.domain.qr import cpm_terms, tap_terms
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    IssuerError,
    NotFoundError,
    RefusedError,
    TransientError,
    ValidationError,
)
from issuer.model.entities import Authorisation, Terminal, TerminalStatus
from issuer.service.openapi import OPENAPI
from issuer.service.program import Consultant
from issuer.service.qr import QrService, SaleQuery, WalletRefusedError
from issuer.service.routes import ROUTES, ListQuery, Route

__all__ = ["MAX_BODY", "Api", "Prepared", "Request", "Response", "error_answer"]

log = logging.getLogger("issuer.service")

#: Largest request body accepted (a field 55 blob is at most 255 bytes).
MAX_BODY: Final = 16 * 1024
_ID: Final = re.compile(r"[a-z]+_[a-z2-7]{16}")
#: The OpenAPI document as served, encoded once.
_OPENAPI_TEXT: Final = contract.encode(OPENAPI)

M = TypeVar("M")
Q = TypeVar("Q", bound=msgspec.Struct)
_ROUTES: Final[Mapping[str, Route]] = {route.name: route for route in ROUTES}
_NO_PARAMS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status, a contract message (or the OpenAPI document), extra
    headers; ``text`` the message encoded already (an authorisation's answer is the
    text its record stores)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    text: bytes | None = field(default=None, repr=False, compare=False)

    def encode(self) -> bytes:
        """The body as UTF-8 JSON (:func:`emvwire.contract.encode`)."""
        if self.text is not None:
            return self.text
        return contract.encode(self.body)


class Request(NamedTuple):
    """An HTTP request as the API sees it: the name of its route
    (:attr:`issuer.service.routes.Route.name`), its headers (names in lower case), its
    body, its path parameters (``id``) and its query string."""

    route: str
    headers: Mapping[str, str]
    body: bytes = b""
    params: Mapping[str, str] = _NO_PARAMS
    query: str = ""
    #: The verified client certificate of the connection (PEM; the ASGI TLS extension's
    #: ``client_cert_chain[0]``), ``None`` on a connection without TLS.
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request after :meth:`Api.prepare`: answered, checked (an authorisation), a
    write still to run (validated already), or a long poll to await (``wait``: a QR
    sale's, :mod:`issuer.service.qr`). A checked authorisation with a ``proposal``
    waits for :meth:`Api.consult` (the program's decision endpoint)."""

    answer: Response | None
    checked: Checked | None = None
    write: Callable[[], Response] | None = None
    wait: Callable[[], Awaitable[Response]] | None = None
    proposal: tuple[Endpoint, ProgramRequest] | None = None


class _HttpError(IssuerError):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def error_answer(status: int, code: str, message: str) -> Response:
    """An error answer, ``{"error": {"code", "message"}}`` (401 with its challenge,
    RFC 6750 §3)."""
    headers = {"WWW-Authenticate": 'Bearer realm="issuer"'} if status == 401 else {}
    return Response(
        status, contract.Error(error=contract.ErrorBody(code=code, message=message)), headers
    )


def _decode(body: bytes, kind: type[M]) -> M:
    """The contract message ``kind`` of a request body (an empty body is ``{}``)."""
    if len(body) > MAX_BODY:
        raise _HttpError(413, "too_large", "the request body is too large")
    try:
        return contract.decode(body if body and not body.isspace() else b"{}", kind)
    except contract.MalformedError as exc:
        raise _HttpError(400, "invalid_json", str(exc)) from None
    except contract.ContractError as exc:
        raise _HttpError(400, "invalid_request", str(exc)) from None


def _query(text: str, kind: type[Q]) -> Q:
    """The query struct ``kind`` of a query string (the first value of each name)."""
    fields = {name: values[0] for name, values in parse_qs(text).items()}
    try:
        return msgspec.convert(fields, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _HttpError(400, "invalid_request", f"query: {exc}") from None


def _transaction(auth: Authorisation) -> contract.Transaction:
    """A transaction as the contract shows it to its terminal."""
    return contract.Transaction(
        id=auth.id,
        kind=auth.kind.value,
        channel=auth.channel,
        amount=auth.amount,
        currency=auth.currency,
        approved=auth.approved,
        status=auth.status.value,
        request_id=auth.request_id,
        card=auth.card_id,
        token=auth.token_id,
        account=auth.account_id,
        parent=auth.parent_id,
        mcc=auth.mcc,
        decline_reason=auth.decline_reason,
        response_code=auth.response_code,
        atc=auth.atc,
        held_amount=auth.held_amount,
        captured_amount=auth.captured_amount,
        released_amount=auth.released_amount,
        created_at=auth.created_at,
        updated_at=auth.updated_at,
        expires_at=auth.expires_at,
    )


class Api:
    """The service's request handler (module docstring). Thread-safe."""

    def __init__(
        self,
        app: IssuerApp,
        authoriser: Authoriser | None = None,
        clearing: Clearing | None = None,
        *,
        require_certificate: bool = False,
    ) -> None:
        self.app = app
        #: Whether every request must come with a client certificate naming its
        #: terminal (served over mutual TLS; module docstring).
        self.require_certificate = require_certificate
        self.authoriser = authoriser or Authoriser(app)
        self.clearing = clearing or Clearing(app)
        self.credentials = CredentialCache()
        from issuer.service.operator_api import OperatorApi  # it builds on this module

        #: The operator routes (``/v1/issuing/...``), apart from the terminals'.
        self.operators = OperatorApi(app, self.credentials, require_certificate=require_certificate)
        #: The QR code routes (sales, long polls, wallets' payments).
        self.qr = QrService(
            app, self.authoriser, self.credentials, require_certificate=require_certificate
        )
        self.consultant = Consultant(app)
        self._reads: Mapping[str, Callable[[Terminal, Mapping[str, str], Any], Response]] = {
            "list": self._list,
            "get": self._get,
        }
        self._writes: Mapping[str, Callable[[Terminal, str, Any, str], Response]] = {
            "reverse": self._reverse,
            "complete": self._complete,
            "resubmit": self._resubmit,
            "reverse_request": self._reverse_request,
            "refund": self._refund,
            "qr_sale_open": lambda t, _, m, k: Response(201, self.qr.open_sale(t, m)),
            "qr_sale_cancel": lambda t, bill, m, k: Response(200, self.qr.cancel_sale(t, bill)),
            "increment": self._increment,
        }

    @property
    def cache(self) -> ReadCache:
        """Terminal rows between requests, kept with the authoriser's cards and tokens
        and dropped when the ledger's cache generation moves (a revocation)."""
        return self.app.cache

    # -- the two stages ----------------------------------------------------------------

    def prepare(self, request: Request, generation: int | None = None) -> Prepared:
        """The first stage of a request, writing nothing: a read is answered; an
        authorisation is checked (credential, fields, ARQC and the other read-phase
        checks); any other write is validated (credential, body, key) and waits for
        :meth:`finish_many`. ``generation``: the cache generation read at the start of
        the caller's turn (:mod:`issuer.domain.cache`; ``None``: read now)."""
        try:
            route = _ROUTES.get(request.route)
            if route is None:
                raise _HttpError(404, "not_found", "no such endpoint")
            if route.name == "health":
                return Prepared(
                    Response(200, contract.Health(status="ok", ledger=self.app.ledger.dialect))
                )
            if route.name == "openapi":
                return Prepared(Response(200, OPENAPI, text=_OPENAPI_TEXT))
            if generation is None:
                generation = self.cache.refresh()
            if route.scopes:
                return self.operators.prepare(route, request, generation)
            if route.principal == "wallet":
                return self._wallet_request(route, request, generation)
            terminal = self._terminal(request, generation)
            if route.kind == "authorise":
                auth = self._authorisation_request(request.headers, request.body)
                checked = self.authoriser.check(terminal, auth, generation=generation)
                endpoint = self.consultant.endpoint(generation)
                proposal = self.authoriser.proposal(checked) if endpoint else None
                if endpoint is None or proposal is None:
                    return Prepared(None, checked)
                return Prepared(None, checked, proposal=(endpoint, proposal))
            if route.name == "qr_sale":
                return self._qr_sale(terminal, request)
            if route.kind == "read":
                query = _query(request.query, route.query) if route.query else None
                return Prepared(self._reads[route.name](terminal, request.params, query))
            assert route.body is not None
            message = _decode(request.body, route.body)
            key = self._key(request.headers)
            write = self._writes[route.name]
            txn_id = request.params.get("id") or request.params.get("bill", "")
            return Prepared(None, write=lambda: write(terminal, txn_id, message, key))
        except Exception as exc:
            return Prepared(self.failure(exc))

    async def consult(self, prepared: Prepared) -> None:
        """Ask the program's decision endpoint about a prepared authorisation's
        :attr:`~Prepared.proposal` (within its deadline; the fallback without an
        answer) and give the answer to its write phase."""
        if prepared.proposal is None or prepared.checked is None:
            return
        endpoint, proposal = prepared.proposal
        verdict = await self.consultant.consult(endpoint, proposal)
        self.authoriser.take(prepared.checked, verdict)

    def ready_to_write(self) -> bool:
        """Whether :meth:`finish_many` can write now without waiting for another
        process (:meth:`issuer.ledger.repository.Ledger.try_writer`); if so, the
        caller holds the writer lock until :meth:`finish_many` returns."""
        return self.app.ledger.try_writer()

    def finish_many(self, prepared: Sequence[Prepared]) -> list[Response]:
        """The second stage: the checked authorisations decided in shared transactions
        (group commit, :meth:`Authoriser.decide_many`), then the other writes one by
        one; every answer, in order. The writer lock of :meth:`ready_to_write` is
        given back at the end."""
        try:
            checked = [p.checked for p in prepared if p.checked is not None]
            decided = iter(self.authoriser.decide_many(checked) if checked else [])
            answers = []
            for p in prepared:
                if p.answer is not None:
                    answers.append(p.answer)
                elif p.checked is not None:
                    outcome = next(decided)
                    answers.append(
                        self.failure(outcome)
                        if isinstance(outcome, Exception)
                        else Response(200, outcome.decision, text=outcome.text)
                    )
                else:
                    assert p.write is not None
                    try:
                        answers.append(p.write())
                    except Exception as exc:
                        answers.append(self.failure(exc))
            return answers
        finally:
            self.app.ledger.release_writer()

    # -- plumbing ----------------------------------------------------------------------

    def _authorisation_request(
        self, headers: Mapping[str, str], body: bytes
    ) -> AuthorisationRequest:
        data = _decode(body, contract.AuthorisationRequest)
        key = self._key(headers)
        icc_data, track2 = bytes.fromhex(data.icc_data), bytes.fromhex(data.track2)
        partial = data.partial_allowed
        if data.channel is contract.Channel.CONTACTLESS:
            if data.amount is None:
                return AuthorisationRequest(key, icc_data, track2, partial)
            refusal = tap_terms(icc_data, data.amount)
            return AuthorisationRequest(key, icc_data, track2, partial, refusal=refusal)
        if data.channel is not contract.Channel.QR_CPM:
            raise _HttpError(
                400, "invalid_request", "a wallet pays a merchant's code: POST /v1/qr/payments"
            )
        # A consumer-presented code (issuer.domain.qr): its amount and its refusal.
        amount, refusal = cpm_terms(icc_data, data.amount, self.qr.payments.clock())
        return AuthorisationRequest(
            key, icc_data, track2, partial, channel=data.channel.value, amount=amount,
            refusal=refusal,
        )  # fmt: skip

    def _wallet_request(self, route: Route, request: Request, generation: int) -> Prepared:
        """A phone wallet's request (:mod:`issuer.service.qr`): a merchant looked up,
        or a payment to decide with the writes."""
        wallet = self.qr.wallet(request.headers, request.client_certificate, generation)
        if route.kind == "read":
            return Prepared(Response(200, self.qr.merchant(request.params.get("id", ""))))
        message = _decode(request.body, contract.QrPaymentRequest)
        key = self._key(request.headers)
        return Prepared(None, write=lambda: Response(200, self.qr.pay(wallet, message, key)))

    def _qr_sale(self, terminal: Terminal, request: Request) -> Prepared:
        """``GET /v1/qr/sales/{bill}``: answered now, or a long poll with ``wait``."""
        bill = request.params.get("bill", "")
        query = _query(request.query, SaleQuery)
        if query.wait <= 0:
            return Prepared(Response(200, self.qr.sale(terminal, bill)))
        self.qr.payments.sale(terminal, bill)  # 404 at once for a sale it does not have

        async def wait() -> Response:
            try:
                return Response(200, await self.qr.wait(terminal, bill, query.wait))
            except Exception as exc:
                return self.failure(exc)

        return Prepared(None, wait=wait)

    @staticmethod
    def failure(exc: Exception) -> Response:
        """The answer to a request that raised ``exc`` (module docstring)."""
        if isinstance(exc, _HttpError):
            return error_answer(exc.status, exc.code, exc.message)
        if isinstance(exc, WalletRefusedError):
            return error_answer(401, "unauthorised", str(exc))
        if isinstance(exc, ValidationError):
            return error_answer(400, "invalid_request", str(exc))
        if isinstance(exc, NotFoundError):
            return error_answer(404, "not_found", str(exc))
        if isinstance(exc, RefusedError):
            return error_answer(409, exc.code, str(exc))
        if isinstance(exc, ConflictError | InvalidStateError):
            return error_answer(409, "conflict", str(exc))
        if isinstance(exc, TransientError):
            return error_answer(
                503, "busy", "the ledger is busy: retry with the same Idempotency-Key"
            )
        if isinstance(exc, IssuerError):
            log.warning("issuer error: %s", type(exc).__name__)
        else:
            log.error("unexpected failure", exc_info=exc)
        return error_answer(500, "internal", "the issuer could not process the request")

    def _terminal(self, request: Request, generation: int) -> Terminal:
        """The terminal whose bearer credential the request carries, and whose client
        certificate it comes with where one is required, else 401. Its row comes from
        :attr:`cache` while the cache generation read at the start of the turn
        (``generation``) stands, so a revocation or a new credential committed by any
        process takes effect from the next turn."""
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        terminal_id, sep, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not sep or not _ID.fullmatch(terminal_id):
            raise _HttpError(401, "unauthorised", "a terminal credential is needed")
        key = ("terminal", terminal_id)
        terminal: Terminal | None = self.cache.get(key)
        if terminal is None:
            try:
                with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
                    terminal = uow.terminals.get(terminal_id)
            except NotFoundError:
                raise _HttpError(
                    401, "unauthorised", "unknown terminal or wrong credential"
                ) from None
            self.cache.put(key, terminal, generation)
        if terminal.status is not TerminalStatus.ACTIVE or not self.credentials.verify(
            terminal.id, terminal.credential_hash, secret
        ):
            raise _HttpError(401, "unauthorised", "unknown terminal or wrong credential")
        if self.require_certificate and (
            request.client_certificate is None
            or not self.app.certificates.allowed(request.client_certificate, terminal, generation)
        ):
            raise _HttpError(
                401, "unauthorised", "the client certificate does not prove this terminal"
            )
        return terminal

    @staticmethod
    def _key(headers: Mapping[str, str]) -> str:
        key = headers.get("idempotency-key", "")
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise _HttpError(400, "invalid_request", "an Idempotency-Key header (1-255) is needed")
        return key

    # -- reads -------------------------------------------------------------------------

    def _get(self, terminal: Terminal, params: Mapping[str, str], query: None) -> Response:
        txn_id = params.get("id", "")
        with self.app.ledger.unit_of_work(write=False) as uow:
            auth = uow.authorisations.get(txn_id)
        if auth.terminal_id != terminal.id:
            raise NotFoundError(f"no transaction {txn_id} of this terminal")
        return Response(200, _transaction(auth))

    def _list(self, terminal: Terminal, params: Mapping[str, str], query: ListQuery) -> Response:
        with self.app.ledger.unit_of_work(write=False) as uow:
            found = uow.authorisations.list(
                terminal_id=terminal.id, status=query.status, limit=query.limit
            )
        return Response(200, contract.TransactionList(data=[_transaction(a) for a in found]))

    # -- writes ------------------------------------------------------------------------

    def _reverse_request(
        self, terminal: Terminal, txn_id: str, message: contract.ReversalRequest, key: str
    ) -> Response:
        found = self.clearing.reverse_request(terminal, message.request_id)
        if found is None:
            return Response(200, contract.ReversalNotFound(request_id=message.request_id))
        return Response(200, _transaction(found))

    def _refund(
        self, terminal: Terminal, txn_id: str, message: contract.RefundRequest, key: str
    ) -> Response:
        done = self.clearing.refund(terminal, message.authorisation, message.amount, key)
        return Response(201, _transaction(done))

    def _resubmit(
        self, terminal: Terminal, txn_id: str, message: contract.ResubmissionRequest, key: str
    ) -> Response:
        return Response(200, self.clearing.resubmit(terminal, txn_id, message.amount, key))

    def _complete(
        self, terminal: Terminal, txn_id: str, message: contract.CompletionRequest, key: str
    ) -> Response:
        done = self.clearing.complete(terminal, txn_id, message.amount, key)
        return Response(200, _transaction(done))

    def _increment(
        self, terminal: Terminal, txn_id: str, message: contract.IncrementRequest, key: str
    ) -> Response:
        decision = self.clearing.increment(
            terminal, txn_id, message.amount, key, partial_allowed=message.partial_allowed
        )
        return Response(200, decision)

    def _reverse(self, terminal: Terminal, txn_id: str, message: Any, key: str) -> Response:
        return Response(200, _transaction(self.clearing.reverse(terminal, txn_id, key)))
