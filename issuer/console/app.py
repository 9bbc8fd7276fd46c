"""The issuer's web console: its pages and actions on the kit of :mod:`webconsole`,
reading and changing the issuer's ledger in-process (the home and database of
``issuer serve``).

Operators sign in with the id and credential ``issuer operator add`` printed
(``op_...``, ``osk_...``: the Argon2id check of the operator API,
:class:`~issuer.domain.credentials.CredentialCache`), and are loaded again on every
request: a revoked operator is signed out at its next click. What an operator sees
and may do follows its scopes (:func:`issuer.model.operators.granted`): ``read`` the
pages; ``operations`` also suspends and resumes cards and resends events, after a
confirmation page; ``keys`` alone shows the ranges. An action runs the same method of
:class:`~issuer.domain.service.IssuerService` (:class:`~issuer.domain.events.Events`
to resend) as the CLI and the operator API, acting as ``operator:<id>``, so the audit
log records it in the change's transaction (:mod:`issuer.domain.audit`); one the
domain refuses is audited as ``failed``, one the operator's scopes do not allow as
``refused`` (action ``console.request``, the request in its details).

Pages: authorisations (newest first; new ones appear without a reload,
``/authorisations/live``), accounts, cards, tokens, terminals, ranges, events with
their webhook deliveries, webhook endpoints and spending controls, each a page of
:data:`PAGE_SIZE` rows with a link to the next. Cards and tokens show the masked PAN
the ledger keeps (never the clear one), and every value written passes through
:func:`emvwire.mask.scrub` as well (:class:`webconsole.Console`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from emvwire.mask import scrub
from issuer.domain.controls import applying
from issuer.domain.credentials import CredentialCache
from issuer.domain.events import Events
from issuer.domain.webhooks import Webhooks
from issuer.errors import IssuerError, NotFoundError
from issuer.model.controls import ControlLevel, SpendingControls
from issuer.model.operators import OperatorStatus, granted
from webconsole import Console, Principal, Signed, live_fragment

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from issuer.bootstrap import IssuerApp
    from issuer.domain.service import IssuerService

__all__ = ["PAGE_SIZE", "Column", "IssuerConsole"]

#: Rows per page of a list.
PAGE_SIZE: Final = 50
#: How often the authorisations page asks for new ones (milliseconds).
LIVE_EVERY: Final = 1000
_TEMPLATES: Final = Path(__file__).parent / "templates"
_OPERATOR_ID: Final = re.compile(r"op_[a-z2-7]{16}")
_ID: Final = re.compile(r"[a-z]+_[a-z2-7]{16}|[0-9]{6,8}")


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a list: its title, the field of the object's JSON it shows, how
    (``text``, ``code``, ``link`` to ``href`` + value, ``status``, ``money``, ``num``,
    ``time``)."""

    title: str
    key: str
    kind: str = "text"
    href: str = ""


_WHEN = Column("Created", "created_at", "time")
_ACCOUNT_COLUMNS = (
    Column("Account", "id", "link", "/accounts/"),
    Column("Holder", "holder"),
    Column("Kind", "kind"),
    Column("Status", "status", "status"),
    Column("Balance", "balance", "money"),
    Column("Held", "held", "money"),
    Column("Available", "available", "money"),
    _WHEN,
)
_CARD_COLUMNS = (
    Column("Card", "id", "link", "/cards/"),
    Column("PAN", "pan", "code"),
    Column("Scheme", "scheme"),
    Column("Expiry", "expiry"),
    Column("Account", "account", "link", "/accounts/"),
    Column("Status", "status", "status"),
    Column("Origin", "origin"),
    _WHEN,
)
_TOKEN_COLUMNS = (
    Column("Token", "id", "link", "/tokens/"),
    Column("Token PAN", "token", "code"),
    Column("Card", "card", "link", "/cards/"),
    Column("Requestor", "requestor_id"),
    Column("Status", "status", "status"),
    _WHEN,
)
_TERMINAL_COLUMNS = (
    Column("Terminal", "id", "code"),
    Column("Merchant", "merchant"),
    Column("MCC", "mcc"),
    Column("Country", "country"),
    Column("Status", "status", "status"),
    _WHEN,
)
_RANGE_COLUMNS = (
    Column("Prefix", "prefix", "code"),
    Column("Scheme", "scheme"),
    Column("Kind", "kind"),
    Column("CVN", "cvn", "num"),
    Column("PAN length", "pan_length", "num"),
    Column("Status", "status", "status"),
    _WHEN,
)
#: The columns of the authorisations list (and of each live row).
AUTHORISATION_COLUMNS: Final = (
    Column("Time", "created_at", "time"),
    Column("Transaction", "id", "link", "/authorisations/"),
    Column("Outcome", "outcome", "status"),
    Column("Amount", "amount", "money"),
    Column("Card", "card", "link", "/cards/"),
    Column("Terminal", "terminal", "code"),
    Column("MCC", "mcc"),
    Column("Reason", "decline_reason"),
    Column("Status", "status", "status"),
)
_EVENT_COLUMNS = (
    Column("Event", "id", "link", "/events/"),
    Column("Type", "type"),
    Column("Object", "object_id", "code"),
    _WHEN,
)
_DELIVERY_COLUMNS = (
    Column("Endpoint", "endpoint", "code"),
    Column("Status", "status", "status"),
    Column("Attempts", "attempts", "num"),
    Column("Last answer", "last_status"),
    Column("Last error", "last_error"),
    Column("Next attempt", "next_attempt_at", "time"),
    Column("Delivered", "delivered_at", "time"),
)
_ENDPOINT_COLUMNS = (
    Column("Endpoint", "id", "code"),
    Column("URL", "url", "code"),
    Column("Events", "events"),
    Column("Terminal", "terminal", "code"),
    Column("Status", "status", "status"),
    _WHEN,
)
_CONTROL_COLUMNS = (
    Column("Level", "level"),
    Column("On", "link", "link", "/"),
    Column("Rules", "rules"),
    Column("Updated", "updated_at", "time"),
)


@dataclass(frozen=True, slots=True)
class _Listing:
    """A list page of ``kind`` (``IssuerService.page``): title, columns, the query
    fields it filters by (field -> column), the scope it needs."""

    title: str
    columns: tuple[Column, ...]
    filters: Mapping[str, str]
    scope: str = "read"


_LISTINGS: Final[Mapping[str, _Listing]] = {
    "accounts": _Listing("Accounts", _ACCOUNT_COLUMNS, {"status": "status"}),
    "cards": _Listing("Cards", _CARD_COLUMNS, {"account": "account_id", "status": "status"}),
    "tokens": _Listing(
        "Tokens", _TOKEN_COLUMNS, {"card": "card_id", "account": "account_id", "status": "status"}
    ),
    "terminals": _Listing("Terminals", _TERMINAL_COLUMNS, {"status": "status"}),
    "ranges": _Listing("Ranges", _RANGE_COLUMNS, {"status": "status"}, scope="keys"),
}
_NAV: Final = (
    ("/authorisations", "Authorisations"),
    ("/accounts", "Accounts"),
    ("/cards", "Cards"),
    ("/tokens", "Tokens"),
    ("/terminals", "Terminals"),
    ("/ranges", "Ranges", "keys"),
    ("/events", "Events"),
    ("/webhooks", "Webhooks"),
    ("/controls", "Controls"),
)


def _authorisation_row(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "outcome": "approved" if data["approved"] else "declined"}


def _rules(controls: SpendingControls) -> str:
    """One line naming every control of ``controls`` (amounts in minor units)."""
    data = controls.to_json()
    parts = [
        f"{name.replace('_', ' ')} {', '.join(data[name])}"
        for name in ("allowed_mccs", "blocked_mccs", "allowed_countries", "blocked_countries")
        if data[name] is not None
    ]
    if controls.max_per_transaction is not None:
        parts.append(f"at most {controls.max_per_transaction} per transaction")
    parts += [f"{name.replace('_', ' ')} {value}" for name, value in data["limits"].items()]
    return "; ".join(parts) or "none"


def _control_row(controls: SpendingControls) -> dict[str, Any]:
    where = {"account": "accounts", "card": "cards", "token": "tokens"}[controls.level.value]
    return {
        "level": controls.level.value,
        "link": f"{where}/{controls.subject_id}",
        "rules": _rules(controls),
        "updated_at": controls.updated_at,
    }


class IssuerConsole:
    """The issuer's web console on ``app`` (module docstring): :attr:`asgi` is the
    application to serve."""

    def __init__(self, app: IssuerApp) -> None:
        self.app = app
        self.credentials = CredentialCache()
        self.kit = Console(
            title="tapstack issuer",
            nav=_NAV,
            templates=_TEMPLATES,
            authenticate=self._authenticate,
            load=self._load,
            scrub=scrub,
            refused=self._refused,
        )
        self.kit.templates.globals["AUTHORISATION_COLUMNS"] = AUTHORISATION_COLUMNS
        self.asgi: ASGIApp = self.kit.app(self._routes())

    def close(self) -> None:
        """Close the issuer (the server calls this when it stops)."""
        self.app.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    def _routes(self) -> list[BaseRoute]:
        v = self.kit.view
        routes: list[BaseRoute] = [
            Route("/", self._home),
            Route("/authorisations", v("read")(self._authorisations)),
            Route("/authorisations/live", v("read", fragment=True)(self._live)),
            Route("/authorisations/{id}", v("read")(self._authorisation)),
            Route("/accounts/{id}", v("read")(self._account)),
            Route("/cards/{id}", v("read")(self._card)),
            Route("/cards/{id}/suspend", v("operations")(self._suspend), methods=["GET", "POST"]),
            Route("/cards/{id}/resume", v("operations")(self._resume), methods=["GET", "POST"]),
            Route("/tokens/{id}", v("read")(self._token)),
            Route("/events", v("read")(self._events)),
            Route("/events/{id}", v("read")(self._event)),
            Route("/events/{id}/resend", v("operations")(self._resend), methods=["GET", "POST"]),
            Route("/webhooks", v("read")(self._webhooks)),
            Route("/controls", v("read")(self._controls)),
        ]
        for kind, listing in _LISTINGS.items():
            routes.append(Route(f"/{kind}", v(listing.scope)(self._lister(kind, listing))))
        return routes

    # -- who -------------------------------------------------------------------------

    def _principal(self, operator_id: str) -> tuple[Principal, str] | None:
        """The active operator ``operator_id`` and its credential hash, if any."""
        if not _OPERATOR_ID.fullmatch(operator_id):
            return None
        try:
            found = self.app.service.operator(operator_id)
        except NotFoundError:
            return None
        if found.status is not OperatorStatus.ACTIVE:
            return None
        return Principal(found.id, found.name, granted(found.scopes)), found.credential_hash

    def _authenticate(self, operator_id: str, credential: str) -> Principal | None:
        known = self._principal(operator_id)
        if known is None or not self.credentials.verify(operator_id, known[1], credential):
            return None
        return known[0]

    def _load(self, operator_id: str) -> Principal | None:
        known = self._principal(operator_id)
        return None if known is None else known[0]

    def _refused(self, principal: Principal, what: str, scope: str) -> None:
        self._acting(principal).record_outcome(
            "console.request", "console", what.partition(" ")[2] or "-", "refused",
            {"request": what, "scopes": [scope], "held": sorted(principal.scopes)},
        )  # fmt: skip

    def _acting(self, principal: Principal) -> IssuerService:
        return self.app.service.acting_as(f"operator:{principal.id}")

    # -- lists -----------------------------------------------------------------------

    def _filters(self, request: Request, allowed: Mapping[str, str]) -> dict[str, str]:
        """The list's filters from the query (field -> column), ids checked."""
        out = {}
        for field, column in allowed.items():
            value = request.query_params.get(field)
            if value:
                if field != "status" and not _ID.fullmatch(value):
                    raise _BadRequest(f"{field}: not an id")
                out[column] = value
        return out

    def _page(self, request: Request, kind: str, filters: Mapping[str, str]) -> Any:
        after = request.query_params.get("starting_after") or None
        if after is not None and not _ID.fullmatch(after):
            raise _BadRequest("starting_after: not an id")
        try:
            return self.app.service.page(kind, limit=PAGE_SIZE, starting_after=after, **filters)
        except NotFoundError:
            raise _BadRequest("starting_after: no such object") from None

    def _list_page(
        self, request: Request, signed: Signed, *, title: str, columns: Sequence[Column],
        rows: list[dict[str, Any]], more: bool, last: str | None, template: str = "list.html",
        **context: Any,
    ) -> Response:  # fmt: skip
        query = {k: v for k, v in request.query_params.items() if k not in ("starting_after",
                                                                             "notice")}  # fmt: skip
        return self.kit.page(
            request, signed, template, title=title, columns=columns, rows=rows, more=more,
            last=last, query=query, **context,
        )  # fmt: skip

    def _lister(self, kind: str, listing: _Listing) -> Callable[[Request, Signed], Any]:
        async def show(request: Request, signed: Signed) -> Response:
            try:
                page = self._page(request, kind, self._filters(request, listing.filters))
            except _BadRequest as exc:
                return self.kit.error(request, 400, str(exc), signed)
            rows = [o.to_json() for o in page.data]
            last = rows[-1]["prefix" if kind == "ranges" else "id"] if rows else None
            return self._list_page(
                request, signed, title=listing.title, columns=listing.columns, rows=rows,
                more=page.has_more, last=last,
            )  # fmt: skip

        show.__name__ = f"list_{kind}"
        return show

    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/authorisations", status_code=303)

    async def _authorisations(self, request: Request, signed: Signed) -> Response:
        filters = {"card": "card_id", "account": "account_id", "terminal": "terminal_id",
                   "status": "status"}  # fmt: skip
        try:
            page = self._page(request, "authorisations", self._filters(request, filters))
        except _BadRequest as exc:
            return self.kit.error(request, 400, str(exc), signed)
        rows = [_authorisation_row(a.to_json()) for a in page.data]
        first_page = "starting_after" not in request.query_params and not any(
            k in request.query_params for k in filters
        )
        return self._list_page(
            request, signed, title="Authorisations", columns=AUTHORISATION_COLUMNS, rows=rows,
            more=page.has_more, last=rows[-1]["id"] if rows else None,
            template="authorisations.html", live=first_page,
            cursor=rows[0]["id"] if rows else "", every=LIVE_EVERY,
        )  # fmt: skip

    async def _live(self, request: Request, signed: Signed) -> Response:
        """The authorisations newer than ``after`` (at most a page), newest first."""
        after = request.query_params.get("after", "")
        page = self.app.service.page("authorisations", limit=PAGE_SIZE)
        fresh = []
        for found in page.data:
            if found.id == after:
                break
            fresh.append(_authorisation_row(found.to_json()))
        if not fresh:
            return live_fragment("", after or None)
        html = self.kit.render("authorisation_rows.html", rows=fresh, fresh=True)
        return live_fragment(html, fresh[0]["id"])

    async def _events(self, request: Request, signed: Signed) -> Response:
        after = request.query_params.get("starting_after") or None
        kind = request.query_params.get("type") or None
        try:
            page = Events(self.app.ledger).list(
                event_type=kind, limit=PAGE_SIZE, starting_after=after
            )
        except (NotFoundError, IssuerError) as exc:
            return self.kit.error(request, 400, str(exc), signed)
        rows = [e.to_json() for e in page.events]
        return self._list_page(
            request, signed, title="Events", columns=_EVENT_COLUMNS, rows=rows,
            more=page.has_more, last=rows[-1]["id"] if rows else None,
        )  # fmt: skip

    async def _webhooks(self, request: Request, signed: Signed) -> Response:
        after = request.query_params.get("starting_after") or None
        try:
            found, more = Webhooks(self.app.ledger, self.app.keys).page(
                limit=PAGE_SIZE, starting_after=after
            )
        except IssuerError as exc:
            return self.kit.error(request, 400, str(exc), signed)
        rows = [{**e.to_json(), "events": ", ".join(e.events)} for e in found]
        return self._list_page(
            request, signed, title="Webhook endpoints", columns=_ENDPOINT_COLUMNS, rows=rows,
            more=more, last=rows[-1]["id"] if rows else None,
        )  # fmt: skip

    async def _controls(self, request: Request, signed: Signed) -> Response:
        with self.app.ledger.unit_of_work(write=False) as uow:
            found = uow.controls.list()
        return self._list_page(
            request, signed, title="Spending controls", columns=_CONTROL_COLUMNS,
            rows=[_control_row(c) for c in found], more=False, last=None,
        )  # fmt: skip

    # -- one object ------------------------------------------------------------------

    def _detail(
        self, request: Request, signed: Signed, *, title: str, fields: Mapping[str, Any],
        actions: Sequence[tuple[str, str]] = (), sections: Sequence[tuple[str, Any, Any]] = (),
        data: str | None = None,
    ) -> Response:  # fmt: skip
        return self.kit.page(
            request, signed, "detail.html", title=title, fields=fields, actions=actions,
            sections=sections, data=data,
        )  # fmt: skip

    def _recent(self, **filters: str) -> list[dict[str, Any]]:
        page = self.app.service.page("authorisations", limit=20, **filters)
        return [_authorisation_row(a.to_json()) for a in page.data]

    def _controls_section(self, level: ControlLevel, ident: str) -> tuple[str, Any, Any]:
        rows = [_control_row(c) for c in applying(self.app.ledger, level, ident)]
        return ("Spending controls that apply", _CONTROL_COLUMNS, rows)

    async def _account(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            account = self.app.service.account(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such account.", signed)
        cards = self.app.service.page("cards", limit=PAGE_SIZE, account_id=ident)
        return self._detail(
            request, signed, title=f"Account {ident}", fields=account.to_json(),
            sections=[
                ("Cards", _CARD_COLUMNS, [c.to_json() for c in cards.data]),
                self._controls_section(ControlLevel.ACCOUNT, ident),
                ("Recent authorisations", AUTHORISATION_COLUMNS, self._recent(account_id=ident)),
            ],
        )  # fmt: skip

    async def _card(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            card = self.app.service.card(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such card.", signed)
        actions = []
        if signed.can("operations"):
            if card.status.value == "active":
                actions.append((f"/cards/{ident}/suspend", "Suspend…"))
            elif card.status.value == "paused":
                actions.append((f"/cards/{ident}/resume", "Resume…"))
        tokens = self.app.service.page("tokens", limit=PAGE_SIZE, card_id=ident)
        return self._detail(
            request, signed, title=f"Card {ident}", fields=card.to_json(), actions=actions,
            sections=[
                ("Tokens", _TOKEN_COLUMNS, [t.to_json() for t in tokens.data]),
                self._controls_section(ControlLevel.CARD, ident),
                ("Recent authorisations", AUTHORISATION_COLUMNS, self._recent(card_id=ident)),
            ],
        )  # fmt: skip

    async def _token(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            token = self.app.service.token(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such token.", signed)
        return self._detail(
            request, signed, title=f"Token {ident}", fields=token.to_json(),
            sections=[self._controls_section(ControlLevel.TOKEN, ident)],
        )  # fmt: skip

    async def _authorisation(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            found = self.app.service.authorisation(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such authorisation.", signed)
        return self._detail(request, signed, title=f"Authorisation {ident}", fields=found.to_json())

    async def _event(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            event, deliveries = Events(self.app.ledger).get(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such event.", signed)
        shown = event.to_json()
        body = shown.pop("data", None)
        actions = [(f"/events/{ident}/resend", "Resend…")] if signed.can("operations") else []
        return self._detail(
            request, signed, title=f"Event {ident}", fields=shown, actions=actions,
            sections=[("Webhook deliveries", _DELIVERY_COLUMNS,
                       [d.to_json() for d in deliveries])],
            data=json.dumps(body, indent=2, sort_keys=True),
        )  # fmt: skip

    # -- actions ---------------------------------------------------------------------

    async def _act(
        self, request: Request, signed: Signed, *, action: str, kind: str, title: str,
        message: str, button: str, back: str, change: Callable[[IssuerService, str], Any],
        done: str, details: Sequence[tuple[str, Any]],
    ) -> Response:  # fmt: skip
        """Ask (a GET, or a POST without ``confirm=yes``), else do ``change`` acting as
        the operator and go ``back`` with ``done``; a refusal of the domain is audited
        ``failed`` and shown (409)."""
        if request.method == "GET" or not signed.confirmed:
            return self.kit.confirm(
                request, signed, title=title, message=message, button=button, details=details,
                cancel=back,
            )  # fmt: skip
        ident = request.path_params["id"]
        service = self._acting(signed.principal)
        try:
            change(service, ident)
        except NotFoundError:
            return self.kit.error(request, 404, f"No such {kind}.", signed)
        except IssuerError as exc:
            service.record_outcome(
                action, kind, ident, "failed",
                {"error": type(exc).__name__, "message": str(exc)[:200], "via": "console"},
            )  # fmt: skip
            return self.kit.error(request, 409, str(exc), signed)
        return self.kit.done(back, done)

    def _card_details(self, ident: str) -> list[tuple[str, Any]] | None:
        try:
            card = self.app.service.card(ident)
        except NotFoundError:
            return None
        return [("Card", card.id), ("PAN", card.pan_masked), ("Account", card.account_id),
                ("Status now", card.status.value)]  # fmt: skip

    async def _suspend(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        details = self._card_details(ident)
        if details is None:
            return self.kit.error(request, 404, "No such card.", signed)
        return await self._act(
            request, signed, action="card.suspend", kind="card", title="Suspend this card?",
            message="Its authorisations will be declined until it is resumed.",
            button="Suspend the card", back=f"/cards/{ident}",
            change=lambda s, i: s.pause_card(i), done=f"Card {ident} suspended.",
            details=details,
        )  # fmt: skip

    async def _resume(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        details = self._card_details(ident)
        if details is None:
            return self.kit.error(request, 404, "No such card.", signed)
        return await self._act(
            request, signed, action="card.resume", kind="card", title="Resume this card?",
            message="Its authorisations will be decided again as usual.",
            button="Resume the card", back=f"/cards/{ident}",
            change=lambda s, i: s.resume_card(i), done=f"Card {ident} resumed.",
            details=details,
        )  # fmt: skip

    async def _resend(self, request: Request, signed: Signed) -> Response:
        ident = request.path_params["id"]
        try:
            event, _ = Events(self.app.ledger).get(ident)
        except NotFoundError:
            return self.kit.error(request, 404, "No such event.", signed)
        return await self._act(
            request, signed, action="event.resend", kind="event", title="Resend this event?",
            message="It is delivered again to every enabled endpoint that subscribes to it.",
            button="Resend the event", back=f"/events/{ident}",
            change=lambda s, i: Events(s.ledger, s.acting).resend(i),
            done=f"Event {ident} queued for delivery again.",
            details=[("Event", event.id), ("Type", event.type.value),
                     ("Object", event.object_id)],
        )  # fmt: skip


class _BadRequest(Exception):  # noqa: N818 - answered as a 400 page
    pass
