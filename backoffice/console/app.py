"""The back office console's pages on the web console kit (:mod:`webconsole`): who
signs in, what each page shows, and the one action.

Operators sign in with their id and credential (``backoffice operator add``; Argon2id,
:mod:`backoffice.operators`), no client certificate: the console is for browsers.
Every request reads the operator again, so a revoked one is out at its next click.

========================  ============  ==============================================
page                      scope         shows
========================  ============  ==============================================
``/``                     read          counts; taps per hour (``?day=``), revenue
                                        per day (:mod:`backoffice.console.reports`)
``/riders``               read          riders, cards masked (``?after=`` rider id)
``/trips``                read          trips, newest first (``?rider=``, ``?before=``)
``/aggregations``         read          aggregations (``?state=``, ``?rider=``)
``/debts``                read          aggregations in debt recovery
``/deny-list``            read          the deny list, references masked
``/deny-list/V/remove``   operations    asks to confirm, then takes entry V off the
                                        list (audited; gates get it as a new version)
``/audit``                read          the audit log of the console's actions
========================  ============  ==============================================

A read-only operator sees no action, and a request for one (a confirmation page or
the POST itself) is refused with 403 and written in the audit log as ``refused``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from backoffice.console.reports import ConsoleData
from backoffice.operators import SCOPES, Operator
from backoffice.store import Home, Store
from emvwire.currency import Currency, currency_by_code
from emvwire.mask import scrub
from webconsole import Console, Principal, Signed, bar_chart

__all__ = ["TEMPLATES", "BackOfficeConsole"]

TEMPLATES: Final = Path(__file__).parent / "templates"
_NAV: Final = (
    ("/", "Overview"),
    ("/riders", "Riders"),
    ("/trips", "Trips"),
    ("/aggregations", "Aggregations"),
    ("/debts", "Debts"),
    ("/deny-list", "Deny list"),
    ("/audit", "Audit log"),
)
_STATES: Final = (
    "open", "closing", "completed", "reversed", "void", "debt", "recovered", "written_off",
)  # fmt: skip


def _principal(operator: Operator) -> Principal:
    return Principal(operator.id, operator.name, frozenset(s for s in SCOPES if operator.may(s)))


def _int(request: Request, name: str) -> int | None:
    """A whole-number query parameter, ``None`` if absent or not a number."""
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


class BackOfficeConsole:
    """The console of one back office home (module docstring): :attr:`app` is its ASGI
    application; :meth:`close` closes its store."""

    def __init__(self, home: Home) -> None:
        self.store = Store(home)
        self.data = ConsoleData(self.store, home.fares())
        self.currency: Currency = currency_by_code(self.data.rules.currency)
        self.console = Console(
            title="Transit back office",
            nav=_NAV,
            templates=TEMPLATES,
            authenticate=self._authenticate,
            load=self._load,
            scrub=scrub,
            refused=lambda who, what, scope: self.data.refused(who.id, what, scope),
            identity_label="Operator id (bop_...)",
        )
        self.console.templates.globals.update(currency=self.currency.alpha)
        self.console.templates.filters["money"] = self._money
        view, act = self.console.view("read"), self.console.view("operations")
        self.app: ASGIApp = self.console.app([
            Route("/", view(self._overview)),
            Route("/riders", view(self._riders)),
            Route("/trips", view(self._trips)),
            Route("/aggregations", view(self._aggregations)),
            Route("/debts", view(self._debts)),
            Route("/deny-list", view(self._deny_list)),
            Route("/deny-list/{version:int}/remove", act(self._remove), methods=["GET", "POST"]),
            Route("/audit", view(self._audit)),
        ])  # fmt: skip

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def _authenticate(self, identity: str, credential: str) -> Principal | None:
        found = self.data.operators.verify(identity, credential)
        return None if found is None else _principal(found)

    def _load(self, operator_id: str) -> Principal | None:
        found = self.data.operators.get(operator_id)
        return None if found is None or not found.active else _principal(found)

    def _money(self, minor: int | None) -> str:
        """Minor units as the fares' currency writes them (``12.34``)."""
        exponent = self.currency.exponent
        value = int(minor or 0)
        return f"{value / 10**exponent:,.{exponent}f}" if exponent else f"{value:,}"

    def _page(self, request: Request, signed: Signed, template: str, **context: Any) -> Response:
        return self.console.page(request, signed, template, **context)

    # -- pages -------------------------------------------------------------------------------

    async def _overview(self, request: Request, signed: Signed) -> Response:
        asked = request.query_params.get("day", "")
        try:
            day: date | None = date.fromisoformat(asked) if asked else None
        except ValueError:
            day = None
        day = day or self.data.latest_tap_day()
        hours = self.data.taps_per_hour(day) if day is not None else []
        revenue = self.data.revenue_per_day()
        taps_chart = bar_chart(
            hours, title=f"Taps per hour, {day.isoformat() if day else 'no taps yet'}",
            unit="taps", max_labels=12,
        )  # fmt: skip
        exponent = self.currency.exponent
        revenue_chart = bar_chart(
            [(d[5:], v / 10**exponent) for d, v, _ in revenue],
            title="Revenue per travel day", unit=self.currency.alpha, max_labels=10,
            label=lambda v: f"{v:,.{exponent}f}",
        )  # fmt: skip
        return self._page(
            request, signed, "overview.html", title="Overview", counts=self.data.counts(),
            day=day, taps_chart=taps_chart, revenue_chart=revenue_chart,
            taps_total=sum(n for _, n in hours), revenue_total=sum(v for _, v, _ in revenue),
            trips_total=sum(n for _, _, n in revenue),
            revenue_last=revenue[-1][0] if revenue else None,
            audit=self.data.audit(5),
        )  # fmt: skip

    async def _riders(self, request: Request, signed: Signed) -> Response:
        riders = self.data.riders(after=_int(request, "after") or 0)
        return self._page(request, signed, "riders.html", title="Riders", riders=riders)

    async def _trips(self, request: Request, signed: Signed) -> Response:
        rider = _int(request, "rider")
        trips = self.data.trips(before=_int(request, "before"), rider=rider)
        return self._page(request, signed, "trips.html", title="Trips", trips=trips, rider=rider)

    async def _aggregations(self, request: Request, signed: Signed) -> Response:
        state = request.query_params.get("state") or None
        state = state if state in _STATES else None
        rider = _int(request, "rider")
        before_at = request.query_params.get("before_at")
        before_id = request.query_params.get("before_id")
        before = (before_at, before_id) if before_at and before_id else None
        rows = self.data.aggregations(state=state, rider=rider, before=before)
        return self._page(
            request, signed, "aggregations.html", title="Aggregations", aggregations=rows,
            state=state, rider=rider, states=_STATES,
        )  # fmt: skip

    async def _debts(self, request: Request, signed: Signed) -> Response:
        return self._page(request, signed, "debts.html", title="Debts", debts=self.data.debts())

    async def _deny_list(self, request: Request, signed: Signed) -> Response:
        entries = self.data.deny_list(after=_int(request, "after") or 0)
        return self._page(request, signed, "deny_list.html", title="Deny list", entries=entries)

    async def _audit(self, request: Request, signed: Signed) -> Response:
        return self._page(request, signed, "audit.html", title="Audit log",
                          records=self.data.audit(200))  # fmt: skip

    # -- the action --------------------------------------------------------------------------

    async def _remove(self, request: Request, signed: Signed) -> Response:
        version = int(request.path_params["version"])
        entry = self.data.deny_entry(version)
        if request.method == "GET" or not signed.confirmed:
            if entry is None:
                return self.console.error(request, 404, "No such deny-list entry.", signed)
            debts = int(entry["debts"])
            return self.console.confirm(
                request, signed, title="Remove from the deny list",
                message=(
                    "Gates will accept this card again once they fetch the deny list (their "
                    "next poll, or at once from the NATS bucket)."
                    + (f" The rider still has {debts} debt(s) in recovery." if debts else "")
                ),
                button="Remove from the deny list",
                details=[
                    ("Card reference", entry["reference"]),
                    ("Card", entry["masked_pan"] or "-"),
                    ("Rider", entry["rider_id"] if entry["rider_id"] is not None else "-"),
                    ("Reason", entry["reason"]),
                    ("On the list since", entry["added_at"]),
                ],
                cancel="/deny-list",
            )  # fmt: skip
        operator = self.data.operators.get(signed.principal.id)
        assert operator is not None  # loaded by the kit for this request
        removal = self.data.remove_deny_entry(operator, version)
        if removal.outcome != "succeeded":
            return self.console.error(request, 404, "That entry is not on the deny list "
                                      "any more (audited).", signed)  # fmt: skip
        return self.console.done(
            "/deny-list", f"Card {removal.reference} removed from the deny list "
            f"(audit record {removal.audit_id})."
        )  # fmt: skip
