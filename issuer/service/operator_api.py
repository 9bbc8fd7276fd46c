"""The operator API (``/v1/issuing/...``): the issuer's accounts, cards, tokens,
terminals and ranges managed over HTTPS, its authorisations read.

Authentication, apart from the terminals': every request carries ``Authorization:
Bearer <operator id>:<credential>`` (``op_...:osk_...``, printed once by ``issuer
operator add``) and, served over mutual TLS, comes on a connection whose verified
client certificate names that operator (URI SAN ``urn:tapstack:operator:<id>``) and is
the one recorded for it. Anything else is 401: a terminal's credential or certificate
never reaches an operator route (and the terminal routes refuse an operator's, as they
find no such terminal). The operator's row is kept in the service's
:class:`~issuer.domain.cache.ReadCache`, so its revocation, committed by any process,
refuses its next request (the cache generation, :mod:`issuer.ledger.schema`).

Authorisation: a route allows the operators holding one of its scopes
(:attr:`issuer.service.routes.Route.scopes`; ``operations`` includes ``read``), others
get 403 ``forbidden``, and the refusal is written to the audit log.

Every change runs one method of :class:`~issuer.domain.service.IssuerService`, the
CLI's own, acting as ``operator:<id>``: the domain writes its audit record and the
request's ``Idempotency-Key`` in the change's transaction (:mod:`issuer.domain.audit`).
A retry with the same key and body answers the object as it is now, with the first
answer's status (``Idempotent-Replayed: true``), and changes nothing; the same key
with another body is 409 ``idempotency_conflict``. A change the domain refuses is 4xx
as on the terminal routes, and audited as ``failed``. Writes run with the service's
other writes (group commit), reads at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from emvwire.pki import PkiError, identity_of
from issuer.bootstrap import add_range
from issuer.domain.audit import Acting, RequestKey
from issuer.domain.credentials import CredentialCache
from issuer.domain.service import IssuerService, parse_expiry
from issuer.errors import ConflictError, IssuerError, LedgerError, NotFoundError, ValidationError
from issuer.model.entities import Account, Authorisation, BinRange, Card, Terminal, Token
from issuer.model.operators import Operator, OperatorStatus, granted
from issuer.personalisation.ranges import RangeSpec
from issuer.pki import add_terminal, tls_folder
from issuer.service import operator_messages as op
from issuer.service.api import (
    Api,
    Prepared,
    Request,
    Response,
    _decode,
    _HttpError,
    _query,
    error_answer,
)
from issuer.service.routes import Route

if TYPE_CHECKING:
    from issuer.bootstrap import IssuerApp

__all__ = ["OperatorApi"]

_OPERATOR_ID: Final = re.compile(r"op_[a-z2-7]{16}")
_REPLAYED: Final = {"Idempotent-Replayed": "true"}

#: What each list of the API pages through (IssuerService.page) and its query's
#: filters: query field -> column.
_LISTS: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "issuing_accounts_list": ("accounts", {"status": "status"}),
    "issuing_cards_list": ("cards", {"account": "account_id", "status": "status"}),
    "issuing_tokens_list": (
        "tokens",
        {"card": "card_id", "account": "account_id", "status": "status"},
    ),
    "issuing_terminals_list": ("terminals", {"status": "status"}),
    "issuing_ranges_list": ("ranges", {"status": "status"}),
    "issuing_authorisations_list": (
        "authorisations",
        {"card": "card_id", "account": "account_id", "terminal": "terminal_id",
         "status": "status"},
    ),
}  # fmt: skip


def _account(a: Account) -> op.AccountObject:
    return msgspec.convert(a.to_json(), op.AccountObject)


def _card(c: Card) -> op.CardObject:
    return msgspec.convert(c.to_json(), op.CardObject)


def _token(t: Token) -> op.TokenObject:
    return msgspec.convert(t.to_json(), op.TokenObject)


def _terminal(t: Terminal) -> op.TerminalObject:
    return msgspec.convert(t.to_json(), op.TerminalObject)


def _range(r: BinRange) -> op.RangeObject:
    return msgspec.convert(r.to_json(), op.RangeObject)


def _authorisation(a: Authorisation) -> op.AuthorisationObject:
    return msgspec.convert(a.to_json(), op.AuthorisationObject)


_OBJECTS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "accounts": _account,
    "cards": _card,
    "tokens": _token,
    "terminals": _terminal,
    "ranges": _range,
    "authorisations": _authorisation,
}
_LIST_TYPES: Final[Mapping[str, type[Any]]] = {
    "accounts": op.AccountList,
    "cards": op.CardList,
    "tokens": op.TokenList,
    "terminals": op.TerminalList,
    "ranges": op.RangeList,
    "authorisations": op.AuthorisationList,
}

Write = Callable[[IssuerService, str, Any], Response]


class OperatorApi:
    """The operator routes of :class:`~issuer.service.api.Api` (module docstring)."""

    def __init__(
        self, app: IssuerApp, credentials: CredentialCache, *, require_certificate: bool
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.require_certificate = require_certificate
        self._writes: Mapping[str, Write] = {
            "issuing_accounts_create": self._create_account,
            "issuing_accounts_update": lambda s, i, m: Response(200, _account(s.close_account(i))),
            "issuing_accounts_credit": self._credit,
            "issuing_cards_create": self._issue_card,
            "issuing_cards_register": self._register_card,
            "issuing_cards_update": self._card_status,
            "issuing_tokens_create": self._issue_token,
            "issuing_tokens_update": self._token_status,
            "issuing_terminals_create": self._add_terminal,
            "issuing_terminals_update": lambda s, i, m: Response(
                200, _terminal(s.revoke_terminal(i))
            ),
            "issuing_ranges_create": self._add_range,
            "issuing_ranges_update": lambda s, i, m: Response(200, _range(s.retire_range(i))),
        }

    # -- a request -------------------------------------------------------------------

    def prepare(self, route: Route, request: Request, generation: int) -> Prepared:
        """The first stage of an operator request (module docstring): the operator
        authenticated and its scope checked; a read answered; a write validated, or
        answered from its Idempotency-Key."""
        operator = self._operator(request, generation)
        if not granted(operator.scopes) & set(route.scopes):
            return Prepared(None, write=lambda: self._refuse(operator, route, request))
        ident = request.params.get("id") or request.params.get("prefix") or ""
        if route.kind == "read":
            if route.name in _LISTS:
                assert route.query is not None
                return Prepared(self._list(route.name, _query(request.query, route.query)))
            return Prepared(Response(200, self._object(route.path.split("/")[3], ident)))
        assert route.body is not None
        message = _decode(request.body, route.body)
        key = Api._key(request.headers)
        digest = hashlib.sha256(
            f"{route.name}\0{ident}\0".encode() + request.body.strip()
        ).hexdigest()
        replay = self._replay(operator, key, digest)
        if replay is not None:
            return Prepared(replay)
        acting = Acting(
            f"operator:{operator.id}", RequestKey(operator.id, key, digest, route.success)
        )
        service = self.app.service.acting_as(acting)
        write = self._writes[route.name]

        def run() -> Response:
            try:
                return write(service, ident, message)
            except ConflictError:
                # The same key sent twice at once: the second change rolled back when
                # its key's record met the first's.
                replay = self._replay(operator, key, digest)
                if replay is not None:
                    return replay
                self._failed(operator, route, ident, "conflict")
                raise
            except (LedgerError, _HttpError):
                raise
            except IssuerError as exc:
                self._failed(operator, route, ident, type(exc).__name__, str(exc))
                raise

        return Prepared(None, write=run)

    def _operator(self, request: Request, generation: int) -> Operator:
        """The operator whose bearer credential the request carries, and whose client
        certificate it comes with where one is required, else 401 (module docstring)."""
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        operator_id, sep, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not sep or not _OPERATOR_ID.fullmatch(operator_id):
            raise _HttpError(401, "unauthorised", "an operator credential is needed")
        key = ("operator", operator_id)
        operator: Operator | None = self.app.cache.get(key)
        if operator is None:
            try:
                with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
                    operator = uow.operators.get(operator_id)
            except NotFoundError:
                raise _HttpError(
                    401, "unauthorised", "unknown operator or wrong credential"
                ) from None
            self.app.cache.put(key, operator, generation)
        if operator.status is not OperatorStatus.ACTIVE or not self.credentials.verify(
            operator.id, operator.credential_hash, secret
        ):
            raise _HttpError(401, "unauthorised", "unknown operator or wrong credential")
        if self.require_certificate and not _certificate_names(
            request.client_certificate, operator
        ):
            raise _HttpError(
                401, "unauthorised", "the client certificate does not prove this operator"
            )
        return operator

    # -- the audit of what did not happen ----------------------------------------------

    def _refuse(self, operator: Operator, route: Route, request: Request) -> Response:
        ident = request.params.get("id") or request.params.get("prefix") or "-"
        self.app.service.acting_as(f"operator:{operator.id}").record_outcome(
            route.action, route.action.partition(".")[0], ident, "refused",
            {"route": f"{route.method} {route.path}", "scopes": list(route.scopes),
             "held": list(operator.scopes)},
        )  # fmt: skip
        needed = " or ".join(route.scopes)
        return error_answer(403, "forbidden", f"this operator lacks the scope {needed}")

    def _failed(
        self, operator: Operator, route: Route, ident: str, error: str, message: str = ""
    ) -> None:
        self.app.service.acting_as(f"operator:{operator.id}").record_outcome(
            route.action, route.action.partition(".")[0], ident or "-", "failed",
            {"error": error, "message": message[:200]},
        )  # fmt: skip

    # -- reads -----------------------------------------------------------------------

    def _list(self, name: str, query: Any) -> Response:
        kind, columns = _LISTS[name]
        filters = {column: getattr(query, field) for field, column in columns.items()}
        try:
            page = self.app.service.page(
                kind, limit=query.limit, starting_after=query.starting_after, **filters
            )
        except NotFoundError as exc:
            raise _HttpError(400, "invalid_request", f"starting_after: {exc}") from None
        convert = _OBJECTS[kind]
        return Response(
            200, _LIST_TYPES[kind](data=[convert(o) for o in page.data], has_more=page.has_more)
        )

    def _object(self, kind: str, ident: str) -> Any:
        """The answer showing object ``ident`` of ``kind`` (``accounts``...)."""
        s = self.app.service
        found: Any
        if kind == "accounts":
            found = s.account(ident)
        elif kind == "cards":
            found = s.card(ident)
        elif kind == "tokens":
            found = s.token(ident)
        elif kind == "terminals":
            found = s.terminal(ident)
        elif kind == "ranges":
            found = s.bin_range(ident)
        else:
            found = s.authorisation(ident)
        return _OBJECTS[kind](found)

    def _replay(self, operator: Operator, key: str, digest: str) -> Response | None:
        """The answer of a request whose Idempotency-Key was done already, or 409 if it
        was done for another request (module docstring); ``None``: a new key."""
        with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
            found = uow.operator_requests.get(operator.id, key)
        if found is None:
            return None
        stored, status, object_type, object_id = found
        if not hmac.compare_digest(stored, digest):
            raise _HttpError(
                409, "idempotency_conflict", "this Idempotency-Key was used for another request"
            )
        return Response(status, self._object(f"{object_type}s", object_id), dict(_REPLAYED))

    # -- writes ----------------------------------------------------------------------

    @staticmethod
    def _create_account(s: IssuerService, ident: str, m: op.AccountCreate) -> Response:
        made = s.create_account(
            m.holder, kind=m.kind, currency_code=m.currency, credit_limit=m.credit_limit
        )
        return Response(201, _account(made))

    @staticmethod
    def _credit(s: IssuerService, ident: str, m: op.AccountCredit) -> Response:
        account, _ = s.credit_account(ident, m.amount, m.memo)
        return Response(200, _account(account))

    @staticmethod
    def _issue_card(s: IssuerService, ident: str, m: op.CardIssue) -> Response:
        issued = s.issue_card(
            m.account, m.scheme, cvn=m.cvn, prefix=m.prefix, psn=m.psn,
            expiry=parse_expiry(m.expiry) if m.expiry else None,
        )  # fmt: skip
        return Response(201, _card(issued.card))

    @staticmethod
    def _register_card(s: IssuerService, ident: str, m: op.CardRegistration) -> Response:
        card = s.register_card(
            m.account, m.scheme, m.pan, psn=m.psn, expiry=parse_expiry(m.expiry), cvn=m.cvn,
            key_version=m.key_version,
        )  # fmt: skip
        return Response(201, _card(card))

    @staticmethod
    def _card_status(s: IssuerService, ident: str, m: op.CardUpdate) -> Response:
        change = {"active": s.resume_card, "paused": s.pause_card, "closed": s.close_card}
        return Response(200, _card(change[m.status](ident)))

    @staticmethod
    def _issue_token(s: IssuerService, ident: str, m: op.TokenCreate) -> Response:
        issued = s.issue_token(
            m.card, requestor_id=m.requestor_id, contactless_only=m.contactless_only,
            expiry=parse_expiry(m.expiry) if m.expiry else None,
            allowed_mccs=m.allowed_mccs, blocked_mccs=m.blocked_mccs,
        )  # fmt: skip
        return Response(201, _token(issued.token))

    @staticmethod
    def _token_status(s: IssuerService, ident: str, m: op.TokenUpdate) -> Response:
        change = {"active": s.resume_token, "suspended": s.suspend_token, "deleted": s.delete_token}
        return Response(200, _token(change[m.status](ident)))

    def _add_terminal(self, s: IssuerService, ident: str, m: op.TerminalCreate) -> Response:
        certificate: str | None = None
        if m.csr is None:
            terminal, credential = s.add_terminal(m.merchant, m.mcc, country=m.country)
        else:
            folder = tls_folder(self.app.config.home, self.app.keys)
            try:
                terminal, credential, issued = add_terminal(
                    s, folder, m.merchant, m.mcc, country=m.country, csr=m.csr.encode()
                )
            except PkiError as exc:
                raise ValidationError(f"csr: {exc}") from None
            certificate = issued.pem.decode("ascii")
        shown = msgspec.structs.replace(
            _terminal(terminal), credential=credential, certificate=certificate
        )
        return Response(201, shown)

    def _add_range(self, s: IssuerService, ident: str, m: op.RangeCreate) -> Response:
        spec = RangeSpec(m.prefix, m.scheme, m.kind, m.cvn, m.pan_length)
        made = add_range(self.app, spec, generate_keys=m.generate_keys, service=s)
        return Response(201, _range(made))


def _certificate_names(pem: str | None, operator: Operator) -> bool:
    """Whether the connection's verified client certificate ``pem`` is the one issued
    to ``operator`` (kind, id and serial) and has not expired."""
    if pem is None:
        return False
    try:
        identity = identity_of(pem)
    except PkiError:
        return False
    return (
        identity.kind == "operator"
        and identity.id == operator.id
        and identity.serial == operator.certificate_serial
        and datetime.now(UTC) < identity.not_after
    )
